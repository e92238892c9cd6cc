"""The console under faults shows its designed one-line messages, never Streamlit's exception
panel: a garbage DATABASE_URL, the database going away mid-session, a NUL typed into a search
box, a force-retrain that cannot be written. AppTest on a real database (SQLite or Postgres)."""
from __future__ import annotations

import pytest

from beacon.actions import cli_actor

from beacon.demo import load_demo_data
from data_access import runs
from tests.faults import database_gone, refuse_inserts
from tests.auth_support import signed_in_app
from tests.test_console_ops import DEMO, TIMEOUT, app, no_exception, texts


def errors(at) -> str:
    return "\n".join(str(e.value) for e in at.error) + "\n".join(t.value for t in at.text)


@pytest.fixture
def seeded(db: str) -> str:
    load_demo_data(**DEMO, actor=cli_actor())
    return db


def test_a_garbage_database_url_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "garbage")
    at = app(role=None)  # said before the sign-in, which needs the database
    no_exception(at)
    assert "is not a database URL" in errors(at)


def test_the_database_going_away_mid_session(seeded: str) -> None:
    no_exception(app())  # this process has prepared the database and served a page
    at = signed_in_app("admin", timeout=TIMEOUT)  # the operator exists before the database goes
    with database_gone(seeded):
        at.run()  # the next request, signed in (the gate itself reads the database)
        no_exception(at)
        shown = errors(at)
        assert "does not exist" in shown or "cannot use the database" in shown \
            or "refused" in shown, shown
    at = app()
    no_exception(at)
    assert at.title[0].value == "Overview"


def test_a_nul_typed_into_the_search_box(seeded: str) -> None:
    at = app("pages/users.py")
    at.text_input(key="users_query").set_value("an\x00na").run()
    no_exception(at)
    assert "No user's email or name matches" in texts(at)


def test_a_force_retrain_that_cannot_be_written_says_so(seeded: str) -> None:
    at = app("pages/training.py")
    no_exception(at)
    refuse_inserts(seeded, "training_runs", "no space left for runs (test)")
    next(b for b in at.button if b.label == "Force retrain").click().run()
    no_exception(at)
    shown = errors(at)
    assert "no space left for runs" in shown, shown
    assert not runs.list_runs(limit=5)


def test_demo_data_loads_only_into_an_embedded_default_made_now(embedded_default: str) -> None:
    """The default file existed (a marker remembers it) and is deleted: the console says so and
    creates nothing; an existing empty database is never filled with demo data by itself."""
    from pathlib import Path

    from beacon import bootstrap
    from data_access import migrate
    from data_access.db import sqlite_file

    path = sqlite_file(embedded_default)
    migrate.upgrade(embedded_default)  # an operator made it, empty
    bootstrap.prepare(embedded_default)
    assert bootstrap.first_start_state(embedded_default, auto_start=True).kind == "needs_data"
    path.unlink()
    at = app()
    no_exception(at)
    assert "is gone" in errors(at)
    assert not path.exists() and Path(str(path) + ".created").exists()


def test_a_non_default_sqlite_file_that_is_missing_is_refused(tmp_path, monkeypatch) -> None:
    missing = tmp_path / "elsewhere" / "beacon.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    at = app(role=None)  # said before the sign-in, which needs the database
    no_exception(at)
    assert "does not exist" in errors(at)
    assert not missing.exists() and not missing.parent.exists()
