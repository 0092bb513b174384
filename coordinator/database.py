"""The coordinator's database: engine, Alembic migrations, and write sessions.

The schema is Alembic's business alone: ``migrate`` brings a database (SQLite or
PostgreSQL) to the newest revision, and the service refuses to start on one that is
behind. Services write through ``writing``, which holds the database write lock for the
whole transaction, so that checks and the changes they allow cannot interleave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from coordinator.errors import ConfigError
from provenance.storage import make_engine, write_transaction

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration pointing at the packaged migrations and ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser reads "%" as interpolation: a URL's percent-escapes (a PostgreSQL
    # search_path option, an escaped password) must be doubled to arrive unchanged.
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise ConfigError("no database migrations are packaged")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the newest)."""
    config = alembic_config(engine)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot migrate the database: {exc.__class__.__name__}: {exc}") from exc


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the database to ``revision`` (``base`` removes every table)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def open_engine(url: str) -> Engine:
    """An engine for ``url``, refusing a database that is not at the newest revision."""
    try:
        engine = make_engine(url)
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot open database {_safe(url)}: {exc}") from exc
    if revision != head_revision():
        engine.dispose()
        raise ConfigError(
            f"database {_safe(url)} is at revision {revision or 'none'}, not "
            f"{head_revision()}; run: tally coordinator migrate"
        )
    return engine


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """A session in a transaction that holds the write lock; commits when the block ends."""
    with write_transaction(engine) as connection, Session(bind=connection) as session:
        yield session
        session.flush()


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A read-only session."""
    with Session(engine) as session:
        yield session


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
