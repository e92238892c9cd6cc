"""What the platform reports and syncs through the HTTP API: interaction batches and the
catalogue (events and users). Every write here is a state-changing action."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from beacon.actions import Actor, state_changing
from beacon.errors import BeaconError
from data_access import catalog_sync, ingest as store
from data_access.imports import EventRecord, UserRecord

#: the largest batch POST /v1/interactions takes
MAX_BATCH = 1000
#: interactions that say something about taste: the user is marked for a refresh
MEANINGFUL = frozenset({"click", "view", "favorite", "share", "register", "unregister",
                        "reject", "attend"})


class BadReference(BeaconError):
    """An item names an event or request the database does not hold."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(message)
        self.index, self.field = index, field


@dataclass(frozen=True)
class IngestSummary:
    received: int
    inserted: int
    duplicates: int
    users_created: int
    users_marked: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


@state_changing("ingest_interactions", needs="ingest")
def ingest_interactions(items: list[store.IncomingInteraction], now: datetime | None = None, *,
                        actor: Actor) -> IngestSummary:
    """Store a batch all or nothing; a retried batch inserts nothing twice."""
    if len(items) > MAX_BATCH:
        raise BeaconError(f"a batch holds at most {MAX_BATCH} interactions, got {len(items)}")
    try:
        result = store.ingest(items, MEANINGFUL, now=now)
    except store.UnknownReference as error:
        raise BadReference(error.index, error.field, str(error)) from None
    return IngestSummary(**result.__dict__)


@state_changing("upsert_event", needs="ingest")
def upsert_event(record: EventRecord, *, actor: Actor) -> str:
    if record.end_time is not None and record.end_time < record.start_time:
        raise BeaconError("end_time is before start_time")
    return catalog_sync.upsert_event(record)


@state_changing("delete_event", needs="ingest")
def delete_event(event_id: str, *, actor: Actor) -> bool:
    """A cancelled event: gone from every list from the next request on, in every process."""
    return catalog_sync.delete_event(event_id)


@state_changing("upsert_user", needs="ingest")
def upsert_user(record: UserRecord, *, actor: Actor) -> str:
    return catalog_sync.upsert_user(record)
