"""`convergence.fit_convergence`: whether early stopping or the epoch cap ended a fit, on
curves with known answers, judged by the same rule early stopping stops by."""
from __future__ import annotations

import pytest

from beacon.convergence import fit_convergence

SETTINGS = {"epochs": 6, "patience": 3, "smoothing": 1, "min_delta": 0.0, "min_epochs": 1,
            "eval_k": 10}


def curve(values, refit=0):
    return ([{"epoch": i, "phase": "train", "loss": 1.0, "val_metric": v}
             for i, v in enumerate(values, start=1)]
            + [{"epoch": i, "phase": "refit", "loss": 1.0, "val_metric": None}
               for i in range(1, refit + 1)])


def test_a_curve_still_rising_at_the_cap_is_flagged_with_its_best_epoch():
    found = fit_convergence(curve([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], refit=6), SETTINGS)
    assert (found.validation_epochs, found.epochs, found.best_epoch) == (6, 6, 6)
    assert found.still_improving
    assert "cap of 6 epochs" in found.note and "NDCG@10 best at epoch 6" in found.note
    assert "learning_rate" in found.note


def test_early_stopping_that_ended_the_fit_is_not_flagged():
    found = fit_convergence(curve([0.1, 0.3, 0.2, 0.2, 0.2], refit=2), SETTINGS)
    assert (found.validation_epochs, found.best_epoch, found.still_improving) == (5, 2, False)
    assert found.note == ""


@pytest.mark.parametrize("values, flagged", [
    ([0.1, 0.3, 0.2, 0.2, 0.2, 0.2], False),  # best 3 epochs back at the cap: it would stop
    ([0.1, 0.2, 0.3, 0.4, 0.3, 0.3], True),   # best 2 epochs back: patience not yet run out
])
def test_at_the_cap_the_patience_rule_decides(values, flagged):
    assert fit_convergence(curve(values), SETTINGS).still_improving is flagged


def test_smoothing_and_min_delta_are_the_fits_own():
    values = [0.1, 0.2, 0.30, 0.301, 0.302, 0.303]
    assert fit_convergence(curve(values), SETTINGS).still_improving
    # gains under min_delta do not move the best epoch, so patience had run out at the cap
    assert not fit_convergence(curve(values), {**SETTINGS, "min_delta": 0.01}).still_improving
    # best 3 epochs back: raw, patience has run out; smoothed over 3 epochs, the newest
    # complete window is one epoch older, so early stopping needed one more epoch
    peaked = curve([0.1, 0.2, 0.5, 0.2, 0.2, 0.2])
    assert not fit_convergence(peaked, SETTINGS).still_improving
    smoothed = fit_convergence(peaked, {**SETTINGS, "smoothing": 3})
    assert smoothed.best_epoch == 3 and smoothed.still_improving


@pytest.mark.parametrize("history, settings", [
    ([0.9, 0.8, 0.7], SETTINGS),                            # a fold-in's plain losses
    (curve([None, None]), SETTINGS),                        # no validation figures
    (curve([0.1, 0.2]), {**SETTINGS, "epochs": None}),      # no cap recorded
    ([], SETTINGS),
])
def test_no_validation_curve_means_no_answer(history, settings):
    assert fit_convergence(history, settings) is None
