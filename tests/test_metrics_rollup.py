"""The daily metrics rollup answers exactly what the live queries answer, and stays so as data
changes: new and back-dated interactions, an event's category changed, a user deleted; a held
lock makes readers answer live. SQLite and Postgres."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import delete, insert, text, update

from beacon import metrics
from beacon.demo import load_demo_data
from data_access import metrics as live
from data_access import metrics_rollup as rollup
from data_access.db import get_engine
from data_access.schema import Event, Interaction, User
from tests.test_metrics import END, START, at, load_fixture
from tests.auth_support import ADMIN

RANGES = [
    (START, END),                                      # whole days
    (at(1, 9, 30), at(3, 17)),                         # partial days at both ends
    (at(2, 1), at(2, 23)),                             # inside one day
    (at(25, month=10), at(10)),                        # wider than the data
    (at(31, 23, month=10), at(1, 0, 45)),              # a few minutes across midnight
]


def _canonical(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    def cell(value):
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return None
        return value.item() if hasattr(value, "item") else value

    rows = [tuple(cell(v) for v in row) for row in frame[list(frame.columns)].itertuples(
        index=False, name=None)]
    positions = [list(frame.columns).index(k) for k in keys]
    return sorted(rows, key=lambda r: tuple((r[p] is None, str(r[p])) for p in positions))


def assert_same_as_live(db: str, start: datetime, end: datetime) -> None:
    source = rollup.RollupReader(db)
    assert _canonical(source.counts_by_day(start, end), ["day"]) == \
        _canonical(live.counts_by_day(start, end, db), ["day"]), (start, end)
    assert _canonical(source.counts_by_category(start, end), ["category"]) == \
        _canonical(live.counts_by_category(start, end, db), ["category"]), (start, end)
    assert source.count_totals(start, end) == live.count_totals(start, end, db), (start, end)
    keys = ["attributed", "model_version", "strategy", "position"]
    assert _canonical(source.attributed_counts(start, end), keys) == \
        _canonical(live.attributed_counts(start, end, url=db), keys), (start, end)


@pytest.fixture
def fixture_db(db: str) -> str:
    load_fixture(db)
    return db


def _insert_interactions(db: str, rows: list[dict]) -> None:
    with get_engine(db).begin() as connection:
        connection.execute(insert(Interaction.__table__), rows)


def test_first_refresh_builds_and_the_second_finds_nothing_to_do(fixture_db: str) -> None:
    first = rollup.refresh(fixture_db)
    assert first.status == "rebuilt" and first.reason == "never built"
    assert first.days == 6  # 10-31 .. 11-05, the days the interactions span
    assert rollup.refresh(fixture_db).status == "current"
    for start, end in RANGES:
        assert_same_as_live(fixture_db, start, end)


def test_known_numbers_through_the_service(fixture_db: str) -> None:
    """The hand-counted fixture of test_metrics, read through the rollup."""
    result = metrics.online_metrics(start=START, end=END)
    assert rollup.refresh(fixture_db).status == "current"  # the service refreshed it
    assert result.totals["impressions"] == 8 and result.totals["clicks"] == 5
    assert result.totals["attributed_clicks"] == 4 and result.totals["registrations"] == 3
    assert result.totals["unattributed_registrations"] == 1


def test_a_back_dated_impression_changes_the_attribution_of_later_days(fixture_db: str) -> None:
    rollup.refresh(fixture_db)
    before = rollup.RollupReader(fixture_db).attributed_counts(START, END)
    # c2 (u2 e1 click 11-02 13:00) had no impression within 24 h; this one explains it
    _insert_interactions(fixture_db, [{
        "id": 1000, "user_id": 2, "event_id": 1, "type": "impression",
        "occurred_at": at(1, 14), "model_version": 7, "strategy": "experiment", "position": 9}])
    result = rollup.refresh(fixture_db)
    assert result.status == "updated" and result.days == 8  # 11-01 and the 7 days after
    after = rollup.RollupReader(fixture_db).attributed_counts(START, END)
    assert _canonical(after, ["attributed", "model_version", "strategy", "position"]) != \
        _canonical(before, ["attributed", "model_version", "strategy", "position"])
    experiment = after[after["strategy"] == "experiment"]
    assert experiment[["impressions", "clicks"]].values.tolist() == [[1, 1]]
    for start, end in RANGES:
        assert_same_as_live(fixture_db, start, end)


def test_new_conversions_on_a_new_day(fixture_db: str) -> None:
    rollup.refresh(fixture_db)
    _insert_interactions(fixture_db, [
        {"id": 1001, "user_id": 1, "event_id": 2, "type": "click", "occurred_at": at(4, 0, 30)},
        {"id": 1002, "user_id": 3, "event_id": 3, "type": "register", "occurred_at": at(8, 12)},
    ])
    result = rollup.refresh(fixture_db)
    assert result.status == "updated" and result.days == 2
    for start, end in RANGES + [(at(4), at(9)), (at(4, 0, 10), at(8, 13))]:
        assert_same_as_live(fixture_db, start, end)


def test_an_event_whose_category_changed(fixture_db: str) -> None:
    rollup.refresh(fixture_db)
    with get_engine(fixture_db).begin() as connection:
        connection.execute(update(Event.__table__).where(Event.__table__.c.id == 3).values(
            category="football", updated_at=datetime.now(timezone.utc)))
    assert rollup.refresh(fixture_db).status == "updated"
    categories = rollup.RollupReader(fixture_db).counts_by_category(START, END)
    assert "football" in set(categories["category"]) and "sports" not in set(categories["category"])
    for start, end in RANGES:
        assert_same_as_live(fixture_db, start, end)


def test_a_deleted_user_rebuilds_everything(fixture_db: str) -> None:
    rollup.refresh(fixture_db)
    with get_engine(fixture_db).begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys = ON")
        connection.execute(delete(Interaction.__table__).where(Interaction.__table__.c.user_id == 2))
        connection.execute(delete(User.__table__).where(User.__table__.c.id == 2))
    result = rollup.refresh(fixture_db)
    assert result.status == "rebuilt" and result.reason == "users were deleted"
    for start, end in RANGES:
        assert_same_as_live(fixture_db, start, end)


def test_demo_data_random_ranges_match_live(db: str) -> None:
    load_demo_data(users=150, events=80, days=20, seed=3, now="2026-11-20T12:00:00Z", url=db, actor=ADMIN)
    assert rollup.refresh(db).status == "current", "demo-data refreshed the rollup itself"
    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    chooser = random.Random(5)
    for _ in range(6):
        start = now - timedelta(minutes=chooser.randrange(0, 22 * 24 * 60))
        end = start + timedelta(minutes=chooser.randrange(1, 12 * 24 * 60))
        assert_same_as_live(db, start, end)


def test_other_windows_are_answered_live(fixture_db: str) -> None:
    assert isinstance(rollup.reader(timedelta(hours=2), timedelta(days=7), fixture_db),
                      rollup.LiveReader)
    assert isinstance(rollup.reader(url=fixture_db), rollup.RollupReader)


def test_a_held_lock_makes_readers_answer_live(fixture_db: str, dialect: str) -> None:
    """A data load in progress (it holds the writer's lock) must not block the Metrics page:
    the refresh reports busy and the page is answered by the live queries."""
    rollup.refresh(fixture_db)
    _insert_interactions(fixture_db, [{"id": 1003, "user_id": 1, "event_id": 4, "type": "click",
                                       "occurred_at": at(2, 2)}])
    with get_engine(fixture_db).connect() as writer:
        with writer.begin():
            if dialect == "sqlite":  # any write holds SQLite's write lock to the end
                writer.execute(text("UPDATE users SET name = name WHERE id = 1"))
            else:
                rollup.hold_for_writer(writer)
            assert rollup.refresh(fixture_db).status == "busy"
            assert isinstance(rollup.reader(url=fixture_db), rollup.LiveReader)
            result = metrics.online_metrics(start=START, end=END)
            assert result.totals["clicks"] == 6  # the new click, counted live
    assert rollup.refresh(fixture_db).status == "updated"
    assert_same_as_live(fixture_db, START, END)


def test_a_platform_wipe_forgets_the_rollup(db: str) -> None:
    """demo-data --replace wipes the platform and ids start again: the old id mark would
    mean nothing, so the wipe empties the rollup and marks it never built."""
    from data_access.bulk import bulk_writer

    load_demo_data(users=60, events=40, days=10, seed=4, now="2026-11-10T12:00:00Z", url=db, actor=ADMIN)
    with bulk_writer(db) as writer:
        writer.wipe_platform()
    result = rollup.refresh(db)
    assert (result.status, result.reason, result.days) == ("rebuilt", "never built", 0)
    load_demo_data(users=60, events=40, days=10, seed=4, now="2026-11-20T12:00:00Z", url=db, actor=ADMIN)
    assert rollup.refresh(db).status == "current"
    assert_same_as_live(db, datetime(2026, 11, 1, tzinfo=timezone.utc),
                        datetime(2026, 11, 21, tzinfo=timezone.utc))
