"""A running console for browser tests: a seeded database, `streamlit run dashboard.py` on a
free port, and Debian's chromium through Playwright (never `playwright install`)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic"]
SHOTS = Path(os.environ.get("BEACON_SCREENSHOTS", "/tmp/beacon_shots"))


@dataclass(frozen=True)
class Console:
    url: str
    database_url: str
    log_path: Path
    pid: int = 0  # the streamlit server process


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NO_CHROMIUM = ("chromium is not installed (apt-get install -y chromium), or BEACON_CHROMIUM "
               "names no executable")


def chromium_path() -> str | None:
    """BEACON_CHROMIUM when set (a path; empty means none), else Debian's chromium, else
    `chromium` on PATH; None when there is no browser to drive."""
    named = os.environ.get("BEACON_CHROMIUM")
    if named is not None:
        return named if named and os.access(named, os.X_OK) else None
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


@contextlib.contextmanager
def running_console(database_url: str, log_dir: Path, timeout: float = 90.0) -> Iterator[Console]:
    """`streamlit run dashboard.py` against `database_url` until the block ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    log_path = log_dir / f"streamlit-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(base):
                if process.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {process.returncode}: "
                                       f"{log_path.read_text(errors='replace')[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit not healthy after {timeout} s")
                time.sleep(0.2)
            yield Console(url=base, database_url=database_url, log_path=log_path,
                          pid=process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


#: set on a test item whose call failed (tests/conftest.py), for fixtures that report at teardown
FAILED = pytest.StashKey[bool]()

APP = '[data-testid="stApp"]'
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """The script run finished (a polling fragment flips the state on each tick: call this
    before looking for content, then wait for the content itself)."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def report_failure(tab, console: Console | None = None) -> str:
    """Called while a browser test fails (from its `finally`, or a fixture's teardown): what
    the tab showed goes to stdout, which pytest prints with the failure, and a screenshot to
    SHOTS. A flake seen once in CI is then explained by its own log. Returns the report."""
    name = os.environ.get("PYTEST_CURRENT_TEST", "unknown").split(" ")[0]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[-120:]
    lines = [f"--- what the tab showed during {name}"]
    try:
        lines.append(f"url: {tab.url}")
        lines.append("script state: " + str(tab.locator(APP).first.get_attribute(
            "data-test-script-state", timeout=2_000)))
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / f"failed-{safe}.png"
        tab.screenshot(path=str(shot), full_page=True, timeout=10_000)
        lines.append(f"screenshot: {shot}")
        lines.append("sidebar:\n" + tab.locator('[data-testid="stSidebar"]').first.inner_text(
            timeout=2_000)[:1500])
        lines.append("main:\n" + tab.locator('[data-testid="stMain"]').first.inner_text(
            timeout=2_000)[:3000])
    except Exception as error:  # noqa: BLE001 - a report of a failure must not fail itself
        lines.append(f"(could not read the tab: {error})")
    if console is not None:
        try:
            tail = console.log_path.read_text(errors="replace").splitlines()[-60:]
            lines.append(f"console log ({console.log_path}), last lines:\n" + "\n".join(tail))
        except OSError as error:
            lines.append(f"(no console log: {error})")
    report = "\n".join(lines)
    print(report)
    return report


def close_tab(context, tab, console: Console | None = None) -> None:
    """Close a test's browser context; first report what it showed when the test is failing
    (called from a `finally` during an exception, sys.exc_info() holds it)."""
    if sys.exc_info()[0] is not None:
        report_failure(tab, console)
    context.close()
