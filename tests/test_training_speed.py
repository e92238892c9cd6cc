"""What keeps training fast at scale without changing what it computes: the co-attendance
inverse through a Cholesky factor, and the validation users capped by a users x candidates
budget on big catalogues."""
from __future__ import annotations

import numpy as np
import pytest

from beacon.config import ModelConfig
from beacon.model import HybridModel
from beacon.model.coattendance import ease
from tests.test_model_contract import place_world, to_training_data


def _general_ease(g: np.ndarray, lam: float) -> np.ndarray:
    """EASE's B through numpy's general inverse, as the component computed it before."""
    p = np.linalg.inv(g + lam * np.eye(len(g)))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


@pytest.mark.parametrize("lam", [0.5, 100.0, 1500.0])
def test_coattendance_inverse_matches_the_general_inverse(lam):
    rng = np.random.default_rng(11)
    x = (rng.random((400, 60)) < 0.08).astype(np.float64)
    g = x.T @ x
    b = ease(g, lam)
    assert b.dtype == np.float32 and np.all(np.diag(b) == 0)
    np.testing.assert_allclose(b, _general_ease(g, lam), rtol=1e-5, atol=1e-6)


def test_history_sums_of_many_users_in_one_product_match_each_users_own_sum():
    """Many users (the fit's choice, `evaluate`) go through one sparse product, one user
    (serving) through a weighted sum of B's rows: the same numbers, empty histories 0."""
    from beacon.model.coattendance import history_sums, recency_weights

    rng = np.random.default_rng(5)
    b = rng.standard_normal((50, 50)).astype(np.float32)
    histories = [rng.choice(50, size=n, replace=False) for n in (0, 1, 7, 20, 3, 0, 12, 5)]
    weights = [recency_weights(len(h), 0.25) for h in histories]
    together = history_sums(b, histories, weights)
    alone = np.vstack([history_sums(b, [h], [w]) for h, w in zip(histories, weights)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(alone[2], weights[2] @ b[histories[2]], rtol=1e-5)
    assert not together[0].any() and not together[5].any()
    np.testing.assert_allclose(history_sums(b, histories), np.vstack(
        [b[h].sum(axis=0) for h in histories]), rtol=1e-5, atol=1e-5)


def test_coattendance_inverse_falls_back_when_not_positive_definite():
    """lambda 0 on a singular Gram matrix (two identical columns): no Cholesky factor, but
    the same answer numpy's general inverse gives (or its error), never a wrong B."""
    g = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    np.testing.assert_allclose(ease(g, 0.0), _general_ease(g, 0.0), rtol=1e-5, atol=1e-6)
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(np.linalg.LinAlgError):
        ease(singular, 0.0)


def test_validation_users_follow_the_cell_budget(monkeypatch):
    """A big catalogue scores fewer validation users (budget // candidates, never below the
    floor); a small one keeps every validation user."""
    import beacon.model.validator as validator

    data = to_training_data(place_world())
    config = ModelConfig(dim=8, epochs=2, patience=2, refit=False, seed=3,
                         validation_fraction=0.3)
    everyone = HybridModel.fit(data, config).validation
    assert everyone["users"] >= 3

    monkeypatch.setattr(validator, "VALIDATION_MAX_CELLS", 2 * everyone["candidates"])
    monkeypatch.setattr(validator, "VALIDATION_MIN_USERS", 1)
    capped = HybridModel.fit(data, config).validation
    assert capped["users"] == 2 and capped["candidates"] == everyone["candidates"]

    monkeypatch.setattr(validator, "VALIDATION_MAX_CELLS", 1)
    monkeypatch.setattr(validator, "VALIDATION_MIN_USERS", 3)
    floored = HybridModel.fit(data, config).validation
    assert floored["users"] == 3


def test_warm_learning_rate_decays_with_the_steps_and_is_off_by_default():
    from types import SimpleNamespace

    from beacon.model.trainer import _Trainer

    def rate(config: ModelConfig, steps: int) -> float:
        return _Trainer.learning_rate(SimpleNamespace(config=config, steps=steps))

    assert rate(ModelConfig(), 0) == rate(ModelConfig(), 10_000) == 0.005
    warm = ModelConfig(learning_rate=0.005, warm_learning_rate=0.025, warm_half_life=100)
    assert rate(warm, 0) == pytest.approx(0.025)
    assert rate(warm, 100) == pytest.approx(0.015)
    assert rate(warm, 200) == pytest.approx(0.010)
    assert rate(warm, 100_000) == pytest.approx(0.005)
    with pytest.raises(Exception, match="warm_half_life"):
        ModelConfig(warm_half_life=-1)


def test_warm_start_changes_the_fit_and_the_refit_repeats_it():
    """The warm start reaches the optimizer (another model than without it), and two fits
    with it agree (the refit's schedule is a function of its own steps)."""
    data = to_training_data(place_world())
    base = ModelConfig(dim=8, epochs=3, patience=3, seed=5, validation_fraction=0.3)
    warm = ModelConfig(dim=8, epochs=3, patience=3, seed=5, validation_fraction=0.3,
                       warm_learning_rate=0.05, warm_half_life=5)
    plain = HybridModel.fit(data, base).weights["user_id"]
    first = HybridModel.fit(data, warm).weights["user_id"]
    second = HybridModel.fit(data, warm).weights["user_id"]
    assert not np.allclose(plain, first)
    np.testing.assert_array_equal(first, second)


def test_blend_choice_ranks_a_shortlist_with_the_same_top_k():
    """The co-attendance choice ranks each blend over the shortlist (every column B knows, and
    each row's best k of the rest by the hybrid): the same NDCG as over every candidate."""
    from beacon.model.coattendance import standardized
    from beacon.model.coattendance_fit import _ndcg, shortlist

    rng = np.random.default_rng(4)
    users, candidates, k = 40, 500, 10
    hybrid = rng.normal(size=(users, candidates))
    finite = rng.random((users, candidates)) > 0.1
    known = rng.random(candidates) < 0.2
    has_history = rng.random(users) < 0.8
    co = rng.normal(size=(users, candidates)) * known[None, :]
    relevant = rng.random((users, candidates)) < 0.02
    z_hybrid = standardized(hybrid, finite)
    z_co = standardized(co, finite & known[None, :] & has_history[:, None])
    short = shortlist(z_hybrid, finite, known, k)
    assert len(short) < candidates
    for weight in (0.0, 0.25, 0.85):
        full = (1 - weight) * z_hybrid + weight * z_co
        full[~finite] = -np.inf
        assert _ndcg(full[:, short], relevant, k, short) == pytest.approx(
            _ndcg(full, relevant, k))


def test_without_any_place_the_place_term_is_skipped_and_the_fit_is_the_same():
    """No coordinates and no cities on one side: every centered place feature is 0, so
    training and validation skip the term; the fit equals one that computes it (forced)."""
    from beacon.model import data as model_data

    world = place_world()
    world["users"] = world["users"].assign(latitude=np.nan, longitude=np.nan, city=None)
    config = ModelConfig().with_overrides(epochs=3, patience=0, seed=4)
    prepared = model_data._prepare(to_training_data(world), config)
    assert not prepared.has_place
    assert not np.any(prepared.place(np.arange(3)[:, None], np.arange(5)[None, :]))
    skipped = HybridModel.fit(to_training_data(world), config)
    original = model_data._Prepared.has_place
    try:
        model_data._Prepared.has_place = property(lambda self: True)
        computed = HybridModel.fit(to_training_data(world), config)
    finally:
        model_data._Prepared.has_place = original
    np.testing.assert_allclose([h["loss"] for h in skipped.loss_history],
                               [h["loss"] for h in computed.loss_history], rtol=1e-6)
    with_places = model_data._prepare(to_training_data(place_world()), config)
    assert with_places.has_place
