"""The console's parts of the API: the Overview's refresh backlog and lag, the API keys page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from beacon.demo import load_demo_data
from tests.auth_support import ADMIN
from tests.test_console_ops import app, metric, no_exception, texts


def test_overview_shows_the_refresh_backlog_and_lag(db: str) -> None:
    from beacon.ingest import ingest_interactions
    from beacon.refresh import run_once
    from data_access.catalog import search_users
    from data_access.catalog_sync import event_features  # noqa: F401 - the event exists
    from data_access.ingest import IncomingInteraction
    from data_access.training_data import load_events_frame

    load_demo_data(users=5, events=4, days=3, seed=2, actor=ADMIN)
    emails = [u.email for u in search_users("", limit=3)]
    event = str(load_events_frame()["event_id"].iloc[0])
    now = datetime.now(timezone.utc)
    ingest_interactions([IncomingInteraction(f"k{i}", email, event, "click", now)
                         for i, email in enumerate(emails)], actor=ADMIN)
    at = app()
    no_exception(at)
    assert metric(at, "Refresh backlog") == "3 users"
    assert metric(at, "Refresh lag, last 5 min") == "—"
    run_once("test", timedelta(seconds=60))
    at = app()
    assert metric(at, "Refresh backlog") == "0 users"
    assert metric(at, "Users refreshed, last 5 min") == "3"
    assert metric(at, "Refresh lag, last 5 min").endswith(" s")


def test_api_keys_page_creates_lists_and_revokes(db: str) -> None:
    from beacon.api_keys import authenticate, list_keys

    load_demo_data(users=2, events=2, days=1, seed=1, actor=ADMIN)  # not the first start
    at = app("pages/api_keys.py")
    no_exception(at)
    assert at.title[0].value == "API keys" and "No API keys yet." in texts(at)
    at.text_input[0].set_value("platform-backend")
    at.multiselect[0].set_value(["recommend", "ingest"])
    at.button[0].click()
    at.run()
    no_exception(at)
    secret = at.code[0].value
    assert "shown only this once" in "\n".join(s.value for s in at.success)
    key = authenticate(secret)
    assert key is not None and key.scopes == ("ingest", "recommend")
    assert key.created_by == at.session_state["beacon_actor"].name
    table = at.dataframe[0].value
    assert list(table["name"]) == ["platform-backend"] and list(table["state"]) == ["active"]
    assert secret not in table.to_string()
    at = app("pages/api_keys.py")
    assert not at.code  # never shown again
    at.selectbox[0].set_value("platform-backend")
    at.button[1].click()
    at.run()
    no_exception(at)
    assert authenticate(secret) is None and list_keys()[0].revoked_at is not None


def test_api_keys_page_is_for_admins_only(db: str) -> None:
    load_demo_data(users=2, events=2, days=1, seed=1, actor=ADMIN)
    for role in ("viewer", "operator"):
        at = app(role=role)
        no_exception(at)
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page("pages/api_keys.py")
