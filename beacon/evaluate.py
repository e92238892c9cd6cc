"""Offline evaluation: the temporal holdout (Beacon against popularity, city popularity and the content strategy). The pure ranking metrics
live in beacon.ranking_metrics (the model's validator uses them too) and are re-exported here.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from beacon.ranking_metrics import (  # noqa: F401 - re-exported
    coverage,
    hit_rate_at_k,
    ndcg_at_k,
    ndcg_from_scores,
    ndcg_of_top,
    precision_at_k,
    recall_at_k,
)

# --------------------------------------------------------------------------- temporal holdout

HIT_TYPES = ("register", "attend")
EXCLUDED_TYPES = ("register", "attend", "reject")  # as serving: not shown again
HOLDOUT_SHARE = 0.18  # share of registrations that fall after the default cutoff
USER_BLOCK = 2048
#: what a block that no user can measure says instead of figures
NOT_MEASURABLE = "not measurable on this data"
#: the strategies the cold block compares (popularity_city adds nothing on events nobody touched)
COLD_STRATEGIES = ("beacon", "popularity", "content")


def default_cutoff(interactions: pd.DataFrame, share: float = HOLDOUT_SHARE) -> int:
    """Epoch seconds such that about `share` of the registrations happen at or after it."""
    hits = interactions["occurred_at"].to_numpy()[
        interactions["type"].astype(str).isin(HIT_TYPES).to_numpy()]
    if len(hits) < 2:
        from beacon.errors import BeaconError

        raise BeaconError("cannot evaluate: fewer than 2 registrations in the data")
    hits = np.sort(hits)
    return int(hits[min(len(hits) - 1, int(len(hits) * (1 - share)))])


def evaluate_holdout(data: Any, config: Any = None, k: int = 10, cutoff: datetime | None = None,
                     callback: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Train on interactions before a cutoff; rank the events upcoming at the cutoff for every
    user who registered for one of them after it; compare with popularity (positive
    interactions before the cutoff, ties broken by earliest start), with popularity in the
    user's own city first ("popularity_city", the stronger baseline) and with the content
    strategy (beacon.content, profiles from the interactions before the cutoff). Registered
    and rejected events before the cutoff are left out of each ranking, as serving does. Every
    strategy block says how many users its figures average over ("users"). `cold_share`: the
    share of Beacon's hits on events nobody had touched before the cutoff; `cold`: the
    strategies ranking only those events, or null figures and a note when no user registered
    for one of them."""
    from beacon.config import ModelConfig
    from beacon.errors import BeaconError
    from beacon.model import HybridModel
    from beacon.model.coattendance import newest_first

    config = config or ModelConfig()
    inter = data.interactions
    cut = default_cutoff(inter) if cutoff is None else int(cutoff.timestamp())
    types = inter["type"].astype(str).to_numpy()
    times = inter["occurred_at"].to_numpy()
    before = times < cut
    events = data.events.reset_index(drop=True)
    start = pd.to_datetime(events["start_time"], utc=True)
    start_s = ((start - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    cand = events[start_s > cut].reset_index(drop=True)
    cand_start = start_s[start_s > cut]
    if cand.empty:
        raise BeaconError("cannot evaluate: no events are upcoming at the cutoff")
    col_of = pd.Series(np.arange(len(cand)), index=cand["id"].to_numpy())

    # Relevant: registrations after the cutoff for events upcoming at it.
    after_hits = inter[(~before) & np.isin(types, HIT_TYPES)
                       & inter["event_id"].isin(col_of.index).to_numpy()]
    prior = inter[before & np.isin(types, EXCLUDED_TYPES)
                  & inter["event_id"].isin(col_of.index).to_numpy()]
    excluded_pairs = set(zip(prior["user_id"].tolist(), prior["event_id"].tolist()))
    hits = after_hits[["user_id", "event_id"]].drop_duplicates()
    keep = [pair not in excluded_pairs for pair in zip(hits["user_id"], hits["event_id"])]
    hits = hits[np.asarray(keep, dtype=bool)] if len(hits) else hits
    eval_users = np.unique(hits["user_id"].to_numpy())
    if len(eval_users) == 0:
        raise BeaconError("cannot evaluate: no registrations after the cutoff for upcoming events")
    row_of = pd.Series(np.arange(len(eval_users)), index=eval_users)
    rel = (row_of[hits["user_id"]].to_numpy(), col_of[hits["event_id"]].to_numpy())
    prior_users = prior[prior["user_id"].isin(row_of.index)]
    exc = (row_of[prior_users["user_id"]].to_numpy(), col_of[prior_users["event_id"]].to_numpy())

    # Cold: candidates nobody had touched before the cutoff.
    touched = set(inter.loc[before, "event_id"].tolist())
    cold = ~cand["id"].isin(touched).to_numpy()

    # Popularity: positive interactions before the cutoff, ties by earliest start.
    positive_types = [t for t, w in config.type_weights.items() if w > 0]
    pos_prior = inter[before & np.isin(types, positive_types)]
    counts = pos_prior["event_id"].value_counts()
    pop_count = cand["id"].map(counts).fillna(0).to_numpy(dtype=np.float64)
    order = np.lexsort((cand_start, -pop_count))
    pop_score = np.empty(len(cand))
    pop_score[order] = -np.arange(len(cand), dtype=np.float64)

    # Beacon: trained on the past only.
    began = datetime.now(timezone.utc)
    model = HybridModel.fit(data.before(cut), config, callback=callback)
    train_seconds = (datetime.now(timezone.utc) - began).total_seconds()
    matrix = model.event_matrix(cand)
    users = data.users.set_index("id").loc[eval_users].reset_index()
    user_vecs = model.user_matrix(users)

    # What serving blends the co-attendance, content and trend components with: the events each
    # user registered for (or attended) before the cutoff, newest first.
    histories = newest_first(inter[before & np.isin(types, HIT_TYPES)], eval_users,
                             "user_id", "event_id", "occurred_at")

    def beacon_scores(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        scores = user_vecs[block] @ matrix.vectors[cols].T + matrix.bias[cols]
        place = model.place_matrix(users.iloc[block], matrix, cols)  # what serving adds too
        scores = scores if place is None else scores + place
        blended = model.blend_users(scores, [histories[i] for i in block],
                                    matrix.event_ids[cols])
        blended = model.blend_content(blended, [histories[i] for i in block], matrix, cols)
        has_history = np.array([len(histories[i]) > 0 for i in block], dtype=bool)
        return model.blend_trend(blended, has_history, matrix.event_ids[cols])

    def popularity_scores(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.broadcast_to(pop_score[cols], (len(block), len(cols))).copy()

    # A stronger baseline: the same popularity, but events in the user's own city first.
    from beacon.features import norm

    cand_city = cand["city"].map(lambda c: norm(c) if isinstance(c, str) else "").to_numpy()
    user_city = users["city"].map(lambda c: norm(c) if isinstance(c, str) else "").to_numpy()

    def in_city(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (user_city[block][:, None] == cand_city[cols]) & (user_city[block][:, None] != "")

    def local_popularity_scores(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return pop_score[cols][None, :] + in_city(block, cols) * float(len(cand) + 1)

    def strategy(fn) -> dict[str, Any]:
        return _strategy(fn, len(eval_users), all_cols, rel, exc, cold, k, in_city)

    from beacon.content import holdout_scorer

    content_scores = holdout_scorer(events, cand, users, inter[before], pop_count)

    all_cols = np.arange(len(cand))
    result: dict[str, Any] = {
        "k": k,
        "cutoff": datetime.fromtimestamp(cut, timezone.utc).isoformat(),
        "users_evaluated": int(len(eval_users)),
        "candidates": int(len(cand)),
        "cold_candidates": int(cold.sum()),
        "relevant": int(len(hits)),
        "cold_relevant_share": float(cold[rel[1]].mean()) if len(hits) else 0.0,
        "beacon": strategy(beacon_scores),
        "popularity": strategy(popularity_scores),
        "popularity_city": strategy(local_popularity_scores),
        "content": strategy(content_scores),
        # Share of the relevant (registered-after-cutoff) events in the user's own city: what
        # each strategy's in_city_share (of its top-k picks) compares with.
        "relevant_in_city_share": float(
            (user_city[rel[0]] == cand_city[rel[1]]).mean()) if len(hits) else 0.0,
    }
    result["cold_share"] = result["beacon"]["cold_hit_share"]
    pop_ndcg = result["popularity"]["ndcg"]
    result["ndcg_ratio"] = result["beacon"]["ndcg"] / pop_ndcg if pop_ndcg > 0 else None
    local_ndcg = result["popularity_city"]["ndcg"]
    result["ndcg_ratio_city"] = result["beacon"]["ndcg"] / local_ndcg if local_ndcg > 0 else None
    scorers = {"beacon": beacon_scores, "popularity": popularity_scores,
               "content": content_scores}
    result["cold"] = _cold_only(scorers, len(eval_users), rel, exc, cold, k)
    seen_before = np.isin(eval_users, inter.loc[before, "user_id"].to_numpy())
    result["by_history"] = {
        "with_history": _users_only(scorers, seen_before, rel, exc, cold, k),
        "without_history": _users_only(scorers, ~seen_before, rel, exc, cold, k)}
    result["train"] = {"interactions": int(before.sum()), "seconds": round(train_seconds, 3),
                       "epochs": len(model.loss_history), **{
                           key: model.validation.get(key) for key in ("best_epoch", "best_ndcg")}}
    return result


def _not_measurable(candidates: int, why: str) -> dict[str, Any]:
    return {"users_evaluated": 0, "candidates": candidates, "measurable": False,
            "note": f"{NOT_MEASURABLE}: {why}", **{name: None for name in COLD_STRATEGIES}}


def _cold_only(scorers: dict[str, Callable], n_users: int, rel, exc, cold: np.ndarray,
               k: int) -> dict[str, Any]:
    """The strategies ranking only the cold candidates, for users with a cold hit; null
    figures and a note when there is none to measure."""
    cols = np.flatnonzero(cold)
    if len(cols) == 0:
        return _not_measurable(0, "every upcoming event had interactions before the cutoff")
    users = np.unique(rel[0][cold[rel[1]]])
    if len(users) == 0:
        return _not_measurable(int(len(cols)), "no user registered after the cutoff for an "
                                               "event nobody had touched before it")
    return {"users_evaluated": int(len(users)), "candidates": int(len(cols)),
            "measurable": True, "note": None,
            **_restricted(scorers, n_users, users, cols, rel, exc, cold, k)}


def _users_only(scorers: dict[str, Callable], mask: np.ndarray, rel, exc, cold: np.ndarray,
                k: int) -> dict[str, Any]:
    """The strategies over the evaluated users in `mask` alone (every candidate), or null
    figures and a note when there is none: `by_history` splits the users by whether they had
    any interaction before the cutoff, since a user without one is ranked from their profile
    alone and popularity is hard to beat there."""
    users = np.flatnonzero(mask)
    if len(users) == 0:
        return {"users_evaluated": 0, "note": f"{NOT_MEASURABLE}: no such user",
                **{name: None for name in scorers}}
    return {"users_evaluated": int(len(users)), "note": None,
            **_restricted(scorers, len(mask), users, np.arange(len(cold)), rel, exc, cold, k)}


def _restricted(scorers: dict[str, Callable], n_users: int, users: np.ndarray,
                cols: np.ndarray, rel, exc, cold: np.ndarray, k: int) -> dict[str, Any]:
    """Each strategy's figures over the evaluated users `users` ranking the candidates
    `cols` alone (the relevant and excluded pairs outside them dropped, the rest renumbered)."""
    urow = np.full(n_users, -1)
    urow[users] = np.arange(len(users))
    ccol = np.full(len(cold), -1)
    ccol[cols] = np.arange(len(cols))

    def inside(pairs) -> tuple[np.ndarray, np.ndarray]:
        if not len(pairs[0]):
            return pairs
        keep = (urow[pairs[0]] >= 0) & (ccol[pairs[1]] >= 0)
        return urow[pairs[0][keep]], ccol[pairs[1][keep]]

    rel_in, exc_in = inside(rel), inside(exc)
    return {name: _strategy(lambda block, c, fn=fn: fn(users[block], cols[c]), len(users),
                            np.arange(len(cols)), rel_in, exc_in, cold[cols], k)
            for name, fn in scorers.items()}


def _strategy(scores_fn, n_users: int, cols: np.ndarray, rel, exc, cold: np.ndarray,
              k: int, in_city_fn=None) -> dict[str, Any]:
    """HR, precision, recall, NDCG@k over users, coverage, and where the hits landed (and,
    with `in_city_fn(users, cols) -> bool matrix`, the share of top-k picks in the user's city)."""
    k_eff = min(k, len(cols))
    discounts = 1.0 / np.log2(np.arange(k_eff) + 2.0)
    sums = {"hit_rate": 0.0, "precision": 0.0, "recall": 0.0, "ndcg": 0.0}
    shown = np.zeros(len(cols), dtype=bool)
    hits_total = cold_hits = 0
    picks = picks_in_city = 0
    for lo in range(0, n_users, USER_BLOCK):
        block = np.arange(lo, min(n_users, lo + USER_BLOCK))
        scores = np.array(scores_fn(block, cols), dtype=np.float64)
        relevant = np.zeros(scores.shape, dtype=bool)
        in_block = (rel[0] >= lo) & (rel[0] < lo + len(block))
        relevant[rel[0][in_block] - lo, rel[1][in_block]] = True
        ex_block = (exc[0] >= lo) & (exc[0] < lo + len(block))
        scores[exc[0][ex_block] - lo, exc[1][ex_block]] = -np.inf
        top = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1,
                                                 kind="stable"), 1)
        shown[np.unique(top)] = True
        got = np.take_along_axis(relevant, top, axis=1)
        n_rel = relevant.sum(axis=1)
        n_hit = got.sum(axis=1)
        sums["hit_rate"] += float((n_hit > 0).sum())
        sums["precision"] += float((n_hit / k).sum())
        sums["recall"] += float((n_hit / np.maximum(n_rel, 1)).sum())
        ideal = np.cumsum(discounts)[np.minimum(n_rel, k_eff) - 1]
        sums["ndcg"] += float(((got @ discounts) / ideal).sum())
        hits_total += int(n_hit.sum())
        cold_hits += int((got & cold[top]).sum())
        if in_city_fn is not None:
            finite = np.isfinite(np.take_along_axis(scores, top, 1))
            same = np.take_along_axis(in_city_fn(block, cols), top, 1)
            picks += int(finite.sum())
            picks_in_city += int((same & finite).sum())
    out = {name: value / n_users for name, value in sums.items()}
    out["users"] = int(n_users)
    out["coverage"] = float(shown.mean())
    out["hits"] = hits_total
    out["cold_hits"] = cold_hits
    out["cold_hit_share"] = cold_hits / hits_total if hits_total else 0.0
    if in_city_fn is not None:
        out["in_city_share"] = picks_in_city / picks if picks else 0.0
    return out
