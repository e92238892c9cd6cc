"""Negative samplers of the trainer: alive (not started at the interaction's time), published
(alive and already touched by somebody), uniform, and hard (same category)."""
from __future__ import annotations

import numpy as np
import pandas as pd

PUBLISHED_BUCKETS = 64  # time buckets of the "published" negative sampler
PUBLISHED_ROUNDS = 4  # draws per negative in its bucket before the plain alive fallback


class NegativeSampling:
    """Mixed into the trainer: needs self.config, self.rng, self.prep, self.alive_order,
    self.alive_start and the training pairs' event rows and times (self._pairs_erow/_t)."""

    def sample_negatives(self, t: np.ndarray, k: int) -> np.ndarray:
        n = len(self.alive_order)
        if self.config.negative_sampling == "uniform":
            return self.rng.integers(0, n, size=(len(t), k))
        if self.config.negative_sampling == "published":
            return self._sample_published(t, k)
        if self.config.negative_sampling == "touched":
            return self._sample_touched(t, k)
        return self._sample_alive(t, k)

    def _sample_touched(self, t: np.ndarray, k: int) -> np.ndarray:
        """[len(t), k] events not started at t among those somebody touched in the training
        data (at any time): like "alive" for the catalog people chose from, but an event
        nobody has touched yet (a new one) is never taught to be a negative, nor are the words
        only new events carry."""
        order, starts = self.touched_order
        n = len(order)
        if n == 0:
            return self._sample_alive(t, k)
        lo = np.searchsorted(starts, t, side="right")
        lo = np.where(lo >= n, 0, lo)
        u = self.rng.random((len(t), k))
        pos = lo[:, None] + np.floor(u * (n - lo)[:, None]).astype(np.int64)
        return order[np.minimum(pos, n - 1)]

    @property
    def touched_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(event rows with a training pair, sorted by start; their starts)."""
        if not hasattr(self, "_touched_order"):
            touched = np.unique(self._pairs_erow)
            order = touched[np.argsort(self.prep.event_start[touched], kind="stable")]
            self._touched_order = (order, self.prep.event_start[order])
        return self._touched_order

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
