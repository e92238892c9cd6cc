"""A fit whose validation curve is still rising at the epoch cap trains once more at a higher
learning rate and keeps whichever attempt validates better (beacon/model/attempts.py): the kept
model is the one that attempt's settings train, the history says which was kept, and a fit that
early stopping ended runs no second attempt."""
from __future__ import annotations

import dataclasses

import pytest

from beacon.config import ModelConfig
from beacon.convergence import fit_convergence
from beacon.demo import load_demo_data
from beacon.model import HybridModel
from beacon.model.attempts import AttemptInputs, keep_better, run_attempt
from beacon.model.data import _pairs, _prepare, _user_split
from beacon.model.fitting import _train
from beacon.model.validator import _Validator
from data_access.training_data import load_training_data
from tests.auth_support import ADMIN
from tests.test_fit_followers import _fit_threads, _same_weights
from tests.test_fit_followers import one_torch_thread  # noqa: F401 - autouse here too

CAPPED = ModelConfig(dim=8, epochs=3, patience=3, batch_size=64, negatives=4, device="cpu",
                     seed=3, content_blend=False, trend_blend=False)


@pytest.fixture
def demo(db: str):
    load_demo_data(users=200, events=120, days=20, seed=5, actor=ADMIN)
    return load_training_data()


def test_a_capped_fit_tries_a_four_times_higher_rate_and_keeps_the_better(demo) -> None:
    model = HybridModel.fit(demo, CAPPED)
    record = model.validation["learning_rate_retry"]
    assert record["first"]["capped"] and record["first"]["learning_rate"] == 0.005
    assert record["retry"]["learning_rate"] == pytest.approx(0.02)
    kept = record[record["kept"]]
    other = record["first" if record["kept"] == "retry" else "retry"]
    assert kept["best_ndcg"] >= other["best_ndcg"]
    assert model.validation["best_ndcg"] == kept["best_ndcg"]
    assert model.validation["best_epoch"] == kept["best_epoch"]
    # the history keeps both curves: the kept one as "train", the other as "discarded"
    phases = [(e["phase"], e.get("learning_rate")) for e in model.loss_history]
    assert phases.count(("train", kept["learning_rate"])) == kept["epochs"]
    assert phases.count(("discarded", other["learning_rate"])) == other["epochs"]
    # the refit ran at the kept attempt's rate, for its best epoch count
    prep = _prepare(demo, CAPPED)
    kept_config = dataclasses.replace(CAPPED, learning_rate=kept["learning_rate"])
    _same_weights(model.weights, _train(prep, _pairs(prep.rows), kept["best_epoch"],
                                        kept_config, "cpu").export())
    assert model.config == CAPPED  # the settings asked for; the rate used is in the record
    assert _fit_threads() == []


def test_the_version_says_what_each_attempt_reached(demo) -> None:
    model = HybridModel.fit(demo, CAPPED)
    found = fit_convergence(model.loss_history, CAPPED.to_dict())
    record = model.validation["learning_rate_retry"]
    assert found.best_epoch == record[record["kept"]]["best_epoch"]
    assert "learning rate 0.005" in found.retry_note and "0.02" in found.retry_note
    assert ("is the one kept" if record["kept"] == "retry" else "the first is kept") \
        in found.retry_note


@pytest.mark.parametrize("config", [
    dataclasses.replace(CAPPED, capped_retry_factor=1.0),          # off
    dataclasses.replace(CAPPED, epochs=30, patience=1),            # early stopping ends it
], ids=["off", "early-stopping-ended-it"])
def test_no_second_attempt_where_it_is_off_or_early_stopping_ended_the_fit(demo, config):
    model = HybridModel.fit(demo, config)
    assert "learning_rate_retry" not in model.validation
    assert {e["phase"] for e in model.loss_history} == {"train", "refit"}
    assert fit_convergence(model.loss_history, config.to_dict()).retry_note == ""


def _inputs(data, config: ModelConfig) -> AttemptInputs:
    prep = _prepare(data, config)
    is_val, user_split = _user_split(prep.rows, config.validation_fraction)
    split = int(user_split.min())
    train_rows, val_rows = prep.rows[~is_val], prep.rows[is_val]
    validator = _Validator(prep, train_rows, val_rows, split, config.eval_k, user_split)
    return AttemptInputs(prep, _pairs(train_rows), _pairs(prep.rows), validator, None, None,
                         "cpu")


def test_where_the_first_attempt_validates_better_its_model_is_kept(demo) -> None:
    """The first attempt's followers train on beside the retry; kept after all, its refit is
    the one the first attempt's settings give, and the retry's followers are stopped."""
    shared = _inputs(demo, CAPPED)
    started: list = []
    first = run_attempt(shared, CAPPED, [], None, started)
    crawl = dataclasses.replace(CAPPED, learning_rate=1e-6)  # learns nothing in 3 epochs
    second = run_attempt(shared, crawl, [], None, started, "retry")
    assert second.best < first.best
    kept, record = keep_better(first, second)
    assert kept is first and record["kept"] == "first"
    assert {e["phase"] for e in first.entries} == {"train"}
    assert {e["phase"] for e in second.entries} == {"discarded"}
    refit = kept.followers["refit"].finish(first.best_epoch)
    _same_weights(refit.export(), _train(shared.prep, shared.all_pairs, first.best_epoch,
                                         CAPPED, "cpu").export())
    assert fit_convergence(first.entries + second.entries, CAPPED.to_dict()).retry_note \
        .endswith("so the first is kept")
    for follower in started:
        follower.stop()
    assert _fit_threads() == []


def test_the_factor_is_a_checked_setting() -> None:
    with pytest.raises(Exception, match="capped_retry_factor"):
        ModelConfig(capped_retry_factor=0.5)


def test_a_cancel_during_the_retry_leaves_no_trainer_of_either_run_behind(demo) -> None:
    """The first run's followers train on beside the retry: a failure there (here a cancel)
    must stop them as well as the retry's own, and store nothing."""
    from beacon import cancel

    run_id = -4545  # no such run in the database: only this process's cancel event knows it
    seen: list[str] = []

    def cancel_in_retry(report) -> None:
        seen.append(report.phase)
        if report.phase == "retry":
            cancel.mark(run_id, "a test")

    with cancel.watching(run_id), pytest.raises(cancel.TrainingCancelled):
        HybridModel.fit(demo, CAPPED, callback=cancel_in_retry)
    assert seen.count("train") == CAPPED.epochs and seen[-1] == "retry"
    assert _fit_threads() == []
