"""Fold-in (mixed into HybridModel): one user's vector fitted to their own history on top of
the frozen model, against the stored contrast events."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.features import Places, UserContext, city_codes
from beacon.model.records import EventMatrix


class FoldIn:
    """Needs self.config, self.weights, self.contrast_cities and the serving methods
    (user_vector, event_matrix, place_scores)."""

    def fold_in(self, user: UserContext, history: pd.DataFrame,
                config: ModelConfig | None = None) -> tuple[np.ndarray, float]:
        """This user's vector fitted to their own interactions on top of the frozen model.
        `history`: event rows (id, category, tags, ...) with a `type` column, one per
        interaction. Adam steps on the training loss against a fixed contrast set of events,
        pulled toward the global vector by fold_in_l2."""
        return self.fold_in_many([user], [history], config)[0]

    def fold_in_many(self, users: Sequence[UserContext],
                     histories: Sequence[pd.DataFrame | None],
                     config: ModelConfig | None = None) -> list[tuple[np.ndarray, float]]:
        """fold_in of each user with their history, all at once (the refresh worker's batch):
        one event matrix for the events of every history, and the Adam steps of every user
        in the same array operations. Each user's answer is the one fold_in gives alone."""
        self._require()
        config = config or self.config
        answers = [self.user_vector(user) for user in users]
        plans = {k: plan for k, history in enumerate(histories)
                 if (plan := _history_weights(history, config.type_weights)) is not None}
        if not plans:
            return answers
        frames = [histories[k].iloc[plan[2]] for k, plan in plans.items()]
        # One history's kept rows are already one per event (its first row of each).
        union = pd.concat(frames, ignore_index=True).drop_duplicates("id") \
            if len(frames) > 1 else frames[0]
        matrix = self.event_matrix(union)
        position = {int(e): row for row, e in enumerate(matrix.event_ids.tolist())}
        contrast = self.contrast_places()
        starts, rows, biases, weights, contrast_biases = [], [], [], [], []
        for k, (kept, weight, _) in plans.items():
            user_rows = np.array([position[int(e)] for e in kept], dtype=np.int64)
            bias = matrix.bias[user_rows]
            contrast_bias = self.weights["contrast_bias"]
            place = self.place_scores(users[k], matrix, user_rows)
            if place is not None:
                # The place term is fixed while the user's vector moves: an offset on both
                # sides, so the vector does not learn "near home" a second time.
                bias = bias + place
                if contrast is not None:
                    contrast_bias = contrast_bias + self.place_scores(users[k], contrast)
            starts.append(answers[k][0])
            rows.append(user_rows)
            biases.append(bias)
            weights.append(weight)
            contrast_biases.append(contrast_bias)
        vectors = _fold_in_steps(np.stack(starts), matrix.vectors, rows, biases, weights,
                                 self.weights["contrast_vectors"], np.stack(contrast_biases),
                                 config)
        for vector, k in zip(vectors, plans):
            answers[k] = (vector, answers[k][1])
        return answers

    def contrast_places(self) -> EventMatrix | None:
        """The fold-in contrast events' places as an (empty-vector) matrix, when stored."""
        if "contrast_lat" not in self.weights or \
                len(self.weights["contrast_lat"]) != len(self.weights["contrast_bias"]):
            return None
        if self._contrast_place is None:
            n = len(self.weights["contrast_lat"])
            cities = self.contrast_cities if len(self.contrast_cities) == n else [None] * n
            code, table = city_codes(pd.Series(cities, dtype=object))
            ids = np.arange(n, dtype=np.int64)
            self._contrast_place = EventMatrix(
                np.zeros((n, 0), np.float32), np.zeros(n, np.float32), ids,
                np.zeros(n, dtype=bool),
                Places(ids, self.weights["contrast_lat"].astype(np.float64),
                       self.weights["contrast_lon"].astype(np.float64), code, table))
        return self._contrast_place



def _history_weights(history: pd.DataFrame | None, type_weights: dict
                     ) -> tuple[list[int], np.ndarray, list[int]] | None:
    """(event ids with a non-zero weight, their weights, the position of each one's first row)
    of one history; None when nothing in it moves the vector. The same action logged twice
    counts once."""
    if history is None or len(history) == 0 or "type" not in history:
        return None
    per_event: dict[int, float] = {}
    first_row: dict[int, int] = {}
    seen: set[tuple[int, str]] = set()
    ids = history["id"].to_numpy()
    for position, (event_id, kind) in enumerate(zip(ids.tolist(), history["type"].tolist())):
        if (event_id, kind) in seen:
            continue
        seen.add((event_id, kind))
        per_event[event_id] = per_event.get(event_id, 0.0) + float(type_weights.get(kind, 0.0))
        first_row.setdefault(event_id, position)
    kept = [e for e, w in per_event.items() if w != 0]
    if not kept:
        return None
    return kept, np.array([per_event[e] for e in kept]), [first_row[e] for e in kept]


def _fold_in_steps(bases: np.ndarray, vectors: np.ndarray, rows: list[np.ndarray],
                   biases: list[np.ndarray], weights: list[np.ndarray], contrast: np.ndarray,
                   contrast_biases: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Adam on every user's loss at once. bases [B, d]; user b's history is vectors[rows[b]]
    with biases[b] and weights[b] (positive: attended, negative: rejected); contrast [C, d]
    is shared, contrast_biases [B, C] per user. Returns the users' vectors [B, d] float32."""
    u0 = bases.astype(np.float64)
    u = u0.copy()
    owner = np.concatenate([np.full(len(r), b, dtype=np.int64) for b, r in enumerate(rows)])
    H = vectors[np.concatenate(rows)].astype(np.float64)
    hb = np.concatenate(biases).astype(np.float64)
    weight = np.concatenate(weights).astype(np.float64)
    total = np.array([np.abs(w).sum() for w in weights])
    C, cb = contrast.astype(np.float64), contrast_biases.astype(np.float64)
    pos, neg = weight > 0, weight < 0
    Hp, hbp, op = H[pos], hb[pos], owner[pos]
    Hn, hbn, on = H[neg], hb[neg], owner[neg]
    scale_p = (weight[pos] / total[op])[:, None]  # each row's share of its user's loss
    scale_n = (-weight[neg] / total[on])[:, None]
    m = np.zeros_like(u)
    v = np.zeros_like(u)
    b1, b2, lr = 0.9, 0.999, config.fold_in_learning_rate
    for step in range(1, config.fold_in_steps + 1):
        grad = 2 * config.fold_in_l2 * (u - u0)
        if len(C):
            cs = u @ C.T + cb  # [B, C]
            if len(Hp):
                # Softmax of each positive against the shared contrast set, in closed form:
                # the contrast part of every row's softmax is the same distribution q over C.
                sp = np.einsum("nd,nd->n", Hp, u[op]) + hbp
                top = cs.max(axis=1, keepdims=True)
                q = np.exp(cs - top)
                z = q.sum(axis=1, keepdims=True)
                log_z = (np.log(z) + top)[:, 0]
                cq = (q / z) @ C  # [B, d]
                a = 1.0 / (1.0 + np.exp(-(sp - log_z[op])))  # p(positive) in its softmax
                np.add.at(grad, op, scale_p * (1.0 - a)[:, None] * (cq[op] - Hp))
            if len(Hn):
                sn = np.einsum("nd,nd->n", Hn, u[on]) + hbn
                sig = 1.0 / (1.0 + np.exp(-(sn[:, None] - cs[on])))
                g = sig.mean(axis=1)[:, None] * Hn - (sig @ C) / len(C)
                np.add.at(grad, on, scale_n * g)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        u -= lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + 1e-8)
    return u.astype(np.float32)
