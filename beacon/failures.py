"""One line for every failure a person can act on: the CLI's main and the console's frame both
ask `explain(error)`, so a database that is missing, busy, read-only, unreachable or named by a
bad URL reads the same everywhere, and neither front shows a traceback.

`explain` returns None for a genuine bug: the caller logs its traceback (`log_traceback`) and
shows one line naming the log.
"""
from __future__ import annotations

import logging
import os
import tempfile
import traceback
from pathlib import Path

from beacon.errors import BeaconError

log = logging.getLogger(__name__)

BUSY_HINT = "try again when it has finished"


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _where(url: str | None = None) -> str:
    from data_access.db import DatabaseUrlError, describe_url

    try:
        return describe_url(url)["display"]
    except DatabaseUrlError:
        return "named by DATABASE_URL"


def is_busy(error: BaseException) -> bool:
    """SQLite's write lock stayed held by another connection for the whole busy timeout."""
    return "database is locked" in str(getattr(error, "orig", None) or error)


def busy_text(url: str | None = None) -> str:
    """Who holds the database, as far as can be read (WAL readers are never blocked)."""
    holder = "another process is writing to it (an import, a demo-data load or a migration)"
    try:
        from data_access import runs

        run = runs.running_run("global")
        if run is not None:
            holder = (f"training run {run.id} is {run.status}"
                      + (f" (epoch {run.epoch}/{run.total_epochs})" if run.total_epochs else "")
                      + ", or another process is writing")
    except Exception:  # noqa: BLE001 - the answer is still "busy"
        pass
    return f"the database {_where(url)} is busy: {holder}; {BUSY_HINT}"


def explain(error: BaseException, url: str | None = None) -> str | None:
    """The one line to show for `error`, or None when it is a bug (log it, show its name)."""
    from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

    from data_access.db import DatabaseMissing, DatabaseUrlError, TextWithNul
    from data_access.migrate import SchemaOutOfDate

    if isinstance(error, (BeaconError, DatabaseUrlError, DatabaseMissing, SchemaOutOfDate,
                          TextWithNul)):
        return str(error)
    if isinstance(error, StatementError) and isinstance(error.orig, TextWithNul):
        return str(error.orig)
    if isinstance(error, StatementError) and isinstance(error.orig, OverflowError):
        return f"a number is too large for the database: {_first_line(error)}"
    if isinstance(error, OperationalError) or isinstance(error, DBAPIError) \
            and error.connection_invalidated:
        detail = _first_line(error)
        if is_busy(error):
            return busy_text(url)
        if "readonly database" in detail or "read-only" in detail:
            return (f"the database {_where(url)} is read-only ({detail}): Beacon cannot write "
                    "to it; check the file's and its folder's permissions")
        if "unable to open database file" in detail:
            return (f"cannot open the database {_where(url)} ({detail}): does its folder exist "
                    "and may this user write there?")
        return f"cannot use the database {_where(url)}: {detail}"
    if isinstance(error, DBAPIError):
        detail = _first_line(error)
        if "read-only transaction" in detail:
            return (f"the database {_where(url)} is read-only ({detail}): Beacon cannot write "
                    "to it; check the role's or the server's read-only setting")
        return f"the database {_where(url)} refused the request: {detail}"
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return None


def log_file() -> Path:
    """Where tracebacks go: BEACON_LOG_FILE, else beacon-errors.log in the temp folder."""
    configured = os.environ.get("BEACON_LOG_FILE", "").strip()
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "beacon-errors.log"


def log_traceback(error: BaseException, context: str = "") -> str:
    """Append the traceback to the log file; return one line that names it."""
    path = log_file()
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"--- {context or 'beacon'} (pid {os.getpid()})\n{text}\n")
        where = f"the traceback is in {path}"
    except OSError:
        log.error("%s", text)
        where = "the traceback went to the server log"
    return f"unexpected {type(error).__name__}: {_first_line(error)} ({where})"


def one_line(error: BaseException, url: str | None = None, context: str = "") -> str:
    """explain(error), or the logged-traceback line for a bug."""
    return explain(error, url) or log_traceback(error, context)
