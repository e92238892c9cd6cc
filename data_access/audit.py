"""The audit trail: one row per state-changing action, sign-in and refusal.

`insert(session, row)` writes a row inside a transaction the caller already holds, so that a
change and its audit row commit or roll back together; `record(row)` writes one on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert as sql_insert, select
from sqlalchemy.orm import Session

from data_access.db import session_scope
from data_access.schema import AUDIT_OUTCOMES, AuditEntry, utcnow

MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class AuditRow:
    who: str
    kind: str
    action: str
    outcome: str
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    at: datetime | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat() if self.at else None, "who": self.who,
                "kind": self.kind, "action": self.action, "params": self.params,
                "outcome": self.outcome, "error": self.error}


def _values(row: AuditRow) -> dict[str, Any]:
    if row.outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"audit outcome {row.outcome!r} is not one of {AUDIT_OUTCOMES}")
    return {"at": row.at or utcnow(), "who": row.who[:320], "kind": row.kind[:16],
            "action": row.action[:64], "params": row.params or {}, "outcome": row.outcome,
            "error": row.error[:MAX_ERROR_CHARS] if row.error else None}


def insert(session: Session | Connection, row: AuditRow) -> None:
    """Add `row` to the caller's open transaction (a Session or a Connection)."""
    session.execute(sql_insert(AuditEntry).values(**_values(row)))


def record(row: AuditRow, url: str | None = None) -> None:
    """Write `row` in a transaction of its own."""
    with session_scope(url) as session:
        insert(session, row)


def entries(who: str | None = None, action: str | None = None, since: datetime | None = None,
            until: datetime | None = None, outcome: str | None = None,
            limit: int = 1000) -> list[AuditRow]:
    """Newest first. `who` and `action` match exactly; `since`/`until` bound `at` (inclusive,
    exclusive)."""
    query = select(AuditEntry)
    if who:
        query = query.where(AuditEntry.who == who)
    if action:
        query = query.where(AuditEntry.action == action)
    if outcome:
        query = query.where(AuditEntry.outcome == outcome)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    query = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    with session_scope() as session:
        return [AuditRow(who=e.who, kind=e.kind, action=e.action, outcome=e.outcome,
                         params=dict(e.params or {}), error=e.error, at=e.at, id=e.id)
                for e in session.scalars(query)]


def distinct_values() -> dict[str, list[str]]:
    """The people and actions that appear in the trail (for filter choices)."""
    with session_scope() as session:
        who = sorted(session.scalars(select(AuditEntry.who).distinct()))
        actions = sorted(session.scalars(select(AuditEntry.action).distinct()))
    return {"who": list(who), "action": list(actions)}
