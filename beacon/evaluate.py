"""Offline evaluation: pure ranking metrics and the temporal holdout (Beacon vs popularity).

Metric functions take ranked lists (best first) and relevant sets; `ndcg_from_scores` is the
vectorized form used for early stopping inside training.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timezone
from typing import Any, Hashable

import numpy as np
import pandas as pd


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
    counts = relevant.sum(axis=1)
    keep = counts > 0
    if not keep.any():
        return 0.0
    scores, relevant, counts = scores[keep], relevant[keep], counts[keep]
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    gains = np.take_along_axis(relevant, top, axis=1) @ discounts
    ideal = np.cumsum(discounts)[np.minimum(counts, k) - 1]
    return float(np.mean(gains / ideal))
