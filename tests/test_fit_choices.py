"""The components' choices (co-attendance blend, content probe, trend probe) run on a thread of their own
beside the refit: a cancel of the training reaches them, their failure reaches the fit, and
a fit that stops leaves none of them running."""
from __future__ import annotations

import threading

import pytest

from beacon import cancel
from beacon.config import ModelConfig
from beacon.demo import load_demo_data
from beacon.model import EpochReport, HybridModel
from beacon.model.concurrent import _Job
from data_access.training_data import load_training_data
from tests.auth_support import ADMIN

RUN_ID = -4242  # no such run in the database: only this process's cancel event knows it


def _choice_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "beacon-fit-choices" and t.is_alive()]


def test_a_background_choice_belongs_to_the_training_that_started_it(db: str) -> None:
    with cancel.watching(RUN_ID):
        cancel.mark(RUN_ID, "a test")
        with pytest.raises(cancel.TrainingCancelled):
            _Job(cancel.check).result()
    assert _Job(cancel.check).result() is None  # outside any training


def test_a_failed_choice_reaches_the_fit() -> None:
    with pytest.raises(ZeroDivisionError):
        _Job(lambda: 1 / 0).result()


def test_a_cancel_during_the_refit_stops_the_choices_and_leaves_none_running(db: str) -> None:
    load_demo_data(users=200, events=120, days=20, seed=5, actor=ADMIN)
    data = load_training_data()
    config = ModelConfig(dim=8, epochs=4, patience=2, min_epochs=2, batch_size=64,
                         negatives=4, device="cpu", seed=3)
    refit_epochs: list[int] = []

    def cancel_in_refit(report: EpochReport) -> None:
        if report.phase == "refit":
            refit_epochs.append(report.epoch)
            cancel.mark(RUN_ID, "a test")

    with cancel.watching(RUN_ID), pytest.raises(cancel.TrainingCancelled):
        HybridModel.fit(data, config, callback=cancel_in_refit)
    assert refit_epochs == [1]  # the refit stopped at the next batch after its first epoch
    assert _choice_threads() == []


def test_a_fit_that_completes_reports_every_choice(db: str) -> None:
    load_demo_data(users=200, events=120, days=20, seed=5, actor=ADMIN)
    model = HybridModel.fit(load_training_data(),
                            ModelConfig(dim=8, epochs=3, patience=2, batch_size=64, negatives=4,
                                        device="cpu", seed=3))
    keys = list(model.validation)
    assert keys[-3:] == ["coattendance", "content", "trend"]  # where train --json puts them
    assert "grid" in model.validation["coattendance"]
    assert "weight" in model.validation["content"]
    assert {"weight_known", "weight_new", "half_life_days"} <= set(model.validation["trend"])
    assert _choice_threads() == []
