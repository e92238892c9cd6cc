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
