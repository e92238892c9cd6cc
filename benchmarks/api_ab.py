"""Two `serve` configurations against each other on a machine whose speed moves: both servers
run side by side, and short closed-loop rounds alternate between them (A B, B A, ...), so a
slow minute hits both. Reports each one's median throughput and p99 and B/A per round.

    python benchmarks/api_ab.py "BEACON_API_THREADS=4" "BEACON_API_THREADS=2"
    python benchmarks/api_ab.py "BEACON_BLAS_THREADS=0" "BEACON_BLAS_THREADS=1" --rounds 6
    python benchmarks/api_ab.py "" "BEACON_API_THREADS=1" --b-workers 3   # processes too

Each side is a space-separated list of environment settings for its `serve` (empty: the
defaults). `--a-root` / `--b-root` run that side's `serve` from another checkout (a git
worktree of an older commit, say), so two versions of the code compete the same way:

    git worktree add /tmp/before HEAD~1
    python benchmarks/api_ab.py "" "" --a-root /tmp/before

On the load benchmark's dataset (benchmarks/api_load.py --build), with its client and
request."""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from benchmarks import api_load  # noqa: E402


def _serve(settings: str, url: str, workers: int,
           root: Path = C.ROOT) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ)
    env.update(dict(pair.split("=", 1) for pair in settings.split()))
    port = api_load.free_port()
    log = open(C.DATA / "logs" / f"api_ab_{port}.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "beacon", "serve", "--port", str(port), "--workers", str(workers),
         "--no-access-log", "--no-refresh-worker", "--log-level", "warning"],
        cwd=root, env={**env, "DATABASE_URL": url, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    return process, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="settings of side A, e.g. 'BEACON_API_THREADS=4'")
    parser.add_argument("b", help="settings of side B")
    parser.add_argument("--url", default=api_load.DEFAULT_URL)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes of each side")
    parser.add_argument("--a-workers", type=int, help="side A's processes (default --workers)")
    parser.add_argument("--b-workers", type=int, help="side B's processes (default --workers)")
    parser.add_argument("--a-root", type=Path, default=C.ROOT, help="checkout side A runs")
    parser.add_argument("--b-root", type=Path, default=C.ROOT, help="checkout side B runs")
    parser.add_argument("--out")
    args = parser.parse_args()

    from beacon.actions import cli_actor
    from beacon.api_keys import create_key

    url = api_load.schema_url(args.url)
    C.use_database(url)
    (C.DATA / "logs").mkdir(parents=True, exist_ok=True)
    emails = api_load.sample_users(2000)
    key = create_key(f"ab-{int(time.time())}", "recommend", actor=cli_actor()).secret
    workers = {"A": args.a_workers or args.workers, "B": args.b_workers or args.workers}
    sides = {"A": (args.a, *_serve(args.a, url, workers["A"], args.a_root.resolve())),
             "B": (args.b, *_serve(args.b, url, workers["B"], args.b_root.resolve()))}
    results: dict[str, list[dict]] = {"A": [], "B": []}
    try:
        for _, process, base in sides.values():
            api_load.wait_ready(base, process)
            asyncio.run(api_load._warm_up(base, key, emails))
        for k in range(args.rounds):
            for name in ("A", "B") if k % 2 == 0 else ("B", "A"):
                results[name].append(asyncio.run(api_load._load(
                    sides[name][2], key, emails, args.clients, args.seconds)))
    finally:
        for _, process, _ in sides.values():
            api_load.stop(process)
    roots = {"A": str(args.a_root.resolve()), "B": str(args.b_root.resolve())}
    summary = {name: {"settings": sides[name][0], "workers": workers[name], "root": roots[name],
                      **C.git_state(Path(roots[name])),
                      "throughput_rps_median": statistics.median(
                          r["throughput_rps"] for r in runs),
                      "p99_ms_median": statistics.median(r["p99_ms"] for r in runs),
                      "errors": sum(r["errors"] for r in runs),
                      "rounds": [{k: r[k] for k in ("throughput_rps", "p50_ms", "p99_ms")}
                                 for r in runs]}
               for name, runs in results.items()}
    ratios = [b["throughput_rps"] / a["throughput_rps"]
              for a, b in zip(results["A"], results["B"])]
    summary["b_over_a_throughput_median"] = round(statistics.median(ratios), 3)
    summary["b_over_a_p99_median"] = round(statistics.median(
        b["p99_ms"] / a["p99_ms"] for a, b in zip(results["A"], results["B"])), 3)
    C.log(f"A {summary['A']['throughput_rps_median']}/s p99 {summary['A']['p99_ms_median']} ms; "
          f"B {summary['B']['throughput_rps_median']}/s p99 {summary['B']['p99_ms_median']} ms; "
          f"B/A {summary['b_over_a_throughput_median']}")
    C.write_result("api_ab", summary, out=args.out)


if __name__ == "__main__":
    main()
