"""Refresh of the user_recommendations cache: every user's top N through recommend(), the
same code path as the CLI and the console, written in batches, each batch replacing its users'
rows atomically (delete + insert in one transaction)."""
from __future__ import annotations

import time as _time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from beacon.actions import Actor, state_changing
from beacon.errors import UnknownUser
from beacon.filters import FilterParams
from data_access import catalog
from data_access import recommendations as store

BATCH_SIZE = 200


@dataclass
class RefreshSummary:
    users: int
    rows: int
    sources: dict[str, int]  # users per fallback level
    model_versions: list[int]
    generated_at: datetime
    seconds: float
    top: int
    failed: dict[str, str] = field(default_factory=dict)  # email -> error
    strategy: str = "beacon"

    def to_json(self) -> dict:
        return {
            "users": self.users,
            "rows": self.rows,
            "sources": self.sources,
            "model_versions": self.model_versions,
            "generated_at": self.generated_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "top": self.top,
            "strategy": self.strategy,
            "failed": self.failed,
        }


@state_changing("refresh_recommendations", needs="operate")
def refresh_recommendations(
    top: int = 10,
    user: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    strategy: str = "beacon",
    *,
    actor: Actor,
) -> RefreshSummary:
    """Recompute and store the top `top` for one user (email) or for all users, scored by
    `strategy` (each row's strategy column says which level or strategy produced it).
    `progress(done, total)` is called once before the first batch (done 0: the total is known,
    and a progress display starts its clock) and after each batch."""
    from beacon.recommend import check_strategy, recommend

    strategy = check_strategy(strategy)  # before anything is read or written
    started = _time.perf_counter()
    now = now or datetime.now(timezone.utc)
    params = FilterParams()
    sources: Counter[str] = Counter()
    versions: set[int] = set()
    failed: dict[str, str] = {}
    users_done = rows_written = 0

    if user is not None:
        row = catalog.user_by_email(user)
        if row is None:
            raise UnknownUser(user)
        batches = iter([[row]])
        total = 1
    else:
        total = catalog.count_users()
        batches = _all_users(batch_size)

    if progress is not None:
        progress(0, total)
    for batch in batches:
        rows_by_user: dict[int, list[dict]] = {}
        for row in batch:
            try:
                result = recommend(row, params, top=top, now=now, strategy=strategy)
            except Exception as error:  # noqa: BLE001 - one bad user must not stop the refresh
                failed[row.email] = f"{type(error).__name__}: {error}"
                continue
            sources[result.source] += 1
            if result.model_version is not None:
                versions.add(int(result.model_version))
            rows_by_user[row.id] = cached_rows(result)
        rows_written += store.replace_recommendations(rows_by_user, generated_at=now)
        users_done += len(batch)
        if progress is not None:
            progress(users_done, total)

    return RefreshSummary(
        users=users_done - len(failed),
        rows=rows_written,
        sources=dict(sources),
        model_versions=sorted(versions),
        generated_at=now,
        seconds=_time.perf_counter() - started,
        top=top,
        failed=failed,
        strategy=strategy,
    )


def cached_rows(result) -> list[dict]:
    """A RecommendationResult as the cache table's rows (each says which level produced it)."""
    return [
        {
            "rank": item.rank,
            "event_pk": item.event_pk,
            "score": item.score,
            "model_version": result.model_version,
            "strategy": item.source,
            "reason": item.reason,
        }
        for item in result.items
    ]


def _all_users(batch_size: int):
    after = 0
    while True:
        page = catalog.all_user_ids(after_id=after, limit=batch_size)
        if not page:
            return
        after = page[-1][0]
        yield catalog.users_by_ids([user_id for user_id, _ in page])
