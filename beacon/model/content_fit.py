"""Choosing the content component's neighbours and weight on a cold validation split carved
from training.

The newest COLD_SHARE of the events with training interactions (by their first interaction)
play the cold events. A probe, the hybrid fitted for the early-stopping epochs on the
validation phase's training rows less every interaction with them, scores them from their
feature tokens alone, as it would score really new events; the content part scores them from
profiles built from the same rows; both rank only them for the users who registered for one
of them. The (neighbours, weight) with the best NDCG@k there wins, and is kept only when it
beats the probe alone by MIN_RELATIVE_GAIN of its NDCG.

Why a probe and not the validation phase's own hybrid: that one trained on the held-out
events' interactions, and masking their ids and tokens did not undo it (on MovieLens with
ratings 4-5 it scored the hybrid 0.20-0.22 there against 0.10 on really new items, and switched
the component off where the content profile alone reaches 0.19).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.model.coattendance import MIN_RELATIVE_GAIN
from beacon.model.coattendance_fit import (CHOICE_MAX_USERS, CHOICE_SAMPLE_SEED, _ndcg,
                                           strong_pairs, strong_rows)
from beacon.model.content_part import (CONTENT_WEIGHTS, NEIGHBOUR_CHOICES, POPULARITY_WEIGHTS,
                                        ContentPart, blend_parts, term_popularity,
                                        with_popularity)
from beacon.model.data import _Prepared

if TYPE_CHECKING:
    from beacon.model.hybrid import HybridModel

#: share of the trained events (the newest by first interaction) held out as cold
COLD_SHARE = 0.2
#: the probe trains on at most this many interactions (whole users, drawn at random): the
#: component's choice needs the probe's tokens and a few hundred users, not the whole data
PROBE_MAX_ROWS = 100_000
#: fewer cold validation events or users than this: nothing to choose on
MIN_COLD_EVENTS = 10
MIN_COLD_USERS = 20


def cold_events(prep: _Prepared) -> np.ndarray:
    """Event rows of the newest COLD_SHARE of the events with interactions (first one)."""
    first = prep.rows.groupby("erow")["t"].min()
    n = int(np.ceil(len(first) * COLD_SHARE))
    if n < MIN_COLD_EVENTS:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((first.index.to_numpy(), first.to_numpy()))
    return np.sort(first.index.to_numpy()[order[-n:]]).astype(np.int64)


def probe_rows(train_rows: pd.DataFrame, cold: np.ndarray, seed: int) -> pd.DataFrame:
    """What the probe trains on: `train_rows` less every interaction with the `cold` events
    (`cold_events`), at most PROBE_MAX_ROWS of them (`probe_sample`)."""
    return probe_sample(train_rows[~np.isin(train_rows["erow"].to_numpy(), cold)], seed)


def probe_sample(rows: pd.DataFrame, seed: int, cap: int | None = None) -> pd.DataFrame:
    """`rows` when they are at most `cap` (PROBE_MAX_ROWS), else the rows of users drawn at
    random while their rows fit in it."""
    cap = PROBE_MAX_ROWS if cap is None else cap
    if len(rows) <= cap:
        return rows
    per_user = rows.groupby("urow").size()
    order = np.random.default_rng(seed).permutation(len(per_user))
    fits = np.cumsum(per_user.to_numpy()[order]) <= cap
    return rows[rows["urow"].isin(per_user.index.to_numpy()[order[fits]])]


@dataclass
class ContentInputs:
    """What the content component's choice needs that the probe does not change: the cold
    events, the users scored, which cold events each registered for, the component for each
    neighbour count and its scores. Built beside early stopping (`content_inputs`)."""

    cold: np.ndarray
    users: np.ndarray
    relevant: np.ndarray  # [users, cold events] bool
    parts: dict[int, ContentPart]
    scores: dict[int, tuple[np.ndarray, np.ndarray]]  # neighbours -> (scores, has_history)
    popularity: np.ndarray  # [cold events] from the probe's rows (`event_popularity`)


def content_inputs(prep: _Prepared, rows: pd.DataFrame, cold: np.ndarray,
                   config: ModelConfig) -> ContentInputs | None:
    """The inputs of `choose_content` (None: too few cold events or users to choose on).
    `rows`: the probe's (`probe_rows`: the validation phase's training rows less every
    interaction with the `cold` events), by which the content part knows the users."""
    if not len(cold):
        return None
    pairs = strong_pairs(prep, prep.rows)
    in_cold = np.isin(pairs["erow"].to_numpy(), cold)
    relevant_pairs = pairs[in_cold]
    users = np.intersect1d(relevant_pairs["urow"].to_numpy(), rows["urow"].to_numpy())
    if len(users) < MIN_COLD_USERS:
        return None
    if len(users) > CHOICE_MAX_USERS:
        users = np.sort(np.random.default_rng(CHOICE_SAMPLE_SEED).choice(
            users, CHOICE_MAX_USERS, replace=False))
    col = pd.Series(np.arange(len(cold)), index=cold)
    row = pd.Series(np.arange(len(users)), index=users)
    hits = relevant_pairs[relevant_pairs["urow"].isin(users)]
    relevant = np.zeros((len(users), len(cold)), dtype=bool)
    relevant[row[hits["urow"]].to_numpy(), col[hits["erow"]].to_numpy()] = True
    event_ids = prep.events["id"].to_numpy(dtype=np.int64)
    others = np.setdiff1d(np.unique(prep.rows["erow"].to_numpy()), cold)
    past = strong_pairs(prep, rows)
    past = past[past["urow"].isin(users)]
    by_user = past.groupby("urow")["erow"].agg(lambda s: event_ids[s.to_numpy()])
    histories = [by_user.get(u, np.zeros(0, np.int64)) for u in users]
    first = ContentPart.build(prep.events, 0.0, others, config.seed, NEIGHBOUR_CHOICES[0])
    parts = {n: first if n == first.neighbours else first.with_trained(others, 0.0, config.seed, n)
             for n in NEIGHBOUR_CHOICES}  # one vocabulary and one set of rows for all of them
    cold_rows = first.rows(prep.events.iloc[cold])
    scores = {n: part.scores(histories, cold_rows if n == first.neighbours
                             else part.rows(prep.events.iloc[cold]))
              for n, part in parts.items()}
    return ContentInputs(cold=cold, users=users, relevant=relevant, parts=parts, scores=scores,
                         popularity=cold_rows.popularity(event_popularity(first, prep, rows)))


def event_popularity(part: ContentPart, prep: _Prepared, rows: pd.DataFrame) -> np.ndarray:
    """The terms' popularity (`term_popularity`) from the strong rows of `rows` at the newest
    of them (zeros without any)."""
    strong = strong_rows(prep, rows)
    if strong.empty:
        return np.zeros(part.width, dtype=np.float32)
    times = strong["t"].to_numpy()
    return term_popularity(part.matrix, strong["erow"].to_numpy(), times, int(times.max()) + 1)


def choose_content(model: HybridModel | None, inputs: ContentInputs | None, prep: _Prepared,
                   config: ModelConfig) -> tuple[dict[str, Any], ContentPart | None]:
    """The validation NDCG@k per (neighbours, weight) and the choice (weight 0: not stored),
    with the component built for it (its vocabulary and rows serve the final one). `model`:
    the probe, the hybrid fitted on the probe's rows, so it scores the cold events from their
    tokens as it would score really new events."""
    if inputs is None or model is None:
        return {"weight": 0.0, "grid": []}, None
    cold, relevant = inputs.cold, inputs.relevant
    hybrid = _cold_hybrid_scores(model, prep, cold, inputs.users)
    all_cold = np.ones(len(cold), dtype=bool)
    grid: list[dict[str, Any]] = []
    for neighbours, (content, has_history) in inputs.scores.items():
        for popularity_weight in POPULARITY_WEIGHTS if config.content_popularity else (0.0,):
            lifted = with_popularity(content, inputs.popularity, popularity_weight) \
                if popularity_weight else content
            for weight in CONTENT_WEIGHTS:
                if weight == 0 and grid:
                    continue
                mixed = sum(blend_parts(hybrid, lifted, all_cold, has_history, weight))
                grid.append({"neighbours": neighbours, "weight": weight,
                             "popularity_weight": popularity_weight,
                             "ndcg": round(_ndcg(mixed, relevant, config.eval_k), 5)})
    alone = grid[0]["ndcg"]
    best = max(grid, key=lambda cell: (cell["ndcg"], -cell["weight"],
                                       -cell["popularity_weight"]))
    out = {"grid": grid, "hybrid_ndcg": alone, "events": int(len(cold)),
           "users": int(len(inputs.users)), "probe_events": int(model.counts["events"])}
    if best["weight"] == 0 or best["ndcg"] <= alone * (1 + MIN_RELATIVE_GAIN):
        return {"weight": 0.0, **out}, inputs.parts[NEIGHBOUR_CHOICES[0]]
    return {"weight": best["weight"], "neighbours": best["neighbours"],
            "popularity_weight": best["popularity_weight"],
            "blend_ndcg": best["ndcg"], **out}, inputs.parts[best["neighbours"]]


def _cold_hybrid_scores(model: HybridModel, prep: _Prepared, cold: np.ndarray,
                        users: np.ndarray) -> np.ndarray:
    """[users, cold events] scores of the probe, the events scored without an id embedding
    (the probe never trained on them, so their ids are unknown to it anyway)."""
    frame = prep.events.iloc[cold].reset_index(drop=True)
    unknown = frame.assign(id=-1 - frame["id"].to_numpy(dtype=np.int64))
    return np.asarray(model.score_users(prep.users.iloc[users].reset_index(drop=True),
                                        model.event_matrix(unknown)), dtype=np.float64)


def fit_part(prep: _Prepared, weight: float, config: ModelConfig,
             chosen_on: ContentPart | None = None,
             neighbours: int = NEIGHBOUR_CHOICES[0],
             popularity_weight: float = 0.0) -> ContentPart:
    """The stored component over every event of the training frame (the vocabulary and rows
    of `chosen_on`, the choice's component, where there is one), with the terms' popularity
    over every training row where `popularity_weight` is above 0."""
    trained = np.unique(prep.rows["erow"].to_numpy())
    if chosen_on is not None:
        part = chosen_on.with_trained(trained, weight, config.seed, neighbours)
    else:
        part = ContentPart.build(prep.events, weight, trained, config.seed, neighbours)
    if popularity_weight > 0:
        part.popularity = event_popularity(part, prep, prep.rows)
        part.popularity_weight = float(popularity_weight)
    return part
