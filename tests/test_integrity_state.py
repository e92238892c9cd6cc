"""State that must hold under faults: a training that loses its database ends failed and frees
its lock once the database is back; a silent lock is taken over after about a minute.
The database really goes away: the SQLite file is moved, the Postgres schema renamed."""
from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import update

from beacon import training
from beacon.actions import cli_actor
from data_access import runs
from data_access.db import session_scope
from data_access.schema import TrainingLock, TrainingRun, utcnow
from tests.faults import database_gone
from tests.test_console_ops import wait_for


def test_a_training_that_lost_its_database_fails_and_frees_its_lock_when_it_is_back(
        db: str) -> None:
    run = runs.acquire("global", trigger="cli").run
    with database_gone(db):
        assert training._finish_failed(run, "RuntimeError: epoch 3 could not be recorded",
                                       "traceback") is False
        time.sleep(training.RETRY_SECONDS * 1.5)  # retried meanwhile, in vain
    back = wait_for(lambda: (r := runs.get_run(run.id)).status == "failed" and r)
    assert "lost the database during training" in back.reason
    assert "epoch 3 could not be recorded" in back.reason
    assert runs.lock_holder("global") is None
    assert runs.acquire("global", trigger="cli").run is not None


def test_a_lock_silent_for_over_a_minute_is_taken_over(db: str) -> None:
    run = runs.acquire("global", trigger="cli").run
    silent_since = utcnow() - timedelta(seconds=90)
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == run.id).values(
            heartbeat_at=silent_since, host="another-host"))
        session.execute(update(TrainingLock).where(TrainingLock.run_id == run.id).values(
            heartbeat_at=silent_since))
    assert runs.acquire("global", trigger="cli").busy
    recovered = training.recover_abandoned()
    assert [r.id for r in recovered] == [run.id]
    assert "no heartbeat" in runs.get_run(run.id).error
    assert runs.acquire("global", trigger="cli").run is not None


def test_a_lock_that_beat_recently_is_left_alone(db: str) -> None:
    run = runs.acquire("global", trigger="cli").run
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == run.id).values(
            heartbeat_at=utcnow() - timedelta(seconds=20), host="another-host"))
    assert training.recover_abandoned() == []
    assert runs.acquire("global", trigger="cli").busy


def test_serving_never_marks_a_version_and_warns_once(db: str, caplog) -> None:
    import logging

    from beacon import versions
    from data_access import models_store as store

    broken = store.insert_version(scope="global", blob=b"junk, not a model")
    versions.activate(broken, actor=cli_actor())
    versions.clear_cache()
    with caplog.at_level(logging.WARNING, logger="beacon.versions"):
        for _ in range(50):  # a cache refresh asks once per user
            assert versions.active_global() is None
    assert store.get_version(broken).status == "active"
    assert len([r for r in caplog.records if "failed to load" in r.getMessage()]) == 1


def test_verify_marks_and_an_admin_clears(db: str) -> None:
    import pytest

    from beacon import versions
    from beacon.errors import BeaconError
    from data_access import models_store as store

    broken = store.insert_version(scope="global", blob=b"junk")
    result = versions.verify(broken, actor=cli_actor())
    assert not result.ok and result.status == "failed"
    with pytest.raises(BeaconError, match="failed"):
        versions.activate(broken, actor=cli_actor())
    assert versions.clear_failed(broken, actor=cli_actor()).status == "inactive"
    assert "previous_failure" in store.get_version(broken).metrics
    with pytest.raises(BeaconError, match="not failed"):
        versions.clear_failed(broken, actor=cli_actor())


def test_identical_skips_fold_into_one_row_that_keeps_the_latest_reason(db: str) -> None:
    from data_access import models_store as store

    version = store.insert_version(scope="global", blob=b"v", fingerprint="f")
    store.activate(version)

    def skip(key: str, reason: str, trigger: str = "cli") -> runs.RunInfo:
        run = runs.acquire("global", trigger=trigger).run
        kept = runs.finish_skipped(run, reason=reason, skip_key=key)
        runs.release(run.id, "global")
        return kept

    first = skip("unchanged:1", "data unchanged, 1 min old")
    middle = [skip("unchanged:1", f"data unchanged, {minutes} min old") for minutes in (31, 61)]
    last = skip("unchanged:1", "data unchanged, 91 min old")
    history = runs.list_runs(limit=10)
    assert [r.id for r in history] == [last.id]
    assert history[0].repeats == 4 and history[0].reason == "data unchanged, 91 min old"
    assert history[0].created_at == first.created_at and history[0].last_seen_at is not None
    # every id a caller was given still answers: its own skip, and the run that counts it now
    for folded, reason in zip([first, *middle], ("1 min", "31 min", "61 min")):
        kept = runs.get_run(folded.id)
        assert kept.status == "skipped" and kept.reason == f"data unchanged, {reason} old"
        assert kept.folded_into == last.id
    assert runs.get_run(last.id).folded_into is None
    other = skip("rollback:1:2", "a rollback holds")  # a different reason starts a new row
    button = skip("rollback:1:2", "a rollback holds", trigger="button")
    assert [r.id for r in runs.list_runs(limit=10)] == [button.id, other.id, last.id]
    # folded rows older than FOLDED_KEPT_DAYS go at the next fold
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == first.id).values(
            finished_at=utcnow() - timedelta(days=runs.FOLDED_KEPT_DAYS + 1)))
    skip("rollback:1:2", "a rollback holds", trigger="button")
    assert runs.get_run(first.id) is None and runs.get_run(middle[0].id) is not None


def test_smart_retrains_that_skip_for_the_same_reason_keep_one_history_row(db: str) -> None:
    from data_access import models_store as store

    version = store.insert_version(scope="global", blob=b"v",
                                   fingerprint=training.training_fingerprint().digest)
    store.activate(version)
    results = [training.train(trigger="schedule", actor=cli_actor()) for _ in range(3)]
    assert {r.status for r in results} == {"skipped"}
    history = runs.list_runs(limit=10)
    assert len(history) == 1 and history[0].repeats == 3
    assert history[0].id == results[-1].run_id and history[0].reason == results[-1].reason
