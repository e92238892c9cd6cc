"""The filter stages: parsing, every edge case of the issue, on arrays and through
debug_filter() on a real database (SQLite, or Postgres with BEACON_TEST_DATABASE_URL)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from beacon.errors import BeaconError
from beacon.filters import (
    DATES,
    DISTANCE,
    NOT_REJECTED,
    STAGE_NAMES,
    UPCOMING,
    WINDOW,
    CandidateArrays,
    FilterParams,
    apply_filters,
    great_circle_km,
    haversine_km,
    unit_point,
)

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers (also used
# by test_recommend.py and test_cache.py)


def seed(users=(), events=(), interactions=()) -> dict:
    """Insert plain dicts through the ORM; returns {"users": {email: id}, "events": {event_id: id}}.

    users: email, name, latitude, longitude, city, tags
    events: event_id, title, start (aware), end, timezone, latitude, longitude, category,
            organizer, city, price, tags
    interactions: email, event_id, type, at
    """
    from data_access.db import session_scope
    from data_access.schema import Event, EventTag, Interaction, User, UserInterest

    ids: dict = {"users": {}, "events": {}}
    with session_scope() as session:
        for u in users:
            row = User(email=u["email"], name=u.get("name"), latitude=u.get("latitude"),
                       longitude=u.get("longitude"), city=u.get("city"))
            session.add(row)
            session.flush()
            ids["users"][u["email"]] = row.id
            for tag in u.get("tags", ()):
                session.add(UserInterest(user_id=row.id, tag=tag))
        for e in events:
            row = Event(
                event_id=e["event_id"], title=e.get("title", e["event_id"]),
                category=e.get("category"), organizer=e.get("organizer"), city=e.get("city"),
                latitude=e.get("latitude"), longitude=e.get("longitude"),
                start_time=e["start"], end_time=e.get("end"),
                timezone=e.get("timezone", "UTC"), price=e.get("price"),
                capacity=e.get("capacity"),
            )
            session.add(row)
            session.flush()
            ids["events"][e["event_id"]] = row.id
            for tag in e.get("tags", ()):
                session.add(EventTag(event_id=row.id, tag=tag))
        session.flush()
        for k, i in enumerate(interactions):
            session.add(Interaction(
                user_id=ids["users"].get(i["email"]) or _user_id(session, i["email"]),
                event_id=ids["events"].get(i["event_id"]) or _event_id(session, i["event_id"]),
                type=i["type"], occurred_at=i.get("at", NOW - timedelta(hours=1, seconds=k)),
            ))
    from beacon.recommend import clear_caches

    clear_caches()
    return ids


def _user_id(session, email):
    from sqlalchemy import select

    from data_access.schema import User

    return session.scalar(select(User.id).where(User.email == email))


def _event_id(session, event_id):
    from sqlalchemy import select

    from data_access.schema import Event

    return session.scalar(select(Event.id).where(Event.event_id == event_id))


def local(zone: str, *args) -> datetime:
    """An aware datetime given in local wall time of `zone`."""
    return datetime(*args, tzinfo=ZoneInfo(zone))


def frame(rows: list[dict]) -> pd.DataFrame:
    """A candidate frame like catalog.candidate_events() returns."""
    records = []
    for k, r in enumerate(rows, start=1):
        records.append({
            "id": k, "event_id": r.get("event_id", f"e{k}"), "title": r.get("title", f"e{k}"),
            "category": None, "tags": (), "organizer": None, "city": None,
            "latitude": r.get("latitude", np.nan), "longitude": r.get("longitude", np.nan),
            "start_time": r["start"], "end_time": r.get("end"),
            "timezone": r.get("timezone", "UTC"), "price": np.nan, "capacity": None,
        })
    f = pd.DataFrame.from_records(records, columns=[
        "id", "event_id", "title", "category", "tags", "organizer", "city", "latitude",
        "longitude", "start_time", "end_time", "timezone", "price", "capacity"])
    f["start_time"] = pd.to_datetime(f["start_time"], utc=True)
    f["end_time"] = pd.to_datetime(f["end_time"], utc=True)
    return f


def run(rows: list[dict], now: datetime = NOW, **params):
    arrays = CandidateArrays.from_frame(frame(rows))
    outcome = apply_filters(arrays, FilterParams.parse(**params), now=now)
    return arrays, outcome


def stage(outcome, name):
    return next(s for s in outcome.stages if s.name == name)


# --------------------------------------------------------------------------- parsing


def test_parse_accepts_the_cli_strings() -> None:
    p = FilterParams.parse(lat="52.52", lon="13.40", max_km="2.5", dates="2026-12-02,2026-12-01",
                           start="18:00", end="23:00", reject="evt-1, evt-2,,evt-1")
    assert (p.latitude, p.longitude, p.max_km) == (52.52, 13.40, 2.5)
    assert p.dates == (date(2026, 12, 1), date(2026, 12, 2))
    assert (p.window_start, p.window_end) == (time(18, 0), time(23, 0))
    assert p.reject == ("evt-1", "evt-2")
    assert FilterParams.parse() == FilterParams()


@pytest.mark.parametrize("kwargs, message", [
    ({"dates": "2026-13-01"}, "malformed date"),
    ({"dates": "2026-12-1"}, "malformed date"),
    ({"dates": "tomorrow"}, "malformed date"),
    ({"dates": ""}, "no date"),
    ({"dates": ","}, "no date"),
    ({"dates": []}, "no date"),
    ({"start": "25:00", "end": "23:00"}, "malformed start time"),
    ({"start": "18:00", "end": "6pm"}, "malformed end time"),
    ({"start": "18:00"}, "end is missing"),
    ({"end": "18:00"}, "start is missing"),
    ({"start": "18:00", "end": "18:00"}, "empty"),
    ({"lat": "52.5"}, "both latitude and longitude"),
    ({"lon": "13.4"}, "both latitude and longitude"),
    ({"lat": "91", "lon": "0"}, "latitude 91 is out of range"),
    ({"lat": "0", "lon": "-180.5"}, "longitude -180.5 is out of range"),
    ({"lat": "north", "lon": "0"}, "latitude must be a number"),
    ({"lat": "nan", "lon": "0"}, "finite"),
    ({"max_km": "-1"}, "0 km or more"),
    ({"max_km": "far"}, "must be a number"),
])
def test_malformed_input_is_a_beacon_error(kwargs, message) -> None:
    with pytest.raises(BeaconError, match=message):
        FilterParams.parse(**kwargs)


# --------------------------------------------------------------------------- stages on arrays


def test_window_across_midnight() -> None:
    day = (2026, 12, 1)
    rows = [
        {"event_id": "late", "start": datetime(*day, 23, 0, tzinfo=UTC),
         "end": datetime(2026, 12, 2, 1, 30, tzinfo=UTC)},                     # passes
        {"event_id": "early", "start": datetime(*day, 21, 0, tzinfo=UTC),
         "end": datetime(*day, 23, 0, tzinfo=UTC)},                             # starts before
        {"event_id": "open", "start": datetime(*day, 23, 30, tzinfo=UTC)},      # no end: passes
        {"event_id": "three", "start": datetime(2026, 12, 2, 3, 0, tzinfo=UTC)},  # after the end
        {"event_id": "after-midnight", "start": datetime(2026, 12, 2, 0, 30, tzinfo=UTC),
         "end": datetime(2026, 12, 2, 2, 0, tzinfo=UTC)},                        # ends exactly at 02:00
        {"event_id": "too-long", "start": datetime(*day, 22, 30, tzinfo=UTC),
         "end": datetime(2026, 12, 2, 2, 30, tzinfo=UTC)},                       # ends after 02:00
        {"event_id": "multi-day", "start": datetime(*day, 22, 30, tzinfo=UTC),
         "end": datetime(2026, 12, 3, 1, 0, tzinfo=UTC)},                        # next-next day
    ]
    arrays, outcome = run(rows, start="22:00", end="02:00")
    window = stage(outcome, WINDOW)
    passed = dict(zip(arrays.event_id, window.mask))
    assert passed == {"late": True, "early": False, "open": True, "three": False,
                      "after-midnight": True, "too-long": False, "multi-day": False}
    assert window.reason(1) == "starts 21:00, outside the window 22:00-02:00"
    assert window.reason(3) == "starts 03:00, outside the window 22:00-02:00"
    assert window.reason(5) == "ends 2026-12-02 02:30, after the window end 02:00"


def test_window_same_day_and_event_without_end() -> None:
    day = (2026, 12, 1)
    rows = [
        {"start": datetime(*day, 18, 0, tzinfo=UTC), "end": datetime(*day, 23, 0, tzinfo=UTC)},
        {"start": datetime(*day, 19, 0, tzinfo=UTC), "end": datetime(*day, 23, 30, tzinfo=UTC)},
        {"start": datetime(*day, 22, 0, tzinfo=UTC)},   # no end time: only the start counts
        {"start": datetime(*day, 23, 30, tzinfo=UTC)},  # no end, but starts after the window
        {"start": datetime(*day, 17, 59, tzinfo=UTC)},
        {"start": datetime(*day, 20, 0, tzinfo=UTC), "end": datetime(2026, 12, 2, 20, 0, tzinfo=UTC)},
    ]
    arrays, outcome = run(rows, start="18:00", end="23:00")
    window = stage(outcome, WINDOW)
    assert window.mask.tolist() == [True, False, True, False, False, False]
    assert window.reason(1) == "ends 23:30, after the window end 23:00"
    assert "after the window end 23:00" in window.reason(5)


def test_window_uses_the_events_own_timezone() -> None:
    # 19:00 in Tokyo is 10:00 UTC and 11:00 in Berlin: the operator's zone never matters
    rows = [
        {"event_id": "tokyo", "timezone": "Asia/Tokyo",
         "start": local("Asia/Tokyo", 2026, 12, 1, 19, 0), "end": local("Asia/Tokyo", 2026, 12, 1, 21, 0)},
        {"event_id": "ny", "timezone": "America/New_York",
         "start": local("America/New_York", 2026, 12, 1, 10, 0)},
    ]
    arrays, outcome = run(rows, start="18:00", end="23:00", dates="2026-12-01")
    assert stage(outcome, WINDOW).mask.tolist() == [True, False]
    assert stage(outcome, DATES).mask.tolist() == [True, True]
    # the same instant as the Tokyo event, stored as UTC, is 10:00 on a UTC calendar
    assert arrays.frame["start_time"][0].hour == 10


def test_dates_use_the_event_local_date() -> None:
    # 23:30 in New York on Dec 1 is already Dec 2 in UTC
    rows = [{"timezone": "America/New_York", "start": local("America/New_York", 2026, 12, 1, 23, 30)}]
    _, on_first = run(rows, dates="2026-12-01")
    _, on_second = run(rows, dates="2026-12-02")
    assert stage(on_first, DATES).mask.tolist() == [True]
    assert stage(on_second, DATES).mask.tolist() == [False]
    assert stage(on_second, DATES).reason(0) == "on 2026-12-01, not a selected date"


@pytest.mark.parametrize("zone, day", [("Europe/Berlin", (2026, 10, 25)),
                                       ("America/New_York", (2026, 11, 1))])
def test_dst_change_day(zone: str, day: tuple) -> None:
    # the night the clocks go back: local wall times, computed with zoneinfo, decide
    before = datetime(*day, 0, 30, tzinfo=ZoneInfo(zone))
    rows = [
        # 00:30-03:30 local on the DST night (4 real hours): ends after a 00:00-03:00 window
        {"event_id": "night", "timezone": zone, "start": before,
         "end": datetime(*day, 3, 30, tzinfo=ZoneInfo(zone))},
        # 20:00 local that evening (after the change, standard time)
        {"event_id": "evening", "timezone": zone, "start": datetime(*day, 20, 0, tzinfo=ZoneInfo(zone)),
         "end": datetime(*day, 22, 0, tzinfo=ZoneInfo(zone))},
        # 01:30 in the repeated hour, second occurrence (fold=1)
        {"event_id": "fold", "timezone": zone,
         "start": datetime(*day, 1, 30, fold=1, tzinfo=ZoneInfo(zone))},
    ]
    arrays, outcome = run(rows, now=datetime(*day, tzinfo=UTC) - timedelta(days=2),
                          dates="-".join(f"{p:02d}" for p in day), start="00:00", end="03:00")
    assert stage(outcome, DATES).mask.tolist() == [True, True, True]
    assert stage(outcome, WINDOW).mask.tolist() == [False, False, True]
    assert arrays.local_start_text(1) == f"{day[0]}-{day[1]:02d}-{day[2]:02d} 20:00"
    assert arrays.local_start_text(2).endswith("01:30")
    # the UTC offset really changed that day
    assert arrays.local_start(0).utcoffset() != arrays.local_start(1).utcoffset()
    _, evening = run(rows, now=datetime(*day, tzinfo=UTC) - timedelta(days=2), start="19:30", end="22:00")
    assert stage(evening, WINDOW).mask.tolist() == [False, True, False]


def test_selected_dates_with_no_events() -> None:
    rows = [{"start": datetime(2026, 12, 1, 20, 0, tzinfo=UTC)},
            {"start": datetime(2026, 12, 2, 20, 0, tzinfo=UTC)}]
    _, outcome = run(rows, dates="2026-12-24,2026-12-25")
    assert not outcome.passed.any()
    assert dict(outcome.remaining())[DATES] == 0


def test_max_distance_zero_keeps_only_the_exact_point() -> None:
    rows = [{"latitude": 52.52, "longitude": 13.405, "start": datetime(2026, 12, 1, 20, tzinfo=UTC)},
            {"latitude": 52.5201, "longitude": 13.405, "start": datetime(2026, 12, 1, 20, tzinfo=UTC)},
            {"start": datetime(2026, 12, 1, 20, tzinfo=UTC)}]
    _, outcome = run(rows, lat=52.52, lon=13.405, max_km=0)
    distance = stage(outcome, DISTANCE)
    assert distance.mask.tolist() == [True, False, False]
    assert distance.reason(1) == "0.0 km away > 0.0 km"
    assert distance.reason(2) == "no location"


def test_an_event_exactly_at_the_max_distance_passes_and_one_just_beyond_fails() -> None:
    # the distance stage tests a dot product first; at the edge the haversine decides
    when = datetime(2026, 12, 1, 20, tzinfo=UTC)
    rows = [{"latitude": 52.52 + k * 0.0371, "longitude": 13.405 + k * 0.0213, "start": when}
            for k in range(1, 6)]
    arrays = CandidateArrays.from_frame(frame(rows))
    exact = haversine_km(arrays.lat_rad, arrays.lon_rad, arrays.cos_lat, 52.52, 13.405)
    for k in range(5):
        for limit, expected in ((exact[k], exact <= exact[k]),
                                (np.nextafter(exact[k], 0.0), exact < exact[k])):
            params = FilterParams(latitude=52.52, longitude=13.405, max_km=float(limit))
            for lazy in (False, True):
                outcome = apply_filters(arrays, params, now=NOW, lazy=lazy)
                assert stage(outcome, DISTANCE).mask.tolist() == expected.tolist()


def test_the_chord_distance_is_the_haversines_everywhere() -> None:
    rng = np.random.default_rng(3)
    when = datetime(2026, 12, 1, 20, tzinfo=UTC)
    rows = [{"latitude": float(lat), "longitude": float(lon), "start": when}
            for lat, lon in zip(rng.uniform(-89, 89, 500), rng.uniform(-180, 180, 500))]
    rows += [{"latitude": 48.8566, "longitude": 2.3522, "start": when},  # Paris
             {"start": when}]  # no location
    arrays = CandidateArrays.from_frame(frame(rows))
    for origin in ((52.52, 13.405), (0.0, 179.9), (-33.87, 151.21)):
        exact = haversine_km(arrays.lat_rad, arrays.lon_rad, arrays.cos_lat, *origin)
        fast = great_circle_km(arrays.xyz, unit_point(*origin))
        assert np.isnan(fast[-1]) and np.isnan(exact[-1])
        assert np.abs(fast[:-1] - exact[:-1]).max() < 1e-6
    assert great_circle_km(arrays.xyz[-2:-1], unit_point(52.52, 13.405))[0] == \
        pytest.approx(877.5, abs=1.0)  # Berlin to Paris


def test_ranking_distances_reuse_what_a_stage_measured_and_keep_nothing_new() -> None:
    """A ranking's decay reads the km the distance stage measured and computes the others by
    the chord without storing them, so a reason still shows the haversine's km."""
    when = datetime(2026, 12, 1, 20, tzinfo=UTC)
    rows = [{"latitude": 52.52 + k * 0.1, "longitude": 13.405, "start": when} for k in range(6)]
    arrays = CandidateArrays.from_frame(frame(rows))
    exact = haversine_km(arrays.lat_rad, arrays.lon_rad, arrays.cos_lat, 52.52, 13.405)
    every = np.arange(6)
    plain = apply_filters(arrays, FilterParams(latitude=52.52, longitude=13.405), now=NOW,
                          lazy=True)
    assert plain.ranking_distances(every) == pytest.approx(exact, abs=1e-6)
    assert plain._distances is None  # nothing was measured, and nothing was kept
    assert [plain.distance(i) for i in every] == pytest.approx(exact, abs=1e-9)
    # a limit whose edge the exact haversine decides: those rows are measured and reused
    edge = float(exact[3])
    near = apply_filters(arrays, FilterParams(latitude=52.52, longitude=13.405, max_km=edge),
                         now=NOW, lazy=False)
    measured = near._measured.copy()
    assert measured.any()
    ranked = near.ranking_distances(every)
    assert ranked[measured].tolist() == near._distances[measured].tolist()
    assert ranked == pytest.approx(exact, abs=1e-6)
    assert near._measured.tolist() == measured.tolist()


def test_date_and_window_masks_are_shared_by_requests_on_one_snapshot() -> None:
    rows = [{"start": datetime(2026, 12, 1, 20, 0, tzinfo=UTC)},
            {"start": datetime(2026, 12, 2, 9, 0, tzinfo=UTC)}]
    arrays = CandidateArrays.from_frame(frame(rows))
    params = FilterParams.parse(dates="2026-12-01", start="18:00", end="23:00")
    first = apply_filters(arrays, params, now=NOW)
    second = apply_filters(arrays, params, now=NOW, lazy=True)
    assert first.passed.tolist() == second.passed.tolist() == [True, False]
    day = (date(2026, 12, 1) - date(1970, 1, 1)).days
    assert arrays.dates_mask((day,)) is arrays.dates_mask((day,))  # built once per snapshot
    window = arrays.window_mask(18 * 3600, 23 * 3600)
    assert window.tolist() == [True, False]
    with pytest.raises(ValueError):
        window[0] = False  # read-only: one request cannot spoil the next


def test_antimeridian_distance() -> None:
    d = haversine_km(np.radians([0.0]), np.radians([-179.9]), np.cos(np.radians([0.0])), 0.0, 179.9)
    assert 22.0 < d[0] < 22.5
    rows = [{"latitude": 0.0, "longitude": -179.9, "start": datetime(2026, 12, 1, tzinfo=UTC)},
            {"latitude": 0.0, "longitude": 0.0, "start": datetime(2026, 12, 1, tzinfo=UTC)},
            {"latitude": 65.0, "longitude": -170.0, "start": datetime(2026, 12, 1, tzinfo=UTC)}]
    _, outcome = run(rows, lat=0.0, lon=179.9, max_km=25)
    assert stage(outcome, DISTANCE).mask.tolist() == [True, False, False]
    assert stage(outcome, DISTANCE).reason(1) == "20004.0 km away > 25.0 km"


def test_empty_candidate_set() -> None:
    arrays, outcome = run([], lat=1, lon=1, max_km=5, dates="2026-12-01", start="22:00",
                          end="02:00", reject="nope")
    assert arrays.n == 0
    assert outcome.remaining() == [(name, 0) for name in STAGE_NAMES]
    assert outcome.unknown_rejects == ("nope",)


def test_unknown_rejects_are_ignored_and_reported() -> None:
    rows = [{"event_id": "a", "start": datetime(2026, 12, 1, tzinfo=UTC)},
            {"event_id": "b", "start": datetime(2026, 12, 1, tzinfo=UTC)}]
    _, outcome = run(rows, reject="b,ghost-1,ghost-2")
    assert stage(outcome, NOT_REJECTED).mask.tolist() == [True, False]
    assert stage(outcome, NOT_REJECTED).reason(1) == "rejected"
    assert outcome.unknown_rejects == ("ghost-1", "ghost-2")


def test_past_events_fail_upcoming_with_local_time() -> None:
    rows = [{"timezone": "Europe/Berlin", "start": local("Europe/Berlin", 2026, 11, 20, 19, 0)},
            {"start": NOW + timedelta(minutes=1)}, {"start": NOW}]
    _, outcome = run(rows)
    up = stage(outcome, UPCOMING)
    assert up.mask.tolist() == [False, True, False]
    assert up.reason(0) == "started 2026-11-20 19:00 (past)"


def test_stage_counts_are_monotone_and_first_failure_is_reported() -> None:
    rows = [{"event_id": f"e{k}", "latitude": 52.5, "longitude": 13.4 + k * 0.05,
             "start": datetime(2026, 12, 1 + k % 3, 17 + k % 6, tzinfo=UTC)} for k in range(30)]
    rows.append({"event_id": "past", "start": NOW - timedelta(hours=2)})
    _, outcome = run(rows, lat=52.5, lon=13.4, max_km=10, dates="2026-12-01,2026-12-02",
                     start="18:00", end="21:00", reject="e3")
    counts = [n for _, n in outcome.remaining()]
    assert counts[0] == 31
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert counts[-1] == int(outcome.passed.sum()) > 0
    first = outcome.first_failure()
    assert outcome.stages[first[-1]].name == UPCOMING
    assert outcome.stages[first[3]].name == NOT_REJECTED
    assert (first == -1).sum() == counts[-1]


def test_a_max_distance_needs_a_reference_point() -> None:
    with pytest.raises(BeaconError, match="point"):
        run([{"start": datetime(2026, 12, 1, tzinfo=UTC)}], max_km=5)


# --------------------------------------------------------------------------- through the DB


def test_debug_filter_edge_cases_on_the_database(db: str) -> None:
    from beacon.recommend import debug_filter

    seed(
        users=[{"email": "ana@example.com", "latitude": 0.0, "longitude": 179.95, "city": "Suva"}],
        events=[
            {"event_id": "across", "start": datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
             "end": datetime(2026, 12, 2, 1, 30, tzinfo=UTC), "latitude": 0.0, "longitude": -179.95},
            {"event_id": "no-end", "start": local("Pacific/Fiji", 2026, 12, 1, 23, 30),
             "timezone": "Pacific/Fiji", "latitude": 0.0, "longitude": 179.9},
            {"event_id": "too-early", "start": datetime(2026, 12, 1, 21, 0, tzinfo=UTC),
             "end": datetime(2026, 12, 1, 23, 0, tzinfo=UTC), "latitude": 0.0, "longitude": 179.9},
            {"event_id": "nowhere", "start": datetime(2026, 12, 1, 23, 0, tzinfo=UTC)},
            {"event_id": "far", "start": datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
             "latitude": 10.0, "longitude": 10.0},
            {"event_id": "past", "start": NOW - timedelta(hours=3)},
            {"event_id": "old", "start": NOW - timedelta(days=30)},  # not even a candidate
        ],
    )
    result = debug_filter("ana@example.com", FilterParams.parse(
        max_km=30, start="22:00", end="02:00", reject="ghost"), now=NOW)
    by_id = {e.event_id: e for e in result.events}
    assert set(by_id) == {"across", "no-end", "too-early", "nowhere", "far", "past"}
    assert [s.name for s in result.stages] == list(STAGE_NAMES)
    assert result.stages[0].remaining == 6
    assert {k for k, e in by_id.items() if e.passed} == {"across", "no-end"}
    assert by_id["nowhere"].failed_stage == DISTANCE and by_id["nowhere"].reason == "no location"
    assert by_id["far"].failed_stage == DISTANCE and "km away > 30.0 km" in by_id["far"].reason
    assert by_id["too-early"].failed_stage == WINDOW
    assert by_id["past"].failed_stage == UPCOMING and by_id["past"].reason.endswith("(past)")
    assert by_id["no-end"].local_start.tzinfo == ZoneInfo("Pacific/Fiji")
    assert by_id["no-end"].local_start.hour == 23
    assert by_id["across"].distance_km == pytest.approx(11.1, abs=0.2)
    assert result.unknown_rejects == ("ghost",)
    payload = result.to_json()
    assert payload["stages"][0] == {"name": "all candidates", "remaining": 6, "enabled": True}
    assert {"event_id", "passed", "failed_stage", "reason"} <= set(payload["events"][0])


def test_debug_filter_with_no_candidates(db: str) -> None:
    from beacon.recommend import debug_filter

    seed(users=[{"email": "solo@example.com"}])
    result = debug_filter("solo@example.com", FilterParams.parse(dates="2026-12-01", reject="x"),
                          now=NOW)
    assert result.events == []
    assert [s.remaining for s in result.stages] == [0] * len(STAGE_NAMES)
    assert result.unknown_rejects == ("x",)


def test_lazy_and_full_evaluation_agree() -> None:
    # recommend() evaluates stages only on surviving rows; the debug filter on all of them
    rng = np.random.default_rng(3)
    zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Pacific/Fiji"]
    rows = []
    for k in range(400):
        start = NOW + timedelta(minutes=int(rng.integers(-3000, 20000)))
        rows.append({
            "event_id": f"e{k}", "timezone": zones[k % 5], "start": start,
            "end": start + timedelta(minutes=int(rng.integers(30, 600))) if k % 3 else None,
            "latitude": float(rng.normal(52.5, 0.3)) if k % 7 else np.nan,
            "longitude": float(rng.normal(13.4, 0.3)) if k % 7 else np.nan,
        })
    params = FilterParams.parse(lat=52.5, lon=13.4, max_km=20, start="20:00", end="01:00",
                                dates=",".join(f"2026-11-{d}" for d in range(23, 31)),
                                reject="e1,e2,e3,zz")
    kwargs = dict(now=NOW, registered=[5, 6, 7], stored_rejects=[8, 9])
    # unsorted, and sorted by start like the catalog delivers them (upcoming = a suffix)
    for ordered in (rows, sorted(rows, key=lambda r: r["start"])):
        arrays = CandidateArrays.from_frame(frame(ordered))
        assert arrays.sorted_by_start == (ordered is not rows)
        full = apply_filters(arrays, params, **kwargs)
        lazy = apply_filters(arrays, params, lazy=True, **kwargs)
        assert full.remaining() == lazy.remaining()
        assert (full.passed == lazy.passed).all() and 0 < full.passed.sum() < 400
        idx = np.flatnonzero(full.passed)
        assert np.allclose(full.distances(idx), lazy.distances(idx))
        assert lazy.unknown_rejects == full.unknown_rejects == ("zz",)
        # one row at a time (what a response shows) matches the vectorized distances
        fresh = apply_filters(arrays, params, lazy=True, **kwargs)
        for i in range(0, 400, 37):
            expected = full.distance_km[i]
            got = fresh.distance(i)
            assert (got is None and np.isnan(expected)) or got == pytest.approx(expected)
        nothing = apply_filters(arrays, FilterParams(), lazy=True, now=NOW)
        assert nothing.remaining() == apply_filters(arrays, FilterParams(), now=NOW).remaining()


def test_an_events_tokens_are_computed_once_per_snapshot() -> None:
    from beacon.features import event_tokens

    rows = [{"start": datetime(2026, 12, 1, 20, 0, tzinfo=UTC), "latitude": 52.52,
             "longitude": 13.405, "timezone": "Europe/Berlin"},
            {"start": datetime(2026, 12, 2, 9, 0, tzinfo=UTC)}]
    arrays = CandidateArrays.from_frame(frame(rows))
    for i in range(arrays.n):
        assert arrays.tokens(i) == event_tokens(arrays.row(i))
        assert arrays.tokens(i) is arrays.tokens(i)  # cached with the snapshot
    # 20:00 UTC is 21:00 in Berlin: the event's own evening; 09:00 UTC a morning
    assert {"time:evening", "day:tue"} <= set(arrays.tokens(0))
    assert {"time:morning", "day:wed"} <= set(arrays.tokens(1))


def test_one_hours_band_is_the_vectorized_band() -> None:
    from beacon.features import _hour_band, _hour_band_of

    assert [_hour_band_of(h) for h in range(24)] == _hour_band(np.arange(24)).tolist()
