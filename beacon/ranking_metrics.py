"""Pure ranking metrics: ranked lists (best first) against relevant sets, and the vectorized
NDCG@k that early stopping uses. No model, no database: the model and evaluate both use them."""
from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Hashable

import numpy as np


def _dcg(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    return sum(1.0 / math.log2(i + 2) for i, item in enumerate(list(ranked)[:k]) if item in relevant)


def hit_rate_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """1.0 when any of the top k is relevant."""
    return 1.0 if any(item in relevant for item in list(ranked)[:k]) else 0.0


def precision_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Relevant items in the top k, divided by k."""
    return sum(1 for item in list(ranked)[:k] if item in relevant) / k


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Relevant items in the top k, divided by the number of relevant items (0 when none)."""
    if not relevant:
        return 0.0
    return sum(1 for item in list(ranked)[:k] if item in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Binary-relevance NDCG: DCG of the top k over the DCG of a perfect top k."""
    if not relevant:
        return 0.0
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return _dcg(ranked, relevant, k) / ideal


def coverage(ranked_lists: Sequence[Sequence[Hashable]], catalog_size: int, k: int) -> float:
    """Share of the catalog that appears in at least one top k."""
    if catalog_size <= 0:
        return 0.0
    shown = {item for ranked in ranked_lists for item in list(ranked)[:k]}
    return len(shown) / catalog_size


def ndcg_from_scores(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Mean NDCG@k over rows of a [users, items] score matrix against a boolean relevance
    matrix of the same shape (rows without relevant items are skipped; -inf = excluded)."""
    keep = relevant.sum(axis=1) > 0
    if not keep.any():
        return 0.0
    return ndcg_of_top(top_columns(scores[keep], k), relevant[keep])


def top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """[rows, min(k, columns)] the columns of each row's k best scores, best first (ties in
    column order of the partition, stably sorted)."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def ndcg_of_top(top: np.ndarray, relevant: np.ndarray) -> float:
    """Mean NDCG@k of rows whose top k columns, best first, are `top` [users, k], against a
    boolean relevance matrix [users, items] (rows without relevant items are skipped)."""
    counts = relevant.sum(axis=1)
    keep = counts > 0
    if not keep.any():
        return 0.0
    k = top.shape[1]
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    gains = np.take_along_axis(relevant[keep], top[keep], axis=1) @ discounts
    ideal = np.cumsum(discounts)[np.minimum(counts[keep], k) - 1]
    return float(np.mean(gains / ideal))
