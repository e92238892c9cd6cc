"""The daily metrics rollup at scale: what a refresh costs and what the Metrics page costs with it.

    benchmarks/.venv/bin/python benchmarks/metrics_rollup.py [--url URL] [--repeat 3]

On the scale database (migrated to head first, which creates the rollup tables):
1. full rebuild: the rollup forgotten, then refresh() (what the first read after `db upgrade`,
   or an import that deleted or re-categorised many rows, costs);
2. the check when nothing changed (what every Metrics page load pays);
3. the Metrics page's service call, online_metrics() over the page's default 30 UTC days,
   through the rollup and live (the same call with the click window 1 s longer, which the
   rollup does not cover, so every number is computed from interactions as before);
4. a day of new traffic: the interactions of the last 24 h copied 24 h later (new ids, like a
   nightly import), then refresh(): the incremental cost, and the days it recomputed. The copies
   are deleted afterwards and the rollup rebuilt, leaving the database as it was.
"""
from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402


def _forget(url: str) -> None:
    from sqlalchemy import update

    from data_access.db import get_engine
    from data_access.metrics_rollup import state_table

    with get_engine(url).begin() as connection:
        connection.execute(update(state_table).values(refreshed_at=None))


def _append_a_day(url: str) -> tuple[int, int]:
    """Copy the last 24 h of interactions 24 h later; returns (first new id, rows added)."""
    from sqlalchemy import text

    from data_access.db import get_engine

    shift = "occurred_at + INTERVAL '1 day'" if "postgresql" in url else \
        "strftime('%Y-%m-%d %H:%M:%S', occurred_at, '+1 day') || substr(occurred_at, 20)"
    since = "(SELECT max(occurred_at) FROM interactions) - INTERVAL '1 day'" if "postgresql" in url \
        else "strftime('%Y-%m-%d %H:%M:%S', (SELECT max(occurred_at) FROM interactions), '-1 day')"
    columns = "user_id, event_id, type, occurred_at, model_version, strategy, position"
    with get_engine(url).begin() as connection:
        first = connection.execute(text("SELECT max(id) FROM interactions")).scalar_one() + 1
        added = connection.execute(text(
            f"INSERT INTO interactions ({columns}) SELECT user_id, event_id, type, {shift}, "
            f"model_version, strategy, position FROM interactions WHERE occurred_at > {since} "
            "ORDER BY id")).rowcount
    return first, added


def _remove_from(url: str, first_id: int) -> None:
    from sqlalchemy import text

    from data_access.db import get_engine

    with get_engine(url).begin() as connection:
        connection.execute(text("DELETE FROM interactions WHERE id >= :first"), {"first": first_id})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=C.PG_SCALE_URL)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    C.use_database(args.url)
    from beacon import console
    from beacon import metrics as online
    from data_access import metrics_rollup as rollup
    from data_access import migrate

    migrate.upgrade(args.url)
    rebuilds = []
    for _ in range(args.repeat):
        _forget(args.url)
        result = rollup.refresh(args.url)
        rebuilds.append(result.seconds)
        C.log(f"full rebuild: {result.seconds:.3f} s, {result.days} days ({result.reason})")
    check, _ = C.median_time(lambda: rollup.refresh(args.url), repeat=max(10, args.repeat), warmup=1)
    C.log(f"nothing changed: {check * 1000:.1f} ms")

    first, last = console.default_range(days=30)
    start, end = console.range_bounds(first, last)
    page, _ = C.median_time(lambda: online.online_metrics(start=start, end=end),
                            repeat=args.repeat, warmup=1)
    longer = online.CLICK_WINDOW + timedelta(seconds=1)
    page_live, _ = C.median_time(
        lambda: online.online_metrics(start=start, end=end, click_window=longer),
        repeat=args.repeat, warmup=0)
    C.log(f"online_metrics: rollup {page:.3f} s, live {page_live:.3f} s")

    first_id, added = _append_a_day(args.url)
    incremental = rollup.refresh(args.url)
    C.log(f"a day of traffic ({added} rows): {incremental.seconds:.3f} s, {incremental.days} days")
    page_after, _ = C.median_time(lambda: online.online_metrics(start=start, end=end),
                                  repeat=args.repeat, warmup=0)
    _remove_from(args.url, first_id)
    restored = rollup.refresh(args.url)
    C.log(f"copies removed, rollup {restored.status} in {restored.seconds:.1f} s")

    C.write_result("metrics_rollup" if args.url == C.PG_SCALE_URL else "metrics_rollup_other", {
        "database": args.url.split("@")[-1],
        "range": [start.isoformat(), end.isoformat()],
        "full_rebuild_seconds": [round(s, 3) for s in rebuilds],
        "nothing_changed_seconds": round(check, 4),
        "online_metrics_rollup_seconds": round(page, 3),
        "online_metrics_live_seconds": round(page_live, 3),
        "speedup": round(page_live / page, 1),
        "appended_rows": added,
        "incremental_refresh_seconds": round(incremental.seconds, 3),
        "incremental_days": incremental.days,
        "online_metrics_after_append_seconds": round(page_after, 3),
        "headline": {
            "online_metrics_rollup_seconds": C.headline(round(page, 3), "lower", "time",
                                                        goal=1.0, unit="s"),
            "full_rebuild_seconds": C.headline(round(sorted(rebuilds)[len(rebuilds) // 2], 3),
                                               "lower", "time", unit="s"),
            "incremental_refresh_seconds": C.headline(round(incremental.seconds, 3), "lower",
                                                      "time", unit="s"),
        },
    }, out=args.out)


if __name__ == "__main__":
    main()
