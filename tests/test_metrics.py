"""Online metrics against numbers counted by hand on a small fixture (SQLite and Postgres).

The fixture, range R = [2026-11-01 00:00, 2026-11-04 00:00) UTC. Users u1..u3; events
e1, e2 (jazz), e3 (sports), e4 (no category). Impressions (model_version, strategy, position):

  i1  u1 e1 11-01 10:00  1 global 1        i6  u1 e1 11-02 20:00  2 global 1
  i2  u1 e3 11-01 10:00  1 global 2        i7  u3 e4 11-03 23:59:59 2 global 2
  i3  u2 e1 11-01 12:00  1 global 1        i8  u2 e3 10-31 23:00  1 global 5   (before R)
  i4  u2 e2 11-02 09:00  2 global 1        i9  u1 e2 11-04 00:00  2 global 1   (= end: out)
  i5  u3 e3 11-02 09:00  - popularity 3    i10 u3 e1 11-01 00:00  1 personal 4 (= start: in)

Clicks, registrations and the impression each is attributed to (click 24 h, register 7 days):

  c1  u1 e1 click 11-01 10:05    -> i1          r1  u1 e1 register 11-02 21:00 -> i6
  c2  u2 e1 click 11-02 13:00    -> none (i3 is 25 h before)
  c3  u1 e1 click 11-02 20:30    -> i6 (the most recent, not i1)
  c4  u2 e3 click 11-01 00:30    -> i8 (before R: position 5 has a click, no impression)
  c5  u3 e3 click 11-02 09:00    -> i5 (same instant: "at or before")
  c6  u1 e3 click 10-31 12:00    (before R)  c7 u3 e1 click 11-04 00:00 (= end: out)
  r2  u2 e1 register 11-03 10:00 -> i3 (46 h: outside the click window, inside 7 days)
  r3  u3 e4 register 11-03 12:00 -> none (i7 comes after it)
  r4  u2 e2 register 11-05 10:00 (after R)
  x1  u1 e1 unregister 11-03 08:00 (an unregistration, never a registration)
  v1  u1 e1 view 11-01 10:06 (ignored)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from beacon import metrics
from beacon.errors import BeaconError
from data_access import metrics as store
from data_access.db import get_engine
from data_access.schema import Event, Interaction, ModelVersion, User

REPO_ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
END = datetime(2026, 11, 4, tzinfo=timezone.utc)


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=timezone.utc)


@pytest.fixture
def fixture_db(db: str) -> str:
    load_fixture(db)
    return db


def load_fixture(db: str) -> None:
    """Insert the fixture of this module's docstring (plain Core inserts)."""
    users = [{"id": i, "email": f"u{i}@example.org", "name": f"User {i}"} for i in (1, 2, 3)]
    events = [
        {"id": 1, "event_id": "e1", "title": "Jazz 1", "category": "jazz", "start_time": at(20)},
        {"id": 2, "event_id": "e2", "title": "Jazz 2", "category": "jazz", "start_time": at(21)},
        {"id": 3, "event_id": "e3", "title": "Match", "category": "sports", "start_time": at(22)},
        {"id": 4, "event_id": "e4", "title": "Misc", "category": None, "start_time": at(23)},
    ]

    def imp(user, event, when, version, strategy, position):
        return {"user_id": user, "event_id": event, "type": "impression", "occurred_at": when,
                "model_version": version, "strategy": strategy, "position": position}

    def act(user, event, kind, when):
        return {"user_id": user, "event_id": event, "type": kind, "occurred_at": when,
                "model_version": None, "strategy": None, "position": None}

    rows = [
        imp(1, 1, at(1, 10), 1, "global", 1),           # i1
        imp(1, 3, at(1, 10), 1, "global", 2),           # i2
        imp(2, 1, at(1, 12), 1, "global", 1),           # i3
        imp(2, 2, at(2, 9), 2, "global", 1),            # i4
        imp(3, 3, at(2, 9), None, "popularity", 3),     # i5
        imp(1, 1, at(2, 20), 2, "global", 1),           # i6
        imp(3, 4, at(3, 23, 59, 59), 2, "global", 2),   # i7
        imp(2, 3, at(31, 23, month=10), 1, "global", 5),  # i8
        imp(1, 2, at(4), 2, "global", 1),               # i9
        imp(3, 1, at(1), 1, "personal", 4),             # i10
        act(1, 1, "click", at(1, 10, 5)),               # c1
        act(2, 1, "click", at(2, 13)),                  # c2
        act(1, 1, "click", at(2, 20, 30)),              # c3
        act(2, 3, "click", at(1, 0, 30)),               # c4
        act(3, 3, "click", at(2, 9)),                   # c5
        act(1, 3, "click", at(31, 12, month=10)),       # c6
        act(3, 1, "click", at(4)),                      # c7
        act(1, 1, "register", at(2, 21)),               # r1
        act(2, 1, "register", at(3, 10)),               # r2
        act(3, 4, "register", at(3, 12)),               # r3
        act(2, 2, "register", at(5, 10)),               # r4
        act(1, 1, "unregister", at(3, 8)),              # x1
        act(1, 1, "view", at(1, 10, 6)),                # v1
    ]
    models = [
        {"id": 1, "scope": "global", "status": "inactive", "activated_at": at(25, month=10)},
        {"id": 2, "scope": "global", "status": "active", "activated_at": at(2, 8)},
        {"id": 3, "scope": "user", "user_id": 1, "base_model_id": 2, "status": "active",
         "activated_at": at(2, 9)},
        {"id": 4, "scope": "global", "status": "inactive", "activated_at": None},
        {"id": 5, "scope": "global", "status": "inactive", "activated_at": END},
    ]
    with get_engine(db).begin() as connection:
        connection.execute(insert(User.__table__), users)
        connection.execute(insert(Event.__table__), events)
        connection.execute(insert(Interaction.__table__), rows)
        connection.execute(insert(ModelVersion.__table__), models)


def plain(value):
    """A frame cell as plain Python: None for None/<NA>/NaN, int for integral numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def by_key(frame: pd.DataFrame, key: str) -> dict:
    """{key: (impressions, clicks, registrations)} with plain Python values."""
    return {
        plain(row[key]): (int(row["impressions"]), int(row["clicks"]), int(row["registrations"]))
        for row in frame.to_dict("records")
    }


# ---- wilson_interval ---------------------------------------------------------------------


def test_wilson_interval_known_values() -> None:
    low, high = metrics.wilson_interval(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-4)
    assert high == pytest.approx(0.1744, abs=1e-4)
    low, high = metrics.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = metrics.wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=1e-4)
    low, high = metrics.wilson_interval(50, 100, z=2.576)  # 99%
    assert (low, high) == (pytest.approx(0.3753, abs=1e-4), pytest.approx(0.6247, abs=1e-4))


def test_wilson_interval_without_trials_or_proportion_is_none() -> None:
    assert metrics.wilson_interval(0, 0) is None
    assert metrics.wilson_interval(3, 0) is None
    assert metrics.wilson_interval(3, 2) is None
    assert metrics.wilson_interval(-1, 5) is None


# ---- store: aggregates in the database ------------------------------------------------------


def test_counts_by_day(fixture_db: str) -> None:
    frame = store.counts_by_day(START, END)
    assert [tuple(r) for r in frame.itertuples(index=False)] == [
        (date(2026, 11, 1), 4, 2, 0, 0),
        (date(2026, 11, 2), 3, 3, 1, 0),
        (date(2026, 11, 3), 1, 0, 2, 1),
    ]


def test_days_are_utc_days_whatever_the_session_time_zone(fixture_db: str, dialect: str) -> None:
    url = fixture_db
    if dialect == "postgresql":  # a session at UTC+14 must still bucket by the UTC date
        parsed = make_url(url)
        options = f"{parsed.query.get('options', '')} -cTimeZone=Pacific/Kiritimati".strip()
        url = parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    frame = store.counts_by_day(START, END, url=url)
    assert [tuple(r) for r in frame.itertuples(index=False)] == [
        (date(2026, 11, 1), 4, 2, 0, 0),
        (date(2026, 11, 2), 3, 3, 1, 0),
        (date(2026, 11, 3), 1, 0, 2, 1),
    ]
    assert store.attributed_counts(START, END, url=url)["clicks"].sum() == 5


def test_counts_by_category(fixture_db: str) -> None:
    frame = store.counts_by_category(START, END)
    rows = {plain(r["category"]): (r["impressions"], r["clicks"], r["registrations"],
                            r["unregistrations"]) for r in frame.to_dict("records")}
    assert rows == {"jazz": (5, 3, 2, 1), "sports": (2, 2, 0, 0), None: (1, 0, 1, 0)}


def test_count_totals_and_range_boundaries(fixture_db: str) -> None:
    assert store.count_totals(START, END) == {
        "impressions": 8, "clicks": 5, "registrations": 3, "unregistrations": 1}
    # Start inclusive: exactly 11-01 00:00 holds i10 and nothing else at that instant.
    assert store.count_totals(at(1), at(1, 0, 0, 1))["impressions"] == 1
    # End exclusive: [11-04 00:00, +1 s) holds i9 and c7, which R leaves out.
    assert store.count_totals(END, END + timedelta(seconds=1)) == {
        "impressions": 1, "clicks": 1, "registrations": 0, "unregistrations": 0}
    assert store.count_totals(at(3, 23, 59, 59), END)["impressions"] == 1  # i7, last second


def test_attributed_counts(fixture_db: str) -> None:
    frame = store.attributed_counts(START, END)
    rows = {
        (r["attributed"], plain(r["model_version"]), r["strategy"], plain(r["position"])):
        (r["impressions"], r["clicks"], r["registrations"])
        for r in frame.to_dict("records")
    }
    assert rows == {
        (1, 1, "global", 1): (2, 1, 1),       # i1, i3; c1; r2
        (1, 1, "global", 2): (1, 0, 0),       # i2
        (1, 1, "global", 5): (0, 1, 0),       # c4 via i8 before the range
        (1, 1, "personal", 4): (1, 0, 0),     # i10
        (1, 2, "global", 1): (2, 1, 1),       # i4, i6; c3; r1
        (1, 2, "global", 2): (1, 0, 0),       # i7
        (1, None, "popularity", 3): (1, 1, 0),  # i5; c5
        (0, None, None, None): (0, 1, 1),     # c2, r3
    }


def test_attribution_windows_are_parameters(fixture_db: str) -> None:
    # A 26 h click window lets c2 reach i3; a 1 day registration window loses r2.
    frame = store.attributed_counts(START, END, timedelta(hours=26), timedelta(days=1))
    unattributed = frame[frame["attributed"] == 0].iloc[0]
    assert (unattributed["clicks"], unattributed["registrations"]) == (0, 2)


def test_attribution_window_edges_to_the_microsecond(fixture_db: str) -> None:
    # In December, away from the fixture: an impression at 05:00:00.250000, a click exactly 24 h
    # later (attributed), a click 1 microsecond after that (not), a registration exactly 7 days
    # later (attributed).
    shown = datetime(2026, 12, 1, 5, 0, 0, 250000, tzinfo=timezone.utc)
    none = {"model_version": None, "strategy": None, "position": None}
    rows = [
        {"user_id": 1, "event_id": 2, "type": "impression", "occurred_at": shown,
         "model_version": 7, "strategy": "edge", "position": 9},
        {"user_id": 1, "event_id": 2, "type": "click", "occurred_at": shown + timedelta(hours=24),
         **none},
        {"user_id": 1, "event_id": 2, "type": "click",
         "occurred_at": shown + timedelta(hours=24, microseconds=1), **none},
        {"user_id": 1, "event_id": 2, "type": "register", "occurred_at": shown + timedelta(days=7),
         **none},
    ]
    with get_engine(fixture_db).begin() as connection:
        connection.execute(insert(Interaction.__table__), rows)
    frame = store.attributed_counts(at(1, month=12), at(9, month=12))
    rows = {(r["attributed"], plain(r["model_version"]), r["strategy"], plain(r["position"])):
            (r["impressions"], r["clicks"], r["registrations"]) for r in frame.to_dict("records")}
    assert rows == {(1, 7, "edge", 9): (1, 1, 1), (0, None, None, None): (0, 1, 0)}


def test_model_activations(fixture_db: str) -> None:
    assert store.model_activations(START, END) == [
        {"model_version": 2, "activated_at": at(2, 8), "status": "active"}
    ]


def test_naive_range_is_refused_by_the_store(fixture_db: str) -> None:
    with pytest.raises(ValueError):
        store.count_totals(datetime(2026, 11, 1), END)


# ---- service --------------------------------------------------------------------------------


def test_online_metrics_every_aggregate(fixture_db: str) -> None:
    result = metrics.online_metrics(start=START, end=END)
    assert (result.start, result.end) == (START, END)

    totals = result.totals
    assert (totals["impressions"], totals["clicks"], totals["registrations"],
            totals["unregistrations"]) == (8, 5, 3, 1)
    assert (totals["attributed_clicks"], totals["unattributed_clicks"]) == (4, 1)
    assert (totals["attributed_registrations"], totals["unattributed_registrations"]) == (2, 1)
    assert totals["ctr"] == 5 / 8
    assert totals["conversion"] == 3 / 8
    assert totals["click_conversion"] == 3 / 5
    assert (totals["ctr_low"], totals["ctr_high"]) == metrics.wilson_interval(5, 8)

    assert by_key(result.by_day, "day") == {
        date(2026, 11, 1): (4, 2, 0), date(2026, 11, 2): (3, 3, 1), date(2026, 11, 3): (1, 0, 2)}
    assert list(result.by_day["unregistrations"]) == [0, 0, 1]
    assert by_key(result.by_model_version, "model_version") == {
        1: (4, 2, 1), 2: (3, 1, 1), None: (1, 1, 0)}
    assert [plain(v) for v in result.by_model_version["model_version"]] == [1, 2, None]
    assert by_key(result.by_strategy, "strategy") == {
        "global": (6, 3, 2), "personal": (1, 0, 0), "popularity": (1, 1, 0)}
    assert by_key(result.by_category, "category") == {
        "jazz": (5, 3, 2), "sports": (2, 2, 0), "(none)": (1, 0, 1)}
    assert list(result.by_category["category"]) == ["jazz", "sports", "(none)"]
    assert by_key(result.by_position, "position") == {
        1: (4, 2, 2), 2: (2, 0, 0), 3: (1, 1, 0), 4: (1, 0, 0), 5: (0, 1, 0)}
    assert list(result.by_position["position"]) == [1, 2, 3, 4, 5]

    funnel = result.funnel.to_dict("records")
    assert [(r["stage"], r["count"], r["attributed"]) for r in funnel] == [
        ("impression", 8, 8), ("click", 5, 4), ("registration", 3, 2)]
    assert funnel[1]["rate_from_previous"] == 5 / 8
    assert funnel[2]["rate_from_previous"] == 3 / 5
    assert funnel[2]["rate_from_first"] == 3 / 8
    assert pd.isna(funnel[0]["rate_from_previous"])

    assert result.activations == [
        {"model_version": 2, "activated_at": at(2, 8), "status": "active"}]


def test_rates_and_intervals_per_group(fixture_db: str) -> None:
    result = metrics.online_metrics(start=START, end=END)
    row = result.by_model_version.iloc[0]  # version 1: 4 impressions, 2 clicks, 1 registration
    assert (row["ctr"], row["conversion"], row["click_conversion"]) == (0.5, 0.25, 0.5)
    assert (row["ctr_low"], row["ctr_high"]) == metrics.wilson_interval(2, 4)
    assert (row["conversion_low"], row["conversion_high"]) == metrics.wilson_interval(1, 4)
    assert (row["click_conversion_low"], row["click_conversion_high"]) == \
        metrics.wilson_interval(1, 2)


def test_zero_impression_groups_have_no_rate(fixture_db: str) -> None:
    result = metrics.online_metrics(start=START, end=END)
    position5 = result.by_position[result.by_position["position"] == 5].iloc[0]
    assert (position5["impressions"], position5["clicks"]) == (0, 1)
    for column in ("ctr", "ctr_low", "ctr_high", "conversion", "conversion_low"):
        assert pd.isna(position5[column])
    assert position5["click_conversion"] == 0.0  # 0 registrations of 1 click is a rate

    # Days with no interactions at all are listed with zeros; 11-05 has a registration only.
    later = metrics.online_metrics(start=date(2026, 11, 4), end=date(2026, 11, 7))
    assert by_key(later.by_day, "day") == {
        date(2026, 11, 4): (1, 1, 0), date(2026, 11, 5): (0, 0, 1), date(2026, 11, 6): (0, 0, 0)}
    assert later.by_day["ctr"].tolist()[0] == 1.0
    assert later.by_day["ctr"].isna().tolist() == [False, True, True]
    assert later.by_day["click_conversion"].isna().tolist() == [False, True, True]


def test_empty_range_gives_zeros_not_errors(fixture_db: str) -> None:
    result = metrics.online_metrics(start=at(1, month=1), end=at(3, month=1))
    assert result.totals["impressions"] == 0 and result.totals["ctr"] is None
    assert len(result.by_day) == 2 and result.by_model_version.empty
    assert result.by_position.empty and result.by_category.empty
    assert result.funnel["count"].tolist() == [0, 0, 0]
    json.dumps(result.as_dict(), allow_nan=False)


def test_default_range_is_the_last_days_before_now(fixture_db: str) -> None:
    result = metrics.online_metrics(days=3, now=END)
    assert (result.start, result.end) == (START, END)
    assert result.totals["impressions"] == 8
    partial = metrics.online_metrics(days=30, end=END, start="2026-11-03T00:00:00Z")
    assert (partial.totals["impressions"], partial.totals["registrations"]) == (1, 2)
    only_end = metrics.online_metrics(days=np.int64(1), end="2026-11-02")
    assert only_end.start == at(1) and only_end.totals["impressions"] == 4
    # a start with days: those days from it; a start alone: up to now
    assert metrics.resolve_range(2, start=at(1), now=END) == (at(1), at(3))
    assert metrics.resolve_range(start=at(1), now=END) == (at(1), END)


@pytest.mark.parametrize("kwargs", [
    {"start": "0001-01-01T00:00:00+01:00"},
    {"start": "9999-12-31T23:59:59-01:00"},
    {"end": "0001-01-02", "days": 5},
])
def test_a_range_off_the_calendar_is_bad_input(fixture_db: str, kwargs: dict) -> None:
    with pytest.raises(BeaconError, match="out of range|runs out of the calendar"):
        metrics.resolve_range(**kwargs)


def test_compare_periods(fixture_db: str) -> None:
    comparison = metrics.compare_periods(days=2, now=END)
    current, previous = comparison.current, comparison.previous
    assert (current["start"], current["end"]) == (at(2), END)
    assert (previous["start"], previous["end"]) == (at(31, month=10), at(2))
    # current 11-02..11-03: i4 i5 i6 i7; c2 c3 c5; r1 r2 r3.
    assert (current["impressions"], current["clicks"], current["registrations"]) == (4, 3, 3)
    # previous 10-31..11-01: i1 i2 i3 i10 i8; c1 c4 c6; no registration.
    assert (previous["impressions"], previous["clicks"], previous["registrations"]) == (5, 3, 0)
    assert current["ctr"] == 3 / 4 and previous["ctr"] == 3 / 5
    assert comparison.change["ctr"] == pytest.approx(3 / 4 - 3 / 5)
    assert comparison.change["conversion"] == pytest.approx(3 / 4 - 0)
    assert (current["ctr_low"], current["ctr_high"]) == metrics.wilson_interval(3, 4)
    json.dumps(comparison.as_dict(), allow_nan=False)

    quiet = metrics.compare_periods(days=7, now=at(1, month=1))
    assert quiet.current["ctr"] is None and quiet.change["ctr"] is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": END, "end": START},
        {"start": START, "end": START},
        {"days": 0},
        {"days": -3},
        {"start": "yesterday", "end": END},
        {"start": "2026-13-01", "end": END},
        {"start": "2000-01-01", "end": END},  # longer than MAX_RANGE_DAYS
        {"days": 10**9},
        {"days": 2.5},
    ],
)
def test_bad_ranges_raise_beacon_error(fixture_db: str, kwargs: dict) -> None:
    with pytest.raises(BeaconError):
        metrics.online_metrics(**kwargs)


def test_compare_periods_bad_days(fixture_db: str) -> None:
    with pytest.raises(BeaconError):
        metrics.compare_periods(days=0)


# ---- command line ---------------------------------------------------------------------------


def _cli(db: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db}
    return subprocess.run(
        [sys.executable, "-m", "beacon", "metrics", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_cli_json_shape(fixture_db: str) -> None:
    done = _cli(fixture_db, "--json", "--start", "2026-11-01", "--end", "2026-11-04")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    for key in ("totals", "by_day", "by_model_version", "by_strategy", "by_category",
                "by_position", "funnel"):
        assert key in document
    totals = document["totals"]
    assert (totals["impressions"], totals["clicks"], totals["registrations"]) == (8, 5, 3)
    assert [row["day"] for row in document["by_day"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert {row["model_version"]: row["clicks"] for row in document["by_model_version"]} == {
        1: 2, 2: 1, None: 1}
    position5 = [row for row in document["by_position"] if row["position"] == 5][0]
    assert position5["impressions"] == 0 and position5["ctr"] is None
    assert [row["stage"] for row in document["funnel"]] == ["impression", "click", "registration"]
    assert document["activations"][0]["model_version"] == 2


def test_cli_human_output_and_bad_range(fixture_db: str) -> None:
    done = _cli(fixture_db, "--start", "2026-11-01", "--end", "2026-11-04")
    assert done.returncode == 0, done.stderr
    assert "popularity" in done.stdout and "jazz" in done.stdout and "2026-11-02" in done.stdout
    bad = _cli(fixture_db, "--start", "2026-11-04", "--end", "2026-11-01")
    assert bad.returncode == 2
    assert bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    assert "start" in bad.stderr
    assert _cli(fixture_db, "--days", "0").returncode == 2


def test_model_versions_are_labelled_by_what_the_database_stores(fixture_db: str) -> None:
    """v3 is a per-user version in the fixture; v9 is named by an impression but not stored
    (impressions imported from another system, or the demo's history)."""
    with get_engine(fixture_db).begin() as connection:
        connection.execute(insert(Interaction.__table__), [
            {"id": 500, "user_id": 1, "event_id": 4, "type": "impression", "occurred_at": at(2, 1),
             "model_version": 3, "strategy": "personal", "position": 1},
            {"id": 501, "user_id": 2, "event_id": 4, "type": "impression", "occurred_at": at(2, 1),
             "model_version": 9, "strategy": "global", "position": 1},
        ])
    frame = metrics.online_metrics(start=START, end=END).by_model_version
    labels = dict(zip(frame["label"], frame["scope"]))
    assert labels == {"v1": "global", "v2": "global", "v3 · personal": "user",
                      "v9 · not stored": None, "(none)": None}
