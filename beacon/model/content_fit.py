"""Choosing the content component's weight on a cold validation split carved from training.

The newest COLD_SHARE of the events with training interactions (by their first interaction)
play the cold events: the hybrid scores them from their feature tokens alone (no id
embedding, and the tokens only they carry count as absent, as for a really new event), the
content part from profiles built without them, and both rank only them for the users who
registered for one of them. The weight with the best NDCG@k there wins, and is kept only when
it beats the hybrid alone by MIN_RELATIVE_GAIN of its NDCG.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.model.coattendance import MIN_RELATIVE_GAIN
from beacon.model.coattendance_fit import CHOICE_MAX_USERS, CHOICE_SAMPLE_SEED, _ndcg, strong_pairs
from beacon.model.content_part import CONTENT_WEIGHTS, ContentPart, blend_parts
from beacon.model.data import _Prepared

if TYPE_CHECKING:
    from beacon.model.hybrid import HybridModel

#: share of the trained events (the newest by first interaction) held out as cold
COLD_SHARE = 0.2
#: a token whose training interactions come more than this share from the held-out cold
#: events is dropped when the hybrid scores them (chosen on MovieLens' cold validation split)
MAX_TOKEN_SHARE = 0.25
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


def choose_content(model: HybridModel, prep: _Prepared, train_rows: pd.DataFrame,
                   cold: np.ndarray, config: ModelConfig
                   ) -> tuple[dict[str, Any], ContentPart | None]:
    """The validation NDCG@k per weight and the choice (weight 0: not stored), with the
    component built for it (its vocabulary and rows serve the final one). `model`: the
    hybrid as fitted on the validation phase's `train_rows`. Those rows still hold the `cold`
    events' (`cold_events`) interactions (leaving them out of early stopping lost on the demo
    data), so the hybrid scores the cold events without their id embeddings and with the
    tokens mostly learned from them masked, which only approximates a new event; the content
    part is built without them.
    """
    if not len(cold):
        return {"weight": 0.0, "grid": []}, None
    pairs = strong_pairs(prep, prep.rows)
    in_cold = np.isin(pairs["erow"].to_numpy(), cold)
    relevant_pairs = pairs[in_cold]
    users = np.unique(relevant_pairs["urow"].to_numpy())
    if len(users) < MIN_COLD_USERS:
        return {"weight": 0.0, "grid": []}, None
    if len(users) > CHOICE_MAX_USERS:
        users = np.sort(np.random.default_rng(CHOICE_SAMPLE_SEED).choice(
            users, CHOICE_MAX_USERS, replace=False))
    col = pd.Series(np.arange(len(cold)), index=cold)
    row = pd.Series(np.arange(len(users)), index=users)
    hits = relevant_pairs[relevant_pairs["urow"].isin(users)]
    relevant = np.zeros((len(users), len(cold)), dtype=bool)
    relevant[row[hits["urow"]].to_numpy(), col[hits["erow"]].to_numpy()] = True

    hybrid = _cold_hybrid_scores(model, prep, train_rows, cold, users)
    event_ids = prep.events["id"].to_numpy(dtype=np.int64)
    others = np.setdiff1d(np.unique(prep.rows["erow"].to_numpy()), cold)
    part = ContentPart.build(prep.events, 0.0, others, config.seed)
    past = strong_pairs(prep, train_rows)
    past = past[past["urow"].isin(users) & ~np.isin(past["erow"].to_numpy(), cold)]
    by_user = past.groupby("urow")["erow"].agg(lambda s: event_ids[s.to_numpy()])
    histories = [by_user.get(u, np.zeros(0, np.int64)) for u in users]
    content, has_history = part.scores(histories, part.rows(prep.events.iloc[cold]))
    all_cold = np.ones(len(cold), dtype=bool)
    grid = []
    for weight in CONTENT_WEIGHTS:
        mixed = sum(blend_parts(hybrid, content, all_cold, has_history, weight))
        grid.append({"weight": weight, "ndcg": round(_ndcg(mixed, relevant, config.eval_k), 5)})
    alone = grid[0]["ndcg"]
    best = max(grid, key=lambda cell: (cell["ndcg"], -cell["weight"]))
    out = {"grid": grid, "hybrid_ndcg": alone, "events": int(len(cold)),
           "users": int(len(users))}
    if best["weight"] == 0 or best["ndcg"] <= alone * (1 + MIN_RELATIVE_GAIN):
        return {"weight": 0.0, **out}, part
    return {"weight": best["weight"], "blend_ndcg": best["ndcg"], **out}, part


def _cold_hybrid_scores(model: HybridModel, prep: _Prepared, train_rows: pd.DataFrame,
                        cold: np.ndarray, users: np.ndarray) -> np.ndarray:
    """[users, cold events] hybrid scores as if the events were new: no id embedding, and a
    token counts as absent where the cold events carry more than MAX_TOKEN_SHARE of its
    training interactions (what such a token learned, it learned from them)."""
    pad = len(prep.event_vocab)
    erows = train_rows.loc[train_rows["weight"].to_numpy() > 0, "erow"].to_numpy()
    tokens = prep.event_tok[erows]
    from_cold = np.repeat(np.isin(erows, cold), tokens.shape[1])
    total = np.bincount(tokens.ravel(), minlength=pad + 1)
    by_cold = np.bincount(tokens.ravel()[from_cold], minlength=pad + 1)
    keep = (by_cold <= MAX_TOKEN_SHARE * total)[:pad]
    frame = prep.events.iloc[cold].reset_index(drop=True)
    saved = model.weights["event_tok"], model.weights["event_tok_bias"]
    try:
        model.weights["event_tok"] = saved[0] * keep[:, None]
        model.weights["event_tok_bias"] = saved[1] * keep
        model._event_tok_padded = None
        unknown = frame.assign(id=-1 - frame["id"].to_numpy(dtype=np.int64))
        matrix = model.event_matrix(unknown)
    finally:
        model.weights["event_tok"], model.weights["event_tok_bias"] = saved
        model._event_tok_padded = None
    return np.asarray(model.score_users(prep.users.iloc[users].reset_index(drop=True), matrix),
                      dtype=np.float64)


def fit_part(prep: _Prepared, weight: float, config: ModelConfig,
             chosen_on: ContentPart | None = None) -> ContentPart:
    """The stored component over every event of the training frame (the vocabulary and rows
    of `chosen_on`, the choice's component, where there is one)."""
    trained = np.unique(prep.rows["erow"].to_numpy())
    if chosen_on is not None:
        return chosen_on.with_trained(trained, weight, config.seed)
    return ContentPart.build(prep.events, weight, trained, config.seed)
