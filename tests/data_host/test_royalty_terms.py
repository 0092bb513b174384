"""A dataset's royalty split in its terms: ``--royalty DID=SHARE`` and
``--royalty-remainder-to DID`` are checked before any data is read, and the split is
signed into the manifest's ``price.royalties`` only when one was given."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from data_host.errors import DatasetTermsError
from data_host.home import NodeHome, init_home
from data_host.ingest import ingest_dataset
from data_host.registry import DatasetRegistry
from data_host.terms import DatasetTerms, parse_royalty
from provenance.keys import SigningKey
from provenance.manifest import RoyaltyShare, RoyaltySplit, verify_manifest

ALICE = SigningKey.from_seed(b"a" * 32).public_key.did
LABEL = SigningKey.from_seed(b"l" * 32).public_key.did
THIRD = SigningKey.from_seed(b"t" * 32).public_key.did


def _terms(**overrides: Any) -> DatasetTerms:
    values: dict[str, Any] = {
        "title": "Heart study",
        "license": "CC-BY-4.0",
        "price_per_sample": Decimal("0.002"),
        "currency": "USD",
        "delta": 1e-5,
    }
    values.update(overrides)
    return DatasetTerms(**values)


def _csv(path: Path, rows: int = 400) -> Path:
    lines = ["age,pressure,label"] + [
        f"{20 + i % 50},{100 + i % 40}.5,{i % 2}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def home(tmp_path: Path) -> NodeHome:
    return init_home(tmp_path / "node", "alice")


def test_a_royalty_value_is_a_did_and_a_share() -> None:
    assert parse_royalty(f"{ALICE}=6000") == (ALICE, 6000)
    assert parse_royalty(f"  {LABEL}=4000 ") == (LABEL, 4000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ALICE, "must be DID=SHARE"),
        ("=6000", "must be DID=SHARE"),
        (f"{ALICE}=", "whole number"),
        (f"{ALICE}=60.5", "whole number"),
        (f"{ALICE}=-10", "whole number"),
        (f"{ALICE}=1e3", "whole number"),
        (f"{ALICE}=\uff16\uff10\uff10\uff10", "whole number"),  # full-width digits
    ],
)
def test_malformed_royalty_values_are_refused(text: str, message: str) -> None:
    with pytest.raises(DatasetTermsError, match="--royalty") as refused:
        parse_royalty(text)
    assert message in str(refused.value)


def test_the_remainder_defaults_to_the_first_payee() -> None:
    terms = _terms(royalties=((LABEL, 4000), (ALICE, 6000)))
    assert terms.royalty_remainder_to == LABEL
    assert terms.royalty_split() == RoyaltySplit(
        (RoyaltyShare(LABEL, 4000), RoyaltyShare(ALICE, 6000)), LABEL
    )
    chosen = _terms(royalties=((LABEL, 4000), (ALICE, 6000)), royalty_remainder_to=ALICE)
    assert chosen.royalty_split() == RoyaltySplit(
        (RoyaltyShare(LABEL, 4000), RoyaltyShare(ALICE, 6000)), ALICE
    )


def test_no_split_means_the_creator_alone() -> None:
    terms = _terms()
    assert terms.royalties == ()
    assert terms.royalty_remainder_to is None
    assert terms.royalty_split() is None


@pytest.mark.parametrize(
    ("overrides", "option", "message"),
    [
        ({"royalties": (("did:web:example.com", 10_000),)}, "--royalty", "did:key"),
        ({"royalties": (("did:key:z6Mk0OIl", 10_000),)}, "--royalty", "base58btc"),
        ({"royalties": ((ALICE[:-3], 10_000),)}, "--royalty", "not an Ed25519 did:key"),
        ({"royalties": ((ALICE, 0), (LABEL, 10_000))}, "--royalty", "positive"),
        ({"royalties": ((ALICE, -1), (LABEL, 10_001))}, "--royalty", "positive"),
        ({"royalties": ((ALICE, True), (LABEL, 9_999))}, "--royalty", "positive"),
        ({"royalties": ((ALICE, 6000), (LABEL, 3999))}, "--royalty", "add up to 9999"),
        ({"royalties": ((ALICE, 6000), (LABEL, 4001))}, "--royalty", "add up to 10001"),
        ({"royalties": ((ALICE, 5000), (ALICE, 5000))}, "--royalty", "twice"),
        (
            {"royalties": tuple((SigningKey.generate().public_key.did, 1) for _ in range(33))},
            "--royalty",
            "at most 32",
        ),
        (
            {"royalties": ((ALICE, 6000), (LABEL, 4000)), "royalty_remainder_to": THIRD},
            "--royalty-remainder-to",
            "not one of the --royalty payees",
        ),
        (
            {"royalties": ((ALICE, 10_000),), "royalty_remainder_to": "did:key:nope"},
            "--royalty-remainder-to",
            "did:key",
        ),
        ({"royalty_remainder_to": ALICE}, "--royalty-remainder-to", "needs the payees"),
    ],
)
def test_bad_royalty_splits_are_refused_naming_the_option(
    overrides: dict[str, Any], option: str, message: str
) -> None:
    with pytest.raises(DatasetTermsError) as refused:
        _terms(**overrides)
    assert str(refused.value).startswith(option)
    assert message in str(refused.value)


def test_a_split_is_signed_into_the_manifest(home: NodeHome, tmp_path: Path) -> None:
    own = home.config.creator_did
    terms = _terms(royalties=((own, 6000), (LABEL, 4000)), royalty_remainder_to=LABEL)
    result = ingest_dataset(home, _csv(tmp_path / "heart.csv"), terms)
    signed = verify_manifest(result.dataset.row.envelope, expected_creator=home.creator_public_key)
    assert signed.manifest.predicate["price"] == {
        "currency": "USD",
        "per_sample": "0.002",
        "royalties": {
            "payees": [{"did": own, "share_bps": 6000}, {"did": LABEL, "share_bps": 4000}],
            "remainder_to": LABEL,
        },
    }
    assert signed.manifest.royalties == RoyaltySplit(
        (RoyaltyShare(own, 6000), RoyaltyShare(LABEL, 4000)), LABEL
    )


def test_without_a_split_the_manifest_has_no_royalties_field(
    home: NodeHome, tmp_path: Path
) -> None:
    result = ingest_dataset(home, _csv(tmp_path / "heart.csv"), _terms())
    signed = verify_manifest(result.dataset.row.envelope)
    assert signed.manifest.predicate["price"] == {"currency": "USD", "per_sample": "0.002"}
    assert b"royalties" not in signed.envelope.payload
    assert signed.manifest.royalties is None


def test_a_refused_split_registers_nothing(home: NodeHome, tmp_path: Path) -> None:
    with pytest.raises(DatasetTermsError, match="--royalty"):
        ingest_dataset(
            home,
            _csv(tmp_path / "heart.csv"),
            _terms(royalties=((home.config.creator_did, 6000), (LABEL, 3000))),
        )
    assert DatasetRegistry(home.engine).list() == []
