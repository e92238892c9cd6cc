"""Reads for serving and the console: users, a user's history, candidate events, popularity,
overview counts. Each function opens one managed session and returns plain data."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy import and_, func, or_, select

from data_access.db import session_scope
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

    registered: database ids of events with a register not later undone by an unregister.
    rejected: database ids of events the user rejected.
    organizers / categories / tags: of the events they registered for (for honest reasons).
    recent: the latest interactions, newest first, with the event's features.
    """

    user_id: int
    registered: frozenset[int] = frozenset()
    rejected: frozenset[int] = frozenset()
    organizers: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    recent: tuple[dict, ...] = field(default_factory=tuple)


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


def user_by_email(email: str) -> UserRow | None:
    email = (email or "").strip()
    if not email:
        return None
    with session_scope() as session:
        user = session.scalars(select(User).where(User.email == email)).first()
        if user is None and email != email.lower():
            user = session.scalars(select(User).where(User.email == email.lower())).first()
        rows = _user_rows(session, [user] if user is not None else [])
    return rows[0] if rows else None


def user_by_id(user_id: int) -> UserRow | None:
    with session_scope() as session:
        user = session.get(User, user_id)
        rows = _user_rows(session, [user] if user is not None else [])
    return rows[0] if rows else None


def search_users(query: str, limit: int = 20) -> list[UserRow]:
    """Users whose email or name starts with `query` (index range scans), then, to fill up to
    `limit`, those containing it. An empty query lists the first users by email."""
    query = (query or "").strip()
    limit = max(1, int(limit))
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
            pattern = f"%{lowered}%"
            for user in session.scalars(
                select(User)
                .where(or_(func.lower(User.email).like(pattern), func.lower(User.name).like(pattern)))
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


def users_by_ids(user_ids: list[int]) -> list[UserRow]:
    with session_scope() as session:
        users = session.scalars(select(User).where(User.id.in_(list(user_ids))).order_by(User.id))
        return _user_rows(session, users.all())


def user_history(user_id: int, recent_limit: int = 200) -> UserHistory:
    with session_scope() as session:
        last = (
            select(
                Interaction.event_id,
                Interaction.type,
                func.max(Interaction.occurred_at).label("at"),
            )
            .where(
                Interaction.user_id == user_id,
                Interaction.type.in_(("register", "unregister", "reject")),
            )
            .group_by(Interaction.event_id, Interaction.type)
        )
        latest: dict[int, dict[str, datetime]] = {}
        for event_id, kind, at in session.execute(last):
            latest.setdefault(event_id, {})[kind] = at
        registered = set()
        rejected = set()
        for event_id, kinds in latest.items():
            if "reject" in kinds:
                rejected.add(event_id)
            reg = kinds.get("register")
            unreg = kinds.get("unregister")
            if reg is not None and (unreg is None or _as_naive(reg) > _as_naive(unreg)):
                registered.add(event_id)
        organizers: set[str] = set()
        categories: set[str] = set()
        if registered:
            for organizer, category in session.execute(
                select(Event.organizer, Event.category).where(Event.id.in_(list(registered)))
            ):
                if organizer:
                    organizers.add(organizer)
                if category:
                    categories.add(category)
        tags = set()
        if registered:
            tags = set(
                session.scalars(
                    select(EventTag.tag).where(EventTag.event_id.in_(list(registered))).distinct()
                )
            )
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
        registered=frozenset(registered),
        rejected=frozenset(rejected),
        organizers=frozenset(organizers),
        categories=frozenset(categories),
        tags=frozenset(tags),
        recent=recent,
    )


def _as_naive(value: datetime) -> datetime:
    # max() over a typed column comes back aware; be safe if a driver hands back naive UTC
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def events_snapshot_key() -> tuple[int, str]:
    """Count and newest updated_at of all events: changes whenever events are added, edited
    or removed. Two index-only aggregates."""
    with session_scope() as session:
        count, newest = session.execute(
            select(func.count(Event.id), func.max(Event.updated_at))
        ).one()
    return int(count or 0), newest.isoformat() if newest is not None else ""


def candidate_events(since: datetime) -> pd.DataFrame:
    """Events starting after `since`, one row each with the columns in EVENT_COLUMNS; tags is a
    tuple of strings. Times are aware UTC pandas timestamps; end_time may be NaT."""
    with session_scope() as session:
        rows = session.execute(
            select(
                Event.id, Event.event_id, Event.title, Event.category, Event.organizer,
                Event.city, Event.latitude, Event.longitude, Event.start_time, Event.end_time,
                Event.timezone, Event.price, Event.capacity,
            )
            .where(Event.start_time > since)
            .order_by(Event.start_time, Event.id)
        ).all()
        tag_rows = session.execute(
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
    frame["start_time"] = pd.to_datetime(frame["start_time"], utc=True)
    frame["end_time"] = pd.to_datetime(frame["end_time"], utc=True)
    frame["latitude"] = pd.to_numeric(frame["latitude"], errors="coerce").astype("float64")
    frame["longitude"] = pd.to_numeric(frame["longitude"], errors="coerce").astype("float64")
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce").astype("float64")
    frame["id"] = frame["id"].astype("int64")
    frame["timezone"] = frame["timezone"].fillna("UTC")
    return frame[list(EVENT_COLUMNS)].reset_index(drop=True)


def upcoming_events(now: datetime) -> pd.DataFrame:
    """Events with start_time > now (same columns as candidate_events)."""
    return candidate_events(now)


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
