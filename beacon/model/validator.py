"""The early-stopping validator: NDCG@k of the validation positives among the events upcoming
at the split time, scored in blocks of users (with the place term) to bound memory."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from beacon.features import EARTH_RADIUS_KM, NEAR_KM
from beacon.model.data import N_PLACE, _Prepared
from beacon.model.network import _torch
from beacon.ranking_metrics import ndcg_of_top

if TYPE_CHECKING:
    from beacon.model.trainer import _Trainer

VALIDATION_MAX_USERS = 3000  # early stopping needs a steady estimate, not every user
#: users x candidates scored per epoch: where the catalogue is bigger still, fewer users (never
#: below VALIDATION_MIN_USERS), so that judging an epoch does not cost several. 150M keeps all
#: 3,000 users at the scale data's 50k upcoming events: fewer change which epoch early stopping
#: picks (500 users stopped the 100k fit at epoch 2 instead of 29; 2,215 kept the 1M fit going
#: past epoch 15 instead of stopping at 3), and a budget is there to bound the cost, not to
#: change the model. MovieLens and the demo sizes are far below it.
VALIDATION_MAX_CELLS = 150_000_000
VALIDATION_MIN_USERS = 500
VALIDATION_SAMPLE_SEED = 20261123
VALIDATION_BLOCK = 512
#: float16 x 3 place planes kept between epochs up to this many cells (900 MB): the whole cell
#: budget, so that no epoch computes them again (1.9 s of each 100k epoch did)
VALIDATION_PLACE_CACHE_CELLS = VALIDATION_MAX_CELLS
STRONG_SHARE = 0.5  # validation hits: pairs whose weight is at least half the strongest type


class _Validator:
    """NDCG@k of the validation positives among the events upcoming at the split time."""

    def __init__(self, prep: _Prepared, train_rows: pd.DataFrame, val_rows: pd.DataFrame,
                 split: int, k: int, user_split: np.ndarray | None = None,
                 eligible: np.ndarray | None = None, max_users: int | None = None):
        """`user_split` (per user row, with the per-user split): each user ranks only the
        events that had not started at their own split time; `split` is the earliest.
        `eligible`: the user rows that may be scored (default all); `max_users`: a smaller
        sample than early stopping's."""
        self.k = k
        candidates = np.flatnonzero(prep.event_start > split)
        strong = val_rows[val_rows["weight"] >= STRONG_SHARE * prep.max_weight]
        if strong.empty:
            strong = val_rows[val_rows["weight"] > 0]
        strong = strong[np.isin(strong["erow"].to_numpy(), candidates)]
        if user_split is not None:
            strong = strong[prep.event_start[strong["erow"].to_numpy()]
                            > user_split[strong["urow"].to_numpy()]]
        if eligible is not None:
            strong = strong[np.isin(strong["urow"].to_numpy(), eligible)]
        users = np.unique(strong["urow"].to_numpy())
        most = min(max_users or VALIDATION_MAX_USERS, max(VALIDATION_MIN_USERS,
                                             VALIDATION_MAX_CELLS // max(len(candidates), 1)))
        if len(users) > most:
            # A fixed sample: the metric only picks an epoch count, and dense users x upcoming
            # matrices over every validation user do not fit in memory at millions of rows.
            rng = np.random.default_rng(VALIDATION_SAMPLE_SEED)
            users = np.sort(rng.choice(users, most, replace=False))
            strong = strong[np.isin(strong["urow"].to_numpy(), users)]
        self.users = users
        self.prep = prep
        self.candidates = candidates
        self.user_split = None if user_split is None else user_split[users]
        self.candidate_start = prep.event_start[candidates]
        col = pd.Series(np.arange(len(candidates)), index=candidates)
        self.relevant = np.zeros((len(self.users), len(candidates)), dtype=bool)
        urow_pos = pd.Series(np.arange(len(self.users)), index=self.users)
        self.relevant[urow_pos[strong["urow"]].to_numpy(), col[strong["erow"]].to_numpy()] = True
        # As serving does: registered and rejected events are not shown again.
        seen = train_rows[((train_rows["weight"] >= STRONG_SHARE * prep.max_weight)
                           | (train_rows["weight"] < 0))
                          & train_rows["urow"].isin(self.users)
                          & train_rows["erow"].isin(candidates)]
        excluded_rows = urow_pos[seen["urow"]].to_numpy()
        order = np.argsort(excluded_rows, kind="stable")
        self.excluded = (excluded_rows[order], col[seen["erow"]].to_numpy()[order])
        cells = len(self.users) * len(candidates)
        # The place features do not change between epochs: keep them (float16) unless that
        # would take too much memory; then compute them per block of users in `metric`.
        self.place = self._place_planes(slice(None)) \
            if 0 < cells <= VALIDATION_PLACE_CACHE_CELLS and prep.has_place else None

    def _place_planes(self, rows: slice) -> Any:
        """[3, users in rows, candidates] float16 centered place features (the same values
        whether computed for every user at once or per block)."""
        u, e = self.prep.user_place, self.prep.event_place
        users = self.users[rows]
        return place_planes(u.xyz[users], u.city[users], e.xyz[self.candidates],
                            e.city[self.candidates], self.prep.place_center)

    @property
    def usable(self) -> bool:
        return len(self.users) > 0 and len(self.candidates) > 1

    def _excluded_in(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows relative to start, candidate columns) excluded within a block of users."""
        rows, cols = self.excluded
        lo, hi = np.searchsorted(rows, [start, stop])
        return rows[lo:hi] - start, cols[lo:hi]

    def metric(self, trainer: _Trainer) -> float:
        """Mean NDCG@k over the validation users, scored in blocks of users to bound memory."""
        total = 0.0
        for rows, scores in self.score_blocks(trainer):
            total += _ndcg_top_k(scores, self.relevant[rows], self.k) * len(scores)
        return total / len(self.users)

    def score_blocks(self, trainer: _Trainer) -> Iterator[tuple[slice, Any]]:
        """(user rows, torch [block, candidates] hybrid scores) per block of validation users,
        -inf where a candidate is not shown to that user (started, registered, rejected)."""
        torch = _torch()
        vectors, bias = trainer.all_event_vectors()
        users = torch.from_numpy(trainer.users_vectors(self.users))
        event_vectors = torch.from_numpy(np.ascontiguousarray(vectors[self.candidates].T))
        event_bias = torch.from_numpy(bias[self.candidates])
        w = trainer.modules["place"]["w"].detach().cpu().numpy() \
            if trainer.config.locality and self.prep.has_place else None
        for start in range(0, len(self.users), VALIDATION_BLOCK):
            rows = slice(start, start + VALIDATION_BLOCK)
            with torch.no_grad():
                scores = users[rows] @ event_vectors + event_bias
                if w is not None:
                    planes = self.place[:, rows] if self.place is not None else \
                        self._place_planes(rows)
                    for i in range(N_PLACE):
                        scores.add_(planes[i].float(), alpha=float(w[i]))
                if self.user_split is not None:
                    started = self.candidate_start[None, :] <= self.user_split[rows, None]
                    scores[torch.from_numpy(started)] = -np.inf
                excluded = self._excluded_in(start, start + len(scores))
                scores[torch.from_numpy(excluded[0]), torch.from_numpy(excluded[1])] = -np.inf
            yield rows, scores


def _ndcg_top_k(scores, relevant: np.ndarray, k: int) -> float:
    """`evaluate.ndcg_from_scores` for a torch score block: the top k by torch.topk (one pass,
    no argpartition of every row)."""
    k = min(k, scores.shape[1])
    return ndcg_of_top(_torch().topk(scores, k, dim=1).indices.numpy(), relevant)


def place_planes(uxyz: np.ndarray, ucity: np.ndarray, exyz: np.ndarray, ecity: np.ndarray,
                 center: np.ndarray, block: int = 64) -> Any:
    """[3, n_users, n_events] float16 torch tensor: the centered place features of every
    (user, event) pair (same city, log1p(km), exp(-km / NEAR_KM); unknown at 0), as
    `_Prepared.place` gives per pair but without its float64 [..., 3] temporaries: the
    early-stopping validator needs them for thousands of users x every upcoming event. km from
    the float32 chord |u - e| (centimetre precision, no cancellation), computed on blocks of
    users that stay in cache; float16 is plenty to rank by and halves the memory."""
    torch = _torch()
    planes = torch.empty((N_PLACE, len(uxyz), len(exyz)), dtype=torch.float16)
    events = torch.from_numpy(np.asarray(exyz, dtype=np.float32))
    users = torch.from_numpy(np.asarray(uxyz, dtype=np.float32))
    ecity_t = torch.from_numpy(np.asarray(ecity, dtype=np.int64))
    ucity_t = torch.from_numpy(np.asarray(ucity, dtype=np.int64))
    c = [float(x) for x in center]
    ex, ey, ez = (events[:, i].contiguous() for i in range(3))
    for start in range(0, len(uxyz), block):
        rows = slice(start, start + block)
        u = users[rows]
        km = (u[:, 0:1] - ex).square_()
        km.add_((u[:, 1:2] - ey).square_()).add_((u[:, 2:3] - ez).square_())
        km.sqrt_().mul_(0.5).clamp_(max=1.0).asin_().mul_(2.0 * EARTH_RADIUS_KM)
        planes[1, rows] = torch.log1p(km).sub_(c[1]).nan_to_num_(0.0)
        planes[2, rows] = km.clamp_(max=300.0).div_(-NEAR_KM).exp_().sub_(c[2]).nan_to_num_(0.0)
        known = (ucity_t[rows, None] != -1) & (ecity_t[None, :] >= 0)
        same = (ucity_t[rows, None] == ecity_t[None, :]).float().sub_(c[0])
        planes[0, rows] = same.masked_fill_(~known, 0.0)
    return planes
