"""Recommendations for the HTTP API: recommend() (the one filter and scoring path) plus what
the platform needs around it: a request id recorded with the model version, strategy and
ranked event ids (impressions reported with it are attributed), paging, and the cold-start
path for a user the platform has not synced yet."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from beacon.errors import UnknownUser
from beacon.filters import FilterParams
from beacon.recommend import Recommendation, recommend
from data_access import serving_log
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


def stand_in(email: str, params: FilterParams, interests: tuple[str, ...] = ()) -> UserRow:
    """A user with no history, at the point the request gives (if any): the features-only /
    popularity path of the fallback chain."""
    return UserRow(id=UNKNOWN_USER_ID, email=email, name=None, latitude=params.latitude,
                   longitude=params.longitude, city=None, created_at=None,
                   tags=tuple(interests))


def serve(email: str, params: FilterParams, n: int = 10, offset: int = 0,
          strategy: str = "beacon", known_only: bool = False, interests: tuple[str, ...] = (),
          now: datetime | None = None) -> Served:
    """Items offset..offset+n of the user's ranking. Raises UnknownUser only with known_only."""
    now = now or datetime.now(timezone.utc)
    try:
        result = recommend(email, params, top=offset + n, now=now, strategy=strategy)
        known = True
    except UnknownUser:
        if known_only:
            raise
        result = recommend(stand_in(email, params, interests), params, top=offset + n, now=now,
                           strategy=strategy)
        known = False
    items = result.items[offset:offset + n]
    used = str(getattr(result, "strategy", None) or strategy)
    request_id = uuid.uuid4().hex
    serving_log.record_request(
        request_id, result.user.id if known else None, result.model_version, used,
        result.source, [item.event_id for item in result.items], now)  # position = rank
    return Served(request_id=request_id, email=email, known_user=known,
                  model_version=result.model_version, strategy=used, source=result.source,
                  items=items)
