"""The one door: every registered state-changing action, as every role and API key scope; the
audit row each call leaves (refused, failed, ok) and that an ok row commits with its change."""
from __future__ import annotations

import json
import os

import pytest

from beacon import actions
from beacon.actions import Actor, PermissionDenied
from beacon.errors import BeaconError
from data_access import audit
from tests.auth_support import ADMIN, OPERATOR, VIEWER, actor

#: arguments that make each known action stop at once on its own validation (after the role
#: check), so the matrix runs in seconds; an action added later runs with none.
QUICK_FAILURE = {
    "train": {"scope": "user", "user": "nobody@example.org"},
    "start_training": {"scope": "user", "user": "nobody@example.org"},
    "load_demo_data": {"users": 0},
    "import_csv": {},
    "activate_model": {"version_id": 999_999},
    "cleanup_models": {"keep_days": -1},
    "refresh_recommendations": {"user": "nobody@example.org"},
    "cancel_training": {"run_id": 999_999},
    "operators_add": {"email": "not an email"},
    "operators_set_role": {"email": "nobody@example.org", "role": "viewer"},
    "operators_disable": {"email": "nobody@example.org"},
    "operators_reset_password": {"email": "nobody@example.org"},
}

ACTORS = [VIEWER, OPERATOR, ADMIN,
          Actor("api:reader", kind="api_key", scopes=frozenset({"recommend"})),
          Actor("api:feeder", kind="api_key", scopes=frozenset({"ingest"})),
          Actor("api:ops", kind="api_key", scopes=frozenset({"admin"})),
          actions.cli_actor(), actions.SYSTEM]


def _registry() -> dict:
    actions._load_services()
    return dict(actions.REGISTRY)


def test_roles_and_scopes_grant_what_the_design_says() -> None:
    assert VIEWER.permissions() == frozenset()
    assert OPERATOR.permissions() == {"operate"}
    assert ADMIN.permissions() == {"operate", "administer", "ingest"}
    assert Actor("api:r", kind="api_key", scopes=frozenset({"recommend"})).permissions() == set()
    assert Actor("api:i", kind="api_key", scopes=frozenset({"ingest"})).permissions() == {"ingest"}
    assert Actor("api:a", kind="api_key",
                 scopes=frozenset({"admin"})).permissions() == {"operate", "administer"}
    cli = actions.cli_actor()
    assert cli.name.startswith("cli:") and cli.kind == "cli" and cli.role == "admin"


def test_the_command_line_is_audited_as_the_account_that_runs_it(monkeypatch) -> None:
    """$LOGNAME and $USER are the caller's to set: the audit names the process's own user."""
    import pwd

    own = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("LOGNAME", "mallory")
    monkeypatch.setenv("USER", "mallory")
    assert actions.cli_actor().name == f"cli:{own}"
    with pytest.raises(ValueError, match="unknown role"):
        Actor("x", role="root")


def test_every_declared_action_names_a_known_permission() -> None:
    registry = _registry()
    assert {"train", "start_training", "load_demo_data", "import_csv", "activate_model",
            "cleanup_models", "refresh_recommendations", "cancel_training", "operators_add",
            "operators_set_role", "operators_disable",
            "operators_reset_password"} <= set(registry)
    assert set(actions.NEEDS) == set(registry)
    assert set(actions.NEEDS.values()) <= set(actions.PERMISSIONS)


@pytest.mark.parametrize("who", ACTORS, ids=lambda a: a.label)
def test_every_action_as_every_role(db: str, who: Actor) -> None:
    for name, function in _registry().items():
        allowed = actions.NEEDS[name] in who.permissions()
        params = QUICK_FAILURE.get(name, {})
        if not allowed:
            with pytest.raises(PermissionDenied) as refused:
                actions.perform(name, actor=who, **params)
            message = str(refused.value)
            assert who.name in message and name in message and actions.NEEDS[name] in message
        else:
            try:
                actions.perform(name, actor=who, **params)
            except PermissionDenied:  # pragma: no cover - the assertion below says it
                pytest.fail(f"{who.label} was refused {name}")
            except (BeaconError, TypeError):
                pass  # refused by the action's own validation, past the role check
        rows = audit.entries(who=who.name, action=name)
        assert rows, f"no audit row for {name} by {who.label}"
        assert rows[0].outcome == ("refused" if not allowed else rows[0].outcome)
        assert (rows[0].outcome == "refused") == (not allowed)
        assert rows[0].kind == who.kind
        json.dumps(rows[0].params)


def test_an_action_without_an_actor_is_a_programming_error(db: str) -> None:
    from beacon import versions

    with pytest.raises(TypeError, match="needs actor="):
        versions.cleanup(keep_days=1)
    with pytest.raises(BeaconError, match="unknown action"):
        actions.perform("reboot", actor=ADMIN)


def test_refused_changes_nothing_and_says_who_what_and_which_role(db: str) -> None:
    from beacon import versions
    from data_access import models_store as store

    version = store.insert_version(scope="global", blob=b"x", model_type="hybrid",
                                   fingerprint="f", hyperparameters={}, counts={},
                                   training_seconds=0.1, loss_history=[], metrics={},
                                   created_by="test")
    with pytest.raises(PermissionDenied, match=r"viewer@example.org may not activate_model.*"
                                               r"administer.*role admin.*has role viewer"):
        versions.activate(version, actor=VIEWER)
    assert store.get_version(version).status == "inactive"
    (row,) = audit.entries(action="activate_model")
    assert (row.who, row.outcome, row.params) == ("viewer@example.org", "refused",
                                                  {"version_id": version})
    assert "administer" in row.error

    versions.activate(version, actor=actor("boss@example.org"))
    assert store.get_version(version).status == "active"
    newest = audit.entries(action="activate_model")[0]
    assert (newest.who, newest.outcome, newest.error) == ("boss@example.org", "ok", None)


def test_a_failed_change_leaves_a_failed_row_and_no_ok_row(db: str, tmp_path) -> None:
    from beacon.importer import import_csv

    users = tmp_path / "users.csv"
    users.write_text("email,name\nnot-an-email,Bad\n")
    with pytest.raises(BeaconError):
        import_csv(users=users, actor=ADMIN)
    rows = audit.entries(action="import_csv")
    assert [r.outcome for r in rows] == ["failed"]
    assert rows[0].params == {"users": str(users)}


def test_the_ok_row_commits_with_the_change(db: str, tmp_path) -> None:
    from beacon.importer import import_csv
    from data_access.catalog import user_by_email

    users = tmp_path / "users.csv"
    users.write_text("email,name\nnew@example.org,New\n")
    import_csv(users=users, actor=OPERATOR.__class__("feeder@example.org", role="admin"))
    assert user_by_email("new@example.org") is not None
    (row,) = audit.entries(action="import_csv")
    assert (row.who, row.outcome) == ("feeder@example.org", "ok")


def test_audit_since_reads_dates_and_ages_and_refuses_what_is_off_the_calendar() -> None:
    from datetime import datetime, timedelta, timezone

    from beacon.cli.audit import parse_since

    now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert parse_since("2026-12-01T08:00+01:00", now) == datetime(2026, 12, 1, 7,
                                                                  tzinfo=timezone.utc)
    for impossible in ("99999999d", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00+01:00"):
        with pytest.raises(BeaconError, match="out of range"):
            parse_since(impossible, now)
    with pytest.raises(BeaconError, match="expected an ISO date/time"):
        parse_since("last tuesday", now)
