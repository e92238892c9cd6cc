"""One user's activity for the console's Users page, aggregated inside the database.

Every function opens one managed session and returns plain data (dicts, lists): the timeline is a
GROUP BY on (day, type), so a user with a million interactions costs one small result set.
"""
from __future__ import annotations

from sqlalchemy import and_, func, select

from data_access.db import session_scope
from data_access.metrics import as_date, utc_day
from data_access.schema import Event, Interaction

#: the interaction types the Users page lists with their event titles
DECISION_TYPES = ("register", "unregister", "attend", "reject")


def timeline_counts(user_id: int) -> list[dict]:
    """Interactions of one user counted per UTC day and type: [{day, type, count}], by day."""
    with session_scope() as session:
        day = utc_day(Interaction.occurred_at, session.get_bind().dialect.name).label("day")
        rows = session.execute(
            select(day, Interaction.type, func.count().label("n"))
            .where(Interaction.user_id == user_id)
            .group_by(day, Interaction.type)
            .order_by(day, Interaction.type)
        ).all()
    return [{"day": as_date(r.day), "type": r.type, "count": int(r.n)} for r in rows]


def type_totals(user_id: int) -> dict[str, int]:
    """How many interactions of each type this user has."""
    with session_scope() as session:
        rows = session.execute(
            select(Interaction.type, func.count())
            .where(Interaction.user_id == user_id)
            .group_by(Interaction.type)
        ).all()
    return {kind: int(n) for kind, n in rows}


def decisions(user_id: int, limit: int = 500) -> list[dict]:
    """Registrations, unregistrations, attendances and rejects with their events, newest first."""
    with session_scope() as session:
        rows = session.execute(
            select(
                Interaction.type,
                Interaction.occurred_at,
                Event.event_id,
                Event.title,
                Event.category,
                Event.city,
                Event.latitude,
                Event.longitude,
                Event.start_time,
                Event.timezone,
            )
            .join(Event, Event.id == Interaction.event_id)
            .where(and_(Interaction.user_id == user_id, Interaction.type.in_(DECISION_TYPES)))
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(limit)
        ).all()
    return [dict(r._mapping) for r in rows]

