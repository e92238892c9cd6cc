"""`serve`'s processes: with --workers N one listening socket per worker (SO_REUSEPORT), a dead
worker replaced, every worker stopped with the supervisor, a port in use refused in one line;
the long-lived objects frozen out of the garbage collector's full passes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from beacon.api.supervisor import supports_reuse_port
from benchmarks.api_load import free_port
from tests.conftest import REPO_ROOT
from tests.test_api_processes import _until
from tests.test_cli import run_cli

pytestmark = pytest.mark.skipif(not supports_reuse_port(), reason="needs SO_REUSEPORT (Linux)")


def _start_serve(url: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "beacon", "serve", "--port", str(port),
                             "--workers", str(workers), "--no-refresh-worker",
                             "--no-access-log", "--log-level", "warning"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on `port` (state 0A in /proc/net/tcp[6])."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def _listeners(port: int) -> dict[int, set[str]]:
    """pid -> the inodes of the sockets it holds that listen on `port`."""
    inodes = _listening_inodes(port)
    found: dict[int, set[str]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        held = {link[8:-1] for link in links if link.startswith("socket:[")} & inodes
        if held:
            found[int(proc.name)] = held
    return found


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz/live", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_each_worker_listens_on_its_own_socket_and_a_dead_one_is_replaced(db: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_serve(db, port, workers=2)
    try:
        workers = _until(lambda: len(found := _listeners(port)) == 2 and found)
        # two processes, two sockets: not one shared socket accepted by whoever wakes first
        assert len(set().union(*workers.values())) == 2
        assert server.pid not in workers
        _until(lambda: _answers(base))
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        replaced = _until(lambda: len(found := _listeners(port)) == 2 and victim not in found
                          and found)
        assert set(replaced) - set(workers)  # a new process took the dead one's place
        _until(lambda: _answers(base))
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert _listeners(port) == {}
    finally:
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
