"""The contract: request and response bodies. Strict types: a JSON `false` is not a number and
`"3"` is not an integer."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, \
    StrictStr, StringConstraints, field_validator, model_validator

from beacon.importer import MAX_PRICE
from beacon.ingest import MAX_BATCH
from beacon.serving import MAX_RESULTS, STRATEGIES
from data_access.emails import normalize_email

Strategy = Literal["beacon", "popularity", "content"]
assert set(STRATEGIES) == {"beacon", "popularity", "content"}
InteractionType = Literal["impression", "click", "view", "favorite", "share", "register",
                          "unregister", "attend", "reject"]
# No text may hold a NUL character (Postgres cannot store one): every pattern excludes it.
NO_NUL = r"^[^\x00]*$"
EMAIL_PATTERN = r"^[^\s\x00]+$"
EVENT_ID_PATTERN = r"^[^\s\x00]([^\x00]*[^\s\x00])?$"
Email = Annotated[StrictStr, Field(min_length=1, max_length=320, pattern=EMAIL_PATTERN)]
EventId = Annotated[StrictStr, Field(min_length=1, max_length=120, pattern=EVENT_ID_PATTERN)]
EmailPath = Annotated[str, Path(min_length=1, max_length=320, pattern=EMAIL_PATTERN)]
#: a user's email as stored (lowercased). A user it creates must have a real address (as
#: import demands: checked where the user is found missing); one that exists keeps the id
#: it was created with
UserEmail = Annotated[StrictStr, Field(min_length=1, max_length=320, pattern=EMAIL_PATTERN),
                      AfterValidator(normalize_email)]
EventIdPath = Annotated[str, Path(min_length=1, max_length=120, pattern=EVENT_ID_PATTERN)]


def Text(max_length: int, min_length: int = 0):  # noqa: N802 - reads as a type
    return Annotated[StrictStr, Field(min_length=min_length, max_length=max_length,
                                      pattern=NO_NUL)]

Latitude = Annotated[float, Field(strict=True, ge=-90, le=90)]
Longitude = Annotated[float, Field(strict=True, ge=-180, le=180)]
Km = Annotated[float, Field(strict=True, ge=0, le=20_100)]
Clock = Annotated[StrictStr, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["18:00"])]
Tag = Text(80, min_length=1)


class FilterQuery(BaseModel):
    """The query of GET /v1/events/{id}/similar (validated by beacon.api.query: query
    strings are text, so numbers and booleans are read from it, not strict)."""

    model_config = ConfigDict(extra="ignore")

    n: int = Field(10, ge=1, le=MAX_RESULTS)
    offset: int = Field(0, ge=0, le=1000)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    max_km: float | None = Field(None, ge=0, le=20_100)
    dates: str | None = Field(None, max_length=4000, pattern=NO_NUL,
                              description="local dates, e.g. 2026-12-01,2026-12-02")
    start: Clock | None = Field(None, description="daily window start, HH:MM")
    end: Clock | None = Field(None, description="daily window end, HH:MM")
    reject: str | None = Field(None, max_length=20_000, pattern=NO_NUL,
                               description="event ids, comma separated")
    category: str | None = Field(None, max_length=4000, pattern=NO_NUL,
                                 description="categories, comma separated")
    strategy: Strategy = "beacon"
    explain: bool = True


class UserQuery(FilterQuery):
    """The query of GET /v1/users/{email}/recommendations."""

    known_only: bool = Field(False, description="404 for a user the database does not hold, "
                                                "instead of the cold-start ranking")


class FieldError(ValueError):
    """A check across fields that names the field at fault (the error body's `field`)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


#: marks an older client's field name in the OpenAPI document
OLD = {"deprecated": True}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- recommendations ---------------------------------------------------------------------------

class Filters(Strict):
    """Filter fields shared by POST /v1/recommend and POST /v1/debug/filter. The second name
    of each pair is what older clients send; give one of them."""

    email: Email
    lat: Latitude | None = None
    lon: Longitude | None = None
    max_km: Km | None = None
    dates: list[date] | None = Field(None, max_length=366, description="local dates, YYYY-MM-DD")
    start: Clock | None = None
    end: Clock | None = None
    reject: list[EventId] = Field(default_factory=list, max_length=1000)
    category: list[Tag] | None = Field(None, max_length=50)
    known_only: StrictBool = False
    interests: list[Tag] = Field(default_factory=list, max_length=50,
                                 description="a cold-start user's interests (unknown users only)")
    # the older client's names
    latitude: Latitude | None = Field(None, json_schema_extra=OLD)
    longitude: Longitude | None = Field(None, json_schema_extra=OLD)
    filter_distance: Km | None = Field(None, json_schema_extra=OLD, description="km")
    rejected_events: list[EventId] | None = Field(None, max_length=1000, json_schema_extra=OLD)
    use_calendar_filter: StrictBool | None = Field(
        None, json_schema_extra=OLD, description="false: selected_dates are ignored")
    selected_dates: list[date] | None = Field(None, max_length=366, json_schema_extra=OLD)
    user_start_time: Clock | None = Field(None, json_schema_extra=OLD)
    user_end_time: Clock | None = Field(None, json_schema_extra=OLD)

    @field_validator("dates", "selected_dates", mode="before")
    @classmethod
    def _iso_dates(cls, value: Any) -> Any:
        # strict mode takes dates as text in JSON only; bodies arrive as parsed Python
        if isinstance(value, list):
            return [_date(v) for v in value]
        return value

    @model_validator(mode="after")
    def _merge_old_names(self) -> "Filters":
        pairs = (("lat", "latitude"), ("lon", "longitude"), ("max_km", "filter_distance"),
                 ("reject", "rejected_events"), ("start", "user_start_time"),
                 ("end", "user_end_time"))
        for new, old in pairs:
            old_value = getattr(self, old)
            if old_value is None:
                continue
            new_value = getattr(self, new)
            if new_value not in (None, []) and new_value != old_value:
                raise FieldError(new, f"{new} and {old} disagree: give one of them")
            object.__setattr__(self, new, old_value)
        # use_calendar_filter=false switches off the older client's selected_dates, not `dates`
        if self.selected_dates is not None and self.use_calendar_filter is not False:
            if self.dates is not None and self.dates != self.selected_dates:
                raise FieldError("dates", "dates and selected_dates disagree: give one of them")
            object.__setattr__(self, "dates", self.selected_dates)
        if (self.lat is None) != (self.lon is None):
            raise FieldError("lat", "give both lat and lon (or latitude and longitude), or neither")
        if (self.start is None) != (self.end is None):
            raise FieldError("start", "a time window needs both start and end")
        if self.start is not None and self.start == self.end:
            raise FieldError("start", "the time window is empty (start equals end)")
        return self


def _date(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


class RecommendBody(Filters):
    n: int = Field(10, strict=True, ge=1, le=MAX_RESULTS)
    offset: int = Field(0, strict=True, ge=0, le=1000)
    strategy: Strategy = "beacon"
    explain: StrictBool = True


class DebugFilterBody(Filters):
    pass


class RecommendationItem(BaseModel):
    rank: int
    event_id: str
    title: str
    score: float
    reason: str | None
    distance_km: float | None
    local_start: str | None = Field(description="ISO 8601 in the event's own timezone")
    local_end: str | None
    timezone: str
    category: str | None
    city: str | None


class RecommendationsResponse(BaseModel):
    request_id: str = Field(description="send it back with the impressions of these items")
    email: str
    known_user: bool
    model_version: int | None
    strategy: str
    source: str = Field(description="personal, global, features or popularity; content with "
                                    "strategy content")
    items: list[RecommendationItem]


# --- interactions --------------------------------------------------------------------------------

class InteractionIn(Strict):
    id: Text(100, min_length=1) = Field(description="the platform's idempotency id")
    email: UserEmail
    event_id: EventId
    type: InteractionType
    occurred_at: AwareDatetime | None = Field(None, description="default: when received")
    request_id: Text(32, min_length=1) | None = None

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_time(cls, value: Any) -> Any:
        return _datetime(value)


def _datetime(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:  # stored in UTC: 0001-01-01T00:00+14:00 has no UTC time
            value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("out of range: the time in UTC must fall in years 1-9999") from None
    return value


class InteractionBatch(Strict):
    interactions: list[InteractionIn] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResponse(BaseModel):
    received: int
    inserted: int
    duplicates: int
    users_created: int
    users_marked: int


# --- catalogue -----------------------------------------------------------------------------------

def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (an IANA name, e.g. Europe/Berlin)") from None
    return value


class EventIn(Strict):
    title: Text(300, min_length=1)
    start_time: AwareDatetime
    end_time: AwareDatetime | None = None
    timezone: Text(64, min_length=1) = "UTC"
    category: Text(80) | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    organizer: Text(200) | None = None
    city: Text(120) | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    price: float | None = Field(None, strict=True, ge=0, le=MAX_PRICE)
    capacity: int | None = Field(None, strict=True, ge=0, le=2_000_000_000)

    _times = field_validator("start_time", "end_time", mode="before")(
        classmethod(lambda cls, v: _datetime(v)))
    _tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))

    @model_validator(mode="after")
    def _order(self) -> "EventIn":
        if self.end_time is not None and self.end_time <= self.start_time:
            raise FieldError("end_time", "end_time must be after start_time")
        _both_or_neither(self.latitude, self.longitude)
        return self


def _both_or_neither(latitude: float | None, longitude: float | None) -> None:
    if (latitude is None) != (longitude is None):
        raise FieldError("latitude", "give both latitude and longitude, or neither")


class UserIn(Strict):
    name: Text(200) | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    city: Text(120) | None = None
    interests: list[Tag] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _pair(self) -> "UserIn":
        _both_or_neither(self.latitude, self.longitude)
        return self


class SyncResponse(BaseModel):
    id: str
    outcome: Literal["created", "updated", "unchanged", "deleted"]


# --- admin ---------------------------------------------------------------------------------------

class TrainBody(Strict):
    scope: Literal["global", "user"] = "global"
    user: Email | None = None
    force: StrictBool = False

    @model_validator(mode="after")
    def _user(self) -> "TrainBody":
        if self.scope == "user" and self.user is None:
            raise FieldError("user", "a user-scope training needs user (an email)")
        if self.scope == "global" and self.user is not None:
            raise FieldError("user", 'user is for scope "user"; a global training has none')
        return self


class TrainAccepted(BaseModel):
    run_id: int
    status_url: str


class TrainingSettingsBody(Strict):
    set: dict[str, Any] = Field(default_factory=dict, max_length=100)
    reset: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=100)
    reset_all: StrictBool = False

    @model_validator(mode="after")
    def _something(self) -> "TrainingSettingsBody":
        if not (self.set or self.reset or self.reset_all):
            raise FieldError("set", "nothing to change: give set, reset or reset_all")
        if self.reset_all and self.reset:
            raise FieldError("reset", "reset names settings; reset_all clears every one")
        return self


class CleanupBody(Strict):
    keep_days: float = Field(strict=True, ge=0, le=36_500)
    keep_newest: int = Field(3, strict=True, ge=0, le=10_000)
    dry_run: StrictBool = False


class Document(BaseModel):
    """A JSON document (the same keys as the CLI's --json output)."""

    model_config = ConfigDict(extra="allow")
