"""recommend() and debug_filter(): the fallback chain, exclusions, one code path, the CLI."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from beacon.errors import UnknownUser
from beacon.filters import FilterParams
from beacon.recommend import debug_filter, recommend
from tests.test_cli import run_cli
from tests.test_filters import seed
from tests.auth_support import ADMIN

UTC = timezone.utc
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
#: events start at 06:00 UTC (07:00-08:00 in Berlin, 16:00-17:00 in Sydney), whatever the hour
#: the tests run: from NOW's own hour a three-hour event crossed local midnight between 20:00
#: and 23:00 UTC, and the 00:00-23:59 windows and the date filters below dropped it
DAY0 = NOW.replace(hour=6)
BERLIN = (52.52, 13.405)


def _event(key: str, days: float, category: str, tags=(), organizer=None, km_east=0.0, **kw):
    return {
        "event_id": key, "title": kw.pop("title", f"{category} night {key}"), "category": category,
        "tags": tags, "organizer": organizer, "city": "Berlin",
        "latitude": BERLIN[0], "longitude": BERLIN[1] + km_east / 67.8,
        "start": DAY0 + timedelta(days=days), "end": DAY0 + timedelta(days=days, hours=3),
        "timezone": "Europe/Berlin", "price": kw.pop("price", 10.0), **kw,
    }


def world() -> dict:
    """Two tastes (jazz, techno), past events with registrations, upcoming events of both."""
    users = [{"email": f"jazz{i}@example.com", "latitude": BERLIN[0], "longitude": BERLIN[1],
              "city": "Berlin", "tags": ("jazz",)} for i in range(4)]
    users += [{"email": f"techno{i}@example.com", "latitude": BERLIN[0], "longitude": BERLIN[1],
               "city": "Berlin", "tags": ("techno",)} for i in range(4)]
    users += [{"email": "new-jazz@example.com", "latitude": BERLIN[0], "longitude": BERLIN[1],
               "city": "Berlin", "tags": ("jazz",)},
              {"email": "nobody@example.com"}]
    events = []
    interactions = []
    for k in range(6):
        events.append(_event(f"past-jazz-{k}", -20 + k, "music", ("jazz",), "Blue Note"))
        events.append(_event(f"past-techno-{k}", -20 + k, "music", ("techno",), "Berghain"))
        for i in range(4):
            interactions.append({"email": f"jazz{i}@example.com", "event_id": f"past-jazz-{k}",
                                 "type": "register", "at": NOW - timedelta(days=25 - k, hours=i)})
            interactions.append({"email": f"techno{i}@example.com", "event_id": f"past-techno-{k}",
                                 "type": "register", "at": NOW - timedelta(days=25 - k, hours=i)})
    for k in range(4):
        events.append(_event(f"jazz-{k}", 2 + k, "music", ("jazz",), "Blue Note", km_east=k))
        events.append(_event(f"techno-{k}", 2 + k, "music", ("techno",), "Berghain", km_east=k))
    # recent registrations make upcoming events popular (jazz-0 most, then techno-1)
    for i in range(4):
        interactions.append({"email": f"techno{i}@example.com", "event_id": "jazz-0",
                             "type": "register", "at": NOW - timedelta(days=1, minutes=i)})
    for i in range(2):
        interactions.append({"email": f"jazz{i}@example.com", "event_id": "techno-1",
                             "type": "register", "at": NOW - timedelta(days=1, minutes=i)})
    return seed(users=users, events=events, interactions=interactions)


def _train_global():
    from beacon import versions
    from beacon.config import ModelConfig
    from beacon.training import train

    config = ModelConfig(dim=8, epochs=4, batch_size=64, negatives=4, patience=0, refit=False,
                         device="cpu", learning_rate=0.05)
    result = train(scope="global", force=True, trigger="cli", config=config, actor=ADMIN)
    assert result.status == "trained", result.reason
    versions.clear_cache()
    return result.model_version


# --------------------------------------------------------------------------- popularity level


def test_popularity_fallback_without_a_model(db: str) -> None:
    world()
    result = recommend("nobody@example.com", FilterParams(), top=3, now=NOW)
    assert result.source == "popularity" and result.model_version is None
    assert [r.event_id for r in result.items][:2] == ["jazz-0", "techno-1"]
    assert all(r.source == "popularity" for r in result.items)
    assert result.items[0].reason == "popular now: 4 registrations this week"
    assert [r.rank for r in result.items] == [1, 2, 3]
    assert result.items[0].local_start.utcoffset() is not None
    assert str(result.items[0].local_start.tzinfo) == "Europe/Berlin"
    # with a home, popularity is "nearby" and the distance comes along
    near = recommend("jazz2@example.com", FilterParams(), top=2, now=NOW)
    assert near.items[0].event_id == "jazz-0"
    assert near.items[0].reason == "popular nearby: 4 registrations this week"
    assert near.items[0].distance_km == pytest.approx(0.0, abs=0.01)


def test_registered_events_are_excluded_until_unregistered(db: str) -> None:
    world()
    seed(interactions=[
        {"email": "nobody@example.com", "event_id": "jazz-0", "type": "register",
         "at": NOW - timedelta(hours=5)},
        {"email": "nobody@example.com", "event_id": "techno-1", "type": "register",
         "at": NOW - timedelta(hours=5)},
        {"email": "nobody@example.com", "event_id": "techno-1", "type": "unregister",
         "at": NOW - timedelta(hours=4)},
    ])
    result = recommend("nobody@example.com", FilterParams(), top=20, now=NOW)
    ids = [r.event_id for r in result.items]
    assert "jazz-0" not in ids and "techno-1" in ids
    debug = {e.event_id: e for e in debug_filter("nobody@example.com", now=NOW).events}
    assert debug["jazz-0"].failed_stage == "not registered"
    assert debug["jazz-0"].reason == "already registered"


def test_a_rejected_event_never_comes_back(db: str) -> None:
    world()
    seed(interactions=[{"email": "nobody@example.com", "event_id": "jazz-0", "type": "reject",
                        "at": NOW - timedelta(hours=2)}])
    result = recommend("nobody@example.com", FilterParams.parse(reject="techno-1,ghost"),
                       top=50, now=NOW)
    ids = {r.event_id for r in result.items}
    assert ids and not ids & {"jazz-0", "techno-1"}
    assert result.unknown_rejects == ("ghost",)
    debug = {e.event_id: e for e in debug_filter(
        "nobody@example.com", FilterParams.parse(reject="techno-1"), now=NOW).events}
    assert (debug["jazz-0"].failed_stage, debug["jazz-0"].reason) == ("not rejected", "rejected earlier")
    assert debug["techno-1"].reason == "rejected"


def test_stage_counts_are_monotone_and_match_debug_filter(db: str) -> None:
    world()
    params = FilterParams.parse(max_km=2.5, reject="jazz-1")
    result = recommend("jazz1@example.com", params, top=50, now=NOW)
    debug = debug_filter("jazz1@example.com", params, now=NOW)
    counts = [s.remaining for s in debug.stages]
    assert counts[0] == len(debug.events) == 8  # the past events are not candidates
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert [s.remaining for s in result.stages] == counts
    assert counts[-1] == sum(e.passed for e in debug.events) == len(result.items)
    assert [r.event_id for r in result.items] == [e.event_id for e in debug.passed]
    assert [r.score for r in result.items] == pytest.approx([e.score for e in debug.passed])


def test_unknown_user(db: str) -> None:
    with pytest.raises(UnknownUser, match="ghost@example.com"):
        recommend("ghost@example.com", FilterParams(), now=NOW)
    with pytest.raises(UnknownUser):
        debug_filter("ghost@example.com", FilterParams(), now=NOW)


def test_a_broken_model_falls_back_to_popularity(db: str) -> None:
    from beacon import versions
    from data_access import models_store as store

    world()
    version = store.insert_version(scope="global", blob=b"not a model", fingerprint="f")
    store.activate(version)
    versions.clear_cache()
    result = recommend("jazz0@example.com", FilterParams(), top=3, now=NOW)
    assert result.source == "popularity"
    assert result.items


# --------------------------------------------------------------------------- model levels


def test_fallback_chain_global_features_personal(db: str) -> None:
    from beacon import versions
    from beacon.training import train

    world()
    version = _train_global()

    known = recommend("jazz0@example.com", FilterParams(), top=4, now=NOW)
    assert known.source == "global" and known.model_version == version
    assert all(r.source == "global" and r.reason for r in known.items)
    assert known.items[0].event_id.startswith("jazz-")

    cold = recommend("new-jazz@example.com", FilterParams(), top=4, now=NOW)
    assert cold.source == "features" and cold.model_version == version
    assert cold.items[0].event_id.startswith("jazz-")

    folded = train(scope="user", user="jazz0@example.com", trigger="cli", actor=ADMIN)
    assert folded.status == "trained", folded.reason
    versions.clear_cache()
    personal = recommend("jazz0@example.com", FilterParams(), top=4, now=NOW)
    assert personal.source == "personal" and personal.model_version == folded.model_version
    assert all(r.source == "personal" for r in personal.items)
    # other users are untouched by one user's fold-in
    assert recommend("jazz1@example.com", FilterParams(), top=4, now=NOW).source == "global"
    # filters apply at every level
    rejected = recommend("jazz0@example.com", FilterParams.parse(reject=personal.items[0].event_id),
                         top=10, now=NOW)
    assert personal.items[0].event_id not in {r.event_id for r in rejected.items}


def test_reasons_speak_only_the_truth(db: str) -> None:
    from beacon.reasons import humanize
    from data_access.catalog import UserHistory, user_by_email

    world()
    user = user_by_email("jazz2@example.com")  # jazz0 and 1 also chose techno-1
    plain = UserHistory(user_id=user.id)
    with_history = UserHistory(user_id=user.id, organizers=frozenset({"Blue Note"}))
    args = (None, "", None, NOW)
    assert humanize("organizer:Blue Note", user, with_history, *args) == \
        "organizer you registered with before: Blue Note"
    assert humanize("organizer:Blue Note", user, plain, *args) == "popular with people like you"
    assert humanize("tag:jazz", user, plain, *args) == "matches your interest: jazz"
    assert humanize("tag:techno", user, plain, *args) == "popular with people like you"
    went = UserHistory(user_id=user.id, tags=frozenset({"Techno"}), categories=frozenset({"Club"}))
    assert humanize("tag:techno", user, went, *args) == "like events you registered for: techno"
    assert humanize("category:club", user, went, *args) == "like events you registered for: club"
    assert humanize("category:club", user, plain, *args) == "popular with people like you"
    assert humanize("category:club", user, went, None, "", None, NOW, False) == \
        "like events you registered for: club"
    assert humanize("category:theatre", user, went, None, "", None, NOW, False) is None
    assert humanize("geo:52.5,13.0", user, plain, 1.234, "home", None, NOW) == \
        "near your home (1.2 km)"
    assert humanize("geo:home", user, plain, 6388.7, "home", None, NOW) is None  # not "near"
    assert humanize("geo:home", user, plain, None, "home", None, NOW) is None
    friday = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    assert humanize("time:evening", user, plain, None, "", friday,
                     datetime(2026, 11, 23, 9, tzinfo=UTC)) == "this Friday evening"
    # the history a request reads really carries the organizers registered with
    from data_access.catalog import user_history

    assert user_history(user.id).organizers == frozenset({"Blue Note"})


def test_coattendance_ranks_up_and_says_so_in_plain_words(db: str) -> None:
    """A model whose co-attendance component says people who went to past-jazz-0 went to
    techno-2: a jazz fan who went to past-jazz-0 gets techno-2 first, and its reason names
    the event; without the component the same model ranks jazz first."""
    import numpy as np
    from sqlalchemy import select

    from beacon import versions
    from beacon.model import HybridModel
    from beacon.model.coattendance import CoAttendance
    from data_access import models_store as store
    from data_access.db import session_scope
    from data_access.schema import Event

    world()
    _train_global()
    with session_scope() as session:
        pk = dict(session.execute(select(Event.event_id, Event.id)).all())
    plain = recommend("jazz0@example.com", FilterParams(), top=3, now=NOW)
    assert plain.items[0].event_id.startswith("jazz-")
    assert not any("also went" in r.reason for r in plain.items)
    model = versions.active_global().model
    ids = np.array([pk["past-jazz-0"], pk["techno-2"], pk["techno-3"], pk["jazz-3"]])
    b = np.zeros((4, 4), dtype=np.float32)
    b[0, 1] = 1.0
    model.coattendance = CoAttendance(ids, b, weight=0.9, lam=100.0)
    store.activate(store.insert_version(scope="global", blob=model.to_bytes(),
                                        fingerprint="co"))
    versions.clear_cache()
    ranked = recommend("jazz0@example.com", FilterParams(), top=3, now=NOW)
    assert ranked.items[0].event_id == "techno-2"
    assert ranked.items[0].reason.startswith(
        "people who went to music night past-jazz-0 also went to this")
    assert not any("also went" in r.reason for r in ranked.items[1:])
    # nobody without history in the component is touched by it
    assert recommend("nobody@example.com", FilterParams(), top=3, now=NOW).items
    # filters that leave nothing: an empty list from the model, not a fall to popularity
    empty = recommend("jazz0@example.com", FilterParams.parse(category="no-such-category"),
                      top=3, now=NOW)
    assert empty.items == [] and empty.source == ranked.source != "popularity"


def test_coattendance_weighs_the_newest_registrations_most_on_every_read_path(db: str
                                                                           ) -> None:
    """jazz0 registered for past-jazz-0 (25 days ago), ..., past-jazz-5 (20 days ago), then
    techno-1 (yesterday). The component says past-jazz-0's people went to jazz-3 (1.0) and
    past-jazz-5's to techno-2 (0.6): without recency jazz-3 leads, with recency the newer
    registration's techno-2 does, and its reason names past-jazz-5. Every read path (one
    user, the serving read, a refresh batch) orders the history the same way."""
    import numpy as np
    from sqlalchemy import select

    from beacon import versions
    from beacon.model.coattendance import CoAttendance
    from data_access import catalog, models_store as store
    from data_access.db import session_scope
    from data_access.refresh_batch import user_histories
    from data_access.schema import Event
    from data_access.serving_read import serving_read

    world()
    _train_global()
    with session_scope() as session:
        pk = dict(session.execute(select(Event.event_id, Event.id)).all())
    me = catalog.user_by_email("jazz0@example.com")
    expected = (pk["techno-1"], *[pk[f"past-jazz-{k}"] for k in range(5, -1, -1)])
    assert catalog.user_history(me.id).registered_newest_first == expected
    assert serving_read(user_id=me.id).history.registered_newest_first == expected
    with session_scope() as session:
        assert user_histories(session, [me.id])[me.id].registered_newest_first == expected
    model = versions.active_global().model
    ids = np.array([pk["past-jazz-0"], pk["past-jazz-5"], pk["techno-2"], pk["jazz-3"]])
    order = np.argsort(ids)
    b = np.zeros((4, 4), dtype=np.float32)
    b[0, 3], b[1, 2] = 1.0, 0.6
    b = b[order][:, order]
    firsts = {}
    for recency in (0.0, 0.12):
        model.coattendance = CoAttendance(ids[order], b, weight=0.95, lam=100.0,
                                          recency=recency)
        store.activate(store.insert_version(scope="global", blob=model.to_bytes(),
                                            fingerprint=f"co-{recency}"))
        versions.clear_cache()
        firsts[recency] = recommend("jazz0@example.com", FilterParams(), top=3, now=NOW).items[0]
    assert firsts[0.0].event_id == "jazz-3"
    assert firsts[0.12].event_id == "techno-2"
    assert firsts[0.12].reason.startswith(
        "people who went to music night past-jazz-5 also went to this")


def test_the_trend_ranks_up_for_the_users_its_weight_is_on_and_says_so(db: str) -> None:
    """A trend component that says techno-3 was registered for lately, on for users without
    history only: nobody@example.com gets techno-3 first with a reason that says why; jazz0,
    who has history, keeps the model's order."""
    import numpy as np
    from sqlalchemy import select

    from beacon import versions
    from beacon.model.trend import TrendPart
    from data_access import models_store as store
    from data_access.db import session_scope
    from data_access.schema import Event

    world()
    _train_global()
    with session_scope() as session:
        pk = dict(session.execute(select(Event.event_id, Event.id)).all())
    before = [i.event_id for i in recommend("jazz0@example.com", FilterParams(), top=4,
                                            now=NOW).items]
    model = versions.active_global().model
    model.trend = TrendPart(np.array([pk["techno-3"], pk["jazz-1"]]),
                            np.array([6.0, 0.5], dtype=np.float32), as_of=0,
                            half_life_days=3.0, weight_known=0.0, weight_new=0.9)
    store.activate(store.insert_version(scope="global", blob=model.to_bytes(),
                                        fingerprint="trend"))
    versions.clear_cache()
    newcomer = recommend("nobody@example.com", FilterParams(), top=3, now=NOW)
    assert newcomer.items[0].event_id == "techno-3"
    assert newcomer.items[0].reason.startswith("popular lately: about 6 recent registrations")
    assert [i.event_id for i in recommend("jazz0@example.com", FilterParams(), top=4,
                                          now=NOW).items] == before


def test_the_content_components_term_popularity_ranks_up_and_says_so(db: str) -> None:
    """The same content component with the terms' recent popularity on, all of it on techno:
    the jazz fan's cold candidates now come techno first, each saying that events with techno
    drew registrations lately; a cold jazz event still names the night it resembles."""
    import numpy as np

    from beacon import versions
    from beacon.model.content_part import ContentPart
    from data_access import models_store as store
    from data_access.training_data import load_training_data

    world()
    _train_global()
    model = versions.active_global().model
    data = load_training_data()
    trained = np.flatnonzero(data.events["id"].isin(data.interactions["event_id"]).to_numpy())
    part = ContentPart.build(data.events, 1.0, trained)
    part.popularity = np.zeros(part.width, dtype=np.float32)
    part.popularity[part.column["tag:techno"]] = 50.0
    part.popularity_weight = 4.0
    model.content = part
    store.activate(store.insert_version(scope="global", blob=model.to_bytes(),
                                        fingerprint="content-popularity"))
    versions.clear_cache()
    cold = {"jazz-1", "jazz-2", "jazz-3", "techno-0", "techno-2", "techno-3"}
    ranked = [r for r in recommend("jazz0@example.com", FilterParams(), top=10, now=NOW).items
              if r.event_id in cold]
    assert [r.event_id[:5] for r in ranked] == ["techno"[:5]] * 3 + ["jazz-"] * 3
    assert ranked[0].reason.startswith("events with techno drew many registrations lately")
    assert not any("drew many" in r.reason for r in ranked[3:])


# --------------------------------------------------------------------------- command line


def test_cli_recommend_and_debug_filter_json(db: str) -> None:
    world()
    out = run_cli("recommend", "jazz1@example.com", "--top", "3", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["source"] == "popularity" and payload["user"] == "jazz1@example.com"
    assert len(payload["recommendations"]) == 3
    first = payload["recommendations"][0]
    assert {"event_id", "score", "reason", "source", "distance_km", "local_start", "title",
            "rank"} <= set(first)
    assert first["rank"] == 1 and first["event_id"] == "jazz-0"

    out = run_cli("debug-filter", "jazz1@example.com", "--lat", "52.52", "--lon", "13.405",
                  "--max-km", "1.5", "--reject",
                  "jazz-0,ghost", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["stages"][0]["name"] == "all candidates"
    assert [s["name"] for s in payload["stages"]][1] == "upcoming"
    assert payload["unknown_rejects"] == ["ghost"]
    events = {e["event_id"]: e for e in payload["events"]}
    assert events["jazz-0"]["failed_stage"] == "not rejected"
    assert events["jazz-3"]["failed_stage"] == "within distance"
    assert events["jazz-1"]["passed"] is True

    human = run_cli("debug-filter", "jazz1@example.com", "--max-km", "1.5")
    assert human.returncode == 0, human.stderr
    assert "within distance" in human.stdout and "km away > 1.5 km" in human.stdout


@pytest.mark.parametrize("args, needle", [
    (("recommend", "ghost@example.com"), "unknown user"),
    (("debug-filter", "ghost@example.com"), "unknown user"),
    (("recommend", "jazz1@example.com", "--dates", "2026-02-30"), "malformed date"),
    (("debug-filter", "jazz1@example.com", "--start", "18:00"), "end is missing"),
    (("recommend", "jazz1@example.com", "--lat", "100", "--lon", "0"), "out of range"),
])
def test_cli_bad_input_exits_2_with_one_line(db: str, args, needle) -> None:
    seed(users=[{"email": "jazz1@example.com"}])
    out = run_cli(*args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert out.stdout == ""


# --------------------------------------------------------------------------- catalog reads


def test_catalog_search_history_and_counts(db: str) -> None:
    from data_access import catalog

    seed(users=[{"email": "ada@example.com", "name": "Ada Lovelace", "tags": ("math", "poetry")},
                {"email": "bob@example.com", "name": "Bob Ada"},
                {"email": "carol@example.com", "name": "Carol"}])
    world()
    assert [u.email for u in catalog.search_users("ada")] == ["ada@example.com", "bob@example.com"]
    assert [u.email for u in catalog.search_users("Ada L")] == ["ada@example.com"]
    assert catalog.search_users("ADA@EX")[0].tags == ("math", "poetry")
    assert [u.email for u in catalog.search_users("car", limit=1)] == ["carol@example.com"]
    assert catalog.search_users("zzz") == []
    assert catalog.user_by_email("ADA@example.com").name == "Ada Lovelace"
    me = catalog.user_by_email("jazz0@example.com")
    assert catalog.user_by_id(me.id) == me
    history = catalog.user_history(me.id, recent_limit=3)
    assert len(history.registered) == 7  # six past jazz nights and techno-1
    assert [r["type"] for r in history.recent] == ["register"] * 3
    assert history.recent[0]["event_id"] == "techno-1"
    upcoming = catalog.upcoming_events(NOW)
    assert len(upcoming) == 8 and upcoming["start_time"].is_monotonic_increasing
    assert set(upcoming.columns) >= {"id", "event_id", "title", "category", "tags", "organizer",
                                     "city", "latitude", "longitude", "start_time", "end_time",
                                     "timezone", "price", "capacity"}
    assert upcoming.loc[upcoming["event_id"] == "jazz-0", "tags"].item() == ("jazz",)
    counts = catalog.overview_counts(NOW)
    assert (counts["users"], counts["upcoming_events"], counts["events"]) == (13, 8, 20)
    assert counts["interactions_7d"] == 6
    assert catalog.popularity_counts(NOW - timedelta(days=7))[
        catalog.candidate_events(NOW)["id"][catalog.candidate_events(NOW)["event_id"] == "jazz-0"].item()
    ] == 4


def test_content_component_ranks_cold_events_by_the_past_events_they_resemble(db: str) -> None:
    """A model whose content component (weight 1) decides the order of the events nobody has
    touched: a jazz fan's cold candidates come jazz first (the text of the Blue Note nights
    they went to), each with a plain reason naming such a night and the shared terms; events
    with history keep the hybrid's order; filters and a personal model go the same way."""
    import numpy as np

    from beacon import versions
    from beacon.model.content_part import ContentPart
    from beacon.training import train
    from data_access import models_store as store
    from data_access.training_data import load_training_data

    world()
    _train_global()
    model = versions.active_global().model
    data = load_training_data()
    trained = np.flatnonzero(data.events["id"].isin(data.interactions["event_id"]).to_numpy())
    model.content = ContentPart.build(data.events, 1.0, trained)
    store.activate(store.insert_version(scope="global", blob=model.to_bytes(),
                                        fingerprint="content"))
    versions.clear_cache()
    cold = {"jazz-1", "jazz-2", "jazz-3", "techno-0", "techno-2", "techno-3"}

    def cold_order(result):
        return [r for r in result.items if r.event_id in cold]

    ranked = recommend("jazz0@example.com", FilterParams(), top=10, now=NOW)
    order = cold_order(ranked)
    assert [r.event_id[:5] for r in order] == ["jazz-"] * 3 + ["techno"[:5]] * 3
    assert order[0].reason.startswith("like music night past-jazz-")
    assert "you went to (" in order[0].reason and "blue note" in order[0].reason
    assert not any(r.reason.startswith("like ") for r in order[3:])
    # the same for a techno fan, the other way round
    techno = cold_order(recommend("techno0@example.com", FilterParams(), top=10, now=NOW))
    assert [r.event_id[:5] for r in techno[:3]] == ["techno"[:5]] * 3
    # filters: a rejected cold event is gone, the others keep their order and reasons
    rejected = cold_order(recommend("jazz0@example.com",
                                    FilterParams.parse(reject=order[0].event_id), top=10,
                                    now=NOW))
    assert [r.event_id for r in rejected] == [r.event_id for r in order[1:]]
    # no history: nothing to compare with, the component stays out
    assert not any(r.reason.startswith("like ") for r in
                   recommend("new-jazz@example.com", FilterParams(), top=10, now=NOW).items)
    # a personal model (the user's folded vector on this version) blends the same way
    folded = train(scope="user", user="jazz0@example.com", trigger="cli", actor=ADMIN)
    assert folded.status == "trained", folded.reason
    versions.clear_cache()
    personal = recommend("jazz0@example.com", FilterParams(), top=10, now=NOW)
    assert personal.source == "personal"
    assert [r.event_id[:5] for r in cold_order(personal)] == ["jazz-"] * 3 + ["techno"[:5]] * 3
    assert cold_order(personal)[0].reason.startswith("like music night past-jazz-")
