"""The near-real-time refresh queue (table refresh_queue, one row per user).

Marks are upserts inside the caller's transaction (the one that stored the interactions), so
a committed interaction always has its mark. A worker claims due rows with one statement:
UPDATE ... WHERE user_id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING. On
Postgres SKIP LOCKED lets any number of workers claim side by side without waiting on each
other or taking the same row; on SQLite the statement is atomic by itself (one writer at a
time). A claim is a lease (claimed_until): a worker that dies frees its rows when it expires.
`finish` clears the mark only when no mark came in since the claim (mark_seq unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from data_access.db import get_engine, session_scope
from data_access.schema import RefreshQueue, User

QUEUE = RefreshQueue.__table__


@dataclass(frozen=True)
class Claimed:
    user_id: int
    email: str
    mark_seq: int
    pending_since: datetime


@dataclass(frozen=True)
class Backlog:
    pending: int  # users marked and not yet refreshed
    due: int  # ... of which the throttle lets a worker take now
    claimed: int  # being refreshed right now
    oldest_pending_seconds: float | None  # age of the oldest mark still waiting
    refreshed_last_5m: int
    mean_lag_last_5m: float | None  # seconds from mark to refreshed list, mean over 5 minutes
    max_lag_last_5m: float | None


def mark(connection: Connection, user_ids, now: datetime) -> int:
    """Mark users for refresh in the caller's transaction. The first mark after a refresh is
    due at once unless the user was refreshed less than an interval ago (then when the interval
    ends); later marks only count (mark_seq). Returns how many users were marked."""
    ids = sorted({int(u) for u in user_ids})  # one order for every writer: no deadlock
    if not ids:
        return 0
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(QUEUE)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            "mark_seq": QUEUE.c.mark_seq + 1,
            "pending_since": func.coalesce(QUEUE.c.pending_since, excluded.pending_since),
            "due_at": case(
                (QUEUE.c.pending_since.is_not(None), QUEUE.c.due_at),
                (QUEUE.c.next_allowed_at > excluded.due_at, QUEUE.c.next_allowed_at),
                else_=excluded.due_at,
            ),
        },
    )
    connection.execute(statement, [
        {"user_id": u, "mark_seq": 1, "pending_since": now, "due_at": now, "refreshes": 0}
        for u in ids
    ])
    return len(ids)


def claim(worker: str, now: datetime, lease: timedelta, limit: int = 10) -> list[Claimed]:
    """Take up to `limit` due users for `lease`; nobody else takes them meanwhile."""
    engine = get_engine()
    free = or_(QUEUE.c.claimed_until.is_(None), QUEUE.c.claimed_until < now)
    due = and_(QUEUE.c.pending_since.is_not(None), QUEUE.c.due_at <= now, free)
    chosen = (select(QUEUE.c.user_id).where(due).order_by(QUEUE.c.due_at).limit(limit)
              .with_for_update(skip_locked=True))
    if engine.dialect.name == "postgresql":
        # Run the LIMIT once: as a plain IN (subquery), a semi-join planned on statistics of an
        # idle queue re-ran it for every row of the update, and one claim took the whole
        # backlog. A materialized CTE is evaluated once.
        picked = chosen.cte("picked").prefix_with("MATERIALIZED")
        chosen = select(picked.c.user_id)
    statement = (update(QUEUE).where(QUEUE.c.user_id.in_(chosen), due)
                 .values(claimed_until=now + lease, claimed_by=worker[:200])
                 .returning(QUEUE.c.user_id, QUEUE.c.mark_seq, QUEUE.c.pending_since))
    with engine.begin() as connection:
        rows = connection.execute(statement).all()
        if not rows:
            return []
        emails = dict(connection.execute(
            select(User.id, User.email).where(User.id.in_([r.user_id for r in rows]))).all())
    return [Claimed(int(r.user_id), emails.get(r.user_id, ""), int(r.mark_seq),
                    _aware(r.pending_since, now)) for r in rows if r.user_id in emails]


def finish(item: Claimed, now: datetime, interval: timedelta, lag_seconds: float) -> bool:
    """Record a done refresh and free the claim. Returns True when the mark is cleared, False
    when new marks came in meanwhile (the row stays pending, due when the interval ends)."""
    with session_scope() as session:
        return item.user_id in finish_many(session, [item], now, interval,
                                           {item.user_id: lag_seconds})


def finish_many(session, items: list[Claimed], now: datetime, interval: timedelta,
                lags: dict[int, float]) -> set[int]:
    """`finish` for many users in the caller's transaction, in two statements (an executemany
    UPDATE and one read). Returns the users whose mark is cleared."""
    if not items:
        return set()
    same = QUEUE.c.mark_seq == bindparam("b_seq")
    next_allowed = now + interval
    ordered = sorted(items, key=lambda item: item.user_id)  # the markers' order: no deadlock
    session.execute(update(QUEUE).where(QUEUE.c.user_id == bindparam("b_user")).values(
        claimed_until=None, claimed_by=None, refreshed_at=now, next_allowed_at=next_allowed,
        refreshes=QUEUE.c.refreshes + 1, last_lag_seconds=bindparam("b_lag"),
        pending_since=case((same, None), else_=QUEUE.c.pending_since),
        due_at=case((same, None), else_=next_allowed),
    ), [{"b_user": item.user_id, "b_seq": item.mark_seq, "b_lag": float(lags[item.user_id])}
        for item in ordered])
    seqs = dict(session.execute(select(QUEUE.c.user_id, QUEUE.c.mark_seq).where(
        QUEUE.c.user_id.in_([item.user_id for item in ordered]))).all())
    return {item.user_id for item in items if seqs.get(item.user_id) == item.mark_seq}


def release(item: Claimed, retry_at: datetime) -> None:
    """Give a claim back after a failed refresh; the mark stays, due again at `retry_at`."""
    release_many([item], retry_at)


def release_many(items: list[Claimed], retry_at: datetime) -> None:
    """`release` for many users in one statement."""
    if not items:
        return
    with session_scope() as session:
        session.execute(update(QUEUE).where(
            QUEUE.c.user_id.in_(sorted(item.user_id for item in items))).values(
            claimed_until=None, claimed_by=None, due_at=retry_at))


def state(user_id: int) -> dict | None:
    """One user's row (tests, the benchmark): pending_since, refreshed_at, refreshes, ..."""
    with session_scope() as session:
        row = session.execute(select(QUEUE).where(QUEUE.c.user_id == user_id)).mappings().first()
        return None if row is None else dict(row)


def backlog(now: datetime) -> Backlog:
    recent = now - timedelta(minutes=5)
    with session_scope() as session:
        pending, due, claimed, oldest = session.execute(select(
            func.count(QUEUE.c.pending_since),
            func.count(case((QUEUE.c.due_at <= now, 1))),
            func.count(case((QUEUE.c.claimed_until > now, 1))),
            func.min(QUEUE.c.pending_since),
        )).one()
        refreshed, mean_lag, max_lag = session.execute(select(
            func.count(), func.avg(QUEUE.c.last_lag_seconds), func.max(QUEUE.c.last_lag_seconds),
        ).where(QUEUE.c.refreshed_at >= recent)).one()
    oldest = _aware(oldest, now) if oldest is not None else None
    return Backlog(
        pending=int(pending or 0), due=int(due or 0), claimed=int(claimed or 0),
        oldest_pending_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        refreshed_last_5m=int(refreshed or 0),
        mean_lag_last_5m=None if mean_lag is None else float(mean_lag),
        max_lag_last_5m=None if max_lag is None else float(max_lag),
    )


def _aware(value, now: datetime) -> datetime:
    """Core rows skip UTCDateTime only for aggregates: min() comes back as the driver gives it."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=now.tzinfo)
    return value
