"""Training runs, the training lock, and the data fingerprint.

The lock is a row in `training_locks` keyed by scope ("global" or "user:<id>"). Acquiring it is
an INSERT in the same transaction that creates the run row: the primary key makes a second
INSERT fail (IntegrityError), on SQLite as on Postgres and across any number of processes and
hosts. Releasing it is a DELETE in the caller's `finally`. No advisory locks, so nothing can leak
through the connection pool (see STACK.md).

A lock whose holder died is found by `recover_abandoned()`: the holder's run names its host and
pid; on this host a dead pid frees the lock at once, and on any host a heartbeat older than
`stale_after` (60 s; live workers beat every 15 s) does, so a lock is taken over about a minute
after its holder went silent. The run is marked "abandoned" and
the lock row deleted.

The fingerprint is computed inside the database by aggregate SQL over indexes (see
`data_fingerprint`); it never loads rows into Python.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from data_access import audit as audit_log
from data_access.audit import AuditRow
from data_access.db import session_scope
from data_access.schema import (
    Event,
    EventTag,
    TrainingLock,
    TrainingRun,
    User,
    UserInterest,
    utcnow,
)

#: A lock held by another host is abandoned once its heartbeat is older than this.
DEFAULT_STALE_AFTER = timedelta(seconds=60)
FINAL_STATUSES = ("succeeded", "skipped", "failed", "abandoned", "cancelled")
LIVE_STATUSES = ("queued", "running")
#: how long a skip folded into a newer one keeps its row (and its id answers)
FOLDED_KEPT_DAYS = 30


@dataclass(frozen=True)
class RunInfo:
    id: int
    scope: str
    user_id: int | None
    trigger: str
    requested_by: str | None
    status: str
    reason: str | None
    hyperparameters: dict
    epoch: int | None
    total_epochs: int | None
    last_loss: float | None
    progress: list
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    host: str | None
    pid: int | None
    model_id: int | None
    error: str | None
    repeats: int = 1
    last_seen_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    folded_into: int | None = None  # a skip a newer identical one counts (see finish_skipped)

    @property
    def scope_key(self) -> str:
        return scope_key(self.scope, self.user_id)


@dataclass(frozen=True)
class Acquired:
    """The outcome of `acquire`: either `run` (we hold the lock) or `holder` (someone else does)."""

    run: RunInfo | None
    holder: RunInfo | None = None

    @property
    def busy(self) -> bool:
        return self.run is None


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    parts: dict = field(default_factory=dict)

    @property
    def data_digest(self) -> str:
        """The digest of the data parts alone (the settings left out): what an activation
        records, so that smart retraining can tell whether the data moved since."""
        data = {k: v for k, v in self.parts.items() if k != "hyperparameters"}
        payload = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


class LockLost(RuntimeError):
    """A run no longer holds its scope's lock: a process that heard no heartbeat from it for
    too long marked it abandoned, and the scope may have a new holder. What it made must not
    go live, nor may its outcome overwrite the status it was given."""


def check_holds_lock(session, run_id: int, key: str) -> None:
    """In the caller's transaction (which goes on to activate what the run made): LockLost
    unless `run_id` holds the lock `key` (read FOR UPDATE on Postgres, so it cannot pass to
    another run before the transaction ends)."""
    holder = session.execute(select(TrainingLock.run_id).where(TrainingLock.scope_key == key)
                             .with_for_update()).scalar_one_or_none()
    if holder != run_id:
        now_held = f"; run {holder} holds it now" if holder is not None else ""
        raise LockLost(f"training run {run_id} lost the lock of {key} (it was marked abandoned "
                       f"after its heartbeat stopped){now_held}: what it made is not activated")


def scope_key(scope: str, user_id: int | None = None) -> str:
    if scope == "global":
        return "global"
    if scope == "user" and user_id is not None:
        return f"user:{int(user_id)}"
    raise ValueError(f"bad training scope {scope!r} (user_id={user_id!r})")


def this_host() -> str:
    return socket.gethostname()[:200]


def _info(row) -> RunInfo:
    """From a TrainingRun object or a row of its columns."""
    return RunInfo(
        id=row.id, scope=row.scope, user_id=row.user_id, trigger=row.trigger,
        requested_by=row.requested_by, status=row.status, reason=row.reason,
        hyperparameters=dict(row.hyperparameters or {}), epoch=row.epoch,
        total_epochs=row.total_epochs, last_loss=row.last_loss,
        progress=list(row.progress or []), created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, heartbeat_at=row.heartbeat_at,
        host=row.host, pid=row.pid, model_id=row.model_id, error=row.error,
        repeats=int(row.repeats or 1), last_seen_at=row.last_seen_at,
        cancel_requested_at=getattr(row, "cancel_requested_at", None),
        cancel_requested_by=getattr(row, "cancel_requested_by", None),
        folded_into=getattr(row, "folded_into", None),
    )


# --- the lock ------------------------------------------------------------------------------

def acquire(
    scope: str,
    user_id: int | None = None,
    *,
    trigger: str = "cli",
    requested_by: str | None = None,
    hyperparameters: dict | None = None,
    status: str = "running",
    reason: str | None = None,
    audit: AuditRow | None = None,
) -> Acquired:
    """Create a run and take the scope's lock in one transaction, or report who holds it.

    `status` is "running" for a training that starts now, "queued" for one handed to a
    background worker. When busy, no run row is written and `holder` is the running run.
    `audit` is written in the same transaction as the run and the lock.
    """
    key = scope_key(scope, user_id)
    for attempt in range(3):
        now = utcnow()
        try:
            return Acquired(run=_insert_run_and_lock(
                key, scope, user_id, trigger, requested_by, hyperparameters, status, reason, now,
                audit))
        except IntegrityError:
            holder = lock_holder(scope, user_id)
            if holder is not None:
                return Acquired(run=None, holder=holder)
            if attempt == 2:  # not the lock: the database refuses the run itself
                raise
            # The holder released between our INSERT and the read: try again.
    raise AssertionError("unreachable")


def _insert_run_and_lock(key, scope, user_id, trigger, requested_by, hyperparameters, status,
                         reason, now, audit: AuditRow | None) -> RunInfo:
    with session_scope() as session:
        # The INSERT comes first: on SQLite it takes the write lock before anything is read.
        # Core statements with RETURNING: the ORM unit of work cost more than the round trips.
        run = session.execute(insert(TrainingRun).values(
            scope=scope, user_id=user_id, trigger=trigger, requested_by=requested_by,
            status=status, reason=reason, hyperparameters=hyperparameters or {},
            progress=[], created_at=now, heartbeat_at=now, host=this_host(), pid=os.getpid(),
            started_at=now if status == "running" else None,
        ).returning(*TrainingRun.__table__.c)).one()
        session.execute(insert(TrainingLock).values(scope_key=key, run_id=run.id,
                                                    acquired_at=now, heartbeat_at=now))
        if audit is not None:
            audit_log.insert(session, audit)
        return _info(run)


def release(run_id: int, scope: str, user_id: int | None = None) -> None:
    """Free the scope's lock if this run still holds it (idempotent)."""
    with session_scope() as session:
        _delete_lock(session, run_id, scope_key(scope, user_id))


def _delete_lock(session, run_id: int, key: str) -> None:
    session.execute(
        delete(TrainingLock).where(TrainingLock.scope_key == key, TrainingLock.run_id == run_id)
    )


def lock_holder(scope: str, user_id: int | None = None) -> RunInfo | None:
    """The run holding the scope's lock, or None when the scope is free."""
    key = scope_key(scope, user_id)
    with session_scope() as session:
        row = session.execute(
            select(TrainingRun).join(TrainingLock, TrainingLock.run_id == TrainingRun.id)
            .where(TrainingLock.scope_key == key)
        ).scalar_one_or_none()
        return _info(row) if row is not None else None


def running_run(scope: str = "global", user_id: int | None = None) -> RunInfo | None:
    """The run now queued or running for a scope (the lock's holder), or None."""
    return lock_holder(scope, user_id)


def heartbeat(run_id: int) -> None:
    """Mark the run (and its lock) alive now; called by a worker's heartbeat thread.

    Every writer of both rows takes the run's row first, then the lock's (record_progress,
    finish, recovery): the other order let a heartbeat and an epoch's progress deadlock on
    Postgres, which failed the training."""
    now = utcnow()
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == run_id,
                                                  TrainingRun.status.in_(LIVE_STATUSES))
                        .values(heartbeat_at=now))
        session.execute(update(TrainingLock).where(TrainingLock.run_id == run_id)
                        .values(heartbeat_at=now))


def _pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:  # a zombie still answers kill(0) but will never work again
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _abandoned_why(run: RunInfo | None, lock_heartbeat: datetime | None, now: datetime,
                   stale_after: timedelta) -> str | None:
    """Why a holder counts as dead, or None while it is alive.

    Dead: its process is gone (checked when it ran on this host), or no heartbeat for longer
    than `stale_after` on any host. A live worker beats every 15 s from a thread of its own
    (beacon.training), through long epochs and while queued, so only a dead, frozen or
    unreachable process goes silent.
    """
    if run is not None and run.host == this_host() and run.pid and not _pid_alive(run.pid):
        return f"process {run.pid} on {run.host} is gone"
    beats = [t for t in (lock_heartbeat, run.heartbeat_at if run else None) if t is not None]
    beat = max(beats) if beats else (run.created_at if run is not None else None)
    if beat is not None and now - beat > stale_after:
        where = f"process {run.pid} on {run.host}" if run else "an unknown process"
        return f"no heartbeat from {where} for {(now - beat).total_seconds():.0f} s"
    return None


def recover_abandoned(stale_after: timedelta = DEFAULT_STALE_AFTER) -> list[RunInfo]:
    """Free locks whose holder died and mark their runs (and orphaned live runs) abandoned.

    Cheap (reads the few lock rows and live runs); safe to call at every process start and
    before every training. Returns the runs it marked abandoned.
    """
    now = utcnow()
    recovered: list[RunInfo] = []
    with session_scope() as session:
        locks = session.execute(select(TrainingLock)).scalars().all()
        held = {lock.run_id for lock in locks}
        live = session.execute(
            select(TrainingRun).where(TrainingRun.status.in_(LIVE_STATUSES))
        ).scalars().all()
        runs = {row.id: _info(row) for row in live}
        candidates: list[tuple[str | None, int | None, str]] = []
        for lock in locks:
            run = runs.get(lock.run_id)
            if run is None and lock.run_id is not None:
                row = session.get(TrainingRun, lock.run_id)
                run = _info(row) if row is not None else None
                if run is not None and run.status in FINAL_STATUSES:
                    candidates.append((lock.scope_key, lock.run_id, "its run already finished"))
                    continue
            why = _abandoned_why(run, lock.heartbeat_at, now, stale_after)
            if why:
                candidates.append((lock.scope_key, lock.run_id, why))
        for run in runs.values():  # a live run without a lock: its worker died before finally
            if run.id not in held:
                why = _abandoned_why(run, None, now, stale_after)
                if why:
                    candidates.append((None, run.id, why))
    for key, run_id, why in candidates:
        with session_scope() as session:
            if run_id is not None:
                _write_first(session, run_id)  # the run's row before the lock's, as everywhere
            if key is not None:
                # Only this exact lock: a new holder that took the scope meanwhile is untouched.
                session.execute(delete(TrainingLock).where(
                    TrainingLock.scope_key == key,
                    TrainingLock.run_id == run_id if run_id is not None
                    else TrainingLock.run_id.is_(None)))
            if run_id is not None:
                row = session.get(TrainingRun, run_id)
                if row is not None and row.status in LIVE_STATUSES:
                    row.status = "abandoned"
                    row.finished_at = now
                    row.error = f"abandoned: {why}"
                    session.flush()
                    recovered.append(_info(row))
    return recovered


# --- runs ----------------------------------------------------------------------------------

def create_run(
    scope: str,
    user_id: int | None = None,
    *,
    trigger: str = "cli",
    requested_by: str | None = None,
    status: str = "queued",
    reason: str | None = None,
    hyperparameters: dict | None = None,
    finished: bool = False,
) -> RunInfo:
    """A run row without the lock (for outcomes decided before any training: e.g. refused)."""
    now = utcnow()
    with session_scope() as session:
        row = TrainingRun(
            scope=scope, user_id=user_id, trigger=trigger, requested_by=requested_by,
            status=status, reason=reason, hyperparameters=hyperparameters or {}, progress=[],
            created_at=now, heartbeat_at=now, host=this_host(), pid=os.getpid(),
            finished_at=now if finished else None,
        )
        session.add(row)
        session.flush()
        return _info(row)


def mark_running(run_id: int, total_epochs: int | None = None,
                 hyperparameters: dict | None = None) -> None:
    """The run starts (or its fit does). LockLost when it is no longer live: a queued run that
    waited so long that it was marked abandoned must not start."""
    now = utcnow()
    values: dict[str, Any] = {"status": "running", "started_at": now, "heartbeat_at": now}
    if total_epochs is not None:
        values["total_epochs"] = total_epochs
    if hyperparameters is not None:
        values["hyperparameters"] = hyperparameters
    with session_scope() as session:
        started = session.execute(update(TrainingRun).where(
            TrainingRun.id == run_id, TrainingRun.status.in_(LIVE_STATUSES)).values(**values))
        if started.rowcount == 0:
            raise LockLost(f"training run {run_id} is no longer queued or running (it was "
                           "marked abandoned): it does not start")


def _write_first(session, run_id: int) -> None:
    """Start a read-modify-write with a write, so that on SQLite the transaction holds the
    write lock (waiting on busy_timeout) before it reads: a read snapshot that a concurrent
    writer (a heartbeat thread, another process) made stale can then never fail the upgrade."""
    session.execute(update(TrainingRun).where(TrainingRun.id == run_id)
                    .values(status=TrainingRun.status))


def _finite(value) -> float | None:
    """JSON columns get None for NaN/inf (Postgres JSON rejects NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def record_progress(run_id: int, epoch: int, total_epochs: int | None, loss: float | None,
                    val_metric: float | None = None, phase: str | None = None) -> None:
    """One finished epoch: epoch/total/last_loss, one entry appended to `progress`
    ({"epoch", "loss", "val_metric"} and "phase" when given), and the heartbeat."""
    now = utcnow()
    entry = {"epoch": int(epoch), "loss": _finite(loss), "val_metric": _finite(val_metric)}
    if phase is not None:
        entry["phase"] = str(phase)
    with session_scope() as session:
        _write_first(session, run_id)
        row = session.get(TrainingRun, run_id)
        if row is None:
            return
        row.epoch = int(epoch)
        if total_epochs is not None:
            row.total_epochs = int(total_epochs)
        row.last_loss = entry["loss"]
        row.progress = list(row.progress or []) + [entry]  # a new list: JSON columns mutate badly
        row.heartbeat_at = now
        session.execute(update(TrainingLock).where(TrainingLock.run_id == run_id)
                        .values(heartbeat_at=now))


def finish_run(run_id: int, status: str, *, reason: str | None = None,
               model_id: int | None = None, error: str | None = None) -> RunInfo | None:
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status!r} is not a final run status")
    now = utcnow()
    with session_scope() as session:
        _write_first(session, run_id)
        row = session.get(TrainingRun, run_id)
        if row is None:
            return None
        if row.status not in LIVE_STATUSES:
            # marked abandoned while it went silent (or finished twice): the first final
            # status stands, since the scope's lock may have passed to another run meanwhile
            return _info(row)
        row.status = status
        row.finished_at = now
        row.heartbeat_at = now
        if row.started_at is None:
            row.started_at = now
        if reason is not None:
            row.reason = reason
        if model_id is not None:
            row.model_id = model_id
        if error is not None:
            row.error = error[:20_000]
        session.flush()
        return _info(row)


def finish_skipped(run: RunInfo, *, reason: str, skip_key: str) -> RunInfo:
    """The run skipped. When the scope's previous run skipped too, for the same trigger and the
    same `skip_key` (the same decision on the same active version), this row absorbs that one:
    repeats add up, created_at stays the first skip's, last_seen_at is now and the reason is
    the newest. A cron asking every 30 minutes then lists one row, not 48 a day. The absorbed
    row stays, marked `folded_into` this run (as do the rows it had absorbed), so every run id
    a caller was given keeps answering; such rows are pruned after FOLDED_KEPT_DAYS."""
    now = utcnow()
    with session_scope() as session:
        _write_first(session, run.id)
        row = session.get(TrainingRun, run.id)
        if row.status not in LIVE_STATUSES:  # marked abandoned meanwhile: that status stands
            return _info(row)
        previous = session.execute(
            select(TrainingRun).where(
                TrainingRun.scope == run.scope, TrainingRun.id < run.id,
                TrainingRun.folded_into.is_(None),
                TrainingRun.user_id.is_(None) if run.user_id is None
                else TrainingRun.user_id == run.user_id)
            .order_by(TrainingRun.id.desc()).limit(1)
        ).scalar_one_or_none()
        if previous is not None and previous.status == "skipped" \
                and previous.trigger == run.trigger and previous.skip_key == skip_key:
            row.repeats = int(previous.repeats or 1) + 1
            row.created_at = previous.created_at
            session.execute(update(TrainingRun).where(
                TrainingRun.folded_into == previous.id).values(folded_into=run.id))
            previous.folded_into = run.id
            session.execute(delete(TrainingRun).where(
                TrainingRun.folded_into.is_not(None),
                TrainingRun.finished_at < now - timedelta(days=FOLDED_KEPT_DAYS)))
        row.status, row.reason, row.skip_key = "skipped", reason, skip_key
        row.finished_at = row.heartbeat_at = row.last_seen_at = now
        if row.started_at is None:
            row.started_at = now
        session.flush()
        return _info(row)


def succeed_and_release(session, run: RunInfo, *, reason: str, model_id: int) -> None:
    """In the caller's transaction: the run succeeded with `model_id`, and its scope's lock is
    free (two statements; a fold-in commits them with its version, all or nothing). LockLost
    when the run no longer holds the lock: the caller's transaction then writes nothing."""
    now = utcnow()
    key = scope_key(run.scope, run.user_id)
    _write_first(session, run.id)  # the run's row before the lock's, as every writer does
    check_holds_lock(session, run.id, key)
    session.execute(update(TrainingRun).where(TrainingRun.id == run.id).values(
        status="succeeded", finished_at=now, heartbeat_at=now, reason=reason, model_id=model_id,
        started_at=func.coalesce(TrainingRun.started_at, now)))
    _delete_lock(session, run.id, key)


def set_reason(run_id: int, reason: str) -> None:
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(reason=reason))


def get_run(run_id: int) -> RunInfo | None:
    with session_scope() as session:
        row = session.get(TrainingRun, run_id)
        return _info(row) if row is not None else None


def list_runs(limit: int = 50, scope: str | None = None, user_id: int | None = None,
              status: Sequence[str] | None = None) -> list[RunInfo]:
    """Newest first."""
    query = select(TrainingRun).where(TrainingRun.folded_into.is_(None)).order_by(
        TrainingRun.created_at.desc(), TrainingRun.id.desc())
    if scope is not None:
        query = query.where(TrainingRun.scope == scope)
    if user_id is not None:
        query = query.where(TrainingRun.user_id == user_id)
    if status:
        query = query.where(TrainingRun.status.in_(list(status)))
    with session_scope() as session:
        return [_info(row) for row in session.execute(query.limit(limit)).scalars()]


# --- fingerprint ---------------------------------------------------------------------------

def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    return value


def _newest_training_interaction(session, types: list[str] | None) -> int | None:
    """max(id) over the interactions of `types`, as a backward walk of the primary key that
    stops at the first matching row (ids only grow, so any new such row raises it).

    Postgres plans `ORDER BY id DESC LIMIT 1` as an Index Scan Backward on the primary key;
    SQLite is told NOT INDEXED so that it walks the rowid backward instead of reading every
    row of those types through ix_interactions_type_time. The walk passes only the rows of
    other types (impressions) logged since the newest training row.
    """
    if types is not None and not types:
        return None
    sqlite = session.get_bind().dialect.name == "sqlite"
    table = "interactions NOT INDEXED" if sqlite else "interactions"
    where = "WHERE type IN :types " if types is not None else ""
    statement = text(f"SELECT id FROM {table} {where}ORDER BY id DESC LIMIT 1")
    if types is not None:
        statement = statement.bindparams(bindparam("types", expanding=True))
        return session.execute(statement, {"types": types}).scalar_one_or_none()
    return session.execute(statement).scalar_one_or_none()


def data_fingerprint(hyperparameters: dict | None = None,
                     interaction_types: Iterable[str] | None = None) -> Fingerprint:
    """sha256 over a few aggregates computed by the database, plus the hyperparameters.

    Parts (each an index probe or an index-only count over a small table):
    - interactions: the newest id among the types that feed training (a backward primary-key
      walk that stops at the first such row, see _newest_training_interaction). It changes with
      every new training row, including back-dated imports (new rows get new ids). It does not
      count rows: counting millions of index entries is what made a skip check cost 0.5 s at
      5M interactions. Deleted interactions are seen through their cause: deleting a user or
      an event (cascades) changes the users/events counts; Beacon never deletes single
      interactions. Anything else is caught by the maximum model age.
    - users and events: count and max(updated_at) (ix_*_updated_at gives the max in one probe);
    - user_interests and event_tags: count.
    Types outside `interaction_types` (impressions, weight 0 by default) never change the
    fingerprint, so logging impressions does not make the model stale.
    """
    types = sorted(set(interaction_types)) if interaction_types is not None else None
    with session_scope() as session:
        newest = _newest_training_interaction(session, types)
        users = session.execute(select(func.count(), func.max(User.updated_at))).one()
        events = session.execute(select(func.count(), func.max(Event.updated_at))).one()
        user_tags = session.execute(select(func.count()).select_from(UserInterest)).scalar_one()
        event_tags = session.execute(select(func.count()).select_from(EventTag)).scalar_one()
    parts = {
        "interactions": {"newest_id": None if newest is None else int(newest)},
        "users": [int(users[0]), _iso(users[1])],
        "events": [int(events[0]), _iso(events[1])],
        "user_interests": int(user_tags),
        "event_tags": int(event_tags),
        "types": types,
        "hyperparameters": hyperparameters or {},
    }
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return Fingerprint(digest=hashlib.sha256(payload.encode()).hexdigest(), parts=parts)


# --- cancelling -------------------------------------------------------------------------------

def request_cancel(run_id: int, by: str, audit: AuditRow | None = None) -> RunInfo | None:
    """Flag a live run for cancelling (its process stops it at the next batch); None when the
    run does not exist or has already finished. `audit` commits with the flag."""
    now = utcnow()
    with session_scope() as session:
        result = session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.status.in_(LIVE_STATUSES))
            .values(cancel_requested_at=func.coalesce(TrainingRun.cancel_requested_at, now),
                    cancel_requested_by=func.coalesce(TrainingRun.cancel_requested_by, by))
        )
        if not result.rowcount:
            return None
        if audit is not None:
            audit_log.insert(session, audit)
        row = session.get(TrainingRun, run_id)
        return _info(row) if row is not None else None


def cancel_requests(run_ids: Iterable[int]) -> dict[int, str]:
    """Of these runs, those flagged for cancelling: run id -> who asked."""
    ids = [int(i) for i in run_ids]
    if not ids:
        return {}
    with session_scope() as session:
        rows = session.execute(
            select(TrainingRun.id, TrainingRun.cancel_requested_by)
            .where(TrainingRun.id.in_(ids), TrainingRun.cancel_requested_at.is_not(None))
        ).all()
    return {int(r.id): r.cancel_requested_by or "someone" for r in rows}
