"""Fitting the co-attendance component: lambda and the blend weight chosen on the
early-stopping validation split, then B computed again over all training data."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.model.coattendance import (
    BLEND_WEIGHTS,
    COATTENDANCE_LAMBDAS,
    MIN_RELATIVE_GAIN,
    RECENCY_CHOICES,
    CoAttendance,
    ease,
    gram,
    history_sums,
    recency_weights,
    standardized,
    top_events,
    user_histories,
)
from beacon.model.data import _Prepared
from beacon.model.trainer import _Trainer
from beacon.model.validator import STRONG_SHARE, _Validator
from beacon.ranking_metrics import ndcg_of_top, top_columns

#: users scored for the (lambda, weight) choice: a coarse grid needs a steady estimate, not
#: every validation user (each grid cell ranks users x every upcoming event)
CHOICE_MAX_USERS = 600
CHOICE_SAMPLE_SEED = 20261205


def strong_rows(prep: _Prepared, rows: pd.DataFrame) -> pd.DataFrame:
    """The strong positives (registrations, attendance) of `rows`, each row once."""
    return rows[rows["weight"] >= STRONG_SHARE * prep.max_weight]


def strong_pairs(prep: _Prepared, rows: pd.DataFrame) -> pd.DataFrame:
    """Distinct (urow, erow) of the strong positives: the history serving knows a user by."""
    return distinct_pairs(strong_rows(prep, rows))


def distinct_pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """The distinct (urow, erow) of `rows`."""
    return rows[["urow", "erow"]].drop_duplicates().reset_index(drop=True)


@dataclass
class BlendInputs:
    """What the (lambda, weight) choice needs that the hybrid does not change: the users
    scored, B's events, each validation candidate's column in B, the users' histories as B's
    rows (newest first) with their weights for each recency, and B for each lambda. Built
    beside early stopping (`blend_inputs`)."""

    scored: np.ndarray  # [validation users] bool
    events: np.ndarray
    cols: np.ndarray
    known: np.ndarray  # [candidates] bool: B has the candidate
    positions: list[np.ndarray]
    weights: dict[float, list[np.ndarray]]
    has_history: np.ndarray
    matrices: dict[float, np.ndarray]


def blend_inputs(prep: _Prepared, train_rows: pd.DataFrame, validator: _Validator,
                 config: ModelConfig) -> BlendInputs | None:
    """The inputs of `choose_blend`, or None when there is no component to choose.

    As serving does, B only knows the past: with the per-user split, B comes from the
    training rows before `since` (the median of the users' split times) and only the users
    whose split is at or after it are scored. (B from every training row would let early users'
    validation events borrow the co-attendance of everybody who came later: on the demo data
    that chose a blend that lost 9% on a time split.)"""
    strong = strong_rows(prep, train_rows)
    scored = np.ones(len(validator.users), dtype=bool)
    past = strong
    if validator.user_split is not None:
        since = int(np.median(validator.user_split))
        scored = validator.user_split >= since
        past = strong[strong["t"].to_numpy() < since]
    past = distinct_pairs(past)
    if scored.sum() > CHOICE_MAX_USERS:
        keep = np.random.default_rng(CHOICE_SAMPLE_SEED).choice(
            np.flatnonzero(scored), CHOICE_MAX_USERS, replace=False)
        scored = np.zeros_like(scored)
        scored[keep] = True
    events = top_events(past["erow"].to_numpy(), config.coattendance_events) \
        if len(past) else np.zeros(0, dtype=np.int64)
    if len(events) < 2 or config.coattendance_events <= 0:
        return None
    g = gram(past["urow"].to_numpy(), past["erow"].to_numpy(), events)
    cols = np.searchsorted(events, validator.candidates)
    known = (cols < len(events)) & (events[np.minimum(cols, len(events) - 1)]
                                    == validator.candidates)
    histories = user_histories(strong, validator.users)
    in_b = [np.isin(h, events) for h in histories]
    positions = [np.searchsorted(events, h[keep]) for h, keep in zip(histories, in_b)]
    weights = {r: [recency_weights(len(h), r)[keep] for h, keep in zip(histories, in_b)]
               for r in (RECENCY_CHOICES if config.coattendance_recency else (0.0,))}
    return BlendInputs(scored=scored, events=events, cols=cols, known=known,
                       positions=positions, weights=weights,
                       has_history=np.array([len(p) > 0 for p in positions], dtype=bool),
                       matrices={lam: ease(g, lam) for lam in COATTENDANCE_LAMBDAS})


def choose_blend(inputs: BlendInputs | None, validator: _Validator, trainer: _Trainer,
                 config: ModelConfig) -> dict[str, Any]:
    """The validation NDCG@k of each (lambda, recency, weight) and the choice: the best blend,
    kept only when it beats the hybrid alone (weight 0) by MIN_RELATIVE_GAIN of its NDCG."""
    if inputs is None:
        return {"weight": 0.0, "lambda": None, "grid": []}
    scored, cols, known = inputs.scored, inputs.cols, inputs.known
    positions, has_history, matrices = inputs.positions, inputs.has_history, inputs.matrices
    totals: dict[tuple[float, float, float], float] = {}
    for rows, scores in validator.score_blocks(trainer):
        keep = scored[rows]
        if not keep.any():
            continue
        rows = np.arange(len(validator.users))[rows][keep]
        hybrid = scores.numpy()[keep].astype(np.float64)
        finite = np.isfinite(hybrid)
        hybrid[~finite] = 0.0
        z_hybrid = standardized(hybrid, finite)
        short = shortlist(z_hybrid, finite, known, validator.k)
        z_short, finite_short = z_hybrid[:, short], finite[:, short]
        # every column B knows is in the shortlist, so standardizing the co-attendance part
        # over the shortlist is standardizing it over every candidate, at a fraction of the cost
        known_short = known[short]
        valid = finite_short & known_short[None, :] & has_history[rows][:, None]
        for (lam, b), recency in itertools.product(matrices.items(), inputs.weights):
            sums = history_sums(b, [positions[i] for i in rows],
                                [inputs.weights[recency][i] for i in rows])
            co = np.zeros((len(rows), len(short)), dtype=np.float32)
            co[:, known_short] = sums[:, cols[short][known_short]]
            z_co = standardized(co, valid)
            for weight in BLEND_WEIGHTS:
                if weight == 0 and (lam, recency) != (COATTENDANCE_LAMBDAS[0], 0.0):
                    continue
                mixed = (1.0 - weight) * z_short + weight * z_co  # as `blend` mixes
                mixed[~finite_short] = -np.inf
                key = (lam, recency, weight)
                totals[key] = totals.get(key, 0.0) + \
                    _ndcg(mixed, validator.relevant[rows], validator.k, short) * len(hybrid)
    if not totals:
        return {"weight": 0.0, "lambda": None, "grid": []}
    n = max(int(scored.sum()), 1)
    grid = [{"lambda": lam, "recency": r, "weight": w, "ndcg": round(total / n, 5)}
            for (lam, r, w), total in totals.items()]
    alone = totals[(COATTENDANCE_LAMBDAS[0], 0.0, 0.0)] / n
    # ties: the lower weight, then no decay, then the slower one
    lam, recency, weight = max(totals, key=lambda key: (
        totals[key], -key[2], -RECENCY_CHOICES.index(key[1])))
    best = totals[(lam, recency, weight)] / n
    if weight == 0 or best <= alone * (1 + MIN_RELATIVE_GAIN):
        return {"weight": 0.0, "lambda": None, "recency": 0.0, "grid": grid,
                "hybrid_ndcg": round(alone, 5)}
    return {"weight": weight, "lambda": lam, "recency": recency, "grid": grid,
            "hybrid_ndcg": round(alone, 5), "blend_ndcg": round(best, 5)}


def fit_component(prep: _Prepared, rows: pd.DataFrame, event_ids: np.ndarray,
                  weight: float, lam: float, config: ModelConfig,
                  recency: float = 0.0) -> CoAttendance | None:
    """B over all training rows with the chosen lambda; `event_ids`: model id per frame row."""
    pairs = strong_pairs(prep, rows)
    events = top_events(pairs["erow"].to_numpy(), config.coattendance_events)
    if len(events) < 2:
        return None
    b = ease(gram(pairs["urow"].to_numpy(), pairs["erow"].to_numpy(), events), lam)
    return CoAttendance(event_ids[events], b, float(weight), float(lam), float(recency))


def shortlist(z_hybrid: np.ndarray, finite: np.ndarray, known: np.ndarray, k: int) -> np.ndarray:
    """The (sorted) candidate columns that can reach some row's top k in any blend: every
    column B knows, and each row's best k of the others by the hybrid alone (B adds 0 to those,
    so every blend orders them as the hybrid does). Ranking the blend grid over these instead of
    every upcoming event gives the same top k (up to ties) at a fraction of the cost."""
    unknown = np.where(finite & ~known[None, :], z_hybrid, -np.inf)
    if unknown.shape[1] > k:
        best = np.argpartition(-unknown, k - 1, axis=1)[:, :k]
    else:
        best = np.broadcast_to(np.arange(unknown.shape[1]), unknown.shape)
    return np.union1d(np.flatnonzero(known), best.ravel())


def _ndcg(scores: np.ndarray, relevant: np.ndarray, k: int,
          columns: np.ndarray | None = None) -> float:
    """Mean NDCG@k of the rows of `scores`; `columns`: the candidate column of each score
    column when the scores cover a shortlist of `relevant`'s columns."""
    top = top_columns(scores, k)
    return ndcg_of_top(top if columns is None else columns[top], relevant)
