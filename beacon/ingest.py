"""What the platform reports and syncs through the HTTP API: interaction batches and the
catalogue (events and users). Every write here is a state-changing action."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from beacon.actions import Actor, state_changing
from beacon.errors import BeaconError, UnknownEvent
from beacon.importer import FUTURE_TOLERANCE
from data_access import catalog_sync, ingest as store
from data_access.catalog import user_by_email
from data_access.emails import EMAIL_RE, normalize_email
from data_access.imports import EventRecord, UserRecord
from data_access.schema import utcnow

#: the largest batch POST /v1/interactions takes
MAX_BATCH = 1000
#: interactions that say something about taste: the user is marked for a refresh
MEANINGFUL = frozenset({"click", "view", "favorite", "share", "register", "unregister",
                        "reject", "attend"})


class BadItem(BeaconError):
    """An item of a batch is refused (`index` and `field` name it): an event or request the
    database does not hold, a time in the future, an id the batch gives two interactions."""

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
    now = now or utcnow()
    _check_items(items, now)
    try:
        result = store.ingest(items, MEANINGFUL, now=now)
    except store.UnknownReference as error:
        raise BadItem(error.index, error.field, str(error)) from None
    return IngestSummary(**result.__dict__)


def _check_items(items: list[store.IncomingInteraction], now: datetime) -> None:
    """What import refuses, the API refuses too; an id sent twice in one batch must be one
    interaction (a repeat of the same item is a duplicate, not a clash)."""
    latest = now + FUTURE_TOLERANCE
    first_with: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.occurred_at > latest:
            raise BadItem(index, "occurred_at", f"a time not in the future (now is "
                                                f"{now.isoformat(timespec='seconds')})")
        earlier = first_with.setdefault(item.idempotency_key, index)
        if earlier != index and items[earlier] != item:
            raise BadItem(index, "id", f"the id {item.idempotency_key!r} is also "
                                       f"interactions[{earlier}]'s, with other content")


@state_changing("upsert_event", needs="ingest")
def upsert_event(record: EventRecord, *, actor: Actor) -> str:
    if record.end_time is not None and record.end_time <= record.start_time:
        raise BeaconError("end_time must be after start_time")
    return catalog_sync.upsert_event(record)


@state_changing("delete_event", needs="ingest")
def delete_event(event_id: str, *, actor: Actor) -> bool:
    """A cancelled event: gone from every list from the next request on, in every process.
    UnknownEvent (audited as failed) when there is no such event."""
    if not catalog_sync.delete_event(event_id):
        raise UnknownEvent(event_id)
    return True


class BadEmail(BeaconError):
    field = "email"


@state_changing("upsert_user", needs="ingest")
def upsert_user(record: UserRecord, *, actor: Actor) -> str:
    """Create or replace a user's profile. A new user needs an email address (as import
    demands); a user that exists keeps the id it was created with."""
    email = normalize_email(record.email)
    if not EMAIL_RE.match(email) and user_by_email(email) is None:
        raise BadEmail(f"unknown user {email!r}, and not an email address like "
                       "name@example.org to create one")
    return catalog_sync.upsert_user(record)
