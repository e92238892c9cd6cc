"""`serve --workers N`: N uvicorn processes behind one listening socket held by a supervisor,
which hands each new connection to the process holding the fewest open connections.

uvicorn's own multi-process mode shares the listening socket, and each process accepts every
connection pending when it wakes: a client that opens its keep-alive pool in a burst (a
platform backend starting, a load balancer's upstream pool) often landed every connection on
one process (8 of 8 on one of 2 processes about one time in three, at half the throughput).
One SO_REUSEPORT socket per process (this module before) spreads connections by their address
hash instead, which is balanced only on average: 8 connections split 4/4 over 2 processes in
27% of draws, 5/3 in 44%, 6/2 or worse in 29%. A process runs Python on one core at a time
(the GIL), so the clients of the busier one wait longer for as long as their connections live: p99 at 8
clients rose from 16 ms (4/4) to 19-21 ms (6/2, 7/1) in one run (docs/api.md). Here the
supervisor accepts, counts the connections each process has open (handed out by it, closed as
the process reports in shared memory) and passes the descriptor to the least loaded process
over a Unix socket (SCM_RIGHTS); a burst of 8 lands 4/4 every time. Keep-alive connections
cost this one hand-off each; the requests on them never touch the supervisor. Where descriptors
cannot be passed (not a Unix), uvicorn's own mode is used.

The supervisor restarts a worker that dies, stops every worker on SIGINT / SIGTERM, and gives
up (exit status 3) when a worker fails its start-up (a database that is not there)."""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

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


def supports_handoff() -> bool:
    """Whether this platform passes descriptors between processes (SCM_RIGHTS) over a Unix
    socket that keeps message boundaries (SOCK_SEQPACKET)."""
    if not (hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")
            and hasattr(socket, "SOCK_SEQPACKET")):
        return False
    try:
        for end in socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET):
            end.close()
    except OSError:
        return False
    return True


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port. No SO_REUSEPORT: a second server on the same port must fail
    instead of quietly sharing this one's connections."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(address)
    return sock


class _HandedServer(uvicorn.Server):
    """uvicorn's server without a listener of its own: connections arrive from the supervisor
    on `channel`; each one closed adds one to closed[index] (the supervisor's count of what this
    process holds open)."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket, index: int,
                 closed) -> None:
        super().__init__(config)
        self.channel, self.index, self.closed = channel, index, closed
        self._taking_up: set[asyncio.Task] = set()  # referenced until done (asyncio's advice)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if self.started:
            self.channel.setblocking(False)
            asyncio.get_running_loop().add_reader(self.channel.fileno(), self._receive)

    def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            data, descriptors, _, _ = socket.recv_fds(self.channel, 1, 8)
        except BlockingIOError:
            return
        except OSError:
            data, descriptors = b"", []
        if not data and not descriptors:  # the supervisor is gone: stop taking work
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True
            return
        for descriptor in descriptors:
            task = loop.create_task(self._serve_connection(socket.socket(fileno=descriptor)))
            self._taking_up.add(task)
            task.add_done_callback(self._taking_up.discard)

    async def _serve_connection(self, connection: socket.socket) -> None:
        connection.setblocking(False)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._protocol, connection)
        except OSError:  # reset before it was taken up
            connection.close()
            self.closed[self.index] += 1

    def _protocol(self) -> asyncio.Protocol:
        protocol = self.config.http_protocol_class(  # what uvicorn's own listener makes
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state)
        lost = protocol.connection_lost

        def counted(error: Exception | None) -> None:
            self.closed[self.index] += 1
            lost(error)

        protocol.connection_lost = counted
        return protocol

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        except (OSError, ValueError):
            pass
        self.channel.close()  # the supervisor hands the next connection to another process
        await super().shutdown(sockets=sockets)


def _worker(options: ServeOptions, channel: socket.socket, index: int,
            closed) -> None:  # runs in a child process
    config = uvicorn.Config(APP, factory=True, host=options.host, port=options.port,
                            log_level=options.log_level, access_log=options.access_log)
    _HandedServer(config, channel, index, closed).run()


@dataclass
class _Slot:
    """One worker process as the supervisor sees it."""

    process: multiprocessing.process.BaseProcess
    started: float
    channel: socket.socket  # the supervisor's end
    handed: int = 0  # connections passed to it (closed ones are counted by the worker)


class Supervisor:
    def __init__(self, options: ServeOptions, workers: int):
        self.options = options
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()  # the slots, between the accepting and watching threads
        #: connections each worker has closed; written by that worker only
        self._closed = self._context.Array("q", workers, lock=False)
        self._next = 0  # where the search for the least loaded starts (ties go round)

    def _start_one(self, index: int) -> _Slot:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._closed[index] = 0
        process = self._context.Process(target=_worker, name="beacon-api-worker",
                                        args=(self.options, theirs, index, self._closed))
        process.start()
        theirs.close()
        mine.settimeout(1.0)  # a worker that stopped reading must not stall the accepting
        return _Slot(process, time.monotonic(), mine)

    def stop(self, *_signal) -> None:
        self._stopping.set()

    def _open(self, index: int) -> int:
        return self._slots[index].handed - self._closed[index]

    def _hand(self, connection: socket.socket) -> None:
        """To the process with the fewest open connections; another if that one fails."""
        with self._lock:
            order = [(self._next + k) % self.workers for k in range(self.workers)]
            self._next = (self._next + 1) % self.workers
            for index in sorted(order, key=self._open):
                slot = self._slots[index]
                try:
                    socket.send_fds(slot.channel, [b"c"], [connection.fileno()])
                except OSError:
                    continue
                slot.handed += 1
                return
        log.warning("no API worker took a connection; closed it")

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # e.g. out of descriptors: let closes catch up
                continue
            with connection:
                self._hand(connection)

    def run(self) -> int:
        """Serve until a signal; the exit status (0, or STARTUP_FAILURE)."""
        listener = listening_socket(self.options.host, self.options.port)
        listener.listen(2048)
        listener.settimeout(0.5)  # the accepting thread sees a stop within this
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.stop)
        self._slots = [self._start_one(k) for k in range(self.workers)]
        accepting = threading.Thread(target=self._accept, args=(listener,),
                                     name="beacon-accept", daemon=True)
        accepting.start()
        log.info("%d API workers on %s:%d (connections handed to the least loaded)",
                 self.workers, self.options.host, self.options.port)
        try:
            status = self._watch()
        finally:
            self._stopping.set()
            accepting.join(5)
            listener.close()
            self._shut_down()
        return status

    def _watch(self) -> int:
        quick_exits = 0
        while not self._stopping.wait(0.5):
            for k, slot in enumerate(self._slots):
                if slot.process.is_alive():
                    continue
                quick = time.monotonic() - slot.started < QUICK_EXIT_S
                quick_exits = quick_exits + 1 if quick else 0
                if slot.process.exitcode == STARTUP_FAILURE or quick_exits >= MAX_QUICK_EXITS:
                    log.error("an API worker failed to start (exit status %s); stopping",
                              slot.process.exitcode)
                    return STARTUP_FAILURE
                log.warning("API worker %d exited (status %s); starting another",
                            slot.process.pid, slot.process.exitcode)
                replacement = self._start_one(k)  # outside the lock: accepting goes on
                with self._lock:
                    self._slots[k] = replacement
                slot.channel.close()
        return 0

    def _shut_down(self, grace_s: float = 20.0) -> None:
        for slot in self._slots:
            if slot.process.is_alive():
                slot.process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + grace_s
        for slot in self._slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.channel.close()
