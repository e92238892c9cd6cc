"""Bring a database to the schema head, and refuse to run on a schema Beacon does not know."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from data_access.db import database_url, describe_url, get_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database is not at the revision this code was written for."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(url: str | None = None) -> str | None:
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str | None = None, revision: str = "head") -> str:
    """Migrate to `revision` (default head) in one transaction; returns the revision reached."""
    engine = get_engine(url)
    config = _config()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild tables; with foreign keys on, dropping the old copy
            # would run its ON DELETE actions (SET NULL, CASCADE) on the rows pointing at it.
            # The pragma only takes effect outside a transaction.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left dangling references: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    return current_revision(url)


def check_schema(url: str | None = None) -> None:
    """Raise SchemaOutOfDate with the command to run when the database is not at head."""
    current, head = current_revision(url), head_revision()
    if current == head:
        return
    where = describe_url(url)["display"]
    if current is None:
        state = "has no Beacon schema"
    elif current in known_revisions():
        state = f"is at schema revision {current}, this code needs {head}"
    else:
        state = f"is at schema revision {current}, which this version of Beacon does not know"
    raise SchemaOutOfDate(f"the database {where} {state}: run `python -m beacon db upgrade`")


def is_embedded_default(url: str | None = None) -> bool:
    return make_url(url or database_url()).get_backend_name() == "sqlite"


def ensure_schema(url: str | None = None) -> None:
    """The embedded SQLite default is migrated on start; any other database must already be."""
    if is_embedded_default(url):
        current = current_revision(url)
        if current is None or current in known_revisions():
            upgrade(url)
            return
    check_schema(url)
