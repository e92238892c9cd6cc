"""The serving API's few statements per request, on one Postgres connection per thread,
through the driver.

Measured on the load benchmark's database (two reads of a recommendation): 0.11 ms of CPU
through psycopg on a held connection against 0.49 ms through SQLAlchemy's Connection on a
held connection and 0.6-0.8 ms with a pool checkout (the checkout, its isolation switch and
its reset on return). At the API's few milliseconds per answer that is a sixth of its CPU.

Only where the API turned it on (`enable`, in its lifespan) and only on Postgres: elsewhere
`attempt` answers UNAVAILABLE and the caller runs its usual SQLAlchemy path. Any driver
error drops the thread's connection and answers UNAVAILABLE too, so the caller's usual path
(with its retry on a dropped connection, and its errors) runs instead: only reads, and writes
that are no-ops when repeated, belong here. Statements are SQLAlchemy's own, rendered once
for the engine's dialect with their constants written in; bound values and results go
through the columns' own type processors."""
from __future__ import annotations

import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.sql import Executable

T = TypeVar("T")
Fetch = Callable[["Statement", Mapping[str, Any]], list]


class _Unavailable:
    def __repr__(self) -> str:
        return "UNAVAILABLE"


#: what `attempt` answers when the caller must take its usual path
UNAVAILABLE: Any = _Unavailable()


class Statement:
    """A statement whose parameters are named in `parameters`; rendered per dialect once."""

    def __init__(self, statement: Executable, *parameters: str) -> None:
        self.statement = statement
        self.parameters = parameters
        self._rendered: dict[int, tuple[str, dict, Any, list]] = {}
        self._results: dict[tuple, list] = {}

    def rendered(self, engine: Engine) -> tuple[str, dict, Any, list]:
        """(SQL text, bind processors by name, row type or None, selected columns)."""
        key = id(engine.dialect)
        found = self._rendered.get(key)
        if found is None:
            found = self._rendered[key] = self._render(engine)
        return found

    def _render(self, engine: Engine) -> tuple[str, dict, Any, list]:
        dialect = engine.dialect
        try:  # values for the parameters, so that constants can be rendered in
            statement = self.statement.params({name: None for name in self.parameters})
            options = {"render_postcompile": True}
        except NotImplementedError:  # INSERT / UPDATE / DELETE: their constants are literal
            statement, options = self.statement, {}
        compiled = statement.compile(dialect=dialect, compile_kwargs=options)
        binds = {name: compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                 for name in self.parameters}
        columns = list(getattr(self.statement, "selected_columns", ()))
        row_type = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None
        return str(compiled), {k: p for k, p in binds.items() if p}, row_type, columns

    def result_processors(self, engine: Engine, description) -> list:
        """The columns' result processors, for the driver's column types (known once run)."""
        key = (id(engine.dialect), tuple(d.type_code for d in description))
        found = self._results.get(key)
        if found is None:
            dialect = engine.dialect
            columns = self.rendered(engine)[3]
            found = self._results[key] = [
                c.type.dialect_impl(dialect).result_processor(dialect, d.type_code)
                for c, d in zip(columns, description)]
        return found


class _Closer:
    """Closes its connection when collected: a thread's locals are dropped when the thread
    ends (anyio retires an endpoint thread idle for 10 s), and its connection must not stay
    open behind it."""

    def __init__(self, connection) -> None:
        self.connection = connection

    def __del__(self) -> None:
        _close(self.connection)


class _Held(threading.local):
    engine: Engine | None = None
    connection: Any = None
    closer: _Closer | None = None


_held = _Held()
#: called with each statement's text before it runs (what SQLAlchemy's before_cursor_execute
#: event is to its own path: for counting statements)
observers: list[Callable[[str], None]] = []
_open: weakref.WeakSet = weakref.WeakSet()  # every open pinned connection, for disable()
_lock = threading.Lock()
_enabled = False


def enable() -> None:
    """Use pinned connections in this process (the API's lifespan)."""
    global _enabled
    _enabled = True


def disable() -> None:
    """Stop, and close every pinned connection of this process."""
    global _enabled
    _enabled = False
    with _lock:
        held = list(_open)
        _open.clear()
    for connection in held:
        _close(connection)


def _close(connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone
        pass


def _drop() -> None:
    connection, _held.connection, _held.engine = _held.connection, None, None
    _held.closer = None
    if connection is not None:
        with _lock:
            _open.discard(connection)
        _close(connection)


def _connection(engine: Engine):
    if _held.engine is not engine or _held.connection is None or _held.connection.closed:
        _drop()
        pooled = engine.raw_connection()  # the engine's URL, options and connect events
        connection = pooled.driver_connection
        pooled.detach()
        connection.autocommit = True
        with _lock:
            _open.add(connection)
        _held.engine, _held.connection = engine, connection
        _held.closer = _Closer(connection)
    return _held.connection


def attempt(engine: Engine, work: Callable[[Fetch], T]) -> T:
    """work(fetch) on this thread's pinned connection, where fetch(statement, values) returns
    the statement's rows; UNAVAILABLE when pinned connections are off here, or the driver
    failed (the connection is then dropped)."""
    if not _enabled or engine.dialect.name != "postgresql":
        return UNAVAILABLE
    import psycopg
    from sqlalchemy.exc import DBAPIError

    try:
        connection = _connection(engine)

        def fetch(statement: Statement, values: Mapping[str, Any]) -> list:
            sql, binds, row_type, _columns = statement.rendered(engine)
            if binds:
                values = {k: (binds[k](v) if k in binds else v) for k, v in values.items()}
            for observe in observers:
                observe(sql)
            cursor = connection.execute(sql, values)
            if row_type is None:
                return []
            rows = cursor.fetchall()
            results = statement.result_processors(engine, cursor.description)
            if any(results):
                rows = [tuple(p(v) if p else v for p, v in zip(results, row)) for row in rows]
            return [row_type._make(row) for row in rows]

        return work(fetch)
    except (psycopg.Error, DBAPIError):  # DBAPIError: from opening the connection
        _drop()
        return UNAVAILABLE
