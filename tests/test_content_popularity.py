"""The content component's term popularity: a cold event borrows the recent registrations of
the trained events that share its terms. Known answers for the terms' counts and the lift, the
blob, and the choice on a platform where a new event's organizer says who will come."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from beacon.config import ModelConfig
from beacon.errors import BeaconError
from beacon.model import HybridModel
from beacon.model.content_part import (POPULARITY_HALF_LIFE_DAYS, ContentPart, term_popularity,
                                       with_popularity)
from beacon.model.trend import DAY
from data_access.training_data import TrainingData
from tests.world_support import registrations

FRAME = pd.DataFrame({"id": [1, 2, 3, 4, 5], "category": [None] * 5,
                      "tags": [["p"], ["q"], ["p", "q"], ["p"], ["q"]], "organizer": [None] * 5})


def _part() -> ContentPart:
    return ContentPart.build(FRAME, 0.5, np.array([0, 1, 2]), neighbours=0)


def test_term_popularity_spreads_each_events_decayed_count_over_its_terms() -> None:
    part = _part()
    at = 100 * DAY
    half = int(POPULARITY_HALF_LIFE_DAYS * DAY)
    # event 1 [p]: two registrations now; event 3 [p q]: one a half-life ago; event 2: none
    popularity = term_popularity(part.matrix, np.array([0, 0, 2]),
                                 np.array([at - 1, at - 1, at - half]), at)
    p, q = part.column["tag:p"], part.column["tag:q"]
    c = 1 / np.sqrt(2)  # event 3's row: p and q at equal idf, unit length
    np.testing.assert_allclose(popularity[[p, q]], [2.0 + 0.5 * c, 0.5 * c], rtol=1e-4)
    new = part.rows(FRAME[FRAME["id"].isin([4, 5])])  # [p], [q]
    # an event's popularity: log1p of its row . the terms' (the counts are heavy-tailed)
    np.testing.assert_allclose(new.popularity(popularity), np.log1p(popularity[[p, q]]),
                               rtol=1e-6)


def test_the_lift_ranks_the_popular_terms_first_where_profiles_tie() -> None:
    content = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    popularity = np.array([0.0, 3.0, 1.0])
    lifted = with_popularity(content, popularity, 1.0)
    assert np.argsort(-lifted[0]).tolist() == [1, 0, 2]
    assert np.argsort(-lifted[1]).tolist() == [1, 2, 0]  # no profile: the popularity alone
    part = _part()
    rows = part.rows(FRAME[FRAME["id"].isin([4, 5])])
    unchanged = part.lifted(content[:, :2], rows)  # weight 0: the profile alone
    np.testing.assert_array_equal(unchanged, content[:, :2])


def test_the_popularity_survives_the_blob_and_a_damaged_one_is_refused() -> None:
    from beacon.model.serialization import _content

    part = _part()
    part.popularity = np.array([2.0, 0.5], dtype=np.float32)
    part.popularity_weight = 1.0
    meta = {"content": {"weight": 0.5, "terms": part.terms, "trained": part.trained,
                        "neighbours": 0, "popularity_weight": 1.0}}
    arrays = {"content_idf": part.idf, "content_event_ids": part.event_ids,
              "content_indptr": part.matrix.indptr, "content_indices": part.matrix.indices,
              "content_data": part.matrix.data, "content_pool": part.pool,
              "content_thresholds": part.thresholds}
    loaded = _content({**arrays, "content_popularity": part.popularity}, meta)
    assert loaded.popularity_weight == 1.0
    np.testing.assert_array_equal(loaded.popularity, part.popularity)
    older = _content(dict(arrays), {"content": {k: v for k, v in meta["content"].items()
                                                if k != "popularity_weight"}})
    assert older.popularity_weight == 0.0 and len(older.popularity) == 0
    with pytest.raises(BeaconError, match="content component"):
        _content({**arrays, "content_popularity": np.ones(5, np.float32)}, meta)


START = datetime(2026, 9, 1, tzinfo=timezone.utc)


def _organizer_world(seed: int = 0) -> TrainingData:
    """60 events by 6 organizers, one new event published every day and taken up only from
    then on; an organizer's events draw registrations in proportion to its pull (32, 16, 8,
    4, 2, 1), whatever the user, and the pull turns round on day 40: the least drawn organizer
    is the most drawn from then on. Users keep no topic: what they did before says little
    about which new event they pick, the organizers' recent draw says much."""
    rng = np.random.default_rng(seed)
    n_events, days = 60, 60
    pull = np.array([32.0, 16.0, 8.0, 4.0, 2.0, 1.0])
    organizer = rng.permutation(np.arange(n_events) % 6)
    users = pd.DataFrame({"id": np.arange(1, 401), "tags": [[] for _ in range(400)],
                          "latitude": np.nan, "longitude": np.nan, "city": None})
    events = pd.DataFrame({"id": np.arange(1000, 1000 + n_events), "category": "talk",
                           "tags": [[] for _ in range(n_events)],
                           "organizer": [f"host {o}" for o in organizer], "city": None,
                           "latitude": np.nan, "longitude": np.nan, "price": np.nan,
                           "start_time": pd.Timestamp(START + timedelta(days=days + 10)),
                           "timezone": "UTC", "title": [f"talk {j}" for j in range(n_events)]})
    rows = []
    for user in users["id"]:
        for day in sorted(rng.choice(np.arange(2, days), size=6, replace=False)):
            published = np.arange(min(day + 1, n_events))  # event j is out from day j
            odds = (pull if day < 40 else pull[::-1])[organizer[published]]
            event = 1000 + int(rng.choice(published, p=odds / odds.sum()))
            when = START + timedelta(days=int(day), hours=int(rng.integers(0, 24)))
            rows.append((user, event, "register", int(when.timestamp())))
    return registrations(rows, users, events, START + timedelta(days=days))


CONFIG = ModelConfig(dim=8, epochs=6, patience=2, min_epochs=2, batch_size=256,
                     learning_rate=0.05, negatives=8, device="cpu", seed=3, trend_blend=False)


def test_the_choice_takes_the_popularity_where_the_organizer_says_who_comes() -> None:
    world = _organizer_world()
    model = HybridModel.fit(world, CONFIG)
    chosen = model.validation["content"]
    assert {cell["popularity_weight"] for cell in chosen["grid"]} >= {0.0, 1.0}
    assert chosen["weight"] > 0 and chosen["popularity_weight"] > 0, {
        k: v for k, v in chosen.items() if k != "grid"}
    part = model.content
    assert part.popularity_weight == chosen["popularity_weight"]
    hosts = [part.column[f"organizer:host {o}"] for o in range(6)]
    assert np.argmax(part.popularity[hosts]) == 5  # the organizer with the most pull lately
    loaded = HybridModel.from_bytes(model.to_bytes())
    np.testing.assert_allclose(loaded.content.popularity, part.popularity)
    assert loaded.content.popularity_weight == part.popularity_weight
    # serving: two events published after training, by the organizers drawn most lately and
    # least lately, for a user with a history: the popular organizer's event comes first
    new = world.events.iloc[:2].assign(id=[5000, 5001], organizer=["host 5", "host 0"],
                                       title=["talk new a", "talk new b"])
    matrix = model.event_matrix(new)
    # each event's popularity is computed once, with the matrix serving caches
    np.testing.assert_allclose(matrix.content.popular, matrix.content.popularity(part.popularity))
    user = world.users.iloc[:1].reset_index(drop=True)
    history = [world.interactions.loc[world.interactions["user_id"] == 1,
                                      "event_id"].to_numpy()]
    scores = model.blend_content(model.score_users(user, matrix), history, matrix)
    assert scores[0, 0] > scores[0, 1]
    plain = model.score_users(user, matrix)  # the hybrid alone learned the long-run order
    assert plain[0, 0] < plain[0, 1]


def test_with_the_setting_off_the_choice_tries_the_profile_alone() -> None:
    model = HybridModel.fit(_organizer_world(), CONFIG.with_overrides(content_popularity=False))
    chosen = model.validation["content"]
    assert {cell["popularity_weight"] for cell in chosen["grid"]} == {0.0}
    assert model.content is None or model.content.popularity_weight == 0.0


def test_a_content_popularity_that_is_not_true_or_false_is_refused_by_name() -> None:
    with pytest.raises(BeaconError, match="content_popularity"):
        ModelConfig.from_dict({"content_popularity": "on"})
