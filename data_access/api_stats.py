"""Per-user and global numbers for the API's stats endpoints (GROUP BY in the database)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from data_access.db import session_scope
from data_access.schema import Event, Interaction, RecommendationRequest

TASTE_TYPES = ("click", "view", "favorite", "share", "register", "attend")


def user_counts(user_id: int, since: datetime) -> dict:
    """Answers served (and items in them), interactions per type and the top categories of
    what the user showed interest in, since `since`."""
    with session_scope() as session:
        answers = session.execute(
            select(RecommendationRequest.event_ids)
            .where(RecommendationRequest.user_id == user_id,
                   RecommendationRequest.created_at >= since)).scalars().all()
        by_type = dict(session.execute(
            select(Interaction.type, func.count())
            .where(Interaction.user_id == user_id, Interaction.occurred_at >= since)
            .group_by(Interaction.type)).all())
        categories = session.execute(
            select(Event.category, func.count().label("n")).select_from(Interaction)
            .join(Event, Event.id == Interaction.event_id)
            .where(Interaction.user_id == user_id, Interaction.occurred_at >= since,
                   Interaction.type.in_(TASTE_TYPES), Event.category.is_not(None))
            .group_by(Event.category).order_by(func.count().desc(), Event.category)
            .limit(5)).all()
    return {
        "requests": len(answers),
        "items_served": sum(len(ids or ()) for ids in answers),
        "by_type": {str(k): int(v) for k, v in by_type.items()},
        "top_categories": [{"category": c, "interactions": int(n)} for c, n in categories],
    }


def popular_events(since: datetime, types: tuple[str, ...], limit: int = 10) -> list[dict]:
    with session_scope() as session:
        rows = session.execute(
            select(Event.event_id, Event.title, func.count().label("n")).select_from(Interaction)
            .join(Event, Event.id == Interaction.event_id)
            .where(Interaction.type.in_(types), Interaction.occurred_at >= since)
            .group_by(Event.event_id, Event.title)
            .order_by(func.count().desc(), Event.event_id).limit(limit)).all()
    return [{"event_id": e, "title": t, "count": int(n)} for e, t, n in rows]
