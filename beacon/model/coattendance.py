"""The co-attendance component: an item-item model with EASE's closed form (Steck 2019) over
the most-attended events, blended with the hybrid score where validation says it helps.

B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1, X the binary user x event matrix of
strong positives (registrations, attendance) restricted to the `coattendance_events` most
attended events. A user's co-attendance score of event j is the sum of B[h, j] over the events
h of their history: no fold-in, so it serves any user with history, a personal model's too.
With recency r > 0 each history event counts 0.5 ** (i / (r n)), i its place in the user's
history of n events newest first (0 the newest): what a user did lately says more about what
they do next than what they did long ago. r is a share of the history, not a time span, so it
means the same for a user with 3 registrations and one with 300.

Blend: both parts are standardized over the user's candidates, the co-attendance part only
over candidates it knows (the others, events without history, get its mean, 0: neither pushed
up nor buried), and mixed as (1 - w) z(hybrid) + w z(co-attendance). w and lambda are chosen
on the early-stopping validation split; w = 0 (no component stored) where it does not help.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from beacon.idmap import IdMap

COATTENDANCE_LAMBDAS = (100.0, 250.0, 600.0, 1500.0)
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.7, 0.85)
#: the history's half-life as a share of its length; 0: every history event counts the same
RECENCY_CHOICES = (0.0, 0.5, 0.25, 0.12)
#: the blend must beat the hybrid alone by this share of its validation NDCG to be switched on
MIN_RELATIVE_GAIN = 0.01


def top_events(erows: np.ndarray, cap: int) -> np.ndarray:
    """The (sorted) event rows of the `cap` most attended events among `erows` (one entry per
    attending user), ties by row."""
    counts = np.bincount(erows)
    present = np.flatnonzero(counts)
    if len(present) > cap:
        order = np.lexsort((present, -counts[present]))
        present = np.sort(present[order[:cap]])
    return present


def gram(urows: np.ndarray, erows: np.ndarray, events: np.ndarray) -> np.ndarray:
    """X^T X (float64) of the binary user x event matrix over `events` (sorted event rows)."""
    import scipy.sparse as sp

    keep = np.isin(erows, events)
    cols = np.searchsorted(events, erows[keep])
    users, urow = np.unique(urows[keep], return_inverse=True)
    x = sp.csr_matrix((np.ones(len(cols)), (urow, cols)), shape=(len(users), len(events)))
    return np.asarray((x.T @ x).todense(), dtype=np.float64)


def ease(g: np.ndarray, lam: float) -> np.ndarray:
    """B = I - P diag(1/diag(P)) with P = (G + lam I)^-1; zero diagonal, float32."""
    p = _spd_inverse(g, lam)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def _spd_inverse(g: np.ndarray, lam: float) -> np.ndarray:
    """(G + lam I)^-1 from the Cholesky factor U (G + lam I = U^T U, positive definite for
    lam > 0): U^-1 U^-T, about 1.4x faster than a general inverse at 3,000 events."""
    from scipy.linalg import lapack

    a = np.array(g, dtype=np.float64, order="F")
    a[np.diag_indices_from(a)] += lam
    factor, info = lapack.dpotrf(a, lower=0, overwrite_a=1)
    if info == 0:
        factor_inv, info = lapack.dtrtri(factor, lower=0, overwrite_c=1)
    if info != 0:  # not positive definite after all: the general inverse
        return np.linalg.inv(g + lam * np.eye(len(g)))
    upper = np.triu(factor_inv)
    return upper @ upper.T


def recency_weights(n: int, recency: float) -> np.ndarray:
    """The weights of a history of `n` events ordered newest first: 0.5 ** (i / (recency n))
    for the i-th newest, every one 1 with recency 0."""
    if recency <= 0 or n == 0:
        return np.ones(n, dtype=np.float32)
    return (0.5 ** (np.arange(n) / (recency * n))).astype(np.float32)


def history_sums(b: np.ndarray, histories: list[np.ndarray],
                 weights: list[np.ndarray] | None = None) -> np.ndarray:
    """[users, n] sum of B's rows over each user's history positions (positions into B),
    each row times its weight in `weights` (default 1)."""
    import scipy.sparse as sp

    if len(histories) <= 4:  # serving's one user: a weighted sum of a few rows is cheapest
        out = np.zeros((len(histories), b.shape[1]), dtype=np.float32)
        for i, positions in enumerate(histories):
            if len(positions):
                out[i] = b[positions].sum(axis=0) if weights is None \
                    else weights[i].astype(np.float32) @ b[positions]
        return out
    lengths = np.array([len(p) for p in histories], dtype=np.int64)
    if not lengths.sum():
        return np.zeros((len(histories), b.shape[1]), dtype=np.float32)
    cols = np.concatenate(histories).astype(np.int64)
    values = np.ones(len(cols), dtype=np.float32) if weights is None \
        else np.concatenate(weights).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    x = sp.csr_matrix((values, cols, indptr), shape=(len(histories), b.shape[0]))
    return np.asarray(x @ b, dtype=np.float32)


def ordered_positions(index: IdMap, history: Any, recency: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(positions in B, weights) of a history of event ids ordered newest first (an event
    listed twice counts once, at its newest place); the weights come from the whole history,
    so events B does not know still take their place in it."""
    ids = np.asarray(list(history), dtype=np.int64)
    if not len(ids):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    _, first = np.unique(ids, return_index=True)
    ids = ids[np.sort(first)]
    weights = recency_weights(len(ids), recency)
    rows = index.rows(ids)
    known = rows >= 0
    return rows[known], weights[known]


def standardized(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each row standardized over its `valid` cells (mean 0, sd 1; a constant row gives 0);
    invalid cells are 0."""
    values = np.where(valid, values, 0.0).astype(np.float64)
    n = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = values.sum(axis=1, keepdims=True) / n
    centered = np.where(valid, values - mean, 0.0)
    sd = np.sqrt((centered ** 2).sum(axis=1, keepdims=True) / n)
    return np.where(sd > 0, centered / np.where(sd > 0, sd, 1.0), 0.0)


def blend_parts(hybrid: np.ndarray, co: np.ndarray, known: np.ndarray,
                has_history: np.ndarray, weight: float,
                finite: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((1 - w) z(hybrid), w z(co-attendance)): rows standardized over their candidates
    (`finite`, default every cell), the co-attendance part over the candidates it knows
    (`known`, [candidates]) and only for users with history in it (`has_history`, [users];
    0 elsewhere)."""
    finite = np.ones(hybrid.shape, dtype=bool) if finite is None else finite
    z_hybrid = standardized(hybrid, finite)
    if weight <= 0:
        return z_hybrid, np.zeros_like(z_hybrid)
    valid = finite & known[None, :] & has_history[:, None]
    return (1.0 - weight) * z_hybrid, weight * standardized(co, valid)


def blend(hybrid: np.ndarray, co: np.ndarray, known: np.ndarray, has_history: np.ndarray,
          weight: float, finite: np.ndarray | None = None) -> np.ndarray:
    """(1 - w) z(hybrid) + w z(co-attendance): the sum of `blend_parts`."""
    hybrid_part, co_part = blend_parts(hybrid, co, known, has_history, weight, finite)
    return hybrid_part + co_part


@dataclass
class CoAttendance:
    """A fitted component: B over `event_ids` (model event ids), its blend weight, lambda and
    recency (0: no decay). Histories are sequences of event ids ordered newest first."""

    event_ids: np.ndarray
    matrix: np.ndarray  # [n, n] float32, zero diagonal
    weight: float
    lam: float
    recency: float = 0.0

    def __post_init__(self) -> None:
        self.index = IdMap(np.asarray(self.event_ids, dtype=np.int64))

    def positions(self, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """(positions in B, weights) of a history ordered newest first (`ordered_positions`)."""
        return ordered_positions(self.index, history, self.recency)

    def scores(self, histories: list[Any], candidate_ids: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(co-attendance [users, candidates], known [candidates], has_history [users])."""
        cols = self.index.rows(np.asarray(candidate_ids, dtype=np.int64))
        known = cols >= 0
        found = [self.positions(h) for h in histories]
        sums = history_sums(self.matrix, [p for p, _ in found], [w for _, w in found])
        co = np.zeros((len(histories), len(cols)), dtype=np.float32)
        co[:, known] = sums[:, cols[known]]
        has_history = np.array([len(p) > 0 for p, _ in found], dtype=bool)
        return co, known, has_history

    def blended(self, hybrid: np.ndarray, histories: list[Any],
                candidate_ids: np.ndarray) -> np.ndarray:
        """The blend of [users, candidates] hybrid scores with this component."""
        co, known, has_history = self.scores(histories, candidate_ids)
        return blend(hybrid, co, known, has_history, self.weight)

    def parts(self, hybrid: np.ndarray, histories: list[Any], candidate_ids: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """`blend_parts` of [users, candidates] hybrid scores; None when no user has history
        this component knows (the hybrid ranks alone)."""
        co, known, has_history = self.scores(histories, candidate_ids)
        if not has_history.any():
            return None
        return blend_parts(hybrid, co, known, has_history, self.weight)

    def strongest_source(self, history: Any, event_id: int) -> tuple[int, float] | None:
        """The history event (id) that adds most to `event_id`'s co-attendance score, with its
        share; None when B does not know the event or no history event adds to it."""
        col = self.index.row(int(event_id))
        positions, weights = self.positions(history)
        if col < 0 or len(positions) == 0:
            return None
        column = self.matrix[positions, col] * weights
        best = int(np.argmax(column))
        if column[best] <= 0:
            return None
        return int(self.event_ids[positions[best]]), float(column[best])


def user_histories(rows: pd.DataFrame, users: np.ndarray) -> list[np.ndarray]:
    """Per user row in `users`: the event rows of their pairs in `rows` (urow, erow, t),
    newest first (`newest_first`)."""
    return newest_first(rows, users, "urow", "erow", "t")


def newest_first(frame: pd.DataFrame, users: Any, user: str, event: str, at: str
                 ) -> list[np.ndarray]:
    """Per user in `users`: the distinct events of their rows in `frame`, newest first, the
    order the component weighs a history in (by each pair's first time, when the user
    registered; ties: the higher event first)."""
    first = frame.groupby([user, event], sort=False)[at].min().reset_index()
    first = first.sort_values([user, at, event], ascending=[True, False, False], kind="stable")
    grouped = first.groupby(user, sort=False)[event].agg(lambda s: s.to_numpy())
    empty = np.zeros(0, dtype=np.int64)
    return [grouped.get(u, empty) for u in users]
