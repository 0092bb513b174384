"""JSON forms of stored rows that more than one router returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from coordinator.tables import Account, ApiKey, Identity


def served(model: type[BaseModel], data: dict[str, Any]) -> bytes:
    """``data`` as the JSON body a route with ``response_model=model`` answers, checked
    against the model (for routes that keep answers as bytes in the read cache)."""
    return model.model_validate(data).model_dump_json().encode("utf-8")


def iso(moment: datetime | None) -> str | None:
    """An aware datetime as ISO 8601, or ``None``."""
    return None if moment is None else moment.isoformat()


def account_view(account: Account) -> dict[str, Any]:
    """An account as the API returns it."""
    return {
        "id": account.id,
        "name": account.name,
        "role": account.role,
        "created_at": iso(account.created_at),
        "disabled_at": iso(account.disabled_at),
    }


def key_view(key: ApiKey) -> dict[str, Any]:
    """API key metadata (never the secret)."""
    return {
        "key_id": key.id,
        "label": key.label,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
    }


def identity_view(identity: Identity) -> dict[str, Any]:
    """A linked identity."""
    return {
        "did": identity.did,
        "account_id": identity.account_id,
        "linked_at": iso(identity.linked_at),
    }
