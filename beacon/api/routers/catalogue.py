"""Catalogue sync: PUT/DELETE /v1/events/{event_id}, PUT /v1/users/{email}."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from beacon import ingest
from beacon.api.errors import AUTH_RESPONSES, NOT_FOUND
from beacon.api.schemas import EmailPath, EventIdPath, EventIn, SyncResponse, UserIn
from beacon.api.security import require
from beacon.api_keys import KeyInfo
from data_access.emails import normalize_email
from data_access.imports import EventRecord, UserRecord

router = APIRouter(prefix="/v1", tags=["catalogue"], responses=AUTH_RESPONSES)
Writer = Annotated[KeyInfo, Depends(require("ingest"))]


@router.put("/events/{event_id}", response_model=SyncResponse)
def put_event(key: Writer, event_id: EventIdPath, event: EventIn) -> SyncResponse:
    """Create or replace an event (every field; tags replaced). Served from the next request."""
    record = EventRecord(
        event_id=event_id, title=event.title, start_time=event.start_time,
        end_time=event.end_time, timezone=event.timezone, category=event.category,
        organizer=event.organizer, city=event.city, latitude=event.latitude,
        longitude=event.longitude, price=event.price, capacity=event.capacity,
        tags=tuple(dict.fromkeys(event.tags)))
    outcome = ingest.upsert_event(record, actor=key.actor())
    return SyncResponse(id=event_id, outcome=outcome)


@router.delete("/events/{event_id}", response_model=SyncResponse, responses=NOT_FOUND)
def delete_event(key: Writer, event_id: EventIdPath) -> SyncResponse:
    """A cancelled event: removed with its interactions, gone from every list at once."""
    ingest.delete_event(event_id, actor=key.actor())  # UnknownEvent: a 404
    return SyncResponse(id=event_id, outcome="deleted")


@router.put("/users/{email}", response_model=SyncResponse)
def put_user(key: Writer, email: EmailPath, user: UserIn) -> SyncResponse:
    """Create or replace a user's profile (interests replaced)."""
    record = UserRecord(email=email, name=user.name, latitude=user.latitude,
                        longitude=user.longitude, city=user.city,
                        interest_tags=tuple(dict.fromkeys(user.interests)))
    outcome = ingest.upsert_user(record, actor=key.actor())
    return SyncResponse(id=normalize_email(email), outcome=outcome)
