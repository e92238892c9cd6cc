"""Bring a database to the schema head, and refuse to run on a schema Beacon does not know."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from data_access.db import (
    DatabaseMissing,
    database_url,
    default_sqlite_path,
    describe_url,
    get_engine,
    create_sqlite_file,
    sqlite_file,
)

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
    """The database's revision; None for no schema (or an SQLite file not made yet)."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return None
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _newer_than_this_code(url: str | None, current: str) -> SchemaOutOfDate:
    where = describe_url(url)["display"]
    return SchemaOutOfDate(
        f"the database {where} is at schema revision {current}, which this version of Beacon "
        "does not know: a newer Beacon upgraded it. Run that version (or newer), or restore "
        "the backup taken before its upgrade; `db upgrade` cannot take a schema back")


def upgrade(url: str | None = None, revision: str = "head") -> str:
    """Migrate to `revision` (default head) in one transaction; returns the revision reached.
    SchemaOutOfDate for a schema a newer Beacon wrote (there is no way down from here)."""
    current = current_revision(url)
    if current is not None and current not in known_revisions():
        raise _newer_than_this_code(url, current)
    create_sqlite_file(url)
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
        raise _newer_than_this_code(url, current)
    raise SchemaOutOfDate(f"the database {where} {state}: run `python -m beacon db upgrade`")


def is_embedded_default(url: str | None = None) -> bool:
    """The SQLite file Beacon uses when DATABASE_URL is unset (./data/beacon.sqlite3)."""
    path = sqlite_file(url)
    return path is not None and path == default_sqlite_path()


def missing_text(path: Path) -> str:
    return (f"the SQLite database file {path} does not exist (nothing was created): load data "
            "with `python -m beacon demo-data` or `python -m beacon import --users … --events … "
            "--interactions …`, or set DATABASE_URL to the database you meant")


def require_file(url: str | None = None) -> None:
    """Raise DatabaseMissing for an SQLite URL whose file is not there (connecting would
    silently create an empty one)."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise DatabaseMissing(missing_text(path))


def ensure_schema(url: str | None = None, create: bool = False) -> None:
    """An SQLite file at an older Beacon schema is migrated on start (it is self-contained);
    a missing or schema-less one is made ready only when `create` (commands that load data, the
    console's first start of the embedded default) and refused with the command to run
    otherwise. Any other database must already be at head."""
    url = url or database_url()
    path = sqlite_file(url)
    if path is not None:
        if create:
            create_sqlite_file(url)
        else:
            require_file(url)
        current = current_revision(url)
        # A file with no schema at all is set up only by what may create a database, or when
        # it is the embedded default; an old Beacon schema in any SQLite file moves to head.
        may_set_up = create or is_embedded_default(url)
        if (current is None and may_set_up) or current in known_revisions():
            upgrade(url)
            return
    check_schema(url)
