"""Saved training settings: one row per scope, the changes from the built-in defaults."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from data_access import audit as audit_log
from data_access.audit import AuditRow
from data_access.db import session_scope
from data_access.schema import TrainingSettings, utcnow

GLOBAL = "global"

Overrides = dict[str, Any]


@dataclass(frozen=True)
class SavedSettings:
    overrides: Overrides = field(default_factory=dict)
    updated_by: str | None = None  # None: nothing saved, the built-in defaults apply
    updated_at: datetime | None = None


def get(scope: str = GLOBAL) -> SavedSettings:
    with session_scope() as session:
        row = session.get(TrainingSettings, scope)
        if row is None:
            return SavedSettings()
        return SavedSettings(overrides=dict(row.overrides or {}), updated_by=row.updated_by,
                             updated_at=row.updated_at)


def change(edit: Callable[[Overrides], Overrides], by: str,
           audit: Callable[[Overrides, Overrides], AuditRow | None] | None = None,
           scope: str = GLOBAL) -> SavedSettings:
    """Replace the scope's overrides with `edit(current)` in one transaction that holds the
    row, so two people saving at once each edit what the other saved (no lost update). An
    empty result deletes the row: the built-in defaults apply. `audit(before, after)` gives
    the row to commit with the change."""
    with session_scope() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        now = utcnow()
        session.execute(insert(TrainingSettings).values(
            scope=scope, overrides={}, updated_by=by, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["scope"]))
        held = select(TrainingSettings.overrides).where(TrainingSettings.scope == scope)
        before = dict(session.scalar(held.with_for_update()) or {})
        after = dict(edit(dict(before)))
        if after:
            session.execute(update(TrainingSettings).where(TrainingSettings.scope == scope)
                            .values(overrides=after, updated_by=by, updated_at=now))
        else:
            session.execute(delete(TrainingSettings).where(TrainingSettings.scope == scope))
        row = audit(before, after) if audit is not None else None
        if row is not None:
            audit_log.insert(session, row)
    return get(scope)
