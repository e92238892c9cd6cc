"""The API's pinned connections (data_access.pinned): the same answers as the pooled path,
only on Postgres and only where turned on, a dropped connection survived, all closed when the
API stops."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from tests.api_support import Api, api  # noqa: F401 - api is a fixture
from tests.conftest import POSTGRES_URL, _admin
from tests.test_api_round_trips import JAZZ, PATH, _fold_in

EMAILS = [JAZZ, "jazz1@example.com", "techno0@example.com", "Techno2@Example.com",
          "nobody-here@example.com"]


def _reads() -> list:
    from data_access.serving_read import serving_read

    return [serving_read(email=email) for email in EMAILS] + [serving_read(user_id=2)]


def _pinned_statements(work) -> list[str]:
    from data_access import pinned

    seen: list[str] = []
    pinned.observers.append(seen.append)
    try:
        work()
    finally:
        pinned.observers.remove(seen.append)
    return seen


@pytest.mark.postgres
def test_pinned_reads_answer_what_pooled_reads_answer(api: Api) -> None:
    from data_access import pinned
    from tests.test_filters import seed
    from tests.test_recommend import NOW

    seed(interactions=[{"email": JAZZ, "event_id": "jazz-1", "type": "reject", "at": NOW},
                       {"email": JAZZ, "event_id": "techno-0", "type": "register", "at": NOW}])
    _fold_in(JAZZ)
    pinned.disable()
    pooled = _reads()
    pinned.enable()
    pinned_reads: list = []
    statements = _pinned_statements(lambda: pinned_reads.extend(_reads()))
    assert len(statements) == 2 * 5 + 1  # two per known user, one for the unknown one
    assert pinned_reads == pooled
    assert pooled[0].personal is not None
    assert len(pooled[0].history.rejected) == 1 and pooled[0].history.registered
    assert pooled[0].user.created_at.tzinfo is not None
    assert pinned_reads[0].user.created_at.utcoffset().total_seconds() == 0


def test_off_or_on_sqlite_the_usual_path_runs(api: Api) -> None:
    from data_access import pinned
    from data_access.db import get_engine

    pinned.disable()
    assert pinned.attempt(get_engine(), lambda fetch: "pinned") is pinned.UNAVAILABLE
    pinned.enable()
    answer = pinned.attempt(get_engine(), lambda fetch: "pinned")
    assert answer == ("pinned" if POSTGRES_URL else pinned.UNAVAILABLE)
    assert api.get(PATH).status_code == 200


@pytest.mark.postgres
def test_the_answer_record_through_the_pinned_connection(api: Api) -> None:
    from sqlalchemy import select

    from data_access import serving_log
    from data_access.db import session_scope
    from data_access.schema import RecommendationRequest

    request_id = uuid.uuid4().hex
    at = datetime(2026, 12, 6, 17, 30, 15, 123456, tzinfo=timezone.utc)
    written = _pinned_statements(lambda: serving_log.record_request(
        request_id, None, 7, "content", "model", ["b", "a"], at))
    assert len(written) == 1 and written[0].startswith("INSERT")
    serving_log.record_request(request_id, None, 8, "beacon", "model", ["c"], at)  # a no-op
    with session_scope() as session:
        row = session.execute(select(RecommendationRequest).where(
            RecommendationRequest.request_id == request_id)).scalar_one()
        assert (row.model_version, row.strategy, row.event_ids, row.created_at) == \
            (7, "content", ["b", "a"], at)


@pytest.mark.postgres
def test_a_dropped_pinned_connection_is_survived_then_replaced(api: Api) -> None:
    from data_access import pinned
    from data_access.db import get_engine
    from data_access.serving_read import serving_read

    def backend() -> int:
        return pinned.attempt(get_engine(), lambda fetch: pinned._held.connection.execute(
            "SELECT pg_backend_pid()").fetchone()[0])

    first = backend()
    _admin(f"SELECT pg_terminate_backend({int(first)})")
    assert serving_read(email=JAZZ).user.email == JAZZ  # pinned failed: the pooled path ran
    assert pinned._held.connection is None
    assert serving_read(email=JAZZ).user.email == JAZZ
    assert backend() not in (None, first)  # a new pinned connection
    assert api.get(PATH).status_code == 200


@pytest.mark.postgres
def test_stopping_the_api_closes_its_pinned_connections(api: Api) -> None:
    from data_access import pinned

    assert api.get(PATH).status_code == 200
    opened = list(pinned._open)
    assert opened
    api.client.__exit__(None, None, None)  # the lifespan ends
    assert all(connection.closed for connection in opened) and not pinned._open
    api.client.__enter__()


@pytest.mark.postgres
def test_a_thread_that_ends_closes_its_pinned_connection(api: Api) -> None:
    """anyio retires an endpoint thread idle for 10 s: its connection must not stay open."""
    import gc
    import threading

    from data_access import pinned
    from data_access.db import get_engine

    held: list = []
    worker = threading.Thread(target=lambda: held.append(pinned.attempt(
        get_engine(), lambda fetch: pinned._held.connection)))
    worker.start()
    worker.join()
    gc.collect()
    (connection,) = held
    assert connection is not pinned.UNAVAILABLE and connection.closed
