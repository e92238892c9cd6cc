"""The Users/Recommendations/Debug-filter services (beacon/insights.py and
data_access/user_activity.py) on a small hand-made fixture with exact expected values."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from beacon.errors import UnknownUser

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _seed() -> None:
    """Three users, four events, a handful of interactions at fixed times."""
    from data_access.db import session_scope
    from data_access.schema import Event, EventTag, Interaction, User, UserInterest

    with session_scope() as s:
        users = [
            User(email="ada@example.org", name="Ada Lovelace", latitude=52.52, longitude=13.405,
                 city="Berlin", created_at=NOW - timedelta(days=30)),
            User(email="bob@example.org", name="Bob Builder", latitude=48.137, longitude=11.575,
                 city="Munich", created_at=NOW - timedelta(days=20)),
            User(email="cy@example.org", name="Cy Adams", latitude=None, longitude=None,
                 city=None, created_at=NOW - timedelta(days=1)),
        ]
        s.add_all(users)
        s.flush()
        s.add_all([UserInterest(user_id=users[0].id, tag=t) for t in ("jazz", "art")])
        s.add(UserInterest(user_id=users[1].id, tag="tech"))
        events = [
            Event(event_id="E1", title="Jazz night", category="music", city="Berlin",
                  latitude=52.50, longitude=13.40, start_time=NOW + timedelta(days=1, hours=8),
                  end_time=NOW + timedelta(days=1, hours=11), timezone="Europe/Berlin"),
            Event(event_id="E2", title="Gallery walk", category="art", city="Berlin",
                  latitude=52.53, longitude=13.41, start_time=NOW + timedelta(days=2),
                  end_time=None, timezone="Europe/Berlin"),
            Event(event_id="E3", title="Rust meetup", category="tech", city="Munich",
                  latitude=48.14, longitude=11.58, start_time=NOW + timedelta(days=3),
                  end_time=NOW + timedelta(days=3, hours=2), timezone="Europe/Berlin"),
            Event(event_id="E4", title="Past concert", category="music", city="Berlin",
                  latitude=52.51, longitude=13.39, start_time=NOW - timedelta(days=3),
                  end_time=NOW - timedelta(days=3) + timedelta(hours=2), timezone="Europe/Berlin"),
        ]
        s.add_all(events)
        s.flush()
        s.add_all([EventTag(event_id=events[0].id, tag="jazz"), EventTag(event_id=events[1].id, tag="art")])
        ada, bob = users[0].id, users[1].id
        e1, e2, e3, e4 = (e.id for e in events)
        day1 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
        day2 = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
        rows = [
            (ada, e1, "impression", day1), (ada, e1, "click", day1 + timedelta(minutes=1)),
            (ada, e1, "register", day1 + timedelta(minutes=2)),
            (ada, e2, "impression", day1 + timedelta(minutes=3)),
            (ada, e3, "impression", day2), (ada, e3, "reject", day2 + timedelta(minutes=5)),
            (ada, e4, "register", day2 + timedelta(minutes=10)),
            (ada, e4, "unregister", day2 + timedelta(minutes=50)),  # 2026-11-30 00:20 UTC
            (bob, e3, "register", day1),
        ]
        s.add_all([Interaction(user_id=u, event_id=e, type=t, occurred_at=at) for u, e, t, at in rows])


@pytest.fixture
def seeded(db: str) -> str:
    _seed()
    return db


def test_timeline_counts_group_by_day_and_type(seeded):
    from data_access import catalog, user_activity

    ada = catalog.user_by_email("ada@example.org").id
    assert user_activity.timeline_counts(ada) == [
        {"day": date(2026, 11, 28), "type": "click", "count": 1},
        {"day": date(2026, 11, 28), "type": "impression", "count": 2},
        {"day": date(2026, 11, 28), "type": "register", "count": 1},
        {"day": date(2026, 11, 29), "type": "impression", "count": 1},
        {"day": date(2026, 11, 29), "type": "register", "count": 1},
        {"day": date(2026, 11, 29), "type": "reject", "count": 1},
        {"day": date(2026, 11, 30), "type": "unregister", "count": 1},
    ]
    assert user_activity.type_totals(ada) == {
        "impression": 3, "click": 1, "register": 2, "reject": 1, "unregister": 1,
    }


def test_decisions_newest_first_with_titles(seeded):
    from data_access import catalog, user_activity

    ada = catalog.user_by_email("ada@example.org").id
    got = [(d["type"], d["event_id"], d["title"]) for d in user_activity.decisions(ada)]
    assert got == [
        ("unregister", "E4", "Past concert"),
        ("register", "E4", "Past concert"),
        ("reject", "E3", "Rust meetup"),
        ("register", "E1", "Jazz night"),
    ]


def test_find_users_by_email_or_name(seeded):
    from beacon import insights

    assert [r["email"] for r in insights.find_users("ad")] == ["ada@example.org", "cy@example.org"]
    assert insights.find_users("bob")[0] == {
        "email": "bob@example.org", "name": "Bob Builder", "city": "Munich", "interest tags": "tech",
    }
    assert insights.find_users("   ") == []
    # what the operator types is matched as typed: '%' and '_' are not wildcards
    assert insights.find_users("%") == [] and insights.find_users("_") == []
    assert [r["email"] for r in insights.find_users("a_a")] == []


def test_user_profile_exact(seeded):
    from beacon import insights

    profile = insights.user_profile("ada@example.org", now=NOW)
    assert (profile.email, profile.name, profile.city) == ("ada@example.org", "Ada Lovelace", "Berlin")
    assert profile.interest_tags == ("art", "jazz")
    assert profile.totals == {"impression": 3, "click": 1, "register": 2, "reject": 1, "unregister": 1}
    assert len(profile.timeline) == 7
    assert profile.registrations == [
        {"event_id": "E4", "title": "Past concert", "event starts (UTC)": "2026-11-28 12:00",
         "state": "unregistered", "at (UTC)": "2026-11-30 00:20"},
        {"event_id": "E1", "title": "Jazz night", "event starts (UTC)": "2026-12-02 20:00",
         "state": "registered", "at (UTC)": "2026-11-28 09:02"},
    ]
    assert profile.rejects == [
        {"event_id": "E3", "title": "Rust meetup", "event starts (UTC)": "2026-12-04 12:00",
         "rejected at (UTC)": "2026-11-29 23:35"},
    ]
    # home, the registered E1 and the rejected E3 (the unregistered E4 is not drawn)
    assert [(p["kind"], p["lat"]) for p in profile.points] == [
        ("home", 52.52), ("registered", 52.50), ("rejected", 48.14),
    ]
    # no model at all: popularity serves, computed live
    assert profile.serving.level == "popularity"
    assert profile.serving.model_version is None
    assert profile.serving.age_text == "computed live"


def test_user_profile_unknown_or_empty(seeded):
    from beacon import insights
    from beacon.errors import BeaconError

    with pytest.raises(UnknownUser):
        insights.user_profile("nobody@example.org")
    with pytest.raises(BeaconError, match="enter a user's email"):
        insights.user_profile("  ")


def test_compare_recommendations_without_a_model(seeded):
    from beacon import insights

    comparison = insights.compare_recommendations("bob@example.org", top=5, now=NOW)
    assert comparison.source == "popularity"
    # bob registered for E3; E4 is past: E1 (1 registration this week) then E2 (none)
    assert comparison.event_ids == ["E1", "E2"]
    assert comparison.popularity.event_ids == ["E1", "E2"]
    assert [r["registrations (7 d)"] for r in comparison.popularity.rows] == [1, 0]
    assert comparison.popularity.overlap == 2
    assert comparison.previous is None
    assert "popularity" in comparison.previous_note
    assert [(s.name, s.remaining) for s in comparison.stages][:4] == [
        ("all candidates", 3), ("upcoming", 3), ("not registered", 2), ("not rejected", 2),
    ]


def test_debug_view_window_across_midnight(seeded):
    from beacon import insights
    from beacon.filters import FilterParams

    view = insights.debug_view("ada@example.org", FilterParams.parse(start="22:00", end="02:00"),
                               now=NOW)
    assert [(s.name, s.remaining, s.dropped, s.enabled) for s in view.funnel] == [
        ("all candidates", 3, 0, True), ("upcoming", 3, 0, True), ("not registered", 2, 1, True),
        ("not rejected", 1, 1, True), ("within distance", 1, 0, False),
        ("on selected dates", 1, 0, False), ("in time window", 0, 1, True),
        ("in category", 0, 0, False),
    ]
    assert view.crosses_midnight
    assert view.window_spans == [(0.0, 2.0), (22.0, 26.0), (46.0, 48.0)]
    assert view.window_label == "22:00–02:00 (across midnight: ends the next day)"
    by_id = {r["event_id"]: r for r in view.rows}
    assert {k: (r["dropped by"], r["kept"]) for k, r in by_id.items()} == {
        "E1": ("not registered", False), "E2": ("in time window", False),
        "E3": ("not rejected", False),
    }
    # Berlin local time: E2 starts 13:00 CET; E1 runs 21:00-00:00, across midnight on the axis
    assert by_id["E2"]["reason"].startswith("starts 13:00, outside the window")
    timeline = {t["event_id"]: (t["start_h"], t["end_h"]) for t in view.timeline}
    assert timeline == {"E1": (21.0, 24.0), "E2": (13.0, None), "E3": (13.0, 15.0)}
    assert view.dropped_by_choices() == ["not registered", "not rejected", "in time window"]
    assert view.origin == {"lat": 52.52, "lon": 13.405, "label": "home"}


def test_age_text():
    from beacon.insights import age_text

    assert [age_text(timedelta(minutes=m)) for m in (0, 59, 60, 61, 24 * 60, 24 * 60 + 125)] == [
        "0 min", "59 min", "1 h", "1 h 1 min", "1 d", "1 d 2 h",
    ]
    assert age_text(None) == "computed live"


def test_debug_view_show_and_limits(seeded):
    from beacon import insights
    from beacon.filters import FilterParams

    params = FilterParams.parse(start="22:00", end="02:00")
    only = insights.debug_view("ada@example.org", params, now=NOW, show="in time window")
    assert (only.show, only.matched, [r["event_id"] for r in only.rows]) == ("in time window", 1, ["E2"])
    assert [t["event_id"] for t in only.timeline] == ["E2"]
    assert len(only.points) == 3, "the map always shows every candidate it may"
    # a stage that dropped nothing (or a made-up one) falls back to all candidates
    fallback = insights.debug_view("ada@example.org", params, now=NOW, show="within distance")
    assert (fallback.show, fallback.matched, len(fallback.rows)) == ("all", 3, 3)
    capped = insights.debug_view("ada@example.org", params, now=NOW, row_limit=1, point_limit=1,
                                 timeline_limit=2)
    assert (capped.matched, len(capped.rows), len(capped.timeline)) == (3, 1, 2)
    # nothing was kept, so the one point allowed goes to a dropped event
    assert [p["kind"] for p in capped.points] == ["dropped"]
    assert insights.debug_view("ada@example.org", params, now=NOW, show="kept").rows == []
