"""The trend component: decayed counts with known answers, the blend, the blob, the choice on
a time split (on a platform where what is hot moves every few days, and where it carries
nothing), and serving: the trend ranks up for the users whose weight is on, and says so."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from beacon.config import ModelConfig
from beacon.errors import BeaconError
from beacon.model import HybridModel
from beacon.model.trend import DAY, TrendPart, decayed_counts, trend_blend
from data_access.training_data import TrainingData
from tests.world_support import registrations

START = datetime(2026, 9, 1, tzinfo=timezone.utc)


def test_decayed_counts_halve_every_half_life_and_ignore_the_future() -> None:
    at = 100 * DAY
    erows = np.array([0, 0, 1, 1, 2, 2])
    times = np.array([at - 1, at - 7 * DAY, at - 14 * DAY, at - 200 * DAY, at, at + DAY])
    counts = decayed_counts(erows, times, at, 7.0, 4)
    assert counts[0] == pytest.approx(1.0 + 0.5, rel=1e-5)  # just now, one half-life ago
    assert counts[1] == pytest.approx(0.25)  # two half-lives; 200 days is past the horizon
    assert counts[2] == 0.0 and counts[3] == 0.0  # at `at` or later: not yet


def test_the_blend_ranks_by_the_trend_at_weight_one_and_keeps_what_is_not_shown() -> None:
    scores = np.array([[3.0, 2.0, 1.0, -np.inf]])
    trend = np.array([0.0, 1.0, 5.0, 9.0])
    alone = trend_blend(scores, trend, np.array([0.0]))
    assert np.argsort(-alone[0])[:3].tolist() == [0, 1, 2] and alone[0, 3] == -np.inf
    lifted = trend_blend(scores, trend, np.array([1.0]))
    assert np.argsort(-lifted[0])[:3].tolist() == [2, 1, 0] and lifted[0, 3] == -np.inf


def test_weights_differ_for_users_with_and_without_history() -> None:
    part = TrendPart(np.array([10, 11, 12]), np.array([0.5, 4.0, 1.0], dtype=np.float32),
                     as_of=0, half_life_days=3.0, weight_known=0.0, weight_new=1.0)
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    ids = np.array([10, 11, 12, 99])  # 99: nobody registered for it lately
    out = part.blended(scores, np.array([True, False]), part.values(ids))
    np.testing.assert_array_equal(out[0], scores[0])  # weight 0: untouched
    assert np.argsort(-out[1]).tolist() == [1, 2, 0, 3]
    assert part.values(ids)[3] == 0.0 and part.recent(11) == pytest.approx(4.0)
    assert part.parts(scores[:1], np.array([True]), part.values(ids)) is None


def _hot_world(kind: str, seed: int = 0) -> TrainingData:
    """40 events, users arriving over 60 days, every event starting after the last
    registration. "moving": the events alike in every feature, and each day users register
    for the day's hot events, which change every 4 days. "static": the same, but the same
    3 events stay hot (the trend is plain popularity). "topics": 4 topics of 10 events, and
    each user registers only within their own topic (their interest tag), at any time: what
    was registered for lately says nothing about what a user does next."""
    rng = np.random.default_rng(seed)
    moving = kind != "topics"
    n_events, days = 40, 60
    topic = rng.integers(0, 4, size=300)
    users = pd.DataFrame({"id": np.arange(1, 301),
                          "tags": [[] if moving else [f"topic{t}"] for t in topic],
                          "latitude": np.nan, "longitude": np.nan, "city": None})
    start = START + timedelta(days=days + 10)
    events = pd.DataFrame({"id": np.arange(1000, 1000 + n_events), "category": "talk",
                           "tags": [["talk"] if moving else [f"topic{j // 10}"]
                                    for j in range(n_events)], "organizer": None,
                           "city": None, "latitude": np.nan, "longitude": np.nan,
                           "price": np.nan, "start_time": pd.Timestamp(start),
                           "timezone": "UTC", "title": [f"talk {j}" for j in range(n_events)]})
    rows = []
    for user in users["id"]:
        arrival = rng.integers(0, days - 3)
        for day in sorted(rng.choice(np.arange(arrival, days), size=4, replace=False)):
            hot = (day // 4) * 3 % n_events if kind == "moving" else 0
            event = 1000 + (hot + int(rng.integers(0, 3)) if moving
                            else 10 * int(topic[user - 1]) + int(rng.integers(0, 10)))
            when = START + timedelta(days=int(day), hours=int(rng.integers(0, 24)))
            rows.append((user, event, "register", int(when.timestamp())))
    return registrations(rows, users, events, START + timedelta(days=days))


CHOICE_CONFIG = ModelConfig(dim=8, epochs=10, patience=2, min_epochs=2, batch_size=128,
                            learning_rate=0.05,
                            negatives=8, device="cpu", seed=3, content_blend=False)


def test_the_choice_switches_the_trend_on_where_what_is_hot_moves() -> None:
    model = HybridModel.fit(_hot_world("moving"), CHOICE_CONFIG)
    chosen = model.validation["trend"]
    assert chosen["weight_known"] > 0 or chosen["weight_new"] > 0, chosen
    assert model.trend is not None and model.trend.half_life_days == chosen["half_life_days"]
    assert chosen["ndcg"]["known"]["blend"] >= chosen["ndcg"]["known"]["alone"]
    # the newest hot events lead the stored trend
    hot_now = set(range(1000 + 14 * 3 % 40, 1000 + 14 * 3 % 40 + 3))
    top = model.trend.event_ids[np.argsort(-model.trend.counts)[:3]]
    assert set(top.tolist()) == hot_now
    frames = _hot_world("moving").events
    matrix = model.event_matrix(frames)  # serving reads the values here, looked up once
    np.testing.assert_array_equal(matrix.trend, model.trend.values(frames["id"].to_numpy()))
    loaded = HybridModel.from_bytes(model.to_bytes())
    assert loaded.trend.weight_known == model.trend.weight_known
    np.testing.assert_allclose(loaded.trend.counts, model.trend.counts)
    off = HybridModel.fit(_hot_world("moving"), CHOICE_CONFIG.with_overrides(
        trend_blend=False))
    assert off.trend is None and "trend" not in off.validation


@pytest.mark.parametrize("kind", ["topics", "static"])
def test_the_choice_leaves_the_trend_off_where_recency_adds_nothing(kind: str) -> None:
    """Users who keep to their topic, or hot events that never change (where the probe does
    gain from the trend, but no more than from plain popularity)."""
    model = HybridModel.fit(_hot_world(kind), CHOICE_CONFIG)
    chosen = model.validation["trend"]
    assert chosen["weight_known"] == 0 and chosen["weight_new"] == 0, chosen
    assert model.trend is None


def test_a_damaged_trend_in_a_blob_is_refused() -> None:
    model = HybridModel.fit(_hot_world("moving"), CHOICE_CONFIG)
    assert model.trend is not None
    model.trend = TrendPart(np.array([1000, 1001]), np.array([1.0], dtype=np.float32), 0, 3.0,
                            0.5, 0.5)
    with pytest.raises(BeaconError, match="trend"):
        HybridModel.from_bytes(model.to_bytes())


def test_a_trend_blend_that_is_not_true_or_false_is_refused_by_name() -> None:
    with pytest.raises(BeaconError, match="trend_blend"):
        ModelConfig.from_dict({"trend_blend": "yes"})
