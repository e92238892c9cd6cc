"""Near-real-time refresh: users marked by meaningful interactions are folded in on the active
global version and their cached list rewritten, at most once per user per interval.

The queue is the refresh_queue table (data_access/refresh_queue.py): row locks with SKIP LOCKED
on Postgres, so any number of workers (and API processes running one) share it without two
refreshing one user at once, and a mark made during a refresh is kept for the next one.

A worker thread claims up to BATCH (20) due users in one statement and refreshes them together
(`refresh_batch`): one read of everything they need, one run and lock per user taken in one
transaction, the fold-ins computed in one pass of the model (one event matrix for every
history, every user's steps in the same array operations) and the lists in memory, on the model
and candidates this process holds (reloaded only when the active version or the catalogue stamp
moves), then one
transaction that stores every fold-in version, finishes the runs, replaces the cached lists and
clears the marks. So a batch costs about 25 statements whatever its size, where one refresh per
user cost about 20 each; the per-user work left is the arithmetic.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from beacon.actions import Actor, audit_row, record, state_changing
from beacon.errors import BeaconError
from data_access import audit as audit_log
from data_access import refresh_batch as store
from data_access import refresh_queue as queue
from data_access.schema import utcnow

log = logging.getLogger(__name__)

#: the worker folds users in and rewrites their lists: the operator's permission
WORKER = Actor("system:refresh-worker", kind="system", role="operator")

DEFAULT_INTERVAL_S = float(os.environ.get("BEACON_REFRESH_INTERVAL_S", "60"))
LEASE = timedelta(minutes=2)
POLL_S = 0.25
#: users one worker thread claims and refreshes together (one write transaction)
BATCH = int(os.environ.get("BEACON_REFRESH_BATCH", "20"))
#: batches one worker runs side by side (one computes while another waits on the database)
THREADS = int(os.environ.get("BEACON_REFRESH_THREADS", "2"))
TOP = 10
#: a user whose fold-in lock another training holds is tried again this soon
BUSY_RETRY = timedelta(seconds=5)

#: called with the lag (seconds from the first mark to the refreshed list) of each refresh
lag_observers: list[Callable[[float], None]] = []


@dataclass(frozen=True)
class Refreshed:
    email: str
    lag_seconds: float
    folded_in: bool
    cleared: bool  # False: new marks came in during the refresh (the user stays pending)


def refresh_user(email: str) -> bool:
    """One user on their own, as `train --user` and `refresh-recommendations --user` do it:
    fold the user in on the active global version (when there is one) and rewrite their
    cached list. Returns whether a fold-in was stored. (The worker refreshes in batches.)"""
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


def _served_model():
    """The global model lists are scored with (None: popularity), as recommend() loads it."""
    from beacon import versions

    try:
        return versions.active_global()
    except Exception:  # noqa: BLE001 - a broken model must not stop the refresh
        log.warning("the active model could not be loaded; lists fall back", exc_info=True)
        return None


@dataclass
class _Outcome:
    """What became of a batch: refreshes to store, and who failed (with why)."""

    refreshes: list[store.UserRefresh]
    failed: dict[int, tuple[queue.Claimed, str]]  # user -> (claim, why): retried later
    failed_runs: dict[int, str]  # run id -> why


@state_changing("refresh_users", needs="operate")
def refresh_batch(claimed: list[queue.Claimed], interval: timedelta, *,
                  actor: Actor) -> list[Refreshed]:
    """Refresh claimed users together (see the module docstring). A user whose fold-in or list
    fails is left out of the write and tried again after the interval; a write that fails for
    the batch is retried user by user, so one bad user costs nobody else their refresh."""
    if not claimed:
        return []
    from beacon.training import FOLD_IN_HISTORY, fold_in_config, recover_abandoned

    reads = store.read([c.user_id for c in claimed], FOLD_IN_HISTORY)
    items = [c for c in claimed if c.user_id in reads.users]  # a deleted user's mark went too
    loaded = _served_model()
    fold = loaded is not None and loaded.is_active
    run_of: dict[int, int] = {}
    if fold:
        run_of, busy = store.start_runs([c.user_id for c in items], trigger="schedule",
                                        requested_by=actor.name)
        if busy:  # a training of that user runs elsewhere: it stores its own fold-in
            queue.release_many([c for c in items if c.user_id in busy], utcnow() + BUSY_RETRY)
            recover_abandoned()  # frees a dead holder's lock, as train() does when it meets one
            items = [c for c in items if c.user_id not in busy]
    config = fold_in_config(loaded) if fold else None
    try:
        outcome = _compute(items, reads, loaded, run_of, config)
        written = _store(outcome, loaded, config, actor, utcnow(), interval, audit_row())
    except BaseException as error:  # the runs end and free their locks whatever happened
        if run_of:
            store.fail_runs({run: f"the refresh batch failed: {type(error).__name__}: "
                                  f"{error}" for run in run_of.values()})
        raise
    if outcome.failed_runs:
        store.fail_runs(outcome.failed_runs)
    if outcome.failed:
        queue.release_many([item for item, _ in outcome.failed.values()], utcnow() + interval)
        # the batch's own row says ok for the users stored; these say why the others were not
        first_why = next(iter(outcome.failed.values()))[1]
        record(actor, "refresh_users", "failed", {"users": sorted(outcome.failed)}, first_why)
    done = []
    for refresh in outcome.refreshes:
        user_id = refresh.item.user_id
        if user_id in outcome.failed:
            continue
        lag = written.lags[user_id]
        for observe in lag_observers:
            observe(lag)
        done.append(Refreshed(refresh.item.email, lag, user_id in written.versions,
                              user_id in written.cleared))
    return done


def _compute(items: list[queue.Claimed], reads: store.BatchReads, loaded, run_of: dict,
             config) -> _Outcome:
    """Each user's fold-in (on the batch's model) and cached list, in memory."""
    from beacon.cache import cached_rows
    from beacon.filters import FilterParams
    from beacon.recommend import Prepared, recommend
    from beacon.versions import PersonalVector, encode_personal_vector

    outcome = _Outcome([], {}, {})
    now = utcnow()
    params = FilterParams()
    folded_in = _fold_in_all(items, reads, loaded, run_of, config, outcome)
    for item in items:
        user = reads.users[item.user_id]
        run_id = run_of.get(item.user_id)
        if run_id in outcome.failed_runs:
            run_id = None
        folded = folded_in.get(item.user_id)
        try:
            if folded is not None or loaded is None:
                personal = None if folded is None else PersonalVector(
                    folded.vector, folded.bias, store.NEW_VERSION, now, loaded.version_id)
                target = Prepared(user, reads.histories[user.id], reads.stamp, loaded, personal)
            else:  # the stored personal vector serves (a failed fold-in, a fallback model)
                target = user
            result = recommend(target, params, top=TOP, now=now)
        except Exception as error:  # noqa: BLE001 - one user must not stop the batch
            log.warning("refresh of user %s failed; retried after the interval", user.id,
                        exc_info=True)
            why = f"the cached list failed: {type(error).__name__}: {error}"
            outcome.failed[item.user_id] = (item, why)
            if run_id is not None:
                outcome.failed_runs[run_id] = why
            continue
        fold_in = None if folded is None else store.FoldIn(
            run_id, encode_personal_vector(folded.vector, folded.bias), folded.interactions,
            folded.seconds, folded.reason)
        outcome.refreshes.append(store.UserRefresh(item, cached_rows(result), fold_in))
    return outcome


def _fold_in_all(items: list[queue.Claimed], reads: store.BatchReads, loaded, run_of: dict,
                 config, outcome: _Outcome) -> dict:
    """user id -> FoldedIn for every user of the batch with a run, in one pass of the model;
    if that pass fails, user by user, so one user's failure (recorded on their run) stays
    theirs."""
    from beacon.training import fold_in_users

    users = [reads.users[item.user_id] for item in items if run_of.get(item.user_id) is not None]
    if not users:
        return {}
    try:
        folded = fold_in_users(users, [reads.fold_in[u.id] for u in users], loaded, config)
        return {f.user_id: f for f in folded}
    except Exception:  # noqa: BLE001 - find the user at fault below
        log.warning("batched fold-in failed; folding users in one by one", exc_info=True)
    answers = {}
    for user in users:
        try:
            answers[user.id] = fold_in_users([user], [reads.fold_in[user.id]], loaded, config)[0]
        except Exception as error:  # noqa: BLE001 - one user must not stop the batch
            log.warning("fold-in of user %s failed: %s", user.id, error, exc_info=True)
            outcome.failed_runs[run_of[user.id]] = f"{type(error).__name__}: {error}"
    return answers


def _store(outcome: _Outcome, loaded, config, actor: Actor, now: datetime,
           interval: timedelta, entry) -> store.Written:
    """The batch in one transaction; if that fails, each user in their own, so a user the
    database refuses (deleted meanwhile, say) fails alone and leaves nothing half-written."""
    common = dict(base_model_id=None if loaded is None else loaded.version_id,
                  fingerprint=None if loaded is None else loaded.fingerprint,
                  hyperparameters={} if config is None else config.to_dict(),
                  created_by=actor.name, generated_at=now, interval=interval)
    refreshes = [r for r in outcome.refreshes if r.item.user_id not in outcome.failed]
    try:
        return store.write(refreshes, audit=entry, **common)
    except Exception:  # noqa: BLE001 - find the user the database refuses
        log.warning("a refresh batch of %d users failed to store; storing them one by one",
                    len(refreshes), exc_info=True)
    written = store.Written()
    for refresh in refreshes:
        try:
            one = store.write([refresh], audit=entry, **common)
        except Exception as error:  # noqa: BLE001 - this user alone
            why = f"storing the refresh failed: {type(error).__name__}: {error}"
            outcome.failed[refresh.item.user_id] = (refresh.item, why)
            if refresh.fold_in is not None:
                outcome.failed_runs[refresh.fold_in.run_id] = why
            continue
        entry = None  # written with the first user that committed
        written.cleared |= one.cleared
        written.versions.update(one.versions)
        written.lags.update(one.lags)
    if entry is not None:
        audit_log.record(entry)
    return written


def _give_back(claimed: list[queue.Claimed]) -> None:
    """Free the claims of a batch that failed as a whole (else its lease frees them)."""
    try:
        queue.release_many(claimed, utcnow() + BUSY_RETRY)
    except Exception:  # noqa: BLE001 - the lease runs out on its own
        log.warning("could not give back %d claims; their lease frees them", len(claimed))


def run_once(worker: str, interval: timedelta, limit: int = BATCH, threads: int = 1,
             batch: int = BATCH, stop: threading.Event | None = None) -> list[Refreshed]:
    """Refresh up to `limit` due users, `batch` at a time (each claimed in one statement and
    refreshed together), on `threads` threads; returns what was done. Once `stop` is set, no
    further batch is claimed: the ones in hand finish, and no claim is left behind."""
    done: list[Refreshed] = []
    lock = threading.Lock()
    left = [limit]

    def loop() -> None:
        while stop is None or not stop.is_set():
            with lock:
                take = min(batch, left[0])
                left[0] -= take
            if take <= 0:
                return
            claimed = queue.claim(worker, utcnow(), LEASE, take)
            if claimed:
                try:
                    refreshed = refresh_batch(claimed, interval, actor=WORKER)
                except Exception:  # noqa: BLE001 - a database blip must not kill the worker
                    log.exception("a refresh batch of %d users failed; giving them back",
                                  len(claimed))
                    _give_back(claimed)
                    return
                with lock:
                    done.extend(refreshed)
            if len(claimed) < take:
                return

    if threads > 1:
        pool = [threading.Thread(target=loop, name=f"beacon-refresh-{k}")
                for k in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    else:
        loop()
    return done


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
                done = run_once(name, self.interval, limit=4 * BATCH * self.threads,
                                threads=self.threads, stop=self._stop)
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

    def stop_soon(self) -> None:
        """Claim no more users: the batches in hand finish (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def backlog(now: datetime | None = None) -> queue.Backlog:
    """The refresh queue as the console and /metrics show it."""
    return queue.backlog(now or utcnow())


