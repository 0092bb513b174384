"""Royalty splits of listed datasets: the creator-signed payees, resolved to accounts.

A manifest may split its dataset's royalty between payees named by did:key, with shares in
basis points (``price.royalties``, checked by ``provenance.manifest``). At publish every
payee DID must be linked to an account here (an identity link); the split is stored on the
listing with those accounts as canonical JSON, and each training round pays by it. A
manifest without a split pays the listing's account alone. This module must never store a
split naming a DID that is linked to no account, nor pay a split other than the one stored.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from billing.errors import BillingError
from billing.settlement import Payee, Royalty
from coordinator.errors import CoordinatorError, InvalidRequest
from coordinator.tables import Identity, Listing
from provenance.canonical import canonical_json
from provenance.manifest import DatasetManifest


def resolve_royalties(session: Session, manifest: DatasetManifest) -> str | None:
    """The listing's ``royalties`` column for ``manifest``: its split with each payee DID's
    linked account, as canonical JSON, or ``None`` when it names no split.

    Raises ``InvalidRequest`` naming ``price.royalties.payees[i].did`` for a DID that is
    linked to no account, or to an account another payee's DID already names.
    """
    split = manifest.royalties
    if split is None:
        return None
    payees: list[dict[str, Any]] = []
    accounts: dict[str, str] = {}
    for position, share in enumerate(split.payees):
        where = f"price.royalties.payees[{position}].did"
        identity = session.get(Identity, share.did)
        if identity is None:
            raise InvalidRequest(
                f"manifest {where}: royalty payee {share.did} is not linked to any account on "
                "this coordinator; its holder must link it first (tally host register, or "
                "POST /v1/identities with a proof signed by that key)",
                field=where,
            )
        if identity.account_id in accounts.values():
            raise InvalidRequest(
                f"manifest {where}: royalty payee {share.did} is linked to account "
                f"{identity.account_id}, which another payee's DID already names; name each "
                "account once",
                field=where,
            )
        accounts[share.did] = identity.account_id
        payees.append(
            {"account_id": identity.account_id, "did": share.did, "share_bps": share.share_bps}
        )
    stored = {"payees": payees, "remainder_to": accounts[split.remainder_to]}
    royalty_of(stored)  # the split the ledger will pay must be one it accepts
    return canonical_json(stored).decode("utf-8")


def royalties_view(listing: Listing) -> dict[str, Any] | None:
    """The stored split as the API shows it:
    ``{"payees": [{"account_id", "did", "share_bps"}], "remainder_to": account_id}``."""
    if listing.royalties is None:
        return None
    data: dict[str, Any] = json.loads(listing.royalties)
    return data


def listing_royalty(listing: Listing) -> Royalty:
    """Who is paid for ``listing``'s use: its stored split, or its account alone."""
    view = royalties_view(listing)
    if view is None:
        return Royalty.sole(listing.account_id)
    return royalty_of(view)


def royalty_of(stored: dict[str, Any]) -> Royalty:
    """The ledger's ``Royalty`` for a stored split."""
    try:
        return Royalty(
            tuple(Payee(str(p["account_id"]), int(p["share_bps"])) for p in stored["payees"]),
            str(stored["remainder_to"]),
        )
    except (BillingError, KeyError, TypeError, ValueError) as exc:
        raise CoordinatorError(f"a stored royalty split is malformed: {exc}") from exc
