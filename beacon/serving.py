"""Recommendations for the HTTP API: recommend() (the one filter and scoring path) plus what
the platform needs around it: a request id recorded with the model version, strategy and
ranked event ids (impressions reported with it are attributed), paging, the cold-start path
for a user the platform has not synced yet, and "more like this event"."""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from beacon.errors import UnknownEvent, UnknownUser
from beacon.filters import FilterParams
from beacon.recommend import Recommendation, RecommendationResult, recommend
from beacon.reasons import about_the_event
from data_access import catalog_sync, serving_log
from data_access.catalog import UserRow

STRATEGIES = ("beacon", "popularity", "content")
MAX_RESULTS = 100
#: the id of the stand-in row for a user the database does not hold (ids start at 1)
UNKNOWN_USER_ID = 0


@dataclass(frozen=True)
class Served:
    request_id: str
    email: str
    known_user: bool
    model_version: int | None
    strategy: str
    source: str
    items: list[Recommendation]


def stand_in(email: str, latitude: float | None, longitude: float | None,
             interests: tuple[str, ...] = ()) -> UserRow:
    """A user with no history at a given point: the features-only / popularity path of the
    fallback chain."""
    return UserRow(id=UNKNOWN_USER_ID, email=email, name=None, latitude=latitude,
                   longitude=longitude, city=None, created_at=None, tags=tuple(interests))


def _answer(result: RecommendationResult, email: str, known: bool, strategy: str,
            n: int, offset: int, now: datetime) -> Served:
    items = result.items[offset:offset + n]
    used = str(getattr(result, "strategy", None) or strategy)
    request_id = uuid.uuid4().hex
    # every ranked id up to this page: an impression's position is the item's rank
    serving_log.record_request(
        request_id, result.user.id if known else None, result.model_version, used,
        result.source, [item.event_id for item in result.items], now)
    return Served(request_id=request_id, email=email, known_user=known,
                  model_version=result.model_version, strategy=used, source=result.source,
                  items=items)


def serve(email: str, params: FilterParams, n: int = 10, offset: int = 0,
          strategy: str = "beacon", known_only: bool = False, interests: tuple[str, ...] = (),
          now: datetime | None = None, explain: bool = True) -> Served:
    """Items offset..offset+n of the user's ranking, with reasons when `explain` (written for
    that page only). Raises UnknownUser only with known_only."""
    now = now or datetime.now(timezone.utc)
    explain_from = offset if explain else None
    try:
        result = recommend(email, params, top=offset + n, now=now, strategy=strategy,
                           explain_from=explain_from)
        known = True
    except UnknownUser:
        if known_only:
            raise
        user = stand_in(email, params.latitude, params.longitude, interests)
        result = recommend(user, params, top=offset + n, now=now, strategy=strategy,
                           explain_from=explain_from)
        known = False
    return _answer(result, email, known, strategy, n, offset, now)


def similar(event_id: str, params: FilterParams, n: int = 10, offset: int = 0,
            strategy: str = "beacon", now: datetime | None = None,
            explain: bool = True) -> Served:
    """Upcoming events like this one: the ranking of a newcomer whose interests are the event's
    category and tags, standing at its place (the event itself left out)."""
    now = now or datetime.now(timezone.utc)
    features = catalog_sync.event_features(event_id)
    if features is None:
        raise UnknownEvent(event_id)
    interests = tuple(t for t in (features["category"], *features["tags"]) if t)
    params = dataclasses.replace(params, reject=tuple(dict.fromkeys((*params.reject, event_id))))
    lat, lon = (params.latitude, params.longitude) if params.has_point else \
        (features["latitude"], features["longitude"])
    user = stand_in(f"similar:{event_id}", lat, lon, interests)
    result = recommend(user, params, top=offset + n, now=now, strategy=strategy,
                       explain_from=offset if explain else None)
    served = _answer(result, user.email, False, strategy, n, offset, now)
    items = [dataclasses.replace(item, reason=about_the_event(item.reason))
             for item in served.items]
    return dataclasses.replace(served, items=items)
