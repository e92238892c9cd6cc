"""Near-real-time refresh: a burst of clicks costs one refresh, a mark made during a refresh is
kept, the interval throttles, concurrent claims never take the same user."""
from __future__ import annotations

import threading
from datetime import timedelta

from tests.api_support import Api, api  # noqa: F401 - api is a fixture

JAZZ = "jazz1@example.com"
INTERVAL = timedelta(seconds=60)



def _clicks(api: Api, email: str, start: int, count: int) -> None:
    batch = [{"id": f"{email}-{start + k}", "email": email, "event_id": f"jazz-{k % 4}",
              "type": "click"} for k in range(count)]
    assert api.post("/v1/interactions", {"interactions": batch}).json()["inserted"] == count


def test_a_burst_of_clicks_costs_one_refresh(api: Api) -> None:
    from beacon.refresh import run_once
    from data_access import recommendations, refresh_queue
    from data_access.catalog import user_by_email

    user = user_by_email(JAZZ)
    assert recommendations.cached_recommendations(user.id) == []
    _clicks(api, JAZZ, 0, 3)
    _clicks(api, JAZZ, 3, 3)
    assert refresh_queue.state(user.id)["mark_seq"] == 2
    done = run_once("test", INTERVAL)
    assert [(d.email, d.folded_in, d.cleared) for d in done] == [(JAZZ, True, True)]
    assert recommendations.cached_recommendations(user.id)  # the list was rewritten
    row = refresh_queue.state(user.id)
    assert row["refreshes"] == 1 and row["pending_since"] is None
    assert run_once("test", INTERVAL) == []
    # a click within the interval waits for it to end: one refresh per user per interval
    _clicks(api, JAZZ, 6, 1)
    assert run_once("test", INTERVAL) == []
    assert refresh_queue.state(user.id)["pending_since"] is not None
    _interval_passes(user.id)
    assert [d.email for d in run_once("test", INTERVAL)] == [JAZZ]
    assert refresh_queue.state(user.id)["refreshes"] == 2


def _interval_passes(user_id: int) -> None:
    from sqlalchemy import update

    from data_access.db import session_scope
    from data_access.schema import RefreshQueue, utcnow

    with session_scope() as session:
        session.execute(update(RefreshQueue).where(RefreshQueue.user_id == user_id)
                        .values(due_at=utcnow() - timedelta(seconds=1)))


def test_a_mark_during_a_refresh_is_not_lost(api: Api) -> None:
    from data_access import refresh_queue
    from data_access.catalog import user_by_email
    from data_access.schema import utcnow

    user = user_by_email(JAZZ)
    _clicks(api, JAZZ, 0, 1)
    [claimed] = refresh_queue.claim("a", utcnow(), timedelta(minutes=2))
    assert refresh_queue.claim("b", utcnow(), timedelta(minutes=2)) == []  # leased
    _clicks(api, JAZZ, 1, 1)  # arrives while "a" refreshes
    assert refresh_queue.finish(claimed, utcnow(), INTERVAL, 0.1) is False
    row = refresh_queue.state(user.id)
    assert row["pending_since"] is not None and row["claimed_until"] is None
    _interval_passes(user.id)
    [again] = refresh_queue.claim("b", utcnow(), timedelta(minutes=2))
    assert refresh_queue.finish(again, utcnow(), INTERVAL, 0.1) is True
    assert refresh_queue.state(user.id)["pending_since"] is None


def test_impressions_mark_nobody(api: Api) -> None:
    answer = api.get(f"/v1/users/{JAZZ}/recommendations", params={"n": 1}).json()
    result = api.post("/v1/interactions", {"interactions": [
        {"id": "imp", "email": JAZZ, "event_id": answer["items"][0]["event_id"],
         "type": "impression", "request_id": answer["request_id"]}]}).json()
    assert result["inserted"] == 1 and result["users_marked"] == 0


def test_concurrent_claims_never_share_a_user(api: Api) -> None:
    from data_access import refresh_queue
    from data_access.schema import utcnow

    emails = [f"u{k}@example.com" for k in range(30)]
    for k, email in enumerate(emails):
        _clicks(api, email, 0, 1)
    taken: list[list[int]] = []
    barrier = threading.Barrier(3)

    def claimer(name: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := refresh_queue.claim(name, utcnow(), timedelta(minutes=2), limit=4):
            mine += [c.user_id for c in batch]
        taken.append(mine)

    threads = [threading.Thread(target=claimer, args=(f"w{k}",)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everyone = [u for mine in taken for u in mine]
    assert len(everyone) == len(set(everyone)) == len(emails)


def test_a_claim_takes_at_most_its_limit_whatever_the_planner_knows(api: Api) -> None:
    """On Postgres, statistics taken while the queue was idle made the planner run the
    LIMIT subquery once per row of the update: one claim took the whole backlog."""
    from sqlalchemy import text

    from data_access import refresh_queue
    from data_access.db import get_engine
    from data_access.schema import utcnow

    from data_access.db import session_scope
    from data_access.schema import User

    engine = get_engine()
    with session_scope() as session:
        users = [User(email=f"burst{k}@example.com") for k in range(400)]
        session.add_all(users)
        session.flush()
        ids = [user.id for user in users]
    with engine.begin() as connection:  # every user refreshed once: rows, none due
        refresh_queue.mark(connection, ids, utcnow() - timedelta(minutes=5))
        connection.execute(refresh_queue.QUEUE.update().values(pending_since=None, due_at=None))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE refresh_queue"))  # the idle queue's statistics
    with engine.begin() as connection:  # then a burst: everybody due at once
        refresh_queue.mark(connection, ids, utcnow() - timedelta(minutes=5))
    batch = refresh_queue.claim("w", utcnow(), timedelta(minutes=2), limit=20)
    assert len(batch) == 20


def test_a_user_the_database_refuses_is_audited_as_failed(api: Api, monkeypatch) -> None:
    """One user's write fails: the others of the batch are stored (one by one), and the audit
    names the user whose refresh failed instead of calling the batch ok."""
    from beacon import refresh
    from beacon.refresh import run_once
    from data_access import audit
    from data_access.catalog import user_by_email

    for email in ("jazz1@example.com", "jazz2@example.com"):
        _clicks(api, email, 0, 1)
    refused = user_by_email("jazz2@example.com").id
    real_write = refresh.store.write

    def write(refreshes, **kwargs):
        if any(r.item.user_id == refused for r in refreshes):
            raise RuntimeError("refused by the database")
        return real_write(refreshes, **kwargs)

    monkeypatch.setattr(refresh.store, "write", write)
    done = run_once("w", timedelta(seconds=60), limit=10)
    assert [item.email for item in done] == ["jazz1@example.com"]
    failed = audit.entries(action="refresh_users", outcome="failed")
    assert [row.params["users"] for row in failed] == [[refused]]
    assert "refused by the database" in failed[0].error


def test_overview_shows_backlog_and_lag(api: Api) -> None:
    from beacon import refresh
    from beacon.refresh import run_once

    _clicks(api, JAZZ, 0, 2)
    _clicks(api, "jazz2@example.com", 0, 1)
    before = refresh.backlog()
    assert before.pending == 2 and before.due == 2 and before.oldest_pending_seconds >= 0
    run_once("test", INTERVAL)
    after = refresh.backlog()
    assert after.pending == 0 and after.refreshed_last_5m == 2
    assert after.mean_lag_last_5m is not None and after.mean_lag_last_5m < 60


def test_answers_older_than_the_attribution_window_are_dropped(api: Api) -> None:
    from sqlalchemy import func, select, update

    from beacon.refresh import WORKER, forget_old_answers
    from data_access.db import session_scope
    from data_access.schema import RecommendationRequest, utcnow

    old = api.get(f"/v1/users/{JAZZ}/recommendations").json()["request_id"]
    api.get(f"/v1/users/{JAZZ}/recommendations")
    with session_scope() as session:
        session.execute(update(RecommendationRequest)
                        .where(RecommendationRequest.request_id == old)
                        .values(created_at=utcnow() - timedelta(days=31)))
    assert forget_old_answers(actor=WORKER) == 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(RecommendationRequest)) == 1
