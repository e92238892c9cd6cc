"""HybridModel: a LightFM-style hybrid factorization model in torch.

user vector  = id embedding (users seen in training) + sum of user token embeddings
event vector = id embedding (events seen in training) + sum of event token embeddings
score        = user . event + event bias (id bias + token biases) + place term
place term   = w . (f(user home, event) - center): f = same city, log1p(km), exp(-km / 10);
               the weights are learned with the rest, the center (the features' mean over random
               user/event pairs) is fixed at fit time, and an unknown feature (no home, no city,
               no coordinates) counts as the center: 0, neutral.

Trained on implicit feedback: each (user, event) pair carries the sum of its interaction type
weights; positive pairs are ranked above sampled negatives with a sampled-softmax (or BPR) loss,
negative pairs (reject, unregister) are pushed below them. Negatives are drawn among events that
had not started yet when the interaction happened ("alive"), the same choice a user faced.
The id embeddings are dropped at random during training so that the feature tokens carry the
signal cold events and new users depend on. Early stopping on a time split: the last
`validation_fraction` of positive interactions, ranked among the events upcoming at the split.

Serving is numpy only: `event_matrix` builds [n, d] vectors for a frame of events once (token
rows through a single embedding-bag) and keeps the events' places (unit vectors, city codes),
`score` is one matrix-vector product plus the place term (a dot product per event for the
distance: about 1.6 ms for 100k events). `explain` names the place term "geo:home".
A blob written before the place term loads with none (its scores are unchanged).
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from beacon.cancel import check as check_cancel
from beacon.config import ModelConfig
from beacon.errors import BeaconError, ModelNotFitted
from beacon.evaluate import ndcg_of_top
from beacon.features import (
    EARTH_RADIUS_KM,
    NEAR_KM,
    PLACE_FEATURES,
    PLACE_TOKEN,
    Places,
    UserContext,
    Vocabulary,
    centered_place_features,
    city_codes,
    event_token_rows,
    event_token_table,
    event_tokens,
    norm,
    place_features,
    place_term,
    unit_xyz,
    user_token_rows,
    user_token_table,
    user_tokens,
)
from beacon.idmap import IdMap

FORMAT = "beacon-hybrid/1"
CONTRAST_EVENTS = 1024
MIN_VALIDATION_POSITIVES = 20
VALIDATION_MAX_USERS = 3000  # early stopping needs a steady estimate, not every user
VALIDATION_SAMPLE_SEED = 20261123
VALIDATION_BLOCK = 512
VALIDATION_PLACE_CACHE_CELLS = 100_000_000  # float16 x 3: at most 600 MB (3,000 users)
PUBLISHED_BUCKETS = 64  # time buckets of the "published" negative sampler
PUBLISHED_ROUNDS = 4  # draws per negative in its bucket before the plain alive fallback
ALL_EVENTS_FACTOR = 8  # sum every event's tokens per step unless the catalog is this much bigger
STRONG_SHARE = 0.5  # validation hits: pairs whose weight is at least half the strongest type
PLACE_CENTER_PAIRS = 100_000  # random (user, event) pairs that fix the place features' centers
N_PLACE = len(PLACE_FEATURES)

_WEIGHT_KEYS = ("user_id", "user_tok", "event_id", "event_id_bias", "event_tok", "event_tok_bias",
                "contrast_vectors", "contrast_bias")
# Added with the place term; a blob written before it lacks them and loads with no place term.
_OPTIONAL_KEYS = ("place_w", "place_center", "contrast_lat", "contrast_lon")


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    total_epochs: int
    loss: float
    val_metric: float | None
    seconds: float
    phase: str = "train"  # "train" (with validation) or "refit" (all data, fixed epochs)


@dataclass(frozen=True)
class EventMatrix:
    """Vectors and biases for a frame of events, in the frame's order."""

    vectors: np.ndarray  # float32 [n, d]
    bias: np.ndarray  # float32 [n]
    event_ids: np.ndarray  # int64 DB ids [n]
    known: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))  # seen in training
    # Where each event is (for the pairwise place term). Keyed by event id, so a copy of the
    # matrix narrowed to some rows (dataclasses.replace of vectors/bias/event_ids) still aligns.
    place: Places | None = None

    def __len__(self) -> int:
        return len(self.event_ids)


# --------------------------------------------------------------------------- training data prep


@dataclass
class _Prepared:
    users: pd.DataFrame
    events: pd.DataFrame
    user_frame: IdMap
    event_frame: IdMap
    user_vocab: Vocabulary
    event_vocab: Vocabulary
    user_tok: np.ndarray  # [n_users_frame, Lu]
    event_tok: np.ndarray  # [n_events_frame, Le]
    event_start: np.ndarray  # int64 epoch seconds per event frame row
    rows: pd.DataFrame  # urow, erow, weight, t (one line per interaction with nonzero weight)
    max_weight: float
    user_place: Places | None = None
    event_place: Places | None = None
    place_center: np.ndarray | None = None  # [3] mean raw place features of random pairs

    def place(self, urow: np.ndarray, erow: np.ndarray) -> np.ndarray:
        """[..., 3] centered place features of (user row, event row) pairs (broadcast)."""
        u, e = self.user_place, self.event_place
        raw = place_features(u.xyz[urow], u.city[urow], e.xyz[erow], e.city[erow])
        return centered_place_features(raw, self.place_center)


def _prepare(data: Any, config: ModelConfig) -> _Prepared:
    users = data.users.reset_index(drop=True)
    events = data.events.reset_index(drop=True)
    inter = data.interactions
    if len(inter) == 0 or len(events) == 0:
        raise BeaconError("nothing to train on: no interactions (load or import data first)")
    user_frame = IdMap(users["id"].to_numpy(dtype=np.int64))
    event_frame = IdMap(events["id"].to_numpy(dtype=np.int64))
    types = inter["type"].astype(str).to_numpy()
    weight_of = {t: config.weight(t) for t in pd.unique(types)}
    weight = pd.Series(types).map(weight_of).to_numpy(dtype=np.float64)
    rows = pd.DataFrame({
        "urow": user_frame.rows(inter["user_id"].to_numpy(dtype=np.int64)),
        "erow": event_frame.rows(inter["event_id"].to_numpy(dtype=np.int64)),
        "type": types,
        "weight": weight,
        "t": inter["occurred_at"].to_numpy(dtype=np.int64),
    })
    rows = rows[(rows["urow"] >= 0) & (rows["erow"] >= 0) & (rows["weight"] != 0)]
    # The same action logged twice counts once.
    rows = rows.drop_duplicates(["urow", "erow", "type"], keep="first")
    if not (rows["weight"] > 0).any():
        raise BeaconError("nothing to train on: no positive interactions "
                          "(register, attend, favorite, share, click or view)")
    user_table = user_token_table(users)
    event_table = event_token_table(events)
    user_vocab = Vocabulary.build(user_table["token"])
    event_vocab = Vocabulary.build(event_table["token"])
    start = pd.to_datetime(events["start_time"], utc=True)
    event_start = ((start - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(
        dtype=np.int64)
    event_place = Places.of(events)
    user_place = Places.of(users, event_place.cities)
    rng = np.random.default_rng(config.seed + 2)
    positive_users = rows.loc[rows["weight"] > 0, "urow"].to_numpy()
    n_sample = min(PLACE_CENTER_PAIRS, max(len(positive_users), 1) * 50)
    su = rng.choice(positive_users, n_sample) if len(positive_users) else np.zeros(0, np.int64)
    se = rng.integers(0, len(events), n_sample)
    raw = place_features(user_place.xyz[su], user_place.city[su], event_place.xyz[se],
                         event_place.city[se])
    with warnings.catch_warnings():  # a feature nobody has (no coordinates at all): NaN -> 0
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmean(raw, axis=0) if len(raw) else np.zeros(N_PLACE)
    center = np.nan_to_num(np.asarray(center, dtype=np.float64), nan=0.0)
    return _Prepared(
        users=users, events=events, user_frame=user_frame, event_frame=event_frame,
        user_vocab=user_vocab, event_vocab=event_vocab,
        user_tok=user_token_rows(users, user_vocab, pad=len(user_vocab)),
        event_tok=event_token_rows(events, event_vocab, pad=len(event_vocab)),
        event_start=event_start, rows=rows.reset_index(drop=True),
        max_weight=float(max(config.type_weights.values())),
        user_place=user_place, event_place=event_place, place_center=center,
    )


def _pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (user, event): summed weight, time of the first interaction."""
    grouped = rows.groupby(["urow", "erow"], sort=True).agg(weight=("weight", "sum"),
                                                            t=("t", "min"))
    grouped = grouped[grouped["weight"] != 0].reset_index()
    return grouped


def _split_time(rows: pd.DataFrame, fraction: float) -> int | None:
    """The time after which the last `fraction` of positive interactions happened."""
    if fraction <= 0:
        return None
    positive_t = np.sort(rows.loc[rows["weight"] > 0, "t"].to_numpy())
    n_val = int(round(len(positive_t) * fraction))
    if n_val < MIN_VALIDATION_POSITIVES or n_val >= len(positive_t):
        return None
    split = int(positive_t[len(positive_t) - n_val])
    if split <= positive_t[0]:
        return None
    return split


# --------------------------------------------------------------------------- torch network


def _torch():
    import torch

    return torch


def _resolve_device(name: str) -> str:
    torch = _torch()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise BeaconError("device 'cuda' asked for but no CUDA device is available")
    return name


class _Trainer:
    """Holds the torch parameters and index tensors of one training run."""

    def __init__(self, prep: _Prepared, pairs: pd.DataFrame, config: ModelConfig, device: str):
        torch = self.torch = _torch()
        nn = torch.nn
        self.prep, self.config, self.device = prep, config, device
        self.rng = np.random.default_rng(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        d = config.dim
        self._pairs_erow = pairs["erow"].to_numpy(dtype=np.int64)
        self._pairs_t = pairs["t"].to_numpy(dtype=np.int64)
        known_users = np.unique(pairs["urow"].to_numpy())
        known_events = np.unique(pairs["erow"].to_numpy())
        self.known_users, self.known_events = known_users, known_events
        n_u, n_e = len(known_users), len(known_events)
        uid = np.full(len(prep.users), n_u, dtype=np.int64)
        uid[known_users] = np.arange(n_u)
        eid = np.full(len(prep.events), n_e, dtype=np.int64)
        eid[known_events] = np.arange(n_e)
        self.uid_pad, self.eid_pad = n_u, n_e
        self.uid = torch.from_numpy(uid).to(device)
        self.eid = torch.from_numpy(eid).to(device)
        self.utok = torch.from_numpy(prep.user_tok).to(device)
        self.etok = torch.from_numpy(prep.event_tok).to(device)
        n_ut, n_et = len(prep.user_vocab), len(prep.event_vocab)
        scale = 0.1 / np.sqrt(d)

        def emb(n: int, dim: int, bias: bool = False):
            """n rows (+ a zero padding row) of `dim` random values, and with `bias` a last
            column of zeros: the bias, in the same table so that one lookup serves both."""
            module = nn.Embedding(n + 1, dim + int(bias), padding_idx=n)
            with torch.no_grad():
                module.weight.zero_()
                module.weight[:, :dim] = torch.randn(n + 1, dim, generator=generator) * scale
                module.weight[n].zero_()
            return module.to(device)

        self.modules = nn.ModuleDict({
            "user_id": emb(n_u, d),
            "user_tok": emb(n_ut, d),
            "event_id": emb(n_e, d, bias=True),  # [n_e + 1, d + 1]: vector, bias
            "event_tok": emb(n_et, d, bias=True),
            # The pairwise place term: weights of same city, log1p(km), exp(-km/10) (centered).
            "place": nn.ParameterDict({"w": nn.Parameter(torch.zeros(N_PLACE, device=device),
                                                         requires_grad=config.locality)}),
        })
        self.optimizer = torch.optim.Adam(
            [p for p in self.modules.parameters() if p.requires_grad], lr=config.learning_rate,
            fused=True)
        order = np.argsort(prep.event_start, kind="stable")
        self.alive_order = order
        self.alive_start = prep.event_start[order]
        # Sum every event's tokens once per step (one sparse product, its gradient another),
        # then gather rows from that: far cheaper than a [batch, 1 + negatives, tokens, dim]
        # lookup unless the catalog dwarfs the events a step samples.
        self.all_events_per_step = len(prep.events) <= \
            ALL_EVENTS_FACTOR * config.batch_size * (config.negatives + 1)
        self.event_bag = _TokenBag(prep.event_tok, n_et, device) \
            if self.all_events_per_step else None
        self._tok_cache = None

    # -- vectors
    def user_vectors(self, urows, drop=None):
        m = self.modules
        ids = self.uid[urows]
        if drop is not None:
            ids = self.torch.where(drop, self.uid_pad, ids)
        return m["user_id"](ids) + m["user_tok"](self.utok[urows]).sum(-2)

    def event_token_sums(self, erows):
        """[..., d + 1] token sums of the given events: vector, then bias in the last column."""
        return self.modules["event_tok"](self.etok[erows]).sum(-2)

    def all_event_token_sums(self):
        """[n_events, d + 1] token sums of every event (through the sparse bag)."""
        if self.event_bag is None:
            return self.event_token_sums(self.all_rows)
        return self.event_bag.sum(self.modules["event_tok"].weight)

    def begin_step(self) -> None:
        self._tok_cache = self.all_event_token_sums() if self.all_events_per_step else None

    @property
    def all_rows(self):
        if not hasattr(self, "_all_rows"):
            self._all_rows = self.torch.arange(len(self.prep.events), device=self.device)
        return self._all_rows

    def event_vectors(self, erows, drop=None):
        """(vectors [..., d], biases [...]): id (unless dropped) plus token sums."""
        ids = self.eid[erows]
        if drop is not None:
            ids = self.torch.where(drop, self.eid_pad, ids)
        both = self.modules["event_id"](ids) + (
            self._tok_cache[erows] if self._tok_cache is not None
            else self.event_token_sums(erows))
        return both[..., :-1], both[..., -1]

    # -- sampling
    def sample_negatives(self, t: np.ndarray, k: int) -> np.ndarray:
        n = len(self.alive_order)
        if self.config.negative_sampling == "uniform":
            return self.rng.integers(0, n, size=(len(t), k))
        if self.config.negative_sampling == "published":
            return self._sample_published(t, k)
        return self._sample_alive(t, k)

    def _sample_alive(self, t: np.ndarray, k: int) -> np.ndarray:
        """[len(t), k] events not started at t, uniformly (every event when none is)."""
        n = len(self.alive_order)
        lo = np.searchsorted(self.alive_start, t, side="right")
        lo = np.where(lo >= n, 0, lo)  # nothing alive: fall back to every event
        u = self.rng.random((len(t), k))
        pos = lo[:, None] + np.floor(u * (n - lo)[:, None]).astype(np.int64)
        return self.alive_order[np.minimum(pos, n - 1)]

    def _sample_published(self, t: np.ndarray, k: int) -> np.ndarray:
        """Negatives among the events alive at t that somebody had already touched by t.

        An event first interacted with after t (or never: the ones still untouched when
        training runs) was most likely not on the platform yet at t: nobody chose against it.
        On the demo data 64% of plain alive draws were such events, so most negatives were
        spent on events that competed with nothing, and the new events' content was pushed
        down for it. Time is cut into buckets; each keeps the events valid somewhere inside it (touched
        before its end, starting after its start), a draw from t's bucket is checked against t
        exactly and redrawn a few times; whatever is still invalid, or has an empty bucket,
        keeps a plain alive draw."""
        edges, members, offsets = self.published_buckets
        first, event_start = self.first_touched, self.prep.event_start
        b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(offsets) - 2)
        start, size = offsets[b], offsets[b + 1] - offsets[b]
        has = size > 0
        pos = start[:, None] + (self.rng.random((len(t), k)) * size[:, None]).astype(np.int64)
        out = members[np.where(has[:, None], pos, 0)] if len(members) else \
            np.zeros((len(t), k), dtype=np.int64)
        bad = ~has[:, None] | (first[out] > t[:, None]) | (event_start[out] <= t[:, None])
        rows, cols = np.nonzero(bad & has[:, None])
        for _ in range(PUBLISHED_ROUNDS - 1):
            if len(rows) == 0:
                break
            pick = members[start[rows] + (self.rng.random(len(rows)) * size[rows]).astype(
                np.int64)]
            ok = (first[pick] <= t[rows]) & (event_start[pick] > t[rows])
            out[rows[ok], cols[ok]] = pick[ok]
            bad[rows[ok], cols[ok]] = False
            rows, cols = rows[~ok], cols[~ok]
        if bad.any():  # an empty bucket or bad luck: a plain alive draw
            rows, cols = np.nonzero(bad)
            out[rows, cols] = self._sample_alive(t[rows], 1)[:, 0]
        return out

    @property
    def first_touched(self) -> np.ndarray:
        """Per event row: time of its first interaction in the training pairs (int64 max for
        an event never touched)."""
        if not hasattr(self, "_first_touched"):
            first = np.full(len(self.prep.events), np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first, self._pairs_erow, self._pairs_t)
            self._first_touched = first
        return self._first_touched

    @property
    def published_buckets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bucket edges [B + 1], members, offsets [B + 1]): the event rows of bucket i,
        members[offsets[i]:offsets[i + 1]], were touched before the bucket's end and start
        after its beginning. Edges are quantiles of the pairs' times."""
        if not hasattr(self, "_published_buckets"):
            times = self._pairs_t
            edges = np.unique(np.quantile(times, np.linspace(0, 1, PUBLISHED_BUCKETS + 1),
                                          method="nearest")) if len(times) else np.zeros(1)
            edges = np.append(edges[:-1], edges[-1] + 1) if len(edges) > 1 else \
                np.array([edges[0], edges[0] + 1])
            first, start = self.first_touched, self.prep.event_start
            members, offsets = [], [0]
            for lo, hi in zip(edges[:-1], edges[1:]):
                inside = np.flatnonzero((first < hi) & (start > lo))
                members.append(inside)
                offsets.append(offsets[-1] + len(inside))
            self._published_buckets = (edges, np.concatenate(members).astype(np.int64),
                                       np.asarray(offsets, dtype=np.int64))
        return self._published_buckets

    def sample_hard(self, erow: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
        """Negatives sharing the positive's category (alive at t when possible): they teach
        what separates events of one kind (city, time, organizer), not just kind from kind."""
        out = self.sample_negatives(t, k)
        groups = self.category_groups
        if groups is None:
            return out
        codes = self.category_code[erow]
        for code in np.unique(codes):
            if code < 0:
                continue
            members, starts = groups[code]
            where = np.flatnonzero(codes == code)
            n = len(members)
            lo = np.searchsorted(starts, t[where], side="right")
            lo = np.where(lo >= n, 0, lo)
            u = self.rng.random((len(where), k))
            pos = lo[:, None] + np.floor(u * (n - lo)[:, None]).astype(np.int64)
            out[where] = members[np.minimum(pos, n - 1)]
        return out

    @property
    def category_groups(self):
        if not hasattr(self, "_groups"):
            events = self.prep.events
            if "category" not in events or events["category"].isna().all():
                self._groups, self.category_code = None, None
                return None
            codes, _ = pd.factorize(events["category"].fillna("").astype(str))
            self.category_code = np.where(events["category"].isna().to_numpy(), -1, codes)
            groups = {}
            for code in np.unique(self.category_code[self.category_code >= 0]):
                members = np.flatnonzero(self.category_code == code)
                members = members[np.argsort(self.prep.event_start[members], kind="stable")]
                groups[code] = (members, self.prep.event_start[members])
            self._groups = groups
        return self._groups

    # -- one epoch
    def run_epoch(self, pairs: pd.DataFrame) -> float:
        torch, cfg = self.torch, self.config
        urow = pairs["urow"].to_numpy(dtype=np.int64)
        erow = pairs["erow"].to_numpy(dtype=np.int64)
        weight = pairs["weight"].to_numpy(dtype=np.float32)
        t = pairs["t"].to_numpy(dtype=np.int64)
        perm = self.rng.permutation(len(pairs))
        total, seen = 0.0, 0.0
        for start in range(0, len(perm), cfg.batch_size):
            check_cancel()  # a cancelled training stops here, between two batches
            b = perm[start:start + cfg.batch_size]
            loss, wsum = self._step(urow[b], erow[b], weight[b], t[b])
            total += loss * wsum
            seen += wsum
        return total / max(seen, 1e-12)

    def _step(self, urow, erow, weight, t) -> tuple[float, float]:
        torch, cfg, dev = self.torch, self.config, self.device
        k = cfg.negatives
        neg = self.sample_negatives(t, k)
        k_hard = int(round(k * cfg.hard_negatives))
        if k_hard:
            neg[:, :k_hard] = self.sample_hard(erow, t, k_hard)
        drop_p = cfg.id_dropout
        drops = self.rng.random((len(urow), 2 + k)) < drop_p if drop_p > 0 else None
        U = torch.from_numpy
        self.begin_step()
        urow_t, erow_t, neg_t = U(urow).to(dev), U(erow).to(dev), U(neg).to(dev)
        w = U(np.abs(weight)).to(dev)
        is_pos = U(weight > 0).to(dev)
        if drops is not None:
            d_t = U(drops).to(dev)
            uvec = self.user_vectors(urow_t, d_t[:, 0])
            pvec, pbias = self.event_vectors(erow_t, d_t[:, 1])
            nvec, nbias = self.event_vectors(neg_t, d_t[:, 2:])
        else:
            uvec = self.user_vectors(urow_t)
            pvec, pbias = self.event_vectors(erow_t)
            nvec, nbias = self.event_vectors(neg_t)
        s_pos = (uvec * pvec).sum(-1) + pbias
        s_neg = torch.einsum("bd,bkd->bk", uvec, nvec) + nbias
        if cfg.locality:
            w_place = self.modules["place"]["w"]
            feats = U(self.prep.place(urow[:, None], np.concatenate([erow[:, None], neg], 1)))
            place = feats.to(dev) @ w_place
            s_pos = s_pos + place[:, 0]
            s_neg = s_neg + place[:, 1:]
        s_neg = s_neg.masked_fill(neg_t == erow_t[:, None], -1e9)
        diff = s_pos[:, None] - s_neg
        if cfg.loss == "softmax":
            logits = torch.cat([s_pos[:, None], s_neg], dim=1)
            pos_loss = torch.logsumexp(logits, dim=1) - s_pos
        else:
            pos_loss = torch.nn.functional.softplus(-diff).mean(1)
        valid = (neg_t != erow_t[:, None]).float()
        neg_loss = (torch.nn.functional.softplus(diff) * valid).sum(1) / valid.sum(1).clamp(min=1)
        per_pair = torch.where(is_pos, pos_loss, neg_loss)
        wsum = w.sum()
        loss = (per_pair * w).sum() / wsum
        if cfg.l2 > 0:
            reg = (uvec.pow(2).sum() + pvec.pow(2).sum() + nvec.pow(2).sum() / k) / len(urow)
            loss = loss + cfg.l2 * reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), float(wsum)

    # -- evaluation and export
    def all_event_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        with torch.no_grad():
            self._tok_cache = self.all_event_token_sums()
            vec, bias = self.event_vectors(self.all_rows)
            self._tok_cache = None
        return vec.cpu().numpy(), bias.cpu().numpy()

    def users_vectors(self, urows: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            vec = self.user_vectors(torch.from_numpy(urows).to(self.device))
        return vec.cpu().numpy()

    def state(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.modules.state_dict().items()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.modules.load_state_dict(state)

    def export(self) -> dict[str, np.ndarray]:
        sd = {k.split(".")[0]: v.detach().cpu().numpy() for k, v in
              self.modules.state_dict().items()}
        out = {
            "user_id": sd["user_id"][:-1],
            "user_tok": sd["user_tok"][:-1],
            "event_id": sd["event_id"][:-1, :-1],
            "event_id_bias": sd["event_id"][:-1, -1],
            "event_tok": sd["event_tok"][:-1, :-1],
            "event_tok_bias": sd["event_tok"][:-1, -1],
            "place_w": sd["place"],
            "place_center": np.asarray(self.prep.place_center, dtype=np.float32),
        }
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


class _TokenBag:
    """Token sums of a fixed set of rows as a sparse [rows, vocabulary + 1] count matrix:
    `sum(table)` is rows x table (the same sums as an embedding lookup of the padded token rows
    summed over tokens, pads left out), its gradient the transposed product. Both are one
    sparse-dense product, independent of how many times a step samples each row."""

    def __init__(self, tokens: np.ndarray, pad: int, device: str):
        torch = self.torch = _torch()
        rows, cols = np.nonzero(tokens != pad)
        index = torch.from_numpy(np.stack([rows, tokens[rows, cols]]).astype(np.int64))
        values = torch.ones(len(rows), dtype=torch.float32)
        shape = (len(tokens), pad + 1)
        with warnings.catch_warnings():  # "sparse CSR support is in beta", invariant checks
            warnings.simplefilter("ignore", UserWarning)
            counts = torch.sparse_coo_tensor(index, values, shape,
                                             check_invariants=False).coalesce()
            self.matrix = counts.to_sparse_csr().to(device)
            self.transposed = counts.t().coalesce().to_sparse_csr().to(device)

    def sum(self, table):
        return _sparse_product()(table, self.matrix, self.transposed)


_SPARSE_PRODUCT = None


def _sparse_product():
    """An autograd function: matrix @ table forward, transposed @ grad backward (torch's own
    sparse backward would build the transposed matrix each step)."""
    global _SPARSE_PRODUCT
    if _SPARSE_PRODUCT is None:
        torch = _torch()

        class SparseProduct(torch.autograd.Function):
            @staticmethod
            def forward(ctx, table, matrix, transposed):
                ctx.transposed = transposed
                return matrix @ table

            @staticmethod
            def backward(ctx, grad):
                return ctx.transposed @ grad.contiguous(), None, None

        _SPARSE_PRODUCT = SparseProduct.apply
    return _SPARSE_PRODUCT


class _Validator:
    """NDCG@k of the validation positives among the events upcoming at the split time."""

    def __init__(self, prep: _Prepared, train_rows: pd.DataFrame, val_rows: pd.DataFrame,
                 split: int, k: int):
        self.k = k
        candidates = np.flatnonzero(prep.event_start > split)
        strong = val_rows[val_rows["weight"] >= STRONG_SHARE * prep.max_weight]
        if strong.empty:
            strong = val_rows[val_rows["weight"] > 0]
        strong = strong[np.isin(strong["erow"].to_numpy(), candidates)]
        users = np.unique(strong["urow"].to_numpy())
        if len(users) > VALIDATION_MAX_USERS:
            # A fixed sample: the metric only picks an epoch count, and dense users x upcoming
            # matrices over every validation user do not fit in memory at millions of rows.
            rng = np.random.default_rng(VALIDATION_SAMPLE_SEED)
            users = np.sort(rng.choice(users, VALIDATION_MAX_USERS, replace=False))
            strong = strong[np.isin(strong["urow"].to_numpy(), users)]
        self.users = users
        self.prep = prep
        self.candidates = candidates
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
            if 0 < cells <= VALIDATION_PLACE_CACHE_CELLS else None

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
        torch = _torch()
        vectors, bias = trainer.all_event_vectors()
        users = torch.from_numpy(trainer.users_vectors(self.users))
        event_vectors = torch.from_numpy(np.ascontiguousarray(vectors[self.candidates].T))
        event_bias = torch.from_numpy(bias[self.candidates])
        w = trainer.modules["place"]["w"].detach().cpu().numpy() \
            if trainer.config.locality else None
        total = 0.0
        for start in range(0, len(self.users), VALIDATION_BLOCK):
            rows = slice(start, start + VALIDATION_BLOCK)
            with torch.no_grad():
                scores = users[rows] @ event_vectors + event_bias
                if w is not None:
                    planes = self.place[:, rows] if self.place is not None else \
                        self._place_planes(rows)
                    for i in range(N_PLACE):
                        scores.add_(planes[i].float(), alpha=float(w[i]))
                excluded = self._excluded_in(start, start + len(scores))
                scores[torch.from_numpy(excluded[0]), torch.from_numpy(excluded[1])] = -np.inf
                total += _ndcg_top_k(scores, self.relevant[rows], self.k) * len(scores)
        return total / len(self.users)


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


# --------------------------------------------------------------------------- the model


class HybridModel:
    """A fitted (or loaded) hybrid model. Build one with `fit` or `from_bytes`."""

    def __init__(self, *, config: ModelConfig | None = None, user_map: IdMap | None = None,
                 event_map: IdMap | None = None, user_vocab: Vocabulary | None = None,
                 event_vocab: Vocabulary | None = None,
                 weights: Mapping[str, np.ndarray] | None = None,
                 counts: Mapping[str, int] | None = None,
                 loss_history: list[dict[str, Any]] | None = None,
                 device: str = "cpu", validation: Mapping[str, Any] | None = None,
                 contrast_cities: list[str | None] | None = None):
        self.config = config or ModelConfig()
        self.user_map = user_map or IdMap(np.empty(0, dtype=np.int64))
        self.event_map = event_map or IdMap(np.empty(0, dtype=np.int64))
        self.user_vocab = user_vocab or Vocabulary([])
        self.event_vocab = event_vocab or Vocabulary([])
        self.weights: dict[str, np.ndarray] = dict(weights or {})
        self.counts: dict[str, int] = dict(counts or {})
        self.loss_history: list[dict[str, Any]] = list(loss_history or [])
        self.device = device
        self.validation: dict[str, Any] = dict(validation or {})
        self.contrast_cities: list[str | None] = list(contrast_cities or [])
        self._event_tok_padded: np.ndarray | None = None
        self._contrast_place: Places | None = None

    # ---------------------------------------------------------------- fitting

    @classmethod
    def fit(cls, data: Any, config: ModelConfig | None = None,
            callback: Callable[[EpochReport], None] | None = None) -> "HybridModel":
        """Train on a TrainingData. Raises BeaconError when there is nothing to train on."""
        config = config or ModelConfig()
        torch = _torch()
        previous = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            return cls._fit(data, config, callback)
        finally:
            torch.set_num_threads(previous)

    @classmethod
    def _fit(cls, data: Any, config: ModelConfig,
             callback: Callable[[EpochReport], None] | None) -> "HybridModel":
        device = _resolve_device(config.device)
        prep = _prepare(data, config)
        split = _split_time(prep.rows, config.validation_fraction)
        history: list[dict[str, Any]] = []
        validation: dict[str, Any] = {}
        epochs = config.epochs
        trainer: _Trainer | None = None
        if split is not None and config.patience > 0:
            train_rows = prep.rows[prep.rows["t"] < split]
            val_rows = prep.rows[prep.rows["t"] >= split]
            train_pairs = _pairs(train_rows)
            validator = _Validator(prep, train_rows, val_rows, split, config.eval_k)
            if validator.usable and (train_pairs["weight"] > 0).any():
                trainer = _Trainer(prep, train_pairs, config, device)
                best_epoch, best = _train_with_validation(trainer, train_pairs, validator,
                                                          config, history, callback)
                validation = {"split_time": split, "best_epoch": best_epoch,
                              "best_ndcg": best, "users": int(len(validator.users)),
                              "candidates": int(len(validator.candidates))}
                epochs = max(best_epoch, 1)
        all_pairs = _pairs(prep.rows)
        if trainer is None or config.refit:
            trainer = _Trainer(prep, all_pairs, config, device)
            phase = "refit" if validation else "train"
            for epoch in range(1, epochs + 1):
                began = time.perf_counter()
                loss = trainer.run_epoch(all_pairs)
                _report(history, callback, EpochReport(epoch, epochs, loss, None,
                                                       time.perf_counter() - began, phase))
        return cls._from_trainer(trainer, prep, all_pairs, config, device, history, validation)

    @classmethod
    def _from_trainer(cls, trainer: _Trainer, prep: _Prepared, pairs: pd.DataFrame,
                      config: ModelConfig, device: str, history: list[dict[str, Any]],
                      validation: dict[str, Any]) -> "HybridModel":
        weights = trainer.export()
        vectors, bias = trainer.all_event_vectors()
        pool = trainer.known_events
        rng = np.random.default_rng(config.seed + 1)
        if len(pool) > CONTRAST_EVENTS:
            pool = np.sort(rng.choice(pool, CONTRAST_EVENTS, replace=False))
        weights["contrast_vectors"] = vectors[pool].astype(np.float32)
        weights["contrast_bias"] = bias[pool].astype(np.float32)
        place = prep.event_place
        weights["contrast_lat"] = place.lat[pool].astype(np.float64)
        weights["contrast_lon"] = place.lon[pool].astype(np.float64)
        names = {code: name for name, code in place.cities.items()}
        contrast_cities = [names.get(int(c)) for c in place.city[pool]]
        user_ids = prep.users["id"].to_numpy(dtype=np.int64)[trainer.known_users]
        event_ids = prep.events["id"].to_numpy(dtype=np.int64)[trainer.known_events]
        counts = {
            "users": int(len(user_ids)), "events": int(len(event_ids)),
            "interactions": int(len(prep.rows)), "pairs": int(len(pairs)),
            "user_tokens": len(prep.user_vocab), "event_tokens": len(prep.event_vocab),
            "tokens": len(prep.user_vocab) + len(prep.event_vocab),
        }
        return cls(config=config, user_map=IdMap(user_ids), event_map=IdMap(event_ids),
                   user_vocab=prep.user_vocab, event_vocab=prep.event_vocab, weights=weights,
                   counts=counts, loss_history=history, device=device, validation=validation,
                   contrast_cities=contrast_cities)

    # ---------------------------------------------------------------- serving

    @property
    def fitted(self) -> bool:
        return "event_tok" in self.weights

    def _require(self) -> None:
        if not self.fitted:
            raise ModelNotFitted("the model has not been fitted or loaded yet")

    @property
    def dim(self) -> int:
        self._require()
        return int(self.weights["event_tok"].shape[1])

    def knows_user(self, user_id: int | None) -> bool:
        return user_id is not None and self.user_map.row(user_id) >= 0

    def knows_event(self, event_id: int | None) -> bool:
        return event_id is not None and self.event_map.row(event_id) >= 0

    def user_vector(self, user: UserContext) -> tuple[np.ndarray, float]:
        """A known user: id + feature tokens; anyone else: feature tokens only."""
        self._require()
        vec = self.feature_user_vector(user)
        row = self.user_map.row(user.user_id) if user.user_id is not None else -1
        if row >= 0:
            vec = vec + self.weights["user_id"][row]
        return vec.astype(np.float32), 0.0

    def user_matrix(self, users: pd.DataFrame) -> np.ndarray:
        """Vectors for a frame of users (id, tags, latitude, longitude, city) at once: id
        embedding for users seen in training plus their feature tokens."""
        self._require()
        users = users.reset_index(drop=True)
        d = self.dim
        if len(users) == 0:
            return np.zeros((0, d), dtype=np.float32)
        pad = len(self.user_vocab)
        tok = user_token_rows(users, self.user_vocab, pad=pad)
        table = np.vstack([self.weights["user_tok"], np.zeros((1, d), np.float32)])
        vectors, _ = _bag_sum(tok, table, np.zeros(len(table), np.float32))
        rows = self.user_map.rows(users["id"].to_numpy(dtype=np.int64))
        known = rows >= 0
        if known.any():
            vectors[known] += self.weights["user_id"][rows[known]]
        return vectors.astype(np.float32)

    def feature_user_vector(self, user: UserContext) -> np.ndarray:
        """The user's vector from interest tags, city and home area alone."""
        self._require()
        idx = self.user_vocab.lookup(user_tokens(user))
        table = self.weights["user_tok"]
        if len(idx) == 0:
            return np.zeros(table.shape[1], dtype=np.float32)
        return table[idx].sum(axis=0).astype(np.float32)

    def _padded_event_tok(self) -> tuple[np.ndarray, np.ndarray]:
        if self._event_tok_padded is None:
            d = self.weights["event_tok"].shape[1]
            vec = np.vstack([self.weights["event_tok"], np.zeros((1, d), np.float32)])
            bias = np.append(self.weights["event_tok_bias"], np.float32(0))
            self._event_tok_padded = (vec, bias)
        return self._event_tok_padded

    def event_matrix(self, events: pd.DataFrame) -> EventMatrix:
        """Vectors for a frame of events (id, category, tags, organizer, city, latitude,
        longitude, price, start_time, timezone); events unseen in training use features only."""
        self._require()
        events = events.reset_index(drop=True)
        n = len(events)
        ids = events["id"].to_numpy(dtype=np.int64) if n else np.empty(0, dtype=np.int64)
        d = self.dim
        if n == 0:
            return EventMatrix(np.zeros((0, d), np.float32), np.zeros(0, np.float32), ids,
                               np.zeros(0, dtype=bool), Places.of(events))
        pad = len(self.event_vocab)
        tok = event_token_rows(events, self.event_vocab, pad=pad)
        tok_vec, tok_bias = self._padded_event_tok()
        vectors, bias = _bag_sum(tok, tok_vec, tok_bias)
        rows = self.event_map.rows(ids)
        known = rows >= 0
        if known.any():
            vectors[known] += self.weights["event_id"][rows[known]]
            bias[known] += self.weights["event_id_bias"][rows[known]]
        place = Places.of(events)
        # the same id array on both sides: the places align with the rows without a lookup
        return EventMatrix(vectors, bias, place.ids, known, place)

    def score(self, user: UserContext, events: EventMatrix,
              user_override: tuple[np.ndarray, float] | None = None,
              rows: np.ndarray | None = None) -> np.ndarray:
        """Scores of every event in the matrix (or of its rows `rows`) for this user: one
        matrix-vector product plus the place term."""
        vec, ubias = user_override if user_override is not None else self.user_vector(user)
        vectors, bias = (events.vectors, events.bias) if rows is None else \
            (events.vectors[rows], events.bias[rows])
        scores = vectors @ np.asarray(vec, dtype=np.float32) + bias + np.float32(ubias)
        place = self.place_scores(user, events, rows)
        return scores if place is None else scores + place

    # ---------------------------------------------------------------- the place term

    @property
    def place_weights(self) -> np.ndarray:
        """Weights of the centered place features (zeros: a model from before the term)."""
        w = self.weights.get("place_w")
        return np.zeros(len(PLACE_FEATURES), np.float32) if w is None else w

    @property
    def place_center(self) -> np.ndarray:
        c = self.weights.get("place_center")
        return np.zeros(len(PLACE_FEATURES), np.float32) if c is None else c

    @property
    def has_place_term(self) -> bool:
        return bool(np.any(self.place_weights != 0))

    def _event_places(self, events: EventMatrix) -> tuple[np.ndarray, np.ndarray,
                                                          Places] | None:
        place = events.place
        if place is None:
            return None
        xyz, city = place.take(place.rows_for(events.event_ids))
        return xyz, city, place

    def _place_arrays(self, events: EventMatrix, subset: np.ndarray | None):
        """(xyz, city, places) of the matrix's events, or of its rows `subset`; None when the
        model has no place term or the matrix carries no places."""
        if not self.has_place_term:
            return None
        found = self._event_places(events)
        if found is None:
            return None
        xyz, city, place = found
        if subset is not None:
            xyz, city = xyz[subset], city[subset]
        return xyz, city, place

    def place_scores(self, user: UserContext, events: EventMatrix,
                     rows: np.ndarray | None = None) -> np.ndarray | None:
        """The place term of this user against every event of the matrix (or its rows `rows`)
        ([n] float32), or None when the model has none (or the matrix carries no places)."""
        found = self._place_arrays(events, rows)
        if found is None:
            return None
        xyz, city, place = found
        uxyz = unit_xyz(_radians(user.latitude), _radians(user.longitude))
        return place_term(uxyz, place.city_code(user.city), xyz, city, self.place_center,
                          self.place_weights)

    def place_matrix(self, users: pd.DataFrame, events: EventMatrix,
                     cols: np.ndarray | None = None) -> np.ndarray | None:
        """[users, events] place term for a frame of users (latitude, longitude, city) against
        the matrix's events (or its columns `cols`); None when the model has no place term."""
        found = self._place_arrays(events, cols)
        if found is None:
            return None
        xyz, city, place = found
        users = users.reset_index(drop=True)
        upl = Places.of(users, place.cities)
        ucity = np.where(upl.city >= len(place.cities), -2, upl.city)  # names the events lack
        return place_term(upl.xyz[:, None, :], ucity[:, None], xyz[None, :, :], city[None, :],
                          self.place_center, self.place_weights)

    def score_users(self, users: pd.DataFrame, events: EventMatrix,
                    cols: np.ndarray | None = None) -> np.ndarray:
        """[users, events] scores for a frame of users (the id embedding where known, feature
        tokens, and the place term): what `score` gives one user at a time, in one pass."""
        vectors = self.user_matrix(users)
        ev, bias = (events.vectors, events.bias) if cols is None else \
            (events.vectors[cols], events.bias[cols])
        scores = vectors @ ev.T + bias[None, :]
        place = self.place_matrix(users, events, cols)
        return scores if place is None else scores + place

    def _place_term(self, user: UserContext, latitude: Any, longitude: Any,
                    city: Any) -> float | None:
        """The place term of one (user, event) pair; None when neither side's place is known
        well enough to compare (missing home or event place)."""
        ecity = 0 if _city_name(city) else -1
        ucity = -1
        if _city_name(user.city):
            ucity = 0 if _city_name(user.city) == _city_name(city) else -2
        uxyz = unit_xyz(_radians(user.latitude), _radians(user.longitude))
        exyz = unit_xyz(_radians(latitude), _radians(longitude))
        if np.isnan(place_features(uxyz, ucity, exyz, ecity)).all():
            return None
        return float(place_term(uxyz, ucity, exyz, ecity, self.place_center,
                                self.place_weights))

    def explain(self, user: UserContext, event_row: Mapping[str, Any], top: int = 3,
                user_override: tuple[np.ndarray, float] | None = None) -> list[tuple[str, float]]:
        """The event's terms that add most to its score (token . user + token bias), best first.
        Terms: feature tokens ("tag:jazz", "organizer:Blue Note", ...) and "event:<id>" for the
        event's own id embedding (what similar users did with it)."""
        self._require()
        vec, _ = user_override if user_override is not None else self.user_vector(user)
        terms: list[tuple[str, float]] = []
        tok_vec, tok_bias = self.weights["event_tok"], self.weights["event_tok_bias"]
        for token in event_tokens(event_row):
            i = self.event_vocab.index.get(token)
            if i is not None:
                terms.append((token, float(tok_vec[i] @ vec + tok_bias[i])))
        event_id = event_row.get("id")
        row = self.event_map.row(int(event_id)) if event_id is not None and not \
            pd.isna(event_id) else -1
        if row >= 0:
            label = event_row.get("event_id", event_id)
            terms.append((f"event:{label}", float(self.weights["event_id"][row] @ vec
                                                   + self.weights["event_id_bias"][row])))
        if self.has_place_term:
            place = self._place_term(user, event_row.get("latitude"), event_row.get("longitude"),
                                     event_row.get("city"))
            if place is not None:
                terms.append((PLACE_TOKEN, place))
        terms.sort(key=lambda item: -item[1])
        return terms[:top]

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

    # ---------------------------------------------------------------- serialization

    def to_bytes(self) -> bytes:
        """Weights, id maps, vocabularies and config in one npz blob (no pickle)."""
        self._require()
        meta = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "user_vocab": self.user_vocab.tokens,
            "event_vocab": self.event_vocab.tokens,
            "counts": self.counts,
            "loss_history": self.loss_history,
            "device": self.device,
            "validation": self.validation,
            "contrast_cities": self.contrast_cities,
        }
        arrays = {k: self.weights[k] for k in (*_WEIGHT_KEYS, *_OPTIONAL_KEYS)
                  if k in self.weights}
        arrays["user_ids"] = np.asarray(self.user_map.to_list(), dtype=np.int64)
        arrays["event_ids"] = np.asarray(self.event_map.to_list(), dtype=np.int64)
        arrays["meta"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "HybridModel":
        """Load a blob written by to_bytes. Never executes code from the blob; a damaged or
        foreign blob raises BeaconError."""
        if not blob:
            raise BeaconError("model blob is empty")
        try:
            with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except Exception as error:  # noqa: BLE001 - any parse failure is a corrupt blob
            raise BeaconError(f"model blob is corrupt or not a Beacon model: "
                              f"{type(error).__name__}: {error}") from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise BeaconError(f"model blob has an unknown format: "
                              f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
        missing = [k for k in (*_WEIGHT_KEYS, "user_ids", "event_ids") if k not in arrays]
        if missing:
            raise BeaconError(f"model blob is missing {', '.join(missing)}")
        model = cls(
            config=ModelConfig.from_dict(meta["config"]),
            user_map=IdMap(arrays.pop("user_ids")),
            event_map=IdMap(arrays.pop("event_ids")),
            user_vocab=Vocabulary(meta["user_vocab"]),
            event_vocab=Vocabulary(meta["event_vocab"]),
            weights=arrays, counts=meta.get("counts"), loss_history=meta.get("loss_history"),
            device=meta.get("device", "cpu"), validation=meta.get("validation"),
            contrast_cities=meta.get("contrast_cities"),
        )
        _check_shapes(model)
        return model


# --------------------------------------------------------------------------- helpers


def _report(history: list[dict[str, Any]], callback: Callable[[EpochReport], None] | None,
            report: EpochReport) -> None:
    history.append({"epoch": report.epoch, "loss": report.loss,
                    "val_metric": report.val_metric, "phase": report.phase,
                    "seconds": round(report.seconds, 4)})
    if callback is not None:
        callback(report)


def _smoothed(values: list[float], center: int, half: int) -> float:
    """Mean of the validation metric over epochs center-half..center+half (1-based, clipped to
    the epochs run so far)."""
    lo, hi = max(center - half, 1), min(center + half, len(values))
    return float(np.mean(values[lo - 1:hi]))


def _best_epoch(values: list[float], half: int, min_delta: float = 0.0,
                min_epochs: int = 1) -> int:
    """The epoch of the best smoothed metric among epochs >= min_epochs (all of them when
    fewer ran); a later epoch takes over only when it beats the best so far by more than
    min_delta (so a flat, noisy curve keeps the earlier epoch)."""
    first = min(max(min_epochs, 1), len(values))
    best, best_value = first, _smoothed(values, first, half)
    for center in range(first + 1, len(values) + 1):
        value = _smoothed(values, center, half)
        if value > best_value + max(min_delta, 1e-6):
            best, best_value = center, value
    return best


def _train_with_validation(trainer: _Trainer, pairs: pd.DataFrame, validator: _Validator,
                           config: ModelConfig, history: list[dict[str, Any]],
                           callback: Callable[[EpochReport], None] | None) -> tuple[int, float]:
    """Early stopping on a smoothed validation curve: the metric of epoch e is averaged with
    its neighbours (config.smoothing epochs wide), so one lucky or unlucky epoch on a small
    validation set neither stops training early nor picks the epoch count. Stops when the best
    smoothed epoch is `patience` epochs behind the newest one whose smoothing is complete, never
    before `min_epochs`."""
    half = max(config.smoothing, 1) // 2
    values: list[float] = []
    states: dict[int, Any] = {}
    for epoch in range(1, config.epochs + 1):
        began = time.perf_counter()
        loss = trainer.run_epoch(pairs)
        metric = validator.metric(trainer)
        values.append(metric)
        _report(history, callback, EpochReport(epoch, config.epochs, loss, metric,
                                               time.perf_counter() - began, "train"))
        best = _best_epoch(values, half, config.min_delta, config.min_epochs)
        if not config.refit:
            states[epoch] = trainer.state()
            for old in [e for e in states if e < best]:
                del states[old]
        if epoch >= config.min_epochs and epoch - half - best >= config.patience:
            break
    best = _best_epoch(values, half, config.min_delta, config.min_epochs)
    if not config.refit and best in states:
        trainer.load_state(states[best])
    return best, _smoothed(values, best, half)


def _bag_sum(tok: np.ndarray, table: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Sum of token vectors per row of a padded index matrix (the pad row of table is zero)."""
    n, width = tok.shape
    if n * width * table.shape[1] <= 4_000_000:
        return table[tok].sum(axis=1), bias[tok].sum(axis=1)
    torch = _torch()
    t = torch.from_numpy(tok)
    pad = table.shape[0] - 1
    with torch.inference_mode():
        vec = torch.nn.functional.embedding_bag(t, torch.from_numpy(table), mode="sum",
                                                padding_idx=pad)
        b = torch.nn.functional.embedding_bag(t, torch.from_numpy(bias[:, None].copy()),
                                              mode="sum", padding_idx=pad)
    return vec.numpy().copy(), b[:, 0].numpy().copy()


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


def _check_shapes(model: HybridModel) -> None:
    w = model.weights
    d = w["event_tok"].shape[1] if w["event_tok"].ndim == 2 else -1
    expected = {
        "user_id": (len(model.user_map), d), "user_tok": (len(model.user_vocab), d),
        "event_id": (len(model.event_map), d), "event_id_bias": (len(model.event_map),),
        "event_tok": (len(model.event_vocab), d), "event_tok_bias": (len(model.event_vocab),),
    }
    n_place = len(PLACE_FEATURES)
    for key, shape in (("place_w", (n_place,)), ("place_center", (n_place,))):
        if key in w:
            expected[key] = shape
    n_contrast = len(w["contrast_bias"])
    for key in ("contrast_lat", "contrast_lon"):
        if key in w:
            if tuple(w[key].shape) != (n_contrast,):
                raise BeaconError(f"model blob is inconsistent: {key} has shape "
                                  f"{tuple(w[key].shape)}, expected {(n_contrast,)}")
            w[key] = w[key].astype(np.float64)
    for key, shape in expected.items():
        if tuple(w[key].shape) != shape:
            raise BeaconError(f"model blob is inconsistent: {key} has shape "
                              f"{tuple(w[key].shape)}, expected {shape}")
        if w[key].dtype != np.float32:
            w[key] = w[key].astype(np.float32)


def _radians(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return float(np.radians(number)) if np.isfinite(number) else float("nan")


def _city_name(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return norm(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__}")
