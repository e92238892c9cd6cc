"""The refresh worker's reads and writes for a batch of users, in a number of statements that
does not grow with the batch: what one refresh per user cost in round trips (about 20
statements on 11 connection checkouts each) is paid once per batch.

- `read`: the users, their decisions, their fold-in histories and the catalogue stamp (one
  session, six statements).
- `start_runs`: one training run per user and its lock ("user:<id>"), taken together; a user
  whose lock another training holds is left out (busy), as `train --user` would answer.
- `write`: one transaction for the whole batch: the fold-in versions stored active (the
  users' previous ones made inactive), their runs finished and locks freed, the cached lists
  replaced, the audit row, and the queue rows finished. All or nothing.
- `fail_runs`: runs that will not finish are recorded failed and their locks freed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from data_access import audit as audit_log
from data_access import catalog, catalog_sync, refresh_queue, training_data
from data_access.audit import AuditRow
from data_access.catalog import UserHistory, UserRow
from data_access.db import session_scope
from data_access.serving_read import decisions_from_rows
from data_access.models_store import _serialize_activations
from data_access.recommendations import replace_in
from data_access.runs import scope_key, this_host
from data_access.schema import Event, EventTag, Interaction, ModelVersion, TrainingLock, \
    TrainingRun, utcnow

#: a cached row's model_version that stands for the fold-in version this write stores
NEW_VERSION = -1

RUNS = TrainingRun.__table__
LOCKS = TrainingLock.__table__
MODELS = ModelVersion.__table__


@dataclass(frozen=True)
class BatchReads:
    users: dict[int, UserRow]  # users deleted since they were marked are missing
    histories: dict[int, UserHistory]
    fold_in: dict[int, pd.DataFrame]  # newest interactions with event features, per user
    stamp: int  # the catalogue stamp


@dataclass(frozen=True)
class FoldIn:
    run_id: int
    blob: bytes  # the personal vector, encoded
    interactions: int
    seconds: float
    reason: str


@dataclass(frozen=True)
class UserRefresh:
    item: refresh_queue.Claimed
    rows: list[dict]  # the cached list (recommendations.replace_recommendations rows)
    fold_in: FoldIn | None = None


@dataclass
class Written:
    cleared: set[int] = field(default_factory=set)  # users with no mark left
    versions: dict[int, int] = field(default_factory=dict)  # user -> stored fold-in version
    lags: dict[int, float] = field(default_factory=dict)  # user -> seconds from mark to commit


def read(user_ids: list[int], fold_in_limit: int) -> BatchReads:
    ids = sorted({int(u) for u in user_ids})
    with session_scope() as session:
        users = {u.id: u for u in catalog.users_by_ids(ids, session)} if ids else {}
        present = sorted(users)
        histories = user_histories(session, present)
        frames = training_data.load_fold_in_histories(session.connection(), present,
                                                      fold_in_limit)
        stamp = catalog_sync._stamp_in(session)
    return BatchReads(users, histories, frames, stamp)


def user_histories(session, user_ids: list[int]) -> dict[int, UserHistory]:
    """catalog.user_history (without `recent`) of many users in one statement: serving_read's
    decisions statement for many users, folded the same way."""
    rows: dict[int, list] = {int(u): [] for u in user_ids}
    if rows:
        for user_id, *row in session.execute(
            select(Interaction.user_id, Interaction.event_id, Interaction.type,
                   func.max(Interaction.occurred_at), Event.organizer, Event.category,
                   EventTag.tag)
            .join(Event, Event.id == Interaction.event_id)
            .outerjoin(EventTag, EventTag.event_id == Interaction.event_id)
            .where(Interaction.user_id.in_(sorted(rows)),
                   Interaction.type.in_(("register", "unregister", "reject")))
            .group_by(Interaction.user_id, Interaction.event_id, Interaction.type,
                      Event.organizer, Event.category, EventTag.tag)
        ):
            rows[user_id].append(row)
    return {user_id: decisions_from_rows(user_id, found) for user_id, found in rows.items()}


def start_runs(user_ids: list[int], *, trigger: str, requested_by: str | None
               ) -> tuple[dict[int, int], set[int]]:
    """A running run and the lock of each user, in one transaction. Returns (user -> run id,
    the users whose lock another training holds: no run is left for them)."""
    ids = sorted({int(u) for u in user_ids})
    if not ids:
        return {}, set()
    now = utcnow()
    with session_scope() as session:
        # The INSERT comes first: on SQLite it takes the write lock before anything is read.
        rows = session.execute(insert(RUNS).returning(
            RUNS.c.id, RUNS.c.user_id), [
            {"scope": "user", "user_id": u, "trigger": trigger, "requested_by": requested_by,
             "status": "running", "hyperparameters": {}, "progress": [], "created_at": now,
             "started_at": now, "heartbeat_at": now, "host": this_host(), "pid": os.getpid(),
             "repeats": 1}
            for u in ids]).all()
        run_of = {int(r.user_id): int(r.id) for r in rows}
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        taken = set(session.scalars(
            dialect.insert(LOCKS).values([
                {"scope_key": scope_key("user", u), "run_id": run_of[u], "acquired_at": now,
                 "heartbeat_at": now} for u in ids])
            .on_conflict_do_nothing(index_elements=["scope_key"])
            .returning(LOCKS.c.scope_key)))
        busy = {u for u in ids if scope_key("user", u) not in taken}
        if busy:
            session.execute(delete(RUNS).where(RUNS.c.id.in_([run_of[u] for u in busy])))
    return {u: r for u, r in run_of.items() if u not in busy}, busy


def fail_runs(reasons: dict[int, str]) -> None:
    """run id -> why: each run still running failed with its reason, and its lock freed (one
    transaction)."""
    if not reasons:
        return
    now = utcnow()
    with session_scope() as session:
        session.execute(update(RUNS).where(
            RUNS.c.id == bindparam("b_run"), RUNS.c.status == "running").values(
            status="failed", finished_at=now, heartbeat_at=now, reason=bindparam("b_why"),
            error=bindparam("b_why")),
            [{"b_run": run, "b_why": why} for run, why in reasons.items()])
        session.execute(delete(LOCKS).where(LOCKS.c.run_id.in_(list(reasons))))


def write(refreshes: list[UserRefresh], *, base_model_id: int | None,
          fingerprint: str | None, hyperparameters: dict, created_by: str | None,
          generated_at: datetime, interval: timedelta, audit: AuditRow | None = None) -> Written:
    """Store a batch in one transaction (see the module docstring)."""
    written = Written()
    if not refreshes:
        return written
    now = utcnow()
    folded = sorted((r for r in refreshes if r.fold_in is not None),
                    key=lambda r: r.item.user_id)
    with session_scope() as session:
        if folded:
            _serialize_activations(session)
            ids = [r.item.user_id for r in folded]
            session.execute(update(MODELS).where(
                MODELS.c.scope == "user", MODELS.c.user_id.in_(ids),
                MODELS.c.status == "active").values(status="inactive"))
            stored = session.execute(insert(MODELS).returning(
                MODELS.c.id, MODELS.c.user_id), [
                {"scope": "user", "user_id": r.item.user_id, "base_model_id": base_model_id,
                 "status": "active", "activated_at": now, "created_at": now,
                 "model_type": "fold-in", "fingerprint": fingerprint,
                 "hyperparameters": hyperparameters,
                 "counts": {"interactions": r.fold_in.interactions},
                 "training_seconds": r.fold_in.seconds, "loss_history": [], "metrics": {},
                 "created_by": created_by, "size_bytes": len(r.fold_in.blob),
                 "blob": r.fold_in.blob}
                for r in folded]).all()
            written.versions = {int(row.user_id): int(row.id) for row in stored}
            session.execute(update(RUNS).where(RUNS.c.id == bindparam("b_run")).values(
                status="succeeded", finished_at=now, heartbeat_at=now,
                reason=bindparam("b_why"), model_id=bindparam("b_model")), [
                {"b_run": r.fold_in.run_id, "b_why": r.fold_in.reason,
                 "b_model": written.versions[r.item.user_id]} for r in folded])
            session.execute(delete(LOCKS).where(
                LOCKS.c.run_id.in_([r.fold_in.run_id for r in folded])))
        replace_in(session, {
            r.item.user_id: [
                {**row, "model_version": written.versions.get(r.item.user_id)}
                if row.get("model_version") == NEW_VERSION else row
                for row in r.rows]
            for r in refreshes}, generated_at)
        if audit is not None:
            audit_log.insert(session, audit)
        written.lags = {r.item.user_id: max(0.0, (now - r.item.pending_since).total_seconds())
                        for r in refreshes}
        written.cleared = refresh_queue.finish_many(
            session, [r.item for r in refreshes], now, interval, written.lags)
    return written
