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
from tests.auth_support import shown, signed_in_app
from tests.trained_support import two_trained_versions

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "dashboard.py"
UTC = timezone.utc
TIMEOUT = 60


def open_page(page: str) -> AppTest:
    """dashboard.py, then switch to `page` (falls back to the page alone if there is no router)."""
    if DASHBOARD.exists():
        at = signed_in_app("admin", timeout=TIMEOUT)
        at.run()
        at.switch_page(page)
    else:
        at = AppTest.from_file(str(REPO / page), default_timeout=TIMEOUT)
    at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


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
            events[event_id] = Event(event_id=event_id, title=title,
                                     category="food" if event_id == "B1" else "music",
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


def test_debug_filter_user_from_the_address(midnight):
    """?user=EMAIL preselects the user (a link an operator can share)."""
    at = signed_in_app("admin", timeout=TIMEOUT)
    at.query_params["user"] = "dora@example.org"
    at.run()
    at.switch_page("pages/debug_filter.py")
    at.run()
    no_exception(at)
    assert at.text_input(key="debug_email").value == "dora@example.org"
    assert _funnel(at)["all candidates"] == 9


def test_a_user_in_the_address_after_the_box_was_made_still_fills_it(midnight):
    """A deep link's first run can reach the page before its ?user= does (the router switched
    pages while the query was still on its way): the box, already made and empty, takes the
    user when the query arrives, and only then (what is typed afterwards stays)."""
    at = open_page("pages/debug_filter.py")
    assert at.text_input(key="debug_email").value == ""
    at.query_params["user"] = "dora@example.org"
    at.run()
    no_exception(at)
    assert at.text_input(key="debug_email").value == "dora@example.org"
    assert _funnel(at)["all candidates"] == 9
    _debug(at, "nobody@example.org")
    assert at.text_input(key="debug_email").value == "nobody@example.org"


def test_an_emptied_box_takes_the_user_the_address_names(midnight):
    """The browser can send back the box's former empty value after a deep link filled it (a
    rerun it asked for before drawing the new value): the address still names the user, so
    the box takes it again instead of selecting nobody."""
    at = open_page("pages/debug_filter.py")
    at.query_params["user"] = "dora@example.org"
    at.run()
    assert at.text_input(key="debug_email").value == "dora@example.org"
    _debug(at, "")
    no_exception(at)
    assert at.text_input(key="debug_email").value == "dora@example.org"
    assert _funnel(at)["all candidates"] == 9


def test_the_box_is_sent_to_the_browser_as_a_value_to_draw_on_every_run(midnight):
    """A box the browser rebuilt during a rerun kept showing "" while the page ran for the
    linked user (CI, twice in a row): unless the run marks the value as one to draw
    (set_value), the browser keeps what it holds. Every run marks it; what was typed stays."""
    at = open_page("pages/debug_filter.py")
    at.query_params["user"] = "dora@example.org"
    at.run()
    for _ in range(2):
        at.run()  # a rerun nobody typed in (the sign-in cookie reporting back, say)
        box = at.text_input(key="debug_email")
        assert box.value == "dora@example.org" and box.proto.set_value
    _debug(at, "nobody@example.org")
    box = at.text_input(key="debug_email")
    assert box.value == "nobody@example.org" and box.proto.set_value


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
        "within distance": 6, "on selected dates": 6, "in time window": 4, "in category": 4,
    }
    assert any("across midnight" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) >= 2  # the funnel and the timeline

    at.selectbox(key="debug_show").set_value("in time window").run()
    rows = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert sorted(rows["event_id"]) == ["B1", "B2"]
    assert set(rows["dropped by"]) == {"in time window"}


def test_debug_filter_says_an_equal_start_and_end_is_an_empty_window(midnight):
    at = open_page("pages/debug_filter.py")
    _debug(at, "dora@example.org")
    at.toggle(key="debug_use_window").set_value(True).run()
    at.time_input(key="debug_start").set_value(time(2, 0)).run()
    at.time_input(key="debug_end").set_value(time(2, 0)).run()
    no_exception(at)
    captions = [c.value for c in at.caption]
    assert any("the window is empty" in c for c in captions), captions
    assert not any(c.startswith("Window 02:00") for c in captions)


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


def _timeline_events(at: AppTest) -> set[str]:
    """The event ids the 'event times against the daily window' chart draws."""
    import json

    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    labels = [y for trace in chart["data"] for y in trace.get("y", [])]
    return {label.rsplit("(", 1)[1].rstrip(")") for label in labels}


def test_debug_filter_timeline_draws_what_the_window_decided(midnight):
    """With a window on, the timeline draws the events that reached the window stage (kept or
    dropped by it); the ones earlier stages dropped only on request."""
    at = _debug(open_page("pages/debug_filter.py"), "dora@example.org")
    at.toggle(key="debug_use_window").set_value(True).run()
    at.time_input(key="debug_start").set_value(time(22, 0)).run()
    at.time_input(key="debug_end").set_value(time(2, 0)).run()
    no_exception(at)
    assert _timeline_events(at) == {"A1", "A2", "F1", "N1", "B1", "B2"}
    assert any("dropped before it hidden" in c.value for c in at.caption)
    at.toggle(key="debug_timeline_all").set_value(True).run()
    no_exception(at)
    assert {"R1", "X1"} <= _timeline_events(at)


def test_debug_filter_by_category(midnight):
    """The category control offers the upcoming events' categories and drops the others at the
    "in category" stage, saying which category was not asked."""
    at = _debug(open_page("pages/debug_filter.py"), "dora@example.org")
    at.toggle(key="debug_use_categories").set_value(True).run()
    assert list(at.multiselect(key="debug_categories").options) == ["food", "music"]
    assert any("no category was given" in message for message in errors(at)), errors(at)
    at.multiselect(key="debug_categories").set_value(["food"]).run()
    no_exception(at)
    assert not errors(at)
    assert _funnel(at)["in category"] == 1
    at.selectbox(key="debug_show").set_value("in category").run()
    rows = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert sorted(rows["event_id"]) == ["A1", "A2", "B2", "F1", "N1"]
    assert all("category music not asked" in reason for reason in rows["reason"])


def test_debug_filter_says_why_a_rejected_id_is_ignored(midnight):
    at = _debug(open_page("pages/debug_filter.py"), "dora@example.org")
    at.text_input(key="debug_reject").set_value("A1, nope-1").run()
    no_exception(at)
    warning = next(shown(w.value) for w in at.warning if "nope-1" in shown(w.value))
    assert "not among the upcoming events" in warning and "A1" not in warning
    assert _funnel(at)["not rejected"] == 5  # X1 (stored) and A1 (asked)


def test_registrations_one_row_per_event():
    """An attended event is one row (attended), not a 'registered' and an 'attended' row."""
    from beacon.insights import _registrations_and_rejects

    t = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def row(kind, event, hours):
        return {"type": kind, "event_id": event, "title": event, "start_time": t,
                "occurred_at": t - timedelta(hours=hours)}

    registrations, rejects = _registrations_and_rejects([  # newest first, as stored
        row("attend", "E1", 1), row("reject", "E3", 2), row("unregister", "E2", 3),
        row("register", "E2", 4), row("register", "E1", 5),
    ])
    assert [(r["event_id"], r["state"]) for r in registrations] == [
        ("E1", "attended"), ("E2", "unregistered")]
    assert [r["event_id"] for r in rejects] == ["E3"]


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


# --------------------------------------------------------------------------- the demo platform

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """Demo data and two tiny global versions (the second active), shared by this module."""
    yield from two_trained_versions(tmp_path_factory, "demo")


@pytest.fixture
def on_demo(demo: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("DATABASE_URL", demo["url"])
    return demo


def _active_user(rank: int = 0) -> str:
    """A demo user with registrations and interest tags (the rank-th by registrations)."""
    from sqlalchemy import func, select

    from data_access.db import session_scope
    from data_access.schema import Interaction, User

    with session_scope() as s:
        rows = s.execute(
            select(User.email, func.count())
            .join(Interaction, Interaction.user_id == User.id)
            .where(Interaction.type == "register")
            .group_by(User.email)
            .order_by(func.count().desc(), User.email)
            .limit(rank + 1)
        ).all()
    return rows[rank][0]


def test_users_search_shows_profile_and_tags(on_demo):
    from beacon import insights
    from data_access import catalog

    email = _active_user(0)
    user = catalog.user_by_email(email)
    assert user.tags, "the demo gives every user interest tags"
    at = open_page("pages/users.py")
    no_exception(at)
    at.text_input(key="users_query").set_value(email[:-3]).run()
    no_exception(at)
    matches = at.dataframe[0].value
    assert list(matches["email"]) == [email]
    header = " ".join(m.value for m in at.text)
    assert all(tag in header for tag in user.tags)
    served = next(m.value for m in at.metric if m.label == "Served by")
    assert served in ("global", "features")
    # the home point in full in the caption (as a metric it was cut to "52.52, 13…")
    assert any(f"home {user.latitude:.4f}, {user.longitude:.4f}" in t.value for t in at.text)
    assert "Home" not in [m.label for m in at.metric]
    profile = insights.user_profile(email)
    assert any(h.value == f"Registrations ({len(profile.registrations)})" for h in at.subheader)
    assert len(at.get("plotly_chart")) == 1  # the timeline
    assert len(at.get("deck_gl_json_chart")) == 1  # the home map


def test_users_search_by_name_lists_matches(on_demo):
    from data_access import catalog

    user = catalog.user_by_email(_active_user(1))
    at = open_page("pages/users.py")
    at.text_input(key="users_query").set_value(user.name.split()[0]).run()
    no_exception(at)
    assert user.email in list(at.dataframe[0].value["email"])
    at.text_input(key="users_query").set_value("no-such-person-zz").run()
    no_exception(at)
    assert any("No user" in w.value for w in at.warning)


def test_users_refresh_personal_model(on_demo):
    from beacon import versions

    email = _active_user(2)
    at = open_page("pages/users.py")
    at.text_input(key="users_query").set_value(email).run()
    next(b for b in at.button if b.label == "Refresh this user's personal model").click().run()
    no_exception(at)
    assert any("trained" in s.value and "fold-in" in shown(s.value) for s in at.success), \
        [s.value for s in at.success] + errors(at)
    personal = versions.list_versions(scope="user", user=email)
    assert personal and personal[0].status == "active"
    # the page reran after the fold-in: the profile says the personal model serves them now
    assert next(m.value for m in at.metric if m.label == "Served by") == "personal"


def test_users_open_recommendations_preselects_the_user(on_demo):
    email = _active_user(3)
    at = open_page("pages/users.py")
    at.text_input(key="users_query").set_value(email).run()
    next(b for b in at.button if b.label == "Open their recommendations").click().run()
    no_exception(at)
    assert at.text_input(key="recs_email").value == email
    assert any(t.value == "Recommendations" for t in at.title)


def test_recommendations_rows_with_reasons(on_demo):
    from beacon import insights

    email = _active_user(0)
    at = open_page("pages/recommendations.py")
    no_exception(at)
    at.text_input(key="recs_email").set_value(email).run()
    at.number_input(key="recs_top").set_value(5).run()
    no_exception(at)
    assert not errors(at)
    rows = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert len(rows) == 5
    assert list(rows["rank"]) == [1, 2, 3, 4, 5]
    assert rows["reason"].str.len().min() > 0
    assert set(rows["source"]) <= {"personal", "global", "features"}
    expected = insights.compare_recommendations(email, top=5)
    assert list(rows["event_id"]) == expected.event_ids
    overlaps = [m.value for m in at.metric if m.label == "Overlap with the model's list"]
    assert overlaps == [f"{expected.popularity.overlap} of 5", f"{expected.previous.overlap} of 5"]
    assert expected.previous.version == on_demo["versions"][0]
    assert len(at.get("deck_gl_json_chart")) == 1


def test_recommendations_bad_input(on_demo):
    at = open_page("pages/recommendations.py")
    at.text_input(key="recs_email").set_value("nobody@example.org").run()
    no_exception(at)
    assert any("unknown user" in e for e in errors(at))
    at.text_input(key="recs_email").set_value(_active_user(0)).run()
    at.toggle(key="recs_use_dates").set_value(True).run()
    no_exception(at)
    assert any("no date" in e for e in errors(at))


def test_debug_filter_renders_on_the_demo(on_demo):
    at = _debug(open_page("pages/debug_filter.py"), _active_user(0))
    no_exception(at)
    assert not errors(at)
    counts = _funnel(at)
    assert counts["all candidates"] >= counts["upcoming"] >= counts["in time window"] > 0
    assert len(at.get("deck_gl_json_chart")) == 1


def test_a_timeline_of_one_day_shows_a_week_with_a_tick_per_day() -> None:
    """One day of activity was drawn as a full-width bar under seven ticks of that date."""
    from datetime import date

    import pandas as pd

    from pages._user_ui import DAY_MS, timeline_figure

    one_day = timeline_figure([{"day": date(2026, 12, 7), "type": "click", "count": 3}])
    start, end = (pd.Timestamp(x) for x in one_day.layout.xaxis.range)
    assert (end - start).days >= 7 and start < pd.Timestamp("2026-12-07") < end
    assert one_day.layout.xaxis.dtick == DAY_MS
    months = timeline_figure([{"day": date(2026, 10, 1), "type": "click", "count": 1},
                              {"day": date(2026, 12, 1), "type": "view", "count": 2}])
    assert months.layout.xaxis.range is None and months.layout.xaxis.dtick is None
