"""`serve --workers N`: N uvicorn processes, each listening on its own SO_REUSEPORT socket.

uvicorn's own multi-process mode shares one listening socket, and each process accepts every
connection pending when it wakes. A client that opens its keep-alive pool in a burst (a
platform backend starting, a load balancer's upstream pool) then often lands every connection
on one process: one core serves while the others idle, for as long as the connections live
(measured: 8 connections on one of 2 processes about one time in three, at about half the
throughput). With one socket per process the kernel spreads new connections over the processes
by their address hash instead. Where SO_REUSEPORT does not exist, uvicorn's mode is used.

The supervisor restarts a worker that dies, stops every worker on SIGINT / SIGTERM, and gives
up (exit status 3) when a worker fails its start-up (a database that is not there)."""
from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("beacon.serve")

APP = "beacon.api.app:create_app"
#: uvicorn's exit status when the application's start-up failed
STARTUP_FAILURE = 3
#: a worker that exits sooner than this after its start counts as a failed start
QUICK_EXIT_S = 10.0
MAX_QUICK_EXITS = 3


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    log_level: str
    access_log: bool


def supports_reuse_port() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    """A socket bound to host:port, with SO_REUSEPORT (others of this user may bind it too)
    unless told otherwise."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(address)
    return sock


def _worker(options: ServeOptions) -> None:  # runs in a child process
    import uvicorn

    sock = listening_socket(options.host, options.port)
    config = uvicorn.Config(APP, factory=True, host=options.host, port=options.port,
                            log_level=options.log_level, access_log=options.access_log)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    def __init__(self, options: ServeOptions, workers: int):
        self.options = options
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._processes: list[tuple[multiprocessing.process.BaseProcess, float]] = []

    def _start_one(self) -> tuple[multiprocessing.process.BaseProcess, float]:
        process = self._context.Process(target=_worker, args=(self.options,),
                                        name="beacon-api-worker")
        process.start()
        return process, time.monotonic()

    def stop(self, *_signal) -> None:
        self._stopping.set()

    def run(self) -> int:
        """Serve until a signal; the exit status (0, or STARTUP_FAILURE)."""
        # Without SO_REUSEPORT the probe fails on any listener, another `serve` included: a
        # second server must not quietly share the port (and its connections) with the first.
        probe = listening_socket(self.options.host, self.options.port, reuse_port=False)
        probe.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.stop)
        self._processes = [self._start_one() for _ in range(self.workers)]
        log.info("%d API workers on %s:%d (one SO_REUSEPORT socket each)", self.workers,
                 self.options.host, self.options.port)
        status, quick_exits = 0, 0
        while not self._stopping.wait(0.5):
            for k, (process, started) in enumerate(self._processes):
                if process.is_alive():
                    continue
                quick = time.monotonic() - started < QUICK_EXIT_S
                quick_exits = quick_exits + 1 if quick else 0
                if process.exitcode == STARTUP_FAILURE or quick_exits >= MAX_QUICK_EXITS:
                    log.error("an API worker failed to start (exit status %s); stopping",
                              process.exitcode)
                    status = STARTUP_FAILURE
                    self._stopping.set()
                    break
                log.warning("API worker %d exited (status %s); starting another", process.pid,
                            process.exitcode)
                self._processes[k] = self._start_one()
        self._shut_down()
        return status

    def _shut_down(self, grace_s: float = 20.0) -> None:
        for process, _ in self._processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + grace_s
        for process, _ in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
