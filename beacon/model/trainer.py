"""One training run: the torch parameters, index tensors and the loss step."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from beacon.cancel import check as check_cancel
from beacon.config import ModelConfig
from beacon.model.data import N_PLACE, _Prepared
from beacon.model.network import _TokenBag, _torch
from beacon.model.sampling import NegativeSampling

ALL_EVENTS_FACTOR = 8  # sum every event's tokens per step unless the catalog is this much bigger


class _Trainer(NegativeSampling):
    """Holds the torch parameters and index tensors of one training run."""

    def __init__(self, prep: _Prepared, pairs: pd.DataFrame, config: ModelConfig, device: str):
        torch = self.torch = _torch()
        nn = torch.nn
        self.prep, self.config, self.device = prep, config, device
        self.steps = 0  # optimizer steps so far: the warm learning rate decays with them
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
        n_ut, n_et = len(prep.user_vocab), len(prep.event_vocab)
        # A token no user (event) of the training pairs carries never gets a gradient from a
        # positive: it counts as absent (the pad), and is exported as zeros, so that a word only
        # new events have adds neither random noise nor (as a sampled negative) a penalty.
        user_tok, self.user_tok_used = _only_trained(prep.user_tok, known_users, n_ut)
        event_tok, self.event_tok_used = _only_trained(prep.event_tok, known_events, n_et)
        self.utok = torch.from_numpy(user_tok).to(device)
        self.etok = torch.from_numpy(event_tok).to(device)
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
            [p for p in self.modules.parameters() if p.requires_grad], lr=self.learning_rate(),
            fused=True)
        order = np.argsort(prep.event_start, kind="stable")
        self.alive_order = order
        self.alive_start = prep.event_start[order]
        # Sum every event's tokens once per step (one sparse product, its gradient another),
        # then gather rows from that: far cheaper than a [batch, 1 + negatives, tokens, dim]
        # lookup unless the catalog dwarfs the events a step samples.
        self.all_events_per_step = len(prep.events) <= \
            ALL_EVENTS_FACTOR * config.batch_size * (config.negatives + 1)
        self.event_bag = _TokenBag(event_tok, n_et, device) \
            if self.all_events_per_step else None
        self._tok_cache = None
        self.event_table_per_step = self.all_events_per_step and \
            len(prep.events) <= config.batch_size * (config.negatives + 1)

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
        # embedding() and split(): their backward passes add rows and concatenate, where an
        # indexed gather and two slices zero-filled and scattered [batch, negatives, d + 1]
        # tensors (a third of a MovieLens epoch)
        both = self.modules["event_id"](ids) + (
            self.torch.nn.functional.embedding(erows, self._tok_cache)
            if self._tok_cache is not None else self.event_token_sums(erows))
        vectors, bias = both.split([both.shape[-1] - 1, 1], dim=-1)
        return vectors, bias.squeeze(-1)

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
        d_t = U(drops).to(dev) if drops is not None else None
        uvec = self.user_vectors(urow_t, None if d_t is None else d_t[:, 0])
        scores = self._scores_from_table if self.event_table_per_step else self._scores
        s_pos, s_neg, event_norms = scores(uvec, erow_t, neg_t, d_t)
        if cfg.locality and self.prep.has_place:
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
            positives, negatives = event_norms()
            reg = (uvec.pow(2).sum() + positives + negatives / k) / len(urow)
            loss = loss + cfg.l2 * reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach()), float(wsum)

    def _scores(self, uvec, erow_t, neg_t, d_t):
        """(positive scores [batch], negative scores [batch, negatives], a function of the
        summed squared vectors of both) through a lookup of each sampled event's vector."""
        pvec, pbias = self.event_vectors(erow_t, None if d_t is None else d_t[:, 1])
        nvec, nbias = self.event_vectors(neg_t, None if d_t is None else d_t[:, 2:])
        s_pos = (uvec * pvec).sum(-1) + pbias
        s_neg = self.torch.einsum("bd,bkd->bk", uvec, nvec) + nbias
        return s_pos, s_neg, lambda: (pvec.pow(2).sum(), nvec.pow(2).sum())

    def _scores_from_table(self, uvec, erow_t, neg_t, d_t):
        """The same as `_scores` from one [2 x events, d + 1] table per step: every event's
        vector and bias with its id, then without it (an id dropped). On a catalog no bigger
        than a step's samples one lookup into it, and one scattered backward pass, replace
        two of each (they were a quarter of a MovieLens epoch)."""
        torch = self.torch
        tok = self._tok_cache
        n, d = len(tok), uvec.shape[1]
        table = torch.cat([self.modules["event_id"](self.eid) + tok, tok])
        prow, nrow = erow_t, neg_t
        if d_t is not None:
            prow = prow + n * d_t[:, 1].long()
            nrow = nrow + n * d_t[:, 2:].long()
        u1 = torch.cat([uvec, torch.ones((len(uvec), 1), dtype=uvec.dtype,
                                         device=uvec.device)], 1)
        s_pos = (u1 * torch.nn.functional.embedding(prow, table)).sum(-1)
        s_neg = torch.bmm(torch.nn.functional.embedding(nrow, table),
                          u1[:, :, None]).squeeze(-1)

        def norms():
            squared = table[:, :d].pow(2).sum(1)
            return squared[prow].sum(), squared[nrow].sum()
        return s_pos, s_neg, norms

    def learning_rate(self) -> float:
        """The step size of the next step: `warm_learning_rate` decaying towards
        `learning_rate` with a half-life of `warm_half_life` steps (a function of the step
        count alone, so that the refit repeats the schedule that early stopping judged)."""
        cfg = self.config
        if cfg.warm_learning_rate <= cfg.learning_rate or cfg.warm_half_life <= 0:
            return cfg.learning_rate
        decay = 0.5 ** (self.steps / cfg.warm_half_life)
        return cfg.learning_rate + (cfg.warm_learning_rate - cfg.learning_rate) * decay

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
        for key, used in (("user_tok", self.user_tok_used), ("event_tok", self.event_tok_used)):
            sd[key] = sd[key].copy()
            sd[key][:-1][~used] = 0.0
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


def _only_trained(tokens: np.ndarray, known_rows: np.ndarray,
                  pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(token rows with every token that no known row carries replaced by the pad, which
    tokens [vocabulary] some known row carries)."""
    used = np.zeros(pad + 1, dtype=bool)
    used[np.unique(tokens[known_rows])] = True
    used[pad] = False
    return np.where(used[tokens], tokens, pad), used[:pad]
