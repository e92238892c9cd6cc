"""The sign-in gate every console run passes before anything else is drawn.

Passwords are checked by the service (beacon/signin.py: bcrypt hashes in the database,
throttling, lockout, audit). The session cookie is streamlit-authenticator's: a JWT signed with
the console's key (kept in the database, or BEACON_COOKIE_KEY), fed with the operators table so
a disabled operator's cookie is refused. The cookie lives for the idle timeout and is renewed
while the operator is active, so a reload keeps them signed in and an idle session ends. When
an OIDC provider is configured ([auth] in .streamlit/secrets.toml), "Sign in with single
sign-on" goes through st.login and the email maps to a role through the same operators table.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import streamlit as st

from beacon import operators, signin
from beacon.actions import Actor
from beacon.errors import BeaconError
from beacon.invocation import beacon_command
from pages import _ui

COOKIE_NAME = "beacon_session"
LAST_SEEN_KEY = "beacon_last_seen"
COOKIE_SET_KEY = "beacon_cookie_set_at"
SSO_KEY = "beacon_sso_email"
NOTICE_KEY = "beacon_signin_notice"
DROP_COOKIE_KEY = "beacon_drop_cookie"  # the browser's cookie is deleted on the next page drawn
COOKIE_RENEW = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _client() -> str | None:
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - not every runtime knows it
        return None
    return address if isinstance(address, str) else None  # AppTest hands a mock


def sso_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def _authenticator(idle: timedelta):
    """streamlit-authenticator's cookie handling, fed from the database on every run (it
    mutates the dict it is given, so it gets a fresh one)."""
    import streamlit_authenticator as stauth

    credentials = {"usernames": {
        o.email: {"email": o.email, "name": o.name or o.email, "roles": [o.role]}
        for o in operators.list_operators() if not o.disabled}}
    return stauth.Authenticate(credentials, cookie_name=COOKIE_NAME,
                               cookie_key=signin.cookie_key(),
                               cookie_expiry_days=idle.total_seconds() / 86400,
                               auto_hash=False, login_sleep_time=0)


def _forget(reason: str | None) -> None:
    actor = st.session_state.pop(_ui.ACTOR_KEY, None)
    st.session_state.pop(LAST_SEEN_KEY, None)
    st.session_state.pop(COOKIE_SET_KEY, None)
    st.session_state.pop(SSO_KEY, None)
    st.session_state["logout"] = True  # this session no longer signs in from the cookie
    st.session_state[DROP_COOKIE_KEY] = True
    if isinstance(actor, Actor) and reason:
        signin.record_sign_out(actor, reason)
        st.session_state[NOTICE_KEY] = f"You were signed out: {reason}."


def _start(actor: Actor, now: datetime) -> Actor:
    st.session_state[_ui.ACTOR_KEY] = actor
    st.session_state[LAST_SEEN_KEY] = now
    st.session_state.pop(NOTICE_KEY, None)
    st.session_state.pop(COOKIE_SET_KEY, None)  # written by the next page drawn
    st.session_state.pop(DROP_COOKIE_KEY, None)
    st.session_state["logout"] = None
    return actor


def _outside(draw) -> None:
    """Draw a page for someone not signed in in place of every page (hidden navigation: no
    sidebar, nothing of the console's), then end the run. The console's own addresses lead
    here too, so a link to /models?... shows the sign-in, then that page once signed in."""
    pages = [st.Page(draw, title="Sign in", url_path="sign-in", default=True)]
    pages += [st.Page(lambda: draw(), title="Sign in", url_path=path) for path in _paths]
    st.navigation(pages, position="hidden").run()
    st.stop()


_paths: list[str] = []


def gate(url_paths: list[str]) -> Actor:
    """The signed-in operator, or the sign-in page drawn (at any of the console's `url_paths`)
    and the run stopped."""
    _paths[:] = url_paths
    idle = signin.idle_timeout()
    now = _now()
    auth = _authenticator(idle)
    current = st.session_state.get(_ui.ACTOR_KEY)
    if not isinstance(current, Actor):
        current = _from_cookie(auth)  # a reload, a new tab
        if current is None and sso_configured() and st.user.get("is_logged_in", False):
            current = _single_sign_on()
        if current is None:
            _outside(lambda: _sign_in_page(auth))
        _start(current, now)
    last = st.session_state.get(LAST_SEEN_KEY) or now
    fresh = signin.actor_for(current.name)
    if now - last > idle:
        _sign_out(f"idle for more than {_hours(idle)}")
        _outside(lambda: _sign_in_page(auth))
    if fresh is None:
        _sign_out("this operator was disabled or removed")
        _outside(lambda: _sign_in_page(auth))
    st.session_state[_ui.ACTOR_KEY] = fresh  # a role changed by an admin applies now
    st.session_state[LAST_SEEN_KEY] = now
    renewed = st.session_state.get(COOKIE_SET_KEY)
    if not st.session_state.get(SSO_KEY) and (renewed is None or now - renewed > COOKIE_RENEW):
        # The cookie lives for the idle timeout from the last renewal: an idle browser's
        # cookie expires with its session, an active one is renewed every few minutes.
        st.session_state["username"] = fresh.name
        auth.cookie_controller.set_cookie()
        st.session_state[COOKIE_SET_KEY] = now
    return fresh


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{span.total_seconds() / 60:g} min"


def _from_cookie(auth) -> Actor | None:
    """A valid cookie of an enabled operator signs this new session in (a reload)."""
    if st.session_state.get("logout"):
        return None
    try:
        token = auth.cookie_controller.get_cookie()
    except Exception:  # noqa: BLE001 - a malformed cookie is no cookie
        return None
    if not token or "username" not in token:
        return None
    return signin.actor_for(str(token["username"]))


def _single_sign_on() -> Actor:
    try:
        actor = signin.single_sign_on(st.user.to_dict(), client=_client())
    except BeaconError as refused:
        def refusal() -> None:
            st.title("Beacon console")
            st.error(_ui.plain(refused), icon=":material/block:")
            st.button("Sign out of single sign-on", on_click=st.logout)
        _outside(refusal)
    st.session_state[SSO_KEY] = actor.name
    return actor


def _sign_out(reason: str) -> None:
    """End this session (the gate deletes the cookie on the sign-in page it draws next)."""
    for key in ("name", "username", "authentication_status", "email", "roles"):
        st.session_state[key] = None  # streamlit-authenticator's own keys
    sso = st.session_state.get(SSO_KEY)
    _forget(reason)
    if sso:
        st.logout()


def _sign_out_clicked() -> None:
    _sign_out("signed out")
    st.session_state[NOTICE_KEY] = "You are signed out."


def sign_out_button() -> None:
    """In the sidebar: who is signed in, and the way out."""
    actor = st.session_state.get(_ui.ACTOR_KEY)
    if not isinstance(actor, Actor):
        return
    with st.sidebar:
        st.caption("Signed in as")
        st.text(f"{actor.name} · {actor.role}")
        # a callback: the session ends before the next run draws anything
        st.button("Sign out", icon=":material/logout:", key="sign_out",
                  on_click=_sign_out_clicked)


def _sign_in_page(auth) -> None:
    if st.session_state.get(DROP_COOKIE_KEY):
        # Drawn on every sign-in page of this session: the component deletes the cookie once
        # it has mounted, and a rerun (its neighbour reporting back) may come first.
        auth.cookie_controller.delete_cookie()
    st.title("Beacon console")
    notice = st.session_state.get(NOTICE_KEY)
    if notice:
        st.info(notice, icon=":material/logout:")
    if not operators.list_operators():
        st.warning("No operator exists yet. On the server, from the project directory with the "
                   "same DATABASE_URL, create the first administrator:",
                   icon=":material/person_add:")
        st.code(beacon_command("operators add you@example.org --role admin"), language="bash")
        st.caption("It prints a one-time password. Then reload this page.")
        st.stop()
    if sso_configured():
        st.button("Sign in with single sign-on", type="primary", on_click=st.login,
                  icon=":material/key:")
        st.caption("Or with an email and password:")
    form = st.empty()
    with form.form("sign_in", clear_on_submit=True):  # no password left in the session
        st.subheader("Sign in")
        email = st.text_input("Email", key="signin_email", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            actor = signin.sign_in(email, password, client=_client())
        except BeaconError as refused:
            st.error(_ui.plain(refused), icon=":material/lock:")
        else:
            _start(actor, _now())
            st.rerun(scope="app")  # the console, from its first line, for this operator
