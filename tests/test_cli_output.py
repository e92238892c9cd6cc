"""What a cron log sees: every command names its database once on stderr (password hidden),
errors stay one line, and progress is plain lines unless stderr is a terminal."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from beacon.cli.common import PlainProgress, database_line
from tests.conftest import REPO_ROOT
from tests.test_cli import run_cli
from tests.test_recommend import world


def _database_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("beacon: database ")]


@pytest.mark.parametrize("args", [
    ("db", "current", "--json"),
    ("models", "list", "--json"),
    ("metrics", "--json"),
    ("refresh-recommendations", "--json"),
    ("recommend", "jazz0@example.com", "--json"),
    ("debug-filter", "jazz0@example.com", "--json"),
])
def test_every_command_names_its_database_once_on_stderr_not_stdout(db: str, args) -> None:
    world()
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # stdout stays exactly one JSON document
    shown = make_url(db).render_as_string(hide_password=True)
    assert _database_lines(result.stderr) == [f"beacon: database {shown}"], result.stderr
    password = make_url(db).password
    if password:
        assert f":{password}@" not in result.stderr


def test_an_error_stays_one_line_and_names_the_database(db: str) -> None:
    result = run_cli("recommend", "ghost@example.com")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    shown = make_url(db).render_as_string(hide_password=True)
    assert len(lines) == 1 and lines[0].startswith("beacon: error: unknown user")
    assert lines[0].endswith(f"; database {shown}")


def test_the_embedded_default_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "beacon", "db", "upgrade"], cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "data" / "beacon.sqlite3"
    assert _database_lines(result.stderr) == [
        f"beacon: database sqlite:///{path} (embedded default, DATABASE_URL unset)"]


def test_progress_in_a_log_is_plain_lines(db: str) -> None:
    """stderr is a pipe here, as in cron: no carriage-return bars, a closing line per stage."""
    world()
    refresh = run_cli("refresh-recommendations")
    assert refresh.returncode == 0, refresh.stderr
    assert "\r" not in refresh.stderr
    assert "refreshing: 10/10 users in " in refresh.stderr
    imported = run_cli("import", "--users", str(REPO_ROOT / "docs" / "examples" / "users.csv"))
    assert imported.returncode == 0, imported.stderr
    assert "\r" not in imported.stderr and "users: 4/4 rows in " in imported.stderr


def test_progress_on_a_terminal_is_a_bar(db: str) -> None:
    world()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        process = subprocess.run(
            [sys.executable, "-m", "beacon", "refresh-recommendations"], cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE,
            stderr=follower, timeout=300,
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: everything is read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert process.returncode == 0
    assert b"\r" in seen and b"refreshing: 100%" in seen


def test_plain_progress_lines_at_each_interval_and_at_the_end(capsys, monkeypatch) -> None:
    monkeypatch.setattr(database_line, "shown", True)
    progress = PlainProgress(total=3, description="loading", unit="rows", interval=0.0)
    progress.update(2)
    progress.set_postfix({"loss": "0.5000"})
    progress.update(1)
    progress.close()
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and lines[0] == "loading: 2/3 rows"
    assert lines[1] == "loading: 3/3 rows, loss 0.5000"
    assert lines[2].startswith("loading: 3/3 rows in ") and lines[-1].endswith(" s, loss 0.5000")
