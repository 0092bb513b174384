"""The coordinator's Alembic migrations against its SQLModel tables, on every backend.

Upgrading to head must build exactly the tables the code declares (autogenerate finds no
difference), downgrading to base must remove them all, and the service must refuse to
open a database that is not at head, telling the operator the command that fixes it.
Each test gets a fresh database from the ``database_url`` fixture: a SQLite file, or a
private PostgreSQL schema when ``TALLY_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect

from billing.tables import BILLING_TABLES
from coordinator.database import current_revision, downgrade, head_revision, migrate, open_engine
from coordinator.errors import ConfigError
from coordinator.home import init_coordinator_home
from coordinator.service import open_coordinator
from coordinator.tables import COORDINATOR_TABLES
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.tables import LOG_TABLES

#: Alembic's own bookkeeping table, which outlives a downgrade to base.
VERSION_TABLE = "alembic_version"


def model_metadata() -> MetaData:
    """Every table the migrations manage: the coordinator's, its ledger's and its log's."""
    metadata = MetaData()
    for table in [*COORDINATOR_TABLES, *BILLING_TABLES, *LOG_TABLES]:
        table.to_metadata(metadata)
    return metadata


@pytest.fixture
def fresh(database_url: str) -> Iterator[Engine]:
    """An engine on an empty database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def user_tables(engine: Engine) -> set[str]:
    """The tables in the database, besides Alembic's version table."""
    return set(inspect(engine).get_table_names()) - {VERSION_TABLE}


def test_head_builds_exactly_the_models(fresh: Engine) -> None:
    assert current_revision(fresh) is None
    migrate(fresh)
    assert current_revision(fresh) == head_revision()
    metadata = model_metadata()
    assert user_tables(fresh) == set(metadata.tables)
    with fresh.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_migrating_twice_changes_nothing(fresh: Engine) -> None:
    migrate(fresh)
    tables = user_tables(fresh)
    migrate(fresh)
    assert current_revision(fresh) == head_revision()
    assert user_tables(fresh) == tables


def test_downgrade_to_base_removes_every_table(fresh: Engine) -> None:
    migrate(fresh)
    assert user_tables(fresh)
    downgrade(fresh, "base")
    assert user_tables(fresh) == set()
    assert current_revision(fresh) is None
    # ...and the way back up still works.
    migrate(fresh)
    assert user_tables(fresh) == set(model_metadata().tables)


def test_open_engine_refuses_an_unmigrated_database(database_url: str, fresh: Engine) -> None:
    with pytest.raises(ConfigError, match="tally coordinator migrate") as refused:
        open_engine(database_url)
    assert "revision none" in str(refused.value)
    assert head_revision() in str(refused.value)


def test_open_engine_refuses_a_downgraded_database(database_url: str, fresh: Engine) -> None:
    migrate(fresh)
    opened = open_engine(database_url)
    opened.dispose()
    downgrade(fresh, "base")
    with pytest.raises(ConfigError, match="tally coordinator migrate"):
        open_engine(database_url)


def test_the_service_refuses_to_start_on_an_unmigrated_database(
    tmp_path: Path, database_url: str, fresh: Engine
) -> None:
    home = init_coordinator_home(tmp_path / "coordinator", "test", dev_mode=True)
    with pytest.raises(ConfigError, match="tally coordinator migrate"):
        open_coordinator(home, database_url=database_url)
    # The embedded SQLite database of a new home is not migrated either.
    with pytest.raises(ConfigError, match="tally coordinator migrate"):
        open_coordinator(home)


def test_migrate_accepts_a_url_with_percent_escapes(tmp_path: Path, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        folder = tmp_path / "50%off"
        folder.mkdir()
        url = sqlite_url(folder / "store.db")
    else:
        url = database_url  # the private schema travels as options=-csearch_path%3D<schema>
    engine = make_engine(url)
    try:
        assert "%" in engine.url.render_as_string(hide_password=False)
        migrate(engine)
        assert current_revision(engine) == head_revision()
        open_engine(url).dispose()
    finally:
        engine.dispose()
