"""Feature tokens for users and events, and the vocabularies that turn them into rows.

User tokens: interest tags ("tag:jazz"), home area ("geo:52.5,13.0"), city ("city:berlin").
Event tokens: category, tags, organizer, city, geo cell, price band, local time-of-day band and
weekday (from start_time in the event's own timezone). Tokens are built column-wise over a
whole frame (long format: one (row, token) pair per line), so thousands of events cost a few
vectorized pandas operations, not a Python loop per event.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GEO_CELL_DEGREES = 0.5
MAX_TOKENS_PER_ROW = 48
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class UserContext:
    """What the model needs to know about a user at serving time."""

    user_id: int | None = None
    tags: tuple[str, ...] = ()
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "UserContext":
        """From a users-frame row or a plain dict (keys id/user_id, tags, latitude, ...)."""
        user_id = row.get("user_id", row.get("id"))
        tags = row.get("tags") or ()
        return cls(
            user_id=None if _missing(user_id) else int(user_id),
            tags=tuple(str(t) for t in tags),
            latitude=None if _missing(row.get("latitude")) else float(row["latitude"]),
            longitude=None if _missing(row.get("longitude")) else float(row["longitude"]),
            city=None if _missing(row.get("city")) else str(row["city"]),
        )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def norm(value: Any) -> str:
    return " ".join(str(value).strip().lower().split())


def geo_cell(latitude: float, longitude: float) -> str:
    lat = math.floor(latitude / GEO_CELL_DEGREES) * GEO_CELL_DEGREES
    lon = math.floor(longitude / GEO_CELL_DEGREES) * GEO_CELL_DEGREES
    return f"geo:{lat:.1f},{lon:.1f}"


def price_band(price: float | None) -> str | None:
    if price is None or (isinstance(price, float) and math.isnan(price)):
        return None
    if price <= 0:
        return "price:free"
    if price < 20:
        return "price:<20"
    if price < 50:
        return "price:<50"
    return "price:50+"


def time_band(hour: int) -> str:
    if 5 <= hour < 12:
        return "time:morning"
    if 12 <= hour < 17:
        return "time:afternoon"
    if 17 <= hour < 22:
        return "time:evening"
    return "time:night"


def user_tokens(user: UserContext) -> list[str]:
    tokens = [f"tag:{norm(t)}" for t in user.tags if str(t).strip()]
    if user.city and str(user.city).strip():
        tokens.append(f"city:{norm(user.city)}")
    if user.latitude is not None and user.longitude is not None:
        tokens.append(geo_cell(user.latitude, user.longitude))
    return list(dict.fromkeys(tokens))


# A piece of a token table: rows (positions in the frame), codes into uniques (token strings).
# Normalizing and formatting happen once per distinct value, never once per row.
Piece = tuple[np.ndarray, np.ndarray, np.ndarray]
_EMPTY_PIECE: Piece = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, object))
PRICE_TOKENS = np.array(["price:free", "price:<20", "price:<50", "price:50+"], dtype=object)
TIME_TOKENS = np.array(["time:morning", "time:afternoon", "time:evening", "time:night"],
                       dtype=object)
DAY_TOKENS = np.array([f"day:{d}" for d in WEEKDAYS], dtype=object)


def _from_values(rows: np.ndarray, values: np.ndarray, normalize) -> Piece:
    """Factorize raw values, normalize each distinct one, drop empties, merge equal tokens."""
    if len(rows) == 0:
        return _EMPTY_PIECE
    codes, uniques = pd.factorize(values)
    tokens = np.array([normalize(u) for u in uniques], dtype=object)
    token_codes, token_uniques = pd.factorize(tokens)
    codes = token_codes[codes]
    token_uniques = np.asarray(token_uniques, dtype=object)
    keep = token_uniques[codes] != ""
    return rows[keep], codes[keep].astype(np.int64), token_uniques


def _text_piece(frame: pd.DataFrame, column: str, prefix: str, lower: bool = True) -> Piece:
    if column not in frame or frame.empty:
        return _EMPTY_PIECE
    values = frame[column]
    mask = values.notna().to_numpy()
    if not mask.any():
        return _EMPTY_PIECE

    def normalize(raw: Any) -> str:
        text = norm(raw) if lower else " ".join(str(raw).split())
        return f"{prefix}{text}" if text else ""

    return _from_values(np.flatnonzero(mask), values.to_numpy(dtype=object)[mask], normalize)


def _tag_lists(frame: pd.DataFrame, column: str) -> list:
    return [v if isinstance(v, (list, tuple, np.ndarray)) else [] for v in frame[column]]


def _tags_piece(frame: pd.DataFrame, column: str = "tags") -> Piece:
    if column not in frame or frame.empty:
        return _EMPTY_PIECE
    lists = _tag_lists(frame, column)
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    if lengths.sum() == 0:
        return _EMPTY_PIECE
    rows = np.repeat(np.arange(len(frame), dtype=np.int64), lengths)
    flat = np.array([str(t) for v in lists for t in v], dtype=object)

    def normalize(raw: Any) -> str:
        text = norm(raw)
        return f"tag:{text}" if text else ""

    rows, codes, uniques = _from_values(rows, flat, normalize)
    if len(rows) == 0:
        return _EMPTY_PIECE
    key = np.unique(rows * len(uniques) + codes)  # one token per row, even if tagged twice
    return key // len(uniques), key % len(uniques), uniques


def _geo_piece(frame: pd.DataFrame) -> Piece:
    if "latitude" not in frame or "longitude" not in frame or frame.empty:
        return _EMPTY_PIECE
    lat = pd.to_numeric(frame["latitude"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(frame["longitude"], errors="coerce").to_numpy(dtype=float)
    mask = np.isfinite(lat) & np.isfinite(lon)
    if not mask.any():
        return _EMPTY_PIECE
    cell_lat = np.floor(lat[mask] / GEO_CELL_DEGREES).astype(np.int64)
    cell_lon = np.floor(lon[mask] / GEO_CELL_DEGREES).astype(np.int64)
    codes, uniques = pd.factorize(cell_lat * 10_000 + (cell_lon + 5_000))
    tokens = np.array([
        f"geo:{(u // 10_000) * GEO_CELL_DEGREES:.1f},{(u % 10_000 - 5_000) * GEO_CELL_DEGREES:.1f}"
        for u in uniques], dtype=object)
    return np.flatnonzero(mask), codes.astype(np.int64), tokens


def _price_piece(frame: pd.DataFrame) -> Piece:
    if "price" not in frame or frame.empty:
        return _EMPTY_PIECE
    price = pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=float)
    mask = np.isfinite(price)
    p = price[mask]
    codes = np.select([p <= 0, p < 20, p < 50], [0, 1, 2], 3).astype(np.int64)
    return np.flatnonzero(mask), codes, PRICE_TOKENS


def _hour_band(hours: np.ndarray) -> np.ndarray:
    return np.select([(hours >= 5) & (hours < 12), (hours >= 12) & (hours < 17),
                      (hours >= 17) & (hours < 22)], [0, 1, 2], 3).astype(np.int64)


def _hour_band_of(hour: int) -> int:
    """_hour_band of one hour (np.select costs ~50 us for a single value)."""
    return 0 if 5 <= hour < 12 else 1 if 12 <= hour < 17 else 2 if 17 <= hour < 22 else 3


def _local_time_pieces(frame: pd.DataFrame) -> list[Piece]:
    if "start_time" not in frame or frame.empty:
        return []
    start = pd.to_datetime(frame["start_time"], utc=True, errors="coerce")
    zones = frame["timezone"].fillna("UTC").astype(str).to_numpy() if "timezone" in frame \
        else np.full(len(frame), "UTC", dtype=object)
    hours = np.full(len(frame), -1, dtype=np.int64)
    days = np.full(len(frame), -1, dtype=np.int64)
    codes, uniques = pd.factorize(zones)
    index = pd.DatetimeIndex(start)
    for code, zone in enumerate(uniques):
        idx = np.flatnonzero(codes == code)
        part = index[idx]
        try:
            local = part.tz_convert(str(zone))
        except Exception:  # noqa: BLE001 - an unknown zone name: read the time as UTC
            local = part
        ok = ~part.isna()
        hours[idx[ok]] = np.asarray(local.hour)[ok]
        days[idx[ok]] = np.asarray(local.day_of_week)[ok]
    ok = hours >= 0
    rows = np.flatnonzero(ok)
    return [(rows, _hour_band(hours[ok]), TIME_TOKENS), (rows, days[ok], DAY_TOKENS)]


def _event_pieces(events: pd.DataFrame) -> list[Piece]:
    events = events.reset_index(drop=True)
    return [
        _text_piece(events, "category", "category:"),
        _tags_piece(events),
        _text_piece(events, "organizer", "organizer:", lower=False),
        _text_piece(events, "city", "city:"),
        _geo_piece(events),
        _price_piece(events),
        *_local_time_pieces(events),
    ]


def _user_pieces(users: pd.DataFrame) -> list[Piece]:
    users = users.reset_index(drop=True)
    return [_tags_piece(users), _text_piece(users, "city", "city:"), _geo_piece(users)]


def _table(pieces: list[Piece]) -> pd.DataFrame:
    pieces = [p for p in pieces if len(p[0])]
    if not pieces:
        return pd.DataFrame({"row": np.empty(0, dtype=np.int64), "token": np.empty(0, object)})
    rows = np.concatenate([p[0] for p in pieces])
    tokens = np.concatenate([p[2][p[1]] for p in pieces])
    order = np.argsort(rows, kind="stable")
    return pd.DataFrame({"row": rows[order], "token": tokens[order]})


def event_token_table(events: pd.DataFrame) -> pd.DataFrame:
    """(row, token) pairs for every event row (row = position in the frame)."""
    return _table(_event_pieces(events))


def user_token_table(users: pd.DataFrame) -> pd.DataFrame:
    """(row, token) pairs for every user row: interest tags, city, home geo cell."""
    return _table(_user_pieces(users))


def event_tokens(row: Mapping[str, Any]) -> list[str]:
    """The tokens of one event, in plain Python (the same tokens event_token_table gives):
    cheap for the few rows of a reason or a fold-in, where pandas would cost milliseconds."""
    tokens: list[str] = []
    category = row.get("category")
    if not _missing(category) and norm(category):
        tokens.append(f"category:{norm(category)}")
    tags = row.get("tags")
    if isinstance(tags, (list, tuple, np.ndarray)):
        tokens.extend(f"tag:{norm(t)}" for t in tags if norm(t))
    organizer = row.get("organizer")
    if not _missing(organizer) and str(organizer).split():
        tokens.append("organizer:" + " ".join(str(organizer).split()))
    city = row.get("city")
    if not _missing(city) and norm(city):
        tokens.append(f"city:{norm(city)}")
    lat, lon = _number(row.get("latitude")), _number(row.get("longitude"))
    if lat is not None and lon is not None:
        tokens.append(geo_cell(lat, lon))
    band = price_band(_number(row.get("price")))
    if band:
        tokens.append(band)
    tokens.extend(_local_time_tokens(row.get("start_time"), row.get("timezone")))
    return list(dict.fromkeys(tokens))


def _number(value: Any) -> float | None:
    if _missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):  # unknown zone: read the time as UTC
        return timezone.utc


def _local_time_tokens(start: Any, zone: Any) -> list[str]:
    if _missing(start):
        return []
    if isinstance(start, pd.Timestamp):
        start = start.to_pydatetime()
    elif not isinstance(start, datetime):
        try:
            start = pd.Timestamp(start).to_pydatetime()
        except (TypeError, ValueError):
            return []
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    local = start.astimezone(_zone(str(zone)) if not _missing(zone) else timezone.utc)
    return [str(TIME_TOKENS[_hour_band_of(local.hour)]),
            f"day:{WEEKDAYS[local.weekday()]}"]


def token_indices(pieces: list[Piece], vocab: "Vocabulary") -> tuple[np.ndarray, np.ndarray]:
    """(rows, vocabulary indices) of every known token; unknown tokens are dropped."""
    rows, idx = [], []
    get = vocab.index.get
    for p_rows, codes, uniques in pieces:
        if len(p_rows) == 0:
            continue
        lut = np.array([get(u, -1) for u in uniques], dtype=np.int64)
        mapped = lut[codes]
        keep = mapped >= 0
        rows.append(p_rows[keep])
        idx.append(mapped[keep])
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows), np.concatenate(idx)


def event_token_rows(events: pd.DataFrame, vocab: "Vocabulary", pad: int) -> np.ndarray:
    """[n, L] vocabulary indices of each event's tokens, `pad` filling short rows."""
    n = len(events)
    if n <= SMALL_FRAME:
        rows, idx = [], []
        get = vocab.index.get
        names = list(events.columns)
        columns = [events[name].tolist() for name in names]  # pandas' to_dict is slower
        for r, values in enumerate(zip(*columns)):
            for token in event_tokens(dict(zip(names, values))):
                i = get(token)
                if i is not None:
                    rows.append(r)
                    idx.append(i)
        return _padded(np.array(rows, np.int64), np.array(idx, np.int64), n, pad)
    return _padded(*token_indices(_event_pieces(events), vocab), n, pad)


def user_token_rows(users: pd.DataFrame, vocab: "Vocabulary", pad: int) -> np.ndarray:
    return _padded(*token_indices(_user_pieces(users), vocab), len(users), pad)


SMALL_FRAME = 32


class Vocabulary:
    """Token <-> index; built at fit time, unknown tokens are ignored at serve time."""

    def __init__(self, tokens: Sequence[str]):
        self.tokens: list[str] = list(tokens)
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1) -> "Vocabulary":
        counts = pd.Series(list(tokens), dtype=object).value_counts(sort=False)
        kept = sorted(t for t, c in counts.items() if c >= min_count)
        return cls(kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def lookup(self, tokens: Iterable[str]) -> np.ndarray:
        get = self.index.get
        return np.array([i for i in (get(t, -1) for t in tokens) if i >= 0], dtype=np.int64)


def padded_rows(table: pd.DataFrame, vocab: Vocabulary, n_rows: int,
                pad: int) -> np.ndarray:
    """[n_rows, L] token indices per row of a (row, token) table, `pad` filling short rows."""
    idx = table["token"].map(vocab.index).to_numpy()
    known = ~pd.isna(idx)
    rows = table["row"].to_numpy(dtype=np.int64)[known]
    return _padded(rows, idx[known].astype(np.int64), n_rows, pad)


def _padded(rows: np.ndarray, idx: np.ndarray, n_rows: int, pad: int) -> np.ndarray:
    if len(rows) == 0:
        return np.full((n_rows, 1), pad, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    rows, idx = rows[order], idx[order]
    starts = np.searchsorted(rows, rows, side="left")
    position = np.arange(len(rows)) - starts
    keep = position < MAX_TOKENS_PER_ROW
    rows, idx, position = rows[keep], idx[keep], position[keep]
    width = int(position.max()) + 1
    out = np.full((n_rows, width), pad, dtype=np.int64)
    out[rows, position] = idx
    return out


# --------------------------------------------------------------------------- place (pairwise)

EARTH_RADIUS_KM = 6371.0088
NEAR_KM = 10.0  # scale of the "within reach" feature exp(-km / NEAR_KM)
PLACE_FEATURES = ("same_city", "log_km", "near")
PLACE_TOKEN = "geo:home"  # explain's name for the place term ("near your home (1.2 km)")


@dataclass(frozen=True)
class Places:
    """Where a set of rows are: latitude/longitude in radians (NaN when unknown) and a city code
    into `cities` (-1 when unknown), with the DB ids of the rows (to realign a subset).
    `xyz`: the points on the unit sphere, so that a distance is a dot product."""

    ids: np.ndarray  # int64 [n]
    lat: np.ndarray  # float64 radians [n]
    lon: np.ndarray  # float64 radians [n]
    city: np.ndarray  # int64 [n], -1 unknown
    cities: dict[str, int]  # normalized city name -> code

    @property
    def xyz(self) -> np.ndarray:
        xyz = self.__dict__.get("_xyz")
        if xyz is None:
            xyz = unit_xyz(self.lat, self.lon)
            object.__setattr__(self, "_xyz", xyz)
        return xyz

    @classmethod
    def of(cls, frame: pd.DataFrame, cities: dict[str, int] | None = None) -> "Places":
        n = len(frame)
        ids = frame["id"].to_numpy(dtype=np.int64) if "id" in frame and n else \
            np.arange(n, dtype=np.int64)
        lat = _radians(frame, "latitude")
        lon = _radians(frame, "longitude")
        bad = ~(np.isfinite(lat) & np.isfinite(lon))
        lat[bad] = np.nan
        lon[bad] = np.nan
        city, table = city_codes(frame["city"] if "city" in frame else pd.Series([None] * n),
                                 cities)
        return cls(ids, lat, lon, city, table)

    def __len__(self) -> int:
        return len(self.ids)

    def rows_for(self, ids: np.ndarray) -> np.ndarray | None:
        """Positions of `ids` among this set's rows (None: these are exactly its rows)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == len(self.ids) and (ids is self.ids or np.array_equal(ids, self.ids)):
            return None
        if len(self.ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        order = self.__dict__.get("_order")
        if order is None:
            order = np.argsort(self.ids, kind="stable")
            object.__setattr__(self, "_order", order)
        pos = np.minimum(np.searchsorted(self.ids[order], ids), len(order) - 1)
        rows = order[pos]
        return np.where(self.ids[rows] == ids, rows, -1)

    def take(self, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(xyz [m, 3], city codes [m]) of the given rows (None: all; -1: unknown place)."""
        if rows is None:
            return self.xyz, self.city
        if not len(self.ids):
            return np.full((len(rows), 3), np.nan), np.full(len(rows), -1, dtype=np.int64)
        ok = rows >= 0
        safe = np.where(ok, rows, 0)
        return (np.where(ok[:, None], self.xyz[safe], np.nan),
                np.where(ok, self.city[safe], -1))

    def city_code(self, name: Any) -> int:
        """The code of a city name in this set (-2: known name not in the set, -1: none)."""
        if _missing(name) or not norm(name):
            return -1
        return self.cities.get(norm(name), -2)


def _radians(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame or len(frame) == 0:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    return np.radians(values)


def city_codes(values: pd.Series | Sequence[Any],
               cities: dict[str, int] | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Codes of normalized city names (-1 for none); new names extend a copy of `cities`."""
    table = dict(cities or {})
    series = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=True)
    lut = np.empty(len(uniques), dtype=np.int64)
    for i, raw in enumerate(uniques):
        name = norm(raw) if not _missing(raw) else ""
        if not name:
            lut[i] = -1
            continue
        if name not in table:
            table[name] = len(table)
        lut[i] = table[name]
    out = np.where(codes >= 0, lut[np.maximum(codes, 0)] if len(lut) else -1, -1)
    return out.astype(np.int64), table


def unit_xyz(lat: Any, lon: Any) -> np.ndarray:
    """[..., 3] points on the unit sphere from latitude/longitude in radians (NaN stays NaN)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def chord_km(uxyz: np.ndarray, exyz: np.ndarray) -> np.ndarray:
    """Great-circle km between unit vectors (broadcast over leading axes): from the chord
    |u - e|, exact to well under a metre at any distance; NaN when either side is NaN."""
    if uxyz.ndim == 1:
        dot = exyz @ uxyz
    else:
        dot = np.einsum("...k,...k->...", *np.broadcast_arrays(uxyz, exyz))
    # 2 - 2 cos in float64 (it cancels for near points), the rest in float32: fast, and a
    # float32 half-chord still resolves centimetres.
    squared = np.maximum(2.0 - 2.0 * dot, 0.0).astype(np.float32)
    half_chord = np.minimum(np.sqrt(squared) * np.float32(0.5), np.float32(1.0))
    return np.float32(2.0 * EARTH_RADIUS_KM) * np.arcsin(half_chord)


def _near(km: np.ndarray) -> np.ndarray:
    # exp of a large negative number underflows into slow denormals: cap at 300 km (e^-30)
    return np.exp(-np.minimum(km, np.float32(300.0)) / np.float32(NEAR_KM))


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in radians (NaN in, NaN out)."""
    dlat = lat2 - lat1
    dlon = lon2 - lon1
    a = np.sin(dlat * 0.5) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlon * 0.5) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def place_features(uxyz, ucity, exyz, ecity) -> np.ndarray:
    """[..., 3] raw pairwise features (broadcast over the inputs; xyz from `unit_xyz`): same
    city (1/0), log1p(km), exp(-km / NEAR_KM); NaN where either side's city / location is
    unknown. A user city code of -2 is a named city that no event has."""
    ucity = np.asarray(ucity)
    ecity = np.asarray(ecity)
    known_city = (ucity != -1) & (ecity >= 0)
    same = np.where(known_city, (ucity == ecity).astype(np.float64), np.nan)
    km = chord_km(np.asarray(uxyz, dtype=np.float64), np.asarray(exyz, dtype=np.float64))
    shape = np.broadcast_shapes(np.shape(same), np.shape(km))
    out = np.empty((*shape, 3), dtype=np.float64)
    out[..., 0] = same
    out[..., 1] = np.log1p(km)
    out[..., 2] = _near(km)
    return out


def place_term(uxyz, ucity, exyz, ecity, center: np.ndarray,
               weights: np.ndarray) -> np.ndarray:
    """weights . (place_features - center), unknown features at 0, without building the
    [..., 3] feature array: the serving form (100k events in about a millisecond or two)."""
    w = np.asarray(weights, dtype=np.float32)
    c = np.asarray(center, dtype=np.float32)
    km = chord_km(np.asarray(uxyz, dtype=np.float64), np.asarray(exyz, dtype=np.float64))
    term = w[1] * (np.log1p(km) - c[1]) + w[2] * (_near(km) - c[2])
    term = np.where(np.isnan(term), np.float32(0.0), term)
    ucity = np.asarray(ucity)
    ecity = np.asarray(ecity)
    known = (ucity != -1) & (ecity >= 0)
    if np.any(known):
        same = (ucity == ecity).astype(np.float32) - c[0]
        term = term + np.where(known, w[0] * same, np.float32(0.0))
    return np.asarray(term, dtype=np.float32)


def centered_place_features(raw: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Features minus their center, unknown (NaN) features at 0: neutral."""
    out = raw - center
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
