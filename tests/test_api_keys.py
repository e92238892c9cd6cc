"""API keys: random, shown once, stored hashed, compared in constant time, never logged;
the `api-keys` commands."""
from __future__ import annotations

import json
import logging

import pytest

from beacon.actions import PermissionDenied
from beacon.errors import BeaconError
from tests.auth_support import ADMIN, OPERATOR
from tests.test_cli import run_cli


def test_a_key_is_stored_only_as_a_digest(db: str) -> None:
    from beacon.api_keys import authenticate, create_key
    from data_access.db import session_scope
    from data_access.schema import ApiKey
    from sqlalchemy import select

    created = create_key("backend", "recommend", actor=ADMIN)
    other = create_key("backend-2", "recommend", actor=ADMIN)
    assert created.secret != other.secret and created.secret.startswith("bk_")
    with session_scope() as session:
        stored = session.execute(select(ApiKey)).scalars().all()
        columns = [str(getattr(k, c.name)) for k in stored for c in ApiKey.__table__.columns]
    assert all(created.secret not in value and created.secret[14:] not in value
               for value in columns)
    assert authenticate(created.secret).name == "backend"
    assert authenticate(created.secret[:-1] + ("A" if created.secret[-1] != "A" else "B")) is None
    assert authenticate("bk_" + "0" * 10 + "_x") is None and authenticate("") is None


def test_a_key_checked_a_moment_ago_is_known_from_memory_until_revoked(db: str,
                                                                     monkeypatch) -> None:
    from beacon import api_keys
    from beacon.api_keys import authenticate, checked_recently, create_key, revoke_key

    secret = create_key("fast", "recommend", actor=ADMIN).secret
    assert checked_recently(secret) is None  # never checked here: ask the database
    assert authenticate(secret).name == "fast"
    assert checked_recently(secret).name == "fast"  # the event loop's answer, no query
    assert checked_recently(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert checked_recently("not a key") is None and checked_recently(None) is None
    monkeypatch.setattr(api_keys, "KEY_CACHE_S", 0.0)  # the bound passed: checked again
    assert checked_recently(secret) is None
    monkeypatch.setattr(api_keys, "KEY_CACHE_S", 60.0)
    monkeypatch.setattr(api_keys, "TOUCH_EVERY_S", 0.0)  # "last used" due: the slow path
    assert checked_recently(secret) is None
    monkeypatch.setattr(api_keys, "TOUCH_EVERY_S", 60.0)
    assert authenticate(secret) is not None and checked_recently(secret) is not None
    revoke_key("fast", actor=ADMIN)
    assert checked_recently(secret) is None and authenticate(secret) is None


def test_names_scopes_and_who_may_make_keys(db: str) -> None:
    from beacon.api_keys import create_key

    with pytest.raises(BeaconError, match="unknown scope 'write'"):
        create_key("k", "recommend,write", actor=ADMIN)
    with pytest.raises(BeaconError, match="at least one scope"):
        create_key("k", "", actor=ADMIN)
    create_key("k", "admin", actor=ADMIN)
    with pytest.raises(BeaconError, match="already exists"):
        create_key("k", "admin", actor=ADMIN)
    with pytest.raises(PermissionDenied):
        create_key("k2", "admin", actor=OPERATOR)


def test_a_refused_key_is_never_logged(db: str, caplog, monkeypatch) -> None:
    from beacon.api_keys import create_key
    from tests.api_support import api_client

    secret = create_key("k", "ingest", actor=ADMIN).secret
    client = api_client(monkeypatch).client
    with caplog.at_level(logging.DEBUG):
        assert client.get("/v1/stats/global", headers={"X-API-Key": secret}).status_code == 403
        assert client.get("/v1/stats/global", headers={"X-API-Key": secret + "x"}).status_code == 401
    assert secret not in caplog.text


def test_the_api_keys_commands(db: str) -> None:
    made = run_cli("api-keys", "create", "backend", "--scopes", "recommend,ingest", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["name"] == "backend" and key["scopes"] == ["ingest", "recommend"]
    assert key["created_by"].startswith("cli:") and key["key"].startswith("bk_")
    listed = run_cli("api-keys", "list", "--json")
    assert key["key"] not in listed.stdout
    [row] = json.loads(listed.stdout)["keys"]
    assert row["name"] == "backend" and row["revoked_at"] is None and "key" not in row
    human = run_cli("api-keys", "create", "other", "--scopes", "admin")
    assert "shown only this once" in human.stdout
    bad = run_cli("api-keys", "create", "x", "--scopes", "everything")
    assert bad.returncode == 2 and bad.stdout == ""
    [line] = bad.stderr.strip().splitlines()  # one line; it names the database it used
    assert line.startswith(
        "beacon: error: unknown scope 'everything' (expected recommend, ingest, admin)")
    assert run_cli("api-keys", "revoke", "backend").returncode == 0
    assert json.loads(run_cli("api-keys", "list", "--json").stdout)["keys"][0]["revoked_at"]
    missing = run_cli("api-keys", "revoke", "ghost")
    assert missing.returncode == 2 and "no API key named 'ghost'" in missing.stderr
    # a name that is a key's id is still only a name: nothing is revoked by id
    other = json.loads(run_cli("api-keys", "create", "third", "--scopes", "recommend",
                               "--json").stdout)
    by_id = run_cli("api-keys", "revoke", str(other["id"]))
    assert by_id.returncode == 2 and f"no API key named '{other['id']}'" in by_id.stderr
    assert not next(k for k in json.loads(run_cli("api-keys", "list", "--json").stdout)["keys"]
                    if k["name"] == "third")["revoked_at"]
    # the revoked key's name goes to its replacement; the revoked row keeps it for the record,
    # and revoke by that name now means the active key
    again = json.loads(run_cli("api-keys", "create", "backend", "--scopes", "recommend",
                               "--json").stdout)
    named = [k for k in json.loads(run_cli("api-keys", "list", "--json").stdout)["keys"]
             if k["name"] == "backend"]
    assert [(k["id"], bool(k["revoked_at"])) for k in named] == [(key["id"], True),
                                                                 (again["id"], False)]
    taken = run_cli("api-keys", "create", "backend", "--scopes", "recommend")
    assert taken.returncode == 2 and "an active API key named 'backend'" in taken.stderr
    assert run_cli("api-keys", "revoke", "backend").returncode == 0
    assert all(k["revoked_at"] for k in json.loads(run_cli("api-keys", "list", "--json").stdout)
               ["keys"] if k["name"] == "backend")
