"""Shared helpers of the benchmark scripts: machine description, timing, memory, results JSON.

Benchmarks are not tests: nothing here asserts a duration. Every script writes one JSON document
under benchmarks/results/ with the command that produced it, the machine, and a "headline" block
(the numbers regress.py compares with a fresh run).
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH = ROOT / "benchmarks"
DATA = BENCH / "data"
RESULTS = BENCH / "results"
#: results of --small / --quick runs (debugging; gitignored with the data)
DEBUG_RESULTS = DATA / "results"

#: the scale dataset (generated once by scale_data.py, used by the other benchmarks)
PG_SCALE_URL = os.environ.get(
    "BENCH_PG_URL", "postgresql+psycopg://beacon:beacon@127.0.0.1:5432/bench")
SQLITE_SCALE_PATH = DATA / "scale.sqlite3"
SQLITE_SCALE_URL = f"sqlite:///{SQLITE_SCALE_PATH}"
SCALE = dict(users=100_000, events=50_000, days=29, seed=7)
SMALL = dict(users=2_000, events=1_000, days=29, seed=7)  # --small: to write and debug scripts


def use_database(url: str) -> None:
    """Point every Beacon service in this process at `url` (they read DATABASE_URL)."""
    os.environ["DATABASE_URL"] = url


# --------------------------------------------------------------------------- the machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    cpu = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "gpu": None,
    }
    for name in ("numpy", "torch", "pandas", "sqlalchemy", "scipy", "implicit", "lightfm",
                 "streamlit"):
        module = sys.modules.get(name)
        if module is not None:
            info[f"{name}_version"] = getattr(module, "__version__", "?")
    try:
        import torch

        info["torch_version"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():  # never the case on the project's machines
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "version")}
                        for p in threadpool_info()]
    except Exception:  # noqa: BLE001
        pass
    info.update(git_state())
    return info


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """The checkout's commit and its uncommitted tracked files (empty when git cannot tell)."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--short",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except Exception:  # noqa: BLE001
        return {}
    return {"git_commit": commit,
            "git_uncommitted": [line[3:] for line in dirty if line.strip()]}


def postgres_version(url: str) -> str | None:
    try:
        from sqlalchemy import text

        from data_access.db import get_engine

        with get_engine(url).connect() as connection:
            return connection.execute(text("SHOW server_version")).scalar()
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------- timing


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 4),
        "p90_ms": round(percentile(ms, 90), 4),
        "p99_ms": round(percentile(ms, 99), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "max_ms": round(max(ms), 4),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def median_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = [timed(fn)[0] for _ in range(repeat)]
    return statistics.median(times), times


# --------------------------------------------------------------------------- memory


def rss_mib() -> float:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """Peak resident set size of this process since start or the last reset_peak_rss()."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- results


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(ROOT))
    except ValueError:
        script_text = str(script)
    return shlex.join(["benchmarks/.venv/bin/python", script_text, *sys.argv[1:]])


def write_result(name: str, payload: dict[str, Any], out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "command": command_line(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(document, indent=2, default=_default) + "\n")
    log(f"wrote {path}")
    return path


def headline(value: float | None, better: str, kind: str, goal: float | None = None,
             unit: str = "") -> dict[str, Any]:
    """A number regress.py compares: better 'lower'/'higher', kind 'time'/'size'/'quality'."""
    out: dict[str, Any] = {"value": value, "better": better, "kind": kind, "unit": unit}
    if goal is not None:
        out["goal"] = goal
        if value is not None:
            out["meets_goal"] = bool(value <= goal) if better == "lower" else bool(value >= goal)
    return out


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (datetime,)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def log(message: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)
