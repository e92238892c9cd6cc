"""Catalogue writes from the HTTP API (one event or user at a time) and the catalogue stamp.

Event writes move the stamp in their own transaction, so every process sees the change on
its next request (beacon.recommend reads the stamp each time) instead of after its candidate
snapshot's time to live."""
from __future__ import annotations

from sqlalchemy import delete, select, update

from data_access.db import session_scope
from data_access.imports import EVENT_COLUMNS, USER_COLUMNS, EventRecord, UpsertCounts, \
    UserRecord, import_transaction
from data_access.schema import CatalogStamp, Event, utcnow

STAMP_ID = 1


def bump_stamp(connection) -> None:
    """Move the catalogue stamp inside the caller's transaction."""
    connection.execute(update(CatalogStamp.__table__).where(CatalogStamp.id == STAMP_ID)
                       .values(version=CatalogStamp.version + 1, changed_at=utcnow()))


def upsert_event(record: EventRecord) -> str:
    """Insert or update one event (every column, tags included). Returns created, updated or
    unchanged."""
    with import_transaction() as writer:
        counts = writer.upsert_events([record], (*EVENT_COLUMNS, "tags"))
        if counts.inserted or counts.updated:
            bump_stamp(writer.connection)
    return _outcome(counts)


def delete_event(event_id: str) -> bool:
    """Remove an event (a cancellation) with its interactions and cached recommendations.
    Returns False when there was no such event."""
    with session_scope() as session:
        deleted = session.execute(delete(Event).where(Event.event_id == event_id)).rowcount
        if deleted:
            bump_stamp(session.connection())
    return bool(deleted)


def upsert_user(record: UserRecord) -> str:
    with import_transaction() as writer:
        counts = writer.upsert_users([record], (*USER_COLUMNS, "interest_tags"))
    return _outcome(counts)


def _outcome(counts: UpsertCounts) -> str:
    return "created" if counts.inserted else "updated" if counts.updated else "unchanged"


def catalog_stamp() -> int:
    """The stamp's version: one primary-key read."""
    with session_scope() as session:
        return _stamp_in(session)


def event_features(event_id: str) -> dict | None:
    """What a 'more like this' request starts from: the event's category, tags and place."""
    from data_access.schema import EventTag

    with session_scope() as session:
        row = session.execute(select(Event.id, Event.category, Event.latitude, Event.longitude)
                              .where(Event.event_id == event_id)).first()
        if row is None:
            return None
        tags = session.scalars(select(EventTag.tag).where(EventTag.event_id == row.id)
                               .order_by(EventTag.tag)).all()
    return {"category": row.category, "tags": tuple(tags), "latitude": row.latitude,
            "longitude": row.longitude}


def _stamp_in(session) -> int:
    return int(session.scalar(select(CatalogStamp.version).where(CatalogStamp.id == STAMP_ID))
               or 0)
