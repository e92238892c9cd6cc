"""What one near-real-time refresh costs the worker: CPU and wall time per refreshed user.

    python benchmarks/refresh_cost.py [--users 380] [--rounds 3]

On the load benchmark's dataset (benchmarks/api_load.py --build makes it: the `api_bench`
schema). Each round marks --users quiet users with two clicks each (through the same ingest
service the API calls), then refreshes them in this process with the worker's own loop
(`beacon.refresh.run_once`, one thread, batches of 20), timing process CPU and wall clock. The
first, small round loads the model and candidates and is not counted. Rounds use different
users (each refreshed user is left alone for the 60 s interval)."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from benchmarks import api_load  # noqa: E402


def _mark(emails: list[str], events: list[str], tag: str) -> None:
    from beacon.actions import cli_actor
    from beacon.ingest import ingest_interactions
    from data_access.ingest import IncomingInteraction

    now = datetime.now(timezone.utc)
    items = [IncomingInteraction(f"cost-{tag}-{email}-{k}", email,
                                 events[(i * 7 + k) % len(events)], "click", now)
             for i, email in enumerate(emails) for k in range(2)]
    for start in range(0, len(items), 500):
        ingest_interactions(items[start:start + 500], actor=cli_actor())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=api_load.DEFAULT_URL)
    parser.add_argument("--users", type=int, default=380, help="users refreshed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()

    from sqlalchemy import text

    from beacon.refresh import run_once
    from data_access.db import get_engine

    C.use_database(api_load.schema_url(args.url))
    with get_engine().connect() as connection:
        events = [row[0] for row in connection.execute(text(
            "SELECT event_id FROM events WHERE start_time > now() ORDER BY id LIMIT 500"))]
    quiet = api_load.quiet_users(20 + args.users * args.rounds)
    run, interval = uuid.uuid4().hex[:8], timedelta(seconds=60)
    _mark(quiet[:20], events, run)
    run_once("refresh-cost", interval, limit=20, threads=1)  # loads the model and candidates
    rounds = []
    for k in range(args.rounds):
        emails = quiet[20 + k * args.users:20 + (k + 1) * args.users]
        _mark(emails, events, f"{run}-{k}")
        cpu, wall = time.process_time(), time.perf_counter()
        done = run_once("refresh-cost", interval, limit=10 * args.users, threads=1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rounds.append({"users": len(done), "folded_in": sum(d.folded_in for d in done),
                       "cpu_ms_per_user": round(cpu * 1000 / max(1, len(done)), 2),
                       "wall_ms_per_user": round(wall * 1000 / max(1, len(done)), 2)})
        C.log(f"round {k + 1}: {rounds[-1]}")
    median_cpu = statistics.median(r["cpu_ms_per_user"] for r in rounds)
    C.write_result("refresh_cost", {
        "rounds": rounds,
        "cpu_ms_per_user_median": median_cpu,
        "wall_ms_per_user_median": statistics.median(r["wall_ms_per_user"] for r in rounds),
        "headline": {"refresh_cpu_ms_per_user": C.headline(median_cpu, "lower", "time",
                                                           unit="ms")},
    }, out=args.out)


if __name__ == "__main__":
    main()
