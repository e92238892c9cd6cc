"""The console's sign-in gate and what each role is offered, through AppTest on a real database.
(The cookie that keeps a reload signed in needs a browser: tests/test_browser.py.)"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from beacon import operators
from beacon.actions import cli_actor
from beacon.demo import load_demo_data
from data_access import audit
from tests.auth_support import ACTOR_KEY, ADMIN, DASHBOARD, PASSWORD, ensure_operator, \
    signed_in_app

TIMEOUT = 120
DEMO = dict(users=30, events=20, days=10, seed=3)


@pytest.fixture
def seeded(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BEACON_SIGNIN_SLOW_AFTER", "100")  # no waiting between tries here
    load_demo_data(**DEMO, actor=ADMIN)
    st.cache_data.clear()
    return db


def _anonymous() -> AppTest:
    at = AppTest.from_file(str(DASHBOARD), default_timeout=TIMEOUT)
    at.run()
    return at


def _everything(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption]
    parts += [e.value for e in at.error] + [e.value for e in at.info] + [e.value for e in at.text]
    parts += [e.value for e in at.title] + [e.value for e in at.subheader]
    return "\n".join(str(p) for p in parts)


def _submit(at: AppTest, email: str, password: str) -> AppTest:
    at.text_input(key="signin_email").input(email)
    at.text_input(key="signin_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def _labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def test_anonymous_sees_only_the_sign_in(seeded: str) -> None:
    ensure_operator("viewer")
    at = _anonymous()
    assert not at.exception
    assert [t.value for t in at.title] == ["Beacon console"]
    assert {t.label for t in at.text_input} == {"Email", "Password"}
    assert not at.metric and not at.dataframe and not at.sidebar.markdown
    assert "Users" not in _everything(at) and "Database" not in _everything(at)


def test_wrong_password_is_refused_and_audited_then_the_right_one_opens(seeded: str) -> None:
    email = ensure_operator("viewer")
    at = _submit(_anonymous(), email, "not the password at all")
    assert "wrong email or password" in [e.value for e in at.error][0]
    assert not at.metric
    at = _submit(at, email, PASSWORD)
    assert not at.exception
    assert at.metric, "the Overview's figures once signed in"
    assert email in _everything(at.sidebar)
    outcomes = [r.outcome for r in audit.entries(action="sign_in", who=email)]
    assert outcomes == ["ok", "refused"]


def test_a_locked_account_is_refused_even_with_the_right_password(seeded: str,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("BEACON_SIGNIN_MAX_FAILURES", "2")
    email = ensure_operator("viewer")
    at = _anonymous()
    for _ in range(2):
        at = _submit(at, email, "wrong wrong wrong")
    at = _submit(at, email, PASSWORD)
    assert "locked" in at.error[0].value and not at.metric


def test_first_admin_only_through_the_server_terminal(dialect: str, capsys,
                                                       request: pytest.FixtureRequest,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded SQLite: the first start makes an admin and prints its one-time password to the
    server's terminal. Elsewhere the page says which command to run on the server. Either way
    nothing on the page lets a visitor claim the console."""
    if dialect == "sqlite":  # the embedded default itself, with a platform loaded
        from data_access import migrate

        monkeypatch.setenv("BEACON_SIGNIN_SLOW_AFTER", "100")
        migrate.upgrade(request.getfixturevalue("embedded_default"))
        load_demo_data(**DEMO, actor=ADMIN)
    else:
        request.getfixturevalue("seeded")
    at = _anonymous()
    printed = capsys.readouterr().err
    if dialect == "sqlite":
        password = printed.split("password:", 1)[1].split()[0]
        assert password not in _everything(at)
        at = _submit(at, operators.FIRST_ADMIN_EMAIL, password)
        assert at.metric and not at.exception
    else:
        assert "-m beacon operators add you@example.org" in "\n".join(c.value for c in at.code)
        assert not at.text_input and "password" not in printed


def test_viewer_sees_every_page_but_no_control_that_changes_state(seeded: str) -> None:
    from beacon.training import train
    from tests.trained_support import tiny_config

    train(force=True, config=tiny_config(), actor=ADMIN)
    at = signed_in_app("viewer", timeout=TIMEOUT)
    at.run()
    assert not at.exception
    for page in ("pages/users.py", "pages/recommendations.py", "pages/debug_filter.py",
                 "pages/metrics.py", "pages/training.py", "pages/models.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        forbidden = {label for label in _labels(at) if any(
            word in label for word in ("retrain", "Retrain", "Activate", "Delete", "Cancel this",
                                       "Refresh this user", "Train with"))}
        assert not forbidden, (page, forbidden)
    at.switch_page("pages/models.py")
    at.run()
    assert "needs the admin role" in _everything(at)


def test_operator_may_train_but_not_activate_or_clean_up(seeded: str) -> None:
    at = signed_in_app("operator", timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/training.py")
    at.run()
    assert {"Smart retrain", "Force retrain"} <= _labels(at)


# AppTest runs dashboard.py (the gate) on a session's first run only; later runs of a routed
# page run the page alone. So each check of the gate below is the first run of a session that
# carries the state under test. The sign-out button is tested in the browser.

def test_idle_session_ends_and_says_why(seeded: str) -> None:
    at = signed_in_app("viewer", timeout=TIMEOUT)
    at.session_state["beacon_last_seen"] = datetime.now(timezone.utc) - timedelta(hours=13)
    at.run()
    assert not at.metric and "idle for more than 12 h" in _everything(at)
    assert ACTOR_KEY not in at.session_state
    (row,) = audit.entries(action="sign_out")
    assert row.who == "viewer@example.org" and "idle" in row.params["reason"]
    fresh = signed_in_app("viewer", timeout=TIMEOUT)
    fresh.session_state["beacon_last_seen"] = datetime.now(timezone.utc) - timedelta(hours=11)
    fresh.run()
    assert fresh.metric, "11 h idle is within the default 12 h"


def test_idle_timeout_is_configurable(seeded: str, monkeypatch) -> None:
    monkeypatch.setenv("BEACON_IDLE_TIMEOUT_HOURS", "0.5")
    at = signed_in_app("viewer", timeout=TIMEOUT)
    at.session_state["beacon_last_seen"] = datetime.now(timezone.utc) - timedelta(minutes=31)
    at.run()
    assert not at.metric and "idle for more than 30 min" in _everything(at)


def test_a_disabled_operator_is_signed_out_at_the_next_run(seeded: str) -> None:
    ensure_operator("admin", "boss@example.org")
    at = signed_in_app("viewer", timeout=TIMEOUT)
    operators.set_disabled("viewer@example.org", actor=cli_actor())
    at.run()
    assert not at.metric and "disabled" in _everything(at)


def test_a_role_changed_by_an_admin_applies_at_the_next_run(seeded: str) -> None:
    at = signed_in_app("viewer", timeout=TIMEOUT)
    operators.set_role("viewer@example.org", "operator", actor=cli_actor())
    at.run()
    assert at.session_state[ACTOR_KEY].role == "operator"


def test_admin_audit_page_lists_and_filters(seeded: str) -> None:
    at = signed_in_app("admin", timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/audit.py")
    at.run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert "load_demo_data" in set(frame["action"]) and "operators_add" in set(frame["action"])
    at.selectbox(key="audit_action").select("load_demo_data").run()
    frame = at.dataframe[0].value
    assert set(frame["action"]) == {"load_demo_data"} and set(frame["who"]) == {ADMIN.name}
    at.date_input(key="audit_days").set_value(
        (datetime(2020, 1, 1).date(), datetime(2020, 1, 2).date())).run()
    assert at.dataframe[0].value.empty


def test_the_audit_trail_is_refused_below_the_page_too(seeded: str) -> None:
    """The Audit page is not in an operator's navigation; run anyway, the service refuses."""
    at = signed_in_app("operator", script=DASHBOARD.parent / "pages" / "audit.py",
                       timeout=TIMEOUT)
    at.run()
    assert not at.dataframe
    assert "may not read the audit trail" in at.error[0].value


def _sso_app(claims: dict) -> AppTest:
    at = AppTest.from_file(str(DASHBOARD), default_timeout=TIMEOUT)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "x" * 32, "client_id": "beacon",
                          "client_secret": "secret",
                          "server_metadata_url": "https://login.example.org/.well-known/x"}
    at.user = {"is_logged_in": True, **claims}
    at.run()
    return at


def test_single_sign_on_signs_a_known_operator_in_with_their_role(seeded: str) -> None:
    from beacon.actions import cli_actor

    operators.add_operator("sso@example.org", role="operator", sso_only=True, actor=cli_actor())
    at = _sso_app({"email": "sso@example.org", "email_verified": True})
    assert not at.exception and at.metric
    assert at.session_state[ACTOR_KEY].role == "operator"


def test_single_sign_on_gives_an_unknown_email_no_access(seeded: str) -> None:
    ensure_operator("viewer")
    at = _sso_app({"email": "stranger@example.org", "email_verified": True})
    assert not at.metric and ACTOR_KEY not in at.session_state
    assert "not an enabled Beacon operator" in at.error[0].value.replace("\\", "")
