"""CSV import at scale: 1M interaction rows into Postgres (issue goal: well under a minute).

    benchmarks/.venv/bin/python benchmarks/import_csv.py [--interactions 1000000] [--target postgres|sqlite]

Writes three CSV files in DESIGN.md's formats under benchmarks/data/import/ (20k users, 5k
events, the interactions spread over 30 days with impressions carrying model_version, strategy
and position), then into a fresh database (Postgres: `bench_import`, dropped and created; SQLite:
a fresh file) times `python -m beacon import` in-process:
1. the first import (validation, staging, upsert; the metrics rollup refresh after the commit is
   timed separately);
2. the same files again (must change nothing: the idempotence path);
3. peak resident memory of the process.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from beacon.actions import cli_actor  # noqa: E402

FILES = C.DATA / "import"
PG_ADMIN = "postgresql+psycopg://beacon:beacon@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://beacon:beacon@127.0.0.1:5432/bench_import"
CITIES = [("New York", 40.71, -74.0), ("London", 51.5, -0.12), ("Berlin", 52.52, 13.4),
          ("Tokyo", 35.68, 139.69), ("Sydney", -33.87, 151.21)]
TYPES = ["impression"] * 12 + ["click"] * 4 + ["view", "favorite", "register", "reject"]


def write_files(users: int, events: int, interactions: int, seed: int = 11) -> dict[str, Path]:
    FILES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    now = datetime(2026, 11, 20, tzinfo=timezone.utc)
    paths = {k: FILES / f"{k}.csv" for k in ("users", "events", "interactions")}
    with paths["users"].open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["email", "name", "latitude", "longitude", "city", "interest_tags"])
        for i in range(users):
            city, lat, lon = CITIES[i % len(CITIES)]
            w.writerow([f"user{i}@example.org", f"User {i}", f"{lat + rng.normal(0, .05):.5f}",
                        f"{lon + rng.normal(0, .05):.5f}", city, "music;tech"])
    with paths["events"].open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["event_id", "title", "category", "tags", "organizer", "city", "latitude",
                    "longitude", "start_time", "end_time", "timezone", "price", "capacity"])
        for i in range(events):
            city, lat, lon = CITIES[i % len(CITIES)]
            start = now + timedelta(hours=int(rng.integers(-30 * 24, 30 * 24)))
            w.writerow([f"ev{i}", f"Event {i}", ["music", "tech", "sports"][i % 3], "live;city",
                        f"org{i % 300}", city, f"{lat:.5f}", f"{lon:.5f}", start.isoformat(),
                        (start + timedelta(hours=2)).isoformat(), "UTC", "10", "100"])
    seconds = rng.integers(0, 30 * 24 * 3600, size=interactions)
    user_ids = rng.integers(0, users, size=interactions)
    event_ids = rng.integers(0, events, size=interactions)
    kinds = rng.integers(0, len(TYPES), size=interactions)
    start = now - timedelta(days=30)
    with paths["interactions"].open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["email", "event_id", "type", "occurred_at", "model_version", "strategy",
                    "position"])
        for n in range(interactions):
            kind = TYPES[kinds[n]]
            # a distinct microsecond per row keeps (user, event, type, time) unique
            when = (start + timedelta(seconds=int(seconds[n]), microseconds=n % 1_000_000))
            extra = ["3", "beacon", str(n % 10 + 1)] if kind == "impression" else ["", "", ""]
            w.writerow([f"user{user_ids[n]}@example.org", f"ev{event_ids[n]}", kind,
                        when.isoformat(), *extra])
    return paths


def fresh_database(target: str) -> str:
    if target == "sqlite":
        path = C.DATA / "import.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS bench_import"))
        connection.execute(text("CREATE DATABASE bench_import"))
    admin.dispose()
    return PG_URL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--target", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--out")
    args = parser.parse_args()
    began = time.perf_counter()
    paths = write_files(args.users, args.events, args.interactions)
    C.log(f"files written in {time.perf_counter() - began:.1f} s")
    url = fresh_database(args.target)
    C.use_database(url)
    from beacon import importer
    from data_access import migrate

    migrate.upgrade(url)
    C.reset_peak_rss()
    wall, first = C.timed(lambda: importer.import_csv(**{k: str(p) for k, p in paths.items()}, actor=cli_actor()))
    C.log(f"first import: {first.seconds:.1f} s (+ rollup refresh: {wall - first.seconds:.1f} s)")
    again_wall, again = C.timed(lambda: importer.import_csv(**{k: str(p) for k, p in paths.items()}, actor=cli_actor()))
    C.log(f"same files again: {again.seconds:.1f} s, inserted "
          f"{again.interactions.inserted if again.interactions else None}")
    C.write_result(f"import_csv_{args.target}", {
        "rows": {"users": args.users, "events": args.events, "interactions": args.interactions},
        "database": url.split("@")[-1],
        "first_import_seconds": round(first.seconds, 2),
        "rollup_refresh_seconds": round(wall - first.seconds, 2),
        "second_import_seconds": round(again.seconds, 2),
        "second_import_inserted": again.interactions.inserted if again.interactions else None,
        "peak_rss_mib": round(C.peak_rss_mib(), 1),
        "headline": {
            "first_import_seconds": C.headline(round(first.seconds, 2), "lower", "time",
                                               goal=60.0, unit="s"),
        },
    }, out=args.out)


if __name__ == "__main__":
    main()
