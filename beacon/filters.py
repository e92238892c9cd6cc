"""Filter parameters (parse + validate) and the filter stages as numpy boolean masks.

One code path serves recommend() and the debug filter. Stages, in DESIGN.md's order:
upcoming; not already registered; not rejected; within max distance; on a selected date;
inside the daily time window. Every stage yields a mask over all candidates (no Python loop
over events); reason strings are built only for failed rows, on demand.

Local times are computed once per candidate snapshot (CandidateArrays), one vectorized
conversion per distinct IANA timezone (zoneinfo), so DST days come out right.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable, Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from beacon.errors import BeaconError

EARTH_RADIUS_KM = 6371.0088
DAY = 86_400
_EPOCH = date(1970, 1, 1)

ALL = "all candidates"
UPCOMING = "upcoming"
NOT_REGISTERED = "not registered"
NOT_REJECTED = "not rejected"
DISTANCE = "within distance"
DATES = "on selected dates"
WINDOW = "in time window"
STAGE_NAMES = (ALL, UPCOMING, NOT_REGISTERED, NOT_REJECTED, DISTANCE, DATES, WINDOW)
#: the filtering stages (everything but the first, which is just the candidate count)
FILTER_STAGES = STAGE_NAMES[1:]


# --------------------------------------------------------------------------- parameters


def _split(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(",")
    else:
        parts = [str(v) for v in value]
    return [p.strip() for p in parts if p is not None and str(p).strip()]


def _number(value, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BeaconError(f"{what} must be a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise BeaconError(f"{what} must be a finite number, got {value!r}")
    return number


def _parse_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise BeaconError(f"malformed date {text!r}: expected YYYY-MM-DD, e.g. 2026-12-01") from None


def _parse_time(value, what: str) -> time | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    text = str(value).strip()
    try:
        if len(text) not in (4, 5, 8):
            raise ValueError
        parsed = time.fromisoformat(text if len(text) != 4 else "0" + text)
    except ValueError:
        raise BeaconError(f"malformed {what} time {text!r}: expected HH:MM, e.g. 18:00") from None
    return parsed


@dataclass(frozen=True)
class FilterParams:
    latitude: float | None = None
    longitude: float | None = None
    max_km: float | None = None
    dates: tuple[date, ...] | None = None  # None = date filter off
    window_start: time | None = None
    window_end: time | None = None
    reject: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls,
        lat=None,
        lon=None,
        max_km=None,
        dates=None,
        start=None,
        end=None,
        reject=None,
    ) -> "FilterParams":
        """Validate raw input (CLI strings, console widgets). Raises BeaconError naming what
        was wrong."""
        latitude = _number(lat, "latitude")
        longitude = _number(lon, "longitude")
        if (latitude is None) != (longitude is None):
            raise BeaconError("give both latitude and longitude (--lat and --lon), or neither")
        if latitude is not None and not -90.0 <= latitude <= 90.0:
            raise BeaconError(f"latitude {latitude:g} is out of range (-90 to 90)")
        if longitude is not None and not -180.0 <= longitude <= 180.0:
            raise BeaconError(f"longitude {longitude:g} is out of range (-180 to 180)")
        distance = _number(max_km, "max distance (km)")
        if distance is not None and distance < 0:
            raise BeaconError(f"max distance must be 0 km or more, got {distance:g}")
        day_list = None
        if dates is not None:
            if isinstance(dates, (date, datetime)):
                dates = [dates]
            items = _split(dates) if isinstance(dates, str) else [
                d for d in dates if not (isinstance(d, str) and not d.strip())
            ]
            if not items:
                raise BeaconError("the date filter is on but no date was given (e.g. 2026-12-01)")
            day_list = tuple(sorted(set(_parse_date(d) for d in items)))
        window_start = _parse_time(start, "start")
        window_end = _parse_time(end, "end")
        if (window_start is None) != (window_end is None):
            missing = "end" if window_end is None else "start"
            raise BeaconError(f"a time window needs both a start and an end (the {missing} is missing)")
        if window_start is not None and window_start == window_end:
            raise BeaconError(
                f"the time window {window_start:%H:%M}-{window_end:%H:%M} is empty (start equals end)"
            )
        rejects = tuple(dict.fromkeys(_split(reject) or ()))
        return cls(
            latitude=latitude,
            longitude=longitude,
            max_km=distance,
            dates=day_list,
            window_start=window_start,
            window_end=window_end,
            reject=rejects,
        )

    @property
    def has_point(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def window_label(self) -> str:
        if self.window_start is None:
            return ""
        return f"{_hhmm(self.window_start)}-{_hhmm(self.window_end)}"

    def as_dict(self) -> dict:
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "max_km": self.max_km,
            "dates": [d.isoformat() for d in self.dates] if self.dates is not None else None,
            "start": _hhmm(self.window_start) if self.window_start else None,
            "end": _hhmm(self.window_end) if self.window_end else None,
            "reject": list(self.reject),
        }


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M") if value.second == 0 else value.strftime("%H:%M:%S")


# --------------------------------------------------------------------------- candidates


def _zone(name: str | None):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, TypeError, KeyError):
        return ZoneInfo("UTC")


def _local_parts(utc: pd.Series, zones: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local (epoch day, second of day, valid) per row, one conversion per timezone."""
    n = len(utc)
    days = np.zeros(n, dtype=np.int64)
    secs = np.zeros(n, dtype=np.int64)
    valid = ~utc.isna().to_numpy()
    if n == 0:
        return days, secs, valid
    index = pd.DatetimeIndex(utc)
    for name in pd.unique(zones):
        rows = np.flatnonzero(zones == name)
        local = index[rows].tz_convert(_zone(name)).tz_localize(None)
        ok = ~local.isna()
        seconds = np.where(ok, local.as_unit("s").asi8, 0)
        days[rows] = np.floor_divide(seconds, DAY)
        secs[rows] = np.mod(seconds, DAY)
    return days, secs, valid


@dataclass
class CandidateArrays:
    """Everything the stages need, precomputed once per candidate snapshot."""

    frame: pd.DataFrame
    pk: np.ndarray  # int64 database ids
    event_id: np.ndarray  # object (platform ids)
    start_epoch: np.ndarray  # float64 seconds since 1970 UTC
    end_epoch: np.ndarray  # float64, NaN without an end time
    start_day: np.ndarray  # int64 local epoch day
    start_sec: np.ndarray  # int64 local second of day
    has_end: np.ndarray  # bool
    end_day: np.ndarray
    end_sec: np.ndarray
    lat_rad: np.ndarray  # float64, NaN where missing
    lon_rad: np.ndarray
    cos_lat: np.ndarray
    has_location: np.ndarray
    pos_by_pk: dict[int, int] = field(repr=False)
    pos_by_event_id: dict[str, int] = field(repr=False)
    #: plain Python columns (title, category, ...) for the few rows a response shows
    columns: dict[str, list] = field(default_factory=dict, repr=False)
    sorted_by_start: bool = False
    lat_order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    lat_sorted: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def n(self) -> int:
        return len(self.pk)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "CandidateArrays":
        frame = frame.reset_index(drop=True)
        start = pd.to_datetime(frame["start_time"], utc=True) if len(frame) else pd.Series(
            [], dtype="datetime64[ns, UTC]"
        )
        end = pd.to_datetime(frame["end_time"], utc=True) if len(frame) else pd.Series(
            [], dtype="datetime64[ns, UTC]"
        )
        zones = frame["timezone"].fillna("UTC").astype(str).to_numpy() if len(frame) else np.array(
            [], dtype=object
        )
        start_day, start_sec, _ = _local_parts(start, zones)
        end_day, end_sec, has_end = _local_parts(end, zones)
        start_epoch = (
            pd.DatetimeIndex(start).as_unit("us").asi8.astype(np.float64) / 1e6 if len(frame) else np.zeros(0)
        )
        end_epoch = np.full(len(frame), np.nan)
        if len(frame) and has_end.any():
            end_epoch[has_end] = (
                pd.DatetimeIndex(end[has_end]).as_unit("us").asi8.astype(np.float64) / 1e6
            )
        lat = pd.to_numeric(frame.get("latitude", pd.Series(dtype=float)), errors="coerce")
        lon = pd.to_numeric(frame.get("longitude", pd.Series(dtype=float)), errors="coerce")
        lat = lat.to_numpy(dtype=np.float64) if len(frame) else np.zeros(0)
        lon = lon.to_numpy(dtype=np.float64) if len(frame) else np.zeros(0)
        has_location = ~(np.isnan(lat) | np.isnan(lon))
        lat_rad = np.radians(lat)
        pk = frame["id"].to_numpy(dtype=np.int64) if len(frame) else np.zeros(0, dtype=np.int64)
        event_id = frame["event_id"].astype(str).to_numpy(dtype=object) if len(frame) else np.array(
            [], dtype=object
        )
        return cls(
            frame=frame,
            pk=pk,
            event_id=event_id,
            start_epoch=start_epoch,
            end_epoch=end_epoch,
            start_day=start_day,
            start_sec=start_sec,
            has_end=has_end,
            end_day=end_day,
            end_sec=end_sec,
            lat_rad=lat_rad,
            lon_rad=np.radians(lon),
            cos_lat=np.cos(lat_rad),
            has_location=has_location,
            pos_by_pk={int(p): i for i, p in enumerate(pk)},
            pos_by_event_id={str(e): i for i, e in enumerate(event_id)},
            sorted_by_start=bool(len(start_epoch) < 2 or (np.diff(start_epoch) >= 0).all()),
            lat_order=np.argsort(lat_rad, kind="stable"),  # NaN (no location) last
            lat_sorted=np.sort(lat_rad, kind="stable"),
            columns={
                name: (frame[name].tolist() if name in frame and len(frame) else [None] * len(frame))
                for name in ("id", "event_id", "title", "category", "tags", "organizer", "city",
                             "latitude", "longitude", "price", "start_time", "timezone",
                             "capacity")
            },
        )

    def value(self, i: int, name: str):
        """One cell as plain Python; None for missing (NaN / NaT / None)."""
        value = self.columns[name][i]
        if value is None:
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        if value is pd.NaT:
            return None
        return value

    def row(self, i: int) -> dict:
        """The event as a dict with the candidate frame's columns (what model.explain reads)."""
        return {name: column[i] for name, column in self.columns.items()}

    # -- display helpers (per row, only for rows that are shown)

    def local_start_text(self, i: int, with_date: bool = True) -> str:
        return _fmt(int(self.start_day[i]), int(self.start_sec[i]), with_date)

    def local_end_text(self, i: int, with_date: bool = True) -> str:
        if not self.has_end[i]:
            return ""
        return _fmt(int(self.end_day[i]), int(self.end_sec[i]), with_date)

    def local_start(self, i: int) -> datetime:
        """Aware datetime in the event's own timezone."""
        return datetime.fromtimestamp(float(self.start_epoch[i]), _zone(self.columns["timezone"][i]))

    def local_end(self, i: int) -> datetime | None:
        if not self.has_end[i]:
            return None
        return datetime.fromtimestamp(float(self.end_epoch[i]), _zone(self.columns["timezone"][i]))


def _fmt(day: int, sec: int, with_date: bool = True) -> str:
    moment = datetime(1970, 1, 1) + timedelta(days=day, seconds=sec)
    if moment.second:
        clock = moment.strftime("%H:%M:%S")
    else:
        clock = moment.strftime("%H:%M")
    return f"{moment:%Y-%m-%d} {clock}" if with_date else clock


def haversine_km(lat_rad: np.ndarray, lon_rad: np.ndarray, cos_lat: np.ndarray,
                 latitude: float, longitude: float) -> np.ndarray:
    """Great-circle distance from one point to every row (NaN where a row has no location)."""
    lat0 = math.radians(latitude)
    lon0 = math.radians(longitude)
    dlat = lat_rad - lat0
    dlon = lon_rad - lon0
    a = np.sin(dlat * 0.5) ** 2 + math.cos(lat0) * cos_lat * np.sin(dlon * 0.5) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


# --------------------------------------------------------------------------- stages


@dataclass
class StageResult:
    name: str
    enabled: bool
    mask: np.ndarray  # True = passes this stage (lazy outcomes: passes it AND every earlier one)
    explain: Callable[[int], str] = field(repr=False)  # reason for a failed row

    def reason(self, i: int) -> str:
        return "" if self.mask[i] else self.explain(i)


class FilterOutcome:
    """The stages' masks, the final mask, distances (computed on demand) and unknown rejects.

    A full outcome (debug filter) evaluates every stage on every candidate, so each row has a
    pass flag and a reason per stage. A lazy outcome (recommend) evaluates each stage only on
    the rows still alive, which gives the same final mask and the same funnel counts for less
    work; its per-stage masks are cumulative and its reasons are not meant to be read.
    """

    def __init__(self, stages: list[StageResult], passed: np.ndarray, arrays: CandidateArrays,
                 origin: tuple[float, float] | None, origin_label: str,
                 unknown_rejects: tuple[str, ...], lazy: bool, distances: np.ndarray,
                 measured: np.ndarray):
        self.stages = stages
        self.passed = passed
        self.origin = origin
        self.origin_label = origin_label  # "point" / "home" / ""
        self.unknown_rejects = unknown_rejects
        self.lazy = lazy
        self._arrays = arrays
        self._distances = distances  # km, NaN where not measured or no location
        self._measured = measured

    def distances(self, idx: np.ndarray) -> np.ndarray | None:
        """Distances (km) of the rows `idx` from the origin; None without an origin."""
        if self.origin is None:
            return None
        idx = np.asarray(idx, dtype=np.int64)
        todo = idx[~self._measured[idx]]
        if len(todo):
            a = self._arrays
            self._distances[todo] = haversine_km(a.lat_rad[todo], a.lon_rad[todo], a.cos_lat[todo],
                                                 *self.origin)
            self._measured[todo] = True
        return self._distances[idx]

    def distance(self, i: int) -> float | None:
        if self.origin is None:
            return None
        if not self._measured[i]:
            a = self._arrays
            if a.has_location[i]:
                lat0, lon0 = math.radians(self.origin[0]), math.radians(self.origin[1])
                h = (math.sin((a.lat_rad[i] - lat0) / 2) ** 2
                     + math.cos(lat0) * a.cos_lat[i] * math.sin((a.lon_rad[i] - lon0) / 2) ** 2)
                self._distances[i] = 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, h))))
            self._measured[i] = True
        value = float(self._distances[i])
        return None if math.isnan(value) else value

    @property
    def distance_km(self) -> np.ndarray | None:
        """Distance of every candidate from the origin (None without one)."""
        if self.origin is None:
            return None
        return self.distances(np.arange(len(self.passed)))

    def remaining(self) -> list[tuple[str, int]]:
        """(stage name, candidates left after it), the first being all candidates."""
        n = len(self.passed)
        counts = [(ALL, n)]
        if self.lazy:  # the masks are cumulative already
            return counts + [(stage.name, int(np.count_nonzero(stage.mask))) for stage in self.stages]
        alive = np.ones(n, dtype=bool)
        for stage in self.stages:
            alive &= stage.mask
            counts.append((stage.name, int(alive.sum())))
        return counts

    def first_failure(self) -> np.ndarray:
        """Index into self.stages of the first failed stage per row, -1 when all passed."""
        n = len(self.passed)
        first = np.full(n, -1, dtype=np.int64)
        for k in range(len(self.stages) - 1, -1, -1):
            first[~self.stages[k].mask] = k
        return first


def _seconds(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def apply_filters(
    arrays: CandidateArrays,
    params: FilterParams,
    *,
    now: datetime,
    registered: Iterable[int] = (),
    stored_rejects: Iterable[int] = (),
    home: tuple[float | None, float | None] | None = None,
    lazy: bool = False,
) -> FilterOutcome:
    """Run every stage, in DESIGN.md's order. `registered` / `stored_rejects` are database
    ids; `params.reject` holds platform event ids (unknown ones are reported, not an error).
    Each stage is a vectorized test over an index array: every candidate (full), or only the
    candidates that passed the earlier stages (lazy)."""
    n = arrays.n
    everyone = np.arange(n, dtype=np.int64)
    cur = np.ones(n, dtype=bool)  # lazy: rows alive after the stages so far
    stages: list[StageResult] = []

    def add(name: str, enabled: bool, test: Callable[[np.ndarray], np.ndarray],
            explain: Callable[[int], str], blocked: np.ndarray | None = None,
            candidates: Callable[[], np.ndarray] | None = None) -> None:
        """Full: `test` on every row. Lazy: only rows still alive; a sparse stage names the
        rows it removes (`blocked`), a stage with an index names the only rows that can pass
        (`candidates`)."""
        nonlocal cur
        if not lazy:
            mask = test(everyone) if enabled else np.ones(n, dtype=bool)
        elif not enabled:
            mask = cur  # nothing changes
        elif blocked is not None:
            mask = cur.copy()
            if len(blocked):
                mask[blocked] = False
        elif candidates is not None:
            rows = candidates()
            rows = rows[cur[rows]]
            mask = np.zeros(n, dtype=bool)
            if len(rows):
                mask[rows[test(rows)]] = True
        else:
            mask = cur.copy()
            rows = np.flatnonzero(mask)
            if len(rows):
                ok = test(rows)
                mask[rows[~ok]] = False
        if lazy:
            cur = mask
        stages.append(StageResult(name, enabled, mask, explain))

    # upcoming
    now_epoch = now.timestamp()
    if lazy and arrays.sorted_by_start:
        # candidates come ordered by start time: the upcoming ones are a suffix
        first = int(np.searchsorted(arrays.start_epoch, now_epoch, side="right"))
        cur = np.zeros(n, dtype=bool)
        cur[first:] = True
        stages.append(StageResult(UPCOMING, True, cur,
                                  lambda i: f"started {arrays.local_start_text(i)} (past)"))
    else:
        add(UPCOMING, True, lambda rows: arrays.start_epoch[rows] > now_epoch,
            lambda i: f"started {arrays.local_start_text(i)} (past)")

    # not already registered
    registered_hit = np.zeros(n, dtype=bool)
    positions = np.asarray([arrays.pos_by_pk[p] for p in registered if p in arrays.pos_by_pk],
                           dtype=np.int64)
    registered_hit[positions] = True
    add(NOT_REGISTERED, True, lambda rows: ~registered_hit[rows], lambda i: "already registered",
        blocked=positions)

    # not rejected: the request's list and the user's stored rejects
    request_hit = np.zeros(n, dtype=bool)
    unknown: list[str] = []
    hits = []
    for event_id in params.reject:
        pos = arrays.pos_by_event_id.get(event_id)
        if pos is None:
            unknown.append(event_id)
        else:
            hits.append(pos)
    if hits:
        request_hit[np.asarray(hits, dtype=np.int64)] = True
    stored_hit = np.zeros(n, dtype=bool)
    stored = [arrays.pos_by_pk[p] for p in stored_rejects if p in arrays.pos_by_pk]
    if stored:
        stored_hit[np.asarray(stored, dtype=np.int64)] = True
    add(NOT_REJECTED, True, lambda rows: ~(request_hit[rows] | stored_hit[rows]),
        lambda i: "rejected" if request_hit[i] else "rejected earlier",
        blocked=np.asarray(hits + stored, dtype=np.int64))

    # distance (haversine from the given point or the user's home)
    origin: tuple[float, float] | None = None
    origin_label = ""
    if params.has_point:
        origin, origin_label = (params.latitude, params.longitude), "point"
    elif home is not None and home[0] is not None and home[1] is not None:
        origin, origin_label = (float(home[0]), float(home[1])), "home"
    distances = np.full(n, np.nan)
    measured = np.zeros(n, dtype=bool)
    outcome_box: list[FilterOutcome] = []
    if params.max_km is not None and origin is None:
        raise BeaconError(
            "a max distance needs a point (--lat and --lon) or a user with a home location"
        )
    limit = float(params.max_km) if params.max_km is not None else math.inf
    # a great-circle distance is at least R * |latitude difference|: rows outside that band
    # fail without trigonometry
    band = limit / EARTH_RADIUS_KM
    lat0 = math.radians(origin[0]) if origin is not None else 0.0

    def near(rows: np.ndarray) -> np.ndarray:
        ok = arrays.has_location[rows] & (np.abs(arrays.lat_rad[rows] - lat0) <= band + 1e-12)
        close = rows[ok]
        if len(close):
            d = outcome_box[0].distances(close)
            ok[ok] = d <= limit
        return ok

    def distance_reason(i: int) -> str:
        if not arrays.has_location[i]:
            return "no location"
        return f"{outcome_box[0].distance(i):.1f} km away > {limit:.1f} km"

    # the outcome object exists before the distance stage so that it caches what it measures
    outcome = FilterOutcome([], np.zeros(0, dtype=bool), arrays, origin, origin_label, (), lazy,
                            distances, measured)
    outcome_box.append(outcome)
    def in_band() -> np.ndarray:
        # rows whose latitude is within the band: a slice of the latitude order
        lo = np.searchsorted(arrays.lat_sorted, lat0 - band - 1e-12, side="left")
        hi = np.searchsorted(arrays.lat_sorted, lat0 + band + 1e-12, side="right")
        return arrays.lat_order[lo:hi]

    add(DISTANCE, params.max_km is not None, near, distance_reason, candidates=in_band)

    # selected dates (event local date)
    wanted = np.asarray([(d - _EPOCH).days for d in params.dates or ()], dtype=np.int64)
    add(DATES, params.dates is not None, lambda rows: np.isin(arrays.start_day[rows], wanted),
        lambda i: f"on {_fmt(int(arrays.start_day[i]), 0)[:10]}, not a selected date")

    # daily window in the event's local time; an end before the start crosses midnight
    if params.window_start is not None:
        ws, we = _seconds(params.window_start), _seconds(params.window_end)
        length = (we - ws) % DAY
        label = params.window_label
        end_label = _hhmm(params.window_end)

        def start_rel(rows):
            return np.mod(arrays.start_sec[rows] - ws, DAY)

        def in_window(rows: np.ndarray) -> np.ndarray:
            begin = start_rel(rows)
            duration = ((arrays.end_day[rows] - arrays.start_day[rows]) * DAY
                        + arrays.end_sec[rows] - arrays.start_sec[rows])
            return (begin <= length) & (~arrays.has_end[rows] | (begin + duration <= length))

        def window_reason(i: int) -> str:
            if start_rel(np.asarray([i]))[0] > length:
                return f"starts {arrays.local_start_text(i, False)}, outside the window {label}"
            later_day = arrays.end_day[i] != arrays.start_day[i]
            return (
                f"ends {arrays.local_end_text(i, with_date=bool(later_day))}, "
                f"after the window end {end_label}"
            )

        add(WINDOW, True, in_window, window_reason)
    else:
        add(WINDOW, False, lambda rows: np.ones(len(rows), dtype=bool), lambda i: "")

    if lazy:
        passed = cur
    else:
        passed = np.ones(n, dtype=bool)
        for stage in stages:
            passed &= stage.mask
    outcome.stages = stages
    outcome.passed = passed
    outcome.unknown_rejects = tuple(unknown)
    if not lazy and origin is not None:
        outcome.distances(everyone)
    return outcome


def parse_dates(text: str | Sequence[str] | None) -> tuple[date, ...] | None:
    """Only the date part of FilterParams.parse (the console's date picker uses it)."""
    return FilterParams.parse(dates=text).dates
