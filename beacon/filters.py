"""Filter parameters (parse + validate) and the filter stages as numpy boolean masks.

One code path serves recommend() and the debug filter. Stages, in docs/filters.md's order:
upcoming; not already registered; not rejected; within max distance; on a selected date;
inside the daily time window; in one of the asked categories. Every stage yields a mask over all candidates (no Python loop
over events); reason strings are built only for failed rows, on demand.

Local times are computed once per candidate snapshot (CandidateArrays), one vectorized
conversion per distinct IANA timezone (zoneinfo), so DST days come out right.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from beacon.errors import BeaconError
from beacon.features import event_tokens, unit_xyz

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
CATEGORY = "in category"
#: how close (in squared chord of the unit sphere, ~0.4 mm at 50 km) a row must be to the
#: distance limit before the exact haversine decides
CHORD_EPS = 1e-12
#: how far an event without a location counts where distance weighs in a score
UNKNOWN_PLACE_KM = 1_000.0
#: user-independent stage masks kept per candidate snapshot (distinct date sets / windows)
MASK_CACHE_SIZE = 64
STAGE_NAMES = (ALL, UPCOMING, NOT_REGISTERED, NOT_REJECTED, DISTANCE, DATES, WINDOW, CATEGORY)
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
    categories: tuple[str, ...] | None = None  # None = category filter off (case-insensitive)

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
        category=None,
    ) -> "FilterParams":
        """Validate raw input (CLI strings, console widgets). Raises BeaconError naming what
        was wrong."""
        latitude = _number(lat, "latitude")
        longitude = _number(lon, "longitude")
        if (latitude is None) != (longitude is None):
            raise BeaconError("give both latitude and longitude, or neither")
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
                raise BeaconError("the date filter is on but no date was given: choose at least one "
                                  "(written like 2026-12-01)")
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
        categories = None
        if category is not None:
            categories = tuple(dict.fromkeys(c.lower() for c in _split(category) or ()))
            if not categories:
                raise BeaconError("the category filter is on but no category was given")
        return cls(
            latitude=latitude,
            longitude=longitude,
            max_km=distance,
            dates=day_list,
            window_start=window_start,
            window_end=window_end,
            reject=rejects,
            categories=categories,
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
            "categories": list(self.categories) if self.categories is not None else None,
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
    #: points on the unit sphere (NaN without a location) in latitude order (lat_order), so
    #: that the latitude band of a distance test is a contiguous slice and the test a dot product
    xyz_by_lat: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)), repr=False)
    #: the same points in row order, for a ranking's km of any rows (`great_circle_km`)
    xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)), repr=False)
    #: local seconds from start to end (0 without an end), for the window stage
    duration: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    #: user-independent stage masks over every candidate (dates, windows), built on first use
    _masks: dict = field(default_factory=dict, repr=False, compare=False)
    #: event_tokens of the rows a page explained (row -> tokens), so a popular event's tokens
    #: are computed once per snapshot, not once per request
    _tokens: dict = field(default_factory=dict, repr=False, compare=False)

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
        lon_rad = np.radians(lon)
        cos_lat = np.cos(lat_rad)
        xyz = unit_xyz(lat_rad, lon_rad) if len(frame) else np.zeros((0, 3))
        lat_order = np.argsort(lat_rad, kind="stable")  # NaN (no location) last
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
            lon_rad=lon_rad,
            cos_lat=cos_lat,
            has_location=has_location,
            pos_by_pk={int(p): i for i, p in enumerate(pk)},
            pos_by_event_id={str(e): i for i, e in enumerate(event_id)},
            sorted_by_start=bool(len(start_epoch) < 2 or (np.diff(start_epoch) >= 0).all()),
            lat_order=lat_order,
            lat_sorted=lat_rad[lat_order],
            xyz_by_lat=np.ascontiguousarray(xyz[lat_order]),
            xyz=np.ascontiguousarray(xyz),
            duration=np.where(has_end, (end_day - start_day) * DAY + end_sec - start_sec, 0),
            columns={
                name: (frame[name].tolist() if name in frame and len(frame) else [None] * len(frame))
                for name in ("id", "event_id", "title", "category", "tags", "organizer", "city",
                             "latitude", "longitude", "price", "start_time", "timezone",
                             "capacity")
            },
        )

    def _cached_mask(self, key: tuple, build: Callable[[], np.ndarray]) -> np.ndarray:
        mask = self._masks.get(key)
        if mask is None:
            mask = build()
            mask.flags.writeable = False  # shared by every request on this snapshot
            if len(self._masks) >= MASK_CACHE_SIZE:
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def dates_mask(self, days: tuple[int, ...]) -> np.ndarray:
        """Every candidate: starts (local date) on one of these epoch days? Cached per set."""
        def build() -> np.ndarray:
            if self.n == 0:
                return np.zeros(0, dtype=bool)
            first = int(self.start_day.min())
            table = np.zeros(int(self.start_day.max()) - first + 1, dtype=bool)
            for day in days:
                if 0 <= day - first < len(table):
                    table[day - first] = True
            return table[self.start_day - first]

        return self._cached_mask(("dates", days), build)

    def window_mask(self, start: int, end: int) -> np.ndarray:
        """Every candidate: inside the daily window [start, end] (local seconds of day; an end
        before the start crosses midnight)? Cached per window."""
        def build() -> np.ndarray:
            length = (end - start) % DAY
            begin = np.mod(self.start_sec - start, DAY)
            return (begin <= length) & (~self.has_end | (begin + self.duration <= length))

        return self._cached_mask(("window", start, end), build)

    def category_mask(self, categories: tuple[str, ...]) -> np.ndarray:
        """Every candidate: its category (case-insensitive) is one of these? Cached per set."""
        def build() -> np.ndarray:
            wanted = set(categories)
            return np.fromiter(
                (isinstance(c, str) and c.lower() in wanted for c in self.columns["category"]),
                dtype=bool, count=self.n)

        return self._cached_mask(("category", categories), build)

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

    def tokens(self, i: int) -> list[str]:
        """features.event_tokens of row i, computed once per snapshot (do not modify)."""
        found = self._tokens.get(i)
        if found is None:
            found = self._tokens[i] = event_tokens(self.row(i))
        return found

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


def unit_point(latitude: float, longitude: float) -> np.ndarray:
    """[3] the point on the unit sphere (the rows' `xyz`) of a latitude/longitude in degrees."""
    return unit_xyz(math.radians(latitude), math.radians(longitude))


def great_circle_km(xyz: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Great-circle km from `point` ([3], `unit_point`) to each of the rows' unit vectors
    ([n, 3]; NaN without a location): 2R asin(|a - b| / 2) with |a - b|^2 = 2 - 2 a.b, one
    matrix-vector product and an arcsine per row where the haversine needs five
    trigonometric passes. The haversine's km to 1e-9 km, and to 10 cm for points a metre apart
    (2 - 2 a.b cancels there)."""
    squared = np.maximum(2.0 - 2.0 * (xyz @ point), 0.0)
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(np.sqrt(squared) * 0.5, 1.0))


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
                 unknown_rejects: tuple[str, ...], lazy: bool):
        self.stages = stages
        self.passed = passed
        self.origin = origin
        self.origin_label = origin_label  # "point" / "home" / ""
        self.unknown_rejects = unknown_rejects
        self.lazy = lazy
        self._arrays = arrays
        # km per row, NaN where there is no location; arrays made on the first vectorized
        # measurement (a response measures its few shown rows one at a time, in `_single`)
        self._distances: np.ndarray | None = None
        self._measured: np.ndarray | None = None
        self._single: dict[int, float] = {}
        self._origin_xyz: np.ndarray | None = None
        self._passed_rows: np.ndarray | None = None
        self._passed_of: np.ndarray | None = None

    def _cache(self) -> tuple[np.ndarray, np.ndarray]:
        if self._distances is None:
            n = self._arrays.n
            self._distances, self._measured = np.full(n, np.nan), np.zeros(n, dtype=bool)
            for i, km in self._single.items():
                self._distances[i], self._measured[i] = km, True
        return self._distances, self._measured

    def distances(self, idx: np.ndarray) -> np.ndarray | None:
        """Distances (km) of the rows `idx` from the origin; None without an origin."""
        if self.origin is None:
            return None
        distances, measured = self._cache()
        idx = np.asarray(idx, dtype=np.int64)
        todo = idx[~measured[idx]]
        if len(todo):
            a = self._arrays
            distances[todo] = haversine_km(a.lat_rad[todo], a.lon_rad[todo], a.cos_lat[todo],
                                           *self.origin)
            measured[todo] = True
        return distances[idx]

    def ranking_distances(self, idx: np.ndarray) -> np.ndarray | None:
        """Distances (km) of the rows `idx` for a ranking's decay, not a filter's edge nor a
        reason's figure: those a stage measured, the others by `great_circle_km` (the
        haversine's to 1e-9 km, in a quarter of its time) and not kept, so the distance stage
        and the km a reason shows stay the haversine's. None without an origin."""
        if self.origin is None:
            return None
        idx = np.asarray(idx, dtype=np.int64)
        xyz = self._arrays.xyz
        if 4 * len(idx) >= len(xyz):  # most rows: one product beats gathering [rows, 3]
            out = great_circle_km(xyz, self._origin_point())[idx]
        else:
            out = great_circle_km(xyz[idx], self._origin_point())
        if self._distances is not None:
            measured = self._measured[idx]
            out[measured] = self._distances[idx[measured]]
        return out

    def _origin_point(self) -> np.ndarray:
        if self._origin_xyz is None:
            self._origin_xyz = unit_point(*self.origin)
        return self._origin_xyz

    def distance(self, i: int) -> float | None:
        if self.origin is None:
            return None
        if self._measured is not None and self._measured[i]:
            value = float(self._distances[i])
        elif i in self._single:
            value = self._single[i]
        else:
            value = self._one_distance(i)
            if self._measured is not None:
                self._distances[i], self._measured[i] = value, True
            else:
                self._single[i] = value
        return None if math.isnan(value) else value

    def _one_distance(self, i: int) -> float:
        a = self._arrays
        if not a.has_location[i]:
            return math.nan
        lat0, lon0 = math.radians(self.origin[0]), math.radians(self.origin[1])
        h = (math.sin((a.lat_rad[i] - lat0) / 2) ** 2
             + math.cos(lat0) * a.cos_lat[i] * math.sin((a.lon_rad[i] - lon0) / 2) ** 2)
        return float(2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, h)))))

    @property
    def distance_km(self) -> np.ndarray | None:
        """Distance of every candidate from the origin (None without one)."""
        if self.origin is None:
            return None
        return self.distances(np.arange(len(self.passed)))

    @property
    def passed_rows(self) -> np.ndarray:
        """Positions of the candidates that passed every stage (computed once)."""
        rows = self._passed_rows
        if rows is None or self._passed_of is not self.passed:
            rows = np.flatnonzero(self.passed)
            self._passed_rows, self._passed_of = rows, self.passed
        return rows

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


class _Funnel:
    """The stages in order. Full: each stage's own mask over every row. Lazy: each stage's mask
    is cumulative (passes it and every earlier stage), computed only where rows are alive."""

    def __init__(self, n: int, lazy: bool):
        self.n, self.lazy = n, lazy
        self.alive = np.ones(n, dtype=bool)
        self.stages: list[StageResult] = []

    def add(self, name: str, explain: Callable[[int], str], *, enabled: bool = True,
            full: Callable[[], np.ndarray] | None = None, blocked: np.ndarray | None = None,
            narrow: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """One stage, given as its mask over every row (`full`, user-independent and cached
        per snapshot), the rows it removes (`blocked`), or a function from the rows alive
        before it to the rows alive after it (`narrow`)."""
        before = self.alive if self.lazy else np.ones(self.n, dtype=bool)
        if not enabled:
            mask = before
        elif full is not None:
            mask = before & full()
        elif blocked is not None:
            mask = before.copy()
            if len(blocked):
                mask[blocked] = False
        else:
            mask = narrow(before)
        if self.lazy:
            self.alive = mask
        self.stages.append(StageResult(name, enabled, mask, explain))

    def passed(self) -> np.ndarray:
        if self.lazy:
            return self.alive
        passed = np.ones(self.n, dtype=bool)
        for stage in self.stages:
            passed &= stage.mask
        return passed


def _origin(params: FilterParams,
            home: tuple[float | None, float | None] | None) -> tuple[tuple[float, float] | None, str]:
    """Where distances are measured from: the request's point, else the user's home."""
    if params.has_point:
        return (params.latitude, params.longitude), "point"
    if home is not None and home[0] is not None and home[1] is not None:
        return (float(home[0]), float(home[1])), "home"
    if params.max_km is not None:
        raise BeaconError("a max distance needs a point (a latitude and a longitude) or a user "
                          "with a home location")
    return None, ""


def _upcoming(funnel: _Funnel, arrays: CandidateArrays, now: datetime) -> None:
    now_epoch = now.timestamp()

    def mask() -> np.ndarray:
        if not arrays.sorted_by_start:
            return arrays.start_epoch > now_epoch
        # candidates come ordered by start time: the upcoming ones are a suffix
        upcoming = np.zeros(arrays.n, dtype=bool)
        upcoming[int(np.searchsorted(arrays.start_epoch, now_epoch, side="right")):] = True
        return upcoming

    funnel.add(UPCOMING, lambda i: f"started {arrays.local_start_text(i)} (past)", full=mask)


def _positions(arrays: CandidateArrays, pks: Iterable[int]) -> list[int]:
    return [arrays.pos_by_pk[p] for p in pks if p in arrays.pos_by_pk]


def _not_rejected(funnel: _Funnel, arrays: CandidateArrays, reject: tuple[str, ...],
                  stored_rejects: Iterable[int]) -> tuple[str, ...]:
    """The request's list and the user's stored rejects; returns the unknown event ids."""
    unknown: list[str] = []
    hits: list[int] = []
    for event_id in reject:
        pos = arrays.pos_by_event_id.get(event_id)
        if pos is None:
            unknown.append(event_id)
        else:
            hits.append(pos)
    requested = set(hits)
    funnel.add(NOT_REJECTED, lambda i: "rejected" if i in requested else "rejected earlier",
               blocked=np.asarray(hits + _positions(arrays, stored_rejects), dtype=np.int64))
    return tuple(unknown)


def _within_distance(funnel: _Funnel, arrays: CandidateArrays, max_km: float | None,
                     outcome: FilterOutcome) -> None:
    """Haversine from the origin. A great-circle distance is at least R * |latitude
    difference|, so only a slice of the latitude order can pass; on it, d <= limit <=>
    chord^2 = 2 - 2 cos(d / R) <= (2 sin(limit / 2R))^2, a dot product with the precomputed
    unit vectors; rows within CHORD_EPS of the edge get the exact haversine."""
    limit = float(max_km) if max_km is not None else math.inf
    origin = outcome.origin

    def narrow(alive: np.ndarray) -> np.ndarray:
        band = limit / EARTH_RADIUS_KM
        lat0 = math.radians(origin[0])
        lo = np.searchsorted(arrays.lat_sorted, lat0 - band - 1e-12, side="left")
        hi = np.searchsorted(arrays.lat_sorted, lat0 + band + 1e-12, side="right")
        rows = arrays.lat_order[lo:hi]
        point = unit_point(*origin)
        chord = 2.0 - 2.0 * (arrays.xyz_by_lat[lo:hi] @ point)  # NaN without a location
        chord_limit = (2.0 * math.sin(min(band, math.pi) / 2.0)) ** 2
        inside = chord < chord_limit - CHORD_EPS
        edge = np.flatnonzero(np.abs(chord - chord_limit) <= CHORD_EPS)
        if len(edge):
            inside[edge] = outcome.distances(rows[edge]) <= limit
        mask = np.zeros(arrays.n, dtype=bool)
        mask[rows[inside]] = True
        return mask & alive

    def reason(i: int) -> str:
        if not arrays.has_location[i]:
            return "no location"
        return f"{outcome.distance(i):.1f} km away > {limit:.1f} km"

    funnel.add(DISTANCE, reason, enabled=max_km is not None, narrow=narrow)


def _on_dates(funnel: _Funnel, arrays: CandidateArrays, dates: tuple[date, ...] | None) -> None:
    """The event's local start date is one of the selected dates."""
    wanted = tuple((d - _EPOCH).days for d in dates or ())
    funnel.add(DATES, lambda i: f"on {_fmt(int(arrays.start_day[i]), 0)[:10]}, not a selected date",
               enabled=dates is not None, full=lambda: arrays.dates_mask(wanted))


def _in_window(funnel: _Funnel, arrays: CandidateArrays, params: FilterParams) -> None:
    """Daily window in the event's local time; an end before the start crosses midnight."""
    if params.window_start is None:
        funnel.add(WINDOW, lambda i: "", enabled=False)
        return
    ws, we = _seconds(params.window_start), _seconds(params.window_end)
    length = (we - ws) % DAY

    def reason(i: int) -> str:
        if (int(arrays.start_sec[i]) - ws) % DAY > length:
            return (f"starts {arrays.local_start_text(i, False)}, outside the window "
                    f"{params.window_label}")
        later_day = arrays.end_day[i] != arrays.start_day[i]
        return (f"ends {arrays.local_end_text(i, with_date=bool(later_day))}, "
                f"after the window end {_hhmm(params.window_end)}")

    funnel.add(WINDOW, reason, full=lambda: arrays.window_mask(ws, we))


def _in_category(funnel: _Funnel, arrays: CandidateArrays,
                 categories: tuple[str, ...] | None) -> None:
    funnel.add(CATEGORY, lambda i: f"category {arrays.value(i, 'category') or '(none)'} not asked",
               enabled=categories is not None,
               full=lambda: arrays.category_mask(tuple(categories or ())))


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
    """Run every stage, in docs/filters.md's order. `registered` / `stored_rejects` are database
    ids; `params.reject` holds platform event ids (unknown ones are reported, not an error).
    Full: every stage on every candidate (debug filter). Lazy: each stage only on the
    candidates that passed the earlier ones (recommend); user-independent masks (dates,
    window) are computed once per candidate snapshot either way."""
    origin, origin_label = _origin(params, home)
    outcome = FilterOutcome([], np.zeros(0, dtype=bool), arrays, origin, origin_label, (), lazy)
    funnel = _Funnel(arrays.n, lazy)
    _upcoming(funnel, arrays, now)
    funnel.add(NOT_REGISTERED, lambda i: "already registered",
               blocked=np.asarray(_positions(arrays, registered), dtype=np.int64))
    unknown = _not_rejected(funnel, arrays, params.reject, stored_rejects)
    _within_distance(funnel, arrays, params.max_km, outcome)
    _on_dates(funnel, arrays, params.dates)
    _in_window(funnel, arrays, params)
    _in_category(funnel, arrays, params.categories)
    outcome.stages = funnel.stages
    outcome.passed = funnel.passed()
    outcome.unknown_rejects = unknown
    if not lazy and origin is not None:
        outcome.distances(np.arange(arrays.n))
    return outcome


def parse_dates(text: str | Sequence[str] | None) -> tuple[date, ...] | None:
    """Only the date part of FilterParams.parse (the console's date picker uses it)."""
    return FilterParams.parse(dates=text).dates
