"""Serving cost of each strategy end to end through beacon.recommend.recommend on demo data in a
fresh SQLite file: the first request (candidate snapshot + the content strategy's TF-IDF fit)
and warm requests (p50 / p99 over users), for "popularity" and "content" (no model needed).

    nice -n 10 .venv/bin/python benchmarks/strategies.py --events 50000 --users 2000
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="beacon-strategies-")
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    from beacon import recommend as R
    from beacon.demo import load_demo_data
    from data_access import catalog, migrate

    migrate.upgrade(os.environ["DATABASE_URL"])
    began = time.perf_counter()
    load_demo_data(users=args.users, events=args.events, days=args.days, seed=7)
    print(f"demo data: {args.users} users, {args.events} events in "
          f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
    emails = [row.email for row in catalog.users_by_ids(
        [user_id for user_id, _ in catalog.all_user_ids(after_id=0, limit=args.requests)])]
    results: dict = {"users": args.users, "events": args.events}
    for strategy in ("popularity", "content"):
        R.clear_caches()
        began = time.perf_counter()
        first = R.recommend(emails[0], top=10, strategy=strategy)
        first_s = time.perf_counter() - began
        timings = []
        for email in emails:
            began = time.perf_counter()
            R.recommend(email, top=10, strategy=strategy)
            timings.append(time.perf_counter() - began)
        results[strategy] = {
            "candidates": first.stages[0].remaining,
            "first_request_s": round(first_s, 3),
            "p50_ms": round(1000 * statistics.median(timings), 2),
            "p99_ms": round(1000 * _percentile(timings, 0.99), 2),
            "requests": len(timings),
        }
        print(strategy, results[strategy], file=sys.stderr)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
