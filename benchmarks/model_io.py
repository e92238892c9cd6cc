"""Model loading: cold load of the active global version from the database at scale, and its size.

    benchmarks/.venv/bin/python benchmarks/model_io.py     # after training.py stored the scale model

Cold load = beacon.versions.active_global() with the process cache emptied: the active-id probe,
the serving-candidates query, the blob read and HybridModel.from_bytes. Timed in this process
(median of repeats, imports already done) and, once each, in a fresh process (imports included).
Also split into its parts: blob read, deserialization, and the serialization that training pays.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

FRESH = """
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from beacon import versions
t1 = time.perf_counter()
loaded = versions.active_global()
t2 = time.perf_counter()
print(json.dumps({{"import_seconds": t1 - t0, "load_seconds": t2 - t1,
                  "version": loaded.version_id if loaded else None}}))
"""


def measure(url: str, repeat: int) -> dict:
    C.use_database(url)
    from beacon import versions
    from beacon.model import HybridModel
    from data_access import models_store as store

    versions.clear_cache()
    loaded = versions.active_global()
    if loaded is None:
        return {"error": "no active global version (run benchmarks/training.py first)"}
    version = loaded.version_id

    def cold():
        versions.clear_cache()
        return versions.active_global()

    median, times = C.median_time(cold, repeat=repeat, warmup=1)
    blob_median, _ = C.median_time(lambda: store.get_blob(version), repeat=repeat, warmup=1)
    blob = store.get_blob(version)
    parse_median, _ = C.median_time(lambda: HybridModel.from_bytes(blob), repeat=repeat, warmup=1)
    id_median, _ = C.median_time(store.active_global_id, repeat=repeat, warmup=1)
    warm_median, _ = C.median_time(versions.active_global, repeat=repeat * 4, warmup=1)
    model = loaded.model
    to_bytes_median, _ = C.median_time(model.to_bytes, repeat=3, warmup=0)
    arrays = {k: int(v.nbytes) for k, v in model.weights.items()}
    fresh = []
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", FRESH.format(root=str(C.ROOT))],
                              capture_output=True, text=True, env={**_env(), "DATABASE_URL": url})
        if proc.returncode == 0:
            fresh.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = {
        "version": version,
        "blob_bytes": len(blob),
        "blob_mib": round(len(blob) / 2**20, 2),
        "weights_bytes": arrays,
        "counts": model.counts,
        "cold_load_median_seconds": round(median, 4),
        "cold_load_seconds": [round(t, 4) for t in times],
        "parts_median_seconds": {
            "active_id_probe": round(id_median, 5),
            "blob_read": round(blob_median, 4),
            "from_bytes": round(parse_median, 4),
        },
        "warm_active_global_median_seconds": round(warm_median, 5),
        "to_bytes_median_seconds": round(to_bytes_median, 4),
        "fresh_process": fresh,
        "fresh_process_load_median_seconds": round(statistics.median(
            [f["load_seconds"] for f in fresh]), 4) if fresh else None,
    }
    C.log(f"{url.split('@')[-1]}: blob {out['blob_mib']} MiB, cold load median "
          f"{median * 1000:.1f} ms (blob read {blob_median * 1000:.1f} ms, from_bytes "
          f"{parse_median * 1000:.1f} ms); fresh process {out['fresh_process_load_median_seconds']}")
    return out


def _env() -> dict:
    import os

    return dict(os.environ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--out")
    args = parser.parse_args()
    results = {"postgres": measure(C.PG_SCALE_URL, args.repeat)}
    if C.SQLITE_SCALE_PATH.exists():
        results["sqlite"] = measure(C.SQLITE_SCALE_URL, args.repeat)
    pg = results["postgres"]
    headline = {
        "cold_load_seconds_postgres": C.headline(pg.get("cold_load_median_seconds"), "lower",
                                                 "time", goal=0.2, unit="s"),
        "blob_mib": C.headline(pg.get("blob_mib"), "lower", "size", unit="MiB"),
    }
    if "sqlite" in results:
        headline["cold_load_seconds_sqlite"] = C.headline(
            results["sqlite"].get("cold_load_median_seconds"), "lower", "time", goal=0.2,
            unit="s")
    C.write_result("model_io", {"results": results, "headline": headline}, out=args.out)


if __name__ == "__main__":
    main()
