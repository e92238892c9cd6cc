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
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

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


def _geo_cells(lat: pd.Series, lon: pd.Series) -> pd.Series:
    la = np.floor(lat.to_numpy(dtype=float) / GEO_CELL_DEGREES) * GEO_CELL_DEGREES
    lo = np.floor(lon.to_numpy(dtype=float) / GEO_CELL_DEGREES) * GEO_CELL_DEGREES
    la_s = pd.Series(la, index=lat.index).map("{:.1f}".format)
    lo_s = pd.Series(lo, index=lon.index).map("{:.1f}".format)
    return "geo:" + la_s + "," + lo_s


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


def _piece(rows: np.ndarray, tokens: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"row": rows, "token": tokens.to_numpy(dtype=object)})


def _text_piece(frame: pd.DataFrame, column: str, prefix: str, lower: bool = True) -> pd.DataFrame:
    if column not in frame:
        return _piece(np.empty(0, dtype=np.int64), pd.Series([], dtype=object))
    values = frame[column]
    mask = values.notna().to_numpy()
    if not mask.any():
        return _piece(np.empty(0, dtype=np.int64), pd.Series([], dtype=object))
    text = values[mask].astype(str).str.strip()
    text = text.str.lower() if lower else text
    text = text.str.split().str.join(" ")
    keep = (text != "").to_numpy()
    rows = np.flatnonzero(mask)[keep]
    return _piece(rows, prefix + text[keep])


def _tags_piece(frame: pd.DataFrame, column: str = "tags") -> pd.DataFrame:
    if column not in frame or frame.empty:
        return _piece(np.empty(0, dtype=np.int64), pd.Series([], dtype=object))
    lists = frame[column].map(lambda v: v if isinstance(v, (list, tuple, np.ndarray)) else [])
    lengths = lists.map(len).to_numpy(dtype=np.int64)
    if lengths.sum() == 0:
        return _piece(np.empty(0, dtype=np.int64), pd.Series([], dtype=object))
    rows = np.repeat(np.arange(len(frame)), lengths)
    flat = pd.Series([t for v in lists for t in v], dtype=object).astype(str)
    flat = flat.str.strip().str.lower().str.split().str.join(" ")
    keep = (flat != "").to_numpy()
    return _piece(rows[keep], "tag:" + flat[keep])


def _geo_piece(frame: pd.DataFrame) -> pd.DataFrame:
    if "latitude" not in frame or "longitude" not in frame:
        return _piece(np.empty(0, dtype=np.int64), pd.Series([], dtype=object))
    lat = pd.to_numeric(frame["latitude"], errors="coerce")
    lon = pd.to_numeric(frame["longitude"], errors="coerce")
    mask = (lat.notna() & lon.notna()).to_numpy()
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        return _piece(rows, pd.Series([], dtype=object))
    return _piece(rows, _geo_cells(lat[mask], lon[mask]))


def _price_piece(frame: pd.DataFrame) -> pd.DataFrame:
    if "price" not in frame:
        return _piece(np.empty(0, dtype=np.int64), pd.Series([], dtype=object))
    price = pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=float)
    mask = ~np.isnan(price)
    p = price[mask]
    bands = np.select([p <= 0, p < 20, p < 50], ["price:free", "price:<20", "price:<50"],
                      "price:50+")
    return _piece(np.flatnonzero(mask), pd.Series(bands, dtype=object))


def _local_time_pieces(frame: pd.DataFrame) -> list[pd.DataFrame]:
    if "start_time" not in frame or frame.empty:
        return []
    start = pd.to_datetime(frame["start_time"], utc=True, errors="coerce")
    zones = frame["timezone"].fillna("UTC") if "timezone" in frame else \
        pd.Series("UTC", index=frame.index)
    hours = np.full(len(frame), -1, dtype=np.int64)
    days = np.full(len(frame), -1, dtype=np.int64)
    positions = np.arange(len(frame))
    for zone, index in pd.Series(positions).groupby(zones.to_numpy()).groups.items():
        idx = positions[np.asarray(index)]
        try:
            local = start.iloc[idx].dt.tz_convert(str(zone))
        except Exception:  # noqa: BLE001 - an unknown zone name: read the time as UTC
            local = start.iloc[idx]
        hours[idx] = local.dt.hour.fillna(-1).to_numpy(dtype=np.int64)
        days[idx] = local.dt.day_of_week.fillna(-1).to_numpy(dtype=np.int64)
    ok = hours >= 0
    h = hours[ok]
    bands = np.select([(h >= 5) & (h < 12), (h >= 12) & (h < 17), (h >= 17) & (h < 22)],
                      ["time:morning", "time:afternoon", "time:evening"], "time:night")
    weekday = np.array([f"day:{d}" for d in WEEKDAYS], dtype=object)[days[ok]]
    rows = np.flatnonzero(ok)
    return [_piece(rows, pd.Series(bands, dtype=object)), _piece(rows, pd.Series(weekday))]


def event_token_table(events: pd.DataFrame) -> pd.DataFrame:
    """(row, token) pairs for every event row (row = position in the frame)."""
    events = events.reset_index(drop=True)
    pieces = [
        _text_piece(events, "category", "category:"),
        _tags_piece(events),
        _text_piece(events, "organizer", "organizer:", lower=False),
        _text_piece(events, "city", "city:"),
        _geo_piece(events),
        _price_piece(events),
        *_local_time_pieces(events),
    ]
    return _concat(pieces)


def user_token_table(users: pd.DataFrame) -> pd.DataFrame:
    """(row, token) pairs for every user row: interest tags, city, home geo cell."""
    users = users.reset_index(drop=True)
    pieces = [_tags_piece(users), _text_piece(users, "city", "city:"), _geo_piece(users)]
    return _concat(pieces)


def _concat(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return pd.DataFrame({"row": np.empty(0, dtype=np.int64), "token": np.empty(0, object)})
    table = pd.concat(pieces, ignore_index=True)
    table["row"] = table["row"].astype(np.int64)
    return table.drop_duplicates(["row", "token"]).sort_values("row", kind="stable")


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
    """[n_rows, L] token indices per row, `pad` where a row has fewer than L known tokens."""
    idx = table["token"].map(vocab.index).to_numpy()
    known = ~pd.isna(idx)
    rows = table["row"].to_numpy(dtype=np.int64)[known]
    idx = idx[known].astype(np.int64)
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
