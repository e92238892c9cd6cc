"""`serve` and `worker` on the command line: bad flags are one line and exit 2; `worker --once`
refreshes what is due."""
from __future__ import annotations

from datetime import datetime, timezone

from tests.auth_support import ADMIN
from tests.test_cli import run_cli
from tests.test_recommend import world


def test_serve_refuses_bad_flags(db: str) -> None:
    for flags, message in ((["--port", "0"], "--port must be between 1 and 65535, got 0"),
                           (["--workers", "0"], "--workers must be at least 1, got 0")):
        out = run_cli("serve", *flags)
        assert out.returncode == 2 and out.stdout == ""
        [line] = out.stderr.strip().splitlines()  # one line; it names the database it used
        assert line.startswith(f"beacon: error: {message}")


def test_serve_on_a_port_in_use_is_one_line(db: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("serve", "--port", str(port))
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"beacon: error: cannot listen on 127.0.0.1:{port}: ")


def test_worker_once_refreshes_the_marked_users(db: str) -> None:
    from beacon.ingest import ingest_interactions
    from data_access import recommendations
    from data_access.catalog import user_by_email
    from data_access.ingest import IncomingInteraction

    world()
    now = datetime.now(timezone.utc)
    ingest_interactions([IncomingInteraction("w-1", "jazz1@example.com", "jazz-2", "click", now)],
                        actor=ADMIN)
    bad = run_cli("worker", "--threads", "0", "--once")
    assert bad.returncode == 2 and "at least 1 thread" in bad.stderr
    out = run_cli("worker", "--once")
    assert out.returncode == 0, out.stderr
    assert "refreshed 1 user(s)" in out.stderr
    assert recommendations.cached_recommendations(user_by_email("jazz1@example.com").id)


def test_sigterm_stops_the_worker_after_its_batches_without_stranding_claims(db: str) -> None:
    """systemd stops a service with SIGTERM: the worker finishes the users it claimed and
    claims no more (it died at once, leaving them leased for minutes)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from sqlalchemy import select

    from data_access import refresh_queue
    from data_access.db import get_engine, session_scope
    from data_access.schema import User
    from tests.test_cli import REPO_ROOT

    world()
    with session_scope() as session:
        users = [User(email=f"w{k}@example.com", latitude=52.5, longitude=13.4)
                 for k in range(300)]
        session.add_all(users)
        session.flush()
        ids = [user.id for user in users]
    with get_engine().begin() as connection:
        refresh_queue.mark(connection, ids, datetime.now(timezone.utc))
    worker = subprocess.Popen([sys.executable, "-m", "beacon", "worker", "--threads", "1"],
                              cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    queue = refresh_queue.QUEUE
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.poll() is None:
            with get_engine().connect() as connection:
                if connection.execute(select(queue.c.user_id).where(
                        queue.c.refreshed_at.is_not(None)).limit(1)).first():
                    break
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 143, err
    assert "stopping after the batches in hand" in err
    with get_engine().connect() as connection:
        stranded = connection.execute(select(queue.c.user_id).where(
            queue.c.claimed_until.is_not(None))).all()
    assert stranded == []


def test_worker_once_reports_json(db: str) -> None:
    import json

    from beacon.ingest import ingest_interactions
    from data_access.ingest import IncomingInteraction

    world()
    now = datetime.now(timezone.utc)
    ingest_interactions([IncomingInteraction("w-2", "jazz1@example.com", "jazz-2", "click", now)],
                        actor=ADMIN)
    out = run_cli("worker", "--once", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["refreshed"] == 1
    [user] = payload["users"]
    assert user["email"] == "jazz1@example.com" and user["cleared"] is True
    looping = run_cli("worker", "--json")
    assert looping.returncode == 2 and "--json goes with --once" in looping.stderr
