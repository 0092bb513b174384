"""Replay defence: every capability token (``jti``) and round nonce is used once on a node.

The node records each token id and nonce it accepts in its own database before it opens
any data; a second message carrying either is refused, whoever sends it. The insert is
the check (both columns are unique), so two ClientApp processes racing with the same
token cannot both pass.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from data_host.errors import WorkRefused
from provenance.storage import write_transaction


class SeenCapability(SQLModel, table=True):
    """A token id and round nonce this node accepted once."""

    __tablename__ = "host_seen_capability"

    jti: str = Field(primary_key=True, max_length=128)
    nonce: str = Field(max_length=128, unique=True)
    job_id: str = Field(max_length=128)
    round_number: int
    operation: str = Field(max_length=16)
    seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    note: str = Field(default="", sa_column=Column(Text, nullable=False))


SEEN_TABLE: Table = SeenCapability.__table__  # type: ignore[attr-defined]


def use_once(
    engine: Engine, *, jti: str, nonce: str, job_id: str, round_number: int, operation: str
) -> None:
    """Record ``jti`` and ``nonce`` as used; ``WorkRefused`` if either was seen before."""
    try:
        with write_transaction(engine) as conn:
            for column, value, what in (
                (SEEN_TABLE.c.jti, jti, "capability token"),
                (SEEN_TABLE.c.nonce, nonce, "round nonce"),
            ):
                seen = conn.execute(
                    select(SEEN_TABLE.c.job_id, SEEN_TABLE.c.round_number).where(column == value)
                ).first()
                if seen is not None:
                    raise WorkRefused(
                        f"replay: this {what} was already used (job {seen.job_id}, round "
                        f"{seen.round_number}); every token and nonce is accepted once"
                    )
            conn.execute(
                insert(SEEN_TABLE).values(
                    jti=jti,
                    nonce=nonce,
                    job_id=job_id,
                    round_number=round_number,
                    operation=operation,
                    seen_at=datetime.now(UTC),
                    note="",
                )
            )
    except IntegrityError as exc:  # a concurrent process inserted the same jti or nonce
        raise WorkRefused("replay: this capability token or round nonce was already used") from exc
