"""What one recommendation request costs the database, counted (never timed): it reads on one
connection in two statements and writes its answer on a second; the key check and the
active-model check add nothing while cached, yet a revoked key and a newly activated model
take effect within their documented bounds; a dropped connection is survived."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import event

from tests.api_support import Api, api  # noqa: F401 - api is a fixture
from tests.auth_support import ADMIN
from tests.conftest import POSTGRES_URL, _admin
from tests.test_recommend import BERLIN, NOW

JAZZ = "jazz0@example.com"
PATH = f"/v1/users/{JAZZ}/recommendations"
#: what the benchmark asks: filters on, with reasons
FILTERS = {"n": 5, "max_km": 50, "start": "06:00", "end": "23:30", "explain": "true",
           "dates": ",".join((NOW.date() + timedelta(days=d)).isoformat() for d in range(8))}
#: reads: (1) stamp + active model + user + tags + personal vector, (2) decisions with tags
MAX_READS = 2
#: one connection for the reads, one for the answer's record
MAX_CHECKOUTS = 2


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    checkouts: int = 0

    @property
    def reads(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]

    @property
    def writes(self) -> list[str]:
        return [s for s in self.statements if s not in self.reads]


@contextmanager
def counting():
    """Every statement and pool checkout of this process's engine inside the block, and the
    statements run on the API's pinned connections (data_access.pinned)."""
    from data_access import pinned
    from data_access.db import get_engine

    engine = get_engine()
    seen = Counted()

    def on_statement(_conn, _cursor, statement, _params, _context, _many) -> None:
        seen.statements.append(statement)

    def on_checkout(*_args) -> None:
        seen.checkouts += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "checkout", on_checkout)
    pinned.observers.append(seen.statements.append)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "checkout", on_checkout)
        pinned.observers.remove(seen.statements.append)


@pytest.fixture
def warm_caches(monkeypatch) -> None:
    """The per-process caches held for the whole test: the candidate snapshot's periodic
    catalogue check (at most every 2 s, not per request) and the key check (1 s)."""
    from beacon import api_keys, candidate_snapshot

    monkeypatch.setattr(candidate_snapshot, "SNAPSHOT_TTL_S", 3600.0)
    monkeypatch.setattr(api_keys, "KEY_CACHE_S", 3600.0)


def _fold_in(email: str) -> int:
    from beacon import versions
    from beacon.training import train

    folded = train(scope="user", user=email, trigger="cli", actor=ADMIN)
    assert folded.status == "trained", folded.reason
    versions.clear_cache()
    return folded.model_version


def test_one_recommendation_request_reads_in_two_statements_on_one_connection(
        api: Api, warm_caches) -> None:
    personal_version = _fold_in(JAZZ)
    assert api.get(PATH, params=FILTERS).status_code == 200  # loads model and candidates
    with counting() as seen:
        answer = api.get(PATH, params=FILTERS)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["source"] == "personal" and body["model_version"] == personal_version
    assert body["items"] and all(item["reason"] for item in body["items"])
    assert len(seen.reads) <= MAX_READS, seen.reads
    assert seen.checkouts <= MAX_CHECKOUTS, seen.statements
    # the answer's record, one statement, nothing else
    assert [s.split()[0].upper() for s in seen.writes] == ["INSERT"], seen.writes

    with counting() as old_client:
        assert api.post("/v1/recommend", {"email": JAZZ, "latitude": BERLIN[0],
                                          "longitude": BERLIN[1], "filter_distance": 20}
                        ).status_code == 200
    assert len(old_client.reads) <= MAX_READS and old_client.checkouts <= MAX_CHECKOUTS

    # a user the platform has not synced: the lookup by email finds nobody, then the
    # cold-start ranking reads the stamp and model id again for its stand-in (one more
    # checkout than a known user, no decisions to read)
    with counting() as cold:
        unknown = api.get("/v1/users/stranger@example.com/recommendations",
                          params={"lat": BERLIN[0], "lon": BERLIN[1]})
    assert unknown.status_code == 200 and unknown.json()["known_user"] is False
    assert len(cold.reads) <= MAX_READS and cold.checkouts <= MAX_CHECKOUTS + 1


def test_the_key_check_is_one_statement_when_not_cached(api: Api, warm_caches,
                                                         monkeypatch) -> None:
    from beacon import api_keys

    assert api.get(PATH).status_code == 200
    monkeypatch.setattr(api_keys, "KEY_CACHE_S", 0.0)
    with counting() as seen:
        assert api.get(PATH).status_code == 200
    keys = [s for s in seen.reads if "api_keys" in s]
    assert len(keys) == 1 and len(seen.reads) <= MAX_READS + 1
    assert seen.checkouts <= MAX_CHECKOUTS + 1


def test_a_key_revoked_here_is_refused_at_once_and_elsewhere_within_the_bound(
        api: Api, monkeypatch) -> None:
    from beacon import api_keys
    from data_access import api_keys as key_store

    monkeypatch.setattr(api_keys, "KEY_CACHE_S", 3600.0)
    reader = api_keys.create_key("reader", "recommend", actor=ADMIN).secret
    assert api.client.get(PATH, headers={"X-API-Key": reader}).status_code == 200
    api_keys.revoke_key("reader", actor=ADMIN)  # through the service: this process forgets it
    assert api.client.get(PATH, headers={"X-API-Key": reader}).status_code == 401

    # revoked by another process (straight in the store): refused once the bound has passed
    bound = 0.3
    monkeypatch.setattr(api_keys, "KEY_CACHE_S", bound)
    other = api_keys.create_key("other", "recommend", actor=ADMIN)
    assert api.client.get(PATH, headers={"X-API-Key": other.secret}).status_code == 200
    key_store.revoke(other.info.id, NOW)
    time.sleep(bound + 0.05)
    assert api.client.get(PATH, headers={"X-API-Key": other.secret}).status_code == 401


def test_a_model_activated_elsewhere_serves_from_the_next_request(api: Api,
                                                                  warm_caches) -> None:
    from data_access import models_store
    from tests.test_recommend import _train_global

    first = api.get(PATH).json()["model_version"]
    second = _train_global()
    assert api.get(PATH).json()["model_version"] == second
    models_store.activate(first)  # another process's activation: no cache here is told
    assert api.get(PATH).json()["model_version"] == first


def test_the_one_statement_history_matches_user_history(api: Api) -> None:
    """The serving read folds decisions and their tags in one statement; catalog.user_history
    (used by the console) does it in two: the same answer for every user."""
    from data_access import catalog
    from data_access.serving_read import serving_read
    from tests.test_filters import seed

    seed(interactions=[
        {"email": JAZZ, "event_id": "past-jazz-0", "type": "unregister", "at": NOW},
        {"email": JAZZ, "event_id": "jazz-1", "type": "reject", "at": NOW},
        {"email": "techno0@example.com", "event_id": "jazz-0", "type": "unregister",
         "at": NOW - timedelta(days=2)},  # before their register: still registered
    ])
    for email in [f"{kind}{i}@example.com" for kind in ("jazz", "techno") for i in range(4)]:
        read = serving_read(email=email)
        expected = catalog.user_history(read.user.id)
        assert read.history == expected, email
    assert serving_read(email="nobody-here@example.com").user is None


def _serving_read_statements(*emails: str) -> list[tuple[str, object]]:
    """(statement text, parameters) as the driver got them, for serving_read of each email
    on the pooled path (the pinned one sends the same text, data_access.pinned)."""
    from sqlalchemy import event

    from data_access import pinned
    from data_access.db import get_engine
    from data_access.serving_read import serving_read

    pinned.disable()

    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        sent.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        for email in emails:
            serving_read(email=email)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def test_the_serving_read_sends_only_the_user_as_a_parameter(api: Api) -> None:
    """Every constant of the serving read is written into its text: psycopg prepares a
    statement after five runs, and Postgres's generic plan for it cannot see a parameter's
    value (with the model scope and status as parameters it scanned every model version)."""
    sent = _serving_read_statements(JAZZ, "nobody-here@example.com")
    assert len(sent) == 3  # the known user's two statements, the unknown one's one
    assert [len(parameters) for _, parameters in sent] == [1, 1, 1], sent


@pytest.mark.postgres
def test_dropped_connections_are_survived(api: Api, warm_caches, monkeypatch) -> None:
    """The server closes every pooled connection (a restart): the next recommendation is
    answered (its read retries once), and a connection idle past the ping threshold is pinged
    and replaced before use."""
    from beacon.recommend import recommend
    from data_access import catalog, db

    assert POSTGRES_URL
    assert api.get(PATH).status_code == 200

    def kill_pool() -> None:
        engine = db.get_engine()
        held = [engine.connect() for _ in range(3)]
        pids = [c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in held]
        for connection in held:
            connection.close()
        for pid in pids:
            _admin(f"SELECT pg_terminate_backend({int(pid)})")

    db.dispose_engines()
    kill_pool()
    assert recommend(JAZZ, top=3).items  # a fresh connection used at once: read retried

    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    db.dispose_engines()
    kill_pool()
    assert catalog.count_users() > 0  # no retry here: the ping found the dead connection
