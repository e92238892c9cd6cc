"""Real faults for tests: the database goes away (the SQLite file moved, the Postgres schema
renamed) and comes back as it was. No mocks: the code under test meets the real errors."""
from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from data_access.db import dispose_engines
from tests.conftest import POSTGRES_URL


def _schema(url: str) -> str:
    return make_url(url).query["options"].split("=", 1)[1]


def _admin(sql: str) -> None:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(sql))
    finally:
        admin.dispose()


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
