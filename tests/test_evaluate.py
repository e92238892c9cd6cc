"""Ranking metrics against hand-computed values; the temporal holdout on a small database."""
from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch

from beacon.errors import BeaconError
from beacon.evaluate import (
    coverage,
    default_cutoff,
    evaluate_holdout,
    hit_rate_at_k,
    ndcg_at_k,
    ndcg_from_scores,
    precision_at_k,
    recall_at_k,
)
from data_access.training_data import load_training_data
from tests.test_model_contract import CONFIG, NOW, insert_world, tiny_world, with_interactions

torch.set_num_threads(1)

RANKED = ["a", "b", "c", "d"]
RELEVANT = {"a", "c", "x"}


def test_hit_rate():
    assert hit_rate_at_k(RANKED, {"c"}, 2) == 0.0
    assert hit_rate_at_k(RANKED, {"c"}, 3) == 1.0
    assert hit_rate_at_k(RANKED, set(), 4) == 0.0


def test_precision_and_recall():
    assert precision_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 4)
    assert precision_at_k(RANKED, RELEVANT, 1) == pytest.approx(1.0)
    assert recall_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, set(), 2) == 0.0
    # fewer items than k: precision still divides by k
    assert precision_at_k(["a"], {"a"}, 10) == pytest.approx(0.1)


def test_ndcg():
    # hits at ranks 1 and 3: DCG = 1 + 1/log2(4) = 1.5; ideal with 3 relevant: 1 + 1/log2(3) + 1/2
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(RANKED, RELEVANT, 4) == pytest.approx(1.5 / ideal)
    # k=3 with 2 relevant inside the top 3, only 2 relevant in total
    assert ndcg_at_k(RANKED, {"a", "c"}, 3) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["c", "a"], {"a", "c"}, 2) == pytest.approx(1.0)
    assert ndcg_at_k(["b", "a"], {"a"}, 2) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(RANKED, set(), 4) == 0.0


def test_coverage():
    assert coverage([["a", "b"], ["b", "c"]], 10, 2) == pytest.approx(0.3)
    assert coverage([["a", "b", "z"]], 4, 2) == pytest.approx(0.5)
    assert coverage([], 0, 5) == 0.0


def test_vectorized_ndcg_matches_the_list_version():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 9))
    relevant = rng.random((6, 9)) < 0.25
    relevant[0] = False  # a row without relevant items is skipped
    expected = []
    for row in range(1, 6):
        if relevant[row].any():
            ranked = list(np.argsort(-scores[row], kind="stable"))
            expected.append(ndcg_at_k(ranked, set(np.flatnonzero(relevant[row])), 4))
    assert ndcg_from_scores(scores, relevant, 4) == pytest.approx(np.mean(expected))


def _holdout_world():
    """The tiny world, plus registrations after a cutoff, one of them on a brand-new event."""
    world = tiny_world()
    later = NOW - timedelta(days=1)
    extra = [(u, 100 + (u % 8), "register", later + timedelta(minutes=u)) for u in range(1, 9)]
    extra += [(u, 200 + (u % 8), "register", later + timedelta(minutes=u)) for u in range(9, 17)]
    extra += [(1, 150, "register", later + timedelta(hours=1)),
              (9, 250, "register", later + timedelta(hours=1))]
    return with_interactions(world, extra)


def test_evaluate_holdout_on_a_small_database(db):
    world = _holdout_world()
    insert_world(db, world)
    data = load_training_data(url=db)
    cutoff = NOW - timedelta(days=2)
    seen = []
    result = evaluate_holdout(data, CONFIG.with_overrides(epochs=25), k=5, cutoff=cutoff,
                              callback=seen.append)
    assert result["k"] == 5
    assert result["cutoff"].startswith(cutoff.date().isoformat())
    assert result["candidates"] == len(world["events"])  # all start after the cutoff
    assert result["cold_candidates"] == 2  # events 150 and 250 were never touched before it
    assert seen, "training reported its epochs"
    # named as a stored evaluation names it, so `evaluate --json` reads the same either way
    assert "train" not in result and result["holdout_model"]["epochs"] == len(seen)
    for strategy in ("beacon", "popularity", "popularity_city"):
        metrics = result[strategy]
        for key in ("hit_rate", "precision", "recall", "ndcg", "coverage", "cold_hit_share"):
            assert 0.0 <= metrics[key] <= 1.0, (strategy, key, metrics[key])
    assert 0.0 <= result["cold_share"] <= 1.0
    # Where the picks are: every fan registers in their own city; popularity in the user's
    # city first fills its picks from there (4 of 5 here: the user registered for the rest).
    assert result["relevant_in_city_share"] == 1.0
    assert result["popularity_city"]["in_city_share"] == pytest.approx(0.8)
    assert result["popularity"]["in_city_share"] < result["popularity_city"]["in_city_share"]
    assert 0.5 <= result["beacon"]["in_city_share"] <= 1.0
    assert result["cold"]["users_evaluated"] == 2
    assert set(result["cold"]) >= {"beacon", "popularity", "candidates"}
    # Taste splits cleanly by side: the model beats a single popularity list.
    assert result["beacon"]["ndcg"] > result["popularity"]["ndcg"]
    assert result["beacon"]["hit_rate"] >= 0.9
    # Registrations made before the cutoff are not counted again as hits.
    assert result["relevant"] <= 18


def test_users_evaluated_are_those_with_registrations_after_the_cutoff(db):
    world = _holdout_world()
    insert_world(db, world)
    data = load_training_data(url=db)
    result = evaluate_holdout(data, CONFIG.with_overrides(epochs=5), k=10,
                              cutoff=NOW - timedelta(days=2))
    inter = world["interactions"]
    cut = NOW - timedelta(days=2)
    before = set(zip(inter[inter["occurred_at"] < cut]["user_id"],
                     inter[inter["occurred_at"] < cut]["event_id"]))
    after = inter[(inter["occurred_at"] >= cut) & (inter["type"] == "register")]
    fresh = {u for u, e in zip(after["user_id"], after["event_id"]) if (u, e) not in before}
    assert result["users_evaluated"] == len(fresh) >= 2
    assert result["relevant"] == sum(1 for pair in set(zip(after["user_id"], after["event_id"]))
                                     if pair not in before)
    assert result["popularity"]["coverage"] > 0 and result["beacon"]["coverage"] > 0


def test_default_cutoff_leaves_a_share_of_registrations_after_it(db):
    insert_world(db, _holdout_world())
    data = load_training_data(url=db)
    cut = default_cutoff(data.interactions)
    registers = data.interactions[data.interactions["type"].astype(str) == "register"]
    share = float((registers["occurred_at"] >= cut).mean())
    assert 0.1 <= share <= 0.25


def test_the_holdout_scores_with_the_place_term_as_serving_does(db):
    """The beacon strategy's scores are exactly what `score` gives each user (place included)."""
    from beacon.features import UserContext
    from beacon.model import HybridModel

    world = _holdout_world()
    insert_world(db, world)
    data = load_training_data(url=db)
    model = HybridModel.fit(data, CONFIG.with_overrides(epochs=10))
    assert model.has_place_term
    matrix = model.event_matrix(data.events)
    users = data.users.iloc[:4]
    batch = model.score_users(users, matrix)
    for i, row in enumerate(users.to_dict("records")):
        single = model.score(UserContext.from_row(row), matrix)
        np.testing.assert_allclose(batch[i], single, rtol=1e-5, atol=1e-5)


def test_nothing_to_evaluate_raises(db):
    world = tiny_world()
    insert_world(db, {**world, "interactions": world["interactions"].query("type == 'view'")})
    with pytest.raises(BeaconError):
        evaluate_holdout(load_training_data(url=db), CONFIG)


def test_evaluate_splits_its_users_by_history_before_the_cutoff(db):
    """A user who joins after the cutoff is ranked from their profile alone: `by_history`
    reports them apart from the users the holdout model trained on."""
    world = _holdout_world()
    newcomer = world["users"].iloc[[0]].assign(id=99, email="newcomer@example.org")
    world["users"] = pd.concat([world["users"], newcomer], ignore_index=True)
    world = with_interactions(world, [(99, 101, "register", NOW - timedelta(hours=20))])
    insert_world(db, world)
    result = evaluate_holdout(load_training_data(url=db), CONFIG.with_overrides(epochs=5),
                              k=5, cutoff=NOW - timedelta(days=2))
    split = result["by_history"]
    assert split["without_history"]["users_evaluated"] == 1
    assert split["with_history"]["users_evaluated"] == result["users_evaluated"] - 1
    for block in split.values():
        for strategy in ("beacon", "popularity", "content"):
            assert block[strategy]["users"] == block["users_evaluated"]
            assert 0.0 <= block[strategy]["ndcg"] <= 1.0
    # the two groups average to the whole
    whole = sum(block["beacon"]["ndcg"] * block["users_evaluated"] for block in split.values())
    assert whole / result["users_evaluated"] == pytest.approx(result["beacon"]["ndcg"])


def test_by_history_says_when_a_group_is_empty(db):
    insert_world(db, _holdout_world())
    result = evaluate_holdout(load_training_data(url=db), CONFIG.with_overrides(epochs=3),
                              k=5, cutoff=NOW - timedelta(days=2))
    empty = result["by_history"]["without_history"]
    assert empty["users_evaluated"] == 0 and "not measurable" in empty["note"]
    assert empty["beacon"] is None
