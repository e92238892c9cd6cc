"""recommendation_requests: what each API answer held, for impression attribution and stats."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, text

from data_access.db import session_scope
from data_access.schema import RecommendationRequest


def record_request(request_id: str, user_id: int | None, model_version: int | None,
                   strategy: str, source: str, event_ids: list[str], now: datetime) -> None:
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            # an answer's record may be lost in a crash (its impressions then go unattributed);
            # not waiting for the WAL flush keeps the write off the request's latency
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        session.execute(insert(RecommendationRequest).values(
            request_id=request_id, user_id=user_id, model_version=model_version,
            strategy=strategy, source=source, event_ids=list(event_ids), created_at=now))


def forget_before(moment: datetime) -> int:
    """Drop answers older than `moment` (impressions reported later cannot be attributed)."""
    with session_scope() as session:
        return int(session.execute(delete(RecommendationRequest).where(
            RecommendationRequest.created_at < moment)).rowcount or 0)


#: how long an answer's request_id stays usable for attribution
KEEP = timedelta(days=30)
