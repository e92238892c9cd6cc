"""Operators, sign-in with throttling and lockout, single sign-on mapping, the first admin."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from beacon import operators, signin
from beacon.actions import PermissionDenied, cli_actor
from beacon.errors import BeaconError
from data_access import audit
from tests.auth_support import ADMIN, OPERATOR

POLICY = signin.Policy(max_failures=3, client_max_failures=5, lock_minutes=15, slow_after=1,
                       max_delay=4.0)
PASSWORD = "correct horse battery"


def _add(email: str, role: str = "viewer", password: str | None = PASSWORD):
    return operators.add_operator(email, role=role, password=password, actor=ADMIN)


def test_add_list_role_disable_reset(db: str) -> None:
    info, made = _add("Ops@Example.org", "operator", password=None)
    assert info.email == "ops@example.org" and info.role == "operator" and len(made) >= 20
    assert signin.sign_in("ops@example.org", made, policy=POLICY).role == "operator"
    assert [o.email for o in operators.list_operators()] == ["ops@example.org"]
    assert not operators.get_operator("ops@example.org").disabled
    operators.set_role("ops@example.org", "admin", actor=ADMIN)
    assert signin.actor_for("ops@example.org").role == "admin"
    fresh = operators.reset_password("ops@example.org", actor=ADMIN)
    with pytest.raises(signin.SignInRefused):
        signin.sign_in("ops@example.org", made, policy=POLICY)
    assert signin.sign_in("ops@example.org", fresh, policy=POLICY).name == "ops@example.org"
    _add("other-admin@example.org", "admin")
    operators.set_disabled("ops@example.org", actor=ADMIN)
    assert signin.actor_for("ops@example.org") is None
    with pytest.raises(signin.SignInRefused, match="wrong email or password"):
        signin.sign_in("ops@example.org", fresh, policy=POLICY)
    # every change is audited, and no password ever appears in it
    trail = audit.entries()
    actions_done = {r.action for r in trail}
    assert {"operators_add", "operators_set_role", "operators_reset_password",
            "operators_disable", "sign_in"} <= actions_done
    assert not any(made in str(r.params) or fresh in str(r.params) for r in trail)


def test_bad_input_is_one_clear_error(db: str) -> None:
    with pytest.raises(BeaconError, match="not an address"):
        _add("no-at-sign")
    with pytest.raises(BeaconError, match="unknown role"):
        _add("a@example.org", "root")
    with pytest.raises(BeaconError, match="at least 12"):
        _add("a@example.org", password="short")
    with pytest.raises(BeaconError, match="at most 72 bytes"):
        _add("a@example.org", password="é" * 40)
    _add("a@example.org")
    with pytest.raises(BeaconError, match="already exists"):
        _add("A@example.org")
    with pytest.raises(BeaconError, match="no operator"):
        operators.set_role("ghost@example.org", "viewer", actor=ADMIN)


def test_the_last_admin_cannot_be_demoted_or_disabled(db: str) -> None:
    _add("boss@example.org", "admin")
    with pytest.raises(BeaconError, match="last enabled administrator"):
        operators.set_role("boss@example.org", "viewer", actor=ADMIN)
    with pytest.raises(BeaconError, match="last enabled administrator"):
        operators.set_disabled("boss@example.org", actor=ADMIN)
    _add("second@example.org", "admin")
    operators.set_role("boss@example.org", "viewer", actor=ADMIN)


def test_only_admins_manage_operators(db: str) -> None:
    with pytest.raises(PermissionDenied, match="administer"):
        operators.add_operator("x@example.org", actor=OPERATOR)
    assert operators.list_operators() == []


def test_a_demoted_or_disabled_operator_is_refused_with_the_actor_it_signed_in_as(
        db: str) -> None:
    """A console fragment (the training panel's cancel button) keeps the Actor its session
    signed in with; the door checks the role stored now, and refuses a disabled operator."""
    from beacon.actions import Actor
    from beacon.training import cancel_training

    _add("ops@example.org", role="operator")
    signed_in = Actor("ops@example.org", kind="operator", role="operator")
    with pytest.raises(BeaconError, match="424242"):
        cancel_training(424242, actor=signed_in)  # allowed: it fails on the run, not the role
    operators.set_role("ops@example.org", "viewer", actor=ADMIN)
    with pytest.raises(PermissionDenied, match="has role viewer"):
        cancel_training(424242, actor=signed_in)
    operators.set_role("ops@example.org", "operator", actor=ADMIN)
    operators.set_disabled("ops@example.org", actor=ADMIN)
    with pytest.raises(PermissionDenied, match="this operator was disabled"):
        cancel_training(424242, actor=signed_in)
    refused = [(r.who, r.outcome) for r in audit.entries(action="cancel_training")
               if r.outcome == "refused"]
    assert refused == [("ops@example.org", "refused")] * 2


def test_failures_slow_down_then_lock_and_are_audited(db: str) -> None:
    _add("v@example.org")
    waits: list[float] = []
    now = datetime.now(timezone.utc)
    for _ in range(3):
        with pytest.raises(signin.SignInRefused, match="wrong email or password"):
            signin.sign_in("v@example.org", "guess guess guess", client="10.0.0.1",
                           policy=POLICY, sleep=waits.append, now=now)
    assert waits == [1.0, 2.0]  # the first try is free, then 1 s, 2 s, …
    # locked now: even the right password is refused without being checked
    with pytest.raises(signin.SignInRefused, match="locked, try again in 15 min"):
        signin.sign_in("v@example.org", PASSWORD, client="10.0.0.1", policy=POLICY,
                       sleep=waits.append, now=now)
    # after the lock window the right password works and clears the count
    later = now + timedelta(minutes=16)
    assert signin.sign_in("v@example.org", PASSWORD, policy=POLICY, sleep=waits.append,
                          now=later).role == "viewer"
    rows = [r for r in audit.entries(action="sign_in") if r.who == "v@example.org"]
    assert [r.outcome for r in reversed(rows)] == ["refused"] * 4 + ["ok"]
    assert rows[1].error.startswith("too many failed sign-ins")
    assert rows[-1].params == {"method": "password", "client": "10.0.0.1"}


def test_one_client_guessing_many_accounts_is_locked(db: str) -> None:
    now = datetime.now(timezone.utc)
    for n in range(5):
        with pytest.raises(signin.SignInRefused, match="wrong"):
            signin.sign_in(f"u{n}@example.org", "nope nope nope", client="192.0.2.9",
                           policy=POLICY, sleep=lambda s: None, now=now)
    with pytest.raises(signin.SignInRefused, match="for this address"):
        signin.sign_in("u9@example.org", "nope nope nope", client="192.0.2.9", policy=POLICY,
                       sleep=lambda s: None, now=now)


def test_single_sign_on_maps_emails_through_the_operators_table(db: str) -> None:
    operators.add_operator("sso@example.org", role="operator", sso_only=True, actor=ADMIN)
    actor = signin.single_sign_on({"email": "SSO@example.org", "email_verified": True})
    assert (actor.name, actor.role) == ("sso@example.org", "operator")
    with pytest.raises(signin.SignInRefused, match="not an enabled Beacon operator"):
        signin.single_sign_on({"email": "stranger@example.org"})
    with pytest.raises(signin.SignInRefused, match="not verified"):
        signin.single_sign_on({"email": "sso@example.org", "email_verified": False})
    with pytest.raises(signin.SignInRefused, match="no email"):
        signin.single_sign_on({"sub": "123"})
    # an SSO-only operator has no password to guess
    with pytest.raises(signin.SignInRefused):
        signin.sign_in("sso@example.org", "", policy=POLICY, sleep=lambda s: None)
    outcomes = [(r.who, r.outcome) for r in audit.entries(action="sign_in")]
    assert ("stranger@example.org", "refused") in outcomes and ("sso@example.org", "ok") in outcomes
    # a password would let them in around the identity provider: only when asked for outright
    with pytest.raises(BeaconError, match="signs in only through single sign-on"):
        operators.reset_password("sso@example.org", actor=ADMIN)
    assert not operators.get_operator("sso@example.org").has_password
    operators.reset_password("sso@example.org", allow_password=True, actor=ADMIN)
    assert operators.get_operator("sso@example.org").has_password


def test_first_admin_is_made_once_with_a_random_password(db: str) -> None:
    password = operators.ensure_first_admin()
    assert password and len(password) >= 20
    assert operators.ensure_first_admin() is None
    actor = signin.sign_in(operators.FIRST_ADMIN_EMAIL, password, policy=POLICY)
    assert actor.role == "admin"
    (row,) = audit.entries(action="operators_add")
    assert row.who == "system:first-start" and password not in str(row.params)


def test_cookie_key_is_long_and_shared_through_the_database(db: str, monkeypatch) -> None:
    monkeypatch.delenv("BEACON_COOKIE_KEY", raising=False)
    key = signin.cookie_key()
    assert len(key.encode()) >= 32 and signin.cookie_key() == key
    monkeypatch.setenv("BEACON_COOKIE_KEY", "short")
    with pytest.raises(BeaconError, match="at least 32 bytes"):
        signin.cookie_key()


def test_cli_actor_is_admin_named_after_the_os_user() -> None:
    actor = cli_actor()
    assert actor.kind == "cli" and actor.role == "admin" and actor.name.startswith("cli:")
