"""Fold-in (mixed into HybridModel): one user's vector fitted to their own history on top of
the frozen model, against the stored contrast events."""
from __future__ import annotations

import dataclasses

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
        self._require()
        config = config or self.config
        base, ubias = self.user_vector(user)
        if history is None or len(history) == 0 or "type" not in history:
            return base, ubias
        weights = config.type_weights
        per_event: dict[int, float] = {}
        first_row: dict[int, int] = {}
        seen: set[tuple[int, str]] = set()
        ids = history["id"].to_numpy()
        for position, (event_id, kind) in enumerate(zip(ids.tolist(), history["type"].tolist())):
            if (event_id, kind) in seen:  # the same action logged twice counts once
                continue
            seen.add((event_id, kind))
            per_event[event_id] = per_event.get(event_id, 0.0) + float(weights.get(kind, 0.0))
            first_row.setdefault(event_id, position)
        kept = [e for e, w in per_event.items() if w != 0]
        if not kept:
            return base, ubias
        matrix = self.event_matrix(history.iloc[[first_row[e] for e in kept]])
        contrast_bias = self.weights["contrast_bias"]
        place = self.place_scores(user, matrix)
        if place is not None:
            # The place term is fixed while the user's vector moves: an offset on both sides,
            # so the vector does not learn "near home" a second time.
            matrix = dataclasses.replace(matrix, bias=matrix.bias + place)
            contrast = self.contrast_places()
            if contrast is not None:
                contrast_bias = contrast_bias + self.place_scores(user, contrast)
        return _fold_in_steps(base, matrix, np.array([per_event[e] for e in kept]),
                              self.weights["contrast_vectors"], contrast_bias,
                              config), ubias

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



def _fold_in_steps(base: np.ndarray, matrix: EventMatrix, weight: np.ndarray,
                   contrast: np.ndarray, contrast_bias: np.ndarray,
                   config: ModelConfig) -> np.ndarray:
    u0 = base.astype(np.float64)
    u = u0.copy()
    H, hb = matrix.vectors.astype(np.float64), matrix.bias.astype(np.float64)
    C, cb = contrast.astype(np.float64), contrast_bias.astype(np.float64)
    pos, neg = weight > 0, weight < 0
    Hp, hbp, wp = H[pos], hb[pos], weight[pos]
    Hn, hbn, wn = H[neg], hb[neg], -weight[neg]
    total = weight.__abs__().sum()
    m = np.zeros_like(u)
    v = np.zeros_like(u)
    b1, b2, lr = 0.9, 0.999, config.fold_in_learning_rate
    for step in range(1, config.fold_in_steps + 1):
        cs = C @ u + cb if len(C) else np.zeros(0)
        grad = 2 * config.fold_in_l2 * (u - u0)
        if len(Hp):
            # Softmax of each positive against the shared contrast set, in closed form: the
            # contrast part of every row's softmax is the same distribution q over C.
            sp = Hp @ u + hbp
            if len(C):
                top = cs.max()
                q = np.exp(cs - top)
                log_z = np.log(q.sum()) + top
                cq = (q / q.sum()) @ C
                a = 1.0 / (1.0 + np.exp(-(sp - log_z)))  # p(positive) in each row's softmax
                grad += ((wp * (1.0 - a))[:, None] * (cq[None, :] - Hp)).sum(axis=0) / total
        if len(Hn) and len(C):
            sn = Hn @ u + hbn
            sig = 1.0 / (1.0 + np.exp(-(sn[:, None] - cs[None, :])))
            g = sig.mean(axis=1)[:, None] * Hn - (sig @ C) / len(C)
            grad += (wn[:, None] * g).sum(axis=0) / total
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        u -= lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + 1e-8)
    return u.astype(np.float32)
