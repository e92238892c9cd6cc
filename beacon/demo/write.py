"""Writing the platform and its simulated interactions through the bulk writer."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from beacon.demo.cities import CATEGORIES, CITIES
from beacon.demo.platform import Platform, to_datetime
from beacon.demo.simulate import Simulator

Progress = Callable[[int, int, str], None]


def _counter(report: Progress, total: int, what: str) -> Callable[[int], None]:
    """A writer's on_batch callback: reports the running count of `what` written so far."""
    done = [0]

    def tick(count: int) -> None:
        done[0] += count
        report(done[0], total, what)

    return tick


def write_users(writer, platform: Platform, report: Progress) -> None:
    users, n = platform.users, len(platform.users.emails)
    tick = _counter(report, n, "users")

    def rows():
        for i in range(n):
            created = to_datetime(users.created_ms[i])
            yield (users.emails[i], users.names[i], float(users.lat[i]), float(users.lon[i]),
                   CITIES[users.city[i]].name, created, created)

    report(0, n, "users")
    writer.insert("users", ("email", "name", "latitude", "longitude", "city", "created_at",
                            "updated_at"), rows(), on_batch=tick)
    ids = writer.id_map("users", "email")
    platform.user_db_ids = [ids[email] for email in users.emails]
    writer.insert("user_interests", ("user_id", "tag"),
                  ((platform.user_db_ids[i], tag)
                   for i in range(n) for tag in users.interests[i]))


def write_events(writer, platform: Platform, report: Progress) -> None:
    ev, n = platform.events, len(platform.events.event_ids)
    tick = _counter(report, n, "events")

    def rows():
        for i in range(n):
            city = CITIES[ev.city[i]]
            created = to_datetime(ev.created_ms[i])
            yield (
                ev.event_ids[i], ev.titles[i], CATEGORIES[ev.category[i]],
                platform.organizers[ev.organizer[i]], city.name, float(ev.lat[i]),
                float(ev.lon[i]), to_datetime(ev.start_ms[i]),
                None if ev.end_ms[i] < 0 else to_datetime(ev.end_ms[i]), city.timezone,
                float(ev.price[i]), None if ev.capacity[i] < 0 else int(ev.capacity[i]),
                created, created,
            )

    report(0, n, "events")
    writer.insert("events", ("event_id", "title", "category", "organizer", "city", "latitude",
                             "longitude", "start_time", "end_time", "timezone", "price",
                             "capacity", "created_at", "updated_at"), rows(), on_batch=tick)
    ids = writer.id_map("events", "event_id")
    platform.event_db_ids = [ids[event_id] for event_id in ev.event_ids]
    writer.insert("event_tags", ("event_id", "tag"),
                  ((platform.event_db_ids[i], tag) for i in range(n) for tag in ev.tags[i]))


def write_interactions(writer, platform: Platform, report: Progress) -> Counter[str]:
    simulator = Simulator(platform, platform.user_db_ids, platform.event_db_ids)
    n = len(platform.user_db_ids)

    def rows():
        for done, chunk in simulator.chunks():
            yield from chunk
            report(done, n, "interactions")

    report(0, n, "interactions")
    with writer.indexes_deferred("interactions"):
        writer.insert("interactions", ("user_id", "event_id", "type", "occurred_at",
                                       "model_version", "strategy", "position"), rows())
        report(0, 1, "building indexes")
    report(1, 1, "building indexes")
    writer.analyze(("users", "user_interests", "events", "event_tags", "interactions"))
    return simulator.counts
