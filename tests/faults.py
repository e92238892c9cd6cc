"""Real faults for tests: the database goes away (the SQLite file moved, the Postgres schema
renamed) and comes back as it was. No mocks: the code under test meets the real errors."""
from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from data_access.db import dispose_engines, get_engine
from tests.conftest import _admin


def _schema(url: str) -> str:
    return make_url(url).query["options"].split("=", 1)[1]


@contextlib.contextmanager
def database_gone(url: str):
    """Inside the block every new connection or statement fails; after it, all is back."""
    dispose_engines()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        moved = [(p, p.with_name(p.name + ".away")) for p in
                 (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
                 if p.exists()]
        for source, target in moved:
            source.rename(target)
        try:
            yield
        finally:
            for source, target in moved:
                target.rename(source)
        return
    schema = _schema(url)
    _admin(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_away"')
    try:
        yield
    finally:
        _admin(f'ALTER SCHEMA "{schema}_away" RENAME TO "{schema}"')


def refuse_inserts(url: str, table: str, message: str) -> None:
    """The database itself refuses new rows of `table` (a trigger that raises): a write that
    fails while every read still works."""
    if make_url(url).get_backend_name() == "sqlite":
        statements = [f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                      f"BEGIN SELECT RAISE(ABORT, '{message}'); END"]
    else:
        statements = [
            f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"]
    with get_engine(url).begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
