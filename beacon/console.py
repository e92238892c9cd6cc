"""Services behind the console's frame and its Overview, Training, Models and Metrics pages.

Each page calls one function here (or one engine function directly when it fits) and draws what
comes back: plain dataclasses, lists of dicts ready for a table, numbers ready for st.metric.
Every read and every loop over rows lives here or further down, never in a page.

The engine modules (training, versions, metrics, recommend) are imported lazily: this module is
imported by every console page, and importing torch costs a second.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import numpy as np

from beacon import metrics as online
from beacon.actions import Actor
from beacon.components_view import component_comparison, component_rows
from beacon.errors import BeaconError
from data_access import catalog, models_store, runs
from data_access.db import database_url, describe_url

UTC = timezone.utc
RUN_HISTORY = 50
OVERVIEW_RUNS = 5
COMPARE_SAMPLE = 40


def _now(now: datetime | None = None) -> datetime:
    return now if now is not None else datetime.now(UTC)





def database_key() -> str:
    """The database in force: the key every cached console read is stored under."""
    return database_url()


def age_text(age: timedelta | None, missing: str = "—") -> str:
    """'4 min', '3 h 12 min', '2 d 5 h': how old something is, for a person."""
    if age is None:
        return missing
    minutes = max(0, int(age.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


# --------------------------------------------------------------------------------------------
# The active model, its offline metrics, the fingerprint

@dataclass(frozen=True)
class ActiveModel:
    id: int
    created_at: datetime | None
    age: timedelta | None
    fingerprint_state: str  # "current", "stale" or "unknown"
    ndcg: float | None
    ndcg_popularity: float | None
    k: int
    counts: dict = field(default_factory=dict)
    training_seconds: float | None = None
    smart_retrain: str = ""  # what a smart retrain would do now, and why

    @property
    def age_text(self) -> str:
        return age_text(self.age)


def offline_metric(metrics: dict | None, strategy: str, name: str = "ndcg") -> float | None:
    """One number out of a version's stored evaluation ({"beacon": {...}, "popularity": ...})."""
    block = (metrics or {}).get(strategy) or {}
    value = block.get(name)
    if value is None:
        for key, candidate in block.items():  # "ndcg@10" style keys
            if str(key).split("@")[0] == name:
                value = candidate
                break
    return None if value is None else float(value)


def _freshness() -> tuple[str, str]:
    """The fingerprint's state ("current", "stale", "no-model") and what a smart retrain would
    do now, and why: "stale" alone does not say that a rollback holds retraining off, or that
    the active model's own settings are not the defaults a smart retrain uses. The data's
    fingerprint is computed once for both."""
    from beacon import training, training_settings, versions

    try:
        decision = training.decide()
    except training_settings.UnreadableSettings as error:  # the console still opens, and says
        return "unknown", f"a smart retrain would fail: {error}"
    verdict = "would train now" if decision.train else "would not train"
    state = versions.fingerprint_state(digest=decision.fingerprint.digest)
    return str(state), f"a smart retrain {verdict}: {decision.reason}"


def active_model(now: datetime | None = None) -> ActiveModel | None:
    """The active global version's metadata (no weights are loaded for this)."""
    active = models_store.active_version("global")
    if active is None:
        return None
    metrics = active.metrics or {}
    state, smart_retrain = _freshness()
    return ActiveModel(
        id=int(active.id),
        created_at=active.created_at,
        age=(_now(now) - active.created_at) if active.created_at else None,
        fingerprint_state=state,
        ndcg=offline_metric(metrics, "beacon"),
        ndcg_popularity=offline_metric(metrics, "popularity"),
        k=int(metrics.get("k") or 10),
        counts=dict(active.counts or {}),
        training_seconds=active.training_seconds,
        smart_retrain=smart_retrain,
    )


# --------------------------------------------------------------------------------------------
# Training runs, as rows for tables

def run_row(run: runs.RunInfo) -> dict:
    duration = None
    if run.started_at is not None:
        end = run.finished_at or _now()
        duration = max(0.0, (end - run.started_at).total_seconds())
    return {
        "run": run.id,
        "status": run.status,
        "scope": run.scope if run.user_id is None else f"user {run.user_id}",
        "trigger": run.trigger,
        "who": run.requested_by or "",
        "created": run.created_at,
        "duration_s": None if duration is None else round(duration, 1),
        # a skipped run never trained: no "0/30" that reads like a stalled one
        "epoch": (f"{run.epoch or 0}/{run.total_epochs}"
                  if run.total_epochs and run.status != "skipped" else ""),
        "model": run.model_id,
        "reason": run.reason or "",
        "error": (run.error or "").strip().splitlines()[-1][:300] if run.error else "",
        # identical skips fold into one row: how many, and when the newest one was
        "times": run.repeats,
        "last_seen": run.last_seen_at if run.repeats > 1 else None,
    }


@dataclass(frozen=True)
class LiveRun:
    """The training in progress, for the live panel: progress from the training runs table."""

    id: int
    status: str
    scope: str
    trigger: str
    requested_by: str | None
    epoch: int
    total_epochs: int | None
    last_loss: float | None
    progress: list
    started_at: datetime | None
    reason: str | None
    cancel_requested_by: str | None = None

    @property
    def fraction(self) -> float:
        if not self.total_epochs:
            return 0.0
        return min(1.0, max(0.0, self.epoch / self.total_epochs))

    @property
    def short_progress(self) -> str:
        """Where the run is, in a few words for the sidebar: "epoch 8/30", "refit 3/19"."""
        if not self.total_epochs:
            return ""
        refit = bool(self.progress) and self.progress[-1].get("phase") == "refit"
        return f"{'refit' if refit else 'epoch'} {self.epoch}/{self.total_epochs}"

    @property
    def epoch_text(self) -> str:
        """Where the run is. Early stopping trains with validation, then refits on all data for
        the chosen number of epochs: the counter starts again there, which says so."""
        if not self.total_epochs:
            return self.status
        phases = [entry.get("phase") for entry in self.progress]
        if phases and phases[-1] == "retry":
            return (f"epoch {self.epoch} of {self.total_epochs} at most, at a higher learning "
                    "rate (the first run reached its cap still improving)")
        # the fit's last epoch is followed by the evaluation and the storing (seconds on a
        # large catalogue), which would otherwise look like a stall at "19 of 19"
        after = "; evaluating and storing the new version" if self.epoch >= self.total_epochs \
            else ""
        if phases and phases[-1] == "refit":
            validated = sum(1 for phase in phases if phase != "refit")
            return (f"refit on all data, epoch {self.epoch} of {self.total_epochs} "
                    f"(after {validated} epochs with validation){after}")
        if self.progress and self.progress[-1].get("val_metric") is not None:
            # an early stopping that ran to its cap goes on to the evaluation from here
            return f"epoch {self.epoch} of {self.total_epochs} at most (early stopping){after}"
        return f"epoch {self.epoch} of {self.total_epochs}{after}"


def _live(run: runs.RunInfo | None) -> LiveRun | None:
    return None if run is None else live_run(run)


def live_run(run: runs.RunInfo) -> LiveRun:
    """A run row as the live panels show it."""
    return LiveRun(
        id=run.id, status=run.status, scope=run.scope, trigger=run.trigger,
        requested_by=run.requested_by, epoch=int(run.epoch or 0), total_epochs=run.total_epochs,
        last_loss=run.last_loss, progress=list(run.progress or []), started_at=run.started_at,
        reason=run.reason, cancel_requested_by=run.cancel_requested_by,
    )


def running_training() -> LiveRun | None:
    """The global training now queued or running (any process, any host), or None."""
    return _live(runs.running_run("global"))


def run_status(run_id: int) -> LiveRun | None:
    return _live(runs.get_run(run_id))


@dataclass(frozen=True)
class RunOutcome:
    """How a run that a button started stands, in one sentence for the page that started it.

    kind: "info" while queued or running, then "success" (trained), "warning" (skipped: nothing
    changed, the reason says why) or "error" (failed or abandoned)."""

    run_id: int
    final: bool
    status: str
    kind: str
    text: str


_OUTCOME_KIND = {"succeeded": "success", "skipped": "warning", "failed": "error",
                 "abandoned": "error"}


def run_outcome(run_id: int) -> RunOutcome | None:
    """The outcome of run `run_id` (None if there is no such run)."""
    run = runs.get_run(int(run_id))
    if run is None:
        return None
    if run.user_id is not None:
        user = catalog.user_by_id(run.user_id)
        what = f"retrain of {user.email}" if user is not None else f"retrain of user {run.user_id}"
    else:
        what = {"force": "forced retrain", "button": "smart retrain"}.get(run.trigger,
                                                                       f"{run.trigger} retrain")
    head = f"Run {run.id} ({what})"
    if run.status not in runs.FINAL_STATUSES:
        return RunOutcome(run.id, False, run.status, "info", f"{head} is {run.status}.")
    duration = ""
    if run.started_at is not None and run.finished_at is not None:
        duration = f" in {max(0.0, (run.finished_at - run.started_at).total_seconds()):.1f} s"
    kind = _OUTCOME_KIND.get(run.status, "info")
    if run.status == "succeeded":
        text = f"{head} succeeded{duration}" + (
            f": model version {run.model_id}" if run.model_id is not None else "")
        text += f" ({run.reason})." if run.reason else "."
        warning = _convergence_warning(run.model_id)
        if warning:
            kind, text = "warning", f"{text} Warning: {warning}."
    elif run.status == "skipped":
        text = f"{head} skipped: {run.reason or 'nothing to do'}. The active model stays."
    else:
        detail = _failure_detail(run)
        text = f"{head} {run.status}: {detail}."
        if "active model is unchanged" not in detail:
            text += " The active model is unchanged."
    return RunOutcome(run.id, True, run.status, kind, text)


def _failure_detail(run: runs.RunInfo) -> str:
    """Why a run ended without a model, in one line. A stored traceback's last line can be
    SQLAlchemy's "(Background on this error at: …)"; the run's reason is the explained line
    (beacon.failures) written with it. A one-line error ("abandoned: …", "could not start: …")
    is that line; a cancelled run has only its reason."""
    error = (run.error or "").strip()
    if error and not error.startswith("Traceback"):
        line = error.splitlines()[0]
        return line.removeprefix(f"{run.status}: ")[:300]  # "abandoned: abandoned: …" reads badly
    if run.reason:
        return run.reason[:300]
    return error.splitlines()[-1][:300] if error else "no detail"


def _convergence_warning(version_id: int | None) -> str:
    """Why version `version_id` is likely under-trained ("" when early stopping ended its
    fit, or the version is gone)."""
    if version_id is None:
        return ""
    from beacon import versions

    try:
        return _convergence_note(versions.show(int(version_id)))
    except BeaconError:  # deleted since
        return ""


# --------------------------------------------------------------------------------------------
# The sidebar frame

@dataclass(frozen=True)
class SidebarStatus:
    """The slow-changing part of the frame (cache it briefly); the running training is read
    live with running_training()."""

    database: dict
    active: ActiveModel | None


def sidebar_status(now: datetime | None = None) -> SidebarStatus:
    described = describe_url()
    database = {key: described[key] for key in ("dialect", "host", "database")}
    return SidebarStatus(database=database, active=active_model(now))


# --------------------------------------------------------------------------------------------
# Overview

@dataclass(frozen=True)
class Rate:
    """A rate this period against the previous one (None when there were no impressions)."""

    current: float | None
    previous: float | None

    @property
    def delta(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous


@dataclass(frozen=True)
class Overview:
    users: int
    events: int
    upcoming_events: int
    interactions_7d: int
    active: ActiveModel | None
    runs: list[dict]
    ctr: Rate
    conversion: Rate


def _rate(values: dict, name: str) -> float | None:
    value = values.get(name)
    return None if value is None else float(value)


def overview(now: datetime | None = None) -> Overview:
    now = _now(now)
    counts = catalog.overview_counts(now)
    comparison = online.compare_periods(days=7, now=now)
    return Overview(
        users=counts["users"],
        events=counts["events"],
        upcoming_events=counts["upcoming_events"],
        interactions_7d=counts["interactions_7d"],
        active=active_model(now),
        runs=[run_row(run) for run in runs.list_runs(limit=OVERVIEW_RUNS)],
        ctr=Rate(_rate(comparison.current, "ctr"), _rate(comparison.previous, "ctr")),
        conversion=Rate(_rate(comparison.current, "conversion"),
                        _rate(comparison.previous, "conversion")),
    )


# --------------------------------------------------------------------------------------------
# Training page

@dataclass(frozen=True)
class TrainingPageState:
    running: LiveRun | None
    history: list[dict]
    defaults: dict  # what a retrain without settings of its own trains with: the form's values
    saved: SavedSettingsView


@dataclass(frozen=True)
class SavedSettingsView:
    """The saved training settings as the page shows them: one row per setting that differs
    from the built-in default, and who saved them when."""

    rows: list[dict]
    updated_by: str | None
    updated_at: datetime | None
    problem: str | None = None  # saved settings this Beacon cannot read, and the fix


def training_page_state() -> TrainingPageState:
    from beacon import training_settings
    from beacon.config import ModelConfig

    settings = training_settings.document()  # one read: the form and the table agree
    return TrainingPageState(
        running=running_training(),
        history=[run_row(run) for run in runs.list_runs(limit=RUN_HISTORY)],
        # unreadable saved settings: the form starts from the defaults, the page says why
        defaults=settings["settings"] or ModelConfig().to_dict(),
        saved=SavedSettingsView(rows=_saved_rows(settings["saved"]),
                                updated_by=settings["updated_by"],
                                updated_at=settings["updated_at"], problem=settings["problem"]),
    )


def _saved_rows(overrides: dict) -> list[dict]:
    from beacon.config import ModelConfig

    builtin = ModelConfig().to_dict()
    return [{"setting": name, "saved": _setting_text(value),
             "built-in default": _setting_text(
                 {t: builtin[name].get(t) for t in value} if name == "type_weights"
                 else builtin.get(name))}
            for name, value in sorted(overrides.items())]


def _setting_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in sorted(value.items()))
    return f"{value:g}" if isinstance(value, float) else str(value)


#: the settings the Training page's form shows (the rest keep their defaults)
FORM_FIELDS = ("dim", "epochs", "learning_rate", "batch_size", "negatives", "l2", "patience",
               "validation_fraction", "id_dropout", "loss", "seed", "max_age_hours")


@dataclass(frozen=True)
class Started:
    """What a retrain button did: started a run, or found one running (busy)."""

    run_id: int | None
    busy: bool
    message: str


def start_retrain(*, force: bool = False, email: str | None = None, config: dict | None = None,
                  actor: Actor) -> Started:
    """Start a smart (or forced, or one user's) retrain in the background executor and return
    at once; never trains in the caller's thread. A scope already being trained (by any
    process) gives busy=True with who holds it. Bad input raises BeaconError."""
    from beacon import training

    email = (email or "").strip() or None
    kwargs: dict[str, Any] = {
        "scope": "user" if email else "global",
        "force": force,
        "trigger": "force" if force else "button",
        "actor": actor,
    }
    if email:
        kwargs["user"] = email
    if config:
        kwargs["config"] = dict(config)  # validated by the action, so a refusal is audited
    try:
        run_id = training.start_training_in_background(**kwargs)
    except training.TrainingBusy as busy:
        return Started(busy.run_id, True, f"Busy: {busy}. Its progress is shown below.")
    what = f"retrain of {email}" if email else ("forced retrain" if force else "smart retrain")
    return Started(int(run_id), False, f"Started {what}: run {run_id}. It trains in the "
                   "background: you may leave this page, its progress stays on the run.")


def start_user_retrain(email: str | None, *, actor: Actor) -> Started:
    """Refresh one user's personal model; an empty email is an error, never a global run."""
    if not (email or "").strip():
        raise BeaconError("enter the email of the user whose personal model to retrain")
    return start_retrain(email=email, actor=actor)


# --------------------------------------------------------------------------------------------
# Models page

METRIC_NAMES = ("ndcg", "hit_rate", "precision", "recall", "coverage")


def versions_stamp(scope: str | None = None) -> tuple:
    """A cheap value that changes with any version (of `scope`, or any) added, deleted,
    activated or failed: the key for caching what the console shows about versions (see
    data_access.models_store)."""
    from data_access import models_store

    return models_store.versions_stamp(scope)


def version_exists(version_id: int) -> bool:
    return models_store.get_version(int(version_id)) is not None


def version_rows(limit: int = 200) -> list[dict]:
    """Every model version as a table row, newest first: scope, created, status, fingerprint,
    counts, training seconds, offline metrics."""
    from beacon import versions

    rows = []
    for version in versions.list_versions(limit=limit):
        metrics, counts = version.metrics or {}, version.counts or {}
        rows.append({
            "id": int(version.id),
            "scope": version.scope if version.scope == "global" else f"user {version.user or ''}",
            "status": version.status,
            "created": version.created_at,
            # the quality first: at a normal width the columns after these scroll out of view
            "ndcg": offline_metric(metrics, "beacon"),
            "ndcg_popularity": offline_metric(metrics, "popularity"),
            "train_s": version.training_seconds,
            "users": counts.get("users"),
            "events": counts.get("events"),
            "interactions": counts.get("interactions"),
            "created_by": version.created_by or "",
            "fingerprint": (version.fingerprint or "")[:10],
        })
    return rows


@dataclass(frozen=True)
class VersionDetail:
    id: int
    scope: str
    status: str
    created_at: datetime | None
    created_by: str | None
    fingerprint: str | None
    hyperparameters: dict
    counts: dict
    training_seconds: float | None
    loss_history: list
    metrics_table: list[dict]  # metric, beacon, popularity, difference, other strategies
    cold_table: list[dict] = field(default_factory=list)  # the same, on never-touched events
    cold_note: str = ""  # why there is no cold table ("" when there is one, or no evaluation)
    users: int | None = None  # the users every figure of metrics_table averages over
    cold_users: int | None = None  # ... and of cold_table
    components: list[dict] = field(default_factory=list)  # `components_view.component_rows`
    components_note: str = ""  # why there are no component rows ("" when there are)
    #: "" when early stopping ended the fit; else why the model is likely under-trained
    convergence_note: str = ""
    #: "" without a retry at a higher learning rate; else what each run reached, which was kept
    retry_note: str = ""
    #: a global version's settings where they differ from what smart retrains use now
    #: (`settings_difference` rows; empty for a personal version or unreadable saved settings)
    settings_vs_saved: list[dict] = field(default_factory=list)


def _loss_points(history: list) -> list[dict]:
    points = []
    for index, entry in enumerate(history or [], start=1):
        if isinstance(entry, dict):
            points.append({"epoch": entry.get("epoch", index), "loss": entry.get("loss"),
                           "val_metric": entry.get("val_metric"),
                           "phase": entry.get("phase")})
        else:
            points.append({"epoch": index, "loss": entry, "val_metric": None, "phase": None})
    return points


#: strategies an offline evaluation may hold besides beacon and popularity
OTHER_STRATEGIES = ("popularity_city", "content")


def _metrics_table(metrics: dict) -> list[dict]:
    """Rows: each metric; columns: beacon, popularity, their difference, then the other
    strategies evaluated."""
    others = [name for name in OTHER_STRATEGIES if isinstance(metrics.get(name), dict)]
    rows = []
    for name in METRIC_NAMES:
        beacon = offline_metric(metrics, "beacon", name)
        popularity = offline_metric(metrics, "popularity", name)
        if beacon is None and popularity is None:
            continue
        row = {"metric": name, "beacon": beacon, "popularity": popularity,
               "difference": None if beacon is None or popularity is None
               else beacon - popularity}
        row.update({other: offline_metric(metrics, other, name) for other in others})
        rows.append(row)
    return rows


def _cold_block(metrics: dict) -> tuple[list[dict], str]:
    """The cold block's table, or the note saying why it could not be measured."""
    cold = metrics.get("cold")
    if not isinstance(cold, dict):
        return [], ""
    if cold.get("note") or not cold.get("users_evaluated"):
        return [], str(cold.get("note") or "not measurable on this data")
    return _metrics_table(cold), ""


def version_detail(version_id: int) -> VersionDetail:
    """One version: loss curve, hyperparameters, offline metrics against popularity."""
    from beacon import versions

    version = versions.show(int(version_id))
    cold_table, cold_note = _cold_block(version.metrics or {})
    convergence = version.convergence  # judged from the stored curve: once
    return VersionDetail(
        id=int(version.id),
        scope=version.scope,
        status=version.status,
        created_at=version.created_at,
        created_by=version.created_by,
        fingerprint=version.fingerprint,
        hyperparameters=dict(version.hyperparameters or {}),
        counts=dict(version.counts or {}),
        training_seconds=version.training_seconds,
        loss_history=_loss_points(version.loss_history or []),
        metrics_table=_metrics_table(version.metrics or {}),
        cold_table=cold_table,
        cold_note=cold_note,
        users=_users(version.metrics or {}),
        cold_users=_users((version.metrics or {}).get("cold") or {}) if cold_table else None,
        components=component_rows(version.components or {}),
        components_note=_components_note(version),
        convergence_note=convergence.note if convergence is not None else "",
        retry_note=convergence.retry_note if convergence is not None else "",
        settings_vs_saved=_against_saved(version) if version.scope == "global" else [],
    )


def _against_saved(version) -> list[dict]:
    from beacon import training_settings

    try:
        now = training_settings.current_config().to_dict()
    except training_settings.UnreadableSettings:  # the Training page says so
        return []
    return settings_difference(dict(version.hyperparameters or {}), now, "this version",
                               "smart retrains now")


def _convergence_note(version) -> str:
    """Why the version is likely under-trained ("" when early stopping ended its fit)."""
    convergence = version.convergence
    return convergence.note if convergence is not None else ""


def _components_note(version) -> str:
    """Why a version shows no component rows ("" when it has them)."""
    if version.components:
        return ""
    if version.scope == "user":
        return (f"a personal version: it adds one user's vector to global version "
                f"{version.base_model_id}, whose components it uses")
    return "not recorded: this version was trained before the components' choices were kept"


def _users(block: dict) -> int | None:
    value = block.get("users_evaluated")
    return int(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class Comparison:
    a: int
    b: int
    metrics: list[dict]          # metric, a, b, difference (b - a)
    overlap_mean: float | None   # mean share of top-10 in common, over the sampled users
    overlap: list[dict]          # user, overlap
    scores: list[dict]           # version, score (the top-10 scores of the sample)
    sample_size: int
    components: list[dict] = field(default_factory=list)  # component, what each version chose
    settings: list[dict] = field(default_factory=list)  # setting, a, b: the ones that differ


def settings_difference(a: dict, b: dict, a_name: str, b_name: str) -> list[dict]:
    """The training settings two versions differ in, one row each (interaction weights per
    type); a setting one of them predates shows as "-"."""
    def flat(settings: dict) -> dict:
        out = {k: v for k, v in settings.items() if k != "type_weights"}
        out.update({f"type_weights.{t}": w
                    for t, w in (settings.get("type_weights") or {}).items()})
        return out

    fa, fb = flat(a or {}), flat(b or {})
    return [{"setting": name, a_name: _setting_text(fa[name]) if name in fa else "-",
             b_name: _setting_text(fb[name]) if name in fb else "-"}
            for name in sorted(set(fa) | set(fb)) if fa.get(name) != fb.get(name)]


def compare_versions(a: int, b: int, sample: int = COMPARE_SAMPLE, k: int = 10,
                     seed: int = 7) -> Comparison:
    """Two versions side by side: offline metric differences, top-k overlap over a sample of
    users, and the distributions of the scores each gives its top-k."""
    a_detail, b_detail = version_detail(a), version_detail(b)
    a_metrics = {row["metric"]: row["beacon"] for row in a_detail.metrics_table}
    b_metrics = {row["metric"]: row["beacon"] for row in b_detail.metrics_table}
    metric_rows = []
    for name in METRIC_NAMES:
        va, vb = a_metrics.get(name), b_metrics.get(name)
        if va is None and vb is None:
            continue
        metric_rows.append({"metric": name, f"v{a}": va, f"v{b}": vb,
                            "difference": None if va is None or vb is None else vb - va})
    overlap_rows, score_rows = _top_k_comparison(a, b, sample=sample, k=k, seed=seed)
    mean = (sum(r["overlap"] for r in overlap_rows) / len(overlap_rows)) if overlap_rows else None
    components = component_comparison(a_detail.components, b_detail.components,
                                      f"v{a}", f"v{b}")
    settings = settings_difference(a_detail.hyperparameters, b_detail.hyperparameters,
                                   f"v{a}", f"v{b}")
    return Comparison(a=a, b=b, metrics=metric_rows, overlap_mean=mean, overlap=overlap_rows,
                      scores=score_rows, sample_size=len(overlap_rows), components=components,
                      settings=settings)




def _top_k_comparison(a: int, b: int, *, sample: int, k: int, seed: int,
                      now: datetime | None = None) -> tuple[list[dict], list[dict]]:
    """Each version's global model scores the upcoming events for a random sample of users
    (no filters, no personal vectors: the models themselves are compared)."""
    from beacon import versions
    from beacon.features import UserContext

    for version in (a, b):
        if version_detail(version).scope != "global":
            raise BeaconError(f"model version {version} is a per-user version: compare global ones")
    events = catalog.upcoming_events(_now(now))
    if events.empty:
        return [], []
    models = {version: versions.load_version_model(version) for version in (a, b)}
    matrices = {version: models[version].event_matrix(events) for version in (a, b)}
    ids = catalog.all_user_ids(limit=100_000)
    random.Random(seed).shuffle(ids)
    sampled = catalog.users_by_ids([user_id for user_id, _ in ids[:sample]])
    k = min(k, len(events))
    overlap_rows, score_rows = [], []
    for user in sampled:
        context = UserContext(user_id=user.id, tags=tuple(user.tags), latitude=user.latitude,
                              longitude=user.longitude, city=user.city)
        tops = {}
        for version in (a, b):
            scores = np.asarray(models[version].score(context, matrices[version]), dtype=float)
            top = np.argsort(-scores, kind="stable")[:k]
            tops[version] = set(top.tolist())
            score_rows.extend({"version": f"v{version}", "score": float(scores[i])} for i in top)
        overlap_rows.append({"user": user.email, "overlap": len(tops[a] & tops[b]) / k})
    return overlap_rows, score_rows


def cleanup_preview(keep_days: float, keep_newest: int) -> list[dict]:
    """The versions `cleanup` would delete with these settings, deleting nothing."""
    from beacon import versions

    return [{"id": v.id, "scope": v.scope, "user": v.user or "", "status": v.status,
             "created": v.created_at} for v in versions.cleanup_candidates(keep_days, keep_newest)]


# --------------------------------------------------------------------------------------------
# Metrics page

def default_range(now: datetime | None = None, days: int = 30) -> tuple[date, date]:
    today = _now(now).date()
    return today - timedelta(days=days - 1), today


def range_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    if end < start:
        raise BeaconError(f"the range ends ({end}) before it starts ({start})")
    return (datetime.combine(start, time.min, UTC),
            datetime.combine(end + timedelta(days=1), time.min, UTC))


# --------------------------------------------------------------------------------------------
# Audit page (administrators)

def audit_choices(actor: Actor) -> dict[str, list[str]]:
    """The actors and actions that appear in the audit trail (for the filters)."""
    from beacon.actions import require
    from data_access import audit

    require(actor, "administer", "read the audit trail")
    return audit.distinct_values()


def audit_rows(actor: Actor, who: str | None = None, action: str | None = None,
               start: date | None = None, end: date | None = None,
               limit: int = 1000) -> list[dict]:
    """Audit entries newest first, filtered by actor, action and UTC days start..end (both
    included), as table rows with the parameters as JSON text."""
    import json

    from beacon.actions import require
    from data_access import audit

    require(actor, "administer", "read the audit trail")
    since = datetime.combine(start, time.min, tzinfo=timezone.utc) if start else None
    until = (datetime.combine(end, time.min, tzinfo=timezone.utc) + timedelta(days=1)
             if end else None)
    if since and until and since >= until:
        raise BeaconError(f"the date range {start} to {end} is empty: the end is before the start")
    return [{"at": r.at, "who": r.who, "kind": r.kind, "action": r.action,
             "outcome": r.outcome, "parameters": json.dumps(r.params, sort_keys=True),
             "error": r.error or ""}
            for r in audit.entries(who=who, action=action, since=since, until=until,
                                   limit=limit)]
