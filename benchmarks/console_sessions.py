"""Console under load: N signed-in sessions at once, each working through the pages, against a
real `streamlit run dashboard.py` on Postgres.

    benchmarks/.venv/bin/python benchmarks/console_sessions.py            # 20 sessions, scale data
    benchmarks/.venv/bin/python benchmarks/console_sessions.py --small    # to debug the script

Each session is a websocket client speaking Streamlit's own protocol (what the browser sends):
it connects with a valid session cookie (a JWT signed with the console's key, as the sign-in
form leaves it), then asks for each page in turn and waits for the script run to finish. Page
time = from the request to the server's "script finished"; the browser's drawing is not in it.
An error = an exception element in a page, a run that did not finish, or a sign-in page where a
signed-in page was expected. Server memory = the resident set of the streamlit process, sampled
every half second. Nothing here asserts a number: the figures go to BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

PAGES = ["overview", "users", "recommendations", "debug_filter", "training", "models", "metrics"]
EMAIL = "benchmark-viewer@example.org"
DEFAULT_URL = ("postgresql+psycopg://beacon:beacon@127.0.0.1:5432/beacon_dev"
               "?options=-csearch_path%3Dbench_console")


def prepare(url: str, small: bool) -> str:
    """Schema, data at the benchmark scale (once), an active model, a viewer operator; returns
    a session cookie for that operator."""
    import jwt
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    C.use_database(url)
    options = make_url(url).query.get("options", "")
    if "search_path=" in options:
        schema = options.split("search_path=", 1)[1]
        admin = create_engine(make_url(url).set(query={}), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        admin.dispose()
    from beacon import operators, signin
    from beacon.actions import cli_actor
    from beacon.config import ModelConfig
    from beacon.demo import load_demo_data
    from beacon.training import train
    from beacon.versions import active_global
    from data_access import migrate
    from data_access.catalog import count_users

    migrate.upgrade(url)
    if not count_users():
        size = C.SMALL if small else C.SCALE
        C.log(f"loading demo data {size}")
        load_demo_data(**size, actor=cli_actor())
    if active_global() is None:
        C.log("training a model to serve (2 epochs)")
        train(force=True, config=ModelConfig(epochs=2, patience=0), actor=cli_actor())
    if operators.get_operator(EMAIL) is None:
        operators.add_operator(EMAIL, role="viewer", actor=cli_actor())
    payload = {"username": EMAIL, "exp_date": time.time() + 6 * 3600}
    return jwt.encode(payload, signin.cookie_key(), algorithm="HS256")


class Memory(threading.Thread):
    """Samples the resident set of a process and its children every half second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.running = pid, [], True

    def _rss(self) -> float:
        total = 0
        for pid in [self.pid] + _children(self.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def run(self) -> None:
        while self.running:
            self.samples.append(self._rss())
            time.sleep(0.5)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


async def session(number: int, base: str, cookie: str, rounds: int, times: list, errors: list,
                  think: float = 0.0):
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    host = base.split("//", 1)[1]
    async with websockets.connect(
            f"ws://{host}/_stcore/stream", subprotocols=["streamlit"], max_size=2 ** 27,
            additional_headers={"Cookie": f"beacon_session={cookie}", "Origin": base},
            open_timeout=60) as ws:
        for round_number in range(rounds):
            for page in PAGES:
                message = BackMsg()
                message.rerun_script.page_name = page
                message.rerun_script.query_string = ""
                started = time.perf_counter()
                await ws.send(message.SerializeToString())
                problem = None
                while True:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=120)
                    except asyncio.TimeoutError:
                        problem = "no 'script finished' within 120 s"
                        break
                    forward = ForwardMsg()
                    forward.ParseFromString(raw)
                    kind = forward.WhichOneof("type")
                    if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                        element = forward.delta.new_element
                        which = element.WhichOneof("type")
                        if which == "exception":
                            problem = f"exception: {element.exception.message[:200]}"
                        elif which == "text_input" and element.text_input.label == "Password":
                            problem = "the sign-in page instead of the console"
                    if kind == "script_finished" and forward.script_finished in (
                            ForwardMsg.FINISHED_SUCCESSFULLY,
                            ForwardMsg.FINISHED_WITH_COMPILE_ERROR):
                        break
                seconds = time.perf_counter() - started
                times.append((page, seconds, round_number))
                if problem:
                    errors.append(f"session {number}, {page}: {problem}")
                if think:  # an operator reads the page before the next click (staggered)
                    await asyncio.sleep(think * (0.5 + random.random()))


async def run_all(base: str, cookie: str, sessions: int, rounds: int, think: float = 0.0):
    times: list = []
    errors: list = []
    results = await asyncio.gather(*(session(n, base, cookie, rounds, times, errors, think)
                                     for n in range(sessions)), return_exceptions=True)
    errors += [f"session failed: {type(r).__name__}: {r}" for r in results
               if isinstance(r, BaseException)]
    return times, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_CONSOLE_URL", DEFAULT_URL))
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the seven pages")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds an operator reads a page before the next one "
                        "(0: every session clicks again at once, the worst case)")
    parser.add_argument("--small", action="store_true", help="small data (debugging)")
    parser.add_argument("--out")
    args = parser.parse_args()

    cookie = prepare(args.url, args.small)
    sys.path.insert(0, str(C.ROOT))
    from tests.browser_support import running_console

    log_dir = C.DATA / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with running_console(args.url, log_dir, timeout=180) as console:
        memory = Memory(console.pid)
        memory.start()
        C.log("warming up: one session through every page")
        asyncio.run(run_all(console.url, cookie, 1, 1))
        idle_mib = memory._rss()
        C.log(f"{args.sessions} sessions x {args.rounds} rounds x {len(PAGES)} pages")
        began = time.perf_counter()
        times, errors = asyncio.run(run_all(console.url, cookie, args.sessions, args.rounds,
                                            args.think))
        wall = time.perf_counter() - began
        memory.running = False
    seconds = [t for _, t, _ in times]
    per_page = {page: {**C.summary_ms([t for p, t, _ in times if p == page]),
                       "p95_ms": round(1000 * C.percentile(
                           [t for p, t, _ in times if p == page], 95), 1)}
                for page in PAGES if any(p == page for p, _, _ in times)}
    p95 = C.percentile(seconds, 95) if seconds else None
    C.log(f"{len(times)} page runs in {wall:.1f} s, {len(errors)} errors, p95 "
          f"{p95:.2f} s, server peak {max(memory.samples):.0f} MiB")
    for line in errors[:10]:
        C.log(f"  {line}")
    name = "console_sessions" + (f"_think{args.think:g}" if args.think else "")
    C.write_result(name + ("_small" if args.small else ""), {
        "sessions": args.sessions, "rounds": args.rounds, "think_s": args.think, "pages": PAGES,
        "page_runs": len(times), "wall_s": round(wall, 1), "errors": len(errors),
        "error_samples": errors[:20], "page_time_ms": C.summary_ms(seconds),
        "page_time_ms_by_page": per_page,
        "server_rss_mib": {"after_warmup": round(idle_mib, 1),
                           "peak": round(max(memory.samples), 1),
                           "last": round(memory.samples[-1], 1)},
        "headline": {
            "errors": C.headline(len(errors), "lower", "count", goal=0),
            "p95_page_s": C.headline(round(p95, 3) if p95 is not None else None, "lower",
                                     "time", goal=2.0, unit="s"),
            "server_peak_rss_mib": C.headline(round(max(memory.samples), 1), "lower", "size",
                                              unit="MiB"),
        },
    }, args.out)


if __name__ == "__main__":
    main()
