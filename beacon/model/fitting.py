"""Fitting: prepare the data, early-stop on the time split, refit on everything, and turn
the trainer's parameters into a HybridModel's weights."""
from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.idmap import IdMap
from beacon.model.coattendance_fit import choose_blend, fit_component
from beacon.model.content_fit import choose_content, cold_events, fit_part, probe_sample
from beacon.model.content_part import NEIGHBOUR_CHOICES
from beacon.model.data import _pairs, _prepare, _Prepared, _split_time, _user_split
from beacon.model.early_stopping import _report, _train_with_validation
from beacon.model.network import _resolve_device, _torch
from beacon.model.records import EpochReport
from beacon.model.trainer import _Trainer
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
    trainer: _Trainer | None = None
    choices: _Job | None = None
    if split is not None and config.patience > 0:
        in_val = prep.rows["t"].to_numpy() >= split if user_split is None else is_val
        train_rows, val_rows = prep.rows[~in_val], prep.rows[in_val]
        train_pairs = _pairs(train_rows)
        validator = _Validator(prep, train_rows, val_rows, split, config.eval_k, user_split)
        if validator.usable and (train_pairs["weight"] > 0).any():
            trainer = _Trainer(prep, train_pairs, config, device)
            best_epoch, best = _train_with_validation(trainer, train_pairs, validator,
                                                      config, history, callback)
            validation = {"split": config.validation_split, "split_time": split,
                          "best_epoch": best_epoch,
                          "best_ndcg": best, "users": int(len(validator.users)),
                          "candidates": int(len(validator.candidates)),
                          "coattendance": None}
            epochs = max(best_epoch, 1)
            if config.content_blend:
                validation["content"] = None
            # The components' choices need only the validation phase's trainer and the epoch
            # count, not the refit: on a second core they cost the refit's wall time, not
            # their own (the models are the same: each trainer has its own generators).
            choices = _Job(_choose_components, cls, prep, train_rows, validator, trainer,
                           epochs, config, device)
    all_pairs = _pairs(prep.rows)
    try:
        if trainer is None or config.refit:
            trainer = _Trainer(prep, all_pairs, config, device)
            phase = "refit" if validation else "train"
            for epoch in range(1, epochs + 1):
                began = time.perf_counter()
                loss = trainer.run_epoch(all_pairs)
                _report(history, callback, EpochReport(epoch, epochs, loss, None,
                                                       time.perf_counter() - began, phase))
    except BaseException:  # a failed or cancelled fit leaves no choice running behind it
        if choices is not None:
            choices.join()
        raise
    chosen_parts = choices.result() if choices is not None else {}
    content_part = chosen_parts.pop("content_part", None)
    validation.update(chosen_parts)
    model = _from_trainer(cls, trainer, prep, all_pairs, config, device, history, validation)
    chosen = validation.get("coattendance") or {}
    if chosen.get("weight", 0) > 0:
        model.coattendance = fit_component(prep, prep.rows,
                                           prep.events["id"].to_numpy(dtype=np.int64),
                                           chosen["weight"], chosen["lambda"], config)
    if (validation.get("content") or {}).get("weight", 0) > 0:
        chosen = validation["content"]
        model.content = fit_part(prep, chosen["weight"], config, content_part,
                                 chosen.get("neighbours", NEIGHBOUR_CHOICES[0]))
    return model


def _choose_components(cls: type[HybridModel], prep: _Prepared, train_rows: pd.DataFrame,
                       validator: _Validator, trainer: _Trainer, epochs: int,
                       config: ModelConfig, device: str) -> dict[str, Any]:
    """The co-attendance blend's choice and, when the content blend is on, the content
    component's (on the newest trained events as cold ones) with the part it chose."""
    out: dict[str, Any] = {"coattendance": choose_blend(prep, train_rows, validator, trainer,
                                                        config)}
    if config.content_blend:
        cold = cold_events(prep)
        probe_rows = probe_sample(train_rows[~np.isin(train_rows["erow"].to_numpy(), cold)],
                                  config.seed)
        out["content"], out["content_part"] = choose_content(
            _probe(cls, prep, probe_rows, epochs, config, device), prep, probe_rows, cold,
            config)
    return out


class _Job:
    """Work on a thread of its own; `result()` joins the thread, then returns or raises."""

    def __init__(self, work: Callable[..., Any], *args: Any):
        self._future: Future = Future()
        context = contextvars.copy_context()  # so that a cancel of the training stops it too

        def run() -> None:
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


def _probe(cls: type[HybridModel], prep: _Prepared, rows: pd.DataFrame, epochs: int,
           config: ModelConfig, device: str) -> HybridModel | None:
    """The hybrid fitted for `epochs` on `rows` alone (None without a positive): what the
    model knows of events that `rows` leave out is what it knows of really new ones."""
    pairs = _pairs(rows)
    if not (pairs["weight"] > 0).any():
        return None
    trainer = _Trainer(prep, pairs, config, device)
    for _ in range(epochs):
        trainer.run_epoch(pairs)
    return _from_trainer(cls, trainer, prep, pairs, config, device, [], {})


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
