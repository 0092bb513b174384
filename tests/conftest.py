"""Shared fixtures: database engines for every backend the stores support."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from provenance.storage import make_engine, sqlite_url

#: The PostgreSQL server tests may use; `.ci/run` sets it when the server answers.
POSTGRES_ENV = "TALLY_TEST_DATABASE_URL"
POSTGRES_URL = os.environ.get(POSTGRES_ENV, "")


def _postgres_available() -> bool:
    if not POSTGRES_URL:
        return False
    try:
        engine = make_engine(POSTGRES_URL)
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def _skip_without_postgres() -> None:
    if not POSTGRES_URL:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests are skipped")
    if not _postgres_available():
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is not reachable")


@contextmanager
def _postgres_schema(tmp_path: Path) -> Iterator[str]:
    """A private, empty schema on the PostgreSQL server; yields a URL that uses it."""
    schema = f"t_{tmp_path.name.lower().replace('-', '_')[:40]}_{secrets.token_hex(3)}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "store.db")
        return
    _skip_without_postgres()
    with _postgres_schema(tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A fresh, empty database engine on every backend the stores support."""
    created = make_engine(database_url)
    yield created
    created.dispose()


#: Modules that take minutes (real Flower processes): collected first. Run in one process
#: (``-n 0``) they then run first; xdist's two workers order modules by their test count
#: (starting both at once on a 2-vCPU machine made the suite slower, as they contend).
FIRST_MODULES = (
    "tests/coordinator/test_training_faults_e2e.py",
    "tests/cli/test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put ``FIRST_MODULES`` first, in that order; every other test keeps its place."""

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return FIRST_MODULES.index(module) if module in FIRST_MODULES else len(FIRST_MODULES)

    items.sort(key=rank)
