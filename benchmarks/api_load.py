"""The HTTP API under load, on Postgres: throughput and p50/p95/p99 of
GET /v1/users/{email}/recommendations (filters on, with reasons) at 1, 8 and 32 concurrent
clients, against the in-process recommend() alone on the same machine; then freshness: with
50 interactions a second streaming in, the time from POST /v1/interactions to that user's
refreshed list.

    python benchmarks/api_load.py --build            # build the dataset, then measure
    python benchmarks/api_load.py                    # measure on the dataset built before
    python benchmarks/api_load.py --build --users 20000 --events 10000 --days 7   # smaller

The dataset lives in its own Postgres schema (`api_bench` of --url's database): the demo
generator at --users/--events/--days, a global model trained with --epochs. The API runs as a
real `python -m beacon serve` (--workers processes) with a real `python -m beacon worker`; the
load client is asyncio + httpx on loopback, a fixed number of clients each sending its next
request when the last one is answered (closed loop, so the client never queues work the server
has not taken).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://beacon:beacon@127.0.0.1:5432/beacon_dev"
SCHEMA = "api_bench"
TOP = 10
#: what the freshness stream sends per 100 interactions (impressions mark nobody)
MIX = (("impression", 60), ("click", 25), ("view", 10), ("register", 5))
MEANINGFUL = {"click", "view", "register"}


def schema_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    return parsed.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- the dataset

def build(url: str, users: int, events: int, days: int, epochs: int) -> dict:
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    admin.dispose()
    target = schema_url(url)
    C.use_database(target)
    from beacon.actions import cli_actor
    from beacon.config import ModelConfig
    from beacon.demo import load_demo_data
    from beacon.training import train
    from data_access import migrate

    migrate.upgrade(target)
    began = time.perf_counter()
    summary = load_demo_data(users=users, events=events, days=days, seed=7, actor=cli_actor())
    load_s = time.perf_counter() - began
    C.log(f"loaded {summary} in {load_s:.0f} s")
    began = time.perf_counter()
    result = train(force=True, config=ModelConfig(epochs=epochs, patience=0, refit=False),
                   actor=cli_actor())
    train_s = time.perf_counter() - began
    C.log(f"trained: {result.status} v{result.model_version} in {train_s:.0f} s")
    if result.status != "trained":
        raise SystemExit(f"training failed: {result.reason}")
    return {"load_seconds": round(load_s, 1), "train_seconds": round(train_s, 1),
            "model_version": result.model_version}


def dataset(url: str) -> dict:
    from sqlalchemy import text

    from data_access.db import get_engine

    with get_engine(url).connect() as connection:
        count = lambda table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: E731
        return {"users": count("users"), "events": count("events"),
                "interactions": count("interactions"),
                "upcoming_events": connection.execute(text(
                    "SELECT count(*) FROM events WHERE start_time > now()")).scalar()}


def sample_users(count: int, seed: int = 11) -> list[str]:
    """Users with a home (the distance filter measures from it), spread over the id range."""
    from sqlalchemy import text

    from data_access.db import get_engine

    with get_engine().connect() as connection:
        emails = [row[0] for row in connection.execute(text(
            "SELECT email FROM users WHERE latitude IS NOT NULL ORDER BY id"))]
    random.Random(seed).shuffle(emails)
    return emails[:count]


def quiet_users(count: int) -> list[str]:
    """Users no worker refreshed or has pending in the last 10 minutes: their first meaningful
    interaction is due at once, as after any quiet spell (a user refreshed less than the
    interval ago waits for it by design, which is not what freshness measures)."""
    from sqlalchemy import text

    from data_access.db import get_engine

    with get_engine().connect() as connection:
        return [row[0] for row in connection.execute(text(
            "SELECT u.email FROM users u WHERE NOT EXISTS (SELECT 1 FROM refresh_queue q "
            "WHERE q.user_id = u.id AND (q.pending_since IS NOT NULL "
            "OR q.refreshed_at > now() - interval '10 minutes')) "
            "ORDER BY random() LIMIT :n"), {"n": count})]


def query(now: datetime) -> dict:
    """Filters on: 50 km from home, every other day of the next four weeks, evenings."""
    today = now.date()
    dates = ",".join((today + timedelta(days=d)).isoformat() for d in range(0, 28, 2))
    return {"n": TOP, "max_km": 50, "dates": dates, "start": "17:00", "end": "23:30",
            "explain": "true"}


# --------------------------------------------------------------------------- in process

def in_process(emails: list[str], seconds: float, threads: int) -> dict:
    """recommend() alone, the same filters and reasons, `threads` threads for `seconds`."""
    from concurrent.futures import ThreadPoolExecutor

    from beacon.filters import FilterParams
    from beacon.recommend import recommend

    q = query(datetime.now(timezone.utc))
    params = FilterParams.parse(max_km=q["max_km"], dates=q["dates"], start=q["start"],
                                end=q["end"])
    for email in emails[:20]:
        recommend(email, params, top=TOP)
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))
    latencies: list[float] = []

    def loop() -> None:
        while time.perf_counter() < deadline:
            email = emails[next(counter) % len(emails)]
            began = time.perf_counter()
            recommend(email, params, top=TOP)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(loop) for _ in range(threads)]:
            future.result()
    wall = time.perf_counter() - began
    return {"threads": threads, "requests": len(latencies),
            "throughput_rps": round(len(latencies) / wall, 1), **C.summary_ms(latencies)}


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], url: str, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(C.ROOT)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "beacon", *args], cwd=C.ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"),
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_ready(base: str, process: subprocess.Popen | None = None, timeout: float = 180) -> None:
    """Until GET /healthz/ready answers 200; RuntimeError when `process` exits or time is up."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = process.stderr.read()[-2000:] if process.stderr else ""
            raise RuntimeError(f"serve exited: {tail}")
        try:
            if httpx.get(f"{base}/healthz/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{base} never became ready")


# --------------------------------------------------------------------------- load

async def _load(base: str, key: str, emails: list[str], clients: int, seconds: float,
                rate: float | None = None, client_kind: str = "raw") -> dict:
    """`clients` connections for `seconds` after a warm-up. Closed loop (no `rate`): each sends
    its next request when the last is answered. Open loop: request j is due at start + j / rate
    whatever happened before and is sent by the next free connection; latency then counts from
    when it was due, so time spent waiting for a free connection (a backlog) counts in full.
    `client_kind`: "raw" (benchmarks/_raw_http.py, one keep-alive connection per client) or
    "httpx" (an httpx.AsyncClient pool of `clients` connections)."""
    from urllib.parse import quote, urlencode, urlsplit

    import httpx

    from benchmarks import _raw_http

    q = query(datetime.now(timezone.utc))
    query_string = urlencode(q)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    where = urlsplit(base)
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, limits=limits,
                                 timeout=30) as client:
        async def get_httpx(email: str, _connection) -> tuple[int, bytes]:
            response = await client.get(f"/v1/users/{email}/recommendations", params=q)
            return response.status_code, response.content

        async def get_raw(email: str, connection: _raw_http.Connection) -> tuple[int, bytes]:
            return await connection.get(
                f"/v1/users/{quote(email, safe='@')}/recommendations?{query_string}")

        get = get_raw if client_kind == "raw" else get_httpx

        async def one_client(start: float, first: int, deadline: float) -> None:
            connection = _raw_http.Connection(where.hostname, where.port, {"X-API-Key": key})
            try:
                while True:
                    j = next(counter)
                    due = time.perf_counter() if rate is None else start + (j - first) / rate
                    if due >= deadline:
                        return
                    if rate is not None:
                        await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    email = emails[j % len(emails)]
                    try:
                        status, body = await get(email, connection)
                        ok = status == 200 and len(json.loads(body)["items"]) >= 0
                        why = str(status)
                    except (httpx.HTTPError, _raw_http.HTTPError) as error:
                        ok, why = False, type(error).__name__
                    if ok:
                        latencies.append(time.perf_counter() - due)
                    else:
                        errors[why] = errors.get(why, 0) + 1
            finally:
                await connection.close()

        async def phase(length: float) -> float:
            began, first = time.perf_counter(), next(counter)
            await asyncio.gather(*(one_client(began, first, began + length)
                                   for _ in range(clients)))
            return time.perf_counter() - began

        await phase(min(2.0, seconds / 5))  # warm-up
        latencies.clear()
        errors.clear()
        wall = await phase(seconds)
    stats = C.summary_ms(latencies) if latencies else {}
    p95 = C.percentile([x * 1000 for x in latencies], 95) if latencies else None
    mode = {} if rate is None else {"mode": "open loop", "offered_rps": round(rate, 1)}
    return {**mode, "client": client_kind, "clients": clients, "seconds": round(wall, 1),
            "requests": len(latencies), "throughput_rps": round(len(latencies) / wall, 1),
            "p95_ms": None if p95 is None else round(p95, 3),
            "errors": sum(errors.values()), "errors_by_kind": errors, **stats}


async def _warm_up(base: str, key: str, emails: list[str], clients: int = 8) -> dict:
    """Every sampled user once, `clients` at a time: the servers' caches (prepared statements
    per pooled connection, the event tokens of the pages shown, Postgres's buffers) warm as in
    a server that has run a while, so the levels measure steady state, not the first minute."""
    from urllib.parse import quote, urlencode, urlsplit

    from benchmarks import _raw_http

    query_string = urlencode(query(datetime.now(timezone.utc)))
    where = urlsplit(base)
    pending = iter(emails)
    failures = 0
    began = time.perf_counter()

    async def one_client() -> None:
        nonlocal failures
        connection = _raw_http.Connection(where.hostname, where.port, {"X-API-Key": key})
        try:
            for email in pending:
                try:
                    status, _ = await connection.get(
                        f"/v1/users/{quote(email, safe='@')}/recommendations?{query_string}")
                    failures += status != 200
                except _raw_http.HTTPError:
                    failures += 1
        finally:
            await connection.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return {"requests": len(emails), "failures": failures,
            "seconds": round(time.perf_counter() - began, 1)}


def _median_level(runs: list[dict]) -> dict:
    """One level's repeats: the median of each figure across them, the repeats kept."""
    import statistics

    keys = ("throughput_rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
    merged = {k: v for k, v in runs[0].items() if k not in keys and k not in
              ("requests", "errors", "errors_by_kind", "n", "seconds")}
    for k in keys:
        values = [r[k] for r in runs if r.get(k) is not None]
        merged[k] = round(statistics.median(values), 4) if values else None
    errors: dict[str, int] = {}
    for r in runs:
        for kind, count in r["errors_by_kind"].items():
            errors[kind] = errors.get(kind, 0) + count
    merged.update(requests=sum(r["requests"] for r in runs), errors=sum(errors.values()),
                  errors_by_kind=errors, repeats=runs)
    return merged


async def _level(base: str, key: str, emails: list[str], level: str, seconds: float,
                 open_fraction: float, done: dict) -> dict:
    """One load level: "8" is 8 closed-loop clients; "open8" is 8 clients offering
    `open_fraction` of the best closed-loop throughput measured before it; "httpx8" is 8
    closed-loop clients on httpx instead of the lean client (what the client's own CPU costs
    the server on a shared machine)."""
    if level.startswith("httpx"):
        return await _load(base, key, emails, int(level[5:]), seconds, client_kind="httpx")
    if not level.startswith("open"):
        return await _load(base, key, emails, int(level), seconds)
    capacity = max((r["throughput_rps"] for r in done.values()
                    if "offered_rps" not in r and r.get("client") == "raw"), default=0.0)
    if capacity <= 0:
        raise SystemExit(f"{level}: run a closed-loop level before it (its capacity sets the rate)")
    return await _load(base, key, emails, int(level[4:]), seconds, open_fraction * capacity)


async def _freshness(base: str, key: str, emails: list[str], rate: int, seconds: float,
                     settle: float, load_clients: int = 0,
                     load_emails: list[str] | None = None) -> dict:
    """`rate` interactions a second for `seconds` (one batch per 100 ms); for each user's first
    meaningful interaction of the run, the time until the worker's refresh of that user ends.
    With `load_clients`, that many closed-loop clients ask for recommendations meanwhile (for
    the stream and 10 s after it), so the worker competes with serving for the cores."""
    import httpx
    from sqlalchemy import text

    from data_access.db import get_engine

    load = None
    if load_clients:
        load = asyncio.create_task(_load(base, key, load_emails or emails, load_clients,
                                         seconds + 10))
        await asyncio.sleep(2.0)  # _load's warm-up: the stream starts with the load running
    load_average_at_start = os.getloadavg()
    rng = random.Random(5)
    run = uuid.uuid4().hex[:12]  # fresh idempotency ids: a rerun must insert, not deduplicate
    with get_engine().connect() as connection:
        events = [row[0] for row in connection.execute(text(
            "SELECT event_id FROM events WHERE start_time > now() ORDER BY id LIMIT 5000"))]
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    posted: dict[str, float] = {}  # email -> wall-clock time its first meaningful one was sent
    sent = failures = 0
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
        began = time.monotonic()
        tick = 0
        while time.monotonic() - began < seconds:
            batch = []
            # what the rate owes by the end of this tick: a late tick (a busy event loop, the
            # load clients share it) sends more, so the stream keeps `rate` on average
            owed = int(rate * min(seconds, time.monotonic() - began + 0.1)) - sent
            for _ in range(owed):
                email, kind = rng.choice(emails), rng.choice(kinds)
                batch.append({"id": f"fresh-{run}-{sent}", "email": email,
                              "event_id": rng.choice(events), "type": kind})
                sent += 1
            at = time.time()
            if batch:
                response = await client.post("/v1/interactions", json={"interactions": batch})
                failures += response.status_code != 200
            for item in batch:
                if item["type"] in MEANINGFUL and item["email"] not in posted:
                    posted[item["email"]] = at
            tick += 1
            await asyncio.sleep(max(0.0, began + tick * 0.1 - time.monotonic()))
        stream_s = time.monotonic() - began
    deadline = time.monotonic() + settle
    lags: dict[str, float] = {}
    with get_engine().connect() as connection:
        while time.monotonic() < deadline and len(lags) < len(posted):
            rows = connection.execute(text(
                "SELECT u.email, extract(epoch from q.refreshed_at) FROM refresh_queue q "
                "JOIN users u ON u.id = q.user_id WHERE q.refreshed_at IS NOT NULL")).all()
            connection.rollback()
            for email, refreshed in rows:
                if email in posted and email not in lags and float(refreshed) >= posted[email]:
                    lags[email] = float(refreshed) - posted[email]
            await asyncio.sleep(0.2)
    values = sorted(lags.values())
    background = await load if load is not None else None
    return {"load_average_at_start": [round(x, 2) for x in load_average_at_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "recommend_load": background,
            "rate_per_s": rate, "stream_seconds": round(stream_s, 1), "sent": sent,
            "failed_batches": failures, "users_marked": len(posted),
            "users_refreshed": len(lags),
            "not_refreshed_within_settle": len(posted) - len(lags),
            "p50_s": round(C.percentile(values, 50), 3) if values else None,
            "p95_s": round(C.percentile(values, 95), 3) if values else None,
            "max_s": round(values[-1], 3) if values else None}


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_API_URL", DEFAULT_URL),
                        help="a Postgres database; the benchmark uses its own schema in it")
    parser.add_argument("--build", action="store_true", help="(re)build the dataset first")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7, help="days of demo history")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clients", default="1,8,32,open8",
                        help="closed-loop levels (client counts); openN: N clients pacing "
                             "--open-fraction of the best closed-loop throughput (open loop); "
                             "httpxN: N closed-loop clients on httpx instead of the lean client")
    parser.add_argument("--open-fraction", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=15, help="per concurrency level")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over the levels; each level reports the median of its "
                             "rounds (the machine is shared: one round can land in a busy "
                             "minute)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--rate", type=int, default=50, help="interactions per second")
    parser.add_argument("--stream-seconds", type=float, default=30)
    parser.add_argument("--refresh-workers", type=int, default=1,
                        help="`python -m beacon worker` processes")
    parser.add_argument("--refresh-threads", type=int, default=None,
                        help="batches each worker runs side by side (worker --threads)")
    parser.add_argument("--load-clients", type=int, default=0,
                        help="closed-loop clients asking for recommendations during the "
                             "freshness stream (default none)")
    parser.add_argument("--freshness-only", action="store_true",
                        help="skip the in-process baseline and the load levels")
    parser.add_argument("--out")
    args = parser.parse_args()

    built = build(args.url, args.users, args.events, args.days, args.epochs) if args.build else {}
    url = schema_url(args.url)
    C.use_database(url)
    data = dataset(url)
    C.log(f"dataset {data}")
    emails = sample_users(2000)
    baseline = {} if args.freshness_only else {
        n: in_process(emails, args.seconds, n) for n in (1, 2)}
    C.log(f"in process: {baseline}")
    best_in_process = max((b["throughput_rps"] for b in baseline.values()), default=0)

    from beacon.actions import cli_actor
    from beacon.api_keys import create_key

    key = create_key(f"bench-{int(time.time())}", "recommend,ingest", actor=cli_actor()).secret
    port = free_port()
    logs = C.DATA / "logs"
    server = start(["serve", "--port", str(port), "--workers", str(args.workers),
                    "--no-access-log", "--no-refresh-worker", "--log-level", "warning"],
                   url, logs / "api_load_serve.log")
    threads = [] if args.refresh_threads is None else ["--threads", str(args.refresh_threads)]
    workers = [start(["worker", *threads], url, logs / f"api_load_worker{k}.log")
               for k in range(args.refresh_workers)]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        levels = [] if args.freshness_only else args.clients.split(",")
        warm_up = asyncio.run(_warm_up(base, key, emails)) if levels else None
        C.log(f"warm-up: {warm_up}")
        runs: dict[str, list[dict]] = {}
        for repeat in range(args.repeats if levels else 0):
            done: dict[str, dict] = {}
            for clients in levels:
                done[clients] = asyncio.run(_level(base, key, emails, clients, args.seconds,
                                                   args.open_fraction, done))
                runs.setdefault(clients, []).append(done[clients])
                C.log(f"repeat {repeat + 1}, {clients} clients: {json.dumps(done[clients])}")
        load = {clients: _median_level(results) for clients, results in runs.items()}
        fresh = asyncio.run(_freshness(base, key, quiet_users(2000), args.rate,
                                       args.stream_seconds, settle=60,
                                       load_clients=args.load_clients, load_emails=emails))
        C.log(f"freshness: {fresh}")
    finally:
        for process in (server, *workers):
            stop(process)

    closed = [int(level) for level in levels if level.isdigit()]
    top = load.get(str(max(closed)), {}) if closed else {}
    eight = load.get("8", {})
    ratio = round(top.get("throughput_rps", 0) / best_in_process, 3) if best_in_process else None
    headline = {
        "p99_ms_8_clients": C.headline(eight.get("p99_ms"), "lower", "time", goal=20, unit="ms"),
        "throughput_ratio_32_clients_to_in_process": C.headline(ratio, "higher", "time",
                                                                goal=0.5),
        "errors": C.headline(sum(v["errors"] for v in load.values()), "lower", "quality",
                             goal=0),
        "freshness_p95_s": C.headline(fresh["p95_s"], "lower", "time", goal=5, unit="s"),
    }
    C.write_result("api_load", {
        "database": args.url.split("@")[-1] + f" (schema {SCHEMA})",
        "postgres": C.postgres_version(url),
        "dataset": {**data, "built": built, "days": args.days},
        "uvicorn_workers": args.workers,
        "repeats": args.repeats,
        "warm_up": warm_up,
        "refresh_worker_processes": args.refresh_workers,
        "refresh_worker_threads": args.refresh_threads,
        "load_clients_during_freshness": args.load_clients,
        "query": query(datetime.now(timezone.utc)) | {"dates": "every other day, 4 weeks"},
        "in_process": baseline,
        "load": load,
        "freshness": fresh,
        "headline": headline,
    }, out=args.out)


if __name__ == "__main__":
    main()
