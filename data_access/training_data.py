"""Everything training reads, as numpy arrays and DataFrames (no ORM objects).

Interactions come back as int64 ids, a categorical type and int64 epoch seconds, converted
inside the database so that millions of rows load without per-row Python work.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from data_access.db import get_engine
from data_access.schema import INTERACTION_TYPES

USER_COLUMNS = ["id", "email", "latitude", "longitude", "city", "tags"]
EVENT_COLUMNS = [
    "id", "event_id", "category", "tags", "organizer", "city", "latitude", "longitude",
    "price", "start_time", "end_time", "timezone", "title",
]
INTERACTION_COLUMNS = ["user_id", "event_id", "type", "occurred_at"]
SMALL_TAGS = 2_000


@dataclass(frozen=True)
class TrainingData:
    """interactions: user_id, event_id (int64 DB ids), type (categorical of INTERACTION_TYPES),
    occurred_at (int64 epoch seconds, UTC), sorted by time.
    users: id, email, latitude, longitude, city, tags (list[str]).
    events: id, event_id, category, tags (list[str]), organizer, city, latitude, longitude,
    price, start_time, end_time (datetime64[ns, UTC]), timezone, title."""

    interactions: pd.DataFrame
    users: pd.DataFrame
    events: pd.DataFrame
    loaded_at: datetime

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def before(self, cutoff: datetime | int) -> "TrainingData":
        """The same users and events, with only the interactions before a cutoff."""
        seconds = cutoff if isinstance(cutoff, (int, np.integer)) else to_epoch(cutoff)
        kept = self.interactions[self.interactions["occurred_at"].to_numpy() < seconds]
        return replace(self, interactions=kept.reset_index(drop=True))


def to_epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware time")
    return int(moment.timestamp())


def _epoch_sql(engine: Engine, column: str) -> str:
    if engine.dialect.name == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"
    return f"CAST(strftime('%s', {column}) AS INTEGER)"


def _type_code_sql() -> str:
    cases = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(INTERACTION_TYPES))
    return f"CASE type {cases} ELSE -1 END"


def _read(engine: Engine, sql: str, params: dict | None = None) -> pd.DataFrame:
    from sqlalchemy import text

    with engine.connect() as connection:
        result = connection.execute(text(sql), params or {})
        columns = list(result.keys())
        rows = result.fetchall()
    return pd.DataFrame.from_records(rows, columns=columns)


def load_interactions(engine: Engine, before: datetime | None = None) -> pd.DataFrame:
    """All interactions (or those before a time) as int64 columns plus a categorical type."""
    postgres = engine.dialect.name == "postgresql"
    where = ""
    if before is not None:
        where = "WHERE occurred_at < %s" if postgres else \
            "WHERE julianday(occurred_at) < julianday(?)"
    # No ORDER BY: sorting millions of rows is cheaper in numpy than in the database.
    sql = (
        f"SELECT CAST(user_id AS BIGINT), CAST(event_id AS BIGINT), "
        f"CAST({_type_code_sql()} AS BIGINT), "
        f"{_epoch_sql(engine, 'occurred_at')} FROM interactions {where}"
    )
    params = () if before is None else (_bind_time(engine, before),)
    raw = engine.raw_connection()
    try:
        arr = _fetch_copy(raw, sql, params) if postgres else _fetch_rows(raw, sql, params)
    finally:
        raw.close()
    arr = arr[np.argsort(arr[:, 3], kind="stable")]
    codes = arr[:, 2]
    return pd.DataFrame({
        "user_id": arr[:, 0],
        "event_id": arr[:, 1],
        "type": pd.Categorical.from_codes(np.where(codes < 0, -1, codes),
                                          categories=list(INTERACTION_TYPES)),
        "occurred_at": arr[:, 3],
    })


def _fetch_rows(raw, sql: str, params: tuple) -> np.ndarray:
    cursor = raw.cursor()
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return np.empty((0, 4), dtype=np.int64)
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


_BINARY_ROW = np.dtype([
    ("fields", ">i2"), ("l0", ">i4"), ("c0", ">i8"), ("l1", ">i4"), ("c1", ">i8"),
    ("l2", ">i4"), ("c2", ">i8"), ("l3", ">i4"), ("c3", ">i8"),
])
_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _fetch_copy(raw, sql: str, params: tuple) -> np.ndarray:
    """Postgres: COPY the query out in binary (four non-null bigints per row, a fixed 50-byte
    layout) and view it as a numpy array: no per-row Python work, no text parsing."""
    import io

    buffer = io.BytesIO()
    cursor = raw.cursor()
    try:
        if params:  # our own datetime, rendered as a literal: COPY takes no bind parameters
            sql = sql.replace("%s", f"'{params[0].isoformat()}'::timestamptz")
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT binary)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    finally:
        cursor.close()
    raw.commit()
    data = buffer.getbuffer()
    if len(data) < 21 or bytes(data[:11]) != _BINARY_SIGNATURE:
        raise RuntimeError("unexpected COPY binary header from the database")
    start = 19 + int.from_bytes(data[15:19], "big")
    body = np.frombuffer(data[start:len(data) - 2], dtype=_BINARY_ROW)
    if len(body) and not (body["fields"] == 4).all():
        raise RuntimeError("unexpected COPY binary row layout from the database")
    return np.stack([body[f"c{i}"].astype(np.int64) for i in range(4)], axis=1)


def _bind_time(engine: Engine, moment: datetime):
    """Postgres compares timestamptz; SQLite compares julianday() of both sides (the stored
    text may or may not carry a fractional part, so comparing text is off at equal seconds)."""
    moment = moment.astimezone(timezone.utc)
    if engine.dialect.name == "sqlite":
        return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def load_users(engine: Engine) -> pd.DataFrame:
    users = _read(engine, "SELECT id, email, latitude, longitude, city FROM users ORDER BY id")
    tags = _read(engine, "SELECT user_id, tag FROM user_interests ORDER BY user_id, tag")
    return _attach_tags(users, tags, "user_id", USER_COLUMNS)


def load_events_frame(engine: Engine | None = None, ids: list[int] | np.ndarray | None = None,
                      upcoming_after: datetime | None = None) -> pd.DataFrame:
    """Events as a frame with a tags list; all of them, some ids, or those starting after t."""
    engine = engine or get_engine()
    where, params = [], {}
    if ids is not None:
        id_list = [int(i) for i in np.asarray(ids).tolist()]
        if not id_list:
            return _empty_events()
        where.append(f"id IN ({', '.join(str(i) for i in id_list)})")
    if upcoming_after is not None:
        where.append("start_time > :after" if engine.dialect.name == "postgresql" else
                     "julianday(start_time) > julianday(:after)")
        params["after"] = _bind_time(engine, upcoming_after)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    events = _read(
        engine,
        f"SELECT {_EVENT_SELECT} FROM events {clause} ORDER BY id",
        params,
    )
    if events.empty:
        return _empty_events()
    # Only the tags of the events read (a fold-in reads a few dozen events, not the catalog).
    tag_where = f"WHERE event_id IN (SELECT id FROM events {clause})" if clause else ""
    tags = _read(engine, f"SELECT event_id, tag FROM event_tags {tag_where} "
                         "ORDER BY event_id, tag", params)
    return _events_frame(events, tags)


_EVENT_SELECT = ("id, event_id, category, organizer, city, latitude, longitude, price, "
                 "start_time, end_time, timezone, title")


def _events_frame(events: pd.DataFrame, tags: pd.DataFrame) -> pd.DataFrame:
    """Event rows (the _EVENT_SELECT columns) with their tags, typed as training reads them."""
    events = _attach_tags(events, tags, "event_id", EVENT_COLUMNS, key="id")
    for column in ("start_time", "end_time"):
        events[column] = pd.to_datetime(events[column], utc=True, format="ISO8601")
    for column in ("latitude", "longitude", "price"):
        events[column] = pd.to_numeric(events[column], errors="coerce").astype("float64")
    events["id"] = events["id"].astype(np.int64)
    return events


def load_fold_in_history(user_id: int, limit: int, url: str | None = None) -> pd.DataFrame:
    """A user's newest `limit` non-impression interactions, newest first, as event rows (the
    columns and types of load_events_frame) after `id` and `type`: what HybridModel.fold_in
    takes. Two statements on one connection: the interactions joined with their events, then
    those events' tags."""
    with get_engine(url).connect() as connection:
        return load_fold_in_histories(connection, [user_id], limit)[int(user_id)]


def load_fold_in_histories(connection, user_ids: list[int], limit: int) -> dict[int, pd.DataFrame]:
    """load_fold_in_history for many users on the caller's connection, in two statements
    whatever their number (a window per user keeps each one's newest `limit`). Every user
    asked for gets a frame, empty (columns id and type) when they have no history."""
    from sqlalchemy import bindparam, text

    ids = sorted({int(u) for u in user_ids})
    if not ids:
        return {}
    names = [c.strip() for c in _EVENT_SELECT.split(",")]
    rows = connection.execute(text(
        f"SELECT h.user_id, h.type, {', '.join('e.' + c for c in names)} FROM ("
        "SELECT i.user_id, i.type, i.event_id, row_number() OVER (PARTITION BY i.user_id "
        "ORDER BY i.occurred_at DESC, i.id DESC) AS position FROM interactions i "
        "WHERE i.user_id IN :user_ids AND i.type <> 'impression') h "
        "JOIN events e ON e.id = h.event_id WHERE h.position <= :limit "
        "ORDER BY h.user_id, h.position").bindparams(bindparam("user_ids", expanding=True)),
        {"user_ids": ids, "limit": int(limit)}).all()
    tags: dict[int, list[str]] = {}
    events = sorted({int(row[2]) for row in rows})
    if events:
        for event_id, tag in connection.execute(text(
                "SELECT event_id, tag FROM event_tags WHERE event_id IN :ids "
                "ORDER BY event_id, tag").bindparams(bindparam("ids", expanding=True)),
                {"ids": events}):
            tags.setdefault(int(event_id), []).append(tag)
    per_user: dict[int, list] = {user_id: [] for user_id in ids}
    for row in rows:
        per_user[int(row[0])].append(row[1:])
    return {user_id: _history_frame(names, found, tags) for user_id, found in per_user.items()}


def _history_frame(names: list[str], rows: list, tags: dict[int, list[str]]) -> pd.DataFrame:
    """(type, *event columns) rows into the frame fold_in takes."""
    if not rows:
        return pd.DataFrame(columns=["id", "type"])
    columns = dict(zip(["type", *names], map(list, zip(*rows))))
    # plain lists and arrays into one DataFrame: per-column Series cost milliseconds here
    frame: dict[str, Any] = {"id": np.asarray(columns["id"], dtype=np.int64),
                             "type": [str(t) for t in columns["type"]]}
    for name in EVENT_COLUMNS[1:]:
        if name == "tags":
            frame[name] = np.empty(len(rows), dtype=object)
            frame[name][:] = [tags.get(int(i), []) for i in columns["id"]]
        elif name in ("start_time", "end_time"):
            frame[name] = pd.to_datetime(columns[name], utc=True, format="ISO8601")
        elif name in ("latitude", "longitude", "price"):  # Float columns: float or NULL
            frame[name] = np.array([np.nan if v is None else float(v) for v in columns[name]],
                                   dtype=np.float64)
        else:
            frame[name] = columns[name]
    return pd.DataFrame(frame)


def _empty_events() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    frame["id"] = frame["id"].astype(np.int64)
    for column in ("latitude", "longitude", "price"):
        frame[column] = frame[column].astype("float64")
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _attach_tags(frame: pd.DataFrame, tags: pd.DataFrame, tag_key: str, columns: list[str],
                 key: str = "id") -> pd.DataFrame:
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        frame["id"] = frame["id"].astype(np.int64)
        return frame
    if tags.empty:
        lists = pd.Series([[] for _ in range(len(frame))], index=frame.index)
    elif len(tags) <= SMALL_TAGS:  # a few events (a fold-in): plain dicts beat a groupby
        by_key: dict = {}
        for owner, tag in zip(tags[tag_key].tolist(), tags["tag"].tolist()):
            by_key.setdefault(owner, []).append(tag)
        lists = pd.Series([by_key.get(k, []) for k in frame[key].tolist()], index=frame.index,
                          dtype=object)
    else:
        grouped = tags.groupby(tag_key, sort=False)["tag"].agg(list)
        lists = frame[key].map(grouped)
        lists = lists.map(lambda v: v if isinstance(v, list) else [])
    frame = frame.copy()
    frame["tags"] = lists.to_numpy()
    if "latitude" in frame:
        for column in ("latitude", "longitude"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["id"] = frame["id"].astype(np.int64)
    return frame[columns]


def load_training_data(before: datetime | None = None, url: str | None = None) -> TrainingData:
    """Users, events and interactions (optionally only those before a time) for training."""
    engine = get_engine(url)
    loaded_at = datetime.now(timezone.utc)
    interactions = load_interactions(engine, before)
    users = load_users(engine)
    events = load_events_frame(engine)
    return TrainingData(interactions=interactions, users=users, events=events,
                        loaded_at=loaded_at)


def load_user_context_row(user_id: int, url: str | None = None) -> dict | None:
    """One user's id, email, home and interest tags as a plain dict (None when unknown)."""
    engine = get_engine(url)
    users = _read(engine, "SELECT id, email, latitude, longitude, city FROM users WHERE id = :id",
                  {"id": int(user_id)})
    if users.empty:
        return None
    tags = _read(engine, "SELECT tag FROM user_interests WHERE user_id = :id ORDER BY tag",
                 {"id": int(user_id)})
    row = users.iloc[0].to_dict()
    row["id"] = int(row["id"])
    row["tags"] = tags["tag"].tolist()
    return row
