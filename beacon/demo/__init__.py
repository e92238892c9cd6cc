"""The synthetic event platform behind `python -m beacon demo-data`.

Users live in six real cities (six timezones) and state a few interest tags; organizers tied to a
city and a handful of tags publish events; interactions over the last `days` days come from a
hidden ground truth that the engine has to discover: per-user tag affinities (mostly the stated
interests, plus some unstated ones), distance decay from home, a preferred time of day, organizer
loyalty and a per-event appeal (a few hits). Feed sessions log impressions (model_version
-1..-3 over time: the demo's own history, never a real version's id; strategy "beacon" or "popularity" per user, position 1..10) and clicks with position
bias; browse sessions find events by taste alone, which is what lands registrations on new,
not-yet-touched events.

Everything is drawn from numpy Generators seeded from (seed, stage[, chunk]) and anchored at
`now`, so the same arguments give the same rows. Users are simulated in fixed chunks and their
interactions streamed to the database: memory grows with users and events, never with
interactions.

The parts: cities (the fixed world and its constants), platform (users, organizers, events),
simulate (the interactions) and write (the rows, through the bulk writer); the service is here.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from beacon.actions import Actor, audit_row, state_changing
from beacon.demo.cities import CITIES, DEMO_VERSION_TAG, City
from beacon.demo.platform import Events, Platform, Users, build_platform, dst_change_days
from beacon.demo.simulate import Row, Simulator
from beacon.demo.write import Progress, write_events, write_interactions, write_users
from beacon.errors import BeaconError

__all__ = [
    "CITIES", "DEMO_VERSION_TAG", "City", "DemoSummary", "Events", "Platform", "Progress", "Row",
    "Users", "build_platform", "dst_change_days", "iter_interactions", "load_demo_data",
    "parse_now",
]

LIMITS = {"users": (1, 1_000_000), "events": (1, 500_000), "days": (1, 3_650)}


@dataclass(frozen=True)
class DemoSummary:
    users: int
    events: int
    organizers: int
    interactions: int
    interactions_by_type: dict[str, int]
    upcoming_events: int
    events_without_end: int
    events_across_midnight: int
    events_on_dst_days: int
    dst_days: list[str]
    seed: int
    days: int
    now: datetime
    replaced: dict[str, int] | None
    seconds: float
    interactions_per_second: float
    cities: list[str] = field(default_factory=lambda: [c.name for c in CITIES])


# ---------------------------------------------------------------------------------------------
# The service


@state_changing("load_demo_data", needs="administer")
def load_demo_data(
    users: int = 1000,
    events: int = 500,
    days: int = 60,
    seed: int = 42,
    now: datetime | str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    url: str | None = None,
    *,
    actor: Actor,
) -> DemoSummary:
    """Generate the demo platform and write it in one transaction; refuse a non-empty database
    unless `replace` (then wipe users, events, interactions and all engine state first)."""
    from data_access.bulk import bulk_writer

    _validate(users=users, events=events, days=days, seed=seed)
    anchor = parse_now(now)
    started = time.perf_counter()
    report = progress or (lambda done, total, stage: None)
    with bulk_writer(url, audit=audit_row()) as writer:
        existing = writer.platform_counts()
        if (existing["users"] or existing["events"]) and not replace:
            raise BeaconError(
                f"the database already holds {existing['users']} users and "
                f"{existing['events']} events; pass --replace to wipe them and load demo data"
            )
        replaced = None
        if replace:  # even with no users: stale models and runs belong to the old data
            report(0, 1, "wiping existing data")
            writer.wipe_platform()
            replaced = existing
            report(1, 1, "wiping existing data")
        platform = build_platform(users, events, days, seed, anchor)
        write_users(writer, platform, report)
        write_events(writer, platform, report)
        by_type = write_interactions(writer, platform, report)
    seconds = time.perf_counter() - started
    report(0, 1, "metrics rollup")
    from beacon.metrics import refresh_after_load
    refresh_after_load(url)
    report(1, 1, "metrics rollup")
    total = sum(by_type.values())
    ev = platform.events
    return DemoSummary(
        users=users,
        events=events,
        organizers=len(platform.organizers),
        interactions=total,
        interactions_by_type=dict(sorted(by_type.items())),
        upcoming_events=int((ev.start_ms > platform.now_ms).sum()),
        events_without_end=int((ev.end_ms < 0).sum()),
        events_across_midnight=int(ev.across_midnight.sum()),
        events_on_dst_days=int(ev.on_dst_day.sum()),
        dst_days=[f"{city} {day.isoformat()}" for city, day in platform.dst_days],
        seed=seed,
        days=days,
        now=anchor,
        replaced=replaced,
        seconds=round(seconds, 2),
        interactions_per_second=round(total / seconds, 1) if seconds > 0 else 0.0,
    )


def parse_now(value: datetime | str | None) -> datetime:
    """The anchor: an aware datetime or ISO 8601 text with an offset; None = this hour (UTC)."""
    if value is None:
        return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BeaconError(
                f"--now: {value!r} is not an ISO 8601 time (e.g. 2026-11-23T12:00:00+00:00)"
            ) from None
    if value.tzinfo is None:
        raise BeaconError(f"--now: {value.isoformat()} has no UTC offset (add +00:00 or Z)")
    return value.astimezone(timezone.utc)


def _validate(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BeaconError(f"--{name} must be a whole number, got {value!r}")
        if name == "seed":
            if not 0 <= value < 2**63:
                raise BeaconError(f"--seed must be between 0 and 2**63-1, got {value}")
            continue
        low, high = LIMITS[name]
        if not low <= value <= high:
            raise BeaconError(f"--{name} must be between {low:,} and {high:,}, got {value:,}")


def iter_interactions(users: int, events: int, days: int, seed: int,
                      now: datetime) -> Iterator[Row]:
    """The interaction rows with user/event *indices* (1-based) instead of database ids,
    without touching a database: for analysis and tests of the generator itself."""
    platform = build_platform(users, events, days, seed, parse_now(now))
    simulator = Simulator(platform, list(range(1, users + 1)), list(range(1, events + 1)))
    for _, chunk in simulator.chunks():
        yield from chunk
