"""Nothing lost, nothing silent: import refusals, one account per email, ids never reused, the
merge migration. Real SQLite files and real Postgres schemas (the db / empty_db fixtures)."""
from __future__ import annotations

from beacon.actions import cli_actor

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from beacon.errors import BeaconError
from beacon.importer import import_csv
from data_access import catalog, migrate, models_store
from data_access.db import get_engine
from data_access.imports import table_counts

UTC = timezone.utc
USERS_HEADER = "email,name,latitude,longitude,city,interest_tags"
EVENTS_HEADER = "event_id,title,start_time,price"


def _write(path: Path, text_lines: list[str]) -> Path:
    path.write_text("\n".join(text_lines) + "\n", encoding="utf-8")
    return path


def _scalar(url: str, sql: str, **params):
    with get_engine(url).connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def test_an_unclosed_quote_is_refused_at_the_line_it_opened(db: str, tmp_path: Path) -> None:
    users = _write(tmp_path / "users.csv", [
        USERS_HEADER, "a@example.org,Ann,,,,", 'b@example.org,"Bob,,,,',
        "c@example.org,Cy,,,,", "d@example.org,Di,,,,",
    ])
    with pytest.raises(BeaconError, match=r"users\.csv:3: column name: .*quote.*line 5"):
        import_csv(users=users, actor=cli_actor())
    assert table_counts()["users"] == 0


def test_a_quoted_line_break_that_swallows_records_is_refused(db: str, tmp_path: Path) -> None:
    users = _write(tmp_path / "users.csv", [
        USERS_HEADER, 'a@example.org,"Ann', 'b@example.org,Bob",,,,', "c@example.org,Cy,,,,",
    ])
    with pytest.raises(BeaconError, match=r"users\.csv:2: column name"):
        import_csv(users=users, actor=cli_actor())
    assert table_counts()["users"] == 0


def test_a_nul_byte_is_named_by_file_line_and_column(db: str, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(f"{USERS_HEADER}\na@example.org,Ann,,,,\nb@example.org,B\x00b,,,Rome,\n"
                      .encode())
    with pytest.raises(BeaconError) as caught:
        import_csv(users=users, actor=cli_actor())
    message = str(caught.value)
    assert "users.csv:3: column name: expected text without NUL bytes" in message
    assert "Traceback" not in message
    assert table_counts()["users"] == 0


def test_emails_are_one_account_whatever_their_case(db: str, tmp_path: Path) -> None:
    import_csv(users=_write(tmp_path / "u1.csv", [USERS_HEADER, "ann@example.org,Ann,,,,"]), actor=cli_actor())
    summary = import_csv(users=_write(tmp_path / "u2.csv", [USERS_HEADER,
                                                             " ANN@EXAMPLE.ORG ,Ann B,,,,"]), actor=cli_actor())
    assert summary.users.inserted == 0 and summary.users.updated == 1
    assert table_counts()["users"] == 1
    assert catalog.user_by_email("Ann@Example.Org").name == "Ann B"
    with pytest.raises(BeaconError, match="not already used on line 2"):
        import_csv(users=_write(tmp_path / "u3.csv", [
            USERS_HEADER, "Case@Example.org,A,,,,", "case@example.org,B,,,,"]), actor=cli_actor())


def test_the_database_refuses_an_email_that_is_not_normalized(db: str) -> None:
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        with get_engine(db).begin() as connection:
            connection.execute(text("INSERT INTO users (email, created_at, updated_at) "
                                    "VALUES ('Up@Example.org', :t, :t)"), {"t": now})


def test_absurd_prices_and_future_interactions_are_refused(db: str, tmp_path: Path) -> None:
    events = _write(tmp_path / "events.csv", [EVENTS_HEADER, "e1,Gala,2030-01-01T10:00:00Z,1e308"])
    with pytest.raises(BeaconError, match=r"events\.csv:2: column price: expected a price "
                                          r"between 0 and"):
        import_csv(events=events, actor=cli_actor())
    users = _write(tmp_path / "users.csv", [USERS_HEADER, "a@example.org,Ann,,,,"])
    events = _write(tmp_path / "events2.csv", [EVENTS_HEADER, "e1,Gala,2030-01-01T10:00:00Z,10"])
    soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    interactions = _write(tmp_path / "i.csv", ["email,event_id,type,occurred_at",
                                               f"A@example.org,e1,click,{soon}",
                                               f"a@example.org,e1,view,{later}"])
    with pytest.raises(BeaconError, match=r"i\.csv:3: column occurred_at: expected a time not "
                                          r"in the future"):
        import_csv(users=users, events=events, interactions=interactions, actor=cli_actor())
    interactions = _write(tmp_path / "i.csv", ["email,event_id,type,occurred_at",
                                               f"A@example.org,e1,click,{soon}"])
    assert import_csv(users=users, events=events, interactions=interactions
                      , actor=cli_actor()).interactions.inserted == 1


def _store(version: int) -> int:
    return models_store.insert_version(scope="global", blob=b"x" * version)


def test_a_deleted_version_id_is_never_reused(db: str) -> None:
    first, second = _store(1), _store(2)
    models_store.delete_versions([second])
    third = _store(3)
    assert third > second > first


def test_migration_merges_case_duplicates_keeping_their_interactions(empty_db: str) -> None:
    migrate.upgrade(empty_db, revision="0003")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with get_engine(empty_db).begin() as connection:
        for email, name in (("ann@example.org", None), ("ANN@Example.org ", "Ann"),
                            ("bob@example.org", "Bob"), ("Bob@example.org", None)):
            connection.execute(text("INSERT INTO users (email, name, created_at, updated_at) "
                                    "VALUES (:e, :n, :t, :t)"), {"e": email, "n": name, "t": now})
        ids = dict(connection.execute(text("SELECT email, id FROM users")).all())
        connection.execute(text("INSERT INTO events (event_id, title, start_time, timezone, "
                                "created_at, updated_at) VALUES ('e1', 'E', :t, 'UTC', :t, :t)"),
                           {"t": now})
        event = connection.execute(text("SELECT id FROM events")).scalar_one()
        for email, kind, minute in (("ann@example.org", "click", 1),
                                    ("ANN@Example.org ", "click", 1),  # the same interaction
                                    ("ANN@Example.org ", "register", 2),
                                    ("Bob@example.org", "view", 3)):
            connection.execute(text("INSERT INTO interactions (user_id, event_id, type, "
                                    "occurred_at) VALUES (:u, :e, :k, :t)"),
                               {"u": ids[email], "e": event, "k": kind,
                                "t": now + timedelta(minutes=minute)})
        connection.execute(text("INSERT INTO user_interests (user_id, tag) VALUES (:u, 'jazz')"),
                           {"u": ids["ANN@Example.org "]})
    migrate.upgrade(empty_db)
    with get_engine(empty_db).connect() as connection:
        users = connection.execute(text("SELECT id, email, name FROM users ORDER BY id")).all()
        assert [(u.email, u.name) for u in users] == [("ann@example.org", "Ann"),
                                                       ("bob@example.org", "Bob")]
        kinds = connection.execute(text("SELECT u.email, i.type FROM interactions i JOIN users u "
                                        "ON u.id = i.user_id ORDER BY i.type")).all()
        assert sorted(map(tuple, kinds)) == [("ann@example.org", "click"),
                                             ("ann@example.org", "register"),
                                             ("bob@example.org", "view")]
        assert connection.execute(text("SELECT user_id FROM user_interests")).scalar_one() \
            == users[0].id


def test_every_numeric_setting_has_a_documented_range() -> None:
    import dataclasses

    from beacon.config import RANGES, ModelConfig

    numeric = {f.name for f in dataclasses.fields(ModelConfig)
               if f.type in ("int", "float")} - {"validation_fraction", "id_dropout",
                                                 "hard_negatives"}
    assert numeric <= set(RANGES)
    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    defaults = ModelConfig()
    for field in dataclasses.fields(ModelConfig):
        assert f"| `{field.name}` |" in doc
        if field.type in ("int", "float"):  # the documented default is the one in force
            documented = doc.split(f"| `{field.name}` | ", 1)[1].split(" |", 1)[0]
            assert float(documented) == getattr(defaults, field.name), field.name
    for name, bad in (("epochs", 10**9), ("patience", 10**9), ("dim", 10**6),
                      ("negatives", 10**6), ("batch_size", 10**7), ("learning_rate", 1e9),
                      ("fold_in_steps", 10**9)):
        with pytest.raises(BeaconError, match=name):
            ModelConfig.from_dict({name: bad})


def test_demo_impressions_never_name_a_real_version(db: str) -> None:
    from beacon import metrics
    from beacon.demo import load_demo_data

    load_demo_data(users=40, events=30, days=10, seed=3, actor=cli_actor())
    real = _store(1)
    assert _scalar(db, "SELECT count(*) FROM interactions WHERE model_version = :v", v=real) == 0
    assert _scalar(db, "SELECT max(model_version) FROM interactions") < 0
    labels = set(metrics.online_metrics(days=30).by_model_version["label"])
    assert labels and all(label.startswith("demo history") for label in labels)
