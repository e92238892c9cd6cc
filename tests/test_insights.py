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
