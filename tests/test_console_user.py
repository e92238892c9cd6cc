"""AppTest for the console's Users, Recommendations and Debug-filter pages on a real database.

The pages are reached the way an operator reaches them: dashboard.py (st.navigation) first,
then a page switch. Two fixtures: a hand-made one whose debug-filter counts are known exactly
(relative to the real clock, since the pages use it), and the demo platform with a tiny model.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "dashboard.py"
UTC = timezone.utc
TIMEOUT = 60


def open_page(page: str) -> AppTest:
    """dashboard.py, then switch to `page` (falls back to the page alone if there is no router)."""
    if DASHBOARD.exists():
        at = AppTest.from_file(str(DASHBOARD), default_timeout=TIMEOUT)
        at.run()
        at.switch_page(page)
    else:
        at = AppTest.from_file(str(REPO / page), default_timeout=TIMEOUT)
    at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


# --------------------------------------------------------------------------- a known fixture

def _seed_midnight() -> datetime:
    """One user (dora) and nine candidate events, all in UTC, two days from now:

    P1 started 3 h ago (not upcoming), R1 registered, X1 rejected earlier, A1 23:00-01:00,
    A2 22:30 (no end), B1 20:00-21:00, B2 01:00-03:00 (next day), F1 23:00-23:30 in Munich,
    N1 22:30 three days later. A window 22:00-02:00 keeps A1, A2, F1 and N1.
    """
    from data_access.db import session_scope
    from data_access.schema import Event, Interaction, User, UserInterest

    now = datetime.now(UTC)
    day = datetime.combine((now + timedelta(days=2)).date(), time(0, 0), tzinfo=UTC)

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return day + timedelta(days=days, hours=hour, minutes=minute)

    berlin = (52.52, 13.405)
    specs = [
        ("P1", "Started already", now - timedelta(hours=3), now + timedelta(hours=1), berlin),
        ("R1", "Registered show", at(0, 23), at(1, 0, 30), berlin),
        ("X1", "Rejected gig", at(0, 22, 30), None, berlin),
        ("A1", "Late jazz", at(0, 23), at(1, 1), berlin),
        ("A2", "Night walk", at(0, 22, 30), None, berlin),
        ("B1", "Early dinner", at(0, 20), at(0, 21), berlin),
        ("B2", "After hours", at(1, 1), at(1, 3), berlin),
        ("F1", "Munich night", at(0, 23), at(0, 23, 30), (48.137, 11.575)),
        ("N1", "Later week", at(3, 22, 30), at(3, 23, 30), berlin),
    ]
    with session_scope() as s:
        dora = User(email="dora@example.org", name="Dora Night", latitude=berlin[0],
                    longitude=berlin[1], city="Berlin", created_at=now - timedelta(days=10))
        s.add(dora)
        s.flush()
        s.add_all([UserInterest(user_id=dora.id, tag=t) for t in ("jazz", "nightlife")])
        events = {}
        for event_id, title, start, end, (lat, lon) in specs:
            events[event_id] = Event(event_id=event_id, title=title, category="music",
                                     city="Berlin", latitude=lat, longitude=lon,
                                     start_time=start, end_time=end, timezone="UTC")
        s.add_all(events.values())
        s.flush()
        s.add_all([
            Interaction(user_id=dora.id, event_id=events["R1"].id, type="register",
                        occurred_at=now - timedelta(days=1)),
            Interaction(user_id=dora.id, event_id=events["X1"].id, type="reject",
                        occurred_at=now - timedelta(days=1)),
            Interaction(user_id=dora.id, event_id=events["A1"].id, type="click",
                        occurred_at=now - timedelta(days=1)),
        ])
    from beacon import recommend

    recommend.clear_caches()
    return day


@pytest.fixture
def midnight(db: str) -> datetime:
    return _seed_midnight()


def _debug(at: AppTest, email: str) -> AppTest:
    at.text_input(key="debug_email").set_value(email).run()
    return at


def _funnel(at: AppTest) -> dict[str, int]:
    frame = next(d.value for d in at.dataframe if "remaining" in d.value.columns)
    return dict(zip(frame["stage"], frame["remaining"]))


def test_debug_filter_window_across_midnight(midnight):
    at = open_page("pages/debug_filter.py")
    no_exception(at)
    _debug(at, "dora@example.org")
    no_exception(at)
    at.toggle(key="debug_use_window").set_value(True).run()
    at.time_input(key="debug_start").set_value(time(22, 0)).run()
    at.time_input(key="debug_end").set_value(time(2, 0)).run()
    no_exception(at)
    assert not errors(at)
    assert _funnel(at) == {
        "all candidates": 9, "upcoming": 8, "not registered": 7, "not rejected": 6,
        "within distance": 6, "on selected dates": 6, "in time window": 4,
    }
    assert any("across midnight" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) >= 2  # the funnel and the timeline

    at.selectbox(key="debug_show").set_value("in time window").run()
    rows = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert sorted(rows["event_id"]) == ["B1", "B2"]
    assert set(rows["dropped by"]) == {"in time window"}


def test_debug_filter_distance_and_dates(midnight):
    at = _debug(open_page("pages/debug_filter.py"), "dora@example.org")
    at.toggle(key="debug_use_km").set_value(True).run()
    at.number_input(key="debug_km").set_value(50.0).run()
    at.toggle(key="debug_use_dates").set_value(True).run()
    at.multiselect(key="debug_dates").set_value([midnight.date()]).run()
    no_exception(at)
    assert not errors(at)
    counts = _funnel(at)
    # F1 (Munich) is beyond 50 km; N1 and B2 start on other dates
    assert (counts["within distance"], counts["on selected dates"], counts["in time window"]) == (5, 3, 3)


@pytest.mark.parametrize("case", ["unknown user", "no dates", "latitude 123", "longitude -200"])
def test_debug_filter_bad_input_shows_an_error(midnight, case):
    at = open_page("pages/debug_filter.py")
    if case == "unknown user":
        _debug(at, "nobody@example.org")
        expected = "unknown user"
    else:
        _debug(at, "dora@example.org")
        if case == "no dates":
            at.toggle(key="debug_use_dates").set_value(True).run()
            expected = "no date"
        elif case == "latitude 123":
            at.number_input(key="debug_dora@example.org_lat").set_value(123.0).run()
            expected = "latitude 123 is out of range"
        else:
            at.number_input(key="debug_dora@example.org_lon").set_value(-200.0).run()
            expected = "longitude -200 is out of range"
    no_exception(at)
    assert any(expected in message for message in errors(at)), errors(at)
