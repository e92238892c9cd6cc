"""IdMap: external ids (database ids, event codes) <-> contiguous tensor rows.

Integer ids are looked up vectorized (a sorted copy + searchsorted); other ids through a dict.
Rows follow the order ids were given in, so a map rebuilt from `to_list()` is identical.
"""
from __future__ import annotations

from typing import Any, Hashable, Iterable, Sequence

import numpy as np


class IdMap:
    __slots__ = ("_ids", "_sorted", "_order", "_dict")

    def __init__(self, ids: np.ndarray | Sequence[Hashable]):
        arr = np.asarray(ids) if not isinstance(ids, np.ndarray) else ids
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64, copy=False)
            order = np.argsort(arr, kind="stable")
            srt = arr[order]
            if len(srt) > 1 and np.any(srt[1:] == srt[:-1]):
                raise ValueError("IdMap: duplicate ids")
            self._ids, self._sorted, self._order, self._dict = arr, srt, order, None
        else:
            items = list(ids)
            lookup = {v: i for i, v in enumerate(items)}
            if len(lookup) != len(items):
                raise ValueError("IdMap: duplicate ids")
            self._ids = np.array(items, dtype=object)
            self._sorted = self._order = None
            self._dict = lookup

    @classmethod
    def from_ids(cls, ids: Iterable[Hashable] | np.ndarray) -> "IdMap":
        """Distinct ids in first-seen order."""
        if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
            _, first = np.unique(ids, return_index=True)
            return cls(ids[np.sort(first)])
        seen = dict.fromkeys(ids)
        return cls(list(seen))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external: Any) -> bool:
        return self.row(external) >= 0

    @property
    def is_integer(self) -> bool:
        return self._dict is None

    def row(self, external: Any) -> int:
        """Row of an id, or -1 when unknown."""
        if external is None:
            return -1
        if self._dict is not None:
            return self._dict.get(external, -1)
        try:
            key = np.int64(external)
        except (TypeError, ValueError, OverflowError):
            return -1
        if int(key) != external and not isinstance(external, (np.integer, int)):
            return -1
        pos = int(np.searchsorted(self._sorted, key))
        if pos < len(self._sorted) and self._sorted[pos] == key:
            return int(self._order[pos])
        return -1

    def rows(self, externals: Iterable[Any] | np.ndarray) -> np.ndarray:
        """Rows of many ids at once (int64), -1 for each unknown id."""
        if self._dict is not None:
            get = self._dict.get
            return np.fromiter((get(x, -1) for x in externals), dtype=np.int64)
        keys = np.asarray(externals)
        if keys.size == 0:
            return np.empty(0, dtype=np.int64)
        if keys.dtype.kind not in "iu":
            if keys.dtype.kind == "f":
                ok = np.isfinite(keys) & (keys == np.round(keys))
                out = np.full(keys.shape, -1, dtype=np.int64)
                if ok.any():
                    out[ok] = self.rows(keys[ok].astype(np.int64))
                return out
            return np.array([self.row(x) for x in keys.tolist()], dtype=np.int64)
        keys = keys.astype(np.int64, copy=False)
        if len(self._sorted) == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted, keys)
        pos_clipped = np.minimum(pos, len(self._sorted) - 1)
        hit = self._sorted[pos_clipped] == keys
        return np.where(hit, self._order[pos_clipped], -1).astype(np.int64)

    def id(self, row: int) -> Any:
        if row < 0 or row >= len(self._ids):
            raise IndexError(f"IdMap: row {row} out of range (0..{len(self._ids) - 1})")
        value = self._ids[row]
        return int(value) if self._dict is None else value

    def ids(self, rows: np.ndarray | None = None) -> np.ndarray:
        return self._ids if rows is None else self._ids[np.asarray(rows, dtype=np.int64)]

    def to_list(self) -> list[Any]:
        return self._ids.tolist()

    @classmethod
    def from_list(cls, items: Sequence[Any] | np.ndarray) -> "IdMap":
        return cls(items if isinstance(items, np.ndarray) else list(items))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids)"
