"""Strategies: beacon, popularity and content score the same filtered rows; the content
strategy on tiny data; the fallbacks prefer near events for a user nobody resembles."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from beacon.actions import cli_actor

from beacon.errors import BeaconError
from beacon.filters import FilterParams
from beacon.recommend import STRATEGIES, debug_filter, recommend
from tests.test_cli import run_cli
from tests.test_filters import seed
from tests.test_recommend import BERLIN, NOW, _event, _train_global, world

SYDNEY = (-33.87, 151.21)


def test_strategies_are_named_and_an_unknown_one_is_refused(db: str) -> None:
    world()
    assert STRATEGIES == ("beacon", "popularity", "content")
    for strategy in STRATEGIES:
        result = recommend("jazz1@example.com", top=3, now=NOW, strategy=strategy)
        assert result.strategy == strategy and result.to_json()["strategy"] == strategy
        assert debug_filter("jazz1@example.com", now=NOW, strategy=strategy).strategy == strategy
    with pytest.raises(BeaconError, match="unknown strategy 'lightfm': choose one of "
                                          "beacon, popularity, content"):
        recommend("jazz1@example.com", now=NOW, strategy="lightfm")
    with pytest.raises(BeaconError, match="unknown strategy"):
        debug_filter("jazz1@example.com", now=NOW, strategy="")
    out = run_cli("recommend", "jazz1@example.com", "--strategy", "nope")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "choose one of beacon, popularity, content" in lines[0]


def test_filters_pass_the_same_rows_whatever_the_strategy(db: str) -> None:
    world()
    _train_global()
    params = FilterParams.parse(max_km=2.5, reject="jazz-1", start="00:00", end="23:59")
    passed = {}
    for strategy in STRATEGIES:
        debug = debug_filter("jazz2@example.com", params, now=NOW, strategy=strategy)
        passed[strategy] = {e.event_id for e in debug.passed}
        result = recommend("jazz2@example.com", params, top=50, now=NOW, strategy=strategy)
        assert {r.event_id for r in result.items} == passed[strategy]
        assert [s.remaining for s in result.stages] == [s.remaining for s in debug.stages]
        # recommend and the debug filter rank alike under each strategy
        assert [r.event_id for r in result.items] == [e.event_id for e in debug.passed]
    assert passed["beacon"] == passed["popularity"] == passed["content"]
    assert passed["beacon"] and "jazz-1" not in passed["beacon"]


def test_content_ranks_the_matching_event_first_and_says_why(db: str) -> None:
    world()
    seed(
        users=[{"email": "quartet@example.com", "latitude": BERLIN[0], "longitude": BERLIN[1]}],
        events=[_event("quartet-past", -10, "music", ("swing",), "Hot Club",
                       title="Gypsy swing quartet"),
                _event("quartet-next", 3, "music", ("swing",), "Hot Club",
                       title="Swing quartet returns"),
                # the same night word for word, but in Sydney: text alone would put it first
                {**_event("quartet-far", 3, "music", ("swing",), "Hot Club",
                          title="Gypsy swing quartet"),
                 "latitude": SYDNEY[0], "longitude": SYDNEY[1], "city": "Sydney"}],
        interactions=[{"email": "quartet@example.com", "event_id": "quartet-past",
                       "type": "register", "at": NOW - timedelta(days=11)},
                      {"email": "quartet@example.com", "event_id": "techno-0",
                       "type": "reject", "at": NOW - timedelta(days=1)}],
    )
    # history only: the event sharing tags, organizer and title words comes first
    result = recommend("quartet@example.com", top=3, now=NOW, strategy="content")
    assert result.strategy == "content" and result.source == "content"
    first = result.items[0]
    assert first.event_id == "quartet-next" and first.source == "content"
    assert first.reason.startswith("like Gypsy swing quartet you registered for")
    assert result.items[1].event_id == "quartet-far" and result.items[1].score < first.score
    # measured from a point in Sydney, the far one is the near one
    there = recommend("quartet@example.com", FilterParams.parse(lat=SYDNEY[0], lon=SYDNEY[1]),
                      top=1, now=NOW, strategy="content")
    assert there.items[0].event_id == "quartet-far"
    # a techno night shares nothing but "music": it ranks below every jazz night
    ranked = [r.event_id for r in recommend("quartet@example.com", top=20, now=NOW,
                                            strategy="content").items]
    assert "techno-0" not in ranked  # rejected: the filter, not the score, removes it
    # interest tags only (no history): jazz first, the reason names the interest
    cold = recommend("new-jazz@example.com", top=4, now=NOW, strategy="content")
    assert all(r.event_id.startswith("jazz-") for r in cold.items)
    assert cold.items[0].reason.startswith("matches your interest: jazz")
    # no history, no interests: nothing to match, the popularity level answers honestly
    nobody = recommend("nobody@example.com", top=2, now=NOW, strategy="content")
    assert nobody.source == "popularity" and nobody.items[0].event_id == "jazz-0"
    # the CLI selects it too
    out = run_cli("recommend", "new-jazz@example.com", "--strategy", "content", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["strategy"] == "content"
    assert payload["recommendations"][0]["event_id"].startswith("jazz-")


def _far_and_near_world() -> None:
    """Popular events in Sydney, unpopular ones near a Berlin user who has no history."""
    users = [{"email": f"fan{i}@example.com", "latitude": SYDNEY[0], "longitude": SYDNEY[1],
              "city": "Sydney", "tags": ("jazz",)} for i in range(5)]
    users.append({"email": "newcomer@example.com", "latitude": BERLIN[0], "longitude": BERLIN[1],
                  "city": "Berlin"})
    far = {"latitude": SYDNEY[0], "longitude": SYDNEY[1], "city": "Sydney",
           "timezone": "Australia/Sydney"}
    events, interactions = [], []
    for k in range(3):
        events.append({**_event(f"far-{k}", 2 + k, "music", ("jazz",), "Opera House"), **far})
        events.append({**_event(f"far-past-{k}", -10 + k, "music", ("jazz",), "Opera House"), **far})
        events.append(_event(f"near-{k}", 2 + k, "talk", ("science",), "Urania", km_east=2 + k))
        for i in range(5):
            interactions.append({"email": f"fan{i}@example.com", "event_id": f"far-past-{k}",
                                 "type": "register", "at": NOW - timedelta(days=12 - k)})
            interactions.append({"email": f"fan{i}@example.com", "event_id": f"far-{k}",
                                 "type": "register", "at": NOW - timedelta(days=1, hours=i)})
    seed(users=users, events=events, interactions=interactions)


@pytest.mark.parametrize("strategy", ["beacon", "popularity"])
def test_a_newcomer_gets_near_events_and_no_crowd_claims(db: str, strategy: str) -> None:
    _far_and_near_world()
    if strategy == "beacon":
        _train_global()
    params = FilterParams.parse(start="00:00", end="23:59")  # a window, no distance limit
    result = recommend("newcomer@example.com", params, top=3, now=NOW, strategy=strategy)
    assert result.source == ("features" if strategy == "beacon" else "popularity")
    assert {r.event_id for r in result.items} == {"near-0", "near-1", "near-2"}
    assert all(r.distance_km < 10 for r in result.items)
    assert not any("people like you" in r.reason for r in result.items)
    # far events still come, after the near ones, when nothing near is left
    more = recommend("newcomer@example.com", params, top=6, now=NOW, strategy=strategy)
    assert [r.event_id for r in more.items][3:] and all(
        r.event_id.startswith("far-") for r in more.items[3:])
    # from a chosen point the decay measures from that point
    sydney = FilterParams.parse(lat=SYDNEY[0], lon=SYDNEY[1])
    there = recommend("newcomer@example.com", sydney, top=1, now=NOW, strategy=strategy)
    assert there.items[0].event_id.startswith("far-")


def test_refresh_recommendations_with_a_strategy(db: str) -> None:
    from beacon.cache import refresh_recommendations
    from data_access.recommendations import cached_recommendations

    ids = world()
    summary = refresh_recommendations(top=3, user="new-jazz@example.com", now=NOW,
                                      strategy="content", actor=cli_actor())
    assert summary.strategy == "content" and summary.sources == {"content": 1}
    cached = cached_recommendations(ids["users"]["new-jazz@example.com"])
    live = recommend("new-jazz@example.com", top=3, now=NOW, strategy="content")
    assert [c["event_id"] for c in cached] == [r.event_id for r in live.items]
    assert {c["strategy"] for c in cached} == {"content"}
    assert cached[0]["reason"].startswith("matches your interest: jazz")
    # an unknown strategy writes nothing and says what is valid, on the CLI too
    with pytest.raises(BeaconError, match="choose one of beacon, popularity, content"):
        refresh_recommendations(top=3, strategy="random", now=NOW, actor=cli_actor())
    out = run_cli("refresh-recommendations", "--strategy", "random")
    assert out.returncode == 2 and "choose one of" in out.stderr
    out = run_cli("refresh-recommendations", "--strategy", "popularity", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["strategy"] == "popularity" and set(payload["sources"]) == {"popularity"}
    assert len(cached_recommendations(ids["users"]["new-jazz@example.com"])) == 8  # all upcoming


def test_the_content_index_transforms_as_the_fitted_vectorizer_does() -> None:
    import numpy as np

    from beacon.content import ContentIndex, event_terms, interest_terms

    docs = [event_terms("Late jazz jam", "Music", ("Jazz", "live"), "Blue Note"),
            event_terms("Jazz brunch", "food", ("jazz",), None),
            event_terms("Derby day", "sports", ("football",), "City FC"), []]
    index = ContentIndex(docs)
    queries = docs + [interest_terms(["jazz", "board games"]), ["tag:unknown"]]
    ours = index.transform(queries).toarray()
    assert np.allclose(ours, index.vectorizer.transform(queries).toarray())
    assert np.allclose(index.transform(docs).toarray(), index.matrix.toarray())
    assert "tag:jazz" in docs[0] and "category:music" in docs[0] and "title:jam" in docs[0]
    assert interest_terms(["Jazz"]) == ["tag:jazz", "category:jazz", "title:jazz"]


def test_english_function_words_are_no_title_terms() -> None:
    from beacon.content import event_terms

    terms = event_terms("The Night of the Jazz and Soul Quartet", None, (), None)
    assert terms == ["title:night", "title:jazz", "title:soul", "title:quartet"]
