"""The trend component: what is being registered for lately, blended with the other parts.

An event's trend at time `at` is log1p of its decayed count of strong positives before `at`
(registrations, attendance), each weighing 2^(-age / half-life). Serving ranks at one moment
for everybody (now), and what people go to next follows what others went to just before: on
MovieLens with one global cutoff, the trend alone ranks the ratings after it 1.2x better than
plain popularity, and beats EASE on the users with history (benchmarks/notes.md).

Blend: the score so far (hybrid, co-attendance, content) and the trend are both standardized
over the user's candidates and mixed as (1 - w) z(score) + w z(trend), with one weight for
users with history and one for users without (ranked from their tags and home alone). The
half-life and both weights are chosen on a time split inside the fit (`trend_fit`); w = 0
where the trend does not help there, and no component is stored when neither weight is on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from beacon.idmap import IdMap
from beacon.model.coattendance import standardized

HALF_LIFE_DAYS = (1.0, 3.0, 7.0, 14.0, 30.0)
TREND_WEIGHTS = (0.0, 0.15, 0.3, 0.5, 0.7, 0.85, 1.0)
#: rows older than this many half-lives add less than 2^-8 each: left out of the sums
HORIZON_HALF_LIVES = 8
DAY = 86_400


def decayed_counts(erows: np.ndarray, times: np.ndarray, at: int, half_life_days: float,
                   n_events: int) -> np.ndarray:
    """[n_events] sum of 2^(-(at - t) / half-life) over the rows (event row, unix time) before
    `at`; an infinite half-life counts every row before `at` once (plain popularity)."""
    if np.isinf(half_life_days):
        return np.bincount(erows[times < at], minlength=n_events).astype(np.float64)
    half_life = half_life_days * DAY
    keep = (times < at) & (times >= at - HORIZON_HALF_LIVES * half_life)
    weights = np.exp2(-(at - times[keep]).astype(np.float64) / half_life)
    return np.bincount(erows[keep], weights=weights, minlength=n_events)


def trend_blend(scores: np.ndarray, trend: np.ndarray, weights: np.ndarray,
                finite: np.ndarray | None = None) -> np.ndarray:
    """(1 - w) z(scores) + w z(trend) per row (`weights`: [users]); rows standardized over
    their `finite` cells (default: the finite scores); -inf stays -inf."""
    finite = np.isfinite(scores) if finite is None else finite
    base = standardized(np.where(finite, scores, 0.0), finite)
    lifted = standardized(np.broadcast_to(trend, scores.shape), finite)
    w = np.asarray(weights, dtype=np.float64)[:, None]
    return np.where(finite, (1.0 - w) * base + w * lifted, -np.inf)


@dataclass
class TrendPart:
    """A fitted trend: each event's decayed count at `as_of` (the newest training row), the
    half-life, and the blend weights for users with and without history."""

    event_ids: np.ndarray
    counts: np.ndarray  # [events] float32 decayed counts at as_of
    as_of: int
    half_life_days: float
    weight_known: float
    weight_new: float

    def __post_init__(self) -> None:
        self.index = IdMap(np.asarray(self.event_ids, dtype=np.int64))

    @classmethod
    def build(cls, event_ids: np.ndarray, erows: np.ndarray, times: np.ndarray,
              half_life_days: float, weight_known: float, weight_new: float) -> "TrendPart":
        """Counts at the newest of `times` of the rows' events (`event_ids`: id per row)."""
        as_of = int(times.max()) + 1
        counts = decayed_counts(erows, times, as_of, half_life_days, len(event_ids))
        present = np.flatnonzero(counts > 0)
        return cls(np.asarray(event_ids, dtype=np.int64)[present],
                   counts[present].astype(np.float32), as_of, float(half_life_days),
                   float(weight_known), float(weight_new))

    def values(self, candidate_ids: Any) -> np.ndarray:
        """[candidates] log1p of the decayed counts (0 for an event with none)."""
        rows = self.index.rows(np.asarray(candidate_ids, dtype=np.int64))
        out = np.zeros(len(rows), dtype=np.float64)
        known = rows >= 0
        out[known] = np.log1p(self.counts[rows[known]].astype(np.float64))
        return out

    def weights(self, has_history: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(has_history, dtype=bool), self.weight_known, self.weight_new)

    def blended(self, scores: np.ndarray, has_history: np.ndarray,
                values: np.ndarray) -> np.ndarray:
        """[users, candidates] scores blended with the trend (unchanged where w = 0);
        `values`: the candidates' `values` (an EventMatrix keeps them: the lookup costs more
        than the blend)."""
        weights = self.weights(has_history)
        if not (weights > 0).any():
            return scores
        out = trend_blend(scores, values, weights)
        return np.where((weights > 0)[:, None], out, scores)

    def parts(self, scores: np.ndarray, has_history: np.ndarray, values: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """((1 - w) z(scores), w z(trend)) of [users, candidates] finite scores (`values`: the
        candidates' `values`); None when every user's weight is 0 (the scores rank alone)."""
        weights = self.weights(has_history)
        if not (weights > 0).any():
            return None
        finite = np.ones(scores.shape, dtype=bool)
        w = weights[:, None]
        base = standardized(scores, finite)
        lifted = standardized(np.broadcast_to(values, scores.shape), finite)
        return np.where(w > 0, (1.0 - w) * base, scores), w * lifted

    def recent(self, event_id: int) -> float:
        """The event's decayed count at as_of (0 when none)."""
        row = self.index.row(int(event_id))
        return float(self.counts[row]) if row >= 0 else 0.0
