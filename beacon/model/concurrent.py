"""Work beside the early-stopping loop: a job on a thread of its own, and trainers that follow
the loop epoch by epoch.

Early stopping trains one model on one torch thread. The refit (every row, for the epoch count
early stopping picks) and the content probe (the validation phase's rows less the newest
events', for the same count) only need that count at the end, so they train beside it, one
epoch at a time, keeping their state at every epoch that may still be picked. Each has its own
generators, so what `finish(n)` returns is the model that n epochs trained afterwards would
give, to the byte, at the wall-time cost of a core that was idle.
"""
from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pandas as pd

from beacon.model.trainer import _Trainer

FOLLOWER_NICE = 10


class _Job:
    """Work on a thread of its own (`nice`: at a follower's priority); `result()` joins the
    thread, then returns or raises."""

    def __init__(self, work: Callable[..., Any], *args: Any, nice: bool = False):
        self._future: Future = Future()
        context = contextvars.copy_context()  # so that a cancel of the training stops it too

        def run() -> None:
            if nice:
                _lower_priority()
            try:
                self._future.set_result(context.run(work, *args))
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
                self._future.set_exception(error)

        self._thread = threading.Thread(target=run, name="beacon-fit-choices", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self.join()
        return self._future.result()


class FollowerStopped(RuntimeError):
    """An epoch was asked of a follower that was stopped before it trained it."""


class EpochFollower:
    """A trainer that trains on its own thread beside early stopping, never past the best
    epoch so far. Early stopping tells it after each epoch (`validated`); `finish(n)` waits
    for epoch n and returns the trainer as it was then."""

    def __init__(self, name: str, trainer: _Trainer, pairs: pd.DataFrame, max_epochs: int):
        self.trainer, self.pairs = trainer, pairs
        self._changed = threading.Condition()
        self._keep_from = 1  # early stopping's best epoch so far: no earlier state is chosen
        self._target: int | None = None
        self._abort = False
        self._done = 0
        self._states: dict[int, Any] = {}
        self._reports: dict[int, tuple[float, float]] = {}  # epoch -> (loss, seconds)
        self._error: BaseException | None = None
        context = contextvars.copy_context()  # so that a cancel of the training stops it too
        self._thread = threading.Thread(target=context.run, args=(self._run, max_epochs),
                                        name=f"beacon-fit-{name}", daemon=True)
        self._thread.start()

    def _may_run(self, epoch: int) -> bool:
        """Only an epoch early stopping has already reached as its best so far: the best
        never moves back (with no smoothing), so no epoch trained here is thrown away."""
        if self._abort or self._target is not None:
            return True
        return epoch <= self._keep_from

    def _run(self, max_epochs: int) -> None:
        _lower_priority()
        try:
            for epoch in range(1, max_epochs + 1):
                with self._changed:
                    self._changed.wait_for(lambda: self._may_run(epoch))
                    if self._abort or (self._target is not None and epoch > self._target):
                        return
                began = time.perf_counter()
                loss = self.trainer.run_epoch(self.pairs)
                seconds = time.perf_counter() - began
                state = self.trainer.state()
                with self._changed:
                    self._reports[epoch] = (loss, seconds)
                    if epoch >= self._keep_from:
                        self._states[epoch] = state
                    self._done = epoch
                    self._changed.notify_all()
        except BaseException as error:  # noqa: BLE001 - raised again where it is waited for
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def validated(self, epoch: int, best: int, stopping: bool = False) -> None:
        """Early stopping finished `epoch`; `best` is its best so far, and its choice when
        it is `stopping` (no epoch after it is needed then)."""
        with self._changed:
            self._keep_from = best
            if stopping:
                self._target = best
            for old in [e for e in self._states if e < best]:
                del self._states[old]
            self._changed.notify_all()

    def report(self, epochs: int, epoch: int) -> tuple[float, float]:
        """(loss, seconds) of `epoch`, once trained; `epochs` is the count chosen."""
        with self._changed:
            if self._target is None:
                self._target = epochs
                self._changed.notify_all()
            # a follower stopped before the epoch never reaches it (a failure elsewhere):
            # whoever waits for it must not wait for ever
            self._changed.wait_for(lambda: self._done >= epoch or self._error is not None
                                   or self._abort)
            if self._error is not None:
                raise self._error
            if self._done < epoch:
                raise FollowerStopped(f"the {self._thread.name} follower was stopped before "
                                      f"epoch {epoch}")
            return self._reports[epoch]

    def finish(self, epochs: int) -> _Trainer | None:
        """The trainer after `epochs` epochs, or None when that state was not kept (a
        smoothed curve can move its best epoch back): the caller then trains it again."""
        self.report(epochs, epochs)
        self._thread.join()
        state = self._states.pop(epochs, None)
        self._states.clear()
        if state is None:
            return None
        self.trainer.load_state(state)
        return self.trainer

    def stop(self) -> None:
        """Abandon the work (after a failure elsewhere) and wait for the thread to end."""
        with self._changed:
            self._abort = True
            self._changed.notify_all()
        self._thread.join()


def _lower_priority() -> None:
    """Nice this thread (Linux threads have their own priority): early stopping is the
    critical path, so followers take what it leaves idle, not half of its core."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), FOLLOWER_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: same work, equal share
        pass
