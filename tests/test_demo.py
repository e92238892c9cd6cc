"""demo-data on a real database (SQLite, or Postgres with BEACON_TEST_DATABASE_URL)."""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from beacon.cli import main
from beacon.demo import load_demo_data
from beacon.errors import BeaconError
from data_access import migrate
from data_access.db import dispose_engines, get_engine
from tests.auth_support import ADMIN

# Anchor chosen so the 14-day window and the 4 upcoming weeks hold DST changes
# (London and Berlin on 2026-10-25, New York on 2026-11-01).
NOW = datetime(2026, 11, 5, 12, 0, tzinfo=timezone.utc)
SMALL = dict(users=60, events=40, days=14, seed=7, now=NOW)
PRE_EVENT_TYPES = ("impression", "click", "view", "favorite", "share", "register",
                   "unregister", "reject")


@pytest.fixture
def second_db(tmp_path: Path):
    """Another fresh migrated database of the same dialect as `db`."""
    postgres = os.environ.get("BEACON_TEST_DATABASE_URL", "").strip()
    if not postgres:
        url = f"sqlite:///{tmp_path / 'second.sqlite3'}"
        migrate.upgrade(url)
        yield url
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres).update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def rows(url: str, sql: str) -> list[tuple]:
    with get_engine(url).connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def scalar(url: str, sql: str):
    with get_engine(url).connect() as connection:
        return connection.execute(text(sql)).scalar_one()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every demo row by natural keys (surrogate ids left out), in a stable order."""
    return {
        "users": rows(url, "SELECT email, name, latitude, longitude, city, created_at, "
                           "updated_at FROM users ORDER BY email"),
        "interests": rows(url, "SELECT u.email, i.tag FROM user_interests i JOIN users u "
                               "ON u.id = i.user_id ORDER BY u.email, i.tag"),
        "events": rows(url, "SELECT event_id, title, category, organizer, city, latitude, "
                            "longitude, start_time, end_time, timezone, price, capacity, "
                            "created_at FROM events ORDER BY event_id"),
        "event_tags": rows(url, "SELECT e.event_id, t.tag FROM event_tags t JOIN events e "
                                "ON e.id = t.event_id ORDER BY e.event_id, t.tag"),
        "interactions": rows(
            url,
            "SELECT u.email, e.event_id, i.type, i.occurred_at, i.model_version, i.strategy, "
            "i.position FROM interactions i JOIN users u ON u.id = i.user_id "
            "JOIN events e ON e.id = i.event_id "
            "ORDER BY u.email, e.event_id, i.type, i.occurred_at",
        ),
    }


def as_utc(value) -> datetime:
    """Raw SQL on SQLite returns text; on Postgres an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def test_same_seed_and_now_give_identical_databases(db: str, second_db: str) -> None:
    first = load_demo_data(**SMALL, actor=ADMIN)
    second = load_demo_data(**SMALL, url=second_db, actor=ADMIN)
    assert first.interactions == second.interactions
    assert snapshot(db) == snapshot(second_db)


def test_another_seed_gives_other_data(db: str, second_db: str) -> None:
    load_demo_data(**SMALL, actor=ADMIN)
    load_demo_data(**{**SMALL, "seed": 8}, url=second_db, actor=ADMIN)
    assert snapshot(db)["interactions"] != snapshot(second_db)["interactions"]


def test_counts_and_summary(db: str) -> None:
    summary = load_demo_data(**SMALL, actor=ADMIN)
    assert scalar(db, "SELECT count(*) FROM users") == 60
    assert scalar(db, "SELECT count(*) FROM events") == 40
    stored = scalar(db, "SELECT count(*) FROM interactions")
    assert stored == summary.interactions
    assert 200 <= stored <= 10_000
    by_type = dict(rows(db, "SELECT type, count(*) FROM interactions GROUP BY type"))
    assert by_type == summary.interactions_by_type
    for kind in ("impression", "click", "view", "register", "attend"):
        assert by_type.get(kind, 0) > 0, kind
    assert by_type["impression"] > by_type["click"] > by_type["register"]
    interests = rows(db, "SELECT user_id, count(*) FROM user_interests GROUP BY user_id")
    assert len(interests) == 60 and all(2 <= n <= 5 for _, n in interests)
    tags = rows(db, "SELECT event_id, count(*) FROM event_tags GROUP BY event_id")
    assert len(tags) == 40 and all(1 <= n <= 4 for _, n in tags)
    assert len({e for (e,) in rows(db, "SELECT email FROM users")}) == 60
    upcoming = scalar(db, f"SELECT count(*) FROM events WHERE start_time > '{_sql_time(db, NOW)}'")
    assert upcoming == summary.upcoming_events and 8 <= upcoming <= 32


def test_progress_reports_every_stage_and_indexes_are_back(db: str) -> None:
    def index_names() -> set[str]:
        with get_engine(db).connect() as connection:
            return {index["name"] for index in inspect(connection).get_indexes("interactions")}

    before = index_names()
    calls: list[tuple[int, int, str]] = []
    load_demo_data(**SMALL, progress=lambda done, total, stage: calls.append((done, total, stage)), actor=ADMIN)
    stages = [stage for _, _, stage in calls]
    assert {"users", "events", "interactions", "building indexes"} <= set(stages)
    for stage in ("users", "events", "interactions"):
        done, total, _ = [c for c in calls if c[2] == stage][-1]
        assert done == total
    assert index_names() == before and "ix_interactions_user_time" in before


def test_impressions_carry_version_strategy_and_position(db: str) -> None:
    load_demo_data(**SMALL, actor=ADMIN)
    got = rows(db, "SELECT DISTINCT model_version, strategy FROM interactions "
                   "WHERE type = 'impression'")
    assert {v for v, _ in got} <= {1, 2, 3} and len({v for v, _ in got}) >= 2
    assert {s for _, s in got} == {"beacon", "popularity"}
    positions = rows(db, "SELECT min(position), max(position) FROM interactions "
                         "WHERE type = 'impression'")[0]
    assert positions[0] == 1 and positions[1] <= 10
    assert scalar(db, "SELECT count(*) FROM interactions WHERE type <> 'impression' "
                      "AND position IS NOT NULL") == 0


def test_refuses_a_database_with_data_and_changes_nothing(db: str) -> None:
    load_demo_data(**SMALL, actor=ADMIN)
    before = snapshot(db)
    with pytest.raises(BeaconError, match=r"already holds 60 users and 40 events.*--replace"):
        load_demo_data(**{**SMALL, "seed": 99}, actor=ADMIN)
    assert snapshot(db) == before


def test_replace_wipes_platform_and_engine_state(db: str) -> None:
    load_demo_data(**SMALL, actor=ADMIN)
    with get_engine(db).begin() as connection:
        connection.execute(text(
            "INSERT INTO beacon_models (scope, status, model_type, hyperparameters, counts, "
            "loss_history, metrics, created_at) VALUES ('global', 'active', 'hybrid', '{}', "
            "'{}', '[]', '{}', :at)"), {"at": NOW})
        connection.execute(text(
            "INSERT INTO user_recommendations (user_id, rank, event_id, score, strategy, "
            "generated_at) SELECT min(u.id), 1, min(e.id), 0.5, 'beacon', :at "
            "FROM users u, events e"), {"at": NOW})
    summary = load_demo_data(**{**SMALL, "users": 30, "events": 20, "replace": True}, actor=ADMIN)
    assert summary.replaced == {"users": 60, "events": 40,
                                "interactions": summary.replaced["interactions"]}
    assert scalar(db, "SELECT count(*) FROM users") == 30
    assert scalar(db, "SELECT count(*) FROM events") == 20
    assert scalar(db, "SELECT count(*) FROM interactions") == summary.interactions
    assert scalar(db, "SELECT count(*) FROM beacon_models") == 0
    assert scalar(db, "SELECT count(*) FROM user_recommendations") == 0


def test_unicode_names_survive(db: str) -> None:
    load_demo_data(**SMALL, actor=ADMIN)
    names = [name for (name,) in rows(db, "SELECT name FROM users")]
    assert any(not name.isascii() for name in names)
    assert any(ord(ch) > 0x3000 for ch in "".join(names))  # CJK, not only accents
    emails = [email for (email,) in rows(db, "SELECT email FROM users")]
    assert all(email.isascii() and "@" in email for email in emails)


def test_event_times_include_the_awkward_cases(db: str) -> None:
    summary = load_demo_data(**SMALL, actor=ADMIN)
    events = rows(db, "SELECT event_id, start_time, end_time, timezone FROM events")
    across_midnight = no_end = on_dst_day = 0
    for _, start, end, tz in events:
        zone = ZoneInfo(tz)
        local_start = as_utc(start).astimezone(zone)
        if end is None:
            no_end += 1
        else:
            assert as_utc(end) > as_utc(start)
            across_midnight += as_utc(end).astimezone(zone).date() > local_start.date()
        day = local_start.date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        on_dst_day += midnight.utcoffset() != (midnight + timedelta(days=1)).utcoffset()
    assert across_midnight > 0
    assert no_end > 0
    assert on_dst_day > 0
    assert on_dst_day == summary.events_on_dst_days
    assert {"London 2026-10-25", "New York 2026-11-01"} <= set(summary.dst_days)


def test_interactions_respect_time(db: str) -> None:
    load_demo_data(**SMALL, actor=ADMIN)
    got = rows(db, "SELECT i.type, i.occurred_at, e.start_time, u.created_at "
                   "FROM interactions i JOIN events e ON e.id = i.event_id "
                   "JOIN users u ON u.id = i.user_id")
    window_start = NOW - timedelta(days=14)
    for kind, occurred, start, joined in got:
        occurred, start = as_utc(occurred), as_utc(start)
        assert window_start <= occurred < NOW
        assert occurred >= as_utc(joined)
        if kind in PRE_EVENT_TYPES:
            assert occurred < start, kind
        else:
            assert occurred >= start, kind


def test_registrations_land_on_events_that_start_after_now(db: str) -> None:
    load_demo_data(**{**SMALL, "users": 200, "events": 80}, actor=ADMIN)  # enough for a cold-start signal
    now = f"'{_sql_time(db, NOW)}'"
    future = scalar(db, "SELECT count(*) FROM interactions i JOIN events e "
                        f"ON e.id = i.event_id WHERE i.type = 'register' AND e.start_time > {now}")
    assert future > 0
    # ... and, after a holdout cutoff a week back, some on events nobody had touched (cold start).
    cutoff = f"'{_sql_time(db, NOW - timedelta(days=7))}'"
    cold = scalar(
        db,
        "SELECT count(DISTINCT i.event_id) FROM interactions i JOIN events e ON e.id = i.event_id "
        f"WHERE i.type = 'register' AND i.occurred_at >= {cutoff} AND e.start_time > {cutoff} "
        "AND NOT EXISTS (SELECT 1 FROM interactions p WHERE p.event_id = i.event_id "
        f"AND p.occurred_at < {cutoff})",
    )
    assert cold > 0


def test_bad_arguments_are_refused_with_a_clear_message(db: str) -> None:
    with pytest.raises(BeaconError, match="--users must be between"):
        load_demo_data(**{**SMALL, "users": 0}, actor=ADMIN)
    with pytest.raises(BeaconError, match="no UTC offset"):
        load_demo_data(**{**SMALL, "now": "2026-11-05T12:00:00"}, actor=ADMIN)
    with pytest.raises(BeaconError, match="not an ISO 8601"):
        load_demo_data(**{**SMALL, "now": "yesterday"}, actor=ADMIN)
    assert scalar(db, "SELECT count(*) FROM users") == 0


def test_cli_json_then_refusal_exit_2(db: str, capsys: pytest.CaptureFixture) -> None:
    argv = ["demo-data", "--users", "30", "--events", "20", "--days", "7", "--seed", "3",
            "--now", "2026-11-05T12:00:00Z", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr()
    payload = json.loads(out.out)
    assert payload["users"] == 30 and payload["events"] == 20
    assert payload["interactions"] == scalar(db, "SELECT count(*) FROM interactions")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("beacon: error: the database already holds 30 users and 20 events")
    assert main(argv + ["--replace"]) == 0


def _sql_time(url: str, moment: datetime) -> str:
    """A literal that compares correctly with stored times on this dialect."""
    if make_url(url).get_backend_name() == "sqlite":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment.isoformat()


def test_registrations_follow_the_hidden_taste(db: str) -> None:
    """Registrations match the users' stated interests far more often than chance, in their
    own city mostly: the signal a content-aware model learns and popularity cannot."""
    load_demo_data(**{**SMALL, "users": 200, "events": 80}, actor=ADMIN)
    interests: dict[int, set[str]] = {}
    for user, tag in rows(db, "SELECT user_id, tag FROM user_interests"):
        interests.setdefault(user, set()).add(tag)
    tags: dict[int, set[str]] = {}
    for event, tag in rows(db, "SELECT event_id, tag FROM event_tags"):
        tags.setdefault(event, set()).add(tag)
    city = dict(rows(db, "SELECT id, city FROM users"))
    event_city = dict(rows(db, "SELECT id, city FROM events"))
    registered = rows(db, "SELECT user_id, event_id FROM interactions WHERE type = 'register'")
    assert len(registered) >= 50
    matched = sum(bool(interests[u] & tags[e]) for u, e in registered) / len(registered)
    chance = [bool(interests[u] & tags[e]) for u in interests for e in tags
              if event_city[e] == city[u]]
    assert matched > sum(chance) / len(chance) + 0.15
    home = sum(event_city[e] == city[u] for u, e in registered) / len(registered)
    assert home > 0.9
