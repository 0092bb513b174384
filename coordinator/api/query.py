"""Query strings validated as one Pydantic model, and documented as OpenAPI parameters.

FastAPI handles each declared query parameter on its own, which for a search with many
optional filters cost more than the search. ``parse_query`` validates the whole query
string against a model in one call (unknown names are refused, like unknown body fields),
and ``query_parameters`` lists the model's fields in the OpenAPI document so that the
route's parameters stay documented. This module must not decide anything but shape.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

#: The most query parameters a request may carry.
MAX_QUERY_PARAMETERS = 64


def parse_query(model: type[Model], request: Request) -> Model:
    """``request``'s query string as ``model``; a 422 (FastAPI's shape) when it does not fit."""
    items = request.query_params.multi_items()
    if len(items) > MAX_QUERY_PARAMETERS:
        raise RequestValidationError(
            [{"loc": ("query",), "msg": "too many query parameters", "type": "too_long"}]
        )
    values: dict[str, str] = {}
    for name, value in items:
        if name in values:
            raise RequestValidationError(
                [{"loc": ("query", name), "msg": "given more than once", "type": "duplicate"}]
            )
        values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("query", *error["loc"]), "msg": error["msg"], "type": error["type"]}
                for error in exc.errors()
            ]
        ) from None


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameter objects for each field of ``model``, in the query."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    parameters = []
    for name, field_schema in schema["properties"].items():
        described = dict(field_schema)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": described,
        }
        if "description" in described:
            parameter["description"] = described.pop("description")
        described.pop("title", None)
        parameters.append(parameter)
    return parameters
