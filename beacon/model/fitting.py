"""Fitting: prepare the data, early-stop on the time split, refit on everything, and turn
the trainer's parameters into a HybridModel's weights."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from beacon.cancel import check as check_cancel
from beacon.config import ModelConfig
from beacon.idmap import IdMap
from beacon.model.coattendance_fit import (blend_inputs, choose_blend, fit_component,
                                           strong_rows)
from beacon.model.content_fit import (ContentInputs, choose_content, cold_events,
                                      content_inputs, fit_part, probe_rows)
from beacon.model.content_part import NEIGHBOUR_CHOICES, ContentPart
from beacon.model.attempts import (RETRY_PHASE, AttemptInputs, keep_better, retry_config,
                                   run_attempt)
from beacon.model.concurrent import EpochFollower, _Job
from beacon.model.data import _pairs, _prepare, _Prepared, _split_time, _user_split
from beacon.model.early_stopping import _report
from beacon.model.network import _resolve_device, _torch
from beacon.model.records import EpochReport
from beacon.model.trainer import _Trainer
from beacon.model.trend import TrendPart
from beacon.model.trend_fit import (TrendInputs, choose_trend, trend_inputs, trend_probe_rows,
                                    trend_split)
from beacon.model.validator import _Validator

if TYPE_CHECKING:
    from beacon.model.hybrid import HybridModel

CONTRAST_EVENTS = 1024


def fit_model(cls: type[HybridModel], data: Any, config: ModelConfig | None = None,
              callback: Callable[[EpochReport], None] | None = None) -> HybridModel:
    """Train on a TrainingData. Raises BeaconError when there is nothing to train on."""
    config = config or ModelConfig()
    torch = _torch()
    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _fit(cls, data, config, callback)
    finally:
        torch.set_num_threads(previous)


def _fit(cls: type[HybridModel], data: Any, config: ModelConfig,
         callback: Callable[[EpochReport], None] | None) -> HybridModel:
    device = _resolve_device(config.device)
    prep = _prepare(data, config)
    user_split = None
    if config.validation_split == "user":
        found = _user_split(prep.rows, config.validation_fraction)
        split = None
        if found is not None:
            is_val, user_split = found
            split = int(user_split.min())
    else:
        split = _split_time(prep.rows, config.validation_fraction)
    history: list[dict[str, Any]] = []
    validation: dict[str, Any] = {}
    epochs = config.epochs
    fit_config = config  # the kept attempt's settings (a retry raises the learning rate)
    trainer: _Trainer | None = None
    choices: _Job | None = None
    inputs: _Job | None = None
    all_pairs = _pairs(prep.rows)
    followers: dict[str, EpochFollower] = {}
    started: list[EpochFollower] = []  # every follower of every attempt, to stop on a failure
    try:
        if split is not None and config.patience > 0:
            in_val = prep.rows["t"].to_numpy() >= split if user_split is None else is_val
            train_rows, val_rows = prep.rows[~in_val], prep.rows[in_val]
            train_pairs = _pairs(train_rows)
            validator = _Validator(prep, train_rows, val_rows, split, config.eval_k, user_split)
            if validator.usable and (train_pairs["weight"] > 0).any():
                cold = cold_events(prep) if config.content_blend else None
                rows_for_probe = probe_rows(train_rows, cold, config.seed) \
                    if cold is not None else None
                t_split = trend_split(prep, config) if config.trend_blend else None
                rows_for_trend = trend_probe_rows(prep, t_split, config.seed) \
                    if t_split is not None else None
                shared = AttemptInputs(prep, train_pairs, all_pairs, validator, rows_for_probe,
                                       rows_for_trend, device)
                inputs = _Job(_choice_inputs, prep, train_rows, rows_for_probe, cold,
                              validator, t_split, rows_for_trend, config, nice=True)
                attempt = run_attempt(shared, config, history, callback, started)
                retry = None
                if (faster := retry_config(attempt)) is not None:
                    second = run_attempt(shared, faster, history, callback, started,
                                         RETRY_PHASE)
                    attempt, retry = keep_better(attempt, second)
                trainer, followers, fit_config = attempt.trainer, attempt.followers, \
                    attempt.config
                validation = {"split": config.validation_split, "split_time": split,
                              "best_epoch": attempt.best_epoch,
                              "best_ndcg": attempt.best, "users": int(len(validator.users)),
                              "candidates": int(len(validator.candidates))}
                if retry is not None:
                    validation["learning_rate_retry"] = retry
                validation["coattendance"] = None
                epochs = max(attempt.best_epoch, 1)
                if config.content_blend:
                    validation["content"] = None
                if config.trend_blend:
                    validation["trend"] = None
                # The components' choices need only the validation phase's trainer and the
                # epoch count, not the refit: they run beside it.
                choices = _Job(_choose_components, cls, prep, validator, trainer, followers,
                               inputs, epochs, fit_config, device)
        if "refit" in followers:
            trainer = _refit_from(followers["refit"], prep, all_pairs, epochs, fit_config,
                                  device, history, callback)
        elif trainer is None or config.refit:
            trainer = _train(prep, all_pairs, epochs, fit_config, device, history, callback,
                             "refit" if validation else "train")
        chosen_parts = choices.result() if choices is not None else {}
    except BaseException:  # a failed or cancelled fit leaves nothing running behind it
        for follower in started:
            follower.stop()
        for job in (inputs, choices):
            if job is not None:
                job.join()
        raise
    content_part = chosen_parts.pop("content_part", None)
    validation.update(chosen_parts)
    model = _from_trainer(cls, trainer, prep, all_pairs, config, device, history, validation)
    chosen = validation.get("coattendance") or {}
    if chosen.get("weight", 0) > 0:
        model.coattendance = fit_component(prep, prep.rows,
                                           prep.events["id"].to_numpy(dtype=np.int64),
                                           chosen["weight"], chosen["lambda"], config,
                                           chosen.get("recency", 0.0))
    if (validation.get("content") or {}).get("weight", 0) > 0:
        chosen = validation["content"]
        model.content = fit_part(prep, chosen["weight"], config, content_part,
                                 chosen.get("neighbours", NEIGHBOUR_CHOICES[0]),
                                 chosen.get("popularity_weight", 0.0))
    model.trend = _trend_part(prep, validation.get("trend"))
    return model


def _trend_part(prep: _Prepared, chosen: dict[str, Any] | None) -> TrendPart | None:
    """The trend over every training row at the newest one, where a weight was chosen."""
    if not chosen or not (chosen.get("weight_known", 0) > 0 or chosen.get("weight_new", 0) > 0):
        return None
    strong = strong_rows(prep, prep.rows)
    if strong.empty:
        return None
    return TrendPart.build(prep.events["id"].to_numpy(dtype=np.int64),
                           strong["erow"].to_numpy(), strong["t"].to_numpy(),
                           chosen["half_life_days"], chosen["weight_known"], chosen["weight_new"])


def _train(prep: _Prepared, pairs: pd.DataFrame, epochs: int, config: ModelConfig,
           device: str, history: list[dict[str, Any]] | None = None,
           callback: Callable[[EpochReport], None] | None = None,
           phase: str = "refit") -> _Trainer:
    """A trainer fitted on `pairs` for `epochs`, each epoch reported when `history` is given."""
    trainer = _Trainer(prep, pairs, config, device)
    for epoch in range(1, epochs + 1):
        began = time.perf_counter()
        loss = trainer.run_epoch(pairs)
        if history is not None:
            _report(history, callback, EpochReport(epoch, epochs, loss, None,
                                                   time.perf_counter() - began, phase))
    return trainer


def _refit_from(follower: EpochFollower, prep: _Prepared, pairs: pd.DataFrame, epochs: int,
                config: ModelConfig, device: str, history: list[dict[str, Any]],
                callback: Callable[[EpochReport], None] | None) -> _Trainer:
    """The refit that trained beside early stopping, its epochs reported as they end (most
    had already); trained again only where the chosen epoch's state was not kept."""
    for epoch in range(1, epochs + 1):
        loss, seconds = follower.report(epochs, epoch)
        _report(history, callback, EpochReport(epoch, epochs, loss, None, seconds, "refit"))
        check_cancel()
    trainer = follower.finish(epochs)
    return trainer if trainer is not None else _train(prep, pairs, epochs, config, device)


def _choice_inputs(prep: _Prepared, train_rows: pd.DataFrame,
                   rows_for_probe: pd.DataFrame | None, cold: np.ndarray | None,
                   validator: _Validator, t_split: int | None,
                   rows_for_trend: pd.DataFrame | None, config: ModelConfig) -> dict[str, Any]:
    """What the components' choices need that no trainer changes (B for each lambda, the
    content parts and their scores, the trend's validator and counts): built beside early
    stopping."""
    return {"blend": blend_inputs(prep, train_rows, validator, config),
            "content": content_inputs(prep, rows_for_probe, cold, config)
            if rows_for_probe is not None else None,
            "trend": trend_inputs(prep, t_split, rows_for_trend, config)}


def _choose_components(cls: type[HybridModel], prep: _Prepared, validator: _Validator,
                       trainer: _Trainer, followers: dict[str, EpochFollower], inputs: _Job,
                       epochs: int, config: ModelConfig, device: str) -> dict[str, Any]:
    """The co-attendance blend's choice and, when on, the content component's (on the newest
    trained events as cold ones) with the part it chose, and the trend's (on a time split):
    all at once, the content and trend choices on threads of their own."""
    ready = inputs.result()
    content = _Job(_choose_content, cls, prep, followers.get("probe"), ready["content"],
                   epochs, config, device) if config.content_blend else None
    trend = _Job(_choose_trend, prep, followers.get("trend"), ready["trend"], epochs, config,
                 device) if config.trend_blend else None
    try:
        out: dict[str, Any] = {"coattendance": choose_blend(ready["blend"], validator,
                                                            trainer, config)}
    finally:
        for job in (content, trend):
            if job is not None:
                job.join()
    if content is not None:
        out["content"], out["content_part"] = content.result()
    if trend is not None:
        out["trend"] = trend.result()
    return out


def _choose_trend(prep: _Prepared, probe: EpochFollower | None, inputs: TrendInputs | None,
                  epochs: int, config: ModelConfig, device: str) -> dict[str, Any]:
    """The trend's choice against the trend probe after `epochs` epochs."""
    if probe is None or inputs is None:
        return choose_trend(None, None, config)
    trainer = probe.finish(epochs) or _train(prep, probe.pairs, epochs, config, device)
    return choose_trend(trainer, inputs, config)


def _choose_content(cls: type[HybridModel], prep: _Prepared, probe: EpochFollower | None,
                    inputs: ContentInputs | None, epochs: int, config: ModelConfig,
                    device: str) -> tuple[dict[str, Any], ContentPart | None]:
    """The content component's choice against the probe after `epochs` epochs."""
    model = None
    if probe is not None:
        trainer = probe.finish(epochs) or _train(prep, probe.pairs, epochs, config, device)
        model = _from_trainer(cls, trainer, prep, probe.pairs, config, device, [], {})
    return choose_content(model, inputs, prep, config)


def _from_trainer(cls: type[HybridModel], trainer: _Trainer, prep: _Prepared,
                  pairs: pd.DataFrame, config: ModelConfig, device: str,
                  history: list[dict[str, Any]], validation: dict[str, Any]) -> HybridModel:
    weights = trainer.export()
    vectors, bias = trainer.all_event_vectors()
    pool = trainer.known_events
    rng = np.random.default_rng(config.seed + 1)
    if len(pool) > CONTRAST_EVENTS:
        pool = np.sort(rng.choice(pool, CONTRAST_EVENTS, replace=False))
    weights["contrast_vectors"] = vectors[pool].astype(np.float32)
    weights["contrast_bias"] = bias[pool].astype(np.float32)
    place = prep.event_place
    weights["contrast_lat"] = place.lat[pool].astype(np.float64)
    weights["contrast_lon"] = place.lon[pool].astype(np.float64)
    names = {code: name for name, code in place.cities.items()}
    contrast_cities = [names.get(int(c)) for c in place.city[pool]]
    user_ids = prep.users["id"].to_numpy(dtype=np.int64)[trainer.known_users]
    event_ids = prep.events["id"].to_numpy(dtype=np.int64)[trainer.known_events]
    counts = {
        "users": int(len(user_ids)), "events": int(len(event_ids)),
        "interactions": int(len(prep.rows)), "pairs": int(len(pairs)),
        "user_tokens": len(prep.user_vocab), "event_tokens": len(prep.event_vocab),
        "tokens": len(prep.user_vocab) + len(prep.event_vocab),
    }
    return cls(config=config, user_map=IdMap(user_ids), event_map=IdMap(event_ids),
               user_vocab=prep.user_vocab, event_vocab=prep.event_vocab, weights=weights,
               counts=counts, loss_history=history, device=device, validation=validation,
               contrast_cities=contrast_cities)
