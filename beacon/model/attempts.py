"""The validation phase of a fit as an attempt at one learning rate, and a second attempt at a
higher rate where the first reached the epoch cap with its validation curve still rising.

On a large, sparse catalogue (tens of thousands of events, a week of history) the default rate
reaches the cap under-trained: on the scale data's 100k sample 0.005 ends at validation NDCG@10
0.072 still rising, where 0.02 converges at epoch 28 with 0.196 (docs/training.md). On the demo
data and MovieLens early stopping ends every fit long before the cap, and there the higher rate
loses, so the rate cannot simply change: the second attempt runs only where the first was cut
off, and validation keeps the better of the two.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from beacon.config import ModelConfig
from beacon.model.concurrent import EpochFollower
from beacon.model.data import _pairs, _Prepared
from beacon.model.early_stopping import (_train_with_validation, cut_off_by_cap,
                                         smoothing_half)
from beacon.model.records import EpochReport
from beacon.model.trainer import _Trainer
from beacon.model.validator import _Validator

#: the live phase of a second attempt's epochs; once a fit keeps one attempt, its curve is
#: stored as "train" and the other's as "discarded"
RETRY_PHASE = "retry"
DISCARDED_PHASE = "discarded"


@dataclass
class Attempt:
    """Early stopping at one learning rate: the trainer at its best epoch, the trainers that
    followed it (refit, probes), and its curve's entries in the fit's history."""

    config: ModelConfig
    trainer: _Trainer
    followers: dict[str, EpochFollower]
    best_epoch: int
    best: float
    entries: list[dict[str, Any]]
    capped: bool  # the cap, not early stopping, ended it while the metric was still rising


@dataclass(frozen=True)
class AttemptInputs:
    """What every attempt of one fit shares: the data, the split and the probes' rows."""

    prep: _Prepared
    train_pairs: pd.DataFrame
    all_pairs: pd.DataFrame
    validator: _Validator
    rows_for_probe: pd.DataFrame | None
    rows_for_trend: pd.DataFrame | None
    device: str


def run_attempt(inputs: AttemptInputs, config: ModelConfig, history: list[dict[str, Any]],
                callback: Callable[[EpochReport], None] | None,
                started: list[EpochFollower], phase: str = "train") -> Attempt:
    """Early stopping at `config`'s rate, its epochs appended to `history` as `phase`, and
    every follower it starts appended to `started` (so a failure stops them all)."""
    followers = _followers(inputs, config)
    started.extend(followers.values())
    trainer = _Trainer(inputs.prep, inputs.train_pairs, config, inputs.device)
    first = len(history)
    best_epoch, best = _train_with_validation(trainer, inputs.train_pairs, inputs.validator,
                                              config, history, callback,
                                              list(followers.values()), phase)
    entries = history[first:]
    capped = cut_off_by_cap(len(entries), best_epoch, smoothing_half(config.smoothing),
                            config.patience, config.epochs)
    return Attempt(config, trainer, followers, best_epoch, best, entries, capped)


def _followers(inputs: AttemptInputs, config: ModelConfig) -> dict[str, EpochFollower]:
    """The trainers that train beside early stopping: the refit on every row (unless `refit`
    is off), with the content blend the probe on its rows, and with the trend blend the trend
    probe on the rows before the trend's split."""
    followers: dict[str, EpochFollower] = {}
    if config.refit:
        followers["refit"] = EpochFollower(
            "refit", _Trainer(inputs.prep, inputs.all_pairs, config, inputs.device),
            inputs.all_pairs, config.epochs)
    for name, rows in (("probe", inputs.rows_for_probe), ("trend", inputs.rows_for_trend)):
        if rows is not None:
            pairs = _pairs(rows)
            if (pairs["weight"] > 0).any():
                followers[name] = EpochFollower(
                    name, _Trainer(inputs.prep, pairs, config, inputs.device), pairs,
                    config.epochs)
    return followers


def retry_config(first: Attempt) -> ModelConfig | None:
    """The second attempt's settings (the rate times `capped_retry_factor`, within the rate's
    range), or None where the first was not capped, the retry is off or the rate cannot rise."""
    config = first.config
    if not first.capped or config.capped_retry_factor <= 1:
        return None
    rate = min(config.learning_rate * config.capped_retry_factor, 1.0)
    if rate <= config.learning_rate:
        return None
    return dataclasses.replace(config, learning_rate=rate,
                               warm_learning_rate=min(config.warm_learning_rate, rate))


def keep_better(first: Attempt, second: Attempt) -> tuple[Attempt, dict]:
    """The attempt with the higher best validation metric (the first on a tie), its curve
    relabelled "train" and the other's "discarded"; the other's followers stopped. The first
    attempt's followers train on beside the retry: when early stopping ends they trail it by
    seconds, so keeping them costs little, and where the first is kept its refit is ready.
    Returns the kept attempt and the record of both for the fit's validation report."""
    kept, other = (second, first) if second.best > first.best else (first, second)
    for attempt, phase in ((kept, "train"), (other, DISCARDED_PHASE)):
        for entry in attempt.entries:  # the version's history tells the two apart
            entry.update(phase=phase, learning_rate=attempt.config.learning_rate)
    for follower in other.followers.values():
        follower.stop()
    record = {
        "kept": "retry" if kept is second else "first",
        "first": _summary(first),
        "retry": _summary(second),
    }
    return kept, record


def _summary(attempt: Attempt) -> dict[str, Any]:
    return {"learning_rate": attempt.config.learning_rate, "epochs": len(attempt.entries),
            "best_epoch": attempt.best_epoch, "best_ndcg": attempt.best,
            "capped": attempt.capped}
