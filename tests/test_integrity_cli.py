"""The CLI's promise under bad input and faults: one line on stderr (no traceback, no usage
block), exit 2 for what was typed or pointed at, the --json document even when train cannot
start, and never a database file made by a command that only reads or trains."""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from beacon.actions import cli_actor
from sqlalchemy.engine import make_url

from data_access import runs
from tests.faults import refuse_inserts
from tests.test_cli import run_cli


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("url, says", [
    ("garbage", "is not a database URL"),
    ("postgresql+psycopg://u:secret@[::1:5432/x", "is not a database URL"),
    ("postgresql+nosuchdriver://u@localhost/x", "not installed or unknown"),
    ("mysql+mysqldb://u@localhost/x", "not installed or unknown"),
])
def test_a_bad_database_url_is_one_line(url: str, says: str) -> None:
    result = run_cli("models", "list", env={"DATABASE_URL": url})
    assert result.returncode == 2
    line = one_line(result)
    assert says in line and "secret" not in line


def test_read_and_train_commands_never_create_a_database(tmp_path: Path) -> None:
    for args in (("models", "list"), ("train", "--json"), ("db", "current"),
                 ("recommend", "a@example.org")):
        result = run_cli(*args, cwd=tmp_path, env={"DATABASE_URL": ""})
        assert result.returncode == 2, (args, result.stderr)
        assert "does not exist (nothing was created)" in result.stderr
    assert not (tmp_path / "data").exists()


def test_an_sqlite_folder_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("demo-data", "--users", "5", env={
        "DATABASE_URL": f"sqlite:///{blocker}/sub/beacon.sqlite3"})
    assert result.returncode == 2
    assert "cannot make the folder" in one_line(result)


@pytest.mark.parametrize("args, says", [
    (("models", "show", "9223372036854775808"), "model version id from 1"),
    (("models", "activate", "99999999999999999999999"), "model version id from 1"),
    (("models", "cleanup", "--keep-days", "nan"), "expected days"),
    (("models", "cleanup", "--keep-days", "inf"), "expected days"),
    (("models", "cleanup", "--keep-days", "1e308"), "expected days"),
    (("models", "list", "--limit", "-1"), "from 1 to"),
    (("models", "frobnicate"), "invalid choice"),
])
def test_bad_arguments_are_one_error_line_with_a_hint(db: str, args, says: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("beacon: error: ") and says in line
    assert line.endswith("--help` lists the arguments)")
    assert "usage:" not in result.stderr


def test_models_verify_and_clear_failed(db: str) -> None:
    from data_access import models_store as store

    broken = store.insert_version(scope="global", blob=b"junk")
    result = run_cli("models", "verify", str(broken), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "failed"
    result = run_cli("models", "clear-failed", str(broken), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "inactive"


def _hold_the_write_lock(url: str, release: threading.Event, held: threading.Event) -> None:
    """What an import does: one long write transaction."""
    connection = sqlite3.connect(make_url(url).database)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("UPDATE users SET name = name")
    held.set()
    release.wait(60)
    connection.rollback()
    connection.close()


def test_busy_is_said_in_the_line_and_in_the_json(db: str, dialect: str) -> None:
    if dialect == "sqlite":
        release, held = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_the_write_lock, args=(db, release, held))
        holder.start()
        held.wait(10)
        try:
            fast = {"BEACON_SQLITE_BUSY_TIMEOUT_MS": "500"}
            result = run_cli("train", "--force", "--json", env=fast)
            document = json.loads(result.stdout)
            assert document["status"] == "busy" and "is busy" in document["reason"]
            assert "Traceback" not in result.stderr
            result = run_cli("models", "activate", "1", env=fast)
            assert result.returncode == 1 and "is busy" in one_line(result)
        finally:
            release.set()
            holder.join()
    else:  # Postgres has no database-wide write lock: a running training is what is busy
        runs.acquire("global", trigger="cli")
        result = run_cli("train", "--force", "--json")
        document = json.loads(result.stdout)
        assert document["status"] == "busy" and "already running" in document["reason"]


def test_a_training_that_fails_prints_one_line_and_logs_the_traceback(db: str, tmp_path: Path
                                                                      ) -> None:
    from beacon.demo import load_demo_data

    load_demo_data(users=30, events=20, days=7, seed=2, actor=cli_actor())
    refuse_inserts(db, "beacon_models", "no room for models (test)")
    log = tmp_path / "beacon.log"
    env = {"BEACON_LOG_FILE": str(log)}
    result = run_cli("train", "--force", env=env)
    assert result.returncode == 1
    (line,) = result.stdout.strip().splitlines()  # stderr holds only the epochs' progress
    assert line.startswith("failed: ") and "no room for models" in line
    assert "Traceback" not in result.stderr
    result = run_cli("train", "--force", "--json", env=env)
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "failed"
    assert "Traceback" not in result.stderr and "Traceback" in log.read_text()
    assert runs.lock_holder("global") is None


def test_a_read_only_database_says_read_only(db: str, dialect: str) -> None:
    import subprocess

    from data_access import models_store as store

    version = store.insert_version(scope="global", blob=b"x")
    if dialect == "sqlite":
        path = make_url(db).database
        subprocess.run(["chattr", "+i", path], check=True)  # even root cannot write it now
        try:
            result = run_cli("models", "activate", str(version))
        finally:
            subprocess.run(["chattr", "-i", path], check=True)
    else:
        url = make_url(db)
        options = url.query["options"] + " -cdefault_transaction_read_only=on"
        read_only = url.update_query_dict({"options": options})
        result = run_cli("models", "activate", str(version),
                         env={"DATABASE_URL": read_only.render_as_string(hide_password=False)})
    assert result.returncode == 1
    assert "is read-only" in one_line(result)
    assert store.get_version(version).status == "inactive"


def test_an_empty_file_that_is_not_the_default_is_refused_not_set_up(tmp_path: Path) -> None:
    empty = tmp_path / "other.sqlite3"
    sqlite3.connect(empty).close()
    result = run_cli("models", "list", env={"DATABASE_URL": f"sqlite:///{empty}"})
    assert result.returncode == 1
    assert "has no Beacon schema" in one_line(result) and "db upgrade" in result.stderr
