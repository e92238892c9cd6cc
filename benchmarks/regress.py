"""Regression check: run benchmarks afresh and compare their headline numbers with the stored JSON.

    benchmarks/.venv/bin/python benchmarks/regress.py                      # every stored result
    benchmarks/.venv/bin/python benchmarks/regress.py serving model_io     # some of them
    benchmarks/.venv/bin/python benchmarks/regress.py --fresh-dir DIR      # compare results already run into DIR
    benchmarks/.venv/bin/python benchmarks/regress.py --time-tolerance 0.5 --quality-tolerance 0.02

For each benchmark, the stored benchmarks/results/<name>.json holds the command that produced it
and a "headline" block: value, better (lower/higher), kind (time/size/quality). The fresh run
(the same command with --out pointing into a temporary directory) passes when every headline is
within tolerance: times and sizes may be worse by at most --time-tolerance (relative, default
50%: the machines are shared and noisy), quality metrics by at most --quality-tolerance
(absolute, default 0.02). Exit status 0 when all pass, 1 otherwise. Runnable by hand; not CI.
scale_data is not rerun unless named (it rebuilds the scale databases the others read).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

ORDER = ("scale_data", "training", "model_io", "serving", "console", "quality")


def compare(stored: dict, fresh: dict, time_tol: float, quality_tol: float) -> list[dict]:
    rows = []
    for key, old in (stored.get("headline") or {}).items():
        new = (fresh.get("headline") or {}).get(key)
        row = {"metric": key, "stored": old.get("value"),
               "fresh": None if new is None else new.get("value"), "kind": old.get("kind")}
        if row["stored"] is None or row["fresh"] is None:
            row["status"] = "missing"
            rows.append(row)
            continue
        a, b = float(row["stored"]), float(row["fresh"])
        if old.get("kind") == "quality":
            worse = (a - b) if old.get("better") == "higher" else (b - a)
            ok = worse <= quality_tol
            row["change"] = round(b - a, 5)
        else:
            ratio = b / a if a else (1.0 if b == 0 else float("inf"))
            ok = ratio <= 1 + time_tol if old.get("better") == "lower" else \
                ratio >= 1 - time_tol
            row["change"] = f"x{ratio:.2f}"
        row["status"] = "ok" if ok else "REGRESSED"
        rows.append(row)
    return rows


def rerun(stored: dict, out: Path) -> int:
    argv = shlex.split(stored["command"])
    argv[0] = sys.executable
    argv[1] = str(C.ROOT / argv[1])
    if "--out" in argv:
        i = argv.index("--out")
        del argv[i:i + 2]
    argv += ["--out", str(out)]
    C.log("running " + " ".join(argv[1:]))
    return subprocess.run(argv, cwd=str(C.ROOT)).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to check (default: {', '.join(ORDER[1:])})")
    parser.add_argument("--fresh-dir", help="compare with results already in this directory")
    parser.add_argument("--time-tolerance", type=float, default=0.5)
    parser.add_argument("--quality-tolerance", type=float, default=0.02)
    args = parser.parse_args()
    names = args.names or [n for n in ORDER[1:] if (C.RESULTS / f"{n}.json").exists()]
    failed = False
    workdir = Path(args.fresh_dir) if args.fresh_dir else Path(tempfile.mkdtemp(prefix="regress-"))
    for name in names:
        stored_path = C.RESULTS / f"{name}.json"
        if not stored_path.exists():
            print(f"{name}: no stored result at {stored_path}")
            failed = True
            continue
        stored = json.loads(stored_path.read_text())
        fresh_path = workdir / f"{name}.json"
        if not args.fresh_dir:
            code = rerun(stored, fresh_path)
            if code != 0:
                print(f"{name}: the fresh run failed with exit status {code}")
                failed = True
                continue
        if not fresh_path.exists():
            print(f"{name}: no fresh result at {fresh_path}")
            failed = True
            continue
        fresh = json.loads(fresh_path.read_text())
        rows = compare(stored, fresh, args.time_tolerance, args.quality_tolerance)
        print(f"\n{name} (stored {stored.get('finished_at')}, fresh {fresh.get('finished_at')})")
        for row in rows:
            print(f"  {row['status']:<10} {row['metric']:<40} stored {row['stored']!s:<12} "
                  f"fresh {row['fresh']!s:<12} {row.get('change', '')}")
            failed |= row["status"] != "ok"
    print("\nregressions found" if failed else "\nall within tolerance")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
