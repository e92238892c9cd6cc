"""Early stopping on a smoothed validation curve, and the per-epoch history."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.model.concurrent import EpochFollower
from beacon.model.records import EpochReport
from beacon.model.trainer import _Trainer
from beacon.model.validator import _Validator


def _report(history: list[dict[str, Any]], callback: Callable[[EpochReport], None] | None,
            report: EpochReport) -> None:
    history.append({"epoch": report.epoch, "loss": report.loss,
                    "val_metric": report.val_metric, "phase": report.phase,
                    "seconds": round(report.seconds, 4)})
    if callback is not None:
        callback(report)


def _smoothed(values: list[float], center: int, half: int) -> float:
    """Mean of the validation metric over epochs center-half..center+half (1-based, clipped to
    the epochs run so far)."""
    lo, hi = max(center - half, 1), min(center + half, len(values))
    return float(np.mean(values[lo - 1:hi]))


def _best_epoch(values: list[float], half: int, min_delta: float = 0.0,
                min_epochs: int = 1) -> int:
    """The epoch of the best smoothed metric among epochs >= min_epochs (all of them when
    fewer ran); a later epoch takes over only when it beats the best so far by more than
    min_delta (so a flat, noisy curve keeps the earlier epoch)."""
    first = min(max(min_epochs, 1), len(values))
    best, best_value = first, _smoothed(values, first, half)
    for center in range(first + 1, len(values) + 1):
        value = _smoothed(values, center, half)
        if value > best_value + max(min_delta, 1e-6):
            best, best_value = center, value
    return best


def smoothing_half(smoothing: int) -> int:
    """Epochs each side of an epoch that its smoothed validation value averages over."""
    return max(smoothing, 1) // 2


def cut_off_by_cap(ran: int, best: int, half: int, patience: int, epochs: int) -> bool:
    """Whether the `epochs` cap, not early stopping, ended a curve of `ran` epochs whose best
    smoothed epoch is `best`: at the cap, patience had not yet run out (the rule below)."""
    return ran >= epochs and ran - half - best < patience


def _train_with_validation(trainer: _Trainer, pairs: pd.DataFrame, validator: _Validator,
                           config: ModelConfig, history: list[dict[str, Any]],
                           callback: Callable[[EpochReport], None] | None,
                           followers: Sequence[EpochFollower] = (),
                           phase: str = "train") -> tuple[int, float]:
    """Early stopping on a smoothed validation curve: the metric of epoch e is averaged with
    its neighbours (config.smoothing epochs wide), so one lucky or unlucky epoch on a small
    validation set neither stops training early nor picks the epoch count. Stops when the best
    smoothed epoch is `patience` epochs behind the newest one whose smoothing is complete, never
    before `min_epochs`. Each follower hears, after each epoch, which epochs may still be
    chosen. Each epoch is reported as `phase`."""
    half = smoothing_half(config.smoothing)
    values: list[float] = []
    states: dict[int, Any] = {}
    for epoch in range(1, config.epochs + 1):
        began = time.perf_counter()
        loss = trainer.run_epoch(pairs)
        metric = validator.metric(trainer)
        values.append(metric)
        _report(history, callback, EpochReport(epoch, config.epochs, loss, metric,
                                               time.perf_counter() - began, phase))
        best = _best_epoch(values, half, config.min_delta, config.min_epochs)
        # Kept with refit too: the co-attendance blend is chosen against the best epoch.
        states[epoch] = trainer.state()
        for old in [e for e in states if e < best]:
            del states[old]
        stopping = epoch >= config.min_epochs and epoch - half - best >= config.patience
        for follower in followers:
            follower.validated(epoch, best, stopping or epoch == config.epochs)
        if stopping:
            break
    best = _best_epoch(values, half, config.min_delta, config.min_epochs)
    if best in states:
        trainer.load_state(states[best])
    return best, _smoothed(values, best, half)
