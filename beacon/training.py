"""The training service: one function for the console, the command line and cron.

`train(scope, force, user, trigger, requested_by, progress_callback, config)`:

1. Lock. A run row and the scope's lock row ("global" or "user:<id>") are inserted in one
   transaction (data_access/runs.py). If the lock is taken, nothing is written and the answer is
   `busy`, naming the running run. Exactly one training per scope runs at a time, across
   threads, processes and hosts. The lock is released in `finally`; a holder that died is
   cleaned up by `recover_abandoned()` (called before every training and at process start).
2. Decide (global scope; under the lock, so two requests never both decide to train). Train when
   there is no active global version, when the data fingerprint (computed in the database,
   including the hyperparameters) differs from the active version's, or when the active version
   is older than `config.max_age_hours`; otherwise the run is `skipped` with the reason
   ("data unchanged and the active model is 3 h old (max age 24 h)"). `force` trains regardless.
   A rollback holds: while the active version is older than the newest good one (an operator
   activated it on purpose), smart training skips until max_age_hours after that activation.
   The fingerprint is taken before the data is read, so rows that arrive during training make
   the next decision train again rather than be missed.
3. Train. Every epoch writes epoch/total/loss/validation metric to the run (and refreshes the
   heartbeat); a heartbeat thread also refreshes it every HEARTBEAT_SECONDS for long epochs.
4. Evaluate offline (temporal holdout, beacon vs popularity); the result is stored in the
   version's metrics. An evaluation that raises is recorded under metrics["evaluation_error"]
   and does not fail the model.
5. Store the version completely (metadata + blob), then activate it in a separate transaction,
   so a half-stored version can never be active.

Activation policy: a new global version is activated even when its offline NDCG@k is lower than
the active version's; the comparison is recorded (metrics["comparison"], and the run's reason).
Why: every training evaluates on its own holdout (the cutoff moves with the data), so the two
numbers measure different test sets; the new version is the one that knows the new events and
users; and a wrong activation is undone with one rollback (`models activate ID`). What is
refused is a broken model: a non-finite loss fails the run.

Any exception: the run is `failed` with the error text, a version inserted by this run is
marked failed (unless it had already been activated), the active version is untouched and the
lock is released.

User scope: a fold-in of that user's vector on the active global version, stored as a
user-scope version (base_model_id = that global version) and activated for that user only. It
is small (a vector, a few rows), so the version is stored already active, the run finished and
the lock freed in one transaction: all or nothing, like the global store-then-activate.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from beacon import cancel
from beacon.actions import Actor, audit_row, finish_in_background, state_changing
from beacon.errors import BeaconError, UnknownUser
from beacon.fingerprint import (  # noqa: F401 - training_fingerprint is used through here too
    config_or_default,
    training_fingerprint,
)
from beacon.training_report import (compare_with_active, components_report, evaluate_version,
                                    loss_value, plain, stored_fit)
from data_access import audit as audit_log
from data_access import models_store as store
from data_access import runs
from data_access.schema import RUN_TRIGGERS, utcnow

if TYPE_CHECKING:
    from beacon.config import ModelConfig

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
#: how often a run that lost its database tries again to record its failure and free its lock
RETRY_SECONDS = 2.0
BACKGROUND_WORKERS = 2  # a global training and a user fold-in may run side by side
FOLD_IN_HISTORY = 200  # the newest interactions a fold-in uses


@dataclass(frozen=True)
class TrainResult:
    status: str  # trained | skipped | failed | busy | cancelled
    reason: str
    model_version: int | None = None
    run_id: int | None = None
    metrics: dict = field(default_factory=dict)
    scope: str = "global"
    user: str | None = None
    seconds: float | None = None
    #: the stored model's own fit: epochs, best epoch and loss curve (not the holdout model's)
    training: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    train: bool
    reason: str
    fingerprint: runs.Fingerprint
    active: store.VersionMeta | None
    #: what makes two skips the same (the rule and the active version): they fold into one row
    skip_key: str | None = None


class TrainingBusy(BeaconError):
    """A training of this scope is already queued or running (raised by the background start)."""

    def __init__(self, message: str, run_id: int | None):
        super().__init__(message)
        self.run_id = run_id


# --- the decision ---------------------------------------------------------------------------

_config = config_or_default


def _age_text(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    if hours < 1:
        return f"{max(0, round(age.total_seconds() / 60))} min"
    if hours < 10:
        return f"{hours:.1f}".rstrip("0").rstrip(".") + " h"
    return f"{hours:.0f} h"


def _max_age_text(max_age_hours: float) -> str:
    return f"{max_age_hours:g} h"


def decide(config=None, force: bool = False, now: datetime | None = None) -> Decision:
    """Whether the global model should be trained now, and why (the smart-retrain rule)."""
    config = _config(config)
    fingerprint = training_fingerprint(config)
    active = store.active_version("global")
    now = now or utcnow()
    if force:
        return Decision(True, "forced", fingerprint, active)
    if active is None:
        return Decision(True, "no active model", fingerprint, active)
    age = now - active.created_at
    max_age = _max_age_text(config.max_age_hours)
    newest = store.newest_good_global_id()
    if newest is not None and newest > active.id:
        # An operator rolled back to an older version. Retraining on the data the rejected
        # version saw would undo that at once (the active fingerprint is old by construction),
        # so the rollback holds while the data stays as it was at the rollback (versions
        # activated before that was recorded: always), for at most the maximum age; new data
        # trains, as the fingerprint rule says, and --force trains regardless.
        pinned = now - (active.activated_at or active.created_at)
        unchanged = active.activated_data in (None, fingerprint.data_digest)
        if unchanged and pinned <= timedelta(hours=config.max_age_hours):
            return Decision(False, f"version {active.id} was activated over the newer version "
                                   f"{newest} {_age_text(pinned)} ago (a rollback) and the data "
                                   f"has not changed since; smart retraining resumes when it "
                                   f"changes or {max_age} after the rollback, --force trains now",
                            fingerprint, active, skip_key=f"rollback:{active.id}:{newest}")
    if active.fingerprint != fingerprint.digest:
        return Decision(True, f"data or settings changed since the active model (version "
                              f"{active.id}, {_age_text(age)} old)", fingerprint, active)
    if age > timedelta(hours=config.max_age_hours):
        return Decision(True, f"the active model (version {active.id}) is {_age_text(age)} old "
                              f"(max age {max_age})", fingerprint, active)
    return Decision(False, f"data unchanged and the active model (version {active.id}) is "
                           f"{_age_text(age)} old (max age {max_age})", fingerprint, active,
                    skip_key=f"unchanged:{active.id}:{fingerprint.digest[:16]}")


def recover_abandoned() -> list[runs.RunInfo]:
    """Mark runs whose process died as abandoned and free their locks (call at process start)."""
    recovered = runs.recover_abandoned()
    for run in recovered:
        log.warning("training run %s (%s) %s", run.id, run.scope_key, run.error)  # "abandoned: …"
    return recovered


def _busy_reason(holder: runs.RunInfo | None, scope_text: str) -> str:
    if holder is None:
        return f"a training for {scope_text} is already running"
    parts = [f"training run {holder.id} for {scope_text} is already {holder.status}"]
    if holder.epoch and holder.total_epochs:
        parts.append(f"epoch {holder.epoch}/{holder.total_epochs}")
    if holder.requested_by:
        parts.append(f"requested by {holder.requested_by}")
    started = holder.started_at or holder.created_at
    if started is not None:
        parts.append(f"since {started.strftime('%Y-%m-%d %H:%M:%S UTC')}")
    return ", ".join(parts)


# --- heartbeat --------------------------------------------------------------------------------

class _Heartbeat:
    """Refreshes a run's heartbeat every HEARTBEAT_SECONDS until stopped. One daemon thread
    per process beats for every live run (starting a thread per run cost a fold-in more than
    its SQL did)."""

    _lock = threading.Lock()
    _due: dict[int, float] = {}  # live run id -> monotonic time of its next beat
    _silent: set[int] = set()  # runs whose last beat failed (said once, not every beat)
    # runs that lost the database before they could record their end: run -> failure reason
    _unfinished: dict[int, tuple[runs.RunInfo, str]] = {}
    _thread: threading.Thread | None = None

    def __init__(self, run_id: int):
        self.run_id = run_id

    def start(self) -> "_Heartbeat":
        with _Heartbeat._lock:
            _Heartbeat._due[self.run_id] = time.monotonic() + HEARTBEAT_SECONDS
            _Heartbeat._ensure_thread()
        return self

    @staticmethod
    def _ensure_thread() -> None:
        """Caller holds _lock."""
        if _Heartbeat._thread is None or not _Heartbeat._thread.is_alive():
            _Heartbeat._thread = threading.Thread(target=_Heartbeat._loop,
                                                  name="beacon-heartbeat", daemon=True)
            _Heartbeat._thread.start()

    @staticmethod
    def finish_later(run: runs.RunInfo, reason: str) -> None:
        """Record `run` failed and free its lock as soon as the database answers again."""
        with _Heartbeat._lock:
            _Heartbeat._unfinished[run.id] = (run, reason)
            _Heartbeat._ensure_thread()

    @staticmethod
    def _retry_unfinished() -> None:
        with _Heartbeat._lock:
            pending = list(_Heartbeat._unfinished.values())
        for run, reason in pending:
            try:
                _record_failure(run, reason, reason)
            except Exception:  # noqa: BLE001 - still unreachable: try again shortly
                continue
            with _Heartbeat._lock:
                _Heartbeat._unfinished.pop(run.id, None)
            log.warning("training run %s recorded as failed once the database answered again",
                        run.id)

    def stop(self) -> None:
        with _Heartbeat._lock:
            _Heartbeat._due.pop(self.run_id, None)

    @staticmethod
    def _loop() -> None:
        while True:
            with _Heartbeat._lock:
                now = time.monotonic()
                beat = [run_id for run_id, due in _Heartbeat._due.items() if due <= now]
                for run_id in beat:
                    _Heartbeat._due[run_id] = now + HEARTBEAT_SECONDS
                wake = min(_Heartbeat._due.values(), default=now + HEARTBEAT_SECONDS)
                if _Heartbeat._unfinished:
                    wake = min(wake, now + RETRY_SECONDS)
            for run_id in beat:
                _Heartbeat._beat(run_id)
            _Heartbeat._retry_unfinished()
            time.sleep(max(0.05, wake - time.monotonic()))

    @staticmethod
    def _beat(run_id: int) -> None:
        try:
            runs.heartbeat(run_id)
        except Exception as error:  # noqa: BLE001 - a missed beat is not worth a crash
            if run_id not in _Heartbeat._silent:
                _Heartbeat._silent.add(run_id)
                log.warning("training run %s cannot reach the database: %s", run_id,
                            str(error).strip().splitlines()[0] if str(error).strip() else error)
            return
        _Heartbeat._silent.discard(run_id)


def _forget_parent_runs() -> None:
    """A forked child has no beating thread and owns none of its parent's runs."""
    _Heartbeat._due.clear()
    _Heartbeat._unfinished.clear()


os.register_at_fork(after_in_child=_forget_parent_runs)


def _record_failure(run: runs.RunInfo, reason: str, error: str) -> None:
    """The run failed: its row says why and its lock is free (raises while unreachable)."""
    runs.finish_run(run.id, "failed", error=error, reason=reason)
    runs.release(run.id, run.scope, run.user_id)


def _finish_failed(run: runs.RunInfo, reason: str, error: str) -> bool:
    """Record the failure now, or hand it to the heartbeat thread, which retries until the
    database answers (a run that lost its database must not hold the lock). True when done."""
    try:
        _record_failure(run, reason, error)
        return True
    except Exception as lost:  # noqa: BLE001 - the database is what failed
        detail = str(lost).strip().splitlines()[0] if str(lost).strip() else type(lost).__name__
        _Heartbeat.finish_later(run, f"lost the database during training ({detail}); "
                                     f"then: {reason}")
        return False


# --- the service ------------------------------------------------------------------------------

def _resolve_user(user: str | None):
    from data_access.catalog import user_by_email

    if not user or not str(user).strip():
        raise BeaconError("a user-scope training needs --user EMAIL")
    row = user_by_email(str(user))
    if row is None:
        raise UnknownUser(str(user))
    return row


def _check_request(scope: str, trigger: str) -> None:
    if scope not in ("global", "user"):
        raise BeaconError(f"unknown training scope {scope!r} (expected global or user)")
    if trigger not in RUN_TRIGGERS:
        raise BeaconError(f"unknown trigger {trigger!r} (expected one of {', '.join(RUN_TRIGGERS)})")


def _prepare(scope: str, user: str | None):
    """Validate a request before anything is written: (scope, user row or None, base model)."""
    if user is not None and scope == "global":
        scope = "user"
    if scope == "global":
        return scope, None, None
    row = _resolve_user(user)
    from beacon.versions import active_global

    base = active_global()
    if base is None or not base.is_active:
        raise BeaconError("no active global model to fold this user into: train the global "
                          "model first (python -m beacon train)")
    return scope, row, base


def _request_lock(scope: str, user: str | None, trigger: str, requested_by: str | None,
                  config: ModelConfig | None, status: str, audit=None):
    """Check the request, resolve the user and settings, recover dead runs, then take the lock
    for the scope with a run row in `status`. Returns what the caller needs, and the reason to
    give when another run holds the lock."""
    _check_request(scope, trigger)
    scope, user_row, base = _prepare(scope, user)
    config = _config(config) if (config is not None or scope == "global") else None

    def acquire() -> runs.Acquired:
        return runs.acquire(
            scope, user_row.id if user_row else None, trigger=trigger, requested_by=requested_by,
            hyperparameters=config.to_dict() if config is not None else {}, status=status,
            audit=audit,
        )

    if scope == "global":
        recover_abandoned()
        acquired = acquire()
    else:
        # A fold-in takes milliseconds: it frees a dead holder's lock only when it meets one.
        acquired = acquire()
        if acquired.busy and recover_abandoned():
            acquired = acquire()
    busy_reason = None
    if acquired.busy:
        scope_text = "global" if user_row is None else f"user {user_row.email}"
        busy_reason = _busy_reason(acquired.holder, scope_text)
    return scope, user_row, base, config, acquired, busy_reason


@state_changing("train", needs="operate")
def train(
    scope: str = "global",
    force: bool = False,
    user: str | None = None,
    trigger: str = "cli",
    progress_callback: Callable[[Any], None] | None = None,
    config=None,
    *,
    actor: Actor,
) -> TrainResult:
    """Train (or skip, or answer busy) now, in this thread. See the module docstring.

    Raises BeaconError for bad requests (unknown user, no active global model for a fold-in,
    bad scope/trigger); every other failure is a `failed` result with the run's error.
    """
    requested_by = actor.name
    scope, user_row, base, config, acquired, busy_reason = _request_lock(
        scope, user, trigger, requested_by, config, status="running")
    if acquired.busy:
        return TrainResult(status="busy", reason=busy_reason,
                           run_id=acquired.holder.id if acquired.holder else None,
                           scope=scope, user=user_row.email if user_row else None)
    return _execute(acquired.run, force=force, config=config, user_row=user_row, base=base,
                    progress_callback=progress_callback, requested_by=requested_by)


def _execute(run: runs.RunInfo, **kwargs) -> TrainResult:
    """Runs with the lock held by `run`; always finishes the run and releases the lock. A
    cancel of the run stops it at its next batch (see beacon/cancel.py)."""
    with cancel.watching(run.id):
        return _execute_watched(run, **kwargs)


@dataclass
class _Written:
    """What a run has written so far, for its failure handling: a version to mark failed
    unless it was activated, and whether the lock is already free."""

    version_id: int | None = None
    activated: bool = False
    released: bool = False


def _execute_watched(run: runs.RunInfo, *, force: bool, config, user_row, base,
                     progress_callback, requested_by,
                     heartbeat: _Heartbeat | None = None) -> TrainResult:
    started = time.perf_counter()
    heartbeat = heartbeat or _Heartbeat(run.id).start()
    written = _Written()
    email = user_row.email if user_row is not None else None
    try:
        if run.scope == "user":
            return _run_fold_in(run, user_row, base, config, requested_by, written)
        return _run_global(run, force, config, progress_callback, requested_by, started, written)
    except cancel.TrainingCancelled as stopped:
        text = f"cancelled by {stopped.by}; the active model is unchanged"
        log.warning("training run %s %s", run.id, text)
        _record_cancelled(run, written, text)
        return _ended(run, "cancelled", text, email, started)
    except KeyboardInterrupt:  # Ctrl-C on `train`: stopped by the person, like a cancel
        _record_cancelled(run, written, "interrupted (Ctrl-C); the active model is unchanged")
        raise
    except BaseException as error:
        text = _record_failed(run, written, error)
        if not isinstance(error, Exception):
            raise
        return _ended(run, "failed", text, email, started)
    finally:
        heartbeat.stop()
        if not written.released:
            _quietly(runs.release, run.id, run.scope, run.user_id)


def _run_fold_in(run: runs.RunInfo, user_row, base, config, requested_by,
                 written: _Written) -> TrainResult:
    if run.status == "queued":
        runs.mark_running(run.id)
    result = _fold_in(run, user_row, base, config, requested_by)
    written.activated = written.released = True  # committed with the version
    return result


def _run_global(run: runs.RunInfo, force: bool, config, progress_callback, requested_by,
                started: float, written: _Written) -> TrainResult:
    """Decides under the lock; skips, or trains, evaluates, stores and activates."""
    runs.mark_running(run.id, total_epochs=config.epochs, hyperparameters=config.to_dict())
    decision = decide(config, force=force)
    if not decision.train:
        kept = runs.finish_skipped(run, reason=decision.reason,
                                   skip_key=decision.skip_key or decision.reason[:200])
        active = decision.active
        return TrainResult(status="skipped", reason=decision.reason,
                           model_version=active.id if active else None, run_id=kept.id,
                           metrics=active.metrics if active else {},
                           seconds=time.perf_counter() - started)
    runs.set_reason(run.id, decision.reason)
    return _train_global(run, decision, config, progress_callback, requested_by, started,
                         written)


def _train_global(run: runs.RunInfo, decision: Decision, config, progress_callback,
                  requested_by, started: float, written: _Written) -> TrainResult:
    """Steps 3 to 5 of the module docstring: fit, evaluate, store, then activate."""
    from data_access.training_data import load_training_data

    data = load_training_data()
    model, training_seconds = _fit(run, data, config, progress_callback)
    losses = _finite_losses(model)
    blob = model.to_bytes()
    metrics, comparison = _evaluation(run, data, config, decision.active)
    components = components_report(model)
    settings = config.to_dict()
    version_id = store.insert_version(
        scope="global", blob=blob, model_type="hybrid",
        fingerprint=decision.fingerprint.digest, hyperparameters=settings,
        counts=plain(getattr(model, "counts", {}) or {}), training_seconds=training_seconds,
        loss_history=losses, metrics=metrics, components=components,
        created_by=requested_by or run.trigger,
    )
    written.version_id = version_id
    store.activate(version_id, audit=audit_row(result="trained", model_version=version_id),
                   held_lock=(runs.scope_key("global"), run.id))
    written.activated = True
    reason = decision.reason
    if comparison.get("note"):
        reason = f"{reason}; {comparison['note']}"
    runs.finish_run(run.id, "succeeded", reason=reason, model_id=version_id)
    return TrainResult(status="trained", reason=reason, model_version=version_id,
                       run_id=run.id, metrics=metrics,
                       seconds=time.perf_counter() - started,
                       training=stored_fit(model, losses, training_seconds, components,
                                           settings))


def _fit(run: runs.RunInfo, data, config, progress_callback) -> tuple[Any, float]:
    """The model fitted on `data`, every epoch recorded on the run, and the seconds it took."""
    from beacon.model import HybridModel

    def on_epoch(report) -> None:
        runs.record_progress(run.id, report.epoch, report.total_epochs, report.loss,
                             getattr(report, "val_metric", None),
                             getattr(report, "phase", None))
        if progress_callback is not None:
            progress_callback(report)

    fit_started = time.perf_counter()
    model = HybridModel.fit(data, config, on_epoch)
    return model, time.perf_counter() - fit_started


def _finite_losses(model) -> list:
    """The model's loss history, JSON-safe; RuntimeError when a loss is not finite (a broken
    model is refused)."""
    raw_losses = list(getattr(model, "loss_history", []) or [])
    finals = [loss_value(x) for x in raw_losses]
    if any(x is not None and not math.isfinite(x) for x in finals):
        raise RuntimeError(f"training diverged: non-finite loss in {finals!r}")
    return plain(raw_losses)


def _evaluation(run: runs.RunInfo, data, config,
                active: store.VersionMeta | None) -> tuple[dict, dict]:
    """The offline evaluation, with its comparison with the active version when there is one,
    and that comparison."""
    metrics = evaluate_version(data, config, on_step=lambda _report: runs.heartbeat(run.id))
    comparison = compare_with_active(metrics, active)
    if comparison:
        metrics["comparison"] = comparison
    return plain(metrics), comparison


def _discard_version(written: _Written, text: str) -> None:
    """A version this run inserted but did not activate is marked failed."""
    if written.version_id is not None and not written.activated:
        _quietly(store.mark_failed, written.version_id, text)


def _record_cancelled(run: runs.RunInfo, written: _Written, text: str) -> None:
    _discard_version(written, text)
    _quietly(runs.finish_run, run.id, "cancelled", reason=text)


def _record_failed(run: runs.RunInfo, written: _Written, error: BaseException) -> str:
    """Records the failure (called while `error` is being handled: the traceback is its own)
    and returns the run's reason."""
    text = _reason_line(error)
    # The outcome reaches the caller (the CLI's one line, the console's run row); the
    # traceback goes to the log (a file for the CLI), never to a terminal.
    log.info("training run %s failed: %s", run.id, text, exc_info=True)
    _discard_version(written, text)
    _finish_failed(run, text, traceback.format_exc())
    written.released = True
    return text


def _ended(run: runs.RunInfo, status: str, text: str, email: str | None,
           started: float) -> TrainResult:
    """The result of a run that stopped without a model (cancelled or failed)."""
    return TrainResult(status=status, reason=text, model_version=None, run_id=run.id,
                       scope=run.scope, user=email, seconds=time.perf_counter() - started)


def _reason_line(error: BaseException) -> str:
    """A failed run's reason: one line (the database's own messages span several)."""
    from beacon.failures import explain

    known = explain(error) if isinstance(error, Exception) else None
    if known:
        return known.splitlines()[0]
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _quietly(function, *args, **kwargs) -> None:
    try:
        function(*args, **kwargs)
    except Exception:  # noqa: BLE001 - cleanup must not hide the original outcome
        log.info("%s failed during training cleanup", getattr(function, "__name__", function),
                 exc_info=True)


# --- per-user fold-in ---------------------------------------------------------------------------

def _user_history_frame(user_id: int):
    """The user's latest interactions as event rows with a `type` column (what fold_in takes):
    the newest FOLD_IN_HISTORY non-impression interactions, joined with those events' features."""
    from data_access.training_data import load_fold_in_history

    return load_fold_in_history(user_id, FOLD_IN_HISTORY)


@dataclass(frozen=True)
class FoldedIn:
    """One user's fold-in on a global version, computed and not yet stored."""

    user_id: int
    vector: Any  # np.ndarray
    bias: float
    interactions: int
    seconds: float
    reason: str  # the run's reason


def fold_in_user(user_row, history, base, config=None) -> FoldedIn:
    """Fold one user in on `base` (a versions.LoadedModel) from `history` (their newest
    interactions as event rows, data_access.training_data.load_fold_in_history's frame)."""
    return fold_in_users([user_row], [history], base, config)[0]


def fold_in_users(user_rows: list, histories: list, base, config=None) -> list[FoldedIn]:
    """fold_in_user of several users in one pass of the model (`HybridModel.fold_in_many`:
    one event matrix, the steps of all of them together); `seconds` is each one's share of
    the pass."""
    from beacon.features import UserContext

    started = time.perf_counter()
    config = fold_in_config(base, config)
    contexts = [UserContext(user_id=row.id, tags=tuple(str(t) for t in row.tags),
                            latitude=row.latitude, longitude=row.longitude, city=row.city)
                for row in user_rows]
    answers = base.model.fold_in_many(contexts, histories, config)
    seconds = (time.perf_counter() - started) / max(1, len(user_rows))
    return [FoldedIn(row.id, vector, float(bias), int(len(history)), seconds,
                     f"fold-in of {row.email} on global version {base.version_id} "
                     f"({len(history)} interactions, {seconds * 1000:.0f} ms)")
            for row, history, (vector, bias) in zip(user_rows, histories, answers)]


def fold_in_config(base, config=None):
    """The settings a fold-in on `base` uses: `config`, else the base's own."""
    from beacon.config import ModelConfig

    if config is not None:
        return config
    return ModelConfig.from_dict(base.hyperparameters) if base.hyperparameters else ModelConfig()


def _fold_in(run: runs.RunInfo, user_row, base, config, requested_by) -> TrainResult:
    """Reads the history (one connection), folds the user in, then stores the version active,
    finishes the run and frees the lock in one transaction: all or nothing."""
    from beacon.versions import encode_personal_vector
    from data_access.db import session_scope

    started = time.perf_counter()
    config = fold_in_config(base, config)
    history = _user_history_frame(user_row.id)
    folded = fold_in_user(user_row, history, base, config)
    with session_scope() as session:
        version_id = store.insert_active_user_version(
            session, user_id=user_row.id, base_model_id=base.version_id,
            blob=encode_personal_vector(folded.vector, folded.bias), model_type="fold-in",
            fingerprint=base.fingerprint, hyperparameters=config.to_dict(),
            counts={"interactions": folded.interactions}, training_seconds=folded.seconds,
            created_by=requested_by or run.trigger,
        )
        runs.succeed_and_release(session, run, reason=folded.reason, model_id=version_id)
        entry = audit_row(result="trained", model_version=version_id)
        if entry is not None:
            audit_log.insert(session, entry)
    return TrainResult(status="trained", reason=folded.reason, model_version=version_id,
                       run_id=run.id, scope="user", user=user_row.email,
                       seconds=time.perf_counter() - started)


# --- background (the console) ---------------------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_futures: dict[int, Future] = {}


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=BACKGROUND_WORKERS,
                                           thread_name_prefix="beacon-train")
            cancel_own_trainings_on_exit()
        return _executor


@state_changing("start_training", needs="operate")
def start_training_in_background(
    scope: str = "global",
    force: bool = False,
    user: str | None = None,
    trigger: str = "button",
    config=None,
    progress_callback: Callable[[Any], None] | None = None,
    *,
    actor: Actor,
) -> int:
    """Queue a training on this process's worker pool and return its run id at once.

    The queued run and the lock are written before returning, so a second request (from any
    process) is refused immediately: TrainingBusy (a BeaconError naming the running run, with
    `.run_id`). Progress and outcome are read from the run row (`runs.get_run(run_id)`), which
    every replica sees; `background_result(run_id)` waits for it in this process. `config`: a
    ModelConfig, or a form's settings as a dict over the saved training settings (a bad value
    is then refused in here, audited).
    """
    if isinstance(config, dict):
        from beacon.training_settings import current_config

        config = current_config().with_overrides(**config)
    requested_by = actor.name
    scope, user_row, base, config, acquired, busy_reason = _request_lock(
        scope, user, trigger, requested_by, config, status="queued", audit=audit_row())
    if acquired.busy:
        raise TrainingBusy(busy_reason,
                           acquired.holder.id if acquired.holder else None)
    run = acquired.run
    heartbeat = _Heartbeat(run.id).start()
    outcome = {"run_id": run.id, "scope": scope, "force": force, "trigger": trigger,
               **({"user": user_row.email} if user_row is not None else {})}
    try:
        future = _get_executor().submit(
            finish_in_background, actor, "train", outcome, functools.partial(
                _execute, run, force=force, config=config, user_row=user_row, base=base,
                progress_callback=progress_callback, requested_by=requested_by,
                heartbeat=heartbeat))
    except BaseException as error:
        heartbeat.stop()
        runs.finish_run(run.id, "failed", error=f"could not start: {error}")
        runs.release(run.id, run.scope, run.user_id)
        raise
    with _executor_lock:
        if len(_futures) > 100:  # forget finished trainings nobody collected
            for rid in [r for r, f in _futures.items() if f.done()]:
                _futures.pop(rid, None)
        _futures[run.id] = future
    return run.id


@state_changing("cancel_training", needs="operate")
def cancel_training(run_id: int | None = None, user: str | None = None, *,
                    actor: Actor) -> runs.RunInfo:
    """Ask a queued or running training to stop at its next batch: run `run_id`, or the one of
    `user` (email), or the global one. It finishes `cancelled`, frees its lock and leaves the
    active model as it was. Returns the flagged run; BeaconError when nothing is running."""
    if run_id is None:
        user_row = _resolve_user(user) if user else None
        live = runs.running_run("user" if user_row else "global",
                                user_row.id if user_row else None)
        if live is None:
            what = f"for {user_row.email}" if user_row else "for the global model"
            raise BeaconError(f"no training is running {what}")
        run_id = live.id
    flagged = runs.request_cancel(int(run_id), actor.name, audit=audit_row())
    if flagged is None:
        existing = runs.get_run(int(run_id))
        if existing is None:
            raise BeaconError(f"no training run {run_id}")
        raise BeaconError(f"training run {run_id} is already {existing.status}")
    cancel.mark(flagged.id, actor.name)  # ours: stop now rather than at the next poll
    return flagged


def cancel_own_trainings_on_exit() -> None:
    """At interpreter exit (the console after SIGTERM), cancel this process's trainings before
    the worker threads are joined, so the process ends within seconds instead of after the
    run. Registered when the worker pool is made, so it runs before the pool's own join."""
    threading._register_atexit(  # type: ignore[attr-defined]
        lambda: cancel.cancel_local(f"shutdown of process {os.getpid()}"))


def install_signal_cancel(signals: tuple[int, ...] | None = None) -> None:
    """In the main thread of a process that trains (the CLI): SIGTERM cancels this process's
    trainings at their next batch; the training then returns `cancelled` and the caller exits."""
    import signal

    def handler(signum, _frame) -> None:
        cancel.cancel_local(cancel.signal_name_text(signum))

    for signum in signals or (signal.SIGTERM,):
        signal.signal(signum, handler)


def wait_for_background(timeout: float | None = None) -> None:
    """Block until every background training this process started has ended (tests, shutdown)."""
    from concurrent.futures import wait

    with _executor_lock:
        futures = list(_futures.values())
    wait(futures, timeout=timeout)


def background_result(run_id: int, timeout: float | None = None) -> TrainResult | None:
    """Wait for a background training started by this process (None if it is not ours or
    already collected; read `runs.get_run(run_id)` for the state in that case)."""
    with _executor_lock:
        future = _futures.get(run_id)
    if future is None:
        return None
    result = future.result(timeout=timeout)
    with _executor_lock:
        _futures.pop(run_id, None)
    return result
