"""The command line as cron and scripts see it: help, exit codes, one-line errors, --json."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from data_access import migrate
from tests.conftest import REPO_ROOT

SUBCOMMANDS = (
    "db", "demo-data", "import", "train", "models", "recommend", "debug-filter",
    "refresh-recommendations", "evaluate", "metrics",
)


def run_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "beacon", *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=300,
    )


def test_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout, name


def test_db_upgrade_json_is_one_document(empty_db: str) -> None:
    result = run_cli("db", "upgrade", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["from"] is None and payload["to"] == migrate.head_revision()
    again = json.loads(run_cli("db", "upgrade", "--json").stdout)
    assert again["from"] == again["to"] == migrate.head_revision()


def test_default_sqlite_file_is_created_when_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "beacon", "db", "upgrade"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "beacon.sqlite3").is_file()


def test_unreachable_database_is_one_line_without_password() -> None:
    result = run_cli(
        "db", "current", env={"DATABASE_URL": "postgresql+psycopg://u:hunter2@127.0.0.1:9/none"}
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("beacon: error: cannot use the database")
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_a_non_embedded_database_at_an_old_schema_is_refused(empty_db: str, dialect: str) -> None:
    from data_access import migrate

    migrate.upgrade(empty_db, revision="0001")
    result = run_cli("metrics", "--json")
    if dialect == "sqlite":  # the embedded default migrates itself on start
        assert result.returncode == 0, result.stderr
        assert migrate.current_revision(empty_db) == migrate.head_revision()
    else:
        assert result.returncode == 1
        assert "python -m beacon db upgrade" in result.stderr
