"""Two real `serve` processes and a `worker` on one Postgres database: what one process
writes, the other serves from its next request; a burst reported to one is refreshed once by
the worker; a cancelled event is gone from both at once; a key revoked elsewhere is refused
by both within the key cache's bound."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from benchmarks.api_load import free_port, stop, wait_ready
from tests.api_support import make_keys
from tests.conftest import POSTGRES_URL, REPO_ROOT
from tests.test_recommend import _train_global, world

JAZZ = "jazz1@example.com"
pytestmark = pytest.mark.postgres  # several processes on one server: the Postgres run has it


def _start(*args: str, url: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "beacon", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _key_named(name: str) -> str:
    from beacon.api_keys import create_key
    from tests.auth_support import ADMIN

    return create_key(name, "recommend", actor=ADMIN).secret


def _until(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_two_servers_and_a_worker_share_one_postgres(db: str) -> None:
    from data_access import refresh_queue
    from data_access.catalog import user_by_email

    world()
    _train_global()
    key = {"X-API-Key": make_keys()["all"]}
    ports = [free_port(), free_port()]
    servers = [_start("serve", "--port", str(p), "--no-access-log", url=db) for p in ports]
    worker = _start("worker", "--interval", "2", url=db)
    try:
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        for base, process in zip((a, b), servers):
            wait_ready(base, process)
        path = f"/v1/users/{JAZZ}/recommendations"
        first = httpx.get(a + path, params={"n": 20}, headers=key).json()
        listed = [i["event_id"] for i in first["items"]]
        assert listed == [i["event_id"] for i in
                          httpx.get(b + path, params={"n": 20}, headers=key).json()["items"]]
        # a burst of clicks through B: the worker refreshes the user once
        burst = {"interactions": [{"id": f"burst-{k}", "email": JAZZ, "event_id": listed[k % 3],
                                   "type": "click"} for k in range(5)]}
        for chunk in (burst["interactions"][:2], burst["interactions"][2:]):
            assert httpx.post(b + "/v1/interactions", json={"interactions": chunk},
                              headers=key).json()["users_marked"] == 1
        user = user_by_email(JAZZ)
        state = _until(lambda: (s := refresh_queue.state(user.id)) and s["refreshes"] and s)
        assert state["refreshes"] == 1
        time.sleep(0.5)
        assert refresh_queue.state(user.id)["refreshes"] <= 2  # the second chunk's trailing mark
        # personal now: the fold-in the worker stored serves on both servers
        assert httpx.get(a + path, headers=key).json()["source"] == "personal"
        assert httpx.get(b + path, headers=key).json()["source"] == "personal"
        # a reject through A counts on B's very next answer
        httpx.post(a + "/v1/interactions", headers=key, json={"interactions": [
            {"id": "rej", "email": JAZZ, "event_id": listed[0], "type": "reject"}]})
        assert listed[0] not in [i["event_id"] for i in
                                 httpx.get(b + path, params={"n": 20}, headers=key).json()["items"]]
        # a cancellation through B is gone from A's very next answer
        assert httpx.delete(f"{b}/v1/events/{listed[1]}", headers=key).status_code == 200
        assert listed[1] not in [i["event_id"] for i in
                                 httpx.get(a + path, params={"n": 20}, headers=key).json()["items"]]
        # a version activated through one process is served by the other from its next request
        other = "/v1/users/jazz2@example.com/recommendations"
        first_version = httpx.get(b + other, headers=key).json()["model_version"]
        second_version = _train_global()
        assert httpx.get(b + other, headers=key).json()["model_version"] == second_version
        assert httpx.post(f"{a}/v1/models/{first_version}/activate",
                          headers=key).status_code == 200
        assert httpx.get(b + other, headers=key).json()["model_version"] == first_version
        # a key revoked by another process (the CLI) is refused by both servers within the
        # bound each process trusts a checked key for
        from beacon.api_keys import KEY_CACHE_S

        doomed = {"X-API-Key": _key_named("doomed")}
        assert all(httpx.get(s + other, headers=doomed).status_code == 200 for s in (a, b))
        revoked = subprocess.run([sys.executable, "-m", "beacon", "api-keys", "revoke", "doomed"],
                                 cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": db},
                                 capture_output=True, text=True)
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(KEY_CACHE_S + 0.1)
        assert all(httpx.get(s + other, headers=doomed).status_code == 401 for s in (a, b))
    finally:
        for process in (*servers, worker):
            stop(process)


def test_a_key_revoked_from_the_command_line_is_refused_by_a_running_server(db: str) -> None:
    """`api-keys revoke` in its own process; the server already running refuses the key from
    its next request on, or, where the server keeps checked keys for a moment
    (beacon.api_keys.KEY_CACHE_S, when it has one), once that moment has passed."""
    from beacon import api_keys
    from beacon.api_keys import create_key
    from tests.auth_support import ADMIN

    world()
    _train_global()
    secret = create_key("soon-revoked", "recommend", actor=ADMIN).secret
    port = free_port()
    server = _start("serve", "--port", str(port), "--no-access-log", url=db)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        url = f"{base}/v1/users/{JAZZ}/recommendations"
        assert httpx.get(url, headers={"X-API-Key": secret}).status_code == 200
        revoke = subprocess.run(
            [sys.executable, "-m", "beacon", "api-keys", "revoke", "soon-revoked"], cwd=REPO_ROOT,
            env={**os.environ, "DATABASE_URL": db, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True, text=True, timeout=120)
        assert revoke.returncode == 0, revoke.stderr
        bound = float(getattr(api_keys, "KEY_CACHE_S", 0.0))
        if bound == 0:
            assert httpx.get(url, headers={"X-API-Key": secret}).status_code == 401
        else:
            # refused within the bound (the slack: the time a request takes on a busy machine)
            _until(lambda: httpx.get(url, headers={"X-API-Key": secret}).status_code == 401,
                   timeout=bound + 5)
        # and stays refused; a key that was never revoked still works
        assert httpx.get(url, headers={"X-API-Key": secret}).status_code == 401
        other = create_key("still-good", "recommend", actor=ADMIN).secret
        assert httpx.get(url, headers={"X-API-Key": other}).status_code == 200
    finally:
        stop(server)
