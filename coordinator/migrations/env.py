"""Alembic environment for the coordinator's database (run by ``coordinator.database``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData

from billing.tables import BILLING_TABLES
from coordinator.tables import COORDINATOR_TABLES
from provenance.storage import make_engine
from provenance.tlog.tables import LOG_TABLES


def target_metadata() -> MetaData:
    """The tables the migrations manage: the coordinator's, its ledger's and its log's."""
    metadata = MetaData()
    for table in [*COORDINATOR_TABLES, *BILLING_TABLES, *LOG_TABLES]:
        table.to_metadata(metadata)
    return metadata


def run_migrations() -> None:
    """Run the migrations online, on the connection the caller passed or a new engine."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata())
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata())
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
