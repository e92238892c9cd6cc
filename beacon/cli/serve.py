"""`serve` (the HTTP API under uvicorn) and `worker` (the near-real-time refresh loop)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import tempfile

from beacon.cli.common import add_json_flag, emit
from beacon.errors import BeaconError


def register(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="the HTTP API (FastAPI under uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1,
                       help="uvicorn worker processes (default 1)")
    worker = serve.add_mutually_exclusive_group()
    worker.add_argument("--refresh-worker", dest="refresh_worker", action="store_true",
                        default=None, help="run a refresh worker in each process (default: "
                        "only on the embedded SQLite database)")
    worker.add_argument("--no-refresh-worker", dest="refresh_worker", action="store_false")
    serve.add_argument("--log-level", default="info",
                       choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--no-access-log", dest="access_log", action="store_false")
    serve.set_defaults(handler=run_serve)

    run = subparsers.add_parser(
        "worker", help="refresh users marked by their interactions (fold-in + cached list)")
    run.add_argument("--interval", type=float, default=None,
                     help="at most one refresh per user per this many seconds (default 60, "
                          "or BEACON_REFRESH_INTERVAL_S)")
    run.add_argument("--threads", type=int, default=None,
                     help="batches of users refreshed side by side (default 2, or "
                          "BEACON_REFRESH_THREADS)")
    run.add_argument("--once", action="store_true", help="refresh what is due now, then stop")
    add_json_flag(run)  # with --once: {refreshed, users: [{email, lag_seconds, ...}]}
    run.set_defaults(handler=run_worker)


def _check(args: argparse.Namespace) -> None:

    if not 0 < args.port < 65536:
        raise BeaconError(f"--port must be between 1 and 65535, got {args.port}")
    if args.workers < 1:
        raise BeaconError(f"--workers must be at least 1, got {args.workers}")
    _check_listen(args.host, args.port)


def _check_listen(host: str, port: int) -> None:
    """One clear line for a port taken or an address this host lacks, before uvicorn starts
    (it logs the error and exits 3). The socket is closed at once; uvicorn binds again."""
    import errno
    import socket


    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as error:
        raise BeaconError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    # as asyncio binds them: an address this host lacks is skipped, a port in use is fatal
    usable, failure = False, None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
            usable = True
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                usable, failure = False, error
                break
            failure = failure or error
    if not usable and failure is not None:
        raise BeaconError(f"cannot listen on {host}:{port}: {failure.strerror or failure}")


def _metrics_dir(workers: int) -> None:
    """Several processes: prometheus-client keeps its values in a shared directory."""
    if workers < 2:
        return
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"beacon-prometheus-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def run_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from beacon import blas_threads
    from beacon.api import supervisor
    from beacon.api.app import FREEZE_GC, IN_PROCESS_WORKER
    from data_access.migrate import is_embedded_default

    _check(args)
    with_worker = is_embedded_default() if args.refresh_worker is None else args.refresh_worker
    os.environ[IN_PROCESS_WORKER] = "1" if with_worker else "0"
    if args.refresh_worker is None and not with_worker:
        from beacon.cli.common import log

        log("no refresh worker runs in this server (the database is not the embedded default): "
            "start `python -m beacon worker` beside it, or pass --refresh-worker, or users' "
            "personal models and cached lists will not follow their new interactions")
    os.environ.setdefault(FREEZE_GC, "1")
    os.environ.setdefault(blas_threads.SETTING, "1")  # read by each worker process's start
    _metrics_dir(args.workers)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workers > 1 and supervisor.supports_handoff():
        options = supervisor.ServeOptions(args.host, args.port, args.log_level, args.access_log)
        try:
            return supervisor.Supervisor(options, args.workers).run()
        except OSError as error:
            raise BeaconError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}"
                              ) from error
    uvicorn.run(supervisor.APP, factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=args.access_log)
    return 0


def run_worker(args: argparse.Namespace) -> int:
    import logging

    from beacon.blas_threads import SETTING, limit_for_serving
    from beacon.refresh import DEFAULT_INTERVAL_S, THREADS, Worker
    from beacon.cli.common import log

    os.environ.setdefault(SETTING, "1")
    limit_for_serving()

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(DEFAULT_INTERVAL_S if args.interval is None else args.interval,
                    threads=THREADS if args.threads is None else args.threads)
    if args.once:
        from beacon.refresh import run_once, worker_name

        done = run_once(worker_name(), worker.interval, limit=1_000_000,
                        threads=worker.threads)
        log(f"refreshed {len(done)} user(s)")
        if args.json:
            emit(args, {"refreshed": len(done), "users": [dataclasses.asdict(r) for r in done]})
        return 0
    if args.json:
        raise BeaconError("--json goes with --once (a running worker reports on stderr)")
    log(f"refresh worker: at most one refresh per user per {worker.interval.total_seconds():g} s")
    stopped_by: list[int] = []

    def stop(signum, _frame) -> None:  # systemd's stop: finish the batches in hand, claim no more
        stopped_by.append(signum)
        log("refresh worker: stopping after the batches in hand")
        worker.stop_soon()

    signal.signal(signal.SIGTERM, stop)
    worker.loop()
    return 128 + stopped_by[0] if stopped_by else 0
