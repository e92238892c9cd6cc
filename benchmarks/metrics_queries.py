"""The Metrics page's queries at scale, with the interactions index as it is and with a covering
variant, to decide on evidence whether the schema needs it.

    benchmarks/.venv/bin/python benchmarks/metrics_queries.py                  # current index
    benchmarks/.venv/bin/python benchmarks/metrics_queries.py --index covering # the variant (changes the bench DB)
    benchmarks/.venv/bin/python benchmarks/metrics_queries.py --index current  # back to the original

Times each data_access.metrics query over the Metrics page's default range (the last 30 UTC
days), the whole online_metrics() service call, and the fingerprint aggregate that reads the
same index; on Postgres also EXPLAIN (ANALYZE, BUFFERS) of the attribution query.
"current" = ix_interactions_type_time (type, occurred_at);
"covering" = the same name on (type, occurred_at, model_version, strategy, position): the
impression rows of the attribution query become an index-only scan (SQLite and Postgres alike),
while rows of other types, whose three extra columns are NULL, stay as narrow as before.
Results are merged into benchmarks/results/metrics_queries.json under the variant's name.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

INDEX = "ix_interactions_type_time"
VARIANTS = {
    "current": ("type", "occurred_at"),
    "covering": ("type", "occurred_at", "model_version", "strategy", "position"),
}


def set_index(url: str, variant: str) -> float:
    from sqlalchemy import text

    from data_access.db import get_engine

    columns = ", ".join(VARIANTS[variant])
    engine = get_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
        seconds, _ = C.timed(lambda: connection.execute(
            text(f"CREATE INDEX {INDEX} ON interactions ({columns})")))
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE interactions"))
        else:
            connection.execute(text("ANALYZE"))
    C.log(f"{INDEX} on ({columns}) built in {seconds:.1f} s")
    return seconds


def index_size(url: str) -> int | None:
    from sqlalchemy import text

    from data_access.db import get_engine

    engine = get_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return int(connection.execute(text(f"SELECT pg_relation_size('{INDEX}')")).scalar())
        try:
            return int(connection.execute(text(
                f"SELECT SUM(pgsize) FROM dbstat WHERE name = '{INDEX}'")).scalar() or 0)
        except Exception:  # noqa: BLE001 - dbstat not compiled in
            return None


def measure(url: str, repeat: int) -> dict:
    C.use_database(url)
    from beacon import console, training
    from beacon import metrics as online
    from data_access import metrics as store
    from data_access.db import get_engine

    first, last = console.default_range(days=30)
    start, end = console.range_bounds(first, last)
    out: dict = {"range": [start.isoformat(), end.isoformat()], "queries": {}}
    for name, fn in (("counts_by_day", store.counts_by_day),
                     ("counts_by_category", store.counts_by_category),
                     ("count_totals", store.count_totals),
                     ("attributed_counts", store.attributed_counts)):
        median, times = C.median_time(lambda fn=fn: fn(start, end), repeat=repeat, warmup=1)
        out["queries"][name] = {"median_seconds": round(median, 3),
                                "seconds": [round(t, 3) for t in times]}
        C.log(f"{name}: {median:.3f} s")
    median, _ = C.median_time(lambda: online.online_metrics(start=start, end=end),
                              repeat=repeat, warmup=0)
    out["online_metrics_median_seconds"] = round(median, 3)
    median, _ = C.median_time(lambda: training.training_fingerprint(), repeat=repeat, warmup=1)
    out["fingerprint_median_seconds"] = round(median, 4)
    out["index_bytes"] = index_size(url)
    engine = get_engine(url)
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        query = store._attribution_query(start, end, store.CLICK_WINDOW,
                                         store.REGISTRATION_WINDOW, "postgresql")
        sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as connection:
            out["attribution_plan"] = [r[0] for r in connection.execute(
                text("EXPLAIN (ANALYZE, BUFFERS) " + sql))]
    C.log(f"online_metrics {out['online_metrics_median_seconds']} s, fingerprint "
          f"{out['fingerprint_median_seconds']} s, index {out['index_bytes']} bytes")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", choices=("as-is", *VARIANTS), default="as-is",
                        help="rebuild ix_interactions_type_time as this variant first")
    parser.add_argument("--targets", default="postgres,sqlite")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    urls = {"postgres": C.PG_SCALE_URL, "sqlite": C.SQLITE_SCALE_URL}
    out_path = Path(args.out) if args.out else C.RESULTS / "metrics_queries.json"
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    results = dict(previous.get("results", {}))
    for target in args.targets.split(","):
        url = urls[target]
        if target == "sqlite" and not C.SQLITE_SCALE_PATH.exists():
            continue
        build = set_index(url, args.index) if args.index != "as-is" else None
        from sqlalchemy import inspect

        from data_access.db import get_engine

        columns = next((ix["column_names"] for ix in inspect(get_engine(url)).get_indexes(
            "interactions") if ix["name"] == INDEX), None)
        variant = next((name for name, cols in VARIANTS.items() if list(cols) == columns),
                       str(columns))
        result = measure(url, args.repeat)
        result["index_columns"] = columns
        result["index_build_seconds"] = build
        result["command"] = C.command_line()
        results[f"{target}:{variant}"] = result
    headline = {}
    for key, result in results.items():
        slug = key.replace(":", "_")
        headline[f"{slug}_online_metrics_seconds"] = C.headline(
            result["online_metrics_median_seconds"], "lower", "time", unit="s")
    C.write_result("metrics_queries", {"results": results, "headline": headline},
                   out=str(out_path))


if __name__ == "__main__":
    main()
