"""The cold token shrink: an event without training history is scored from its tokens, each
weighed n / (n + k) by how many trained events carried it. Known answers for the counts and
the vectors, events with history untouched, k = 0 and older blobs unshrunk, damaged counts
refused, and a bad setting named."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beacon.config import ModelConfig
from beacon.errors import BeaconError
from beacon.features import event_token_rows
from beacon.model import HybridModel
from beacon.model.trainer import token_support
from tests.test_model_contract import CONFIG, tiny_world, to_training_data


def test_token_support_counts_each_token_once_per_known_row() -> None:
    pad = 3
    tokens = np.array([[0, 1, 1, pad], [1, 2, pad, pad], [0, pad, pad, pad]])
    np.testing.assert_array_equal(token_support(tokens, np.array([0, 1]), pad), [1, 2, 1])
    np.testing.assert_array_equal(token_support(tokens, np.array([0, 1, 2]), pad), [2, 2, 1])
    np.testing.assert_array_equal(token_support(tokens, np.array([], dtype=np.int64), pad),
                                  [0, 0, 0])


@pytest.fixture(scope="module")
def fitted() -> tuple[HybridModel, dict[str, pd.DataFrame]]:
    world = tiny_world()
    return HybridModel.fit(to_training_data(world), CONFIG), world


def _with_shrink(model: HybridModel, k: float) -> HybridModel:
    copy = HybridModel.from_bytes(model.to_bytes())
    copy.config = copy.config.with_overrides(cold_token_shrink=k)
    return copy


def test_an_unseen_event_weighs_each_token_by_its_support(fitted) -> None:
    model, world = fitted
    new = world["events"][world["events"]["id"] == 150]  # jazz, nobody registered yet
    assert not model.knows_event(150)
    support = model.weights["event_tok_support"]
    # every jazz event carries the jazz tokens: 8 trained events, so 8 / (8 + 5) of each
    index = model.event_vocab.index
    for token in ("tag:jazz", "organizer:Blue Note", "category:music"):
        assert support[index[token]] == 8
    pad = len(model.event_vocab)
    tokens = [t for t in event_token_rows(new, model.event_vocab, pad=pad)[0] if t != pad]
    assert len(tokens) > 3
    matrix = model.event_matrix(new)
    factors = support[tokens] / (support[tokens] + 5.0)
    expected = (model.weights["event_tok"][tokens] * factors[:, None]).sum(axis=0)
    np.testing.assert_allclose(matrix.vectors[0], expected, rtol=1e-5, atol=1e-6)
    full = _with_shrink(model, 0.0).event_matrix(new)
    assert not np.allclose(full.vectors[0], matrix.vectors[0])


def test_events_with_history_are_scored_as_without_the_shrink(fitted) -> None:
    model, world = fitted
    old = world["events"][world["events"]["id"].isin([100, 101, 200])]
    shrunk, full = model.event_matrix(old), _with_shrink(model, 0.0).event_matrix(old)
    np.testing.assert_array_equal(shrunk.vectors, full.vectors)
    np.testing.assert_array_equal(shrunk.bias, full.bias)


def test_a_blob_without_the_counts_scores_unseen_events_unshrunk(fitted) -> None:
    model, world = fitted
    old_blob = HybridModel.from_bytes(model.to_bytes())
    del old_blob.weights["event_tok_support"]
    loaded = HybridModel.from_bytes(old_blob.to_bytes())
    assert loaded.cold_token_factors() is None
    new = world["events"][world["events"]["id"] == 150]
    np.testing.assert_array_equal(loaded.event_matrix(new).vectors,
                                  _with_shrink(model, 0.0).event_matrix(new).vectors)


def test_damaged_counts_in_a_blob_are_refused(fitted) -> None:
    model, _ = fitted
    broken = HybridModel.from_bytes(model.to_bytes())
    broken.weights["event_tok_support"] = -broken.weights["event_tok_support"] - 1
    with pytest.raises(BeaconError, match="event_tok_support"):
        HybridModel.from_bytes(broken.to_bytes())
    broken.weights["event_tok_support"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(BeaconError, match="event_tok_support has shape"):
        HybridModel.from_bytes(broken.to_bytes())


@pytest.mark.parametrize("value", [-1, "5", float("nan")])
def test_a_bad_shrink_is_refused_by_name(value) -> None:
    with pytest.raises(BeaconError, match="cold_token_shrink"):
        ModelConfig(cold_token_shrink=value)


def test_changing_the_shrink_on_a_loaded_model_changes_its_new_events(fitted) -> None:
    model, world = fitted
    new = world["events"][world["events"]["id"] == 150]
    copy = _with_shrink(model, 5.0)
    at_five = copy.event_matrix(new).vectors.copy()
    copy.config = copy.config.with_overrides(cold_token_shrink=50.0)
    at_fifty = copy.event_matrix(new).vectors
    assert np.linalg.norm(at_fifty) < np.linalg.norm(at_five)
