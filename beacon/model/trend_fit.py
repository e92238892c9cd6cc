"""Choosing the trend component's half-life and weights on a time split carved from training.

Serving ranks everybody at one moment, so the choice does too: the last `validation_fraction`
of the positives (after one time T) are the hits, the events upcoming at T the candidates,
and the trend is counted from the rows before T. A probe, the hybrid fitted for the
early-stopping epochs on the rows before T only, scores the users as the served model would
score them at T: the users with rows before T from what they did, the others from their tags
and home alone. (The early-stopping split is per user: its hybrid trained on rows after T of
other users, and would know what became popular after T.)

Per group (users with history, users without) and half-life, the weight with the best mean
NDCG over the two halves of the time after T is kept only where it beats the reference, the
probe alone or blended with plain popularity (every registration before T counted once), by
TREND_MIN_GAIN, and loses in neither half: what is kept is what recency adds, and it must
last while the model serves. The half-life whose groups' choices give the most NDCG wins.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.model.coattendance_fit import CHOICE_MAX_USERS, strong_rows
from beacon.model.content_fit import probe_sample
from beacon.model.data import _Prepared, _split_time
from beacon.model.trainer import _Trainer
from beacon.model.trend import HALF_LIFE_DAYS, TREND_WEIGHTS, decayed_counts
from beacon.model.validator import _Validator
from beacon.ranking_metrics import ndcg_of_top, top_columns

#: the trend must beat the reference (the probe alone or blended with plain popularity) by
#: this share of its NDCG: on the demo data, gains of 3-6% at the fit's split became losses of
#: 3% at the two later cutoffs of benchmarks/quality.py (MovieLens: 12-13% at the split, and
#: it held)
TREND_MIN_GAIN = 0.05
#: the trend probe trains on at most this many interactions: it is the third trainer beside
#: early stopping (after the refit and the content probe), and at 100k interactions on the
#: scale data its 90k rows made the fit 17% slower; the choice scores at most 600 users
TREND_PROBE_MAX_ROWS = 50_000
#: fewer users than this in a group: its weight stays 0 (too few to choose on)
MIN_GROUP_USERS = 20
#: above this many candidates, each user's blends are ranked over a shortlist: their best
#: SHORTLIST by the probe and the SHORTLIST most trending events
FULL_RANK_MAX_CANDIDATES = 2000
SHORTLIST = 200
HALVES = ("early", "late")
#: the reference the trend must beat: every registration before T counted once, blended alike
POPULARITY = float("inf")


def trend_split(prep: _Prepared, config: ModelConfig) -> int | None:
    """T: the time after which the last `validation_fraction` of the positives happened."""
    return _split_time(prep.rows, config.validation_fraction)


def trend_probe_rows(prep: _Prepared, split: int, seed: int) -> pd.DataFrame:
    """What the trend probe trains on: the rows before T, at most TREND_PROBE_MAX_ROWS of
    them (whole users drawn at random)."""
    return probe_sample(prep.rows[prep.rows["t"].to_numpy() < split], seed,
                        TREND_PROBE_MAX_ROWS)


@dataclass
class TrendInputs:
    """What the choice needs that the probe does not change: the validator at T (users, hits,
    candidates, what each user already went to), which users have history in the probe, the
    hits split into the earlier and the later half of the time after T, and the candidates'
    trend at T for each half-life."""

    validator: _Validator
    split: int
    has_history: np.ndarray  # [validator users] bool
    halves: dict[str, np.ndarray]  # "early" / "late" -> [users, candidates] bool hits
    trends: dict[float, np.ndarray]  # half-life -> [candidates] log1p decayed counts


def trend_inputs(prep: _Prepared, split: int | None, rows: pd.DataFrame | None,
                 config: ModelConfig) -> TrendInputs | None:
    """The inputs of `choose_trend` (None: no split, or too few users to choose on). `rows`:
    the probe's (`trend_probe_rows`). Users with rows before T that the probe's sample left
    out are not scored: the probe would take them for newcomers."""
    if split is None or rows is None or rows.empty:
        return None
    times = prep.rows["t"].to_numpy()
    before, after = prep.rows[times < split], prep.rows[times >= split]
    probe_users = np.unique(rows["urow"].to_numpy())
    newcomers = np.setdiff1d(np.arange(len(prep.users)), before["urow"].to_numpy())
    eligible = np.union1d(probe_users, newcomers)
    validator = _Validator(prep, before, after, split, config.eval_k, eligible=eligible,
                           max_users=CHOICE_MAX_USERS)
    if not validator.usable or len(validator.users) < MIN_GROUP_USERS:
        return None
    strong = strong_rows(prep, before)
    erows, t = strong["erow"].to_numpy(), strong["t"].to_numpy()
    trends = {h: np.log1p(decayed_counts(erows, t, split, h, len(prep.events))
                          [validator.candidates]) for h in (*HALF_LIFE_DAYS, POPULARITY)}
    return TrendInputs(validator, int(split), np.isin(validator.users, probe_users),
                       _halves(validator, strong_rows(prep, after)), trends)


def _halves(validator: _Validator, hits: pd.DataFrame) -> dict[str, np.ndarray]:
    """The validator's hits split at the median time of their first occurrence after T."""
    row = pd.Series(np.arange(len(validator.users)), index=validator.users)
    col = pd.Series(np.arange(len(validator.candidates)), index=validator.candidates)
    hits = hits[hits["urow"].isin(validator.users) & hits["erow"].isin(validator.candidates)]
    first = hits.groupby(["urow", "erow"])["t"].min().reset_index()
    late = np.zeros(validator.relevant.shape, dtype=bool)
    if len(first):
        is_late = first["t"].to_numpy() >= np.median(first["t"].to_numpy())
        picked = first[is_late]
        late[row[picked["urow"]].to_numpy(), col[picked["erow"]].to_numpy()] = True
    late &= validator.relevant
    return {"early": validator.relevant & ~late, "late": late}


def choose_trend(trainer: _Trainer | None, inputs: TrendInputs | None,
                 config: ModelConfig) -> dict[str, Any]:
    """The NDCG@k per (group, half, half-life, weight), and the choice (both weights 0: no
    component). `trainer`: the probe after the early-stopping epochs."""
    off = {"weight_known": 0.0, "weight_new": 0.0, "half_life_days": None, "grid": []}
    if trainer is None or inputs is None:
        return off
    validator, k = inputs.validator, config.eval_k
    groups = {"known": inputs.has_history, "new": ~inputs.has_history}
    sums: dict[tuple[str, str, float, float], float] = {}
    counts: dict[tuple[str, str], int] = {}
    for rows, scores in validator.score_blocks(trainer):
        scores = scores.numpy()
        finite = np.isfinite(scores)
        # standardized over every shown candidate, as serving does, but only the shortlist's
        # cells computed: [users, candidates] float64 copies cost a gigabyte at 50k events
        n = np.maximum(finite.sum(axis=1), 1).astype(np.float64)
        mean, sd = _row_moments(np.where(finite, scores, 0.0), finite, n)
        best = _best_columns(np.where(finite, scores, -np.inf))
        shown_cells = finite.astype(np.float32)
        for name, members in groups.items():
            for half, relevant in inputs.halves.items():
                count = int((members[rows] & relevant[rows].any(axis=1)).sum())
                counts[(name, half)] = counts.get((name, half), 0) + count
        for half_life, trend in inputs.trends.items():
            cols, shown = _shortlist(best, trend, finite.shape)
            shown &= np.take_along_axis(finite, cols, 1)
            z_s = np.where(shown, _z(np.where(shown, np.take_along_axis(scores, cols, 1), 0.0),
                                     mean, sd), 0.0)
            t_mean = (shown_cells @ trend.astype(np.float32)).astype(np.float64) / n
            t_square = (shown_cells @ np.square(trend).astype(np.float32)).astype(np.float64) / n
            z_t = _z(trend[cols], t_mean, np.sqrt(np.maximum(t_square - t_mean ** 2, 0.0)))
            hits = {half: np.take_along_axis(relevant[rows], cols, 1)
                    for half, relevant in inputs.halves.items()}
            for weight in TREND_WEIGHTS:
                mixed = np.where(shown, (1.0 - weight) * z_s + weight * z_t, -np.inf)
                top = top_columns(mixed, k)
                for name, members in groups.items():
                    for half, half_hits in hits.items():
                        mask = members[rows] & half_hits.any(axis=1)
                        if mask.any():
                            key = (name, half, half_life, weight)
                            sums[key] = sums.get(key, 0.0) + \
                                ndcg_of_top(top[mask], half_hits[mask]) * int(mask.sum())
    means = {key: total / max(counts[key[:2]], 1) for key, total in sums.items()}
    grid = [{"group": name, "half": half, "half_life_days": h, "weight": w,
             "ndcg": round(value, 5)} for (name, half, h, w), value in sorted(means.items())]
    users = {name: int(members.sum()) for name, members in groups.items()}
    best = _best(means, users)
    if best is None:
        return {**off, "grid": grid, "users": users}
    half_life, weights, gains = best
    return {"weight_known": weights["known"], "weight_new": weights["new"],
            "half_life_days": half_life if any(weights.values()) else None,
            "grid": grid, "users": users, "ndcg": gains, "split_time": int(inputs.split)}


def _best(means: dict[tuple[str, str, float, float], float], users: dict[str, int]
          ) -> tuple[float, dict[str, float], dict[str, Any]] | None:
    """(half-life, weight per group, NDCG per group alone and blended). A group's weight is
    its best by the mean of the two halves' NDCG, kept only where that beats the reference
    (the probe alone, or blended with plain popularity: what recency adds is what counts) by
    TREND_MIN_GAIN and neither half loses: a model serves until the next training, so a
    trend that helps right after T but not later is not kept. The half-life whose groups'
    choices give the most NDCG over all users wins."""
    if not means:
        return None

    def score(name: str, half_life: float, weight: float) -> tuple[float, list[float]]:
        halves = [means.get((name, half, half_life, weight), 0.0) for half in HALVES]
        return float(np.mean(halves)), halves

    def reference(name: str) -> tuple[float, list[float]]:
        """The probe alone, or blended with plain popularity if that is better."""
        return max((score(name, POPULARITY, w) for w in TREND_WEIGHTS), key=lambda s: s[0])

    choice = None
    for half_life in HALF_LIFE_DAYS:
        weights, gains, total = {}, {}, 0.0
        for name, n in users.items():
            alone, alone_halves = reference(name)
            weight = max(TREND_WEIGHTS, key=lambda w: (score(name, half_life, w)[0], -w))
            blended, blended_halves = score(name, half_life, weight)
            keep = n >= MIN_GROUP_USERS and weight > 0 and \
                blended > alone * (1 + TREND_MIN_GAIN) and \
                all(b >= a for b, a in zip(blended_halves, alone_halves))
            weights[name] = float(weight) if keep else 0.0
            gains[name] = {"alone": round(alone, 5), "blend": round(blended if keep else alone, 5),
                           "halves_alone": [round(v, 5) for v in alone_halves],
                           "halves_blend": [round(v, 5) for v in
                                            (blended_halves if keep else alone_halves)]}
            total += (blended if keep else alone) * n
        if choice is None or total > choice[0]:
            choice = (total, half_life, weights, gains)
    _, half_life, weights, gains = choice
    return half_life, weights, gains


def _row_moments(values: np.ndarray, valid: np.ndarray, n: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the mean and standard deviation of the `valid` cells (n of them)."""
    mean = values.sum(axis=1, dtype=np.float64) / n
    squares = np.where(valid, np.square(values - mean[:, None].astype(values.dtype)), 0.0)
    return mean, np.sqrt(squares.sum(axis=1, dtype=np.float64) / n)


def _z(cells: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Cells standardized with their row's moments (0 where a row is constant)."""
    safe = np.where(sd > 0, sd, 1.0)
    out = (cells - mean[:, None]) / safe[:, None]
    return np.where((sd > 0)[:, None], out, 0.0)


def _best_columns(scores: np.ndarray) -> np.ndarray | None:
    """Each row's SHORTLIST best columns, or None where every column is ranked
    (FULL_RANK_MAX_CANDIDATES or fewer)."""
    if scores.shape[1] <= FULL_RANK_MAX_CANDIDATES:
        return None
    return np.argpartition(-scores, SHORTLIST - 1, axis=1)[:, :SHORTLIST]


def _shortlist(best: np.ndarray | None, trend: np.ndarray, shape: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """([users, columns] candidate columns each user's blends are ranked over, [users, columns]
    False where a column repeats): every column, or the user's `best` columns and the
    SHORTLIST most trending."""
    n_users, n = shape
    if best is None:
        return np.broadcast_to(np.arange(n), shape), np.ones(shape, dtype=bool)
    trending = np.broadcast_to(np.argpartition(-trend, SHORTLIST - 1)[:SHORTLIST],
                               (n_users, SHORTLIST))
    in_best = np.zeros(shape, dtype=bool)
    np.put_along_axis(in_best, best, True, axis=1)
    repeated = np.take_along_axis(in_best, trending, 1)
    cols = np.concatenate([best, trending], axis=1)
    return cols, np.concatenate([np.ones_like(repeated), ~repeated], axis=1)
