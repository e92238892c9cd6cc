"""The refresh worker's batches: the same fold-ins and cached lists as one user at a time, a
bounded number of statements whatever the batch's size, a user the database refuses failing
alone with nothing half-written, and workers sharing the queue without refreshing a user twice
at once or losing a mark."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import event, func, select, text

from tests.api_support import Api, api  # noqa: F401 - api is a fixture
from tests.test_refresh import _interval_passes

INTERVAL = timedelta(seconds=60)
USERS = [f"jazz{i}@example.com" for i in range(4)] + \
    [f"techno{i}@example.com" for i in range(4)] + ["new-jazz@example.com"]


def _click(api: Api, emails: list[str], tag: str = "a") -> None:
    batch = [{"id": f"{tag}-{email}-{k}", "email": email, "event_id": f"jazz-{k}",
              "type": "click"} for email in emails for k in range(2)]
    assert api.post("/v1/interactions", {"interactions": batch}).json()["users_marked"] == \
        len(emails)


def _snapshot(emails: list[str]) -> dict:
    """Each user's personal vector on the active model and cached list."""
    from beacon import versions
    from data_access import recommendations
    from data_access.catalog import user_by_email

    base = versions.active_global().version_id
    out = {}
    for email in emails:
        user = user_by_email(email)
        personal = versions.personal_vector(user.id, base)
        out[email] = (personal, recommendations.cached_recommendations(user.id))
    return out


def _user_id(email: str) -> int:
    from data_access.catalog import user_by_email

    return user_by_email(email).id


def test_a_batch_gives_what_one_by_one_gives(api: Api) -> None:
    from beacon.refresh import refresh_user, run_once
    from data_access import runs

    _click(api, USERS)
    for email in USERS:
        assert refresh_user(email) is True
    one_by_one = _snapshot(USERS)
    done = run_once("test", INTERVAL, limit=100, batch=100)  # the marks: one batch of all
    assert sorted(d.email for d in done) == sorted(USERS)
    assert all(d.folded_in and d.cleared for d in done)
    batched = _snapshot(USERS)
    for email in USERS:
        (alone, alone_list), (together, together_list) = one_by_one[email], batched[email]
        assert together.version_id > alone.version_id  # a new fold-in version, now active
        np.testing.assert_allclose(together.vector, alone.vector, rtol=1e-5, atol=1e-6)
        assert together.bias == pytest.approx(alone.bias)
        assert [r["event_id"] for r in together_list] == [r["event_id"] for r in alone_list]
        assert [r["reason"] for r in together_list] == [r["reason"] for r in alone_list]
        assert [r["score"] for r in together_list] == pytest.approx(
            [r["score"] for r in alone_list], rel=1e-5)
        assert {r["strategy"] for r in together_list} == {"personal"}
        assert {r["model_version"] for r in together_list} == {together.version_id}
        # the console's records: the run that made the version, no lock left behind
        run = runs.list_runs(scope="user", user_id=_user_id(email), limit=1)[0]
        assert (run.status, run.model_id, run.trigger) == ("succeeded", together.version_id,
                                                           "schedule")
        assert run.reason.startswith(f"fold-in of {email} on global version")
        assert runs.lock_holder("user", _user_id(email)) is None


def test_when_the_batched_fold_in_fails_the_users_are_folded_in_one_by_one(
        api: Api, monkeypatch) -> None:
    from beacon.model.hybrid import HybridModel
    from beacon.refresh import run_once

    batched = HybridModel.fold_in_many

    def alone_only(self, users, histories, config=None):
        if len(users) > 1:  # a fault in the batched pass only
            raise RuntimeError("the batched pass broke")
        return batched(self, users, histories, config)

    monkeypatch.setattr(HybridModel, "fold_in_many", alone_only)
    _click(api, USERS[:3])
    done = run_once("test", INTERVAL, limit=100, batch=100)
    assert sorted(d.email for d in done) == sorted(USERS[:3])
    assert all(d.folded_in and d.cleared for d in done)
    assert all(personal is not None for personal, _ in _snapshot(USERS[:3]).values())


@contextmanager
def _statements():
    from data_access.db import get_engine

    seen: list[str] = []
    engine = get_engine()

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_batch_costs_the_same_statements_for_2_users_as_for_8(api: Api) -> None:
    from beacon.refresh import run_once

    run_once("warm", INTERVAL)  # the model and candidates load outside the count
    counts = []
    for emails in (USERS[:2], USERS[2:]):
        _click(api, emails, tag=f"n{len(emails)}")
        with _statements() as seen:
            done = run_once("test", INTERVAL, limit=len(emails), batch=len(emails))
        assert len(done) == len(emails)
        counts.append(len(seen))
    two, eight = counts
    assert eight <= two + 2, (two, eight)  # a candidate-key check may fall in either
    assert eight <= 24, (two, eight)


def _refuse_lists_of(user_id: int) -> None:
    """A database trigger that refuses cached rows for one user: a real failure in the middle
    of a batch's write, as a user deleted meanwhile or a full disk would give."""
    from data_access.db import get_engine, session_scope

    with session_scope() as session:
        if get_engine().dialect.name == "postgresql":
            session.execute(text(
                "CREATE FUNCTION refuse_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.user_id = {user_id} THEN RAISE EXCEPTION 'refused by the test'; "
                "END IF; RETURN NEW; END $$"))
            session.execute(text(
                "CREATE TRIGGER refuse BEFORE INSERT ON user_recommendations FOR EACH ROW "
                "EXECUTE FUNCTION refuse_rows()"))
        else:
            session.execute(text(
                f"CREATE TRIGGER refuse BEFORE INSERT ON user_recommendations "
                f"WHEN NEW.user_id = {user_id} BEGIN SELECT RAISE(ABORT, 'refused'); END"))


def test_a_user_the_database_refuses_fails_alone(api: Api) -> None:
    from beacon.refresh import refresh_user, run_once
    from data_access import recommendations, refresh_queue, runs
    from data_access.db import session_scope
    from data_access.schema import ModelVersion

    victim = USERS[1]
    refresh_user(victim)  # an earlier list and fold-in, which must survive the failure
    before = _snapshot([victim])[victim]
    _click(api, USERS[:4])
    _refuse_lists_of(_user_id(victim))
    done = run_once("test", INTERVAL, limit=10, batch=10)
    assert sorted(d.email for d in done) == sorted(set(USERS[:4]) - {victim})
    for email in set(USERS[:4]) - {victim}:
        assert recommendations.cached_recommendations(_user_id(email))
        assert refresh_queue.state(_user_id(email))["pending_since"] is None
    # the victim: old list and personal version untouched, its run failed, its lock and claim
    # free, its mark kept for a retry after the interval
    after = _snapshot([victim])[victim]
    assert after[0].version_id == before[0].version_id
    assert after[1] == before[1]
    victim_id = _user_id(victim)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion).where(
            ModelVersion.user_id == victim_id, ModelVersion.status == "active")) == 1
    run = runs.list_runs(scope="user", user_id=victim_id, limit=1)[0]
    assert run.status == "failed" and "refused" in (run.reason or "")
    assert runs.lock_holder("user", victim_id) is None
    state = refresh_queue.state(victim_id)
    assert state["pending_since"] is not None and state["claimed_until"] is None
    assert state["refreshes"] == 0


def test_workers_never_refresh_a_user_twice_at_once_nor_lose_a_mark(api: Api) -> None:
    """Three workers drain the queue while marks keep coming; with interval 0 every mark is due
    at once. No user's runs overlap, every mark made is followed by a refresh that saw it."""
    from beacon.refresh import run_once
    from data_access import refresh_queue, runs
    from data_access.db import get_engine
    from data_access.schema import utcnow

    ids = [_user_id(email) for email in USERS]
    marking = threading.Event()
    marking.set()
    errors: list[BaseException] = []
    last_mark: dict[int, object] = {}

    def marker() -> None:
        try:
            for round_ in range(12):
                chosen = ids[round_ % 3::2]
                with get_engine().begin() as connection:
                    now = utcnow()
                    refresh_queue.mark(connection, chosen, now)
                for user_id in chosen:
                    last_mark[user_id] = now
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            marking.clear()

    def worker(name: str) -> None:
        try:  # until the marks stop and the queue has nothing due
            while run_once(name, timedelta(0), limit=3, batch=3) or marking.is_set():
                pass
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=marker)] + \
        [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for user_id in set(last_mark):
        state = refresh_queue.state(user_id)
        assert state["pending_since"] is None, state  # no mark left behind
        assert state["refreshed_at"] >= last_mark[user_id]
        done = [r for r in runs.list_runs(scope="user", user_id=user_id, limit=1000)]
        assert done and all(r.status == "succeeded" for r in done)
        assert len(done) == state["refreshes"]
        spans = sorted((r.started_at, r.finished_at) for r in done)
        for (_, finished), (started, _) in zip(spans, spans[1:]):
            assert started >= finished, spans  # one refresh of a user at a time


def test_a_user_another_training_holds_is_given_back_not_lost(api: Api) -> None:
    """A user whose training lock is taken (an operator's `train --user` running) is left out
    of the batch, keeps their mark and is refreshed once the lock is free."""
    from beacon.refresh import run_once
    from data_access import refresh_queue, runs

    busy, free = USERS[0], USERS[1]
    busy_id = _user_id(busy)
    holder = runs.acquire("user", busy_id, trigger="cli", requested_by="operator").run
    _click(api, [busy, free])
    done = run_once("test", INTERVAL, limit=10, batch=10)
    assert [d.email for d in done] == [free]
    state = refresh_queue.state(busy_id)
    assert state["pending_since"] is not None and state["claimed_until"] is None
    assert [r.id for r in runs.list_runs(scope="user", user_id=busy_id)] == [holder.id]
    runs.finish_run(holder.id, "succeeded", reason="done by hand")
    runs.release(holder.id, "user", busy_id)
    _interval_passes(busy_id)
    assert [d.email for d in run_once("test", INTERVAL, limit=10, batch=10)] == [busy]

