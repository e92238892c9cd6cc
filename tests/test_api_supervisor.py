"""`serve`'s processes: with --workers N one listening socket, held by the supervisor, which
hands each connection to the worker holding the fewest open (a burst of 8 splits 4/4, and a
closed connection frees its place); a dead worker replaced, every worker stopped with the
supervisor, a port in use refused in one line; the long-lived objects frozen out of the
garbage collector's full passes."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from beacon.api.supervisor import supports_handoff
from benchmarks.api_load import free_port
from tests.conftest import REPO_ROOT
from tests.test_api_processes import _until
from tests.test_cli import run_cli

pytestmark = pytest.mark.skipif(not supports_handoff(), reason="needs SCM_RIGHTS (a Unix)")
LISTEN, ESTABLISHED, CLOSE_WAIT = "0A", "01", "08"


def _start_serve(url: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "beacon", "serve", "--port", str(port),
                             "--workers", str(workers), "--no-refresh-worker",
                             "--no-access-log", "--log-level", "warning"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _inodes(port: int, state: str) -> dict[str, int]:
    """Inode -> remote port of the sockets on local `port` in `state` (/proc/net/tcp[6])."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    return found


def _holders(port: int, state: str = LISTEN) -> dict[int, set[int]]:
    """pid -> the remote ports of the sockets it holds on local `port` in `state` (a
    listening socket's remote port is 0)."""
    inodes = _inodes(port, state)
    found: dict[int, set[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        held = {inodes[link[8:-1]] for link in links
                if link.startswith("socket:[") and link[8:-1] in inodes}
        if held:
            found[int(proc.name)] = held
    return found


def _workers(server: subprocess.Popen) -> set[int]:
    """The supervisor's worker processes (multiprocessing's spawned children)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == server.pid and b"spawn_main" in command:
            found.add(int(proc.name))
    return found


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz/live", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(server: subprocess.Popen, port: int) -> None:
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) == 0
    assert _holders(port) == {}


def test_the_supervisor_alone_listens_and_a_dead_worker_is_replaced(db: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_serve(db, port, workers=2)
    try:
        _until(lambda: _answers(base))
        assert set(_holders(port)) == {server.pid}  # one socket; no worker accepts on its own
        workers = _until(lambda: len(found := _workers(server)) >= 2 and found)
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        replaced = _until(lambda: victim not in (found := _workers(server)) and
                          len(found) >= 2 and found)
        assert replaced - workers  # a new process took the dead one's place
        _until(lambda: _answers(base))
        _stop(server, port)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _connect(port: int, count: int) -> list[http.client.HTTPConnection]:
    """`count` keep-alive connections, each answered once (so each is with a worker)."""
    connections = []
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz/live")
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        connections.append(connection)
    return connections


def _split(port: int) -> dict[int, set[int]]:
    """worker pid -> the client ports of the connections it holds."""
    return _holders(port, ESTABLISHED)


def test_connections_go_to_the_worker_holding_the_fewest(db: str) -> None:
    port = free_port()
    server = _start_serve(db, port, workers=2)
    connections: list[http.client.HTTPConnection] = []
    try:
        _until(lambda: _answers(f"http://127.0.0.1:{port}"))
        _until(lambda: _split(port) == {})  # the probes' connections closed
        connections = _connect(port, 8)
        split = _until(lambda: sum(map(len, (found := _split(port)).values())) == 8 and found)
        assert sorted(map(len, split.values())) == [4, 4]
        # close 3 of one worker's: the next 3 go to it, whatever the turn of the hand-out
        busy, others = sorted(split)
        leaving = [c for c in connections if c.sock.getsockname()[1] in split[busy]][:3]
        for connection in leaving:
            connection.close()
            connections.remove(connection)
        # gone from the worker too (not only closed by the client): it has counted them
        _until(lambda: len(_split(port).get(busy, ())) == 1 and
               busy not in _holders(port, CLOSE_WAIT))
        connections += _connect(port, 3)
        after = _until(lambda: sum(map(len, (found := _split(port)).values())) == 8 and found)
        assert {pid: len(ports) for pid, ports in after.items()} == {busy: 4, others: 4}
        _stop(server, port)
    finally:
        for connection in connections:
            connection.close()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_in_use_is_refused_in_one_line(db: str, reuse_port: bool) -> None:
    # reuse_port: the port held the way another `serve --workers N` holds it; a second server
    # must not join it and take half of the first one's connections
    with socket.socket() as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("serve", "--workers", "2", "--port", str(port), "--no-refresh-worker")
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"beacon: error: cannot listen on 127.0.0.1:{port}:"), line


FREEZE_PROBE = """
import gc, os
from fastapi.testclient import TestClient
from beacon import recommend
from beacon.api.app import create_app
from threadpoolctl import threadpool_info
def blas():
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
before = blas()
with TestClient(create_app()) as client:
    assert client.get('/healthz/live').status_code == 200
    limited = os.environ["BEACON_BLAS_THREADS"] == "1"
    print(gc.get_freeze_count() > 0, gc.freeze in recommend.load_observers,
          blas() == (1 if limited else before))
"""


@pytest.mark.parametrize("setting, expected", [("1", "True True True"),
                                               ("0", "False False True")])
def test_serve_freezes_the_long_lived_objects_and_limits_blas_unless_told_not_to(
        db: str, setting: str, expected: str) -> None:
    # the model and candidates stay out of the collector's full passes (a 170 ms stall each),
    # numpy's BLAS threads stop spinning beside the other requests (beacon/blas_threads.py)
    env = {**os.environ, "DATABASE_URL": db, "PYTHONPATH": str(REPO_ROOT),
           "BEACON_API_FREEZE_GC": setting, "BEACON_BLAS_THREADS": setting}
    out = subprocess.run([sys.executable, "-c", FREEZE_PROBE], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
