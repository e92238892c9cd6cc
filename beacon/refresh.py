"""Near-real-time refresh: users marked by meaningful interactions are folded in on the active
global version and their cached list rewritten, at most once per user per interval.

The queue is the refresh_queue table (data_access/refresh_queue.py): row locks with SKIP LOCKED
on Postgres, so any number of workers (and API processes running one) share it without two
refreshing one user at once, and a mark made during a refresh is kept for the next one.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from beacon.actions import Actor, state_changing
from beacon.errors import BeaconError
from data_access import refresh_queue as queue
from data_access.schema import utcnow

log = logging.getLogger(__name__)

#: the worker folds users in and rewrites their lists: the operator's permission
WORKER = Actor("system:refresh-worker", kind="system", role="operator")

DEFAULT_INTERVAL_S = float(os.environ.get("BEACON_REFRESH_INTERVAL_S", "60"))
LEASE = timedelta(minutes=2)
POLL_S = 0.25
BATCH = 10
#: refreshes one worker runs side by side (each mostly waits on the database)
THREADS = int(os.environ.get("BEACON_REFRESH_THREADS", "4"))
TOP = 10

#: called with the lag (seconds from the first mark to the refreshed list) of each refresh
lag_observers: list[Callable[[float], None]] = []


@dataclass(frozen=True)
class Refreshed:
    email: str
    lag_seconds: float
    folded_in: bool
    cleared: bool  # False: new marks came in during the refresh (the user stays pending)


def refresh_user(email: str) -> bool:
    """Fold the user in on the active global version (when there is one) and rewrite their
    cached list. Returns whether a fold-in was stored."""
    from beacon.cache import refresh_recommendations
    from beacon.training import train

    folded = False
    try:
        result = train(scope="user", user=email, trigger="schedule", actor=WORKER)
        folded = result.status == "trained"
        if result.status == "failed":
            log.warning("fold-in of a marked user failed: %s", result.reason)
    except BeaconError as error:  # no active global model yet: the cached list still moves
        log.debug("no fold-in: %s", error)
    refresh_recommendations(top=TOP, user=email, actor=WORKER)
    return folded


def _refresh_one(item: queue.Claimed, interval: timedelta) -> Refreshed | None:
    try:
        folded = refresh_user(item.email)
    except Exception:  # noqa: BLE001 - one user must not stop the worker
        log.exception("refresh of user %s failed; retried after the interval", item.user_id)
        queue.release(item, utcnow() + interval)
        return None
    finished = utcnow()
    lag = max(0.0, (finished - item.pending_since).total_seconds())
    cleared = queue.finish(item, finished, interval, lag)
    for observe in lag_observers:
        observe(lag)
    return Refreshed(item.email, lag, folded, cleared)


def run_once(worker: str, interval: timedelta, limit: int = BATCH,
             threads: int = 1) -> list[Refreshed]:
    """Claim the due users and refresh each (on `threads` threads: a refresh mostly waits on
    the database); returns what was done."""
    claimed = queue.claim(worker, utcnow(), LEASE, limit)
    if threads > 1 and len(claimed) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(claimed))) as pool:
            results = list(pool.map(lambda item: _refresh_one(item, interval), claimed))
    else:
        results = [_refresh_one(item, interval) for item in claimed]
    return [r for r in results if r is not None]


#: how often a worker drops the answers too old for impression attribution
FORGET_EVERY = timedelta(hours=1)


@state_changing("forget_old_answers", needs="operate")
def forget_old_answers(*, actor: Actor) -> int:
    """Drop recorded API answers older than serving_log.KEEP (their request ids can no longer
    attribute impressions). Returns how many."""
    from data_access import serving_log

    return serving_log.forget_before(utcnow() - serving_log.KEEP)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Worker:
    """A loop over run_once in a thread (serve) or in the foreground (python -m beacon worker)."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, poll_s: float = POLL_S,
                 threads: int = THREADS):
        if interval_s < 0:
            raise BeaconError(f"the refresh interval must be 0 s or more, got {interval_s:g}")
        if threads < 1:
            raise BeaconError(f"a worker needs at least 1 thread, got {threads}")
        self.threads = threads
        self.interval = timedelta(seconds=interval_s)
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshed = 0

    def loop(self, until: Callable[[], bool] | None = None) -> None:
        name = worker_name()
        try:
            from beacon.recommend import warm

            warm()  # the model and candidates load now, not on the first marked user
        except Exception:  # noqa: BLE001 - an empty database still gets a worker
            log.warning("warm-up failed; the first refresh loads the model", exc_info=True)
        forgot_at: datetime | None = None
        while not self._stop.is_set() and not (until and until()):
            if forgot_at is None or utcnow() - forgot_at >= FORGET_EVERY:
                forgot_at = utcnow()
                try:
                    forget_old_answers(actor=WORKER)
                except Exception:  # noqa: BLE001 - housekeeping must not stop refreshes
                    log.exception("could not drop old recorded answers")
            try:
                done = run_once(name, self.interval, limit=BATCH * self.threads,
                                threads=self.threads)
            except Exception:  # noqa: BLE001 - a database blip must not kill the worker
                log.exception("refresh worker: claiming failed; trying again")
                done = []
            self.refreshed += len(done)
            if not done:
                self._stop.wait(self.poll_s)

    def start(self) -> "Worker":
        self._thread = threading.Thread(target=self.loop, name="beacon-refresh", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def backlog(now: datetime | None = None) -> queue.Backlog:
    """The refresh queue as the console and /metrics show it."""
    return queue.backlog(now or utcnow())


