"""Log records: leaves pointing at stored envelopes, and their strict parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.canonical import sha256_hex
from provenance.errors import LogError
from provenance.keys import SigningKey
from provenance.note import NoteSigner
from provenance.statement import Statement, Subject, predicate_type, sign_statement
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.log import TransparencyLog
from provenance.tlog.records import (
    ENVELOPE_MEDIA_TYPE,
    LogRecord,
    append_records,
    envelope_bytes,
)

CREATOR = SigningKey.from_seed(b"\x05" * 32)


def signed(name: str) -> tuple[str, object, Statement]:
    statement = Statement(
        (Subject(name, {"sha256": sha256_hex(name.encode())}),), predicate_type("dataset-manifest")
    )
    return "dataset-manifest", sign_statement(statement, [CREATOR]), statement


def test_records_point_at_envelopes_stored_in_the_same_append(tmp_path: Path) -> None:
    log = TransparencyLog.create(
        make_engine(sqlite_url(tmp_path / "log.db")),
        NoteSigner("records.example/log", SigningKey.generate()),
    )
    items = [signed("a"), signed("b")]
    result = append_records(log, items)  # type: ignore[arg-type]
    assert result.indexes == (0, 1)
    for index, (_, envelope, statement) in enumerate(items):
        record = LogRecord.from_entry(log.entry(index))
        assert record.record_type == "dataset-manifest"
        assert record.subjects == (f"sha256:{statement.subjects[0].digest['sha256']}",)
        blob = log.blob(record.envelope_sha256)
        assert blob.media_type == ENVELOPE_MEDIA_TYPE
        assert blob.data == envelope_bytes(envelope)  # type: ignore[arg-type]
    # The same envelopes again: content-addressed, nothing new.
    assert append_records(log, items).new_entries == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (b'{"type":"x","envelope":"sha256:00"}', "exactly 'type', 'envelope' and 'subjects'"),
        (b'{"envelope":"md5:00","subjects":[],"type":"x"}', "'sha256:<hex>'"),
        (b'{"envelope":"sha256:00","subjects":[1],"type":"x"}', "list of strings"),
        (b'{"envelope":"sha256:00","subjects":[],"type":"Bad Type"}', "lowercase word"),
        (b'{"type":"x","envelope":"sha256:00","subjects":[]}', "not in canonical form"),
        (b'{"envelope":"sha256:00","envelope":"sha256:00"}', "more than once"),
        (b"not json", "not valid JSON"),
    ],
)
def test_malformed_records_are_rejected(entry: bytes, message: str) -> None:
    with pytest.raises(LogError, match=message):
        LogRecord.from_entry(entry)


def test_record_entry_is_canonical_json() -> None:
    record = LogRecord("usage-receipt", "ab" * 32, ("sha256:" + "cd" * 32,))
    assert json.loads(record.to_entry()) == {
        "envelope": "sha256:" + "ab" * 32,
        "subjects": ["sha256:" + "cd" * 32],
        "type": "usage-receipt",
    }
    assert LogRecord.from_entry(record.to_entry()) == record
