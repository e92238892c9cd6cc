"""Stopping a running training at its next batch.

The request lives in the database (training_runs.cancel_requested_at/by), so an operator on any
console replica, or `python -m beacon train --cancel` on any host, can stop a run wherever it
trains. Each process with live runs polls that flag once a second on one thread and sets an
in-memory event; the training loop calls `check()` between batches, which only reads that event,
so the per-batch cost is a dictionary lookup. A signal (SIGTERM) sets the events of every run of
this process directly.

TrainingCancelled derives from BaseException on purpose: the training's own `except Exception`
blocks (a failed evaluation is recorded and the model kept) must not swallow a cancel.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from data_access import runs

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class TrainingCancelled(BaseException):
    def __init__(self, run_id: int, by: str):
        super().__init__(f"training run {run_id} cancelled by {by}")
        self.run_id = run_id
        self.by = by


class _Live:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.by = ""


_lock = threading.Lock()
_live: dict[int, _Live] = {}
_poller: threading.Thread | None = None
_current: ContextVar[int | None] = ContextVar("beacon_training_run", default=None)


@contextmanager
def watching(run_id: int) -> Iterator[None]:
    """While the block runs, `check()` in this thread raises once the run is cancelled."""
    global _poller
    with _lock:
        _live[run_id] = _Live()
        if _poller is None or not _poller.is_alive():
            _poller = threading.Thread(target=_poll, name="beacon-cancel-poll", daemon=True)
            _poller.start()
    token = _current.set(run_id)
    try:
        yield
    finally:
        _current.reset(token)
        with _lock:
            _live.pop(run_id, None)


def check() -> None:
    """Raise TrainingCancelled if the training running in this thread was cancelled."""
    run_id = _current.get()
    if run_id is None:
        return
    live = _live.get(run_id)
    if live is not None and live.event.is_set():
        raise TrainingCancelled(run_id, live.by)


def mark(run_id: int, by: str) -> bool:
    """Cancel a run of this process at once (no poll needed). False if it is not ours."""
    with _lock:
        live = _live.get(run_id)
        if live is None:
            return False
        if not live.event.is_set():
            live.by = by
            live.event.set()
        return True


def cancel_local(by: str) -> list[int]:
    """Cancel every training this process runs (a signal handler calls this)."""
    with _lock:
        ids = list(_live)
    return [run_id for run_id in ids if mark(run_id, by)]


def local_runs() -> list[int]:
    with _lock:
        return list(_live)


def _poll() -> None:
    while True:
        time.sleep(POLL_SECONDS)
        ids = local_runs()
        if not ids:
            continue
        try:
            flagged = runs.cancel_requests(ids)
        except Exception:  # noqa: BLE001 - a missed poll is retried next second
            log.exception("polling cancel requests failed")
            continue
        for run_id, by in flagged.items():
            mark(run_id, by)


def signal_name_text(signum: int) -> str:
    import signal

    try:
        return f"{signal.Signals(signum).name} to process {os.getpid()}"
    except ValueError:
        return f"signal {signum} to process {os.getpid()}"


# A forked child runs none of its parent's trainings.
os.register_at_fork(after_in_child=lambda: _live.clear())
