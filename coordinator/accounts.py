"""Accounts, roles and API keys.

An API key is ``tally_<key id>_<secret>``: the key id finds the row, and only the SHA-256
of the secret is stored, compared in constant time. A key is shown once, when it is made.
This module must never store or log a secret, nor authenticate a revoked key or a
disabled account.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from coordinator.errors import Conflict, Forbidden, InvalidRequest, NotAuthenticated, NotFound
from coordinator.tables import ROLES, Account, ApiKey

_KEY_FORMAT = re.compile(r"^tally_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: The longest string ``authenticate`` looks at.
MAX_KEY_LENGTH = 128


@dataclass(frozen=True)
class Principal:
    """Who is calling: an authenticated account and the key it used."""

    account_id: str
    name: str
    role: str
    key_id: str

    def require(self, *roles: str) -> None:
        """Raise ``Forbidden`` unless the caller has one of ``roles``."""
        if self.role not in roles:
            raise Forbidden(
                f"this needs the role {' or '.join(roles)}; your account {self.name!r} is "
                f"{self.role}"
            )


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: ``token`` is the secret, shown to its owner once."""

    key: ApiKey
    token: str


def _now() -> datetime:
    return datetime.now(UTC)


def _secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def check_role(role: str) -> str:
    """Return ``role`` if it is one of the roles, else raise ``InvalidRequest``."""
    if role not in ROLES:
        raise InvalidRequest(f"role {role!r} is not one of: {', '.join(ROLES)}", field="role")
    return role


def create_account(session: Session, name: str, role: str) -> Account:
    """Create an account; names are unique, lowercase, 1-64 characters."""
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"account name {name!r} is invalid: use 1-64 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit",
            field="name",
        )
    check_role(role)
    if session.exec(select(Account).where(Account.name == name)).first() is not None:
        raise Conflict(f"an account named {name!r} already exists")
    account = Account(id="acct_" + secrets.token_hex(13), name=name, role=role, created_at=_now())
    session.add(account)
    session.flush()
    return account


def issue_api_key(session: Session, account_id: str, label: str = "") -> IssuedKey:
    """Make a new API key for ``account_id``; the returned token is never stored."""
    if len(label) > 64:
        raise InvalidRequest("key label must be at most 64 characters", field="label")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        id=key_id,
        account_id=account_id,
        secret_sha256=_secret_hash(secret),
        label=label,
        created_at=_now(),
    )
    session.add(key)
    session.flush()
    return IssuedKey(key, f"tally_{key_id}_{secret}")


def revoke_api_key(session: Session, account_id: str, key_id: str) -> ApiKey:
    """Revoke one of ``account_id``'s keys (idempotent: a revoked key stays revoked)."""
    key = session.get(ApiKey, key_id)
    if key is None or key.account_id != account_id:
        raise NotFound(f"account {account_id} has no API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = _now()
        session.add(key)
        session.flush()
    return key


def list_api_keys(session: Session, account_id: str) -> list[ApiKey]:
    """The account's keys, newest first (metadata only: secrets are not stored)."""
    statement = (
        select(ApiKey)
        .where(ApiKey.account_id == account_id)
        .order_by(col(ApiKey.created_at).desc())
    )
    return list(session.exec(statement))


def authenticate(session: Session, token: str) -> Principal:
    """The principal an ``Authorization: Bearer`` token stands for, or ``NotAuthenticated``."""
    match = _KEY_FORMAT.fullmatch(token) if len(token) <= MAX_KEY_LENGTH else None
    if match is None:
        raise NotAuthenticated("the API key is malformed; keys look like tally_<id>_<secret>")
    key_id, secret = match.groups()
    row = session.exec(
        select(ApiKey, Account)
        .join(Account, col(Account.id) == col(ApiKey.account_id))
        .where(ApiKey.id == key_id)
    ).first()
    # Hash and compare even for an unknown id, so that timing says nothing about ids.
    expected = row[0].secret_sha256 if row is not None else b"\0" * 32
    if not hmac.compare_digest(_secret_hash(secret), expected) or row is None:
        raise NotAuthenticated("the API key is not valid")
    key, account = row
    if key.revoked_at is not None:
        raise NotAuthenticated("the API key was revoked; ask for a new one")
    if account.disabled_at is not None:
        raise NotAuthenticated(f"account {account.name!r} is disabled")
    return Principal(account.id, account.name, account.role, key.id)


def get_account(session: Session, principal: Principal, account_id: str) -> Account:
    """An account the caller may see: its own; any for admins and auditors."""
    account = session.get(Account, account_id)
    visible = principal.role in ("admin", "auditor") or principal.account_id == account_id
    if account is None or not visible:
        raise NotFound(f"no account {account_id!r}")
    return account


def require_self_or_admin(principal: Principal, account_id: str) -> None:
    """Refuse changes to another account's keys unless the caller is an admin."""
    if principal.account_id != account_id and principal.role != "admin":
        if principal.role == "auditor":
            raise Forbidden("auditors read everything and change nothing")
        raise NotFound(f"no account {account_id!r}")


def list_accounts(session: Session, *, limit: int, offset: int) -> list[Account]:
    """Every account, oldest first."""
    statement = select(Account).order_by(col(Account.created_at), col(Account.id))
    return list(session.exec(statement.offset(offset).limit(limit)))
