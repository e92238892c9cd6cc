"""Serving: recommend with the model in memory, filters off and on, at 1k/10k/50k/100k candidate
events (p50/p99 over 1,000 users, throughput with 1 and 2 threads) beside the floor (one numpy
matrix-vector product of the same shape + top-k by argpartition); then end to end through
beacon.recommend.recommend on the scale data in Postgres, with a breakdown of where time goes.

    benchmarks/.venv/bin/python benchmarks/serving.py            # scale data, active model (training.py)
    benchmarks/.venv/bin/python benchmarks/serving.py --small    # fewer users/requests, to debug

In memory means: the candidate arrays (CandidateArrays), the model's event matrix and each user's
context and history are built before timing, as the process caches hold them between requests;
a timed request is what recommend() does per call on top of those caches: the filter stages
(beacon.filters.apply_filters), model.score (user vector + one matrix-vector product) and the
top 10 (scoring.ranked). Candidate sets above the scale data's event count are made by
repeating its events with new ids (those are scored from their features, like new events).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

SIZES = (1_000, 10_000, 50_000, 100_000)
TOP = 10


# --------------------------------------------------------------------------- in-memory setup


def candidate_frame(base, n: int, now: datetime, rng):
    """n candidate rows: the base events (real ids) first, then copies with new ids; start
    times spread over [now - 1 day, now + 28 days] as in the serving snapshot."""
    import numpy as np
    import pandas as pd

    take = rng.permutation(len(base))[: min(n, len(base))]
    parts = [base.iloc[take]]
    extra = n - len(take)
    if extra > 0:
        parts.append(base.iloc[rng.integers(0, len(base), size=extra)])
    frame = pd.concat(parts, ignore_index=True)
    max_id = int(base["id"].max())
    ids = frame["id"].to_numpy(dtype=np.int64).copy()
    event_ids = frame["event_id"].astype(str).to_numpy(dtype=object).copy()
    if extra > 0:
        ids[len(take):] = max_id + 1 + np.arange(extra)
        event_ids[len(take):] = [f"syn-{i:07d}" for i in range(extra)]
    frame["id"] = ids
    frame["event_id"] = event_ids
    start = pd.to_datetime(frame["start_time"], utc=True)
    end = pd.to_datetime(frame["end_time"], utc=True)
    offset = rng.uniform(-1, 28, size=n) * 86400.0
    new_start = pd.Timestamp(now) + pd.to_timedelta(offset, unit="s")
    new_start = new_start.floor("15min")
    duration = (end - start)
    frame["start_time"] = new_start
    frame["end_time"] = new_start + duration.to_numpy()
    return frame.sort_values(["start_time", "id"], kind="stable").reset_index(drop=True)


def load_users(url: str, count: int, rng):
    """`count` random users with their UserRow, context and history (read before timing)."""
    from sqlalchemy import text

    from beacon.scoring import user_context as _user_context
    from data_access import catalog
    from data_access.db import get_engine

    with get_engine(url).connect() as connection:
        ids = [r[0] for r in connection.execute(text("SELECT id FROM users ORDER BY id"))]
    chosen = sorted(int(i) for i in rng.choice(ids, size=min(count, len(ids)), replace=False))
    users = []
    for start in range(0, len(chosen), 500):
        users.extend(catalog.users_by_ids(chosen[start:start + 500]))
    out = []
    for row in users:
        out.append((row, _user_context(row), catalog.user_history(row.id)))
    return out


def filter_params(now: datetime, frame, on: bool):
    from beacon.filters import FilterParams

    if not on:
        return FilterParams()
    today = now.date()
    dates = ",".join((today + timedelta(days=d)).isoformat() for d in range(0, 28, 2))
    rejects = ",".join(frame["event_id"].astype(str).iloc[[5, 50, 500 % len(frame)]])
    return FilterParams.parse(max_km=50, dates=dates, start="17:00", end="23:30",
                              reject=rejects)


class _InMemory:
    """Runs the real beacon.recommend.recommend() with nothing read per request: the user, the
    history and the model come as a `recommend.Prepared` (what the refresh worker reads ahead;
    no personal vector), and the candidate snapshot (`candidates`) is the one the process cache
    holds between requests."""

    def __init__(self, loaded, snapshot, histories: dict):
        self.loaded, self.snapshot, self.histories = loaded, snapshot, histories
        self.saved = []

    def __enter__(self):
        from beacon import recommend as R

        self._patch(R, "candidates", lambda now, stamp=None: self.snapshot)
        return self

    def prepared(self, row):
        """`row`'s request as a refresh batch hands it to recommend()."""
        from beacon import recommend as R

        return R.Prepared(user=row, history=self.histories[row.id], stamp=0, loaded=self.loaded)

    def _patch(self, owner, name, value) -> None:
        self.saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def __exit__(self, *exc):
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)
        self.saved.clear()


def _snapshot(arrays, now):
    """A candidate_snapshot.Snapshot holding `arrays`, whatever extra bookkeeping fields it has."""
    import dataclasses

    from beacon.candidate_snapshot import Snapshot

    names = {f.name for f in dataclasses.fields(Snapshot)}
    clock = time.monotonic()
    values = {"key": ("benchmark",), "since": now - timedelta(days=1), "arrays": arrays,
              "checked_at": clock, "counted_at": clock}
    return Snapshot(**{k: v for k, v in values.items() if k in names})


def in_memory(loaded, base, users, now: datetime, sizes, requests: int, rng) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from beacon import filters as F
    from beacon import recommend as R
    from beacon.candidate_snapshot import event_matrix

    model = loaded.model
    histories = {row.id: history for row, _, history in users}
    results = {}
    for n in sizes:
        frame = candidate_frame(base, n, now, rng)
        arrays_s, arrays = C.timed(lambda: F.CandidateArrays.from_frame(frame))
        snapshot = _snapshot(arrays, now)
        matrix_s, matrix = C.timed(lambda: event_matrix(snapshot, loaded))
        vectors = matrix.vectors
        user_vecs = [model.user_vector(ctx)[0] for _, ctx, _ in users]
        by_size = {"candidates": n, "dim": int(vectors.shape[1]),
                   "known_events": int(matrix.known.sum()),
                   "snapshot_build_seconds": round(arrays_s, 3),
                   "event_matrix_build_seconds": round(matrix_s, 3)}

        def floor(u):
            s = vectors @ u
            top = np.argpartition(-s, TOP - 1)[:TOP]
            return top[np.argsort(-s[top])]

        for u in user_vecs[:50]:
            floor(u)
        floor_times = []
        for i in range(requests):
            u = user_vecs[i % len(user_vecs)]
            began = time.perf_counter()
            floor(u)
            floor_times.append(time.perf_counter() - began)
        by_size["floor"] = C.summary_ms(floor_times)

        for mode in ("filters_off", "filters_on"):
            params = filter_params(now, frame, mode == "filters_on")
            stats: dict = {}
            for reasons in (False, True):
                with _InMemory(loaded, snapshot, histories) as patched:
                    # without reasons (explain_from None) it times the vectorized part alone
                    def request(k: int, params=params, patched=patched, reasons=reasons):
                        row = users[k % len(users)][0]
                        return R.recommend(patched.prepared(row), params, top=TOP, now=now,
                                           explain_from=0 if reasons else None)

                    for k in range(50):
                        request(k)
                    times, kept = [], []
                    for k in range(requests):
                        began = time.perf_counter()
                        result = request(k)
                        times.append(time.perf_counter() - began)
                        kept.append(result.stages[-1].remaining if result.stages else 0)
                    summary = C.summary_ms(times)
                    if reasons:
                        stats["with_reasons"] = summary
                        continue
                    stats.update(summary)
                    stats["candidates_passing_median"] = int(statistics.median(kept))
                    stats["ratio_p50_to_floor_p50"] = round(
                        stats["p50_ms"] / by_size["floor"]["p50_ms"], 2)
                    stats["ratio_p99_to_floor_p99"] = round(
                        stats["p99_ms"] / by_size["floor"]["p99_ms"], 2)
                    # Where the time goes: the same requests with the steps wrapped.
                    breakdown = _Breakdown()
                    breakdown.wrap(R.F, "apply_filters", "filters")
                    breakdown.wrap(R, "score", "score")
                    breakdown.wrap(R, "ranked", "top_k")
                    m = min(requests, 300)
                    try:
                        for k in range(m):
                            request(k)
                    finally:
                        breakdown.restore()
                    stats["parts_mean_ms"] = {k: round(v / m * 1000, 4)
                                              for k, v in breakdown.totals.items()}
                    # Throughput: the same requests from 1 and 2 threads.
                    total = max(requests, 1000)
                    for threads in (1, 2):
                        for blas in ("default", 1):
                            limits = threadpool_limits(limits=1, user_api="blas") if blas == 1 \
                                else contextlib.nullcontext()
                            with limits:
                                began = time.perf_counter()
                                if threads == 1:
                                    for k in range(total):
                                        request(k)
                                else:
                                    with ThreadPoolExecutor(max_workers=threads) as pool:
                                        list(pool.map(request, range(total)))
                                elapsed = time.perf_counter() - began
                            stats[f"throughput_rps_{threads}_threads_blas_{blas}"] = round(
                                total / elapsed, 1)
            by_size[mode] = stats
            C.log(f"n={n:>7,} {mode}: p50 {stats['p50_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms,"
                  f" floor p50 {by_size['floor']['p50_ms']:.3f} / p99 "
                  f"{by_size['floor']['p99_ms']:.3f} ms, x{stats['ratio_p99_to_floor_p99']} (p99)"
                  f"; with reasons p50 {stats['with_reasons']['p50_ms']:.3f} ms; 2 threads "
                  f"{stats['throughput_rps_2_threads_blas_default']} rps; parts "
                  f"{stats['parts_mean_ms']}")
        results[str(n)] = by_size
    return results


# --------------------------------------------------------------------------- end to end


class _Breakdown:
    """Wraps the functions recommend() calls, summing time per part and per request."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.originals = []

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        totals = self.totals

        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + time.perf_counter() - began

        setattr(owner, name, wrapper)
        self.originals.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self.originals):
            setattr(owner, name, original)


class _QueryTimer:
    def __init__(self, engine):
        from sqlalchemy import event

        self.engine, self.count, self.seconds, self.by_sql = engine, 0, 0.0, {}
        self._event = event
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, params, context, executemany):
        conn.info.setdefault("_bench_t", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, params, context, executemany):
        elapsed = time.perf_counter() - conn.info["_bench_t"].pop()
        self.count += 1
        self.seconds += elapsed
        key = " ".join(statement.split())[:160]
        n, s = self.by_sql.get(key, (0, 0.0))
        self.by_sql[key] = (n + 1, s + elapsed)

    def close(self) -> None:
        self._event.remove(self.engine, "before_cursor_execute", self._before)
        self._event.remove(self.engine, "after_cursor_execute", self._after)


def end_to_end(url: str, users, now_fn, requests: int, profile: bool) -> dict:
    from beacon import recommend as R
    from beacon import scoring as S
    from beacon import versions
    from data_access import catalog
    from data_access.db import get_engine

    out: dict = {}
    emails = [row.email for row, _, _ in users]
    versions.clear_cache()
    R.clear_caches()
    first_s, first = C.timed(lambda: R.recommend(emails[0], None, top=TOP))
    out["first_call_seconds"] = round(first_s, 3)
    out["source_first"] = first.source
    out["model_version"] = first.model_version
    for mode in ("filters_off", "filters_on"):
        from beacon.filters import FilterParams

        if mode == "filters_on":
            today = now_fn().date()
            dates = ",".join((today + timedelta(days=d)).isoformat() for d in range(0, 28, 2))
            params = FilterParams.parse(max_km=50, dates=dates, start="17:00", end="23:30")
        else:
            params = FilterParams()
        for email in emails[:20]:
            R.recommend(email, params, top=TOP)
        breakdown = _Breakdown()
        breakdown.wrap(R, "serving_read",
                       "stamp + active model id + user + history + personal vector read")
        breakdown.wrap(R, "candidates", "candidate snapshot check (candidates)")
        breakdown.wrap(R.F, "apply_filters", "filters (apply_filters)")
        breakdown.wrap(S, "load_active", "active model check (versions.active_global)")
        breakdown.wrap(versions, "personal_vector", "personal vector lookup")
        breakdown.wrap(R, "explained", "reasons: the model's terms, one batch (explained)")
        breakdown.wrap(R, "reason", "reasons: the sentences (reason, 10 items)")
        breakdown.wrap(R, "ranked", "top-k (ranked)")
        timer = _QueryTimer(get_engine(url))
        times, sources = [], {}
        began_all = time.perf_counter()
        try:
            for k in range(requests):
                email = emails[k % len(emails)]
                began = time.perf_counter()
                result = R.recommend(email, params, top=TOP)
                times.append(time.perf_counter() - began)
                sources[result.source] = sources.get(result.source, 0) + 1
        finally:
            breakdown.restore()
            timer.close()
        wall = time.perf_counter() - began_all
        stats = C.summary_ms(times)
        stats["sources"] = sources
        stats["breakdown_ms_per_request"] = {
            k: round(v / requests * 1000, 3)
            for k, v in sorted(breakdown.totals.items(), key=lambda kv: -kv[1])}
        stats["sql_queries_per_request"] = round(timer.count / requests, 2)
        stats["sql_ms_per_request"] = round(timer.seconds / requests * 1000, 3)
        stats["slowest_statements"] = [
            {"sql": sql, "calls": n, "ms_per_call": round(s / n * 1000, 3)}
            for sql, (n, s) in sorted(timer.by_sql.items(), key=lambda kv: -kv[1][1])[:6]]
        stats["throughput_rps_1_thread"] = round(requests / wall, 1)
        with ThreadPoolExecutor(max_workers=2) as pool:
            began = time.perf_counter()
            list(pool.map(lambda k: R.recommend(emails[k % len(emails)], params, top=TOP),
                          range(requests)))
            stats["throughput_rps_2_threads"] = round(requests / (time.perf_counter() - began), 1)
        out[mode] = stats
        C.log(f"end to end {mode}: p50 {stats['p50_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, "
              f"{stats['sql_queries_per_request']} queries/request; "
              f"{stats['breakdown_ms_per_request']}")
    if profile:
        try:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            for k in range(min(200, requests)):
                R.recommend(emails[k % len(emails)], None, top=TOP)
            profiler.stop()
            text = profiler.output_text(unicode=False, color=False, show_all=False)
            out["profile_filters_off_200_requests"] = text.splitlines()[:80]
        except ImportError:
            out["profile_filters_off_200_requests"] = ["pyinstrument not installed"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=C.PG_SCALE_URL)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--small", action="store_true", help="200 users, 1k/10k only")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.small:
        args.users, args.sizes = 200, "1000,10000"

    import numpy as np

    C.use_database(args.url)
    from beacon import versions
    from data_access import catalog

    rng = np.random.default_rng(11)
    loaded = versions.active_global()
    if loaded is None:
        raise SystemExit("no active model in the scale database: run benchmarks/training.py")
    model = loaded.model
    now = datetime.now(timezone.utc)
    base = catalog.candidate_events(datetime(1970, 1, 1, tzinfo=timezone.utc))
    users = load_users(args.url, args.users, rng)
    C.log(f"model version {loaded.version_id} (dim {model.dim}), {len(base):,} events, "
          f"{len(users)} users")
    sizes = [int(s) for s in args.sizes.split(",")]
    memory = in_memory(loaded, base, users, now, sizes, args.users, rng)
    e2e = {} if args.no_e2e else end_to_end(
        args.url, users, lambda: datetime.now(timezone.utc), args.users,
        profile=not args.no_profile)

    largest = memory.get(str(max(sizes)), {})
    on = largest.get("filters_on", {})
    headline = {
        "p99_ms_filters_on_largest": C.headline(on.get("p99_ms"), "lower", "time", goal=5,
                                                unit="ms"),
        "p50_ms_filters_on_largest": C.headline(on.get("p50_ms"), "lower", "time", unit="ms"),
        "ratio_p99_to_floor_largest": C.headline(on.get("ratio_p99_to_floor_p99"), "lower",
                                                 "time", goal=3),
        "ratio_p50_to_floor_largest": C.headline(on.get("ratio_p50_to_floor_p50"), "lower",
                                                 "time", goal=3),
        "floor_p50_ms_largest": C.headline(largest.get("floor", {}).get("p50_ms"), "lower",
                                           "time", unit="ms"),
    }
    if e2e:
        headline["e2e_p50_ms_filters_off"] = C.headline(e2e["filters_off"]["p50_ms"], "lower",
                                                        "time", goal=20, unit="ms")
        headline["e2e_p50_ms_filters_on"] = C.headline(e2e["filters_on"]["p50_ms"], "lower",
                                                       "time", goal=20, unit="ms")
    C.write_result("serving", {
        "database": args.url.split("@")[-1],
        "model_version": loaded.version_id,
        "model_dim": model.dim,
        "scale_events": int(len(base)),
        "users_timed": len(users),
        "top": TOP,
        "in_memory": memory,
        "end_to_end": e2e,
        "headline": headline,
    }, out=args.out or (str(C.DEBUG_RESULTS / "serving_small.json") if args.small else None))


if __name__ == "__main__":
    main()
