"""PROTOTYPE (issue 11, item 2): three pairwise features from event-recommendation work, each
behind a ModelConfig flag (off by default), learned as a linear term like the place term:

- time_profile: share of the user's past positives whose start falls in the candidate's
  (local weekday, time-of-day band) cell, and in its band alone;
- lead_time: log1p(days) until the event starts (from the interaction's time in training, from
  "now" when scoring), and exp(-days / 7);
- visited_places: log1p(km) and exp(-km / 10) from the candidate to the nearest place of the
  user's past positive events (rather than to their home).

A user's history at time t is their positive training pairs first touched before t, minus the
candidate itself (leave-one-out: a positive never sees its own label, and a candidate the user
viewed earlier is scored the same way in training and when ranking). Unknown values (no
history, no place or start) are 0 after centering."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.features import EARTH_RADIUS_KM, NEAR_KM, _local_time_pieces
from beacon.model.data import _Prepared

#: pairs of at least this weight make a user's history (0: every positive pair; 1.0 would keep
#: registrations and attendance only). Patched by benchmarks/event_ideas.py to compare.
HISTORY_MIN_WEIGHT = 0.0
#: the ideas' weights learn at this multiple of the model's learning rate (patched by the
#: driver): at 0.005 and ~100 optimizer steps they, like the place weights, end near 0.1
LR_SCALE = 1.0
VISITED_RECENT = 64  # nearest visited place among the user's latest this many positives
LEAD_SCALE_DAYS = 7.0
CENTER_PAIRS = 20_000
N_BANDS, N_DAYS = 4, 7
T_BITS = 32  # (user row << T_BITS) | time: one sorted key for "user's positives before t"

FEATURES = {
    "time_profile": ("tow_cell_share", "tow_band_share"),
    "lead_time": ("lead_log_days", "lead_within_week"),
    "visited_places": ("visited_log_km", "visited_near"),
}


def enabled(config: ModelConfig) -> tuple[str, ...]:
    """The switched-on ideas, in FEATURES' order."""
    return tuple(name for name in FEATURES if getattr(config, name, False))


def feature_names(config: ModelConfig) -> tuple[str, ...]:
    return tuple(f for name in enabled(config) for f in FEATURES[name])


class EventIdeas:
    """Per-user positive histories of a set of training pairs, and the ideas' features of
    (user row, time, candidate event rows)."""

    def __init__(self, prep: _Prepared, pairs: pd.DataFrame, config: ModelConfig,
                 center: np.ndarray | None = None):
        self.ideas = enabled(config)
        self.n_events = len(prep.events)
        self.event_start = prep.event_start
        self.event_xyz = prep.event_place.xyz
        self.event_cell = _event_cells(prep.events)
        pos = pairs[(pairs["weight"] > 0) & (pairs["weight"] >= HISTORY_MIN_WEIGHT)]
        pos = pos.sort_values(["urow", "t"], kind="stable")
        self.h_urow = pos["urow"].to_numpy(dtype=np.int64)
        self.h_erow = pos["erow"].to_numpy(dtype=np.int64)
        self.h_t = pos["t"].to_numpy(dtype=np.int64)
        self.key = (self.h_urow << T_BITS) | _clip_t(self.h_t)
        self.offset = np.searchsorted(self.h_urow, np.arange(len(prep.users) + 1))
        pair_key = self.h_urow * self.n_events + self.h_erow
        order = np.argsort(pair_key, kind="stable")
        self.pair_key, self.pair_t = pair_key[order], self.h_t[order]
        cell = self.event_cell[self.h_erow]
        onehot = np.zeros((len(pos) + 1, N_DAYS * N_BANDS), dtype=np.int32)
        known = cell >= 0
        onehot[1:][np.flatnonzero(known), cell[known]] = 1
        self.cum_cell = np.cumsum(onehot, axis=0, dtype=np.int32)
        self.cum_band = self.cum_cell.reshape(len(pos) + 1, N_DAYS, N_BANDS).sum(1)
        self.center = self._center(config.seed) if center is None else np.asarray(center)

    @property
    def n_features(self) -> int:
        return sum(len(FEATURES[name]) for name in self.ideas)

    def _before(self, urow: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first, end) positions of each user's history entries before t."""
        first = self.offset[urow]
        end = np.searchsorted(self.key, (urow << T_BITS) | _clip_t(t), side="left")
        return first, np.maximum(end, first)

    def _self_in(self, urow: np.ndarray, t: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """[B, C] whether the candidate itself is among the user's history before t."""
        if len(self.pair_key) == 0:
            return np.zeros(cand.shape, dtype=bool)
        key = urow[:, None] * self.n_events + cand
        idx = np.minimum(np.searchsorted(self.pair_key, key), len(self.pair_key) - 1)
        return (self.pair_key[idx] == key) & (self.pair_t[idx] < t[:, None])

    def raw(self, urow: np.ndarray, t: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """[B, C, F] raw features (NaN: unknown) of users `urow` [B] at times `t` [B] against
        candidate event rows `cand` [B, C]."""
        first, end = self._before(urow, t)
        self_in = self._self_in(urow, t, cand)
        out = []
        for name in self.ideas:
            if name == "time_profile":
                out.extend(self._time_profile(first, end, cand, self_in))
            elif name == "lead_time":
                days = np.maximum(self.event_start[cand] - t[:, None], 0) / 86_400.0
                out.extend([np.log1p(days), np.exp(-days / LEAD_SCALE_DAYS)])
            else:
                km = self._nearest_km(first, end, cand)
                out.extend([np.log1p(km), np.exp(-np.minimum(km, 300.0) / NEAR_KM)])
        return np.stack(out, axis=-1)

    def features(self, urow: np.ndarray, t: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """[B, C, F] float32 centered features, unknown at 0."""
        raw = self.raw(urow, t, cand) - self.center
        return np.nan_to_num(raw, nan=0.0).astype(np.float32)

    def _time_profile(self, first, end, cand, self_in) -> list[np.ndarray]:
        cell = self.event_cell[cand]
        safe = np.maximum(cell, 0)
        band = safe % N_BANDS
        s = self_in.astype(np.int32)
        in_cell = self.cum_cell[end[:, None], safe] - self.cum_cell[first[:, None], safe] - s
        in_band = self.cum_band[end[:, None], band] - self.cum_band[first[:, None], band] - s
        total = (end - first)[:, None] - s
        bad = (total <= 0) | (cell < 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return [np.where(bad, np.nan, in_cell / total), np.where(bad, np.nan, in_band / total)]

    def _nearest_km(self, first, end, cand) -> np.ndarray:
        """[B, C] km from each candidate to the nearest of the user's latest VISITED_RECENT
        positives before t other than itself (NaN: none with a known place)."""
        h = VISITED_RECENT
        idx = end[:, None] - 1 - np.arange(h)[None, :]
        valid = idx >= first[:, None]
        hist = self.h_erow[np.maximum(idx, 0)] if len(self.h_erow) else np.zeros_like(idx)
        hxyz = np.where(valid[..., None], self.event_xyz[hist], np.nan)
        cxyz = self.event_xyz[cand]
        dot = np.einsum("bcd,bhd->bch", cxyz, hxyz)
        squared = 2.0 - 2.0 * dot
        squared[(hist[:, None, :] == cand[:, :, None]) | np.isnan(squared)] = np.inf
        best = np.maximum(squared.min(axis=2), 0.0)
        km = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(np.sqrt(best) * 0.5, 1.0))
        return np.where(np.isinf(best), np.nan, km)

    def _center(self, seed: int) -> np.ndarray:
        """Mean raw features of random (history pair's user and time, event alive then)."""
        if len(self.h_urow) == 0:
            return np.zeros(self.n_features)
        rng = np.random.default_rng(seed + 3)
        pick = rng.integers(0, len(self.h_urow), min(CENTER_PAIRS, len(self.h_urow) * 20))
        urow, t = self.h_urow[pick], self.h_t[pick]
        order = np.argsort(self.event_start, kind="stable")
        lo = np.searchsorted(self.event_start[order], t, side="right")
        lo = np.where(lo >= len(order), 0, lo)
        cand = order[np.minimum(lo + (rng.random(len(t)) * (len(order) - lo)).astype(np.int64),
                                len(order) - 1)]
        raw = self.raw(urow, t, cand[:, None])[:, 0]
        with np.errstate(all="ignore"):
            center = np.nanmean(raw, axis=0)
        return np.nan_to_num(np.asarray(center, dtype=np.float64), nan=0.0)


def idea_scores(ideas: EventIdeas, weights: np.ndarray, urow: np.ndarray, t: np.ndarray,
                cand: np.ndarray, block: int = 64) -> np.ndarray:
    """[users, C] weighted ideas term of users `urow` at times `t` against the same candidate
    rows `cand` [C] (in blocks of users to bound the [block, C, history] temporaries)."""
    out = np.empty((len(urow), len(cand)), dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    for start in range(0, len(urow), block):
        rows = slice(start, start + block)
        n = len(urow[rows])
        out[rows] = ideas.features(urow[rows], t[rows], np.broadcast_to(cand, (n, len(cand)))) @ w
    return out


def _clip_t(t: Any) -> np.ndarray:
    return np.clip(np.asarray(t, dtype=np.int64), 0, (1 << T_BITS) - 1)


def _event_cells(events: pd.DataFrame) -> np.ndarray:
    """Per event row: local weekday * 4 + time-of-day band of its start (-1: unknown), the
    same local time the `day:` and `time:` tokens use."""
    cell = np.full(len(events), -1, dtype=np.int64)
    pieces = _local_time_pieces(events)
    if pieces:
        (rows, band, _), (_, day, _) = pieces
        cell[rows] = day * N_BANDS + band
    return cell
