"""Every test gets a real database: an SQLite file by default, or a fresh schema on the
Postgres server named by BEACON_TEST_DATABASE_URL. The same tests run unchanged on both."""
from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from data_access import migrate
from data_access.db import dispose_engines
from tests.browser_support import NO_CHROMIUM, chromium_path

POSTGRES_URL = os.environ.get("BEACON_TEST_DATABASE_URL", "").strip()
REPO_ROOT = Path(__file__).resolve().parent.parent


def _postgres_schema_url(schema: str) -> str:
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


def _settle_background_work(timeout: float = 300) -> None:
    """Let work a test started in background threads (the console's first start, trainings)
    end while DATABASE_URL still names the test's database: a thread outliving its test writes
    into the next test's database (a stray lock there reads as 'busy')."""
    bootstrap = sys.modules.get("beacon.bootstrap")
    if bootstrap is not None:
        bootstrap.wait_for_jobs(timeout)
    training = sys.modules.get("beacon.training")
    if training is not None:
        training.wait_for_background(timeout)


def _empty_database(tmp_path: Path) -> Iterator[str]:
    if POSTGRES_URL:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        _admin(f'CREATE SCHEMA "{schema}"')
        try:
            yield _postgres_schema_url(schema)
        finally:
            _settle_background_work()
            dispose_engines()
            _admin(f'DROP SCHEMA "{schema}" CASCADE')
    else:
        try:
            yield f"sqlite:///{tmp_path / 'beacon.sqlite3'}"
        finally:
            _settle_background_work()
            dispose_engines()


@pytest.fixture
def empty_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database with no schema at all; DATABASE_URL points at it for the test."""
    for url in _empty_database(tmp_path):
        monkeypatch.setenv("DATABASE_URL", url)
        yield url


@pytest.fixture
def db(empty_db: str) -> str:
    """A fresh database migrated to head; DATABASE_URL points at it."""
    migrate.upgrade(empty_db)
    return empty_db


@pytest.fixture
def embedded_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The embedded default itself: DATABASE_URL unset and ./data/beacon.sqlite3 under a fresh
    working directory (not created: what creates it is under test)."""
    from data_access.db import database_url

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    try:
        yield database_url()
    finally:
        _settle_background_work()
        dispose_engines()


@pytest.fixture
def dialect() -> str:
    return "postgresql" if POSTGRES_URL else "sqlite"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` are left out of an SQLite run (deselected, not skipped: the
    Postgres run is where they belong, and there a skip fails CI). Tests marked `browser` skip
    with one line when there is no chromium to drive."""
    if not POSTGRES_URL:
        elsewhere = [item for item in items if item.get_closest_marker("postgres") is not None]
        if elsewhere:
            config.hook.pytest_deselected(items=elsewhere)
            items[:] = [item for item in items if item not in elsewhere]
    if chromium_path() is not None:
        return
    no_browser = pytest.mark.skip(reason=NO_CHROMIUM)
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(no_browser)


# CI runs both suites with BEACON_FAIL_ON_SKIP=1: a skipped test there is a failure.
_skipped: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Marks an item whose test body failed, for fixtures that report what they saw then."""
    from tests.browser_support import FAILED

    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("BEACON_FAIL_ON_SKIP") == "1" and _skipped:
        print(f"\nBEACON_FAIL_ON_SKIP: {len(_skipped)} test(s) skipped: {_skipped[:10]}")
        session.exitstatus = 1
