"""evaluate per strategy: the content row, the users behind each figure, and a cold block that
says it could not be measured instead of showing zeros."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from beacon.evaluate import NOT_MEASURABLE, evaluate_holdout
from data_access.training_data import load_training_data
from tests.test_cli import run_cli
from tests.test_evaluate import _holdout_world
from tests.test_model_contract import CONFIG, NOW, insert_world, tiny_world, with_interactions

STRATEGIES = ("beacon", "popularity", "popularity_city", "content")
METRICS = ("hit_rate", "precision", "recall", "ndcg", "coverage")


def test_every_strategy_says_how_many_users_its_figures_average(db):
    insert_world(db, _holdout_world())
    result = evaluate_holdout(load_training_data(url=db), CONFIG.with_overrides(epochs=10), k=5,
                              cutoff=NOW - timedelta(days=2))
    for name in STRATEGIES:
        assert set(METRICS) <= set(result[name])
        assert result[name]["users"] == result["users_evaluated"] >= 2
    # taste splits by side, so a profile of past jazz (or football) nights finds the rest
    assert result["content"]["ndcg"] > result["popularity"]["ndcg"]
    cold = result["cold"]
    assert cold["measurable"] is True and cold["note"] is None
    assert cold["users_evaluated"] == 2 and cold["candidates"] == 2
    for name in ("beacon", "popularity", "content"):
        assert cold[name]["users"] == 2
    # the brand-new jazz night goes to the jazz fan, the football match to the football fan
    assert cold["content"]["ndcg"] == pytest.approx(1.0)


def _world_without_cold_events() -> dict:
    """Every upcoming event was looked at long before any cutoff: nothing is cold."""
    world = tiny_world()
    events = world["events"]
    world = {**world, "events": events[~events["id"].isin([150, 250])].reset_index(drop=True)}
    inter = world["interactions"]
    world["interactions"] = inter[~inter["event_id"].isin([150, 250])].reset_index(drop=True)
    early = NOW - timedelta(days=30)
    views = [(1, int(e), "view", early) for e in world["events"]["id"]]
    later = NOW - timedelta(days=1)
    extra = [(u, 100 + (u % 8), "register", later + timedelta(minutes=u)) for u in range(1, 9)]
    extra += [(u, 200 + (u % 8), "register", later + timedelta(minutes=u)) for u in range(9, 17)]
    return with_interactions(world, views + extra)


def test_a_cold_block_without_users_is_not_measurable_not_zero(db):
    insert_world(db, _world_without_cold_events())
    result = evaluate_holdout(load_training_data(url=db), CONFIG.with_overrides(epochs=3), k=5,
                              cutoff=NOW - timedelta(days=2))
    cold = result["cold"]
    assert cold["measurable"] is False and cold["users_evaluated"] == 0
    assert cold["note"].startswith(NOT_MEASURABLE)
    assert all(cold[name] is None for name in ("beacon", "popularity", "content"))

    out = run_cli("evaluate", "--fresh", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert {"k", "cutoff"} <= set(payload) and payload["k"] == 10
    for name in STRATEGIES:  # the keys scripts read, plus the users behind them
        assert set(METRICS) | {"users"} <= set(payload[name])
    assert payload["cold"]["beacon"] is None and payload["cold"]["measurable"] is False
    assert NOT_MEASURABLE in payload["cold"]["note"]

    human = run_cli("evaluate", "--fresh")
    assert human.returncode == 0, human.stderr
    assert "content" in human.stdout and NOT_MEASURABLE in human.stdout
    header = next(line for line in human.stdout.splitlines() if line.startswith("strategy"))
    assert header.split()[:3] == ["strategy", "users", "hit_rate"]
