"""Stats for the HTTP API: one user's numbers, and the platform's (the Metrics page's
service, so the numbers agree with the console)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from beacon.errors import BeaconError, UnknownUser
from beacon.metrics import frame_records, online_metrics, rate_with_interval
from data_access import api_stats
from data_access.catalog import user_by_email

MAX_DAYS = 366


def _since(days: int, now: datetime | None) -> datetime:
    if not 1 <= days <= MAX_DAYS:
        raise BeaconError(f"days must be between 1 and {MAX_DAYS}, got {days}")
    return (now or datetime.now(timezone.utc)) - timedelta(days=days)


def user_stats(email: str, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    since = _since(days, now)
    user = user_by_email(email)
    if user is None:
        raise UnknownUser(email)
    counts = api_stats.user_counts(user.id, since)
    by_type = counts["by_type"]
    impressions, clicks = by_type.get("impression", 0), by_type.get("click", 0)
    registrations = by_type.get("register", 0)
    return {
        "email": user.email,
        "days": days,
        "recommendation_requests": counts["requests"],
        "recommendations_served": counts["items_served"],
        "impressions": impressions,
        "clicks": clicks,
        "registrations": registrations,
        "ctr": rate_with_interval(clicks, impressions)["rate"],
        "interactions_by_type": by_type,
        "top_categories": counts["top_categories"],
    }


def global_stats(days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    since = _since(days, now)
    metrics = online_metrics(days=days, now=now)
    totals = metrics.totals
    keep = ("impressions", "clicks", "registrations", "ctr", "conversion", "click_conversion")
    return {
        "days": days,
        "start": metrics.start.isoformat(),
        "end": metrics.end.isoformat(),
        "totals": {k: totals.get(k) for k in keep},
        "by_strategy": _rows(frame_records(metrics.by_strategy), "strategy"),
        "per_day": _rows(frame_records(metrics.by_day), "day"),
        "popular_events": api_stats.popular_events(since, ("register",)),
    }


def _rows(records: list[dict], key: str) -> list[dict]:
    keep = (key, "impressions", "clicks", "registrations", "ctr", "conversion")
    return [{k: r.get(k) for k in keep} for r in records]
