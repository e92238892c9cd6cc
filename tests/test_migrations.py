"""Migrations: empty to head, previous revision to head with data kept, and the refusal."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from data_access import migrate
from data_access.db import get_engine
from data_access.schema import Base


def test_upgrade_from_empty_reaches_head(empty_db: str) -> None:
    assert migrate.current_revision(empty_db) is None
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    migrate.check_schema(empty_db)


def test_migrations_match_the_tables_in_code(db: str) -> None:
    with get_engine(db).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrade_from_previous_revision_keeps_data(empty_db: str) -> None:
    migrate.upgrade(empty_db, revision="0001")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with get_engine(empty_db).begin() as connection:
        connection.execute(
            text("INSERT INTO users (email, name, created_at, updated_at) VALUES (:e, :n, :t, :t)"),
            {"e": "old@example.com", "n": "Old", "t": created},
        )
    with pytest.raises(migrate.SchemaOutOfDate, match="db upgrade"):
        migrate.check_schema(empty_db)
    migrate.upgrade(empty_db)
    with get_engine(empty_db).connect() as connection:
        assert connection.execute(text("SELECT name FROM users")).scalar_one() == "Old"
        assert connection.execute(text("SELECT count(*) FROM beacon_models")).scalar_one() == 0


def test_empty_database_is_refused_with_the_command_to_run(empty_db: str) -> None:
    with pytest.raises(migrate.SchemaOutOfDate, match="has no Beacon schema.*python -m beacon db upgrade"):
        migrate.check_schema(empty_db)


def test_unknown_revision_is_refused(db: str) -> None:
    with get_engine(db).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrate.SchemaOutOfDate, match="does not know: a newer Beacon upgraded"):
        migrate.check_schema(db)
    with pytest.raises(migrate.SchemaOutOfDate):
        migrate.ensure_schema(db)
    # `db upgrade` says the same instead of Alembic's "Can't locate revision"
    with pytest.raises(migrate.SchemaOutOfDate, match="cannot take a schema back"):
        migrate.upgrade(db)


def test_0008_keeps_api_keys_and_frees_a_revoked_keys_name(empty_db: str) -> None:
    migrate.upgrade(empty_db, revision="0007")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    insert = text("INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at, revoked_at) "
                  "VALUES (:n, :p, 'h', 'recommend', :t, :r)")
    with get_engine(empty_db).begin() as connection:
        connection.execute(insert, {"n": "backend", "p": "0001", "t": created, "r": created})
    migrate.upgrade(empty_db)
    with get_engine(empty_db).begin() as connection:
        connection.execute(insert, {"n": "backend", "p": "0002", "t": created, "r": None})
        names = connection.execute(text("SELECT prefix FROM api_keys WHERE name = 'backend' "
                                        "ORDER BY prefix")).scalars().all()
    assert names == ["0001", "0002"]
    with pytest.raises(IntegrityError), get_engine(empty_db).begin() as connection:
        connection.execute(insert, {"n": "backend", "p": "0003", "t": created, "r": None})
    with pytest.raises(IntegrityError), get_engine(empty_db).begin() as connection:
        connection.execute(insert, {"n": "other", "p": "0002", "t": created, "r": None})


def _downgrade(db: str, revision: str) -> None:
    from alembic import command

    config = migrate._config()
    with get_engine(db).connect() as connection:
        if connection.dialect.name == "sqlite":  # as migrate.upgrade does for batch rebuilds
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        with connection.begin():
            config.attributes["connection"] = connection
            command.downgrade(config, revision)


def test_0008_downgrades_with_a_reused_name(db: str) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    insert = text("INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at, revoked_at) "
                  "VALUES (:n, :p, 'h', 'recommend', :t, :r)")
    with get_engine(db).begin() as connection:
        connection.execute(insert, {"n": "backend", "p": "0001", "t": created, "r": created})
        connection.execute(insert, {"n": "backend", "p": "0002", "t": created, "r": None})
    _downgrade(db, "0007")
    with get_engine(db).connect() as connection:
        names = connection.execute(text("SELECT prefix, name FROM api_keys ORDER BY prefix")).all()
    assert [tuple(row) for row in names][1] == ("0002", "backend")
    assert names[0][1].startswith("backend#")


def test_0011_downgrades_dropping_only_the_folded_skips(db: str) -> None:
    from data_access import runs

    kept = []
    for _ in range(3):  # three identical skips: two folded into the third
        run = runs.acquire("global", trigger="cli").run
        kept.append(runs.finish_skipped(run, reason="unchanged", skip_key="k").id)
        runs.release(run.id, "global")
    assert [r.id for r in runs.list_runs()] == [kept[-1]]
    _downgrade(db, "0010")
    with get_engine(db).connect() as connection:
        left = connection.execute(text("SELECT id, repeats FROM training_runs")).all()
    assert [tuple(row) for row in left] == [(kept[-1], 3)]
    migrate.upgrade(db)
    assert runs.get_run(kept[-1]).folded_into is None
