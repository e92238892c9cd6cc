"""Interactions reported through the HTTP API: one transaction per batch that resolves the
platform's ids, attributes impressions to the recommendation request they came from, inserts
what is new (a repeated idempotency key, or the same user/event/type/time, inserts nothing)
and marks the users whose meaningful interactions were new for a refresh."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from data_access import metrics_rollup, refresh_queue
from data_access.db import get_engine
from data_access.emails import EMAIL_RE, normalize_email
from data_access.schema import Event, Interaction, RecommendationRequest, User, utcnow

INTERACTIONS = Interaction.__table__
USERS = User.__table__


@dataclass(frozen=True)
class IncomingInteraction:
    idempotency_key: str
    email: str
    event_id: str
    type: str
    occurred_at: datetime
    request_id: str | None = None


@dataclass(frozen=True)
class IngestResult:
    received: int
    inserted: int
    duplicates: int
    users_created: int
    users_marked: int


class UnknownReference(LookupError):
    """Items of the batch name an event or a request_id the database does not hold."""

    def __init__(self, index: int, field: str, value: str, why: str):
        super().__init__(f"{why}: {value!r}")
        self.index, self.field, self.value = index, field, value


def _insert(connection):
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _lookup(connection, column, key_column, keys) -> dict:
    found: dict = {}
    keys = list(dict.fromkeys(keys))
    for start in range(0, len(keys), 1000):
        found.update(connection.execute(
            select(key_column, column).where(key_column.in_(keys[start:start + 1000]))).all())
    return found


def ingest(items: list[IncomingInteraction], meaningful: frozenset[str],
           now: datetime | None = None) -> IngestResult:
    """All or nothing: an unknown event or request_id raises UnknownReference and writes
    nothing. Users the platform has not synced yet are created with their email only."""
    try:
        return _ingest(items, meaningful, now or utcnow())
    except IntegrityError:
        # an event deleted (a cancellation) between the lookup and the insert: the same 422
        # as an event that was never there, and nothing of the batch stored
        present = _lookup_now(Event.id, Event.event_id, [i.event_id for i in items])
        gone = next((index for index, item in enumerate(items)
                     if item.event_id not in present), None)
        if gone is None:
            raise
        raise UnknownReference(gone, "event_id", items[gone].event_id,
                               "unknown event (deleted while this batch was stored)") from None


def _lookup_now(column, key_column, keys) -> dict:
    with get_engine().connect() as connection:
        return _lookup(connection, column, key_column, keys)


def _ingest(items: list[IncomingInteraction], meaningful: frozenset[str],
            now: datetime) -> IngestResult:
    with get_engine().connect() as connection, connection.begin():
        metrics_rollup.hold_for_writer(connection)
        events = _lookup(connection, Event.id, Event.event_id, [i.event_id for i in items])
        for index, item in enumerate(items):
            if item.event_id not in events:
                raise UnknownReference(index, "event_id", item.event_id, "unknown event")
        requests = _requests(connection, [i.request_id for i in items if i.request_id])
        users, created = _users(connection, items, now)
        rows = []
        for index, item in enumerate(items):
            version = strategy = position = None
            if item.request_id is not None:
                request = requests.get(item.request_id)
                if request is None:
                    raise UnknownReference(index, "request_id", item.request_id,
                                           "unknown request_id (not answered by this API)")
                owner = request.user_id
                if owner is not None and owner != users[normalize_email(item.email)]:
                    raise UnknownReference(index, "request_id", item.request_id,
                                           "request_id answered another user")
                if item.type == "impression":
                    ranked = request.event_ids or []
                    if item.event_id not in ranked:
                        raise UnknownReference(index, "event_id", item.event_id,
                                               f"event not in the answer to {item.request_id}")
                    version, strategy = request.model_version, request.strategy
                    position = ranked.index(item.event_id) + 1
            rows.append({
                "user_id": users[normalize_email(item.email)], "event_id": events[item.event_id],
                "type": item.type, "occurred_at": item.occurred_at, "model_version": version,
                "strategy": strategy, "position": position,
                "idempotency_key": item.idempotency_key,
            })
        inserted = []
        if rows:
            statement = (_insert(connection)(INTERACTIONS).on_conflict_do_nothing()
                         .returning(INTERACTIONS.c.user_id, INTERACTIONS.c.type))
            inserted = connection.execute(statement, rows).all()
        marked = refresh_queue.mark(
            connection, [r.user_id for r in inserted if r.type in meaningful], now)
    return IngestResult(received=len(items), inserted=len(inserted),
                        duplicates=len(items) - len(inserted), users_created=created,
                        users_marked=marked)


def _requests(connection, request_ids: list[str]) -> dict:
    if not request_ids:
        return {}
    table = RecommendationRequest.__table__
    rows = connection.execute(
        select(table.c.request_id, table.c.user_id, table.c.model_version, table.c.strategy,
               table.c.event_ids)
        .where(table.c.request_id.in_(list(dict.fromkeys(request_ids))))).all()
    return {row.request_id: row for row in rows}


def _users(connection, items: list[IncomingInteraction],
           now: datetime) -> tuple[dict[str, int], int]:
    """normalized email -> id for every item's user, creating the missing users (email only;
    UnknownReference for one whose email is not an address, as import demands). Returns the
    map and how many users this call created (not those a concurrent batch created first)."""
    first_at: dict[str, int] = {}
    for index, item in enumerate(items):
        first_at.setdefault(normalize_email(item.email), index)
    emails = list(first_at)
    found = _lookup(connection, User.id, User.email, emails)
    missing = [e for e in emails if e not in found]
    for email in missing:
        if not EMAIL_RE.match(email):
            raise UnknownReference(first_at[email], "email", email, "unknown user, and not "
                                   "an email address like name@example.org to create one")
    created = 0
    if missing:
        created = len(connection.execute(
            _insert(connection)(USERS).on_conflict_do_nothing().returning(USERS.c.id),
            [{"email": e, "created_at": now, "updated_at": now} for e in missing]).all())
        found.update(_lookup(connection, User.id, User.email, missing))
    return found, created
