"""Scale data: the demo generator at 100k users / 50k events (half upcoming) / ~5M interactions,
loaded into SQLite and into Postgres. Measures load time, database size and the loader's peak
memory. The databases it leaves behind (benchmarks/data/scale.sqlite3 and the Postgres database
`bench`) are the scale dataset the other benchmarks read.

    benchmarks/.venv/bin/python benchmarks/scale_data.py                 # both, full size
    benchmarks/.venv/bin/python benchmarks/scale_data.py --target postgres
    benchmarks/.venv/bin/python benchmarks/scale_data.py --small         # 2k users, to debug

Each load runs in a fresh child process (so its peak RSS is the loader's alone): schema to head,
then beacon.demo.load_demo_data into an empty database, in one transaction as the CLI does.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from beacon.actions import cli_actor  # noqa: E402


def _child(url: str, users: int, events: int, days: int, seed: int) -> None:
    """Runs in the child: fresh schema, load, report JSON on stdout."""
    import resource

    C.use_database(url)
    from data_access import migrate

    began = time.perf_counter()
    migrate.upgrade(url)
    schema_s = time.perf_counter() - began

    from beacon.demo import load_demo_data

    last = {"stage": None, "t": time.perf_counter()}

    def progress(done: int, total: int, stage: str) -> None:
        now = time.perf_counter()
        if stage != last["stage"] or now - last["t"] > 30 or done == total:
            C.log(f"  {stage}: {done:,}/{total:,}")
            last["stage"], last["t"] = stage, now

    rss_before = C.rss_mib()
    began = time.perf_counter()
    summary = load_demo_data(users=users, events=events, days=days, seed=seed, progress=progress,
                             actor=cli_actor(), url=url)
    load_s = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "schema_seconds": round(schema_s, 3),
        "load_seconds": round(load_s, 2),
        "peak_rss_mib": round(C.peak_rss_mib(), 1),
        "rss_before_load_mib": round(rss_before, 1),
        "user_cpu_seconds": round(usage.ru_utime, 1),
        "system_cpu_seconds": round(usage.ru_stime, 1),
        "summary": {
            "users": summary.users, "events": summary.events,
            "interactions": summary.interactions,
            "interactions_by_type": summary.interactions_by_type,
            "upcoming_events": summary.upcoming_events, "organizers": summary.organizers,
            "now": summary.now.isoformat(), "interactions_per_second":
                round(summary.interactions / load_s, 1),
        },
    }))


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _reset_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _postgres_sizes(url: str) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        total = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
        rows = connection.execute(text(
            "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
            "pg_indexes_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC")).all()
    engine.dispose()
    return {
        "database_bytes": int(total),
        "tables": {name: {"total_bytes": int(t), "heap_bytes": int(h), "index_bytes": int(i)}
                   for name, t, h, i in rows},
    }


def _sqlite_sizes(path: Path) -> dict:
    import sqlite3

    connection = sqlite3.connect(str(path))
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tables = {}
        try:
            for name, size in connection.execute(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"):
                tables[name] = int(size)
        except sqlite3.DatabaseError:
            tables = {}
    finally:
        connection.close()
    files = {p.name: p.stat().st_size for p in path.parent.glob(path.name + "*")}
    return {"database_bytes": int(path.stat().st_size), "files": files, "objects": tables}


def run_load(target: str, params: dict) -> dict:
    if target == "postgres":
        url = C.PG_SCALE_URL
        _reset_postgres(url)
    else:
        url = C.SQLITE_SCALE_URL
        C.SQLITE_SCALE_PATH.parent.mkdir(parents=True, exist_ok=True)
        _reset_sqlite(C.SQLITE_SCALE_PATH)
    C.log(f"loading {params} into {target}")
    import os

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", url, *(str(params[k]) for k in
                                                       ("users", "events", "days", "seed"))],
        stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"loader child failed with exit status {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_seconds"] = round(wall, 2)
    result["command"] = C.command_line()
    result["load_average_at_start"] = load_at_start
    if target == "postgres":
        result["size"] = _postgres_sizes(url)
        result["postgres_version"] = C.postgres_version(url)
    else:
        result["size"] = _sqlite_sizes(C.SQLITE_SCALE_PATH)
    result["size_mib"] = round(result["size"]["database_bytes"] / 2**20, 1)
    C.log(f"{target}: {result['summary']['interactions']:,} interactions in "
          f"{result['load_seconds']} s, {result['size_mib']} MiB, peak RSS "
          f"{result['peak_rss_mib']} MiB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("both", "sqlite", "postgres"), default="both")
    parser.add_argument("--small", action="store_true", help="2k users / 1k events, to debug")
    parser.add_argument("--out", help="results file (default benchmarks/results/scale_data.json)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, users, events, days, seed = args.child
        _child(url, int(users), int(events), int(days), int(seed))
        return
    params = dict(C.SMALL if args.small else C.SCALE)
    targets = ("postgres", "sqlite") if args.target == "both" else (args.target,)
    if args.out:
        out_path = Path(args.out)
    else:
        out_path = C.DEBUG_RESULTS / "scale_data_small.json" if args.small else \
            C.RESULTS / "scale_data.json"
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    loads = dict(previous.get("loads", {}))
    for target in targets:
        loads[target] = run_load(target, params)
    headline = {}
    for target, result in loads.items():
        headline[f"{target}_load_seconds"] = C.headline(result["load_seconds"], "lower", "time",
                                                        unit="s")
        headline[f"{target}_size_mib"] = C.headline(result["size_mib"], "lower", "size",
                                                    unit="MiB")
        headline[f"{target}_peak_rss_mib"] = C.headline(result["peak_rss_mib"], "lower", "size",
                                                        unit="MiB")
    C.write_result("scale_data", {"params": params, "loads": loads, "headline": headline},
                   out=str(out_path))


if __name__ == "__main__":
    main()
