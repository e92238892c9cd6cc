"""The console under faults shows its designed one-line messages, never Streamlit's exception
panel: a garbage DATABASE_URL, the database going away mid-session, a NUL typed into a search
box, a force-retrain that cannot be written. AppTest on a real database (SQLite or Postgres)."""
from __future__ import annotations

import pytest

from sqlalchemy import text

from beacon.demo import load_demo_data
from data_access import runs
from data_access.db import get_engine
from tests.faults import database_gone
from tests.test_console_ops import DEMO, app, no_exception, texts


def errors(at) -> str:
    return "\n".join(str(e.value) for e in at.error) + "\n".join(t.value for t in at.text)


@pytest.fixture
def seeded(db: str) -> str:
    load_demo_data(**DEMO)
    return db


def test_a_garbage_database_url_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "garbage")
    at = app()
    no_exception(at)
    assert "is not a database URL" in errors(at)


def test_the_database_going_away_mid_session(seeded: str) -> None:
    no_exception(app())  # this process has prepared the database and served a page
    with database_gone(seeded):
        at = app()  # the next request (AppTest reruns a switched-to page without the frame)
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


def _refuse_new_runs(url: str, dialect: str) -> None:
    """The database itself refuses to store a training run (a trigger that raises): a write
    that fails while every read still works."""
    statements = {
        "sqlite": ["CREATE TRIGGER refuse_runs BEFORE INSERT ON training_runs "
                   "BEGIN SELECT RAISE(ABORT, 'no space left for runs (test)'); END"],
        "postgresql": [
            "CREATE FUNCTION refuse_runs() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no space left for runs (test)'; END $$",
            "CREATE TRIGGER refuse_runs BEFORE INSERT ON training_runs "
            "FOR EACH ROW EXECUTE FUNCTION refuse_runs()"],
    }[dialect]
    with get_engine(url).begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_a_force_retrain_that_cannot_be_written_says_so(seeded: str, dialect: str) -> None:
    at = app("pages/training.py")
    no_exception(at)
    _refuse_new_runs(seeded, dialect)
    next(b for b in at.button if b.label == "Force retrain").click().run()
    no_exception(at)
    shown = errors(at)
    assert "no space left for runs" in shown, shown
    assert not runs.list_runs(limit=5)
