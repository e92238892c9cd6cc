"""The daily metrics rollup: per-day sums that the Metrics page reads instead of scanning and
attributing millions of interactions on every load.

Two tables hold, per UTC day, exactly what data_access/metrics computes live:
- metrics_daily_counts: impressions, clicks, registrations, unregistrations per (day, category);
- metrics_daily_attributed: per (day, attributed, model_version, strategy, position), under the
  default attribution windows (CLICK_WINDOW, REGISTRATION_WINDOW).
A range is answered from the rollup for its whole UTC days and live for the partial days at
its ends, so results equal the live queries for any range (tests compare them).

Freshness. metrics_rollup_state records what the rollup has read: the highest interaction id,
and (count, max id) of users and events plus the events' max updated_at. A refresh compares
that with the database (a few index probes) and recomputes only what changed:
- new interactions (id above the mark): their days; a new impression also the days its
  conversions may fall on (up to the longest window after it), since it may now attribute them;
- events updated since the mark (a category may have changed): the days of their interactions;
- rows deleted (a user or an event, cascading to interactions; counts no longer add up), other
  windows, or a rollup never built: everything is rebuilt.
Interactions themselves are append-only in Beacon (never updated or deleted one by one).

Concurrency. Only one refresh runs at a time: it holds the state row (Postgres: FOR UPDATE
NOWAIT; SQLite: the database's write lock). Writers that insert interactions call
`hold_for_writer` first, which on Postgres locks the state row FOR SHARE for their transaction,
so a refresh never moves the mark past ids of a transaction not yet committed. A refresh that
cannot get its lock reports "busy" and the reader answers live (correct, only slower).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, func, insert, literal_column, select, update
from sqlalchemy.exc import OperationalError

from data_access import metrics as live
from data_access.db import get_engine
from data_access.schema import (
    Event,
    Interaction,
    MetricsDailyAttributed,
    MetricsDailyCount,
    MetricsRollupState,
    User,
    utcnow,
)

STATE_ID = 1
MAX_CHANGED_EVENTS = 2000  # above this many updated events a full rebuild is the cheaper plan
LOCK_WAIT_MS = 2000  # SQLite: how long a refresh waits for the write lock before "busy"

state_table = MetricsRollupState.__table__
counts_table = MetricsDailyCount.__table__
attributed_table = MetricsDailyAttributed.__table__
interactions = Interaction.__table__
events = Event.__table__
users = User.__table__


@dataclass(frozen=True)
class Observed:
    """What the database holds now, in the terms metrics_rollup_state records."""

    interactions_max_id: int | None
    users_count: int
    users_max_id: int | None
    events_count: int
    events_max_id: int | None
    events_max_updated_at: datetime | None


@dataclass(frozen=True)
class RefreshResult:
    """status: current (nothing to do), updated (some days recomputed), rebuilt (all of it) or
    busy (another refresh or a writer holds the lock; nothing done)."""

    status: str
    days: int
    seconds: float
    reason: str


def _windows_seconds() -> tuple[int, int]:
    return (int(live.CLICK_WINDOW.total_seconds()), int(live.REGISTRATION_WINDOW.total_seconds()))


def covers(click_window: timedelta, registration_window: timedelta) -> bool:
    """Whether the rollup can answer attribution under these windows (the defaults only)."""
    return (int(click_window.total_seconds()), int(registration_window.total_seconds())) \
        == _windows_seconds()


def hold_for_writer(connection: Connection) -> None:
    """Call at the start of a transaction that inserts interactions (import, demo data): on
    Postgres it locks the rollup state FOR SHARE until the transaction ends, so no refresh
    reads an id mark while this transaction's ids are still invisible. SQLite serialises
    writers by itself."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            select(state_table.c.id).where(state_table.c.id == STATE_ID).with_for_update(read=True)
        )


def forget(connection: Connection) -> None:
    """Empty the rollup and mark it never built, inside the caller's transaction: for a wipe of
    the platform tables, after which ids start again and the id mark would mean nothing."""
    for table in (counts_table, attributed_table):
        connection.execute(delete(table))
    connection.execute(update(state_table).values(
        interactions_max_id=None, refreshed_at=None))


# ---- observing ------------------------------------------------------------------------------


def _observe(connection: Connection) -> Observed:
    newest = connection.execute(select(func.max(interactions.c.id))).scalar_one()
    user_count, user_max = connection.execute(
        select(func.count(), func.max(users.c.id)).select_from(users)).one()
    event_row = connection.execute(
        select(func.count(), func.max(events.c.id), func.max(events.c.updated_at))
        .select_from(events)).one()
    return Observed(
        interactions_max_id=newest,
        users_count=int(user_count),
        users_max_id=user_max,
        events_count=int(event_row[0]),
        events_max_id=event_row[1],
        events_max_updated_at=event_row[2],
    )


def _state(connection: Connection) -> Any:
    return connection.execute(select(state_table).where(state_table.c.id == STATE_ID)).one_or_none()


def _unchanged(state: Any, seen: Observed) -> bool:
    return (
        state is not None
        and state.refreshed_at is not None
        and (state.click_window_seconds, state.registration_window_seconds) == _windows_seconds()
        and state.interactions_max_id == seen.interactions_max_id
        and (state.users_count, state.users_max_id) == (seen.users_count, seen.users_max_id)
        and (state.events_count, state.events_max_id) == (seen.events_count, seen.events_max_id)
        and state.events_max_updated_at == seen.events_max_updated_at
    )


def _rows_lost(connection: Connection, table, old_count: int | None, old_max: int | None,
               new_count: int) -> bool:
    """True when rows were deleted since the mark: the count is not the old count plus the
    rows with an id above the old maximum."""
    if old_count is None:
        return True
    added = 0
    if old_max is not None:
        added = connection.execute(
            select(func.count()).select_from(table).where(table.c.id > old_max)).scalar_one()
    else:
        added = new_count
    return new_count != old_count + int(added)


# ---- planning -------------------------------------------------------------------------------


def _full_rebuild_reason(connection: Connection, state: Any, seen: Observed) -> str | None:
    if state is None or state.refreshed_at is None:
        return "never built"
    if (state.click_window_seconds, state.registration_window_seconds) != _windows_seconds():
        return "attribution windows changed"
    if _rows_lost(connection, users, state.users_count, state.users_max_id, seen.users_count):
        return "users were deleted"
    if _rows_lost(connection, events, state.events_count, state.events_max_id, seen.events_count):
        return "events were deleted"
    if seen.interactions_max_id is not None and state.interactions_max_id is not None \
            and seen.interactions_max_id < state.interactions_max_id:
        return "interactions were deleted"
    return None


def _days_of_new_interactions(connection: Connection, since_id: int | None) -> set[date]:
    day = live.utc_day(interactions.c.occurred_at, connection.dialect.name)
    # a literal, not a bind parameter: SELECT and GROUP BY must be the same expression
    is_impression = interactions.c.type == literal_column("'impression'")
    query = (
        select(day.label("day"), is_impression.label("impression"))
        .where(interactions.c.type.in_(live._COUNTED_TYPES))
        .group_by(day, is_impression)
    )
    if since_id is not None:
        query = query.where(interactions.c.id > since_id)
    reach = math.ceil(max(live.CLICK_WINDOW, live.REGISTRATION_WINDOW) / timedelta(days=1))
    days: set[date] = set()
    for value, impression in connection.execute(query):
        first = live.as_date(value)
        # a new impression may attribute conversions up to the longest window after it
        days.update(first + timedelta(days=i) for i in range(reach + 1 if impression else 1))
    return days


def _days_of_changed_events(connection: Connection, state: Any) -> set[date] | None:
    """Days of the interactions of events updated since the mark (their category may have
    changed); None when so many changed that a full rebuild is cheaper."""
    if state.events_max_updated_at is None or state.events_max_id is None:
        return set()
    changed = select(events.c.id).where(
        events.c.updated_at > state.events_max_updated_at, events.c.id <= state.events_max_id)
    ids = [row[0] for row in connection.execute(changed.limit(MAX_CHANGED_EVENTS + 1))]
    if len(ids) > MAX_CHANGED_EVENTS:
        return None
    if not ids:
        return set()
    day = live.utc_day(interactions.c.occurred_at, connection.dialect.name)
    query = (
        select(day.label("day"))
        .where(interactions.c.event_id.in_(ids), interactions.c.type.in_(live._COUNTED_TYPES))
        .group_by(day)
    )
    return {live.as_date(value) for (value,) in connection.execute(query)}


# ---- recomputing ----------------------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, dtime(0), tzinfo=timezone.utc)


def _day_runs(days: set[date]) -> list[tuple[date, date]]:
    """Contiguous [first, end) runs of days."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


def _recompute(connection: Connection, first: date, end: date) -> None:
    """Replace the rollup rows of the days [first, end) with sums computed from interactions."""
    dialect = connection.dialect.name
    start_at, end_at = _midnight(first), _midnight(end)
    for table in (counts_table, attributed_table):
        connection.execute(delete(table).where(table.c.day >= first, table.c.day < end))

    day = live.utc_day(interactions.c.occurred_at, dialect)
    by_category = (
        select(day.label("day"), events.c.category, *live._count_columns(interactions.c.type))
        .select_from(interactions.join(events, events.c.id == interactions.c.event_id))
        .where(live._in_range(interactions, start_at, end_at))
        .group_by(day, events.c.category)
    )
    connection.execute(insert(counts_table).from_select(
        ["day", "category", "impressions", "clicks", "registrations", "unregistrations"],
        by_category))

    rows = live.counted_rows(start_at, end_at, live.CLICK_WINDOW, live.REGISTRATION_WINDOW, dialect)
    keys = (rows.c.day, rows.c.attributed, rows.c.model_version, rows.c.strategy, rows.c.position)
    by_group = select(
        *keys,
        func.sum(rows.c.impressions),
        func.sum(rows.c.clicks),
        func.sum(rows.c.registrations),
    ).group_by(*keys)
    connection.execute(insert(attributed_table).from_select(
        ["day", "attributed", "model_version", "strategy", "position",
         "impressions", "clicks", "registrations"],
        by_group))


def _rebuild_all(connection: Connection) -> int:
    for table in (counts_table, attributed_table):
        connection.execute(delete(table))
    first, last = connection.execute(
        select(func.min(interactions.c.occurred_at), func.max(interactions.c.occurred_at))).one()
    if first is None:
        return 0
    first_day = first.astimezone(timezone.utc).date()
    end_day = last.astimezone(timezone.utc).date() + timedelta(days=1)
    _recompute(connection, first_day, end_day)
    return (end_day - first_day).days


def _save_state(connection: Connection, seen: Observed) -> None:
    click, registration = _windows_seconds()
    connection.execute(
        update(state_table).where(state_table.c.id == STATE_ID).values(
            **asdict(seen),  # Observed's fields are the state's columns
            click_window_seconds=click,
            registration_window_seconds=registration,
            refreshed_at=utcnow(),
        ))


# ---- refresh --------------------------------------------------------------------------------


def _lock(connection: Connection) -> None:
    """Hold the state row for this transaction, or raise OperationalError at once (Postgres)
    or after LOCK_WAIT_MS (SQLite)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            select(state_table.c.id).where(state_table.c.id == STATE_ID)
            .with_for_update(nowait=True))
        return
    # SQLite: the first write of the transaction takes the database's write lock.
    connection.exec_driver_sql(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
    connection.execute(update(state_table).where(state_table.c.id == STATE_ID)
                       .values(refreshed_at=state_table.c.refreshed_at))


def _is_lock_failure(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlstate", None)
    return code == "55P03" or "database is locked" in str(error.orig)


def refresh(url: str | None = None) -> RefreshResult:
    """Bring the rollup up to date with the interactions (see the module docstring)."""
    started = time.perf_counter()
    engine = get_engine(url)
    with engine.connect() as connection:
        if _unchanged(_state(connection), _observe(connection)):
            return RefreshResult("current", 0, time.perf_counter() - started, "nothing changed")
    try:
        with engine.connect() as connection:
            try:
                with connection.begin():
                    status, days, reason = _refresh_locked(connection)
            finally:
                if connection.dialect.name == "sqlite":
                    from data_access.db import SQLITE_BUSY_TIMEOUT_MS
                    connection.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    except OperationalError as error:
        if not _is_lock_failure(error):
            raise
        return RefreshResult("busy", 0, time.perf_counter() - started,
                             "another refresh or a data load holds the rollup")
    return RefreshResult(status, days, time.perf_counter() - started, reason)


def _refresh_locked(connection: Connection) -> tuple[str, int, str]:
    _lock(connection)
    state, seen = _state(connection), _observe(connection)
    if state is None:
        connection.execute(insert(state_table).values(id=STATE_ID))
        state = _state(connection)
    if _unchanged(state, seen):
        return "current", 0, "nothing changed"
    reason = _full_rebuild_reason(connection, state, seen)
    changed_event_days = None if reason else _days_of_changed_events(connection, state)
    if reason is None and changed_event_days is None:
        reason = f"more than {MAX_CHANGED_EVENTS} events were updated"
    if reason is not None:
        days = _rebuild_all(connection)
        _save_state(connection, seen)
        return "rebuilt", days, reason
    days = set(changed_event_days)
    if seen.interactions_max_id != state.interactions_max_id:
        days |= _days_of_new_interactions(connection, state.interactions_max_id)
    for first, end in _day_runs(days):
        _recompute(connection, first, end)
    _save_state(connection, seen)
    return "updated", len(days), f"{len(days)} day(s) recomputed"


# ---- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Split:
    """[start, end) as live edges and whole UTC days [first_day, end_day) in between."""

    edges: tuple[tuple[datetime, datetime], ...]
    first_day: date | None
    end_day: date | None


def _split(start: datetime, end: datetime) -> _Split:
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    first_day = start.date() if start == _midnight(start.date()) else start.date() + timedelta(days=1)
    end_day = end.date()
    if first_day >= end_day:
        return _Split(((start, end),), None, None)
    edges = []
    if start < _midnight(first_day):
        edges.append((start, _midnight(first_day)))
    if _midnight(end_day) < end:
        edges.append((_midnight(end_day), end))
    return _Split(tuple(edges), first_day, end_day)


def _none_for_nan(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.Series(
            [None if _missing(v) else v for v in frame[column]], index=frame.index,
            dtype="object")
    return frame


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _sum_groups(frames: list[pd.DataFrame], keys: list[str], values: tuple[str, ...]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype="int64" if column in values else "object")
                             for column in (*keys, *values)})
    both = pd.concat([f.astype({k: "object" for k in keys}) for f in frames], ignore_index=True)
    summed = both.groupby(keys, dropna=False, sort=False)[list(values)].sum().reset_index()
    summed = _none_for_nan(summed, tuple(keys))
    for column in values:
        summed[column] = summed[column].astype("int64")
    order = sorted(range(len(summed)), key=lambda i: tuple(
        (_missing(summed.at[i, k]), summed.at[i, k] if not _missing(summed.at[i, k]) else 0)
        for k in keys))
    return summed.iloc[order].reset_index(drop=True)


class RollupReader:
    """The four counting functions of data_access/metrics, answered from the rollup for whole
    days (call `refresh` first) and live for the partial days at the ends of a range."""

    def __init__(self, url: str | None = None):
        self.url = url

    def _days(self, table, keys: list, values: tuple[str, ...], first: date, end: date):
        columns = [table.c[k] for k in keys]
        query = (
            select(*columns, *[func.sum(table.c[v]).label(v) for v in values])
            .where(table.c.day >= first, table.c.day < end)
            .group_by(*columns)
        )
        with get_engine(self.url).connect() as connection:
            rows = connection.execute(query).all()
        return live._frame(rows, (*keys, *values))

    def counts_by_day(self, start: datetime, end: datetime) -> pd.DataFrame:
        live._check_range(start, end)
        split = _split(start, end)
        frames = [live.counts_by_day(a, b, self.url) for a, b in split.edges]
        if split.first_day is not None:
            whole = self._days(counts_table, ["day"], live.COUNT_COLUMNS, split.first_day,
                               split.end_day)
            whole["day"] = [live.as_date(value) for value in whole["day"]]
            frames.append(whole)
        frame = _sum_groups(frames, ["day"], live.COUNT_COLUMNS)
        return frame.sort_values("day", kind="stable").reset_index(drop=True)

    def counts_by_category(self, start: datetime, end: datetime) -> pd.DataFrame:
        live._check_range(start, end)
        split = _split(start, end)
        frames = [live.counts_by_category(a, b, self.url) for a, b in split.edges]
        if split.first_day is not None:
            frames.append(self._days(counts_table, ["category"], live.COUNT_COLUMNS,
                                     split.first_day, split.end_day))
        return _sum_groups(frames, ["category"], live.COUNT_COLUMNS)

    def count_totals(self, start: datetime, end: datetime) -> dict[str, int]:
        by_day = self.counts_by_day(start, end)
        return {name: int(by_day[name].sum()) for name in live.COUNT_COLUMNS}

    def attributed_counts(self, start: datetime, end: datetime) -> pd.DataFrame:
        live._check_range(start, end)
        split = _split(start, end)
        keys = ["attributed", "model_version", "strategy", "position"]
        values = ("impressions", "clicks", "registrations")
        frames = [live.attributed_counts(a, b, url=self.url) for a, b in split.edges]
        if split.first_day is not None:
            frames.append(self._days(attributed_table, keys, values, split.first_day,
                                     split.end_day))
        frame = _sum_groups(frames, keys, values)
        frame["attributed"] = frame["attributed"].astype("int64")
        for column in ("model_version", "position"):
            frame[column] = frame[column].astype("Int64")
        return frame[list(live.ATTRIBUTED_COLUMNS)]


class LiveReader:
    """The same four functions, straight from interactions (any windows; no rollup)."""

    def __init__(self, click_window: timedelta, registration_window: timedelta,
                 url: str | None = None):
        self.click_window, self.registration_window, self.url = click_window, registration_window, url

    def counts_by_day(self, start: datetime, end: datetime) -> pd.DataFrame:
        return live.counts_by_day(start, end, self.url)

    def counts_by_category(self, start: datetime, end: datetime) -> pd.DataFrame:
        return live.counts_by_category(start, end, self.url)

    def count_totals(self, start: datetime, end: datetime) -> dict[str, int]:
        return live.count_totals(start, end, self.url)

    def attributed_counts(self, start: datetime, end: datetime) -> pd.DataFrame:
        return live.attributed_counts(start, end, self.click_window, self.registration_window,
                                      self.url)


def reader(click_window: timedelta = live.CLICK_WINDOW,
           registration_window: timedelta = live.REGISTRATION_WINDOW,
           url: str | None = None) -> RollupReader | LiveReader:
    """The rollup (refreshed first) when it covers these windows and its lock was free; else
    the live queries, which give the same numbers more slowly."""
    if covers(click_window, registration_window) and refresh(url).status != "busy":
        return RollupReader(url)
    return LiveReader(click_window, registration_window, url)
