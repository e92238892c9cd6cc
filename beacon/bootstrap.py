"""What the console does when it starts: bring the schema up, recover abandoned training runs,
and, on the embedded SQLite default with an empty database, load demo data and train a first
model in the background so that a newcomer sees real content.

State that other processes must see lives in the database: the first training is an ordinary
training run row (any console process shows its progress), and demo loading refuses to run on a
database that already has data, so two processes cannot both load it. What only this process
knows (how far its own demo load has got) is kept in a process-wide job object.
"""
from __future__ import annotations

import importlib
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timezone

from beacon.actions import SYSTEM
from beacon.errors import BeaconError
from beacon.invocation import beacon_command
from data_access import catalog, migrate, runs
from data_access.db import create_sqlite_file, database_url, describe_url, sqlite_file

FIRST_START_BY = SYSTEM.name
#: the demo platform and model settings of a first start (None: ModelConfig's defaults)
FIRST_START_DEMO: dict = {}
FIRST_START_CONFIG = None


class DatabaseNotReady(BeaconError):
    """The database cannot be used as it is; the message says why. `needs_upgrade`: the fix is
    `python -m beacon db upgrade` (otherwise it could not be reached or opened)."""

    def __init__(self, message: str, needs_upgrade: bool):
        super().__init__(message)
        self.needs_upgrade = needs_upgrade


def prepare(url: str | None = None) -> list[int]:
    """Schema at head (SQLite files migrate themselves; the embedded default is created when it
    never existed; any other database must already be there) and abandoned runs recovered.
    Returns the ids of the runs it marked abandoned. Raises DatabaseNotReady with one line."""
    from beacon.failures import explain

    url = url or database_url()
    try:
        created = _create_embedded_default(url)
        migrate.ensure_schema(url)
        if created:
            _FRESH.add(url)
        return [run.id for run in runs.recover_abandoned()]
    except migrate.SchemaOutOfDate as error:
        raise DatabaseNotReady(str(error), needs_upgrade=True) from error
    except DatabaseNotReady:
        raise
    except Exception as error:  # unreachable server, bad credentials, a bad URL, …
        message = explain(error, url)
        if message is None:
            raise
        raise DatabaseNotReady(message, needs_upgrade=False) from error


#: embedded databases this process created at its start: the only ones demo data loads into
#: by itself (a file that existed and is now empty or gone is never refilled with fake data)
_FRESH: set[str] = set()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".created")


def _create_embedded_default(url: str) -> bool:
    """Create the embedded default database when it never existed; True when made here.

    A marker file beside it remembers that it existed: if the database is later deleted, the
    console says so instead of starting over with demo data."""
    if not migrate.is_embedded_default(url):
        return False
    path = sqlite_file(url)
    marker = _marker(path)
    if path.exists():
        if not marker.exists():
            _write_marker(marker)
        return False
    if marker.exists():
        raise DatabaseNotReady(
            f"the database file {path} is gone (it existed before, as {marker.name} beside it "
            "records): restore it; or, to start anew with demo data, delete "
            f"{marker} and reload", needs_upgrade=False)
    create_sqlite_file(url)
    _write_marker(marker)
    return True


def _write_marker(marker: Path) -> None:
    try:
        marker.write_text("Beacon created the database beside this file; while this file is "
                          "here, a missing database is reported, never recreated.\n")
    except OSError:  # a read-only folder: the database itself will say so
        pass


def check_database(url: str | None = None) -> None:
    """Every console run: an SQLite file deleted under a running console is an error at once
    (a connection would otherwise keep using the deleted file unnoticed)."""
    url = url or database_url()
    try:
        migrate.require_file(url)
    except Exception as error:
        from beacon.failures import explain

        raise DatabaseNotReady(explain(error, url) or str(error), needs_upgrade=False) from error


def first_admin(url: str | None = None, out=None) -> bool:
    """On the embedded default with no operator yet: create the first administrator and print
    its random password to this server's terminal, once (nobody who only reaches the port can
    claim the console). Elsewhere operators are added with `python -m beacon operators add`.
    True when it created one."""
    import sys

    from beacon.operators import FIRST_ADMIN_EMAIL, ensure_first_admin

    url = url or database_url()
    if not migrate.is_embedded_default(url):
        return False
    password = ensure_first_admin()
    if password is None:
        return False
    rule = "=" * 72
    print(f"\n{rule}\nBeacon: the first administrator was created for this console.\n"
          f"  sign in as: {FIRST_ADMIN_EMAIL}\n  password:   {password}\n"
          "This password is shown only now. Add your own operators with\n"
          f"  {beacon_command('operators add you@example.org --role admin')}\n"
          f"and replace this one with `{beacon_command('operators reset-password')} "
          f"{FIRST_ADMIN_EMAIL}`.\n{rule}\n", file=out or sys.stderr, flush=True)
    return True


# --------------------------------------------------------------------------------------------
# First start

@dataclass(frozen=True)
class FirstStart:
    """Where the first start stands.

    kind: "ready" (show the console), "needs_data" (a database that is not the embedded default
    and is empty: say how to import or load demo data), "loading" (demo data being loaded by
    this process), "training" (the first model being trained), "failed".
    """

    kind: str
    message: str = ""
    fraction: float | None = None
    run_id: int | None = None
    epoch: int | None = None
    total_epochs: int | None = None
    progress: tuple = ()


class _Job:
    """This process's first-start job: demo data, then a first training in the background."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.url: str | None = None
        self.phase = "idle"  # idle, loading, training, done, failed
        self.message = ""
        self.fraction: float | None = None
        self.run_id: int | None = None

    def update(self, **values) -> None:
        with self.lock:
            for key, value in values.items():
                setattr(self, key, value)

    def snapshot(self) -> dict:
        with self.lock:
            return {"phase": self.phase, "message": self.message, "fraction": self.fraction,
                    "run_id": self.run_id, "url": self.url}


_JOBS: dict[str, _Job] = {}
_JOBS_LOCK = threading.Lock()


def _job(url: str) -> _Job:
    with _JOBS_LOCK:
        return _JOBS.setdefault(url, _Job())


def wait_for_jobs(timeout: float | None = None) -> None:
    """Block until every first-start thread of this process has ended (tests, shutdown)."""
    with _JOBS_LOCK:
        threads = [job.thread for job in _JOBS.values() if job.thread is not None]
    for thread in threads:
        thread.join(timeout)


def _is_empty() -> bool:
    return not catalog.all_user_ids(limit=1) and catalog.events_snapshot_key()[0] == 0


def _progress_callback(job: _Job):
    def report(*args, **kwargs) -> None:
        """Accepts (fraction), (message), (message, fraction), (done, total) or keywords."""
        message = kwargs.get("message")
        fraction = kwargs.get("fraction")
        numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        texts = [a for a in args if isinstance(a, str)]
        if texts and message is None:
            message = texts[0]
        if fraction is None and numbers:
            if len(numbers) >= 2 and numbers[1]:
                fraction = numbers[0] / numbers[1]
            elif numbers[0] <= 1:
                fraction = numbers[0]
        values = {}
        if message:
            values["message"] = f"Loading demo data: {message}"
        if fraction is not None:
            values["fraction"] = max(0.0, min(1.0, float(fraction)))
        if values:
            job.update(**values)

    return report


def _first_start(job: _Job, url: str, demo_options: dict, train_config) -> None:
    try:
        demo = importlib.import_module("beacon.demo")
        job.update(phase="loading", message="Loading demo data…", fraction=0.0)
        demo.load_demo_data(progress=_progress_callback(job), actor=SYSTEM, **demo_options)
        job.update(phase="training", message="Training the first model…", fraction=None)
        training = importlib.import_module("beacon.training")
        kwargs = {"scope": "global", "force": False, "trigger": "schedule",
                  "actor": SYSTEM}
        if train_config is not None:
            kwargs["config"] = train_config
        run_id = training.start_training_in_background(**kwargs)
        job.update(run_id=run_id)
        job.update(phase="done", message="")
    except BeaconError as error:
        if job.phase == "loading" and not _is_empty():
            # another process loaded the data first (demo loading refuses a non-empty database)
            job.update(phase="done", message="")
            return
        if type(error).__name__ == "TrainingBusy":  # another process trains the first model
            job.update(phase="done", message="")
            return
        job.update(phase="failed", message=str(error))
    except Exception as error:  # shown on the page, logged in full on the server
        traceback.print_exc()
        job.update(phase="failed", message=f"{type(error).__name__}: {error}")


def start_first_start(url: str | None = None, demo_options: dict | None = None,
                      train_config=None) -> bool:
    """Begin loading demo data + training in a background thread of this process (at most one
    per database per process). Returns False when one is already under way here."""
    url = url or database_url()
    job = _job(url)
    with job.lock:
        if job.thread is not None and job.thread.is_alive():
            return False
        job.url = url
        job.phase = "loading"
        job.message = "Loading demo data…"
        job.fraction = 0.0
        job.run_id = None
        job.thread = threading.Thread(
            target=_first_start, args=(job, url, dict(demo_options or {}), train_config),
            name="beacon-first-start", daemon=True,
        )
        job.thread.start()
    return True


def _training_state(run: runs.RunInfo) -> FirstStart:
    from beacon.console import live_run  # the Training page's words: a refit says so

    fraction = (run.epoch or 0) / run.total_epochs if run.total_epochs else None
    epoch_text = f": {live_run(run).epoch_text}" if run.total_epochs else ""
    return FirstStart(
        kind="training", message=f"Training the first model{epoch_text}…", fraction=fraction,
        run_id=run.id, epoch=run.epoch, total_epochs=run.total_epochs,
        progress=tuple(run.progress or ()),
    )


def first_start_state(url: str | None = None, auto_start: bool = True,
                      demo_options: dict | None = None, train_config=None) -> FirstStart:
    """What the console should show before its pages. On the embedded default an empty
    database starts the first-start job (when auto_start); elsewhere it asks for data."""
    url = url or database_url()
    job = _job(url).snapshot()
    if job["phase"] == "loading":
        return FirstStart(kind="loading", message=job["message"], fraction=job["fraction"])
    if job["phase"] == "failed":
        return FirstStart(kind="failed", message=job["message"])
    if _is_empty():
        if not migrate.is_embedded_default(url) or url not in _FRESH:
            return FirstStart(kind="needs_data", message=needs_data_text(url))
        if auto_start:
            start_first_start(url, demo_options if demo_options is not None else FIRST_START_DEMO,
                              train_config if train_config is not None else FIRST_START_CONFIG)
            return FirstStart(kind="loading", message="Loading demo data…", fraction=0.0)
        return FirstStart(kind="needs_data", message=needs_data_text(url))
    # Data is there. A first training still running (ours or another process's) is shown until
    # there is a model; after that the console is ready.
    versions = importlib.import_module("beacon.versions") if _has("beacon.versions") else None
    has_model = versions is not None and versions.active_global() is not None
    if not has_model:
        run = runs.running_run("global")
        if run is not None and (job["run_id"] == run.id or run.requested_by == FIRST_START_BY):
            return _training_state(run)
        if job["phase"] == "training":
            return FirstStart(kind="training", message="Training the first model…")
    return FirstStart(kind="ready")


def _has(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except ModuleNotFoundError as error:
        if error.name == module:
            return False
        raise


def needs_data_text(url: str | None = None) -> str:
    where = describe_url(url)
    name = f"{where['dialect']} database {where['database']!r}" + (
        f" on {where['host']}" if where["host"] else "")
    return (
        f"The {name} has no users and no events yet. Load data with one of these, from the "
        "project directory with the same DATABASE_URL, then reload this page:\n\n"
        f"- your own data: `{beacon_command('import --users users.csv --events events.csv')} "
        "--interactions interactions.csv`\n"
        f"- demo data: `{beacon_command('demo-data')}` (then `{beacon_command('train')}`, or "
        "the Training page)"
    )


def forget_job(url: str | None = None) -> None:
    """Forget this process's first-start job for a database (a retry after a failure)."""
    with _JOBS_LOCK:
        _JOBS.pop(url or database_url(), None)


def now() -> datetime:
    return datetime.now(timezone.utc)
