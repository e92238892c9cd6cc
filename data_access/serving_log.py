"""recommendation_requests: what each API answer held, for impression attribution and stats."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, literal_column, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert

from data_access import pinned
from data_access.db import get_engine, run_retrying, session_scope
from data_access.schema import RecommendationRequest


def record_request(request_id: str, user_id: int | None, model_version: int | None,
                   strategy: str, source: str, event_ids: list[str], now: datetime) -> None:
    """Commits before the answer leaves, so an impression reported with this request_id always
    finds it. On Postgres one statement in autocommit: one round trip instead of four (BEGIN,
    SET LOCAL, INSERT, COMMIT), safe to send again on a dropped connection; in the API on
    this thread's pinned connection (data_access.pinned)."""
    values = {"request_id": request_id, "user_id": user_id, "model_version": model_version,
              "strategy": strategy, "source": source, "event_ids": list(event_ids),
              "created_at": now}
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        if pinned.attempt(engine, lambda fetch: fetch(_RELAXED_INSERT, values)) \
                is pinned.UNAVAILABLE:
            run_retrying(lambda connection: connection.execute(_RELAXED_INSERT.statement, values))
        return
    with engine.begin() as connection:
        connection.execute(insert(_TABLE), values)


_TABLE = RecommendationRequest.__table__
_COLUMNS = ("request_id", "user_id", "model_version", "strategy", "source", "event_ids",
            "created_at")
#: the row, written without waiting for the WAL flush (synchronous_commit off for this
#: statement's own transaction: an answer's record may be lost in a crash, its impressions then
#: go unattributed); a repeat of the same request_id is a no-op
_RELAXED_INSERT = pinned.Statement(pg_insert(_TABLE).from_select(
    list(_COLUMNS),
    select(*(bindparam(name, type_=_TABLE.c[name].type) for name in _COLUMNS))
    .where(func.set_config(literal_column("'synchronous_commit'"), literal_column("'off'"),
                           true()).is_not(None)),
).on_conflict_do_nothing(index_elements=["request_id"]), *_COLUMNS)


def forget_before(moment: datetime) -> int:
    """Drop answers older than `moment` (impressions reported later cannot be attributed)."""
    with session_scope() as session:
        return int(session.execute(delete(RecommendationRequest).where(
            RecommendationRequest.created_at < moment)).rowcount or 0)


#: how long an answer's request_id stays usable for attribution
KEEP = timedelta(days=30)
