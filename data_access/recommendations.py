"""The user_recommendations cache: atomic replacement per batch of users, and reads."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping, Sequence

from sqlalchemy import delete, func, insert, select

from data_access.db import session_scope
from data_access.schema import Event, User, UserRecommendation


def replace_recommendations(rows_by_user: Mapping[int, Sequence[Mapping]],
                            generated_at: datetime) -> int:
    """Replace the cached rows of every user in `rows_by_user` in ONE transaction: readers see
    either a user's old list or the new one, never a mix. Each row: rank, event_pk, score,
    model_version, strategy, reason. A user mapped to an empty list ends with no rows.
    Returns the number of rows written."""
    if not rows_by_user:
        return 0
    with session_scope() as session:
        return replace_in(session, rows_by_user, generated_at)


def replace_in(session, rows_by_user: Mapping[int, Sequence[Mapping]],
               generated_at: datetime) -> int:
    """replace_recommendations in the caller's transaction (a refresh batch stores its users'
    lists with their fold-ins): one DELETE per 1,000 users and one multi-row INSERT."""
    user_ids = list(rows_by_user)
    if not user_ids:
        return 0
    rows_by_user = _without_deleted_events(session, rows_by_user)
    values = [
        {
            "user_id": int(user_id),
            "rank": int(row["rank"]),
            "event_id": int(row["event_pk"]),
            "score": float(row["score"]),
            "model_version": None if row.get("model_version") is None else int(row["model_version"]),
            "strategy": str(row["strategy"]),
            "reason": row.get("reason"),
            "generated_at": generated_at,
        }
        for user_id, rows in rows_by_user.items()
        for row in rows
    ]
    for start in range(0, len(user_ids), 1000):
        session.execute(
            delete(UserRecommendation).where(
                UserRecommendation.user_id.in_(user_ids[start:start + 1000])
            )
        )
    if values:
        # RETURNING makes SQLAlchemy send the rows as multi-row INSERTs ("insertmanyvalues")
        # rather than one message per row: a batch of the refresh worker writes hundreds
        table = UserRecommendation.__table__
        session.execute(insert(table).returning(table.c.user_id), values)
    return len(values)


def _without_deleted_events(session, rows_by_user: Mapping[int, Sequence[Mapping]]
                            ) -> dict[int, list[Mapping]]:
    """The lists less the events deleted since they were ranked (a cancelled event must not
    fail the write of every list it was in), ranks closed up."""
    wanted = list({int(row["event_pk"]) for rows in rows_by_user.values() for row in rows})
    present: set[int] = set()
    for start in range(0, len(wanted), 1000):
        present.update(session.scalars(
            select(Event.id).where(Event.id.in_(wanted[start:start + 1000]))))
    if len(present) == len(wanted):
        return dict(rows_by_user)
    kept = {}
    for user_id, rows in rows_by_user.items():
        alive = sorted((row for row in rows if int(row["event_pk"]) in present),
                       key=lambda row: int(row["rank"]))
        kept[user_id] = [{**row, "rank": rank} for rank, row in enumerate(alive, start=1)]
    return kept


def cached_recommendations(user_id: int) -> list[dict]:
    """One user's cached list, best first, with the event's platform id and title."""
    with session_scope() as session:
        rows = session.execute(
            select(
                UserRecommendation.rank,
                Event.event_id,
                Event.title,
                UserRecommendation.score,
                UserRecommendation.model_version,
                UserRecommendation.strategy,
                UserRecommendation.reason,
                UserRecommendation.generated_at,
                Event.start_time,
            )
            .join(Event, Event.id == UserRecommendation.event_id)
            .where(UserRecommendation.user_id == user_id)
            .order_by(UserRecommendation.rank)
        ).all()
    return [
        {
            "rank": r.rank,
            "event_id": r.event_id,
            "title": r.title,
            "score": r.score,
            "model_version": r.model_version,
            "strategy": r.strategy,
            "source": r.strategy,
            "reason": r.reason,
            "generated_at": r.generated_at,
            "start_time": r.start_time,
        }
        for r in rows
    ]


def cache_summary() -> dict:
    """Users with cached rows, rows in all, oldest and newest generated_at (console)."""
    with session_scope() as session:
        users, rows, oldest, newest = session.execute(
            select(
                func.count(func.distinct(UserRecommendation.user_id)),
                func.count(),
                func.min(UserRecommendation.generated_at),
                func.max(UserRecommendation.generated_at),
            )
        ).one()
        total_users = session.scalar(select(func.count(User.id))) or 0
    return {
        "users_cached": int(users or 0),
        "rows": int(rows or 0),
        "oldest": oldest,
        "newest": newest,
        "users": int(total_users),
    }


def user_ids_with_cache(user_ids: Iterable[int]) -> set[int]:
    ids = list(user_ids)
    if not ids:
        return set()
    with session_scope() as session:
        return set(
            session.scalars(
                select(UserRecommendation.user_id)
                .where(UserRecommendation.user_id.in_(ids))
                .distinct()
            )
        )
