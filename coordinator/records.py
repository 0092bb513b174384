"""Records the coordinator signs and logs itself: job events and dataset revocations.

Each is an in-toto Statement under the project's predicate prefix, signed by the
coordinator key into a DSSE envelope and appended to the transparency log in the caller's
write transaction, so that a state change and its record commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from provenance.keys import SigningKey
from provenance.statement import Statement, Subject, predicate_type, sign_statement
from provenance.tlog.log import TransparencyLog
from provenance.tlog.records import append_records

JOB_EVENT_PREDICATE = predicate_type("job-event")
DATASET_REVOCATION_PREDICATE = predicate_type("dataset-revocation")
#: Log record types, as they appear in log leaves.
JOB_EVENT_RECORD = "job-event"
DATASET_MANIFEST_RECORD = "dataset-manifest"
DATASET_REVOCATION_RECORD = "dataset-revocation"


def log_signed_record(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    *,
    record_type: str,
    subject: tuple[str, str],
    predicate_type_uri: str,
    predicate: Mapping[str, Any],
) -> int:
    """Sign a Statement about ``subject`` (name, sha256 hex) and log it; return its index."""
    statement = Statement(
        subjects=(Subject(subject[0], {"sha256": subject[1]}),),
        predicate_type=predicate_type_uri,
        predicate=dict(predicate),
    )
    envelope = sign_statement(statement, [key])
    result = append_records(
        log, [(record_type, envelope, statement)], connection=session.connection()
    )
    return result.indexes[0]
