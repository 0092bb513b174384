"""Property-based runs over the coordinator's OpenAPI document (schemathesis).

For each role, schemathesis generates requests for every operation in ``/openapi.json``,
valid and invalid alike, and sends them to the in-process app with that role's key. Path
parameters are drawn half the time from the ids of real records (a dataset, a draft and a
funded job, the accounts, the host), so that requests reach the service code and not only
the 404 for an unknown id. Every answer must be no 5xx, a status code the document lists
for the operation, the content type it lists, and a body that matches its schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from coordinator_fixtures import Marketplace, Party, build_marketplace
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow

ROLES = ("admin", "creator", "buyer", "auditor")
#: Examples per operation and role; TALLY_FUZZ_EXAMPLES raises it for a longer run.
MAX_EXAMPLES = int(os.environ.get("TALLY_FUZZ_EXAMPLES", "12"))
#: How often a path or body id is taken from the real records rather than generated.
REAL_ID_PROBABILITY = 0.5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Marketplace]:
    built = build_marketplace(tmp_path)
    yield built
    built.client.close()
    built.coordinator.close()


@pytest.fixture
def api_schema(market: Marketplace) -> schemathesis.BaseSchema:
    draft = market.create_job()["id"]
    funded = market.create_job()["id"]
    response = market.client.post(f"/v1/jobs/{funded}/fund", headers=market.buyer.headers)
    assert response.status_code == 200, response.text
    accounts = [party.account_id for party in (market.creator, market.buyer, market.auditor)]
    real = REAL_ID_PROBABILITY
    config = schemathesis.Config.from_dict(
        {
            "dictionaries": {
                "datasets": {"values": [market.node.dataset_id]},
                "jobs": {"values": [draft, funded]},
                "currencies": {"values": ["USD"]},
                "accounts": {"values": accounts},
                "hosts": {"values": [market.node.home.config.creator_did]},
                "models": {"values": ["mlp"]},
            },
            "parameters": {
                "path.dataset_id": {"dictionary": "datasets", "probability": real},
                "body.datasets[*].dataset_id": {"dictionary": "datasets", "probability": real},
                "body.dataset_id": {"dictionary": "datasets", "probability": real},
                "path.job_id": {"dictionary": "jobs", "probability": real},
                "path.account_id": {"dictionary": "accounts", "probability": real},
                "path.host_did": {"dictionary": "hosts", "probability": real},
                "body.model": {"dictionary": "models", "probability": real},
                "body.budget.currency": {"dictionary": "currencies", "probability": real},
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", market.client.app, config=config)


def _fuzz_operation(operation: APIOperation, mode: GenerationMode, party: Party) -> str | None:
    """Run ``operation`` with generated requests; the first failure, described, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        response = case.call(headers=party.headers)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # an operation with no inputs has no invalid request to send
        return None
    except Exception as failure:
        return f"{operation.label} ({mode.value}): {failure}"
    return None


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_no_answer_is_a_5xx_or_off_the_document(
    api_schema: schemathesis.BaseSchema, market: Marketplace, role: str, mode: GenerationMode
) -> None:
    party = getattr(market, role)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20, [operation.label for operation in operations]
    failures = [
        failure
        for operation in operations
        if (failure := _fuzz_operation(operation, mode, party)) is not None
    ]
    assert not failures, "\n\n".join(failures)
