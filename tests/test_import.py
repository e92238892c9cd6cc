"""CSV import on a real database (SQLite, or Postgres with BEACON_TEST_DATABASE_URL)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from beacon import importer
from beacon.errors import BeaconError
from beacon.importer import import_csv
from data_access.db import get_engine
from data_access.imports import table_counts
from data_access.schema import Event, EventTag, Interaction, User, UserInterest
from tests.auth_support import ADMIN

FIXTURES = Path(__file__).parent / "data" / "import"
REPO_ROOT = Path(__file__).resolve().parent.parent
TABLES = (User, UserInterest, Event, EventTag, Interaction)
UTC = timezone.utc


def _fixtures() -> dict[str, Path]:
    return {kind: FIXTURES / f"{kind}.csv" for kind in ("users", "events", "interactions")}


def _snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table an import writes, in key order: byte-for-byte comparable."""
    with get_engine(url).connect() as connection:
        return {
            model.__tablename__: [
                tuple(row)
                for row in connection.execute(
                    select(model.__table__).order_by(*model.__table__.primary_key.columns)
                )
            ]
            for model in TABLES
        }


def _rows(url: str, model, *where) -> list[dict]:
    with get_engine(url).connect() as connection:
        query = select(model.__table__).where(*where)
        return [dict(row._mapping) for row in connection.execute(query)]


def _user(url: str, email: str) -> dict:
    (row,) = _rows(url, User, User.email == email)
    return row


def _event(url: str, event_id: str) -> dict:
    (row,) = _rows(url, Event, Event.event_id == event_id)
    return row


def _tags(url: str, model, owner_id: int) -> set[str]:
    owner = model.__table__.c.user_id if model is UserInterest else model.__table__.c.event_id
    return {row["tag"] for row in _rows(url, model, owner == owner_id)}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the happy path --------------------------------------------------------------------------


def test_import_counts_and_values_read_back(db: str) -> None:
    summary = import_csv(**_fixtures(), actor=ADMIN)

    assert (summary.users.rows, summary.users.inserted, summary.users.updated) == (4, 4, 0)
    assert (summary.events.rows, summary.events.inserted) == (3, 3)
    # the last interaction repeats the second one (same instant written as Z): stored once
    assert (summary.interactions.rows, summary.interactions.inserted) == (7, 6)
    assert summary.interactions.unchanged == 1
    assert table_counts(db) == {
        "users": 4, "user_interests": 8, "events": 3, "event_tags": 3, "interactions": 6,
    }

    ana = _user(db, "ana@example.org")
    assert (ana["name"], ana["latitude"], ana["longitude"], ana["city"]) == (
        "Ana Müller", 52.52, 13.405, "Berlin",
    )
    assert _tags(db, UserInterest, ana["id"]) == {"jazz", "techno"}
    assert ana["created_at"].tzinfo is not None

    late = _event(db, "ev-2")
    assert late["start_time"] == datetime(2027, 3, 28, 22, 0, tzinfo=UTC)
    assert late["end_time"] == datetime(2027, 3, 29, 4, 0, tzinfo=UTC)
    assert late["start_time"].utcoffset() is not None
    assert (late["organizer"], late["price"], late["capacity"]) == ("Club Ω", 0.0, None)
    bare = _event(db, "ev-3")
    assert (bare["timezone"], bare["end_time"], bare["latitude"], bare["price"]) == (
        "UTC", None, None, None,
    )
    assert bare["start_time"] == datetime(2027, 6, 1, 18, 0, tzinfo=UTC)

    (impression,) = _rows(db, Interaction, Interaction.user_id == ana["id"],
                          Interaction.type == "impression")
    assert (impression["model_version"], impression["strategy"], impression["position"]) == (
        3, "global", 0,
    )
    bo = _user(db, "bo@example.org")
    (reject,) = _rows(db, Interaction, Interaction.user_id == bo["id"],
                      Interaction.type == "reject")
    assert reject["occurred_at"] == datetime(2026, 2, 2, 14, 0, 10, tzinfo=UTC)
    assert reject["model_version"] is None and reject["position"] is None


def test_unicode_and_hostile_strings_are_stored_verbatim(db: str) -> None:
    import_csv(users=FIXTURES / "users.csv", actor=ADMIN)

    chen = _user(db, "chen@example.org")
    assert (chen["name"], chen["city"]) == ("陈伟", "東京")
    assert _tags(db, UserInterest, chen["id"]) == {"音楽", "アート"}
    assert _user(db, "bo@example.org")["name"] == "Bo \"The Hammer\" O'Neil"
    hostile = _user(db, "drop@example.org")
    assert hostile["name"] == "'); DROP TABLE users;--"
    assert _tags(db, UserInterest, hostile["id"]) == {"')", "DROP TABLE users", "--", 'a"b'}
    assert table_counts(db)["users"] == 4


def test_reimport_changes_nothing(db: str) -> None:
    import_csv(**_fixtures(), actor=ADMIN)
    before = _snapshot(db)

    again = import_csv(**_fixtures(), actor=ADMIN)

    for part in (again.users, again.events, again.interactions):
        assert (part.inserted, part.updated, part.unchanged) == (0, 0, part.rows)
    assert _snapshot(db) == before  # updated_at included


def test_only_real_changes_move_updated_at(db: str, tmp_path: Path) -> None:
    import_csv(**_fixtures(), actor=ADMIN)
    before = {r["email"]: r["updated_at"] for r in _rows(db, User)}
    events_before = {r["event_id"]: r["updated_at"] for r in _rows(db, Event)}
    users = (FIXTURES / "users.csv").read_text(encoding="utf-8-sig").splitlines()
    users = [line.replace("Ana Müller", "Ana Schmidt") for line in users]
    users = [line.replace("音楽;アート", "アート;音楽") for line in users]  # same set, new order
    events = (FIXTURES / "events.csv").read_text(encoding="utf-8").splitlines()
    events = [line.replace("jazz;live", "jazz;live;late") for line in events]

    summary = import_csv(users=_write(tmp_path / "u.csv", users),
                         events=_write(tmp_path / "e.csv", events), actor=ADMIN)

    assert (summary.users.inserted, summary.users.updated, summary.users.unchanged) == (0, 1, 3)
    assert (summary.events.inserted, summary.events.updated, summary.events.unchanged) == (0, 1, 2)
    after = {r["email"]: r["updated_at"] for r in _rows(db, User)}
    assert after["ana@example.org"] > before["ana@example.org"]
    assert {k: v for k, v in after.items() if k != "ana@example.org"} == {
        k: v for k, v in before.items() if k != "ana@example.org"
    }
    events_after = {r["event_id"]: r["updated_at"] for r in _rows(db, Event)}
    assert events_after["ev-1"] > events_before["ev-1"]
    assert events_after["ev-2"] == events_before["ev-2"]
    assert _tags(db, EventTag, _event(db, "ev-1")["id"]) == {"jazz", "live", "late"}
    assert _user(db, "ana@example.org")["name"] == "Ana Schmidt"


def test_missing_optional_columns_leave_stored_values_alone(db: str, tmp_path: Path) -> None:
    import_csv(users=FIXTURES / "users.csv", actor=ADMIN)
    ana_before = _user(db, "ana@example.org")

    summary = import_csv(users=_write(tmp_path / "u.csv", [
        "email,name", "ana@example.org,Ana Müller", "new@example.org,",
    ]), actor=ADMIN)

    assert (summary.users.inserted, summary.users.updated, summary.users.unchanged) == (1, 0, 1)
    assert _user(db, "ana@example.org") == ana_before
    new = _user(db, "new@example.org")
    assert (new["name"], new["latitude"], new["city"]) == (None, None, None)


def test_references_resolve_to_rows_from_an_earlier_import(db: str) -> None:
    import_csv(users=FIXTURES / "users.csv", events=FIXTURES / "events.csv", actor=ADMIN)

    summary = import_csv(interactions=FIXTURES / "interactions.csv", actor=ADMIN)

    assert (summary.users, summary.events) == (None, None)
    assert (summary.interactions.inserted, summary.interactions.unchanged) == (6, 1)
    assert table_counts(db)["interactions"] == 6


def test_interactions_in_many_small_batches(db: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "INTERACTION_BATCH", 7)
    monkeypatch.setattr(importer, "ENTITY_BATCH", 3)
    files = _many_good_files(tmp_path)

    first = import_csv(**files, actor=ADMIN)
    again = import_csv(**files, actor=ADMIN)

    assert (first.users.inserted, first.events.inserted) == (64, 43)
    assert first.interactions.inserted == table_counts(db)["interactions"] == 120
    assert (again.interactions.inserted, again.users.updated, again.events.updated) == (0, 0, 0)


# -- bad files: named precisely, nothing written ---------------------------------------------


def _many_good_files(tmp_path: Path) -> dict[str, Path]:
    """The fixtures plus many generated rows, so that batches are written before a bad row."""
    users = (FIXTURES / "users.csv").read_text(encoding="utf-8-sig").splitlines()
    users = [line.replace("Ana Müller", "Ana Changed") for line in users]
    users += [f"u{i}@example.org,User {i},10.{i},20.{i},City,t{i % 3}" for i in range(60)]
    events = (FIXTURES / "events.csv").read_text(encoding="utf-8").splitlines()
    events += [
        f"gen-{i},Gen {i},music,a;b,Org,City,1,2,2027-05-01T10:00:00+02:00,,Europe/Paris,1,10"
        for i in range(40)
    ]
    interactions = (FIXTURES / "interactions.csv").read_text(encoding="utf-8").splitlines()[:1]
    interactions += [
        f"u{i % 60}@example.org,gen-{i % 40},click,2026-01-01T00:{i % 60:02d}:{i // 60:02d}Z,,,"
        for i in range(120)
    ]
    return {
        "users": _write(tmp_path / "users.csv", users),
        "events": _write(tmp_path / "events.csv", events),
        "interactions": _write(tmp_path / "interactions.csv", interactions),
    }


BAD_ROWS = [
    ("users", "not-an-email,X,,,,", "email", "not-an-email"),
    ("users", "u3@example.org,Again,,,,", "email", "u3@example.org"),
    ("users", "lat@example.org,X,91,10,,", "latitude", "91"),
    ("users", "lon@example.org,X,10,-180.5,,", "longitude", "-180.5"),
    ("users", ",No Email,,,,", "email", "''"),
    ("events", "ev-1,Twice,,,,,,,2027-01-01T10:00:00Z,,,,", "event_id", "ev-1"),
    ("events", "n-1,Naive,,,,,,,2027-01-01T10:00:00,,,,", "start_time", "2027-01-01T10:00:00"),
    ("events", "n-2,Back,,,,,,,2027-01-01T10:00:00Z,2027-01-01T09:00:00Z,,,", "end_time", "09:00"),
    ("events", "n-3,Zone,,,,,,,2027-01-01T10:00:00Z,,Mars/Olympus,,", "timezone", "Mars/Olympus"),
    ("events", "n-8,Zone,,,,,,,2027-01-01T10:00:00Z,,localtime,,", "timezone", "localtime"),
    ("users", "x@example.org,X,,,,,extra", "-", "7 fields"),
    # a short row would store its missing columns empty, erasing what an update keeps
    ("users", "short@example.org,Short", "latitude", "2 fields"),
    # quoting that is not CSV is refused, not read as a value
    ("users", 'q4@example.org,"bad"trailing,,,,', "-", "',' expected after"),
    ("users", 'q2@example.org,"open', "name", "a quote still open at the end of the file"),
    ("events", "n-4,Cheap,,,,,,,2027-01-01T10:00:00Z,,,-1,", "price", "-1"),
    ("events", "n-5,Half,,,,,,,2027-01-01T10:00:00Z,,,,12.5", "capacity", "12.5"),
    ("events", "n-6,,,,,,,,2027-01-01T10:00:00Z,,,,", "title", "''"),
    ("events", "n-7,When,,,,,,,next tuesday,,,,", "start_time", "next tuesday"),
    ("interactions", "u1@example.org,gen-1,like,2026-01-01T00:00:00Z,,,", "type", "like"),
    ("interactions", "who@example.org,gen-1,click,2026-01-01T00:00:00Z,,,", "email", "who@"),
    ("interactions", "u1@example.org,nope,click,2026-01-01T00:00:00Z,,,", "event_id", "nope"),
    ("interactions", "u1@example.org,gen-1,impression,2026-01-01T00:00:00Z,1,x,first",
     "position", "first"),
    ("interactions", "u1@example.org,gen-1,impression,2026-01-01T00:00:00Z,v2,x,1",
     "model_version", "v2"),
    ("interactions", "u1@example.org,gen-1,click,2026-01-01 00:00:00,,,", "occurred_at", "00:00"),
]


@pytest.mark.parametrize("kind,bad_row,column,shown", BAD_ROWS,
                         ids=[f"{k}-{c}-{i}" for i, (k, _, c, _s) in enumerate(BAD_ROWS)])
def test_a_bad_last_row_writes_nothing(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       kind: str, bad_row: str, column: str, shown: str) -> None:
    monkeypatch.setattr(importer, "INTERACTION_BATCH", 16)  # batches go out before the bad row
    monkeypatch.setattr(importer, "ENTITY_BATCH", 8)
    import_csv(**_fixtures(), actor=ADMIN)
    before = _snapshot(db)
    files = _many_good_files(tmp_path)
    lines = files[kind].read_text(encoding="utf-8").splitlines() + [bad_row]
    _write(files[kind], lines)

    with pytest.raises(BeaconError) as raised:
        import_csv(**files, actor=ADMIN)

    message = str(raised.value)
    [line] = message.splitlines()  # one problem, one line, naming it
    assert line.startswith(f"import failed, nothing was written: {files[kind]}:{len(lines)}: "
                           f"column {column}: expected "), line
    assert shown in line
    assert _snapshot(db) == before


def test_a_short_row_is_refused_and_keeps_what_is_stored(db: str, tmp_path: Path) -> None:
    """A row cut short (a missing required value is named too) writes nothing: before, the
    absent columns of an existing event were stored empty."""
    import_csv(**_fixtures(), actor=ADMIN)
    before = _snapshot(db)
    files = _many_good_files(tmp_path)
    event = files["events"].read_text(encoding="utf-8").splitlines()[1].split(",")
    short = _write(tmp_path / "short.csv", [files["events"].read_text(
        encoding="utf-8").splitlines()[0], ",".join(event[:3])])
    with pytest.raises(BeaconError) as raised:
        import_csv(events=short, actor=ADMIN)
    assert f"{short}:2: column tags: expected 13 fields as in the header, got 3 fields" in \
        str(raised.value)
    assert _snapshot(db) == before


@pytest.mark.parametrize("kind,header,column", [
    ("users", "name,city", "email"),
    ("events", "event_id,title,end_time", "start_time"),
    ("interactions", "email,event_id,type", "occurred_at"),
])
def test_missing_required_column_is_named(db: str, tmp_path: Path, kind: str, header: str,
                                          column: str) -> None:
    path = _write(tmp_path / f"{kind}.csv", [header, ",".join("x" * len(header.split(",")))])
    before = _snapshot(db)

    with pytest.raises(BeaconError, match=rf"{kind}\.csv:1: column {column}: expected a column"):
        import_csv(**{kind: path}, actor=ADMIN)
    assert _snapshot(db) == before


def test_a_line_that_is_not_utf8_is_named(db: str, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(b"email,name\nok@example.org,Ok\nlatin@example.org,Jos\xe9\n")

    with pytest.raises(BeaconError, match=r"users\.csv:3: column name: expected UTF-8 text"):
        import_csv(users=path, actor=ADMIN)
    assert table_counts(db)["users"] == 0


def test_an_empty_file_is_an_error(db: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", [""])

    with pytest.raises(BeaconError, match=r"events\.csv:1: column event_id: expected a header"):
        import_csv(events=path, actor=ADMIN)


def test_errors_are_listed_and_capped(db: str, tmp_path: Path) -> None:
    rows = [f"bad{i},x,,,," for i in range(25)]
    path = _write(tmp_path / "users.csv", ["email,name,latitude,longitude,city,interest_tags",
                                           "ok@example.org,ok,,,,", *rows])

    with pytest.raises(BeaconError) as raised:
        import_csv(users=path, actor=ADMIN)

    lines = str(raised.value).splitlines()
    assert lines[0].startswith(f"import failed, nothing was written: {path}:3: column email: "
                               "expected an email address")
    assert lines[0].endswith("(1 of 25 problems, the others below)")
    assert lines[1].startswith(f"{path}:4: column email")
    assert len(lines) == 20 + 1 and lines[-1] == "... and 5 more"
    assert table_counts(db)["users"] == 0


def test_a_good_file_is_not_written_when_another_is_bad(db: str, tmp_path: Path) -> None:
    events = _write(tmp_path / "events.csv", ["event_id,title,start_time", "e,E,yesterday"])

    with pytest.raises(BeaconError, match=r"events\.csv:2: column start_time"):
        import_csv(users=FIXTURES / "users.csv", events=events, actor=ADMIN)
    assert table_counts(db)["users"] == 0


def test_nothing_to_import_and_missing_file(db: str, tmp_path: Path) -> None:
    with pytest.raises(BeaconError, match="nothing to import"):
        import_csv(actor=ADMIN)
    with pytest.raises(BeaconError, match="no such file"):
        import_csv(users=tmp_path / "absent.csv", actor=ADMIN)


# -- the command line --------------------------------------------------------------------------


def _cli(db: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "beacon", "import", *args], env=env,
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def test_cli_bad_file_exits_2_with_the_line_on_stderr(db: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "users.csv", ["email,name", "ok@example.org,Ok", "broken,Bad"])

    result = _cli(db, "--users", str(path))

    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if x.startswith("beacon: error:")]
    assert line.startswith(f"beacon: error: import failed, nothing was written: {path}:3: "
                           "column email: expected an email address"), line
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert table_counts(db)["users"] == 0


def test_cli_json_summary(db: str) -> None:
    files = _fixtures()
    result = _cli(db, "--users", str(files["users"]), "--events", str(files["events"]),
                  "--interactions", str(files["interactions"]), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["users"]["inserted"] == 4 and summary["interactions"]["inserted"] == 6
    assert (summary["events"]["updated"], summary["events"]["unchanged"]) == (0, 0)


def test_valid_interaction_cells_are_normalised_the_same_way(db: str, tmp_path: Path) -> None:
    import_csv(users=FIXTURES / "users.csv", events=FIXTURES / "events.csv", actor=ADMIN)
    path = _write(tmp_path / "interactions.csv", [
        "email,event_id,type,occurred_at,model_version,strategy,position",
        " ana@example.org , ev-1 ,Impression, 2026-02-01T11:00:00+01:00 ,+3, s ,007",
        "ana@example.org,ev-1,impression,2026-02-01T10:00:00Z,3,s,7",
        "ana@example.org,ev-1,view,2026-02-01T10:00:00Z,,\"'); DROP TABLE users;--\"\"\",",
    ])

    summary = import_csv(interactions=path, actor=ADMIN)

    assert (summary.interactions.inserted, summary.interactions.unchanged) == (2, 1)
    (view,) = _rows(db, Interaction, Interaction.type == "view")
    assert view["strategy"] == "'); DROP TABLE users;--\""
    (row,) = _rows(db, Interaction, Interaction.type == "impression")
    assert (row["type"], row["model_version"], row["strategy"], row["position"]) == (
        "impression", 3, "s", 7,
    )
    assert row["occurred_at"] == datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
