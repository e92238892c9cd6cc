"""Offline evaluation: the temporal holdout (Beacon against popularity, city popularity and the content strategy). The pure ranking metrics
live in beacon.ranking_metrics (the model's validator uses them too) and are re-exported here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from beacon.model import HybridModel

# --------------------------------------------------------------------------- temporal holdout

HIT_TYPES = ("register", "attend")
EXCLUDED_TYPES = ("register", "attend", "reject")  # as serving: not shown again
HOLDOUT_SHARE = 0.18  # share of registrations that fall after the default cutoff
USER_BLOCK = 2048
#: what a block that no user can measure says instead of figures
NOT_MEASURABLE = "not measurable on this data"
#: the strategies the cold block compares (popularity_city adds nothing on events nobody touched)
COLD_STRATEGIES = ("beacon", "popularity", "content")

#: scores(evaluated user rows, candidate columns) -> a users x candidates matrix
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: (evaluated user rows, candidate columns) of the pairs a holdout judges
Pairs = tuple[np.ndarray, np.ndarray]


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
    from beacon.content import holdout_scorer

    config = config or ModelConfig()
    cut = default_cutoff(data.interactions) if cutoff is None else int(cutoff.timestamp())
    holdout = _holdout(data, cut)
    pop_count, pop_score = _popularity(holdout, config)
    model, train_seconds = _fit_before(data, cut, config, callback)
    users = data.users.set_index("id").loc[holdout.user_ids].reset_index()
    cities = _Cities.of(users, holdout.candidates)
    scorers: dict[str, Scorer] = {
        "beacon": _beacon_scorer(model, holdout, users),
        "popularity": _popularity_scorer(pop_score),
        "popularity_city": _city_popularity_scorer(pop_score, cities),
        "content": holdout_scorer(holdout.events, holdout.candidates, users, holdout.past,
                                  pop_count),
    }
    result = _figures(holdout, scorers, cities, k)
    result["holdout_model"] = {"interactions": len(holdout.past), "seconds": round(train_seconds, 3),
                       "epochs": len(model.loss_history), **{
                           key: model.validation.get(key) for key in ("best_epoch", "best_ndcg")}}
    return result


@dataclass(frozen=True)
class _Holdout:
    """One temporal split: the events upcoming at the cutoff (the candidates, ranked by
    column), the users who registered for one after it (evaluated, by row), and the pairs
    that count."""

    cutoff: int  # epoch seconds
    events: pd.DataFrame  # every event, indexed from 0
    candidates: pd.DataFrame
    candidate_starts: np.ndarray  # epoch seconds, per candidate
    past: pd.DataFrame  # the interactions before the cutoff
    user_ids: np.ndarray  # the evaluated users, ascending
    relevant: Pairs  # registered after the cutoff
    excluded: Pairs  # registered, attended or rejected before it: left out of the ranking
    cold: np.ndarray  # per candidate: nobody had touched it before the cutoff


def _holdout(data: Any, cut: int) -> _Holdout:
    """The split of `data` at `cut`; BeaconError when nothing is upcoming or nobody
    registered for an upcoming event after the cutoff."""
    from beacon.errors import BeaconError

    inter = data.interactions
    types = inter["type"].astype(str).to_numpy()
    before = inter["occurred_at"].to_numpy() < cut
    events = data.events.reset_index(drop=True)
    candidates, candidate_starts = _upcoming(events, cut)
    col_of = pd.Series(np.arange(len(candidates)), index=candidates["id"].to_numpy())
    on_candidate = inter["event_id"].isin(col_of.index).to_numpy()
    prior = inter[before & np.isin(types, EXCLUDED_TYPES) & on_candidate]
    hits = _new_hits(inter[(~before) & np.isin(types, HIT_TYPES) & on_candidate], prior)
    user_ids = np.unique(hits["user_id"].to_numpy())
    if len(user_ids) == 0:
        raise BeaconError("cannot evaluate: no registrations after the cutoff for upcoming events")
    row_of = pd.Series(np.arange(len(user_ids)), index=user_ids)
    past = inter[before]
    touched = set(past["event_id"].tolist())
    return _Holdout(
        cutoff=cut, events=events, candidates=candidates, candidate_starts=candidate_starts,
        past=past, user_ids=user_ids, relevant=_pairs(hits, row_of, col_of),
        excluded=_pairs(prior[prior["user_id"].isin(row_of.index)], row_of, col_of),
        cold=~candidates["id"].isin(touched).to_numpy())


def _upcoming(events: pd.DataFrame, cut: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The events that start after `cut` (indexed from 0) and their starts in epoch seconds."""
    from beacon.errors import BeaconError

    start = pd.to_datetime(events["start_time"], utc=True)
    start_s = ((start - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    candidates = events[start_s > cut].reset_index(drop=True)
    if candidates.empty:
        raise BeaconError("cannot evaluate: no events are upcoming at the cutoff")
    return candidates, start_s[start_s > cut]


def _new_hits(after_hits: pd.DataFrame, prior: pd.DataFrame) -> pd.DataFrame:
    """The distinct (user_id, event_id) pairs of `after_hits`, less those in `prior`: an event
    the user had registered for or rejected before the cutoff is not ranked, so not a hit."""
    excluded_pairs = set(zip(prior["user_id"].tolist(), prior["event_id"].tolist()))
    hits = after_hits[["user_id", "event_id"]].drop_duplicates()
    keep = [pair not in excluded_pairs for pair in zip(hits["user_id"], hits["event_id"])]
    return hits[np.asarray(keep, dtype=bool)] if len(hits) else hits


def _pairs(frame: pd.DataFrame, row_of: pd.Series, col_of: pd.Series) -> Pairs:
    return row_of[frame["user_id"]].to_numpy(), col_of[frame["event_id"]].to_numpy()


def _of_types(interactions: pd.DataFrame, types: Any) -> pd.DataFrame:
    return interactions[np.isin(interactions["type"].astype(str).to_numpy(), types)]


def _popularity(holdout: _Holdout, config: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: its positive interactions before the cutoff, and its popularity score
    (minus its rank by that count, ties by earliest start)."""
    positive_types = [t for t, w in config.type_weights.items() if w > 0]
    counts = _of_types(holdout.past, positive_types)["event_id"].value_counts()
    pop_count = holdout.candidates["id"].map(counts).fillna(0).to_numpy(dtype=np.float64)
    order = np.lexsort((holdout.candidate_starts, -pop_count))
    pop_score = np.empty(len(pop_count))
    pop_score[order] = -np.arange(len(pop_count), dtype=np.float64)
    return pop_count, pop_score


def _popularity_scorer(pop_score: np.ndarray) -> Scorer:
    def scores(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.broadcast_to(pop_score[cols], (len(block), len(cols))).copy()

    return scores


@dataclass(frozen=True)
class _Cities:
    """The normalised city of each evaluated user and of each candidate ("" when unknown)."""

    of_user: np.ndarray
    of_candidate: np.ndarray

    @classmethod
    def of(cls, users: pd.DataFrame, candidates: pd.DataFrame) -> _Cities:
        from beacon.features import norm

        def cities(frame: pd.DataFrame) -> np.ndarray:
            return frame["city"].map(lambda c: norm(c) if isinstance(c, str) else "").to_numpy()

        return cls(cities(users), cities(candidates))

    def same(self, block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Whether each candidate in `cols` is in the city of each user in `block` (a user
        without a city has none)."""
        user_city = self.of_user[block][:, None]
        return (user_city == self.of_candidate[cols]) & (user_city != "")


def _city_popularity_scorer(pop_score: np.ndarray, cities: _Cities) -> Scorer:
    """The stronger baseline: the same popularity, but events in the user's own city first."""
    def scores(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return pop_score[cols][None, :] + cities.same(block, cols) * float(len(pop_score) + 1)

    return scores


def _fit_before(data: Any, cut: int, config: Any,
                callback: Callable[[Any], None] | None) -> tuple[HybridModel, float]:
    """Beacon trained on the interactions before the cutoff only, and the seconds it took."""
    from beacon.model import HybridModel

    began = datetime.now(timezone.utc)
    model = HybridModel.fit(data.before(cut), config, callback=callback)
    return model, (datetime.now(timezone.utc) - began).total_seconds()


def _beacon_scorer(model: HybridModel, holdout: _Holdout, users: pd.DataFrame) -> Scorer:
    """The trained model's scores as serving computes them: vectors, place, and the
    co-attendance, content and trend blends."""
    from beacon.model.coattendance import newest_first

    matrix = model.event_matrix(holdout.candidates)
    user_vecs = model.user_matrix(users)
    # What serving blends the co-attendance, content and trend components with: the events each
    # user registered for (or attended) before the cutoff, newest first.
    histories = newest_first(_of_types(holdout.past, HIT_TYPES), holdout.user_ids,
                             "user_id", "event_id", "occurred_at")

    def scores(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        scores = user_vecs[block] @ matrix.vectors[cols].T + matrix.bias[cols]
        place = model.place_matrix(users.iloc[block], matrix, cols)  # what serving adds too
        scores = scores if place is None else scores + place
        blended = model.blend_users(scores, [histories[i] for i in block],
                                    matrix.event_ids[cols])
        blended = model.blend_content(blended, [histories[i] for i in block], matrix, cols)
        has_history = np.array([len(histories[i]) > 0 for i in block], dtype=bool)
        return model.blend_trend(blended, has_history, matrix.event_ids[cols])

    return scores


def _figures(holdout: _Holdout, scorers: dict[str, Scorer], cities: _Cities,
             k: int) -> dict[str, Any]:
    """The result's figures, every key but "train", in the order the result shows them."""
    rel, exc, cold = holdout.relevant, holdout.excluded, holdout.cold
    n_users = len(holdout.user_ids)
    all_cols = np.arange(len(holdout.candidates))

    def strategy(name: str) -> dict[str, Any]:
        return _strategy(scorers[name], n_users, all_cols, rel, exc, cold, k, cities.same)

    result: dict[str, Any] = {
        "k": k,
        "cutoff": datetime.fromtimestamp(holdout.cutoff, timezone.utc).isoformat(),
        "users_evaluated": int(n_users),
        "candidates": int(len(holdout.candidates)),
        "cold_candidates": int(cold.sum()),
        "relevant": int(len(rel[0])),
        "cold_relevant_share": float(cold[rel[1]].mean()) if len(rel[0]) else 0.0,
        "beacon": strategy("beacon"),
        "popularity": strategy("popularity"),
        "popularity_city": strategy("popularity_city"),
        "content": strategy("content"),
        "relevant_in_city_share": _relevant_in_city_share(rel, cities),
    }
    result["cold_share"] = result["beacon"]["cold_hit_share"]
    result["ndcg_ratio"] = _ndcg_ratio(result["beacon"], result["popularity"])
    result["ndcg_ratio_city"] = _ndcg_ratio(result["beacon"], result["popularity_city"])
    compared = {name: scorers[name] for name in ("beacon", "popularity", "content")}
    result["cold"] = _cold_only(compared, n_users, rel, exc, cold, k)
    seen_before = np.isin(holdout.user_ids, holdout.past["user_id"].to_numpy())
    result["by_history"] = {
        "with_history": _users_only(compared, seen_before, rel, exc, cold, k),
        "without_history": _users_only(compared, ~seen_before, rel, exc, cold, k)}
    return result


def _relevant_in_city_share(rel: Pairs, cities: _Cities) -> float:
    """Share of the relevant (registered-after-cutoff) events in the user's own city: what
    each strategy's in_city_share (of its top-k picks) compares with."""
    if not len(rel[0]):
        return 0.0
    return float((cities.of_user[rel[0]] == cities.of_candidate[rel[1]]).mean())


def _ndcg_ratio(beacon: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    return beacon["ndcg"] / baseline["ndcg"] if baseline["ndcg"] > 0 else None


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
