"""The newcomer's path: the set-up script reuses an up-to-date environment, browser tests skip
with one line when there is no chromium, and BEACON_FAIL_ON_SKIP=1 (CI) turns that skip into a
failed run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.browser_support import NO_CHROMIUM
from tests.conftest import REPO_ROOT


def _pytest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_browser_tests_skip_with_one_line_without_chromium_and_ci_fails_on_it() -> None:
    base = {k: v for k, v in os.environ.items() if k != "BEACON_FAIL_ON_SKIP"}
    base["BEACON_CHROMIUM"] = "/nonexistent/chromium"

    local = _pytest("-q", "tests/test_browser.py", env=base)
    assert local.returncode == 0, local.stdout + local.stderr
    skip_lines = [line for line in local.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skip_lines and all(line.endswith(NO_CHROMIUM) for line in skip_lines), local.stdout
    assert " passed" not in local.stdout and "error" not in local.stdout.lower()

    ci = _pytest("-q", "tests/test_browser.py", env={**base, "BEACON_FAIL_ON_SKIP": "1"})
    assert ci.returncode == 1, ci.stdout
    assert "BEACON_FAIL_ON_SKIP" in ci.stdout


def _ensure_venv(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(root / "scripts" / "ensure-venv")], cwd=root,
                          capture_output=True, text=True, timeout=300)


def test_ensure_venv_installs_once_and_again_only_when_requirements_change(tmp_path: Path) -> None:
    # A real venv from a requirements file that asks for nothing (offline, a few seconds).
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "ensure-venv", tmp_path / "scripts" / "ensure-venv")
    (tmp_path / "requirements.txt").write_text("# nothing to install\n")

    first = _ensure_venv(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "creating .venv" in first.stderr and "first install" in first.stderr
    assert (tmp_path / ".venv" / "bin" / "python").exists()

    second = _ensure_venv(tmp_path)
    assert second.returncode == 0 and second.stderr == ""

    (tmp_path / "requirements.txt").write_text("# nothing to install, still\n")
    third = _ensure_venv(tmp_path)
    assert third.returncode == 0, third.stderr
    assert "creating" not in third.stderr and "requirements.txt changed" in third.stderr


def test_cron_retrain_trains_and_refreshes_the_same_database(db: str) -> None:
    from tests.test_recommend import world

    world()
    env = {**os.environ, "BEACON_PYTHON": sys.executable, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([str(REPO_ROOT / "scripts" / "cron-retrain")], cwd="/", env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "trained: model version 1" in result.stdout and "refreshed 10 user(s)" in result.stdout
    named = [line for line in result.stderr.splitlines() if line.startswith("beacon: database ")]
    assert len(named) == 2 and named[0] == named[1] and db.split("?")[0].split("@")[-1] in named[0]
    assert "\r" not in result.stderr
