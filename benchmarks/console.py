"""Console: server-side render time of each page (AppTest, from dashboard.py + switch_page) on the
scale data in Postgres, with every SQL statement timed so the slowest query of each page is named.

    benchmarks/.venv/bin/python benchmarks/console.py            # scale data in Postgres
    benchmarks/.venv/bin/python benchmarks/console.py --url sqlite:///benchmarks/data/scale.sqlite3

Per page: "cold" = st.cache_data cleared, then switch_page + run (what the first operator to open
the page after the cache ttl waits for); "warm" = the same page run again right after (the
st.cache_data hits). The very first run of the app (imports, schema check, model load) is
reported apart. The user pages (Users, Recommendations, Debug filter) show one of the most active
users of the scale data.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

PAGES = [
    ("pages/overview.py", "Overview"),
    ("pages/users.py", "Users"),
    ("pages/recommendations.py", "Recommendations"),
    ("pages/debug_filter.py", "Debug filter"),
    ("pages/training.py", "Training"),
    ("pages/models.py", "Models"),
    ("pages/metrics.py", "Metrics"),
]


def _benchmark_operator():
    """An admin operator for the benchmark session (created when missing)."""
    from beacon import operators
    from beacon.actions import Actor, cli_actor

    email = "benchmark@example.org"
    if operators.get_operator(email) is None:
        operators.add_operator(email, role="admin", actor=cli_actor())
    return Actor(email, kind="operator", role="admin")


class QueryLog:
    def __init__(self, engine):
        from sqlalchemy import event

        self.engine, self.event = engine, event
        self.entries: list[tuple[str, float]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, params, context, executemany):
        conn.info.setdefault("_bench_t", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, params, context, executemany):
        elapsed = time.perf_counter() - conn.info["_bench_t"].pop()
        self.entries.append((" ".join(statement.split()), elapsed))

    def take(self) -> list[tuple[str, float]]:
        entries, self.entries = self.entries, []
        return entries

    def close(self) -> None:
        self.event.remove(self.engine, "before_cursor_execute", self._before)
        self.event.remove(self.engine, "after_cursor_execute", self._after)


def _summary(entries: list[tuple[str, float]]) -> dict:
    by_sql: dict[str, list[float]] = {}
    for sql, seconds in entries:
        by_sql.setdefault(sql, []).append(seconds)
    ranked = sorted(by_sql.items(), key=lambda kv: -max(kv[1]))
    return {
        "queries": len(entries),
        "sql_seconds": round(sum(s for _, s in entries), 4),
        "slowest": [{"sql": sql[:600], "calls": len(times), "max_ms": round(max(times) * 1000, 2),
                     "total_ms": round(sum(times) * 1000, 2)} for sql, times in ranked[:3]],
    }


def _active_user(url: str) -> str:
    from sqlalchemy import text

    from data_access.db import get_engine

    with get_engine(url).connect() as connection:
        return connection.execute(text(
            "SELECT u.email FROM users u JOIN (SELECT user_id, count(*) AS n FROM interactions "
            "WHERE type = 'register' GROUP BY user_id ORDER BY n DESC, user_id LIMIT 1) t "
            "ON t.user_id = u.id")).scalar()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=C.PG_SCALE_URL)
    parser.add_argument("--repeat", type=int, default=3, help="cold runs per page")
    parser.add_argument("--out")
    args = parser.parse_args()
    C.use_database(args.url)

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from data_access.db import get_engine

    email = _active_user(args.url)
    C.log(f"user for the user pages: {email}")
    queries = QueryLog(get_engine(args.url))
    st.cache_data.clear()
    at = AppTest.from_file(str(C.ROOT / "dashboard.py"), default_timeout=600)
    at.session_state["beacon_selected_user"] = email
    at.session_state["beacon_actor"] = _benchmark_operator()  # signed in, as the form leaves it
    first_s, _ = C.timed(at.run)
    first_queries = _summary(queries.take())
    C.log(f"first run (imports, schema check, Overview): {first_s:.2f} s")
    pages = {}
    for path, title in PAGES:
        cold, warm, exceptions = [], [], []
        cold_queries = None
        for rep in range(args.repeat):
            st.cache_data.clear()
            queries.take()
            at.switch_page(path)
            seconds, _ = C.timed(at.run)
            cold.append(seconds)
            entries = queries.take()
            if cold_queries is None or seconds >= max(cold):
                cold_queries = _summary(entries)
            exceptions += [str(e.value)[:300] for e in at.exception]
            seconds, _ = C.timed(at.run)
            warm.append(seconds)
            queries.take()
        pages[title] = {
            "path": path,
            "cold_seconds_median": round(statistics.median(cold), 3),
            "cold_seconds": [round(s, 3) for s in cold],
            "warm_seconds_median": round(statistics.median(warm), 3),
            "queries_cold": cold_queries,
            "exceptions": exceptions,
            "elements": {"errors": [str(e.value)[:200] for e in at.error],
                         "warnings": [str(e.value)[:200] for e in at.warning]},
        }
        slow = (cold_queries or {}).get("slowest") or [{}]
        C.log(f"{title}: cold {statistics.median(cold):.3f} s, warm "
              f"{statistics.median(warm):.3f} s, {cold_queries['queries']} queries, slowest "
              f"{slow[0].get('max_ms')} ms{' EXCEPTION' if exceptions else ''}")
    queries.close()
    slowest_page = max(pages, key=lambda t: pages[t]["cold_seconds_median"])
    all_slow = [(t, q) for t, p in pages.items() for q in (p["queries_cold"] or {}).get("slowest", [])]
    slowest_query = max(all_slow, key=lambda tq: tq[1]["max_ms"]) if all_slow else None
    headline = {
        f"cold_seconds_{t.lower().replace(' ', '_')}": C.headline(
            p["cold_seconds_median"], "lower", "time", goal=1.0, unit="s")
        for t, p in pages.items()
    }
    C.write_result("console" if args.url == C.PG_SCALE_URL else "console_other", {
        "database": args.url.split("@")[-1],
        "user": email,
        "first_run_seconds": round(first_s, 3),
        "first_run_queries": first_queries,
        "pages": pages,
        "slowest_page": slowest_page,
        "slowest_query": {"page": slowest_query[0], **slowest_query[1]} if slowest_query else None,
        "headline": headline,
    }, out=args.out)


if __name__ == "__main__":
    main()
