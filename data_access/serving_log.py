"""recommendation_requests: what each API answer held, for impression attribution and stats."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert

from data_access.db import get_engine, session_scope
from data_access.schema import RecommendationRequest


def record_request(request_id: str, user_id: int | None, model_version: int | None,
                   strategy: str, source: str, event_ids: list[str], now: datetime) -> None:
    """One Core insert on one connection (no ORM session). It commits before the answer
    leaves, so an impression reported with this request_id always finds it."""
    with get_engine().begin() as connection:
        if connection.dialect.name == "postgresql":
            # an answer's record may be lost in a crash (its impressions then go unattributed);
            # not waiting for the WAL flush keeps the write off the request's latency
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        connection.execute(_INSERT, {
            "request_id": request_id, "user_id": user_id, "model_version": model_version,
            "strategy": strategy, "source": source, "event_ids": list(event_ids),
            "created_at": now})


_INSERT = insert(RecommendationRequest.__table__)


def forget_before(moment: datetime) -> int:
    """Drop answers older than `moment` (impressions reported later cannot be attributed)."""
    with session_scope() as session:
        return int(session.execute(delete(RecommendationRequest).where(
            RecommendationRequest.created_at < moment)).rowcount or 0)


#: how long an answer's request_id stays usable for attribution
KEEP = timedelta(days=30)
