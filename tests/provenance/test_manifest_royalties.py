"""A manifest's ``price.royalties``: parsed strictly, every refusal naming the field path,
and a signed manifest with a malformed split is refused as a whole."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from provenance.errors import ManifestError
from provenance.keys import SigningKey
from provenance.manifest import (
    CHUNKING_ALGORITHM,
    DATASET_MANIFEST_PREDICATE,
    MAX_ROYALTY_PAYEES,
    RoyaltyShare,
    RoyaltySplit,
    build_statement,
    sign_manifest,
    subject_name,
    verify_manifest,
)
from provenance.statement import Statement, Subject, sign_statement

CREATOR = SigningKey.from_seed(b"c" * 32)
LABEL = SigningKey.from_seed(b"l" * 32).public_key.did
OWN = CREATOR.public_key.did
DATASET = "ds_" + "0" * 26
ROOT = "ab" * 32
SPLIT = {
    "payees": [{"did": OWN, "share_bps": 6000}, {"did": LABEL, "share_bps": 4000}],
    "remainder_to": LABEL,
}


def _predicate(royalties: Any = None) -> dict[str, Any]:
    price: dict[str, Any] = {"currency": "USD", "per_sample": "0.001"}
    if royalties is not None:
        price["royalties"] = royalties
    return {
        "dataset": {"id": DATASET, "version": 1, "title": "t", "description": ""},
        "creator": OWN,
        "license": "MIT",
        "allowed_uses": ["train"],
        "privacy": {
            "accountant": "rdp",
            "delta": "1e-05",
            "lifetime_epsilon": "10.0",
            "max_epsilon_per_job": None,
        },
        "price": price,
        "schema": {"rows": 10},
        "content": {
            "redacted": False,
            "chunking": {
                "algorithm": CHUNKING_ALGORITHM,
                "root": ROOT,
                "chunk_size": 1 << 20,
                "chunk_count": 1,
                "total_bytes": 5,
                "files": [{"path": "a.csv", "size": 5, "first_chunk": 0, "chunk_count": 1}],
            },
        },
        "pii": {"total": 0},
        "created_at": "2026-12-04T09:00:00Z",
    }


def _signed(predicate: dict[str, Any]) -> bytes:
    """The predicate signed by the creator, bypassing ``build_statement``'s checks."""
    statement = Statement(
        subjects=(Subject(subject_name(DATASET, 1), {"sha256": ROOT}),),
        predicate_type=DATASET_MANIFEST_PREDICATE,
        predicate=predicate,
    )
    return sign_statement(statement, [CREATOR]).to_json()


def test_a_split_round_trips_through_a_signed_manifest() -> None:
    statement = build_statement(
        dataset_id=DATASET, version=1, merkle_root=ROOT, predicate=_predicate(SPLIT)
    )
    signed = sign_manifest(statement, CREATOR)
    assert signed.manifest.royalties == RoyaltySplit(
        (RoyaltyShare(OWN, 6000), RoyaltyShare(LABEL, 4000)), LABEL
    )
    assert signed.manifest.royalties.to_dict() == SPLIT
    plain = sign_manifest(
        build_statement(dataset_id=DATASET, version=1, merkle_root=ROOT, predicate=_predicate()),
        CREATOR,
    )
    assert plain.manifest.royalties is None


def _changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    split = copy.deepcopy(SPLIT)
    holder: Any = split
    for part in path[:-1]:
        holder = holder[part]
    if value is _DELETE:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return split


_DELETE = object()
_MANY = [
    {"did": SigningKey.from_seed(bytes([n]) * 32).public_key.did, "share_bps": 10_000 // 40}
    for n in range(40)
]


@pytest.mark.parametrize(
    ("royalties", "field", "words"),
    [
        ([], "price.royalties", "must be an object"),
        (_changed(("extra",), 1), "price.royalties", "exactly the fields"),
        (_changed(("payees",), _DELETE), "price.royalties", "exactly the fields"),
        (_changed(("payees",), {}), "price.royalties.payees", "of type list"),
        (_changed(("payees",), []), "price.royalties.payees", "1 to 32"),
        ({"payees": _MANY, "remainder_to": _MANY[0]["did"]}, "price.royalties.payees", "got 40"),
        (_changed(("payees", 1), "x"), "price.royalties.payees[1]", "must be an object"),
        (
            _changed(("payees", 1, "note"), "x"),
            "price.royalties.payees[1]",
            "exactly did and share_bps",
        ),
        (_changed(("payees", 0, "did"), 7), "price.royalties.payees[0].did", "of type str"),
        (
            _changed(("payees", 0, "did"), "did:web:a.example"),
            "price.royalties.payees[0].did",
            "did:key",
        ),
        (
            _changed(("payees", 1, "share_bps"), "4000"),
            "price.royalties.payees[1].share_bps",
            "of type int",
        ),
        (
            _changed(("payees", 1, "share_bps"), True),
            "price.royalties.payees[1].share_bps",
            "of type int",
        ),
        (
            _changed(("payees", 1, "share_bps"), 0),
            "price.royalties.payees[1].share_bps",
            "from 1 to 10000",
        ),
        (
            _changed(("payees", 1, "share_bps"), -4000),
            "price.royalties.payees[1].share_bps",
            "from 1 to 10000",
        ),
        (_changed(("payees", 1, "share_bps"), 3999), "price.royalties.payees", "add to 9999"),
        (_changed(("payees", 1, "did"), OWN), "price.royalties.payees[1].did", "second time"),
        (_changed(("remainder_to",), 5), "price.royalties.remainder_to", "of type str"),
        (
            _changed(("remainder_to",), SigningKey.from_seed(b"z" * 32).public_key.did),
            "price.royalties.remainder_to",
            "not one of the payees",
        ),
    ],
)
def test_malformed_splits_are_refused_naming_the_field(
    royalties: Any, field: str, words: str
) -> None:
    with pytest.raises(ManifestError) as direct:
        RoyaltySplit.from_dict(royalties)
    message = str(direct.value)
    assert message.startswith(f"manifest field {field}")
    assert words in message
    # A creator's own signature does not make such a split acceptable.
    with pytest.raises(ManifestError) as signed:
        verify_manifest(_signed(_predicate(royalties)))
    assert str(signed.value) == message
    with pytest.raises(ManifestError):
        build_statement(
            dataset_id=DATASET, version=1, merkle_root=ROOT, predicate=_predicate(royalties)
        )


def test_a_fractional_share_is_refused() -> None:
    # (Canonical JSON writes 4000.0 as 4000, so only a parsed object can carry a float.)
    with pytest.raises(ManifestError, match=r"payees\[1\]\.share_bps must be of type int"):
        RoyaltySplit.from_dict(_changed(("payees", 1, "share_bps"), 4000.5))


def test_a_null_split_is_refused_not_read_as_none() -> None:
    predicate = _predicate()
    predicate["price"]["royalties"] = None
    with pytest.raises(ManifestError, match="price.royalties must be an object"):
        verify_manifest(_signed(predicate))


def test_at_most_32_payees_are_accepted() -> None:
    dids = [SigningKey.from_seed(bytes([n]) * 32).public_key.did for n in range(32)]
    shares = [10_000 // 32] * 31 + [10_000 - 31 * (10_000 // 32)]
    data = {
        "payees": [{"did": d, "share_bps": s} for d, s in zip(dids, shares, strict=True)],
        "remainder_to": dids[-1],
    }
    assert len(RoyaltySplit.from_dict(data).payees) == MAX_ROYALTY_PAYEES
