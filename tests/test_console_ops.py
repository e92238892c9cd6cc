"""The console's frame and its Overview, Training, Models and Metrics pages, through AppTest on a
real database (SQLite file, or Postgres with BEACON_TEST_DATABASE_URL): each page renders
without exception, shows the fixture's numbers, and its buttons do what they say."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from beacon import bootstrap, console
from beacon.demo import load_demo_data
from data_access import catalog, runs

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard.py"
TIMEOUT = 120  # seconds AppTest may take for one script run (the first imports torch)
DEMO = dict(users=60, events=40, days=14, seed=3)


def app(page: str | None = None) -> AppTest:
    """The console from dashboard.py, optionally switched to one page, run once."""
    st.cache_data.clear()
    at = AppTest.from_file(str(DASHBOARD), default_timeout=TIMEOUT)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption]
    parts += [e.value for e in at.error] + [e.value for e in at.info] + [e.value for e in at.warning]
    parts += [e.value for e in at.success]
    return "\n".join(str(p) for p in parts)


def metric(at: AppTest, label: str) -> str:
    for element in at.metric:
        if element.label == label:
            return element.value
    raise AssertionError(f"no metric {label!r} among {[m.label for m in at.metric]}")


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; bounded, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


@pytest.fixture
def seeded(db: str) -> str:
    load_demo_data(**DEMO)
    return db


# --------------------------------------------------------------------------------------------
# The frame

def test_frame_lists_pages_and_describes_database(seeded: str, dialect: str) -> None:
    at = app()
    no_exception(at)
    sidebar = "\n".join(m.value for m in at.sidebar.markdown)
    assert f"**Database** · {dialect}" in sidebar
    assert "beacon:beacon" not in sidebar and "password" not in sidebar.lower()
    assert "**Model** · none active" in sidebar
    assert "**Training** · idle" in sidebar


def test_sidebar_status_never_shows_password(seeded: str) -> None:
    status = console.sidebar_status()
    assert set(status.database) == {"dialect", "host", "database"}
    assert all("beacon:beacon" not in str(v) for v in status.database.values())


# --------------------------------------------------------------------------------------------
# Overview

def test_overview_shows_counts_of_the_fixture(seeded: str) -> None:
    at = app()
    no_exception(at)
    assert at.title[0].value == "Overview"
    assert metric(at, "Users") == f"{DEMO['users']:,}"
    expected = catalog.overview_counts(datetime.now(timezone.utc))
    assert metric(at, "Upcoming events") == f"{expected['upcoming_events']:,}"
    assert metric(at, "Interactions, last 7 days") == f"{expected['interactions_7d']:,}"
    assert "No model is active yet" in texts(at)
    comparison = console.overview().ctr
    assert comparison.current is not None  # the demo has impressions in the last 7 days
    assert metric(at, "Click-through rate") == f"{100 * comparison.current:.2f}%"


def test_overview_on_empty_tables_renders(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not the first start (that is the embedded default's job): data without a model or runs.
    load_demo_data(users=1, events=1, days=1, seed=1)
    at = app()
    no_exception(at)
    assert metric(at, "Users") == "1"
    assert "No training has run yet." in texts(at)


# --------------------------------------------------------------------------------------------
# First start

def test_empty_database_first_start(db: str, dialect: str) -> None:
    bootstrap.reset_job_for_tests(db)
    if dialect == "postgresql":
        at = app()
        no_exception(at)
        assert "python -m beacon import" in texts(at)
        assert "python -m beacon demo-data" in texts(at)
        assert not catalog.all_user_ids(limit=1), "Postgres must never be auto-loaded"
        return
    state = bootstrap.first_start_state(db, demo_options=DEMO)
    assert state.kind == "loading"
    wait_for(lambda: bootstrap.first_start_state(db, demo_options=DEMO).kind != "loading")
    assert len(catalog.all_user_ids(limit=1000)) == DEMO["users"]
