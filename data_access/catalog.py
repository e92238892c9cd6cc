"""Reads for serving and the console: users, a user's history, candidate events, popularity,
overview counts. Each function opens one managed session and returns plain data."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property

import pandas as pd
from sqlalchemy import String, TypeDecorator, and_, func, or_, select, type_coerce

from data_access.db import session_scope
from data_access.emails import normalize_email
from data_access.schema import Event, EventTag, Interaction, User, UserInterest

#: interaction types that say "I want this" (popularity counts them)
POSITIVE_TYPES = ("register", "attend", "favorite", "share")

EVENT_COLUMNS = (
    "id", "event_id", "title", "category", "tags", "organizer", "city", "latitude", "longitude",
    "start_time", "end_time", "timezone", "price", "capacity",
)


@dataclass(frozen=True)
class UserRow:
    id: int
    email: str
    name: str | None
    latitude: float | None
    longitude: float | None
    city: str | None
    created_at: datetime | None
    tags: tuple[str, ...] = ()

    @property
    def has_home(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(frozen=True)
class UserHistory:
    """What serving needs to know about one user's past.

    registered_newest_first: database ids of events with a register not later undone by an
    unregister, the latest registration first (ties: higher id); `registered` is the same ids
    as a set.
    rejected: database ids of events the user rejected.
    organizers / categories / tags: of the events they registered for (for honest reasons).
    recent: the latest interactions, newest first, with the event's features.
    """

    user_id: int
    registered_newest_first: tuple[int, ...] = ()
    rejected: frozenset[int] = frozenset()
    organizers: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    recent: tuple[dict, ...] = field(default_factory=tuple)

    @cached_property
    def registered(self) -> frozenset[int]:
        return frozenset(self.registered_newest_first)


def _user_rows(session, users) -> list[UserRow]:
    users = list(users)
    if not users:
        return []
    tags: dict[int, list[str]] = {u.id: [] for u in users}
    for user_id, tag in session.execute(
        select(UserInterest.user_id, UserInterest.tag)
        .where(UserInterest.user_id.in_(list(tags)))
        .order_by(UserInterest.user_id, UserInterest.tag)
    ):
        tags[user_id].append(tag)
    return [
        UserRow(
            id=u.id, email=u.email, name=u.name, latitude=u.latitude, longitude=u.longitude,
            city=u.city, created_at=u.created_at, tags=tuple(tags[u.id]),
        )
        for u in users
    ]


def _one_user(condition, session=None) -> UserRow | None:
    if session is None:
        with session_scope() as session:
            return _one_user(condition, session)
    rows = session.execute(
        select(User.id, User.email, User.name, User.latitude, User.longitude, User.city,
               User.created_at, UserInterest.tag)
        .outerjoin(UserInterest, UserInterest.user_id == User.id)
        .where(condition)
        .order_by(UserInterest.tag)
    ).all()
    if not rows:
        return None
    first = rows[0]
    return UserRow(
        id=first.id, email=first.email, name=first.name, latitude=first.latitude,
        longitude=first.longitude, city=first.city, created_at=first.created_at,
        tags=tuple(r.tag for r in rows if r.tag is not None),
    )


def user_by_email(email: str, session=None) -> UserRow | None:
    """One query: the user and their interest tags (emails are stored normalized)."""
    email = normalize_email(email)
    if not email or "\x00" in email:
        return None
    return _one_user(User.email == email, session)


def user_by_id(user_id: int) -> UserRow | None:
    return _one_user(User.id == int(user_id))


def search_users(query: str, limit: int = 20) -> list[UserRow]:
    """Users whose email or name starts with `query` (index range scans), then, to fill up to
    `limit`, those containing it. An empty query lists the first users by email."""
    query = (query or "").strip()
    limit = max(1, int(limit))
    if "\x00" in query:  # stored text never holds NUL (Postgres cannot), so nothing matches
        return []
    with session_scope() as session:
        if not query:
            users = session.scalars(select(User).order_by(User.email).limit(limit)).all()
            return _user_rows(session, users)
        found: dict[int, User] = {}
        lowered = query.lower()
        prefixes = (
            (User.email, lowered),
            (User.name, query),
            (User.name, query[:1].upper() + query[1:]),
        )
        for column, prefix in prefixes:
            if len(found) >= limit:
                break
            # a range, not LIKE: uses the btree index on any dialect and collation
            for user in session.scalars(
                select(User)
                .where(and_(column >= prefix, column < prefix + "\uffff"))
                .order_by(column)
                .limit(limit)
            ):
                found.setdefault(user.id, user)
        if len(found) < limit:
            # '%' and '_' typed by the operator are themselves, not wildcards
            escaped = lowered.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            for user in session.scalars(
                select(User)
                .where(or_(func.lower(User.email).like(pattern, escape="\\"),
                           func.lower(User.name).like(pattern, escape="\\")))
                .order_by(User.email)
                .limit(limit)
            ):
                found.setdefault(user.id, user)
        users = list(found.values())[:limit]
        return _user_rows(session, users)


def all_user_ids(after_id: int = 0, limit: int = 500) -> list[tuple[int, str]]:
    """(id, email) pages in id order: the refresh walks every user with these."""
    with session_scope() as session:
        return [
            (row.id, row.email)
            for row in session.execute(
                select(User.id, User.email).where(User.id > after_id).order_by(User.id).limit(limit)
            )
        ]


def users_by_ids(user_ids: list[int], session=None) -> list[UserRow]:
    if session is None:
        with session_scope() as session:
            return users_by_ids(user_ids, session)
    users = session.scalars(select(User).where(User.id.in_(list(user_ids))).order_by(User.id))
    return _user_rows(session, users.all())


def serving_user(email: str) -> tuple[UserRow, UserHistory] | None:
    """What one recommend request reads about its user, in one session: the user with their
    interest tags (one query) and their decisions (one grouped query, one more for tags)."""
    with session_scope() as session:
        row = user_by_email(email, session)
        if row is None:
            return None
        return row, user_history(row.id, session=session)


def user_history(user_id: int, recent_limit: int = 0, session=None) -> UserHistory:
    """Decisions (registered / rejected) with the organizers and categories of what they
    registered for: one grouped query (plus one for tags when they registered at all).
    `recent_limit` > 0 also returns their latest interactions with event features."""
    if session is None:
        with session_scope() as session:
            return user_history(user_id, recent_limit, session)
    last = (
        select(
            Interaction.event_id,
            Interaction.type,
            func.max(Interaction.occurred_at).label("at"),
            Event.organizer,
            Event.category,
        )
        .join(Event, Event.id == Interaction.event_id)
        .where(
            Interaction.user_id == user_id,
            Interaction.type.in_(("register", "unregister", "reject")),
        )
        .group_by(Interaction.event_id, Interaction.type, Event.organizer, Event.category)
    )
    latest: dict[int, dict[str, datetime]] = {}
    features: dict[int, tuple[str | None, str | None]] = {}
    for event_id, kind, at, organizer, category in session.execute(last):
        latest.setdefault(event_id, {})[kind] = at
        features[event_id] = (organizer, category)
    registered, rejected, organizers, categories = _decided(latest, features)
    tags: set[str] = set()
    if registered:
        tags = set(
            session.scalars(
                select(EventTag.tag).where(EventTag.event_id.in_(list(registered))).distinct()
            )
        )
    recent: tuple[dict, ...] = ()
    if recent_limit > 0:
        recent = tuple(
            {
                "event_pk": row.event_pk,
                "event_id": row.event_id,
                "type": row.type,
                "occurred_at": row.occurred_at,
                "title": row.title,
                "category": row.category,
                "organizer": row.organizer,
                "city": row.city,
            }
            for row in session.execute(
                select(
                    Interaction.event_id.label("event_pk"),
                    Event.event_id,
                    Interaction.type,
                    Interaction.occurred_at,
                    Event.title,
                    Event.category,
                    Event.organizer,
                    Event.city,
                )
                .join(Event, Event.id == Interaction.event_id)
                .where(Interaction.user_id == user_id, Interaction.type != "impression")
                .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
                .limit(recent_limit)
            )
        )
    return UserHistory(
        user_id=user_id,
        registered_newest_first=registered,
        rejected=frozenset(rejected),
        organizers=frozenset(organizers),
        categories=frozenset(categories),
        tags=frozenset(tags),
        recent=recent,
    )


def _decided(latest: dict[int, dict[str, datetime]],
             features: dict[int, tuple[str | None, str | None]]):
    """From each event's latest register / unregister / reject: (registered, newest first as
    `registered_newest_first` orders them; rejected; the organizers and categories of what is
    registered)."""
    registered = set()
    rejected = set()
    for event_id, kinds in latest.items():
        if "reject" in kinds:
            rejected.add(event_id)
        reg = kinds.get("register")
        unreg = kinds.get("unregister")
        if reg is not None and (unreg is None or _as_naive(reg) > _as_naive(unreg)):
            registered.add(event_id)
    organizers = {features[e][0] for e in registered if features[e][0]}
    categories = {features[e][1] for e in registered if features[e][1]}
    return registered_newest_first(registered, latest), rejected, organizers, categories


def registered_newest_first(registered: set[int], latest: dict[int, dict[str, datetime]]
                            ) -> tuple[int, ...]:
    """The registered event ids ordered by their latest registration, newest first."""
    return tuple(sorted(registered, key=lambda e: (_as_naive(latest[e]["register"]), e),
                        reverse=True))


def user_event_interactions(user_id: int, limit: int = 500) -> list[dict]:
    """A user's latest interactions (impressions left out), newest first, each with the text
    of its event: event_pk, type, title, category, organizer, tags (tuple)."""
    with session_scope() as session:
        rows = session.execute(
            select(Interaction.event_id, Interaction.type, Event.title, Event.category,
                   Event.organizer)
            .join(Event, Event.id == Interaction.event_id)
            .where(Interaction.user_id == user_id, Interaction.type != "impression")
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(limit)
        ).all()
        pks = sorted({row[0] for row in rows})
        tags: dict[int, list[str]] = {}
        if pks:
            for event_pk, tag in session.execute(
                select(EventTag.event_id, EventTag.tag)
                .where(EventTag.event_id.in_(pks)).order_by(EventTag.event_id, EventTag.tag)
            ):
                tags.setdefault(event_pk, []).append(tag)
    return [
        {"event_pk": pk, "type": kind, "title": title, "category": category,
         "organizer": organizer, "tags": tuple(tags.get(pk, ()))}
        for pk, kind, title, category, organizer in rows
    ]


def _as_naive(value: datetime) -> datetime:
    # max() over a typed column comes back aware; be safe if a driver hands back naive UTC
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def events_snapshot_key(with_count: bool = True) -> tuple:
    """Changes whenever events are added or edited (highest id, newest updated_at: two index
    seeks) and, with the count (an index scan), when one is removed."""
    with session_scope() as session:
        columns = [func.max(Event.id), func.max(Event.updated_at)]
        if with_count:
            columns.append(func.count())
        row = session.execute(select(*columns).select_from(Event)).one()
    newest = row[1].isoformat() if row[1] is not None else ""
    return (int(row[0] or 0), newest) + ((int(row[2] or 0),) if with_count else ())


def candidate_events(since: datetime) -> pd.DataFrame:
    """Events starting after `since`, one row each with the columns in EVENT_COLUMNS; tags is a
    tuple of strings. Times are aware UTC pandas timestamps; end_time may be NaT."""
    with session_scope() as session:
        # times come back raw (no per-row type processing) and are parsed column-wise below:
        # 100k rows in a fraction of the time
        connection = session.connection()  # Core rows: no ORM loading per row
        rows = connection.execute(
            select(
                Event.id, Event.event_id, Event.title, Event.category, Event.organizer,
                Event.city, Event.latitude, Event.longitude,
                type_coerce(Event.start_time, _Raw()), type_coerce(Event.end_time, _Raw()),
                Event.timezone, Event.price, Event.capacity,
            )
            .where(Event.start_time > since)
            .order_by(Event.start_time, Event.id)
        ).all()
        tag_rows = connection.execute(
            select(EventTag.event_id, EventTag.tag)
            .join(Event, Event.id == EventTag.event_id)
            .where(Event.start_time > since)
            .order_by(EventTag.event_id, EventTag.tag)
        ).all()
    tags: dict[int, list[str]] = {}
    for event_pk, tag in tag_rows:
        tags.setdefault(event_pk, []).append(tag)
    frame = pd.DataFrame(
        [tuple(r) for r in rows],
        columns=[
            "id", "event_id", "title", "category", "organizer", "city", "latitude",
            "longitude", "start_time", "end_time", "timezone", "price", "capacity",
        ],
    )
    frame["tags"] = [tuple(tags.get(pk, ())) for pk in frame["id"]]
    frame["start_time"] = _utc_column(frame["start_time"])
    frame["end_time"] = _utc_column(frame["end_time"])
    frame["latitude"] = pd.to_numeric(frame["latitude"], errors="coerce").astype("float64")
    frame["longitude"] = pd.to_numeric(frame["longitude"], errors="coerce").astype("float64")
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce").astype("float64")
    frame["id"] = frame["id"].astype("int64")
    frame["timezone"] = frame["timezone"].fillna("UTC")
    return frame[list(EVENT_COLUMNS)].reset_index(drop=True)


class _Raw(TypeDecorator):
    """A column read as the driver hands it over (SQLite: text; Postgres: datetime)."""

    impl = String
    cache_ok = True

    def process_result_value(self, value, dialect):
        return value

    def result_processor(self, dialect, coltype):
        return None


def _utc_column(values: pd.Series) -> pd.Series:
    """Aware UTC timestamps from stored times (naive text is UTC, as UTCDateTime stores it)."""
    if len(values) == 0:
        return pd.Series(pd.to_datetime(values, utc=True), index=values.index)
    sample = values.dropna()
    if len(sample) and isinstance(sample.iloc[0], str):
        return pd.to_datetime(values, utc=True, format="ISO8601")
    return pd.to_datetime(values, utc=True)


def upcoming_events(now: datetime) -> pd.DataFrame:
    """Events with start_time > now (same columns as candidate_events)."""
    return candidate_events(now)


def upcoming_categories(now: datetime) -> list[str]:
    """The distinct categories of events starting after now, sorted case-insensitively."""
    with session_scope() as session:
        rows = session.scalars(
            select(Event.category).where(Event.start_time > now, Event.category.is_not(None))
            .distinct()
        )
        return sorted({c for c in rows if c and c.strip()}, key=str.lower)


def popularity_counts(
    since: datetime, types: tuple[str, ...] = ("register",), event_ids: list[int] | None = None
) -> dict[int, int]:
    """Interactions of `types` per event database id since `since` (GROUP BY in the database)."""
    with session_scope() as session:
        query = (
            select(Interaction.event_id, func.count())
            .where(Interaction.type.in_(types), Interaction.occurred_at >= since)
            .group_by(Interaction.event_id)
        )
        if event_ids is not None:
            query = query.where(Interaction.event_id.in_(list(event_ids)))
        return {int(event_id): int(count) for event_id, count in session.execute(query)}


def event_titles(event_ids: list[int]) -> dict[int, str]:
    """Titles of events by database id (ids that do not exist are left out)."""
    if not event_ids:
        return {}
    with session_scope() as session:
        rows = session.execute(select(Event.id, Event.title)
                               .where(Event.id.in_([int(i) for i in event_ids])))
        return {int(event_id): str(title) for event_id, title in rows}


def overview_counts(now: datetime) -> dict[str, int]:
    """Users, upcoming events and interactions in the last 7 days, for the console."""
    with session_scope() as session:
        users = session.scalar(select(func.count(User.id))) or 0
        upcoming = session.scalar(select(func.count(Event.id)).where(Event.start_time > now)) or 0
        recent = session.scalar(
            select(func.count(Interaction.id)).where(
                Interaction.occurred_at >= now - timedelta(days=7)
            )
        ) or 0
        events = session.scalar(select(func.count(Event.id))) or 0
    return {
        "users": int(users),
        "events": int(events),
        "upcoming_events": int(upcoming),
        "interactions_7d": int(recent),
    }


def count_users() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count(User.id))) or 0)
