"""The contract every model variant must pass, on tiny data with known answers.

A tiny platform: jazz fans register for jazz events, football fans for football matches, in
two cities. New events with no interactions at all (one jazz, one football) test cold start.
A variant plugs in by subclassing ModelContract and overriding `fit`.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import torch

from beacon.config import ModelConfig
from beacon.errors import BeaconError, ModelNotFitted
from beacon.features import UserContext
from beacon.model import EpochReport, HybridModel
from data_access.training_data import TrainingData, load_training_data

torch.set_num_threads(1)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
N_FANS = 8  # per side
N_OLD = 8  # events per side with interactions
CONFIG = ModelConfig(dim=16, epochs=40, batch_size=64, negatives=8, learning_rate=0.05,
                     validation_fraction=0.0, patience=0, seed=7, id_dropout=0.3, l2=1e-3)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def tiny_world(now: datetime = NOW) -> dict[str, pd.DataFrame]:
    """Users, events and interactions (as plain frames with DB-style ids)."""
    users, events, inter = [], [], []
    for i in range(2 * N_FANS):
        jazz = i < N_FANS
        users.append({"id": i + 1, "email": f"u{i + 1}@example.com",
                      "latitude": 52.52 if jazz else 48.85, "longitude": 13.40 if jazz else 2.35,
                      "city": "Berlin" if jazz else "Paris",
                      "tags": ["jazz"] if jazz and i % 2 == 0 else
                      (["football"] if not jazz and i % 2 == 0 else [])})
    # 'no-tags' users exist on both sides so the id embeddings matter too.
    def event(eid: int, kind: str, start: datetime) -> dict:
        jazz = kind == "jazz"
        return {"id": eid, "event_id": f"{kind}-{eid}",
                "category": "music" if jazz else "sports",
                "tags": ["jazz", "live"] if jazz else ["football"],
                "organizer": "Blue Note" if jazz else "City FC",
                "city": "Berlin" if jazz else "Paris",
                "latitude": 52.5 if jazz else 48.86, "longitude": 13.41 if jazz else 2.34,
                "price": 15.0 if jazz else 40.0,
                "start_time": start, "end_time": start + timedelta(hours=2),
                "timezone": "Europe/Berlin" if jazz else "Europe/Paris"}

    for j in range(N_OLD):
        start = now + timedelta(days=1 + j)
        events.append(event(100 + j, "jazz", start.replace(hour=19)))
        events.append(event(200 + j, "football", start.replace(hour=15)))
    events.append(event(150, "jazz", now + timedelta(days=12, hours=7)))  # brand new
    events.append(event(250, "football", now + timedelta(days=12, hours=3)))  # brand new
    rng = np.random.default_rng(0)
    for u in users:
        jazz = u["id"] <= N_FANS
        base = 100 if jazz else 200
        picks = rng.choice(N_OLD, size=5, replace=False)
        for n, j in enumerate(picks):
            when = now - timedelta(days=10 - n, hours=int(u["id"]))
            inter.append((u["id"], base + int(j), "view", when - timedelta(minutes=5)))
            inter.append((u["id"], base + int(j), "register", when))
    return {"users": pd.DataFrame(users), "events": pd.DataFrame(events),
            "interactions": pd.DataFrame(inter, columns=["user_id", "event_id", "type",
                                                         "occurred_at"])}


def to_training_data(world: dict[str, pd.DataFrame]) -> TrainingData:
    inter = world["interactions"].copy()
    inter["occurred_at"] = inter["occurred_at"].map(_epoch).astype(np.int64)
    inter["type"] = pd.Categorical(inter["type"])
    inter = inter.sort_values("occurred_at", kind="stable").reset_index(drop=True)
    events = world["events"].copy()
    for column in ("start_time", "end_time"):
        events[column] = pd.to_datetime(events[column], utc=True)
    return TrainingData(interactions=inter, users=world["users"].copy(), events=events,
                        loaded_at=NOW)


def insert_world(url: str, world: dict[str, pd.DataFrame]) -> None:
    """Write a world into a migrated database through the ORM."""
    from data_access.db import session_scope
    from data_access.schema import Event, EventTag, Interaction, User, UserInterest

    with session_scope(url) as session:
        for u in world["users"].to_dict("records"):
            session.add(User(id=u["id"], email=u["email"], name=u["email"],
                             latitude=u["latitude"], longitude=u["longitude"], city=u["city"]))
        for e in world["events"].to_dict("records"):
            session.add(Event(id=e["id"], event_id=e["event_id"], title=e["event_id"],
                              category=e["category"], organizer=e["organizer"], city=e["city"],
                              latitude=e["latitude"], longitude=e["longitude"],
                              start_time=e["start_time"], end_time=e["end_time"],
                              timezone=e["timezone"], price=e["price"]))
        session.flush()
        for u in world["users"].to_dict("records"):
            for tag in u["tags"]:
                session.add(UserInterest(user_id=u["id"], tag=tag))
        for e in world["events"].to_dict("records"):
            for tag in e["tags"]:
                session.add(EventTag(event_id=e["id"], tag=tag))
        session.flush()
        for user_id, event_id, kind, when in world["interactions"].itertuples(index=False):
            session.add(Interaction(user_id=int(user_id), event_id=int(event_id), type=kind,
                                    occurred_at=when))


def with_interactions(world: dict[str, pd.DataFrame], rows: list[tuple]) -> dict:
    extra = pd.DataFrame(rows, columns=["user_id", "event_id", "type", "occurred_at"])
    return {**world, "interactions": pd.concat([world["interactions"], extra],
                                               ignore_index=True)}


def context(world: dict[str, pd.DataFrame], user_id: int) -> UserContext:
    row = world["users"].set_index("id").loc[user_id]
    return UserContext.from_row({"id": user_id, **row.to_dict()})


class ModelContract:
    """Known answers any model variant must give. Override `fit` to plug a variant in."""

    config = CONFIG

    def fit(self, data: TrainingData, config: ModelConfig | None = None):
        return HybridModel.fit(data, config or self.config)

    @pytest.fixture(scope="class")
    @classmethod
    def world(cls) -> dict[str, pd.DataFrame]:
        return tiny_world()

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, world):
        return cls().fit(to_training_data(world))

    def ranked(self, model, world, user: UserContext, event_ids: list[int]) -> list[int]:
        events = world["events"].set_index("id").loc[event_ids].reset_index()
        matrix = model.event_matrix(events)
        scores = model.score(user, matrix)
        return [int(e) for e in matrix.event_ids[np.argsort(-scores, kind="stable")]]

    # -- known answers
    def test_jazz_fan_gets_jazz_first(self, model, world):
        fan = context(world, 2)  # a jazz fan with no interest tags: history alone
        all_ids = world["events"]["id"].tolist()
        ranked = self.ranked(model, world, fan, all_ids)
        assert all(e < 200 for e in ranked[:5]), ranked

    def test_football_fan_gets_football_first(self, model, world):
        fan = context(world, N_FANS + 2)
        ranked = self.ranked(model, world, fan, world["events"]["id"].tolist())
        assert all(e >= 200 for e in ranked[:5]), ranked

    def test_new_jazz_event_beats_new_football_event_for_jazz_fan(self, model, world):
        for user_id in (1, 2):
            assert self.ranked(model, world, context(world, user_id), [150, 250])[0] == 150

    def test_new_user_with_interest_tags_is_served_from_features(self, model, world):
        newcomer = UserContext(user_id=None, tags=("jazz",), latitude=52.52, longitude=13.40,
                               city="Berlin")
        assert not model.knows_user(None)
        ranked = self.ranked(model, world, newcomer, [150, 250, 100, 200])
        assert set(ranked[:2]) == {100, 150}, ranked

    def test_reject_pushes_an_event_down(self, world):
        user = 1
        registered = set(world["interactions"].query("user_id == @user")["event_id"])
        unseen = [e for e in range(100, 100 + N_OLD) if e not in registered]
        target, others = unseen[0], unseen[1:]
        rejected = with_interactions(world, [(user, target, "reject", NOW - timedelta(days=1))])
        gaps = {"without": [], "with": []}
        for seed in (0, 1, 2):  # tiny data is noisy: compare the average over three seeds
            config = self.config.with_overrides(seed=seed)
            for name, variant in (("without", world), ("with", rejected)):
                model = self.fit(to_training_data(variant), config)
                events = variant["events"].set_index("id").loc[[target, *others]].reset_index()
                scores = model.score(context(variant, user), model.event_matrix(events))
                gaps[name].append(float(scores[0] - scores[1:].mean()))
        assert np.mean(gaps["with"]) < np.mean(gaps["without"]) - 0.5, gaps

    def test_deterministic_for_a_seed(self, world):
        a = self.fit(to_training_data(world))
        b = self.fit(to_training_data(world))
        for key in a.weights:
            np.testing.assert_array_equal(a.weights[key], b.weights[key], err_msg=key)

    def test_bytes_round_trip_gives_identical_scores(self, model, world):
        loaded = HybridModel.from_bytes(model.to_bytes())
        events = world["events"]
        for user_id in (1, N_FANS + 1):
            user = context(world, user_id)
            np.testing.assert_array_equal(model.score(user, model.event_matrix(events)),
                                          loaded.score(user, loaded.event_matrix(events)))
        assert loaded.config == model.config
        assert loaded.counts == model.counts

    def test_coattendance_ranks_what_the_same_people_went_to_and_round_trips(self, model,
                                                                            world):
        """Known answer: jazz fans co-attend jazz events, so a history of one jazz event puts
        the other jazz events first by co-attendance; a cold event (no history) gets the
        component's neutral 0, and the blob keeps the component."""
        component = _world_coattendance(model, world, weight=0.7)
        events = world["events"]
        matrix = model.event_matrix(events)
        ids = matrix.event_ids
        co, known, has_history = component.scores([[100]], ids)
        assert has_history.tolist() == [True]
        jazz_warm = np.isin(ids, [101, 102, 103, 104, 105, 106, 107])
        football = np.isin(ids, list(range(200, 208)))
        assert co[0, jazz_warm].mean() > 0 and not co[0, football].any()
        assert jazz_warm[np.argsort(-co[0])[:3]].all()
        assert not known[ids == 150].any() and not known[ids == 250].any()
        flat = np.zeros((1, len(ids)))  # a hybrid with no opinion: co-attendance decides
        blended = component.blended(flat, [[100]], ids)[0]
        assert jazz_warm[np.argsort(-blended)[:3]].all()
        assert blended[ids == 150][0] == 0.0  # cold: neither pushed up nor buried
        hybrid = model.score(context(world, 1), matrix)[None, :]
        unchanged = component.blended(hybrid, [[]], ids)[0]  # no history: the hybrid's order
        np.testing.assert_array_equal(np.argsort(-unchanged, kind="stable"),
                                      np.argsort(-hybrid[0], kind="stable"))
        copy = HybridModel.from_bytes(model.to_bytes())
        copy.coattendance = component
        component.recency = 0.25
        loaded = HybridModel.from_bytes(copy.to_bytes())
        assert loaded.coattendance.weight == 0.7 and loaded.coattendance.lam == 10.0
        assert loaded.coattendance.recency == 0.25
        np.testing.assert_allclose(loaded.coattendance.matrix, component.matrix, atol=1e-3)
        assert loaded.coattendance.strongest_source([100, 201], 101)[0] == 100
        assert "co_matrix" not in loaded.weights

    def test_content_component_ranks_cold_events_like_past_ones_and_round_trips(self, model,
                                                                               world):
        """Known answer: a history of one jazz night makes the brand-new jazz night (150) the
        content part's first cold candidate and leaves the new football match (250) at 0; with
        weight 1 it reverses a hybrid that prefers football; events with history keep the
        hybrid's order; an event added after training gets its row from its text; the blob
        keeps the component."""
        from beacon.model.content_part import ContentPart

        events = world["events"]
        trained = np.flatnonzero(events["id"].isin(world["interactions"]["event_id"]).to_numpy())
        copy = HybridModel.from_bytes(model.to_bytes())
        copy.content = ContentPart.build(events, 1.0, trained)
        later = events[events["id"] == 150].assign(id=151)  # published after training
        frame = pd.concat([events[events["id"].isin([100, 200, 150, 250])], later])
        matrix = copy.event_matrix(frame.reset_index(drop=True))
        ids = matrix.event_ids.tolist()
        assert matrix.known.tolist() == [i in (100, 200) for i in ids]
        content, has_history = copy.content.scores([[101]], matrix.content)
        assert has_history.tolist() == [True]
        assert content[0, ids.index(150)] > 0 and content[0, ids.index(250)] == 0
        assert content[0, ids.index(151)] == pytest.approx(content[0, ids.index(150)])
        football_first = np.zeros((1, len(ids)))  # a hybrid that prefers football
        football_first[0, ids.index(200)], football_first[0, ids.index(100)] = 5.0, 1.0
        football_first[0, ids.index(250)] = 9.0
        blended = copy.blend_content(football_first, [[101]], matrix)[0]
        assert blended[ids.index(150)] > blended[ids.index(250)]
        assert blended[ids.index(151)] > blended[ids.index(250)]
        assert blended[ids.index(200)] > blended[ids.index(100)]  # known: the hybrid's order
        untouched = copy.blend_content(football_first, [[]], matrix)
        np.testing.assert_array_equal(untouched, football_first)
        sources = copy.content.strongest_sources([101, 201], matrix.content.matrix)
        assert sources[ids.index(150)] == 101 and sources[ids.index(250)] == 201
        loaded = HybridModel.from_bytes(copy.to_bytes())
        assert loaded.content.weight == 1.0 and loaded.content.terms == copy.content.terms
        np.testing.assert_allclose(loaded.content.thresholds, copy.content.thresholds)
        again = loaded.event_matrix(frame.reset_index(drop=True))
        np.testing.assert_allclose(loaded.blend_content(football_first, [[101]], again)[0],
                                   blended, atol=1e-3)
        assert HybridModel.from_bytes(model.to_bytes()).content is None  # none stored: none

    @pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
    def test_corrupt_blob_raises_a_clear_error(self, model, damage):
        blob = bytearray(model.to_bytes())
        if damage == "truncate":
            blob = blob[: len(blob) // 2]
        elif damage == "flip":
            middle = len(blob) // 2
            blob[middle:middle + 64] = bytes(b ^ 0xFF for b in blob[middle:middle + 64])
        elif damage == "garbage":
            blob = bytearray(b"\x80\x04not a model at all" * 10)
        else:
            blob = bytearray()
        with pytest.raises(BeaconError, match="model blob"):
            HybridModel.from_bytes(bytes(blob))

    def test_fold_in_moves_only_that_user_toward_new_interests(self, model, world):
        fan = context(world, 1)
        other = context(world, 3)
        other_before = model.user_vector(other)[0].copy()
        history = world["events"].set_index("id").loc[[200, 201, 202, 203]].reset_index()
        history["type"] = "register"
        before = model.user_vector(fan)
        after = model.fold_in(fan, history, model.config)
        assert after[0].shape == before[0].shape
        events = world["events"].set_index("id").loc[[150, 250]].reset_index()
        matrix = model.event_matrix(events)
        gap_before = model.score(fan, matrix)[1] - model.score(fan, matrix)[0]
        gap_after = model.score(fan, matrix, user_override=after)[1] - \
            model.score(fan, matrix, user_override=after)[0]
        assert gap_after > gap_before + 0.5, (gap_before, gap_after)
        np.testing.assert_array_equal(model.user_vector(other)[0], other_before)
        np.testing.assert_array_equal(model.user_vector(fan)[0], before[0])

    def test_fold_in_many_gives_each_user_what_fold_in_gives_alone(self, model, world):
        events = world["events"].set_index("id")

        def history(ids, kinds):
            frame = events.loc[ids].reset_index()
            frame["type"] = kinds
            return frame

        users = [context(world, k) for k in (1, 2, 3, 4, 5)]
        histories = [history([200, 201, 202, 203], "register"),
                     history([150, 201, 150], ["register", "reject", "register"]),
                     None,  # nothing to learn from: the user's own vector
                     history([202], "impression"),  # weight 0: the same
                     history([250, 200], ["click", "register"])]
        together = model.fold_in_many(users, histories, model.config)
        alone = [model.fold_in(u, h, model.config) for u, h in zip(users, histories)]
        for (vector, bias), (expected, expected_bias) in zip(together, alone):
            np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)
            assert bias == expected_bias
        for k in (2, 3):
            np.testing.assert_array_equal(together[k][0], model.user_vector(users[k])[0])
        assert not np.allclose(together[0][0], model.user_vector(users[0])[0])

    def test_explain_names_the_matching_tokens(self, model, world):
        fan = context(world, 1)
        row = world["events"].set_index("id").loc[150].to_dict() | {"id": 150}
        terms = model.explain(fan, row, top=3)
        assert len(terms) == 3
        assert terms[0][1] >= terms[1][1] >= terms[2][1]
        assert all(isinstance(name, str) and ":" in name for name, _ in terms)
        tokens = {name for name, _ in model.explain(fan, row, top=50)}
        assert {"tag:jazz", "organizer:Blue Note", "category:music"} <= tokens

    def test_explain_many_is_explain_per_row_and_takes_the_callers_tokens(self, model, world):
        from beacon.features import event_tokens

        fan = context(world, 1)
        ids = [int(i) for i in world["events"]["id"].iloc[:3]] + [150]
        rows = [world["events"].set_index("id").loc[i].to_dict() | {"id": i} for i in ids]
        page = model.explain_many(fan, rows, top=50)
        assert page == [model.explain(fan, row, top=50) for row in rows]
        assert model.explain_many(fan, rows, top=50,
                                  tokens=[event_tokens(row) for row in rows]) == page
        # the known answer of one term: the token's vector . the user's vector + its bias
        vec, _ = model.user_vector(fan)
        index = model.event_vocab.index["tag:jazz"]
        jazz = dict(page[-1])["tag:jazz"]
        expected = model.weights["event_tok"][index] @ vec + model.weights["event_tok_bias"][index]
        assert jazz == pytest.approx(float(expected), rel=1e-5)
        # tokens given by the caller are the ones explained (no tokens: only the id and place)
        bare = model.explain_many(fan, rows, top=50, tokens=[[] for _ in rows])
        assert all(not name.startswith(("tag:", "category:", "organizer:"))
                   for terms in bare for name, _ in terms)

    def test_nothing_to_train_on(self, world):
        empty = {**world, "interactions": world["interactions"].iloc[:0]}
        with pytest.raises(BeaconError):
            self.fit(to_training_data(empty))
        only_impressions = {**world, "interactions": world["interactions"].assign(
            type="impression")}
        with pytest.raises(BeaconError):
            self.fit(to_training_data(only_impressions))

    def test_unfitted_model_raises(self, world):
        with pytest.raises(ModelNotFitted):
            HybridModel().user_vector(context(world, 1))


def _world_coattendance(model, world, weight: float):
    """The co-attendance component of a world's registrations (lambda 10) over the model's
    known events."""
    from beacon.model.coattendance import CoAttendance, ease, gram

    inter = world["interactions"]
    reg = inter[inter["type"] == "register"]
    ids = np.sort(np.asarray(model.event_map.to_list(), dtype=np.int64))
    erows = np.searchsorted(ids, reg["event_id"].to_numpy(dtype=np.int64))
    b = ease(gram(reg["user_id"].to_numpy(dtype=np.int64), erows, np.arange(len(ids))), 10.0)
    return CoAttendance(ids, b, weight, 10.0)


def test_coattendance_closed_form_known_answer():
    """G = [[2, 1], [1, 2]], lambda 1: P = [[3, -1], [-1, 3]] / 8, B = I - P diag(1/diag P)
    = [[0, 1/3], [1/3, 0]]."""
    from beacon.model.coattendance import ease, gram

    g = gram(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1]), np.array([0, 1]))
    np.testing.assert_array_equal(g, [[2, 1], [1, 2]])
    np.testing.assert_allclose(ease(g, 1.0), [[0, 1 / 3], [1 / 3, 0]], rtol=1e-6)


def test_coattendance_recency_weighs_a_history_newest_first():
    """Known answer: with recency r the i-th newest of n history events counts
    0.5 ** (i / (r n)); event 0 goes with 2 and event 1 with 3, so whichever of 0 and 1 is
    newer decides, and without recency the stronger pair (0, 2) does."""
    from beacon.model.coattendance import CoAttendance, recency_weights

    np.testing.assert_allclose(recency_weights(4, 0.5), [1, 0.5 ** 0.5, 0.5, 0.5 ** 1.5],
                               rtol=1e-6)
    np.testing.assert_array_equal(recency_weights(3, 0.0), [1, 1, 1])
    ids = np.array([10, 11, 12, 13])
    b = np.zeros((4, 4), dtype=np.float32)
    b[0, 2], b[1, 3] = 1.0, 0.8
    plain, decayed = CoAttendance(ids, b, 0.5, 1.0), CoAttendance(ids, b, 0.5, 1.0, 0.25)
    for history in ([10, 11], [11, 10]):
        assert np.argmax(plain.scores([history], ids)[0][0]) == 2
    assert np.argmax(decayed.scores([[11, 10]], ids)[0][0]) == 3
    assert np.argmax(decayed.scores([[10, 11]], ids)[0][0]) == 2
    # an event listed twice counts at its newest place; unknown events keep theirs
    np.testing.assert_allclose(decayed.scores([[99, 11, 10, 11]], ids)[0][0],
                               [0, 0, 0.5 ** (2 / 0.75), 0.8 * 0.5 ** (1 / 0.75)], rtol=1e-5)
    assert decayed.strongest_source([11, 10], 12) == (10, pytest.approx(0.5 ** (1 / 0.5)))
    assert decayed.strongest_source([11, 10], 13) == (11, pytest.approx(0.8))
    assert decayed.strongest_source([11, 10], 10) is None


def test_coattendance_blend_standardizes_each_part_over_the_candidates():
    from beacon.model.coattendance import blend

    hybrid = np.array([[10.0, 20.0, 30.0, 40.0]])  # another scale than the co-attendance
    co = np.array([[0.4, 0.3, 0.2, 0.1]])
    known = np.array([True, True, True, False])  # the last candidate has no history
    mixed = blend(hybrid, co, known, np.array([True]), 0.5)[0]
    z_hybrid = (hybrid[0] - 25.0) / np.std(hybrid[0])
    z_co = np.array([1.2247449, 0.0, -1.2247449, 0.0])
    np.testing.assert_allclose(mixed, 0.5 * z_hybrid + 0.5 * z_co, rtol=1e-6)
    np.testing.assert_allclose(blend(hybrid, co, known, np.array([True]), 0.0)[0], z_hybrid)


def test_a_fit_reports_its_coattendance_choice_and_stores_the_component_only_when_chosen():
    world = tiny_world()
    config = replace(CONFIG, validation_fraction=0.3, patience=2, epochs=6)
    model = HybridModel.fit(to_training_data(world), config)
    chosen = model.validation["coattendance"]
    assert {row["weight"] for row in chosen["grid"]} >= {0.0, 0.5}
    assert {row["recency"] for row in chosen["grid"]} == {0.0, 0.5, 0.25, 0.12}
    assert chosen["recency"] in (0.0, 0.5, 0.25, 0.12)
    assert (model.coattendance is not None) == (chosen["weight"] > 0)
    off = HybridModel.fit(to_training_data(world), replace(config, coattendance_events=0))
    assert off.coattendance is None and off.validation["coattendance"]["weight"] == 0.0


def test_content_knn_known_answer():
    """Events A [p], B [q], C [p q] trained, N [p q] new: equal idf, so N is C (cosine 1)
    and 1/sqrt(2) from A and B. Every trained event a neighbour: a history of A and B
    scores sqrt(2 / sqrt(2)); with one neighbour (C), A and B no longer count."""
    from beacon.model import content_part
    from beacon.model.content_part import ContentPart

    frame = pd.DataFrame({"id": [1, 2, 3, 4], "category": [None] * 4,
                          "tags": [["p"], ["q"], ["p", "q"], ["p", "q"]],
                          "organizer": [None] * 4})
    part = ContentPart.build(frame, 0.5, np.array([0, 1, 2]))
    rows = part.rows(frame[frame["id"] == 4])
    assert part.thresholds[3] == 0.0  # fewer trained events than NEIGHBOURS: all count
    scores, _ = part.scores([[1, 2], [3]], rows)
    np.testing.assert_allclose(scores[:, 0], [np.sqrt(np.sqrt(2.0)), 1.0], rtol=1e-6)
    one = ContentPart.build(frame, 0.5, np.array([0, 1, 2]), neighbours=1)
    assert one.thresholds[3] == pytest.approx(1.0)
    assert one.rows(frame.assign(id=[5, 6, 7, 8])).thresholds[3] == pytest.approx(1.0)
    profile = ContentPart.build(frame, 0.5, np.array([0, 1, 2]), neighbours=0)
    assert profile.thresholds[3] == 0.0 and content_part.NEIGHBOUR_CHOICES[-1] == 0
    from beacon.model.serialization import _content

    kept = {"weight": 0.5, "terms": profile.terms, "trained": profile.trained,
            "neighbours": profile.neighbours}
    arrays = {"content_idf": profile.idf, "content_event_ids": profile.event_ids,
              "content_indptr": profile.matrix.indptr, "content_indices": profile.matrix.indices,
              "content_data": profile.matrix.data, "content_pool": profile.pool,
              "content_thresholds": profile.thresholds}
    assert _content(dict(arrays), {"content": kept}).neighbours == 0
    older = {k: v for k, v in kept.items() if k != "neighbours"}  # a blob before the choice
    assert _content(dict(arrays), {"content": older}).neighbours == 50
    scores, _ = one.scores([[1, 2], [3]], one.rows(frame[frame["id"] == 4]))
    np.testing.assert_allclose(scores[:, 0], [0.0, 1.0], rtol=1e-6)
    assert one.shared_terms(3, one.rows(frame[frame["id"] == 4]).term_columns(0)) == ["p", "q"]


def test_content_blend_standardizes_content_over_the_cold_candidates():
    from beacon.model.content_part import blend_parts

    hybrid = np.array([[1.0, 2.0, 3.0, 4.0]])
    content = np.array([[0.0, 0.0, 5.0, 1.0]])
    cold = np.array([False, False, True, True])
    hybrid_part, content_part = blend_parts(hybrid, content, cold, np.array([True]), 0.5)
    z_hybrid = (hybrid[0] - 2.5) / np.std(hybrid[0])
    np.testing.assert_allclose(hybrid_part[0], z_hybrid * [1, 1, 0.5, 0.5])
    np.testing.assert_allclose(content_part[0], [0, 0, 0.5, -0.5])
    none = blend_parts(hybrid, content, cold, np.array([False]), 0.5)
    np.testing.assert_allclose(none[0][0], z_hybrid)
    np.testing.assert_allclose(none[1][0], 0.0)


def test_a_fit_reports_its_content_choice_and_stores_the_component_only_when_chosen(
        monkeypatch):
    from beacon.model import content_fit

    world = tiny_world()
    config = replace(CONFIG, validation_fraction=0.3, patience=2, epochs=6)
    monkeypatch.setattr(content_fit, "MIN_COLD_EVENTS", 2)
    monkeypatch.setattr(content_fit, "MIN_COLD_USERS", 2)
    model = HybridModel.fit(to_training_data(world), config)
    chosen = model.validation["content"]
    assert [row["weight"] for row in chosen["grid"]][:2] == [0.0, 0.05]
    assert {row["neighbours"] for row in chosen["grid"]} == {50, 0}
    assert chosen["events"] == 4  # the newest fifth of the 16 events with history
    assert 0 < chosen["probe_events"] <= 16 - 4  # the probe never trained on the cold four
    assert (model.content is not None) == (chosen["weight"] > 0)
    if model.content is not None:
        assert chosen["blend_ndcg"] > chosen["hybrid_ndcg"]
        assert model.content.neighbours == chosen["neighbours"]
    off = HybridModel.fit(to_training_data(world), replace(config, content_blend=False))
    assert off.content is None and "content" not in off.validation


def test_the_probe_sample_keeps_whole_users_within_its_cap():
    from beacon.model.content_fit import probe_sample

    rows = pd.DataFrame({"urow": np.repeat([0, 1, 2, 3], [5, 3, 4, 2]), "erow": np.arange(14)})
    assert probe_sample(rows, seed=1, cap=14) is rows
    sample = probe_sample(rows, seed=1, cap=8)
    sizes = sample.groupby("urow").size()
    assert len(sample) <= 8 and len(sizes) >= 1
    assert (sizes == rows.groupby("urow").size()[sizes.index]).all()  # never part of a user


class TestHybridModel(ModelContract):
    def test_epoch_reports_and_counts(self, world):
        reports: list[EpochReport] = []
        config = CONFIG.with_overrides(epochs=5)
        model = HybridModel.fit(to_training_data(world), config, callback=reports.append)
        assert [r.epoch for r in reports] == [1, 2, 3, 4, 5]
        assert all(r.total_epochs == 5 and np.isfinite(r.loss) for r in reports)
        assert len(model.loss_history) == 5
        assert model.counts["users"] == 2 * N_FANS
        assert model.counts["events"] == 2 * N_OLD  # the brand-new events have no id vector
        assert not model.event_map.row(150) >= 0
        assert model.device == "cpu"

    def test_early_stopping_uses_a_time_split(self, world):
        reports: list[EpochReport] = []
        config = CONFIG.with_overrides(epochs=30, validation_fraction=0.25, patience=2)
        model = HybridModel.fit(to_training_data(world), config, callback=reports.append)
        validated = [r for r in reports if r.phase == "train"]
        assert validated and all(r.val_metric is not None for r in validated)
        assert 1 <= model.validation["best_epoch"] <= len(validated)
        refit = [r for r in reports if r.phase == "refit"]
        assert len(refit) == model.validation["best_epoch"]

    def test_training_data_from_the_database(self, db, world):
        insert_world(db, world)
        data = load_training_data(url=db)
        assert len(data.interactions) == len(world["interactions"])
        assert data.interactions["occurred_at"].dtype == np.int64
        assert set(data.interactions["type"].astype(str)) == {"view", "register"}
        first = world["interactions"]["occurred_at"].min()
        assert data.interactions["occurred_at"].iloc[0] == _epoch(first)
        jazz = data.events.set_index("id").loc[150]
        assert sorted(jazz["tags"]) == ["jazz", "live"]
        assert jazz["start_time"] == pd.Timestamp(world["events"].set_index("id")
                                                  .loc[150, "start_time"])
        assert sorted(data.users.set_index("id").loc[1, "tags"]) == ["jazz"]
        cut = load_training_data(before=NOW - timedelta(days=8), url=db)
        assert 0 < len(cut.interactions) < len(data.interactions)
        assert (cut.interactions["occurred_at"] < _epoch(NOW - timedelta(days=8))).all()
        model = HybridModel.fit(data, CONFIG.with_overrides(epochs=20))
        ranked = self.ranked(model, world, context(world, 2), [150, 250])
        assert ranked[0] == 150

    def test_config_round_trip_and_validation(self):
        config = ModelConfig()
        assert ModelConfig.from_dict(config.to_dict()) == config
        assert config.with_overrides(dim=8).dim == 8
        with pytest.raises(BeaconError, match="dimension"):
            ModelConfig.from_dict({"dimension": 8})
        with pytest.raises(BeaconError, match="dim"):
            ModelConfig.from_dict({"dim": 0})
        with pytest.raises(BeaconError, match="loss"):
            config.with_overrides(loss="warp-ish")
        with pytest.raises(BeaconError, match="type_weights"):
            config.with_overrides(type_weights={"like": 1.0})
        assert config.weight("reject") < 0 and config.weight("unregister") < 0
        assert config.weight("register") > config.weight("favorite") > config.weight("click")
        assert config.weight("impression") == 0


def test_row_tokens_match_the_vectorized_tokens():
    """Reasons and fold-ins build tokens row by row; big frames column-wise: same tokens."""
    from beacon.features import event_token_table, event_tokens

    events = tiny_world()["events"].copy()
    odd = events.iloc[:4].copy()
    odd["id"] = [900, 901, 902, 903]
    odd["category"] = [None, "  Live   Music ", "", "MUSIC"]
    odd["tags"] = [None, ["Jazz", "jazz", " "], [], ["a b"]]
    odd["organizer"] = [None, "Blue  Note", "x", None]
    odd["latitude"] = [None, -33.87, 0.0, 89.9]
    odd["longitude"] = [None, 151.21, -0.1, -179.9]
    odd["price"] = [None, 0.0, 19.99, 50.0]
    odd["timezone"] = ["Not/AZone", "Australia/Sydney", None, "America/New_York"]
    frame = pd.concat([events, odd], ignore_index=True)
    table = event_token_table(frame)
    for position, record in enumerate(frame.to_dict("records")):
        expected = sorted(table.loc[table["row"] == position, "token"])
        assert sorted(event_tokens(record)) == expected, position
    assert "tag:jazz" in event_tokens(frame.iloc[-3].to_dict())
    assert "organizer:Blue Note" in event_tokens(frame.iloc[-3].to_dict())
    assert "price:<20" in event_tokens(frame.iloc[-2].to_dict())


class TestHybridModelBprHardNegatives(ModelContract):
    """The other loss and sampling paths must give the same known answers."""

    config = CONFIG.with_overrides(loss="bpr", hard_negatives=0.25, negative_sampling="uniform")


class TestHybridModelAliveNegatives(ModelContract):
    """The former default sampler (every event not started yet) keeps the known answers."""

    config = CONFIG.with_overrides(negative_sampling="alive")


@pytest.mark.parametrize("mode", ["published", "alive"])
def test_published_negatives_leave_untouched_events_alone(mode):
    """"published" draws negatives among the events alive at the interaction's time that
    somebody had touched by then: the brand-new events (150, 250), which a cold-start model
    must rank, are (almost) never taught to be negatives; "alive" draws them ~2/18 of the time."""
    from beacon.model import _pairs, _prepare, _Trainer

    data = to_training_data(tiny_world())
    config = CONFIG.with_overrides(negative_sampling=mode)
    prep = _prepare(data, config)
    pairs = _pairs(prep.rows)
    trainer = _Trainer(prep, pairs, config, "cpu")
    t = pairs["t"].to_numpy(dtype=np.int64)
    negatives = np.concatenate([trainer.sample_negatives(t, 8) for _ in range(20)])
    t = np.tile(t, 20)[:, None]
    ids = prep.events["id"].to_numpy()[negatives]
    assert (prep.event_start[negatives] > t).all()  # alive at t, either way
    new_share = np.isin(ids, [150, 250]).mean()
    first = pairs.groupby("erow")["t"].min().reindex(range(len(prep.events))).to_numpy()
    touched_share = (first[negatives] <= t).mean()
    if mode == "published":
        assert new_share < 0.01 and touched_share > 0.97, (new_share, touched_share)
    else:
        assert new_share > 0.05, new_share


def test_touched_negatives_are_alive_and_never_an_untouched_event():
    """"touched" draws among the events alive at t that somebody touched at any time in the
    training data: the brand-new events (150, 250) never, the touched ones in proportion."""
    from beacon.model import _pairs, _prepare, _Trainer

    data = to_training_data(tiny_world())
    config = CONFIG.with_overrides(negative_sampling="touched")
    prep = _prepare(data, config)
    pairs = _pairs(prep.rows)
    trainer = _Trainer(prep, pairs, config, "cpu")
    t = pairs["t"].to_numpy(dtype=np.int64)
    negatives = np.concatenate([trainer.sample_negatives(t, 8) for _ in range(20)])
    assert (prep.event_start[negatives] > np.tile(t, 20)[:, None]).all()
    ids = prep.events["id"].to_numpy()[negatives]
    assert not np.isin(ids, [150, 250]).any()
    assert len(np.unique(negatives)) == pairs["erow"].nunique()


def test_a_token_only_new_events_carry_is_neutral():
    """A word that no trained event carries (only the brand-new event 150 has it) gets no
    random vector and no penalty: it is exported as zeros, so the new event scores exactly as
    the same event without the word."""
    world = tiny_world()
    events = world["events"]
    events["tags"] = [tags + ["premiere"] if eid == 150 else tags
                      for eid, tags in zip(events["id"], events["tags"])]
    model = HybridModel.fit(to_training_data(world), CONFIG.with_overrides(
        negative_sampling="alive"))
    row = model.event_vocab.index["tag:premiere"] if "tag:premiere" in model.event_vocab.index \
        else None
    assert row is not None
    assert not model.weights["event_tok"][row].any() and model.weights["event_tok_bias"][row] == 0
    with_word = model.event_matrix(events[events["id"] == 150])
    plain = events[events["id"] == 150].copy()
    plain["tags"] = [["jazz", "live"]]
    without = model.event_matrix(plain)
    assert np.allclose(with_word.vectors, without.vectors) and \
        np.allclose(with_word.bias, without.bias)


def test_per_user_validation_holds_out_each_users_latest_positives():
    """validation_split="user": every user with three or more positives keeps their latest
    tenth (at least one) for early stopping, ranked among the events not started at their own
    split time; the curve is recorded and the refit uses the epoch it chose."""
    from beacon.model import _prepare
    from beacon.model.data import _user_split

    data = to_training_data(tiny_world())
    config = CONFIG.with_overrides(validation_split="user", validation_fraction=0.2,
                                   patience=2, epochs=6)
    prep = _prepare(data, config)
    is_val, user_split = _user_split(prep.rows, 0.2)
    positive = prep.rows["weight"].to_numpy() > 0
    held = prep.rows[is_val & positive].groupby("urow").size()
    count = prep.rows[positive].groupby("urow").size()
    assert (held == np.maximum(1, np.round(count * 0.2))).all() and len(held) == len(count)
    first_held = prep.rows[is_val & positive].groupby("urow")["t"].min()
    assert (user_split[first_held.index.to_numpy()] == first_held.to_numpy()).all()
    kept = prep.rows[~is_val & positive].groupby("urow")["t"].max()
    assert (kept < user_split[kept.index.to_numpy()]).all()
    model = HybridModel.fit(data, config)
    assert model.validation["split"] == "user" and model.validation["best_epoch"] >= 1
    refit = [e for e in model.loss_history if e["phase"] == "refit"]
    assert len(refit) == model.validation["best_epoch"]


# --------------------------------------------------------------------------- the place term


def place_world() -> dict[str, pd.DataFrame]:
    """Every user registers for events in their own city only; the event features say nothing
    about the city except the place itself (same category, tags, organizer, price)."""
    cities = {"Berlin": (52.52, 13.40), "Paris": (48.85, 2.35)}
    users, events, inter = [], [], []
    uid = 0
    for name, (lat, lon) in cities.items():
        for _ in range(10):
            uid += 1
            users.append({"id": uid, "email": f"p{uid}@example.com", "latitude": lat + 0.01,
                          "longitude": lon - 0.01, "city": name, "tags": []})
    eid = 1000
    for name, (lat, lon) in cities.items():
        for j in range(12):
            eid += 1
            start = NOW + timedelta(days=1 + j % 6, hours=j)
            events.append({"id": eid, "event_id": f"e{eid}", "category": "music",
                           "tags": ["live"], "organizer": "Same Org", "city": name,
                           "latitude": lat + 0.02 * (j % 3), "longitude": lon + 0.01 * (j % 2),
                           "price": 10.0, "start_time": start,
                           "end_time": start + timedelta(hours=2), "timezone": "UTC"})
    rng = np.random.default_rng(3)
    for u in users:
        own = [e["id"] for e in events if e["city"] == u["city"]]
        for n, e in enumerate(rng.choice(own, size=6, replace=False)):
            inter.append((u["id"], int(e), "register",
                          NOW - timedelta(days=8 - n, hours=int(u["id"]))))
    return {"users": pd.DataFrame(users), "events": pd.DataFrame(events),
            "interactions": pd.DataFrame(inter, columns=["user_id", "event_id", "type",
                                                         "occurred_at"])}


def twin_events(a_city: str, a_place: tuple, b_city: str, b_place: tuple) -> pd.DataFrame:
    """Two brand-new events that differ only in where they are."""
    start = NOW + timedelta(days=3)
    base = {"category": "music", "tags": ["live"], "organizer": "Same Org", "price": 10.0,
            "start_time": pd.Timestamp(start), "end_time": pd.Timestamp(start + timedelta(hours=2)),
            "timezone": "UTC"}
    return pd.DataFrame([
        {**base, "id": 5001, "event_id": "a", "city": a_city, "latitude": a_place[0],
         "longitude": a_place[1]},
        {**base, "id": 5002, "event_id": "b", "city": b_city, "latitude": b_place[0],
         "longitude": b_place[1]},
    ])


@pytest.fixture(scope="module")
def place_model():
    return HybridModel.fit(to_training_data(place_world()), CONFIG.with_overrides(epochs=30))


def test_the_place_term_is_learned_and_prefers_the_users_own_city(place_model):
    assert place_model.has_place_term
    berliner = UserContext(user_id=None, latitude=52.52, longitude=13.40, city="Berlin")
    parisian = UserContext(user_id=None, latitude=48.85, longitude=2.35, city="Paris")
    events = twin_events("Berlin", (52.53, 13.41), "Paris", (48.86, 2.34))
    matrix = place_model.event_matrix(events)
    # cold events, no interest tags: only the place tells them apart
    assert place_model.score(berliner, matrix)[0] > place_model.score(berliner, matrix)[1] + 0.3
    assert place_model.score(parisian, matrix)[1] > place_model.score(parisian, matrix)[0] + 0.3
    # the same holds for a known user, and for a matrix narrowed to some rows (as serving does)
    known = context(place_world(), 1)
    narrowed = replace(matrix, vectors=matrix.vectors[[1]], bias=matrix.bias[[1]],
                       event_ids=matrix.event_ids[[1]], known=matrix.known[[1]])
    np.testing.assert_allclose(place_model.score(known, narrowed),
                               place_model.score(known, matrix)[[1]], rtol=1e-6)


def test_nearer_beats_farther_within_a_city_that_is_not_in_training(place_model):
    user = UserContext(user_id=None, latitude=40.71, longitude=-74.00, city="New York")
    events = twin_events("New York", (40.72, -74.01), "New York", (41.20, -73.50))
    scores = place_model.score(user, place_model.event_matrix(events))
    assert scores[0] > scores[1]


def test_missing_places_do_not_crash_and_stay_neutral(place_model):
    events = twin_events("Berlin", (52.53, 13.41), "Paris", (48.86, 2.34))
    matrix = place_model.event_matrix(events)
    homeless = UserContext(user_id=None)
    scores = place_model.score(homeless, matrix)
    assert np.isfinite(scores).all()
    place = place_model.place_scores(homeless, matrix)
    np.testing.assert_allclose(place, 0.0)  # nothing about place to go on: no place term
    # an event with no place at all: its place term is neutral, between the near and far twins
    blank = events.copy()
    blank.loc[0, ["latitude", "longitude"]] = np.nan
    blank.loc[0, "city"] = None
    berliner = UserContext(user_id=None, latitude=52.52, longitude=13.40, city="Berlin")
    near, far = place_model.place_scores(berliner, matrix)
    nowhere = place_model.place_scores(berliner, place_model.event_matrix(blank))[0]
    assert nowhere == 0.0 and far < nowhere < near
    assert np.isfinite(place_model.score(berliner, place_model.event_matrix(blank))).all()
    # half a place (city without coordinates, coordinates without city) works too
    half = events.copy()
    half.loc[0, ["latitude", "longitude"]] = np.nan
    half.loc[1, "city"] = None
    assert np.isfinite(place_model.score(berliner, place_model.event_matrix(half))).all()
    for row in (blank.iloc[0].to_dict(), half.iloc[1].to_dict()):
        assert all(np.isfinite(v) for _, v in place_model.explain(homeless, row, top=50))
    no_place_user = UserContext(user_id=1, city=None)
    assert np.isfinite(place_model.score(no_place_user, matrix)).all()


def test_explain_names_the_place_term(place_model):
    berliner = UserContext(user_id=None, latitude=52.52, longitude=13.40, city="Berlin")
    near = twin_events("Berlin", (52.53, 13.41), "Paris", (48.86, 2.34)).iloc[0].to_dict()
    terms = dict(place_model.explain(berliner, near, top=50))
    assert terms.get("geo:home", 0) > 0  # "near your home (1.2 km)" on the recommend side
    homeless = UserContext(user_id=None)
    assert "geo:home" not in dict(place_model.explain(homeless, near, top=50))


def test_a_blob_from_before_the_place_term_still_loads_and_scores_the_same(place_model):
    import io
    import json

    with np.load(io.BytesIO(place_model.to_bytes()), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for key in ("place_w", "place_center", "contrast_lat", "contrast_lon"):
        arrays.pop(key)
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    meta.pop("contrast_cities")
    for key in ("locality", "smoothing", "min_epochs"):
        meta["config"].pop(key)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    old = HybridModel.from_bytes(buffer.getvalue())
    assert not old.has_place_term
    events = twin_events("Berlin", (52.53, 13.41), "Paris", (48.86, 2.34))
    user = UserContext(user_id=1, latitude=52.52, longitude=13.40, city="Berlin")
    matrix = old.event_matrix(events)
    expected = matrix.vectors @ old.user_vector(user)[0] + matrix.bias
    np.testing.assert_allclose(old.score(user, matrix), expected, rtol=1e-6)
    history = events.assign(type="register")
    assert np.isfinite(old.fold_in(user, history)[0]).all()
    assert old.explain(user, events.iloc[0].to_dict(), top=3)


def test_fold_in_with_the_place_term(place_model):
    user = context(place_world(), 1)
    events = twin_events("Berlin", (52.53, 13.41), "Paris", (48.86, 2.34))
    vector, bias = place_model.fold_in(user, events.assign(type="register"))
    assert np.isfinite(vector).all()
    loaded = HybridModel.from_bytes(place_model.to_bytes())
    np.testing.assert_array_equal(loaded.fold_in(user, events.assign(type="register"))[0],
                                  vector)


def test_locality_off_trains_no_place_term():
    model = HybridModel.fit(to_training_data(place_world()),
                            CONFIG.with_overrides(epochs=3, locality=False))
    assert not model.has_place_term


# --------------------------------------------------------------------------- early stopping


def test_best_epoch_rules():
    from beacon.model import _best_epoch

    curve = [0.10, 0.30, 0.20, 0.29, 0.31, 0.25]
    assert _best_epoch(curve, half=0) == 5
    assert _best_epoch(curve, half=0, min_delta=0.02) == 2  # 0.31 is not 0.02 above 0.30
    assert _best_epoch(curve, half=0, min_epochs=3) == 5
    assert _best_epoch(curve[:2], half=0, min_epochs=4) == 2  # fewer epochs ran than asked
    # one lucky epoch: the raw curve takes it, the curve smoothed over 3 epochs does not
    spiky = [0.10, 0.35, 0.10, 0.25, 0.26, 0.25, 0.10]
    assert _best_epoch(spiky, half=0) == 2
    assert _best_epoch(spiky, half=1) == 5


def test_early_stopping_settings_round_trip_and_apply():
    world = tiny_world()
    config = CONFIG.with_overrides(epochs=12, validation_fraction=0.25, patience=1,
                                   min_epochs=6, smoothing=3, min_delta=0.001)
    assert ModelConfig.from_dict(config.to_dict()) == config
    for name, bad in (("min_epochs", 0), ("smoothing", 0), ("min_delta", -1.0)):
        with pytest.raises(BeaconError, match=name):
            config.with_overrides(**{name: bad})
    reports: list[EpochReport] = []
    model = HybridModel.fit(to_training_data(world), config, callback=reports.append)
    validated = [r for r in reports if r.phase == "train"]
    assert len(validated) >= 6
    assert 6 <= model.validation["best_epoch"] <= len(validated)


def test_events_frame_for_some_ids_reads_only_their_tags(db):
    world = tiny_world()
    from data_access.training_data import load_events_frame

    insert_world(db, world)
    from data_access.db import get_engine

    frame = load_events_frame(get_engine(db), ids=[150, 200, 999])
    assert frame["id"].tolist() == [150, 200]
    assert [sorted(t) for t in frame["tags"]] == [["jazz", "live"], ["football"]]
    after = load_events_frame(get_engine(db), upcoming_after=NOW + timedelta(days=11))
    assert sorted(after["id"].tolist()) == [150, 250]
    assert {int(i): sorted(t) for i, t in zip(after["id"], after["tags"])} == {
        150: ["jazz", "live"], 250: ["football"]}


def test_validation_scores_in_blocks_and_samples_users_at_scale(monkeypatch):
    """Early stopping must fit in memory at millions of rows: validation users are capped to a
    fixed sample and scored in blocks; blocks (and place features computed per block) give the
    same metric as one dense pass."""
    import beacon.model.validator as model_module

    world = place_world()
    data = to_training_data(world)
    config = ModelConfig(dim=8, epochs=4, patience=4, refit=False, seed=3,
                         validation_fraction=0.3)

    def validation_curve() -> tuple[list[float], dict]:
        reports: list[EpochReport] = []
        fitted = HybridModel.fit(data, config, callback=reports.append)
        return [r.val_metric for r in reports if r.phase == "train"], fitted.validation

    dense, dense_info = validation_curve()
    monkeypatch.setattr(model_module, "VALIDATION_BLOCK", 1)
    monkeypatch.setattr(model_module, "VALIDATION_PLACE_CACHE_CELLS", 0)
    blocked, _ = validation_curve()
    assert dense and blocked == pytest.approx(dense, abs=1e-6)

    assert dense_info["users"] >= 2
    monkeypatch.setattr(model_module, "VALIDATION_MAX_USERS", 1)
    sampled, sampled_info = validation_curve()
    assert sampled_info["users"] == 1 and all(0.0 <= m <= 1.0 for m in sampled)
