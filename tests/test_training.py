"""The training service on a real database: smart retrain, the lock, failures, abandoned runs,
per-user fold-in, rollback and the serving cache's fallback from a corrupt blob.

Tiny data (two tastes, two cities) and a tiny config keep each training well under a second.
Concurrency is synchronized through threading.Events set inside progress callbacks and
through database state, never through sleeps.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import update

from beacon import training, versions
from beacon.config import ModelConfig
from beacon.errors import BeaconError, UnknownUser
from data_access import models_store as store
from data_access import runs
from data_access.db import session_scope
from data_access.schema import Event, EventTag, Interaction, ModelVersion, TrainingRun, User, \
    UserInterest
from tests.auth_support import ADMIN, actor

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
CONFIG = ModelConfig(dim=8, epochs=3, batch_size=64, negatives=4, learning_rate=0.05,
                     validation_fraction=0.0, patience=0, seed=3, refit=False)
torch.set_num_threads(1)  # tiny tensors: threads only fight over the shared cores
WAIT = 120  # seconds: only a safety net so that a broken test fails instead of hanging


def seed(n_fans: int = 4, n_events: int = 4) -> dict:
    """Jazz fans in Berlin register for jazz, football fans in Paris for football."""
    out: dict = {"users": {}, "events": {}}
    with session_scope() as session:
        for side, city, lat, lon in (("jazz", "Berlin", 52.52, 13.40),
                                     ("football", "Paris", 48.85, 2.35)):
            for i in range(n_fans):
                user = User(email=f"{side}{i}@example.org", name=f"{side} {i}", latitude=lat,
                            longitude=lon, city=city)
                session.add(user)
                session.flush()
                session.add(UserInterest(user_id=user.id, tag=side))
                out["users"][user.email] = user.id
            for j in range(n_events):
                start = (NOW + timedelta(days=1 + j)).replace(hour=19)
                event = Event(event_id=f"{side}-{j}", title=f"{side} {j}",
                              category="music" if side == "jazz" else "sports",
                              organizer=f"{side} org", city=city, latitude=lat, longitude=lon,
                              start_time=start, end_time=start + timedelta(hours=2),
                              timezone="Europe/Berlin" if side == "jazz" else "Europe/Paris",
                              price=20.0)
                session.add(event)
                session.flush()
                session.add(EventTag(event_id=event.id, tag=side))
                out["events"][event.event_id] = event.id
        session.flush()
        for email, uid in out["users"].items():
            side = "jazz" if email.startswith("jazz") else "football"
            for j in range(n_events - 1):
                when = NOW - timedelta(days=5 - j, hours=uid % 5)
                eid = out["events"][f"{side}-{j}"]
                session.add(Interaction(user_id=uid, event_id=eid, type="view",
                                        occurred_at=when - timedelta(minutes=5)))
                session.add(Interaction(user_id=uid, event_id=eid, type="register",
                                        occurred_at=when))
    return out


def add_interaction(user_id: int, event_id: int, kind: str = "register",
                    minutes_ago: int = 1) -> None:
    with session_scope() as session:
        session.add(Interaction(user_id=user_id, event_id=event_id, type=kind,
                                occurred_at=NOW - timedelta(minutes=minutes_ago)))


@pytest.fixture
def world(db):
    versions.clear_cache()
    yield seed()
    versions.clear_cache()


def _train(**kw) -> training.TrainResult:
    kw.setdefault("config", CONFIG)
    kw.setdefault("actor", ADMIN)
    return training.train(**kw)


# --- smart retrain ---------------------------------------------------------------------------

def test_smart_retrain_skip_train_on_change_stale_and_force(world):
    first = _train()
    assert first.status == "trained", first.reason
    assert first.reason == "no active model"
    assert store.active_global_id() == first.model_version

    again = _train()
    assert again.status == "skipped"
    assert "data unchanged" in again.reason and "max age 24 h" in again.reason
    assert again.model_version == first.model_version
    skipped_run = runs.get_run(again.run_id)
    assert skipped_run.status == "skipped" and skipped_run.reason == again.reason

    # An impression does not feed training (weight 0): still unchanged.
    jazz0 = world["users"]["jazz0@example.org"]
    add_interaction(jazz0, world["events"]["football-0"], "impression")
    assert _train().status == "skipped"

    add_interaction(jazz0, world["events"]["jazz-3"], "register")
    changed = _train()
    assert changed.status == "trained" and "changed" in changed.reason
    assert changed.model_version != first.model_version
    assert store.get_version(first.model_version).status == "inactive"
    assert _train().status == "skipped"

    store.set_created_at(changed.model_version, NOW - timedelta(hours=30))
    stale = _train()
    assert stale.status == "trained"
    assert "old" in stale.reason and "max age 24 h" in stale.reason

    forced = _train(force=True, trigger="force")
    assert forced.status == "trained" and forced.reason == "forced"
    assert store.active_global_id() == forced.model_version

    # The maximum age itself is no reason to retrain; other model settings are.
    assert _train(config=ModelConfig.from_dict({**CONFIG.to_dict(), "max_age_hours": 48.0})) \
        .status == "skipped"
    assert _train(config=ModelConfig.from_dict({**CONFIG.to_dict(), "dim": 4})).status \
        == "trained"
    # Every decision is on record, newest first.
    assert [r.status for r in runs.list_runs(limit=5)] == ["succeeded", "skipped", "succeeded",
                                                          "succeeded", "skipped"]


def test_a_trained_version_is_stored_completely(world):
    result = _train(actor=actor("ops@example.org"))
    info = versions.show(result.model_version)
    assert info.scope == "global" and info.status == "active" and info.size_bytes > 0
    assert info.hyperparameters == CONFIG.to_dict()
    assert info.fingerprint == training.training_fingerprint(CONFIG).digest
    assert len(info.loss_history) == CONFIG.epochs and info.training_seconds >= 0
    assert info.counts and info.created_by == "ops@example.org"
    assert info.metrics  # the offline evaluation, or why it could not run
    run = runs.get_run(result.run_id)
    assert run.status == "succeeded" and run.model_id == result.model_version
    assert [p["epoch"] for p in run.progress] == list(range(1, CONFIG.epochs + 1))
    assert run.epoch == CONFIG.epochs and run.last_loss is not None
    assert runs.running_run("global") is None  # the lock is released


# --- the lock ------------------------------------------------------------------------------------

def test_two_concurrent_trainings_one_trains_one_is_busy(world):
    inside, proceed = threading.Event(), threading.Event()
    results: list = []

    def hold(report) -> None:
        inside.set()
        assert proceed.wait(WAIT), "the test never let the first training go on"

    worker = threading.Thread(target=lambda: results.append(
        _train(force=True, progress_callback=hold, actor=actor("first@example.org"))))
    worker.start()
    try:
        assert inside.wait(WAIT), "the first training never reported an epoch"
        holder = runs.running_run("global")
        assert holder is not None and holder.epoch == 1
        second = _train(force=True, actor=actor("second@example.org"))
        assert second.status == "busy"
        assert f"training run {holder.id}" in second.reason
        assert "first@example.org" in second.reason
        assert second.run_id == holder.id
    finally:
        proceed.set()
        worker.join(WAIT)
    assert [r.status for r in results] == ["trained"]
    assert len(store.list_versions(scope="global")) == 1
    assert not _train(force=True).status == "busy"  # released afterwards


def test_background_training_answers_busy_at_once_and_reports_through_the_run(world):
    inside, proceed = threading.Event(), threading.Event()

    def hold(report) -> None:
        inside.set()
        assert proceed.wait(WAIT)

    run_id = training.start_training_in_background(force=True, config=CONFIG,
                                                   progress_callback=hold, actor=actor("a"))
    try:
        assert runs.get_run(run_id).status in ("queued", "running")
        with pytest.raises(training.TrainingBusy) as busy:
            training.start_training_in_background(config=CONFIG, actor=actor("b"))
        assert busy.value.run_id == run_id and f"training run {run_id}" in str(busy.value)
        assert inside.wait(WAIT)
        live = runs.get_run(run_id)
        assert live.status == "running" and live.progress[0]["epoch"] == 1
    finally:
        proceed.set()
    result = training.background_result(run_id, timeout=WAIT)
    assert result.status == "trained"
    done = runs.get_run(run_id)
    assert done.status == "succeeded" and done.model_id == result.model_version
    assert done.trigger == "button"
    # the trail has the queueing and the outcome, both under the operator who asked
    from data_access import audit

    (outcome,) = audit.entries(action="train")
    assert (outcome.who, outcome.outcome) == ("a", "ok")
    assert outcome.params["run_id"] == run_id and outcome.params["result"] == "trained"
    assert outcome.params["model_version"] == result.model_version
    assert [(row.who, row.outcome) for row in audit.entries(action="start_training")] == [
        ("b", "failed"), ("a", "ok")]  # b's request found the run busy
    # a background run that skips is in the trail too, with what it did
    skipped = training.start_training_in_background(config=CONFIG, actor=actor("b"))
    assert training.background_result(skipped, timeout=WAIT).status == "skipped"
    newest = audit.entries(action="train")[0]
    assert (newest.who, newest.outcome, newest.params["result"]) == ("b", "ok", "skipped")
    assert newest.params["run_id"] == skipped


def test_a_training_whose_activation_fails_is_audited_as_failed(world, monkeypatch):
    """The 'ok' row goes into the activation's transaction; when that transaction fails, the
    failure is recorded instead of nothing."""
    from data_access import audit
    from data_access import models_store as store

    def locked(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(store, "activate", locked)
    result = training.train(force=True, config=CONFIG, actor=actor("a"))
    assert result.status == "failed"
    (row,) = audit.entries(action="train")
    assert (row.who, row.outcome) == ("a", "failed") and "database is locked" in row.error


def test_ctrl_c_during_a_training_is_a_cancelled_run(world):
    from data_access import audit

    def interrupt(report) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(force=True, config=CONFIG, progress_callback=interrupt, actor=actor("a"))
    run = runs.list_runs()[0]
    assert run.status == "cancelled" and run.reason.startswith("interrupted (Ctrl-C)")
    assert runs.running_run("global") is None, "the lock is free"
    row = audit.entries(action="train")[0]
    assert (row.outcome, row.error) == ("failed", "interrupted (Ctrl-C)")


# --- failure ---------------------------------------------------------------------------------------

def test_a_failing_training_leaves_the_active_version_and_records_the_error(world):
    good = _train()

    def explode(report) -> None:
        raise RuntimeError("disk on fire")

    failed = _train(force=True, progress_callback=explode)
    assert failed.status == "failed" and "disk on fire" in failed.reason
    run = runs.get_run(failed.run_id)
    assert run.status == "failed" and "disk on fire" in run.error and run.finished_at
    assert store.active_global_id() == good.model_version
    assert [v.id for v in store.list_versions(scope="global", status=["active", "inactive"])] \
        == [good.model_version]
    assert runs.running_run("global") is None
    assert _train(force=True).status == "trained"  # the lock was released


# --- abandoned runs ----------------------------------------------------------------------------------

def test_a_run_whose_process_died_is_abandoned_on_the_next_start(world):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = runs.acquire("global", trigger="schedule").run
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == dead.id)
                        .values(pid=child.pid))
    result = _train()
    assert result.status == "trained"
    old = runs.get_run(dead.id)
    assert old.status == "abandoned" and f"process {child.pid}" in old.error


# --- fold-in --------------------------------------------------------------------------------------

def test_fold_in_is_a_user_scope_version_for_that_user_only(world):
    base = _train()
    fan = "jazz1@example.org"
    fan_id = world["users"][fan]
    # jazz1 turns to football: the fold-in must move their vector, nobody else's.
    for j in range(3):
        add_interaction(fan_id, world["events"][f"football-{j}"], "register", minutes_ago=10 + j)
    loaded = versions.active_global()
    from beacon.features import UserContext
    from data_access.training_data import load_user_context_row

    before, _ = loaded.model.user_vector(UserContext.from_row(load_user_context_row(fan_id)))

    result = _train(user=fan, config=None)
    assert result.status == "trained" and result.scope == "user", result.reason
    info = versions.show(result.model_version)
    assert (info.scope, info.user, info.base_model_id, info.status) == \
        ("user", fan, base.model_version, "active")
    personal = versions.personal_vector(fan_id, base.model_version)
    assert personal is not None and personal.version_id == result.model_version
    assert not np.allclose(personal.vector, before)
    # Nobody else got a personal vector; the global version is untouched.
    for email, uid in world["users"].items():
        if email != fan:
            assert versions.personal_vector(uid, base.model_version) is None
    assert store.active_global_id() == base.model_version
    assert versions.active_global().version_id == base.model_version
    # A second fold-in replaces the first for that user.
    again = _train(user=fan, config=None)
    assert store.get_version(result.model_version).status == "inactive"
    assert versions.personal_vector(fan_id, base.model_version).version_id == again.model_version


def test_fold_in_commits_version_run_and_lock_together(world):
    base = _train()
    fan = "jazz1@example.org"
    fan_id = world["users"][fan]
    result = _train(user=fan, config=None)
    run = runs.get_run(result.run_id)
    assert (run.status, run.model_id, run.scope, run.user_id) == \
        ("succeeded", result.model_version, "user", fan_id)
    assert run.reason == result.reason and "fold-in of jazz1@example.org" in run.reason
    assert run.started_at is not None and run.finished_at >= run.started_at
    assert runs.lock_holder("user", fan_id) is None  # the next fold-in may start
    version = store.get_version(result.model_version)
    assert (version.status, version.base_model_id, version.activated_at is not None) == \
        ("active", base.model_version, True)
    assert version.size_bytes < 1024  # a vector, not a model


def test_a_fold_in_frees_its_users_lock_from_a_dead_holder_and_is_busy_for_a_live_one(world):
    import subprocess
    import sys

    _train()
    fan = "jazz1@example.org"
    fan_id = world["users"][fan]
    live = runs.acquire("user", fan_id, trigger="schedule").run  # this process: alive
    busy = _train(user=fan, config=None)
    assert busy.status == "busy" and busy.run_id == live.id
    runs.release(live.id, "user", fan_id)
    runs.finish_run(live.id, "succeeded")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = runs.acquire("user", fan_id, trigger="schedule").run
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == dead.id)
                        .values(pid=child.pid))
    result = _train(user=fan, config=None)
    assert result.status == "trained", result.reason
    assert runs.get_run(dead.id).status == "abandoned"


def test_fold_in_history_is_the_users_newest_interactions_with_event_features(world):
    from beacon.training import FOLD_IN_HISTORY, _user_history_frame
    from data_access.catalog import user_history
    from data_access.training_data import load_events_frame

    fan_id = world["users"]["jazz1@example.org"]
    add_interaction(fan_id, world["events"]["football-0"], "register", minutes_ago=5)
    add_interaction(fan_id, world["events"]["football-0"], "click", minutes_ago=6)
    frame = _user_history_frame(fan_id)
    recent = user_history(fan_id, recent_limit=FOLD_IN_HISTORY).recent
    assert frame["id"].tolist() == [int(r["event_pk"]) for r in recent]
    assert frame["type"].tolist()[:2] == ["register", "click"]
    events = load_events_frame(ids=sorted(set(frame["id"].tolist())))
    expected = frame[["id"]].merge(events, on="id", how="left")
    pd.testing.assert_frame_equal(frame.drop(columns="type"), expected)


def test_fold_in_needs_a_known_user_and_an_active_global_model(world):
    with pytest.raises(BeaconError, match="no active global model"):
        _train(user="jazz0@example.org")
    _train()
    with pytest.raises(UnknownUser):
        _train(user="nobody@example.org")
    assert runs.list_runs(scope="user") == []


# --- rollback and the serving cache ---------------------------------------------------------------

def test_activate_is_rollback_and_the_cache_follows_the_database(world):
    v1 = _train().model_version
    assert versions.active_global().version_id == v1
    assert versions.active_global() is versions.active_global()  # loaded once, then reused
    v2 = _train(force=True).model_version
    assert versions.active_global().version_id == v2  # picked up without clearing anything
    versions.activate(v1, actor=ADMIN)
    served = versions.active_global()
    assert served.version_id == v1 and served.is_active
    assert store.get_version(v2).status == "inactive"
    # An activation written by "another process" (straight to the store) is seen too.
    store.activate(v2)
    assert versions.active_global().version_id == v2


def test_a_rollback_holds_against_smart_retraining_until_the_max_age(world):
    v1 = _train().model_version
    add_interaction(world["users"]["jazz0@example.org"], world["events"]["jazz-3"])
    v2 = _train(force=True).model_version  # trained on data v1 never saw
    versions.activate(v1, actor=ADMIN)
    held = _train()  # the data differs from v1's, but it is what the rejected v2 saw
    assert held.status == "skipped" and "rollback" in held.reason
    assert f"version {v1}" in held.reason and f"newer version {v2}" in held.reason
    assert store.active_global_id() == v1
    with session_scope() as session:  # the rollback was 25 h ago: smart training resumes
        session.execute(update(ModelVersion).where(ModelVersion.id == v1)
                        .values(activated_at=NOW - timedelta(hours=25)))
    resumed = _train()
    assert resumed.status == "trained" and resumed.model_version > v2


def test_a_rollback_holds_with_saved_settings_that_count_other_interaction_types(world):
    """The rollback records the data's state as the saved settings count it (here impressions
    train too), and the smart retrains that read it use the same settings: the hold applies."""
    from beacon import training_settings

    training_settings.save_training_settings(
        {**CONFIG.to_dict(), "type_weights": {"impression": 0.5}}, actor=ADMIN)
    v1 = training.train(actor=ADMIN).model_version
    add_interaction(world["users"]["jazz0@example.org"], world["events"]["jazz-3"], "impression")
    v2 = training.train(force=True, actor=ADMIN).model_version
    assert versions.show(v2).hyperparameters["type_weights"]["impression"] == 0.5
    versions.activate(v1, actor=ADMIN)
    held = training.train(actor=ADMIN)
    assert held.status == "skipped" and "rollback" in held.reason, held.reason
    # an impression counts as data under these settings: one more ends the hold
    add_interaction(world["users"]["jazz1@example.org"], world["events"]["jazz-3"], "impression")
    assert training.train(actor=ADMIN).status == "trained"


def test_new_data_after_a_rollback_trains_as_the_fingerprint_rule_says(world):
    v1 = _train().model_version
    v2 = _train(force=True).model_version
    versions.activate(v1, actor=ADMIN)
    assert _train().status == "skipped"
    add_interaction(world["users"]["jazz0@example.org"], world["events"]["jazz-3"])
    after = _train()
    assert after.status == "trained" and after.model_version > v2, after.reason
    assert "data or settings changed" in after.reason


def test_a_corrupt_active_blob_falls_back_to_the_next_good_version(world):
    v1 = _train().model_version
    v2 = _train(force=True).model_version
    good_blob = store.get_blob(v2)
    with session_scope() as session:
        session.execute(update(ModelVersion).where(ModelVersion.id == v2)
                        .values(blob=b"\x00garbage, not a model"))
    versions.clear_cache()
    served = versions.active_global()
    assert served is not None and served.version_id == v1 and not served.is_active
    assert v2 in versions.load_errors()
    assert store.get_version(v2).status == "active"  # serving is a read: nothing is marked
    assert versions.active_global().version_id == v1  # and it stays served, no crash
    # The deliberate check marks it; once its weights are readable again a verify lifts it.
    checked = versions.verify(v2, actor=ADMIN)
    assert not checked.ok and store.get_version(v2).status == "failed"
    assert "failure" in store.get_version(v2).metrics
    with session_scope() as session:
        session.execute(update(ModelVersion).where(ModelVersion.id == v2).values(blob=good_blob))
    assert versions.verify(v2, actor=ADMIN).status == "inactive"
    versions.activate(v2, actor=ADMIN)
    assert versions.active_global().version_id == v2


def test_fingerprint_state_for_the_console(world):
    assert versions.fingerprint_state(CONFIG) == "no-model"
    _train()
    assert versions.fingerprint_state(CONFIG) == "current"
    add_interaction(world["users"]["football0@example.org"], world["events"]["football-3"])
    assert versions.fingerprint_state(CONFIG) == "stale"


def _fold_in_commit(run: runs.RunInfo) -> None:
    with session_scope() as session:
        runs.succeed_and_release(session, run, reason="folded", model_id=None)


@pytest.mark.postgres
@pytest.mark.parametrize("writer", [lambda run: runs.heartbeat(run.id), _fold_in_commit],
                         ids=["heartbeat", "fold-in commit"])
def test_writers_of_a_run_wait_behind_an_epochs_progress_instead_of_deadlocking(db, writer):
    """An epoch's progress writes the run's row, then the lock's. A heartbeat (or a fold-in's
    final transaction) that took the lock's row first deadlocked with it on Postgres and failed
    the training. Here the progress transaction holds the run's row while the other writer
    starts; its own lock-row write must then go through."""
    from sqlalchemy import text

    from data_access.db import get_engine

    run = runs.acquire("global", trigger="cli").run
    run_id = run.id
    engine = get_engine(db)
    errors: list[BaseException] = []

    def beat() -> None:
        try:
            writer(run)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    with engine.connect() as progress:
        progress.execute(text("SET lock_timeout = '10s'"))
        progress.execute(text("UPDATE training_runs SET epoch = 1 WHERE id = :id"), {"id": run_id})
        heartbeat = threading.Thread(target=beat)
        heartbeat.start()
        for _ in range(400):  # until the heartbeat waits on a row lock
            with engine.connect() as watcher:
                if watcher.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query ILIKE 'UPDATE training_%'")).scalar_one():
                    break
            heartbeat.join(0.025)
        else:
            raise AssertionError("the heartbeat never waited on the progress transaction")
        progress.execute(text("UPDATE training_locks SET heartbeat_at = now() "
                              "WHERE run_id = :id"), {"id": run_id})
        progress.commit()
    heartbeat.join(30)
    assert not heartbeat.is_alive() and errors == []


def test_a_run_marked_abandoned_while_it_trained_activates_nothing(world):
    """A training that went silent long enough for another process to mark it abandoned and
    start its own: when it comes back, what it made is not activated and its row keeps
    'abandoned' (it used to overwrite both, while another run held the lock)."""
    from sqlalchemy import delete

    from data_access.schema import TrainingLock

    v1 = _train().model_version
    taken: list[runs.RunInfo] = []

    def judged_abandoned(report) -> None:
        if taken:
            return
        with session_scope() as session:
            session.execute(update(TrainingRun).where(TrainingRun.status == "running")
                            .values(status="abandoned", error="abandoned: no heartbeat"))
            session.execute(delete(TrainingLock))
        taken.append(runs.acquire("global", trigger="cli").run)

    result = _train(force=True, progress_callback=judged_abandoned)
    assert result.status == "failed" and "lost the lock" in result.reason, result.reason
    assert store.active_global_id() == v1
    newest = max(v.id for v in store.list_versions() if v.scope == "global")
    assert newest > v1 and store.get_version(newest).status == "failed"
    assert runs.get_run(result.run_id).status == "abandoned"
    assert runs.lock_holder("global").id == taken[0].id  # the other run keeps its lock
    runs.finish_run(taken[0].id, "cancelled", reason="test")
    runs.release(taken[0].id, "global")


def test_a_fold_in_that_lost_its_lock_writes_nothing(world):
    from sqlalchemy import delete

    from data_access.schema import TrainingLock

    user_id = world["users"]["jazz0@example.org"]
    mine = runs.acquire("user", user_id, trigger="cli").run
    with session_scope() as session:
        session.execute(delete(TrainingLock))
    other = runs.acquire("user", user_id, trigger="cli").run
    with pytest.raises(runs.LockLost, match=f"run {other.id} holds it now"):
        with session_scope() as session:
            runs.succeed_and_release(session, mine, reason="folded", model_id=None)
    assert runs.get_run(mine.id).status == "running"  # the transaction wrote nothing
    assert runs.lock_holder("user", user_id).id == other.id


def test_a_run_marked_abandoned_neither_starts_nor_turns_skipped(world):
    queued = runs.acquire("global", trigger="cli", status="queued").run
    with session_scope() as session:
        session.execute(update(TrainingRun).where(TrainingRun.id == queued.id)
                        .values(status="abandoned"))
    with pytest.raises(runs.LockLost, match="does not start"):
        runs.mark_running(queued.id)
    skipped = runs.finish_skipped(queued, reason="nothing to do", skip_key="k")
    assert skipped.status == "abandoned" == runs.get_run(queued.id).status
    runs.release(queued.id, "global")
