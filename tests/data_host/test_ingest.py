"""From a folder to a registered dataset: ingest, PII policies, verification, admission."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from data_host.allowlist import AppAllowList
from data_host.errors import DataHostError, DatasetFormatError, DatasetTermsError, WorkRefused
from data_host.home import NodeHome, init_home
from data_host.ingest import HASHING, ingest_dataset
from data_host.integrity import verify_dataset
from data_host.policy import WorkRequest, admit_work
from data_host.registry import DatasetRegistry
from data_host.terms import DatasetTerms, parse_price
from privacy.budget import Mechanism, PrivacyBudgetLedger
from privacy.pii import PiiPolicy
from provenance.manifest import verify_manifest

APP = "ab" * 32
ROWS = 400


def _terms(**overrides: Any) -> DatasetTerms:
    values: dict[str, Any] = {
        "title": "Heart study",
        "license": "CC-BY-4.0",
        "price_per_sample": Decimal("0.002"),
        "currency": "USD",
        "lifetime_epsilon": 8.0,
        "max_epsilon_per_job": 3.0,
        "delta": 1e-5,
    }
    values.update(overrides)
    return DatasetTerms(**values)


def _csv(path: Path, rows: int = ROWS, extra: str = "") -> Path:
    lines = ["age,pressure,note,label"]
    lines += [f"{20 + i % 50},{100 + i % 40}.5,ok{extra},{i % 2}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _pii_csv(path: Path) -> Path:
    lines = ["age,contact,label"]
    lines += [f"{30 + i},person{i}@example.com,{i % 2}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def home(tmp_path: Path) -> NodeHome:
    return init_home(tmp_path / "node", "alice")


def _registered_ids(home: NodeHome) -> list[str]:
    return [row.id for row in DatasetRegistry(home.engine).list()]


def test_csv_becomes_a_signed_verified_dataset(home: NodeHome, tmp_path: Path) -> None:
    source = _csv(tmp_path / "heart.csv")
    before = source.read_bytes()
    result = ingest_dataset(home, source, _terms(label="label"))
    signed = verify_manifest(result.dataset.row.envelope, expected_creator=home.creator_public_key)
    predicate = signed.manifest.predicate
    assert predicate["schema"]["rows"] == ROWS
    assert predicate["schema"]["label"] == "label"
    assert predicate["price"] == {"currency": "USD", "per_sample": "0.002"}
    assert predicate["privacy"]["lifetime_epsilon"] == "8.0"
    assert predicate["pii"]["total"] == 0
    assert predicate["content"]["redacted"] is False
    assert signed.manifest.merkle_root == result.chunked.root.hex()
    assert result.dataset.row.content_path == str(source)
    assert source.read_bytes() == before  # nothing is copied or changed
    assert verify_dataset(home.engine, result.dataset.row.id).matches
    status = PrivacyBudgetLedger(home.engine).status(result.dataset.row.id)
    assert status.lifetime_cap == 8.0
    assert status.spent_epsilon == 0.0


def test_verify_names_changed_chunks_and_files(home: NodeHome, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _csv(folder / "a.csv", rows=30_000)
    _csv(folder / "b.csv")
    result = ingest_dataset(home, folder, _terms(), chunk_size=64 * 1024)
    dataset_id = result.dataset.row.id
    with (folder / "a.csv").open("r+b") as handle:
        handle.seek(70_000)
        handle.write(b"9")
    report = verify_dataset(home.engine, dataset_id)
    assert not report.matches
    assert report.changed_chunks == (("a.csv", 1),)
    _csv(folder / "c.csv")
    report = verify_dataset(home.engine, dataset_id)
    assert report.added_files == ("c.csv",)
    (folder / "b.csv").unlink()
    report = verify_dataset(home.engine, dataset_id)
    assert report.removed_files == ("b.csv",)
    assert report.to_dict()["matches"] is False


def test_pii_block_refuses_and_registers_nothing(home: NodeHome, tmp_path: Path) -> None:
    source = _pii_csv(tmp_path / "people.csv")
    with pytest.raises(DataHostError, match=r"email.*contact") as caught:
        ingest_dataset(home, source, _terms())
    assert "nothing was registered" in str(caught.value)
    assert _registered_ids(home) == []
    assert list(home.redacted_dir.iterdir()) == []


def test_pii_redact_manifests_a_redacted_copy(home: NodeHome, tmp_path: Path) -> None:
    source = _pii_csv(tmp_path / "people.csv")
    original = source.read_bytes()
    result = ingest_dataset(home, source, _terms(pii_policy=PiiPolicy.REDACT))
    row = result.dataset.row
    content = Path(row.content_path)
    assert content.is_relative_to(home.redacted_dir / row.id)
    assert b"@example.com" not in content.read_bytes()
    assert source.read_bytes() == original
    predicate = result.signed.manifest.predicate
    assert predicate["content"]["redacted"] is True
    assert predicate["pii"]["findings"] == {"email": {"contact": ROWS}}
    assert predicate["pii"]["policy"] == "redact"
    assert predicate["schema"]["rows"] == ROWS
    assert verify_dataset(home.engine, row.id).matches


def test_pii_allow_registers_with_the_findings_in_the_manifest(
    home: NodeHome, tmp_path: Path
) -> None:
    result = ingest_dataset(
        home, _pii_csv(tmp_path / "people.csv"), _terms(pii_policy=PiiPolicy.ALLOW)
    )
    pii = result.signed.manifest.predicate["pii"]
    assert pii["total"] == ROWS
    assert pii["policy"] == "allow"
    assert result.dataset.row.content_path == str(tmp_path / "people.csv")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "empty").mkdir() or d / "empty", "empty"),
        (lambda d: (d / "h.csv").write_text("a,b\n") and d / "h.csv", "no data rows|empty"),
        (lambda d: (d / "r.csv").write_text("a,b\n1,2\n3,4,5\n") and d / "r.csv", "line 3"),
        (lambda d: d / "missing.csv", "does not exist"),
    ],
)
def test_bad_datasets_register_nothing(
    home: NodeHome, tmp_path: Path, make: Any, message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(DataHostError, match=message):
        ingest_dataset(home, path, _terms())
    assert _registered_ids(home) == []


def test_mixed_format_folder_is_refused(home: NodeHome, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    _csv(folder / "a.csv")
    (folder / "b.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(DatasetFormatError, match="mixed"):
        ingest_dataset(home, folder, _terms())
    assert _registered_ids(home) == []


def test_a_file_changing_during_ingest_is_refused(home: NodeHome, tmp_path: Path) -> None:
    source = _csv(tmp_path / "growing.csv", rows=20_000)

    class Appender:
        done = False

        def start(self, stage: str, total: int) -> None:
            pass

        def advance(self, stage: str, amount: int) -> None:
            if stage == HASHING and not self.done:
                self.done = True
                with source.open("a") as handle:
                    handle.write("1,2,ok,0\n")

    with pytest.raises(DataHostError, match="changed"):
        ingest_dataset(home, source, _terms(), chunk_size=64 * 1024, progress=Appender())
    assert _registered_ids(home) == []


def test_delta_must_be_below_one_over_rows(home: NodeHome, tmp_path: Path) -> None:
    with pytest.raises(DatasetTermsError, match="too large for 400 rows"):
        ingest_dataset(home, _csv(tmp_path / "a.csv"), _terms(delta=0.01))
    assert _registered_ids(home) == []


def test_datasets_inside_the_node_home_are_refused(home: NodeHome) -> None:
    _csv(home.root / "inside.csv")
    with pytest.raises(DatasetFormatError, match="overlaps the node home"):
        ingest_dataset(home, home.root / "inside.csv", _terms())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"license": "Not-A-License"}, "--license"),
        ({"currency": "usd"}, "upper case"),
        ({"currency": "XYZ"}, "ISO 4217"),
        ({"lifetime_epsilon": 0.0}, "--lifetime-epsilon"),
        ({"lifetime_epsilon": -1.0}, "--lifetime-epsilon"),
        ({"lifetime_epsilon": float("nan")}, "--lifetime-epsilon"),
        ({"max_epsilon_per_job": 0.0}, "--max-epsilon-per-job"),
        ({"max_epsilon_per_job": 9.0}, "exceeds --lifetime-epsilon"),
        ({"delta": 1.0}, "--delta"),
        ({"allowed_uses": ("resell",)}, "--allowed-use resell"),
        ({"allowed_uses": ()}, "at least one use"),
        ({"title": "  "}, "--title"),
    ],
)
def test_bad_terms_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasetTermsError, match=message):
        _terms(**overrides)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "negative"),
        ("1e-3", "exact decimal"),
        ("0.1.2", "exact decimal"),
        ("", "exact"),
        ("NaN", "exact decimal"),
        ("1,000", "exact decimal"),
        ("0." + "1" * 13, "exact decimal"),
    ],
)
def test_bad_prices_are_refused(text: str, message: str) -> None:
    with pytest.raises(DatasetTermsError, match=message):
        parse_price(text)


def test_prices_are_exact_decimals() -> None:
    assert parse_price("0.002") == Decimal("0.002")
    assert parse_price("12") == Decimal(12)


def test_licence_expressions_are_canonicalised() -> None:
    assert _terms(license="mit OR apache-2.0").license == "MIT OR Apache-2.0"


# --- admission ---------------------------------------------------------------------------


def _request(dataset_id: str, **overrides: Any) -> WorkRequest:
    values: dict[str, Any] = {
        "dataset_id": dataset_id,
        "job_id": "job-1",
        "use": "train",
        "fab_hash": APP,
        "planned": Mechanism(noise_multiplier=1.2, sample_rate=0.05, steps=100),
    }
    values.update(overrides)
    return WorkRequest(**values)


def test_admission_refusals_in_order(home: NodeHome, tmp_path: Path) -> None:
    dataset_id = ingest_dataset(home, _csv(tmp_path / "a.csv"), _terms()).dataset.row.id
    with pytest.raises(WorkRefused, match="allow-list"):
        admit_work(home.engine, _request(dataset_id), reserve=True)
    AppAllowList(home.engine).allow(APP, "test app")
    with pytest.raises(WorkRefused, match="allows train, not 'evaluate'"):
        admit_work(home.engine, _request(dataset_id, use="evaluate"), reserve=True)
    greedy = Mechanism(noise_multiplier=0.5, sample_rate=0.5, steps=1000)
    with pytest.raises(WorkRefused, match="privacy budget"):
        admit_work(home.engine, _request(dataset_id, planned=greedy), reserve=True)
    decision = admit_work(home.engine, _request(dataset_id), reserve=False)
    assert 0 < decision.job_epsilon <= 3.0
    assert PrivacyBudgetLedger(home.engine).status(dataset_id).committed_epsilon == 0.0
    decision = admit_work(home.engine, _request(dataset_id), reserve=True)
    assert decision.reserved
    committed = PrivacyBudgetLedger(home.engine).status(dataset_id).committed_epsilon
    assert committed == pytest.approx(decision.job_epsilon)
    with pytest.raises(WorkRefused, match="reserves its steps once"):
        admit_work(home.engine, _request(dataset_id), reserve=False)
    DatasetRegistry(home.engine).revoke(dataset_id, "consent withdrawn")
    with pytest.raises(WorkRefused, match="revoked.*consent withdrawn"):
        admit_work(home.engine, _request(dataset_id, job_id="job-2"), reserve=True)


def test_lifetime_cap_spans_jobs(home: NodeHome, tmp_path: Path) -> None:
    dataset_id = ingest_dataset(home, _csv(tmp_path / "a.csv"), _terms()).dataset.row.id
    AppAllowList(home.engine).allow(APP, "test app")
    admitted = 0
    refusal = ""
    for job in range(20):
        try:
            admit_work(home.engine, _request(dataset_id, job_id=f"job-{job}"), reserve=True)
        except WorkRefused as exc:
            refusal = str(exc)
            break
        admitted += 1
    assert "lifetime" in refusal
    assert 2 <= admitted < 20
    status = PrivacyBudgetLedger(home.engine).status(dataset_id)
    assert status.committed_epsilon <= 8.0


def test_unknown_dataset_is_refused_work(home: NodeHome) -> None:
    AppAllowList(home.engine).allow(APP, "test app")
    with pytest.raises(WorkRefused, match="no dataset"):
        admit_work(home.engine, _request("ds_" + "1" * 26), reserve=False)


def test_no_redacted_copy_is_left_when_registration_fails(home: NodeHome, tmp_path: Path) -> None:
    source = _pii_csv(tmp_path / "people.csv")
    os.chmod(home.creator_key_path, 0o644)  # signing will refuse the unsafe key
    with pytest.raises(DataHostError, match="chmod 600"):
        ingest_dataset(home, source, _terms(pii_policy=PiiPolicy.REDACT))
    assert list(home.redacted_dir.iterdir()) == []
    assert _registered_ids(home) == []


def test_a_header_that_is_pii_is_redacted_in_the_manifest_too(
    home: NodeHome, tmp_path: Path
) -> None:
    source = tmp_path / "odd.csv"
    source.write_text("bob@example.com,label\n" + "".join(f"{i},{i % 2}\n" for i in range(300)))
    result = ingest_dataset(home, source, _terms(pii_policy=PiiPolicy.REDACT))
    envelope = result.dataset.row.envelope
    assert b"bob@example.com" not in result.signed.envelope.payload
    assert b"bob@example.com" not in envelope
    assert result.signed.manifest.predicate["pii"]["findings"] == {"email": {"[PII:email]": 1}}


def test_hidden_files_in_a_dataset_folder_are_refused(home: NodeHome, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _csv(folder / "a.csv")
    (folder / ".notes.txt").write_text("bob@example.com 4111 1111 1111 1111\n")
    with pytest.raises(DatasetFormatError, match="hidden"):
        ingest_dataset(home, folder, _terms())
    assert _registered_ids(home) == []


def test_a_moved_home_keeps_using_its_own_database(home: NodeHome, tmp_path: Path) -> None:
    dataset_id = ingest_dataset(home, _csv(tmp_path / "a.csv"), _terms()).dataset.row.id
    home.engine.dispose()
    moved = tmp_path / "moved"
    home.root.rename(moved)
    from data_host.home import open_home

    reopened = open_home(moved)
    assert reopened.database_url.endswith("/moved/registry.db")
    assert _registered_ids(reopened) == [dataset_id]
