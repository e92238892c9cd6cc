"""The refit and the content probe train beside early stopping (EpochFollower), and a step on a
small catalog scores events from one table: both must give the model the sequential, lookup
path gives, and a fit that stops must leave no trainer running."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from beacon import cancel
from beacon.config import ModelConfig
from beacon.demo import load_demo_data
from beacon.model import EpochReport, HybridModel
from beacon.model.concurrent import EpochFollower
from beacon.model.data import _pairs, _prepare
from beacon.model.fitting import _train
from beacon.model.trainer import _Trainer
from data_access.training_data import load_training_data
from tests.auth_support import ADMIN

RUN_ID = -4343  # no such run in the database: only this process's cancel event knows it
CONFIG = ModelConfig(dim=8, epochs=12, patience=2, batch_size=64, negatives=4, device="cpu",
                     seed=3)


@pytest.fixture
def demo(db: str):
    load_demo_data(users=200, events=120, days=20, seed=5, actor=ADMIN)
    return load_training_data()


def _fit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("beacon-fit") and t.is_alive()]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The fit's thread count around everything here (another count sums in another order)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(CONFIG.threads)
    yield
    torch.set_num_threads(previous)


def _trained_afterwards(prep, pairs, epochs: int) -> dict[str, np.ndarray]:
    """What the sequential path gives: a fresh trainer trained `epochs` epochs."""
    return _train(prep, pairs, epochs, CONFIG, "cpu").export()


def _same_weights(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for key, value in want.items():
        assert np.array_equal(got[key], value), key


def test_the_refit_beside_early_stopping_is_the_refit_trained_afterwards(demo) -> None:
    model = HybridModel.fit(demo, CONFIG)
    best = model.validation["best_epoch"]
    validation_epochs = sum(1 for e in model.loss_history if e["phase"] == "train")
    assert validation_epochs > best  # the follower had to hand back an earlier state
    prep = _prepare(demo, CONFIG)
    _same_weights(model.weights, _trained_afterwards(prep, _pairs(prep.rows), best))
    refit = [e["epoch"] for e in model.loss_history if e["phase"] == "refit"]
    assert refit == list(range(1, best + 1))
    assert _fit_threads() == []


def _follower(demo):
    """(prep, pairs, a refit follower on every pair, at most 5 epochs)."""
    prep = _prepare(demo, CONFIG)
    pairs = _pairs(prep.rows)
    return prep, pairs, EpochFollower("refit", _Trainer(prep, pairs, CONFIG, "cpu"), pairs, 5)


def test_a_follower_trains_no_epoch_past_the_best_so_far(demo) -> None:
    prep, pairs, follower = _follower(demo)
    follower.validated(1, 1)
    follower.validated(2, 1)
    follower.validated(3, 2, stopping=True)
    trainer = follower.finish(2)
    assert sorted(follower._reports) == [1, 2]
    _same_weights(trainer.export(), _trained_afterwards(prep, pairs, 2))
    assert _fit_threads() == []


def test_a_best_epoch_that_moves_back_is_trained_again(demo) -> None:
    _, _, follower = _follower(demo)
    follower.validated(1, 1)
    follower.validated(2, 2)
    follower.report(2, 2)  # epoch 2 trained, so epoch 1's state is gone
    follower.validated(3, 1, stopping=True)  # a smoothed curve can move its best back
    assert follower.finish(1) is None


def test_waiting_for_an_epoch_of_a_stopped_follower_raises_instead_of_hanging(demo) -> None:
    """A cancel during the refit stops every follower while a choice may still be about to
    wait for one (it hung CI once): the wait ends with an error."""
    import threading

    from beacon.model.concurrent import FollowerStopped

    _, _, follower = _follower(demo)
    follower.stop()  # before early stopping let it train a single epoch past the first
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            follower.report(4, 4)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - what the waiter got
            outcome.append(error)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(timeout=60)
    assert not waiter.is_alive(), "report() waited for ever on a stopped follower"
    assert isinstance(outcome[0], FollowerStopped)
    assert _fit_threads() == []


def test_a_cancel_during_early_stopping_leaves_no_trainer_running(demo) -> None:
    def cancel_at_epoch_2(report: EpochReport) -> None:
        if report.phase == "train" and report.epoch == 2:
            cancel.mark(RUN_ID, "a test")

    with cancel.watching(RUN_ID), pytest.raises(cancel.TrainingCancelled):
        HybridModel.fit(demo, CONFIG, callback=cancel_at_epoch_2)
    assert _fit_threads() == []


def test_the_table_step_scores_and_gradients_are_the_lookup_step_s(demo) -> None:
    torch = pytest.importorskip("torch")
    prep = _prepare(demo, CONFIG)
    trainer = _Trainer(prep, _pairs(prep.rows), CONFIG, "cpu")
    assert trainer.event_table_per_step
    rng = np.random.default_rng(0)
    n = len(prep.events)
    users = torch.from_numpy(rng.integers(0, len(prep.users), 64))
    positives = torch.from_numpy(rng.integers(0, n, 64))
    negatives = torch.from_numpy(rng.integers(0, n, (64, 4)))
    drops = torch.from_numpy(rng.random((64, 6)) < 0.3)
    results = []
    for scores in (trainer._scores, trainer._scores_from_table):
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.begin_step()
        s_pos, s_neg, norms = scores(trainer.user_vectors(users, drops[:, 0]), positives,
                                     negatives, drops)
        p_norm, n_norm = norms()
        (s_pos.sum() + (s_neg * 0.5).sum() + p_norm + n_norm).backward()
        grads = {name: p.grad.clone() for name, p in trainer.modules.named_parameters()
                 if p.grad is not None}
        results.append((s_pos.detach(), s_neg.detach(), float(p_norm.detach()), float(n_norm.detach()), grads))
    (a_pos, a_neg, a_p, a_n, a_grads), (b_pos, b_neg, b_p, b_n, b_grads) = results
    assert torch.allclose(a_pos, b_pos, atol=1e-6) and torch.allclose(a_neg, b_neg, atol=1e-6)
    assert a_p == pytest.approx(b_p, rel=1e-5) and a_n == pytest.approx(b_n, rel=1e-5)
    assert a_grads.keys() == b_grads.keys()
    for name in a_grads:
        assert torch.allclose(a_grads[name], b_grads[name], atol=1e-5), name
