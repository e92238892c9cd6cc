"""Model versions, the training lock, abandoned-run recovery and the fingerprint, on a real
database (SQLite file or a Postgres schema). No model is trained here: blobs are opaque bytes
except where the serving cache has to load one (those tests train a tiny model)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import update

from beacon import versions
from beacon.errors import BeaconError
from data_access import models_store as store
from data_access import runs
from data_access.db import session_scope
from data_access.schema import Event, Interaction, TrainingLock, TrainingRun, User, UserInterest
from tests.auth_support import ADMIN, actor

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _seed_users(n: int = 3) -> list[int]:
    with session_scope() as session:
        users = [User(email=f"u{i}@example.org", name=f"U{i}", latitude=52.5, longitude=13.4,
                      city="Berlin") for i in range(n)]
        session.add_all(users)
        session.flush()
        return [u.id for u in users]


def _seed_event(session, key: str, start: datetime) -> Event:
    event = Event(event_id=key, title=key, category="music", city="Berlin", latitude=52.5,
                  longitude=13.4, start_time=start, timezone="Europe/Berlin")
    session.add(event)
    session.flush()
    return event


def _global(created_at: datetime | None = None, status: str = "inactive", **kw) -> int:
    return store.insert_version(scope="global", blob=b"not-a-model", fingerprint="f",
                                created_at=created_at, status=status, **kw)


# --- activate / rollback ------------------------------------------------------------------------

def test_activate_switches_the_single_active_version_and_rolls_back(db):
    v1, v2 = _global(), _global()
    versions.activate(v1, actor=ADMIN)
    assert store.active_global_id() == v1
    info = versions.activate(v2, actor=actor("ops@example.org"))
    assert info.status == "active" and info.activated_at is not None
    assert store.get_version(v1).status == "inactive"
    assert store.active_global_id() == v2
    versions.activate(v1, actor=ADMIN)  # rollback
    statuses = {v.id: v.status for v in versions.list_versions(scope="global")}
    assert statuses == {v1: "active", v2: "inactive"}


def test_activate_refuses_failed_and_unknown_versions(db):
    good, bad = _global(), _global()
    versions.activate(good, actor=ADMIN)
    store.mark_failed(bad, "broken on purpose")
    with pytest.raises(BeaconError, match="failed"):
        versions.activate(bad, actor=ADMIN)
    with pytest.raises(BeaconError, match="no model version"):
        versions.activate(999_999, actor=ADMIN)
    assert store.active_global_id() == good
    assert versions.show(bad).metrics["failure"] == "broken on purpose"


def test_user_scope_activation_touches_only_that_user(db):
    alice, bob, _ = _seed_users()
    base = _global()
    versions.activate(base, actor=ADMIN)
    a1 = store.insert_version(scope="user", user_id=alice, base_model_id=base,
                              blob=versions.encode_personal_vector(np.ones(4), 0.5))
    b1 = store.insert_version(scope="user", user_id=bob, base_model_id=base,
                              blob=versions.encode_personal_vector(np.zeros(4), 0.0))
    versions.activate(a1, actor=ADMIN)
    versions.activate(b1, actor=ADMIN)
    a2 = store.insert_version(scope="user", user_id=alice, base_model_id=base,
                              blob=versions.encode_personal_vector(np.full(4, 2.0), 1.5))
    versions.activate(a2, actor=ADMIN)
    assert store.get_version(a1).status == "inactive"
    assert store.get_version(b1).status == "active"
    assert store.active_global_id() == base
    pv = versions.personal_vector(alice, base)
    assert pv.version_id == a2 and pv.bias == pytest.approx(1.5)
    np.testing.assert_allclose(pv.vector, np.full(4, 2.0))
    # A fold-in made on another global version does not fit the served model.
    assert versions.personal_vector(alice, base + 1000) is None
    listed = versions.list_versions(user="u0@example.org")
    assert [v.id for v in listed] == [a2, a1] and listed[0].user == "u0@example.org"


def test_list_and_show_never_read_blobs_and_report_size(db):
    vid = store.insert_version(scope="global", blob=b"x" * 1234, hyperparameters={"dim": 8},
                               loss_history=[1.0, 0.5], counts={"users": 3},
                               metrics={"k": 10, "beacon": {"ndcg": 0.3, "hit_rate": 0.5}})
    info = versions.show(vid)
    assert info.size_bytes == 1234 and info.hyperparameters == {"dim": 8}
    assert info.loss_history == [1.0, 0.5] and info.counts == {"users": 3}
    assert info.metrics_summary == {"k": 10, "beacon": {"ndcg": 0.3, "hit_rate": 0.5}}
    assert not hasattr(info, "blob")
    with pytest.raises(BeaconError):
        versions.show(vid + 1)


# --- cleanup ----------------------------------------------------------------------------------

def test_cleanup_never_deletes_the_active_version_nor_the_newest_few(db):
    old = NOW - timedelta(days=30)
    ids = [_global(created_at=old + timedelta(hours=i)) for i in range(6)]
    versions.activate(ids[0], actor=ADMIN)  # the oldest is the active one (after a rollback, say)
    recent = _global(created_at=NOW)

    dry = versions.cleanup(keep_days=7, keep_newest=2, dry_run=True, actor=ADMIN)
    # newest two: recent and ids[5]; active: ids[0]; the rest are old enough to go
    assert sorted(v.id for v in dry.deleted) == sorted(ids[1:5])
    assert len(store.list_versions()) == 7  # dry run deleted nothing

    done = versions.cleanup(keep_days=7, keep_newest=2, actor=ADMIN)
    assert sorted(v.id for v in done.deleted) == sorted(ids[1:5])
    left = {v.id for v in store.list_versions()}
    assert left == {ids[0], ids[5], recent}
    assert store.active_global_id() == ids[0]

    # keep_newest=0 and keep_days=0 still never delete the active version
    versions.cleanup(keep_days=0, keep_newest=0, actor=ADMIN)
    assert {v.id for v in store.list_versions()} == {ids[0]}


def test_a_personal_version_on_an_inactive_global_one_is_not_activated(db):
    """It would serve nobody (a personal vector is read only on top of its own base): the
    activation says so and changes nothing."""
    (uid,) = _seed_users(1)
    base, newer = _global(), _global()
    versions.activate(base, actor=ADMIN)
    first = store.insert_version(scope="user", user_id=uid, base_model_id=base, blob=b"v")
    second = store.insert_version(scope="user", user_id=uid, base_model_id=base, blob=b"v")
    versions.activate(second, actor=ADMIN)  # on the active base: fine
    versions.activate(newer, actor=ADMIN)
    with pytest.raises(BeaconError, match=rf"model version {first} is a personal vector on "
                                          rf"global version {base}, and the active global "
                                          rf"version is {newer}: it would serve nobody"):
        versions.activate(first, actor=ADMIN)
    assert store.get_version(first).status == "inactive"
    assert store.get_version(second).status == "active"
    # still "active" for its user (a rollback to its base serves it again): the list says idle
    from beacon.cli.models import _summary, _table

    listed = _table([_summary(v) for v in versions.list_versions()], store.active_global_id())
    line = next(row for row in listed.splitlines() if row.split()[0] == str(second))
    assert line.endswith(f"(idle: built on v{base}, not the active global version)")


def test_a_rollback_during_a_deletion_waits_for_it_and_never_loses_the_active_version(db):
    """Another admin activates a version the deletion has just read as inactive: the
    activation waits for the deletion's transaction (it then finds the version gone), so the
    deletion never removes a version that is active by the time it commits."""
    import threading
    import time

    from sqlalchemy import event

    from data_access.db import get_engine

    base, kept = _global(), _global()
    store.activate(kept)
    rollback: list = []

    def activate_base() -> None:
        try:
            rollback.append(store.activate(base).id)
        except store.VersionNotFound as gone:
            rollback.append(gone)

    def after_the_read(conn, cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "beacon_models" in statement \
                and not rollback:
            rollback.append("started")
            racer = threading.Thread(target=activate_base)
            racer.start()
            racer.join(timeout=2)  # without the lock it commits here, before our DELETE

    engine = get_engine()
    event.listen(engine, "after_cursor_execute", after_the_read)
    try:
        gone = store.delete_versions([base])
    finally:
        event.remove(engine, "after_cursor_execute", after_the_read)
    deadline = time.monotonic() + 30
    while len(rollback) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    active = store.active_global_id()
    assert active is not None, "the deletion removed the version the rollback made active"
    if gone == [base]:
        assert isinstance(rollback[1], store.VersionNotFound) and active == kept
    else:
        assert gone == [] and active == base


def test_cleanup_takes_the_personal_versions_built_on_a_global_one_it_deletes(db):
    """After a rollback a user's personal version may still be marked active on an older
    global version: deleting that base leaves it unable to serve, so it goes with it, in the
    preview and in the deletion, and the audit names every version deleted."""
    from data_access import audit

    (uid, other) = _seed_users(2)
    old = NOW - timedelta(days=30)
    base, kept = _global(created_at=old), _global(created_at=old + timedelta(hours=1))
    versions.activate(base, actor=ADMIN)
    personal = store.insert_version(scope="user", user_id=uid, base_model_id=base,
                                    blob=b"vector", created_at=old, status="active")
    on_kept = store.insert_version(scope="user", user_id=other, base_model_id=kept,
                                   blob=b"vector", created_at=old, status="active")
    versions.activate(kept, actor=ADMIN)  # the rollback-like switch: base is now inactive

    dry = versions.cleanup(keep_days=7, keep_newest=0, dry_run=True, actor=ADMIN)
    assert [v.id for v in dry.deleted] == [base, personal]
    done = versions.cleanup(keep_days=7, keep_newest=0, actor=ADMIN)
    assert [v.id for v in done.deleted] == [base, personal]
    assert {v.id for v in store.list_versions()} == {kept, on_kept}
    newest = audit.entries(action="cleanup_models", outcome="ok")[0]  # after the dry run's
    assert newest.params["deleted"] == [base, personal]


# --- the lock -----------------------------------------------------------------------------------

def test_lock_admits_one_holder_per_scope(db):
    (uid, *_rest) = _seed_users(1)
    first = runs.acquire("global", trigger="cli")
    assert not first.busy
    second = runs.acquire("global", trigger="button", requested_by="b@example.org")
    assert second.busy and second.holder.id == first.run.id
    other_scope = runs.acquire("user", uid)
    assert not other_scope.busy  # a user's fold-in does not wait for the global training
    runs.release(first.run.id, "global")
    third = runs.acquire("global")
    assert not third.busy
    assert runs.running_run("global").id == third.run.id
    # The refused request wrote no run row.
    assert {r.id for r in runs.list_runs()} == {first.run.id, other_scope.run.id, third.run.id}


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_recover_abandoned_frees_dead_and_silent_holders_only(db):
    dead = runs.acquire("global").run
    with session_scope() as session:  # the holder's process has exited
        session.execute(update(TrainingRun).where(TrainingRun.id == dead.id)
                        .values(pid=_dead_pid()))
    (uid, uid2, uid3, uid4) = _seed_users(4)
    silent = runs.acquire("user", uid).run
    with session_scope() as session:  # on another host, no heartbeat for an hour
        hour_ago = NOW - timedelta(hours=1)
        session.execute(update(TrainingRun).where(TrainingRun.id == silent.id)
                        .values(host="elsewhere", heartbeat_at=hour_ago))
        session.execute(update(TrainingLock).where(TrainingLock.run_id == silent.id)
                        .values(heartbeat_at=hour_ago))
    remote_alive = runs.acquire("user", uid2).run
    with session_scope() as session:  # on another host, beating
        session.execute(update(TrainingRun).where(TrainingRun.id == remote_alive.id)
                        .values(host="elsewhere"))
    alive = runs.acquire("user", uid3).run  # this very process: alive
    hung = runs.acquire("user", uid4).run  # a live pid on this host that stopped beating
    with session_scope() as session:
        hour_ago = NOW - timedelta(hours=1)
        session.execute(update(TrainingRun).where(TrainingRun.id == hung.id)
                        .values(heartbeat_at=hour_ago))
        session.execute(update(TrainingLock).where(TrainingLock.run_id == hung.id)
                        .values(heartbeat_at=hour_ago))
    frozen = runs.acquire("global", trigger="schedule")  # busy: the dead holder still has it
    assert frozen.busy

    recovered = {r.id: r for r in runs.recover_abandoned()}
    assert set(recovered) == {dead.id, silent.id, hung.id}
    assert runs.get_run(dead.id).status == "abandoned"
    assert "gone" in runs.get_run(dead.id).error
    assert "heartbeat" in runs.get_run(silent.id).error
    assert runs.get_run(alive.id).status == "running"
    assert runs.get_run(remote_alive.id).status == "running"
    assert not runs.acquire("global").busy  # the dead holder's lock is free again
    assert runs.acquire("user", uid3).busy


def test_progress_is_written_to_the_run(db):
    run = runs.acquire("global").run
    runs.record_progress(run.id, 1, 3, 0.9, 0.1)
    runs.record_progress(run.id, 2, 3, 0.7, None)
    got = runs.get_run(run.id)
    assert (got.epoch, got.total_epochs, got.last_loss) == (2, 3, pytest.approx(0.7))
    assert got.progress == [{"epoch": 1, "loss": 0.9, "val_metric": 0.1},
                            {"epoch": 2, "loss": 0.7, "val_metric": None}]


# --- fingerprint ----------------------------------------------------------------------------------

def test_fingerprint_follows_training_data_and_settings_only(db):
    (uid, *_rest) = _seed_users(2)
    with session_scope() as session:
        event = _seed_event(session, "e1", NOW + timedelta(days=3))
        event_pk = event.id
    types = ["click", "register"]
    base = runs.data_fingerprint({"dim": 8}, types)
    assert base.digest == runs.data_fingerprint({"dim": 8}, types).digest
    assert base.digest != runs.data_fingerprint({"dim": 16}, types).digest

    def add(kind: str, minutes: int) -> None:
        with session_scope() as session:
            session.add(Interaction(user_id=uid, event_id=event_pk, type=kind,
                                    occurred_at=NOW - timedelta(minutes=minutes)))

    add("impression", 5)  # does not feed training
    assert runs.data_fingerprint({"dim": 8}, types).digest == base.digest
    add("register", 4)
    after_register = runs.data_fingerprint({"dim": 8}, types)
    assert after_register.digest != base.digest
    newest = after_register.parts["interactions"]["newest_id"]
    add("impression", 3)  # impressions logged after it change nothing
    assert runs.data_fingerprint({"dim": 8}, types).digest == after_register.digest
    add("click", 60 * 24 * 30)  # a back-dated import still changes it (a new row, a new id)
    back_dated = runs.data_fingerprint({"dim": 8}, types)
    assert back_dated.digest != after_register.digest
    assert back_dated.parts["interactions"]["newest_id"] > newest
    after_register = back_dated
    with session_scope() as session:
        session.add(UserInterest(user_id=uid, tag="jazz"))
    assert runs.data_fingerprint({"dim": 8}, types).digest != after_register.digest


# --- personal vector blobs ------------------------------------------------------------------------

def test_personal_vector_round_trip():
    vec = np.arange(5, dtype=np.float32) / 3
    back, bias = versions.decode_personal_vector(versions.encode_personal_vector(vec, -0.25))
    np.testing.assert_array_equal(back, vec)
    assert bias == pytest.approx(-0.25)
    with pytest.raises(ValueError):
        versions.decode_personal_vector(b"garbage-bytes")


def test_state_changing_functions_are_declared():
    from beacon.actions import REGISTRY

    assert REGISTRY["activate_model"] is versions.activate
    assert REGISTRY["cleanup_models"] is versions.cleanup
    assert os.path.basename(versions.__file__) == "versions.py"


def test_concurrent_activations_leave_exactly_one_active_version(db):
    from tests.concurrency import at_once

    ids = [_global() for _ in range(6)]
    for _round in range(3):
        errors = at_once(lambda version_id: versions.activate(version_id, actor=ADMIN), ids,
                         timeout=60)
        assert errors == []
        active = [v.id for v in store.list_versions(scope="global") if v.status == "active"]
        assert len(active) == 1 and store.active_global_id() == active[0]
