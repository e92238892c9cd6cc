"""One place that turns DATABASE_URL into an engine and hands out managed sessions."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")
DEFAULT_SQLITE_PATH = Path("data") / "beacon.sqlite3"
#: how long an SQLite statement waits for another process's write lock before "busy";
#: BEACON_SQLITE_BUSY_TIMEOUT_MS overrides it (a script that would rather fail fast)
SQLITE_BUSY_TIMEOUT_MS = int(os.environ.get("BEACON_SQLITE_BUSY_TIMEOUT_MS", "") or 30_000)

#: a pooled server connection idle longer than this is pinged before it is handed out (one
#: round trip); one returned more recently is trusted, so a busy server pays no ping per
#: checkout. A connection dropped inside that second fails one statement, which invalidates
#: the pool (every older connection is replaced); reads that may run twice retry once
#: (`run_retrying`). BEACON_DB_PING_AFTER_IDLE_S overrides it (0: ping every checkout).
PING_AFTER_IDLE_S = float(os.environ.get("BEACON_DB_PING_AFTER_IDLE_S", "") or 1.0)
#: connections older than this are closed and replaced (server-side idle timeouts, failovers)
POOL_RECYCLE_S = 1800

_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker] = {}
_engines_lock = threading.Lock()


class DatabaseUrlError(ValueError):
    """DATABASE_URL cannot be used as written: not a URL, an unknown or missing driver, an
    SQLite folder that cannot be made. The message says which, without the password."""


class DatabaseMissing(LookupError):
    """An SQLite database file that does not exist where only an existing one may be used."""


def database_url() -> str:
    """The URL in force: DATABASE_URL, or the embedded SQLite file under ./data/. Nothing is
    created here: see `sqlite_file` and migrate.ensure_schema."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    return f"sqlite:///{default_sqlite_path()}"


def default_sqlite_path() -> Path:
    return DEFAULT_SQLITE_PATH.resolve()


def parse_url(url: str):
    """make_url with one clear error for anything that is not a database URL."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError) as error:
        raise DatabaseUrlError(
            f"DATABASE_URL {_redacted(url)!r} is not a database URL ({error}); expected e.g. "
            "postgresql+psycopg://user:password@host:5432/name or sqlite:///path/to/file.sqlite3"
        ) from None


def _redacted(url: str) -> str:
    """The raw text with anything between '://user:' and '@' hidden (it may be a password)."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}://{user}{':***' if ':' in credentials else ''}@{host}"


def sqlite_file(url: str | None = None) -> Path | None:
    """The file of an SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = parse_url(url or database_url())
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def create_sqlite_file(url: str | None = None) -> bool:
    """Create an SQLite file and its folder when missing (only what may create a database
    calls this: `db upgrade`, import, demo-data, the console's first start). True when made."""
    path = sqlite_file(url)
    if path is None or path.exists():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
    except OSError as error:
        raise DatabaseUrlError(f"cannot make the folder {path.parent} for the SQLite database: "
                               f"{error.strerror or error}") from None
    except sqlite3.Error as error:
        raise DatabaseUrlError(f"cannot create the SQLite database {path}: {error}") from None
    return True


def _sqlite_opener(path: Path, options: dict):
    uri = f"file:{quote(str(path))}?mode=rw"

    def connect():
        return sqlite3.connect(uri, uri=True, timeout=options["timeout"],
                               check_same_thread=False)
    return connect


def describe_url(url: str | None = None) -> dict[str, str]:
    """Dialect, host and database name of a URL, never its password."""
    parsed = parse_url(url or database_url())
    return {
        "dialect": parsed.get_backend_name(),
        "host": parsed.host or "",
        "database": parsed.database or "",
        "display": parsed.render_as_string(hide_password=True),
    }


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _build_engine(url: str) -> Engine:
    parsed = parse_url(url)
    try:
        return _create_engine(url, parsed)
    except (NoSuchModuleError, ImportError) as error:
        raise DatabaseUrlError(
            f"DATABASE_URL names the driver {parsed.drivername!r}, which is not installed or "
            f"unknown ({error}); for Postgres use postgresql+psycopg://…"
        ) from None
    except ArgumentError as error:
        raise DatabaseUrlError(f"DATABASE_URL {parsed.render_as_string(hide_password=True)} "
                               f"cannot be used: {error}") from None


def _create_engine(url: str, parsed) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        connect_args: dict = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                              "check_same_thread": False}
        if path is not None:
            # Connections open the file read-write and never create it: a deleted or moved
            # database is an error, not a new empty one (create_sqlite_file makes it on purpose).
            connect_args["creator"] = _sqlite_opener(path, connect_args)
        creator = connect_args.pop("creator", None)
        engine = create_engine(url, connect_args=connect_args,
                               **({"creator": creator} if creator else {}))
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=5, max_overflow=10, pool_recycle=POOL_RECYCLE_S)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pool_pre_ping, only for connections idle longer than PING_AFTER_IDLE_S.
    A failed ping raises DisconnectionError, on which the pool drops that connection and
    checks out another (a fresh one when the server restarted)."""
    @event.listens_for(engine, "checkin")
    def returned(_dbapi_connection, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection, record, _proxy) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_S:
            return  # just connected, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failed ping means "not usable"
            raise DisconnectionError(f"pooled connection failed its ping: {error}") from error


class TextWithNul(ValueError):
    """A NUL character in text sent to the database (no column can hold it)."""


def _refuse_nul(_connection, _cursor, _statement, parameters, _context, executemany) -> None:
    """Both dialects refuse text with NUL the same way: one clear error before the driver
    (Postgres would raise deep inside it; SQLite would store it). Bulk writes check their rows
    themselves (the importer names file, line and column)."""
    if executemany or not parameters:
        return
    values = parameters.values() if isinstance(parameters, dict) else parameters
    for value in values:
        if isinstance(value, str) and "\x00" in value:
            raise TextWithNul(f"text with a NUL character (\\x00) cannot be stored or "
                              f"searched for: {value[:60]!r}")


def get_engine(url: str | None = None) -> Engine:
    """A process-wide engine per URL (engines pool connections; build each once)."""
    url = url or database_url()
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _build_engine(url)
            event.listen(engine, "before_cursor_execute", _refuse_nul)
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and after a fork)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _sessionmakers.clear()


def _sessionmaker(url: str) -> sessionmaker:
    """One factory per engine: sessionmaker() builds a Session subclass, too slow per request."""
    engine = get_engine(url)
    factory = _sessionmakers.get(url)
    if factory is None or factory.kw["bind"] is not engine:
        factory = _sessionmakers[url] = sessionmaker(bind=engine, expire_on_commit=False)
    return factory


def run_retrying(work: Callable[[Connection], T], url: str | None = None) -> T:
    """Run `work` on one pooled connection in autocommit mode (no BEGIN / COMMIT round trips:
    each statement commits alone), once more on a fresh connection when the first was found
    dropped (a server restart). Only for work that may safely run twice: reads, and writes
    that are no-ops when repeated."""
    engine = get_engine(url)
    for attempt in (1, 2):
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                return work(connection)
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, always close."""
    session = _sessionmaker(url or database_url())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
