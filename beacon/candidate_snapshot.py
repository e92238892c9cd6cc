"""The process cache behind recommend(): per database, a snapshot of the candidate events
(their local times precomputed), the event matrix per model version, recent registration counts
and the content strategy's index, reused while the catalogue is unchanged. beacon.recommend's
docstring says which keys are checked and how often."""

from __future__ import annotations

import os
import threading
import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np

from beacon.filters import CandidateArrays
from data_access import catalog, catalog_sync
from data_access.db import database_url

POPULARITY_DAYS = 7
#: how long a loaded candidate snapshot is trusted before its key is checked again
SNAPSHOT_TTL_S = float(os.environ.get("BEACON_CANDIDATE_TTL_S", "2"))
#: candidates reach back this far before now, so debug-filter can show what just started
LOOKBACK = timedelta(days=1)


@dataclass
class Snapshot:
    key: tuple  # events_snapshot_key(with_count=True) when loaded
    since: datetime  # the frame holds every event starting after this
    arrays: CandidateArrays
    checked_at: float  # monotonic time of the last cheap key check
    counted_at: float  # ... and of the last full one (with the count)
    stamp: int = 0  # the catalogue stamp it was built under
    matrices: "OrderedDict[int, Any]" = field(default_factory=OrderedDict)
    popularity: dict[str, tuple[float, np.ndarray]] = field(default_factory=dict)
    content: Any = None  # beacon.content.ContentIndex of these candidates, fit on first use


_lock = threading.Lock()
_snapshots: "OrderedDict[str, Snapshot]" = OrderedDict()
_MAX_SNAPSHOTS = 4  # databases per process (tests switch; a server has one)
_MAX_MATRICES = 3
POPULARITY_TTL_S = 60.0
#: how often the event count (an index scan, catches deletions) joins the cheap key check
COUNT_TTL_S = float(os.environ.get("BEACON_CANDIDATE_COUNT_TTL_S", "60"))


#: called after this process builds a candidate snapshot or an event matrix (the API freezes
#: the garbage collector's view of the long-lived objects then: beacon/api/app.py)
load_observers: list[Callable[[], None]] = []


def _loaded() -> None:
    for observer in load_observers:
        observer()


def clear_caches() -> None:
    """Forget every cached candidate snapshot and event matrix (tests, after bulk loads)."""
    with _lock:
        _snapshots.clear()


def _hour_bucket(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _covers(snapshot: Snapshot, now: datetime) -> bool:
    """The frame holds every event starting after now - LOOKBACK, and not much older."""
    return now - 2 * LOOKBACK <= snapshot.since <= now - LOOKBACK


def candidates(now: datetime, stamp: int | None = None) -> Snapshot:
    """The candidate snapshot for `now`: reused while the events are unchanged (a cheap key
    check at most every SNAPSHOT_TTL_S, the count every COUNT_TTL_S), the catalogue `stamp`
    (read now when not given) is the one it was built under and the time window still covers
    now; rebuilt otherwise."""
    url = database_url()
    clock = _time.monotonic()
    if stamp is None:
        stamp = catalog_sync.catalog_stamp()
    with _lock:
        snapshot = _snapshots.get(url)
    if snapshot is not None and _covers(snapshot, now) and snapshot.stamp == stamp:
        if clock - snapshot.checked_at < SNAPSHOT_TTL_S:
            return snapshot
        full = clock - snapshot.counted_at >= COUNT_TTL_S
        key = catalog.events_snapshot_key(with_count=full)
        if key == snapshot.key[: len(key)]:
            snapshot.checked_at = clock
            if full:
                snapshot.counted_at = clock
            return snapshot
    key = catalog.events_snapshot_key(with_count=True)
    since = _hour_bucket(now) - LOOKBACK
    frame = catalog.candidate_events(since)
    snapshot = Snapshot(key=key, since=since, arrays=CandidateArrays.from_frame(frame),
                         checked_at=clock, counted_at=clock, stamp=stamp)
    with _lock:
        _snapshots[url] = snapshot
        _snapshots.move_to_end(url)
        while len(_snapshots) > _MAX_SNAPSHOTS:
            _snapshots.popitem(last=False)
    _loaded()
    return snapshot


def event_matrix(snapshot: Snapshot, loaded) -> Any:
    version_id = int(loaded.version_id)
    with _lock:
        matrix = snapshot.matrices.get(version_id)
        if matrix is not None:
            snapshot.matrices.move_to_end(version_id)
            return matrix
    matrix = loaded.model.event_matrix(snapshot.arrays.frame)
    ids = getattr(matrix, "event_ids", None)
    if ids is not None and len(ids) == snapshot.arrays.n and snapshot.arrays.n:
        ids = [str(x) for x in ids]
        expected = [str(x) for x in snapshot.arrays.event_id]
        if ids != expected and ids != [str(x) for x in snapshot.arrays.pk]:
            raise RuntimeError("the model's event matrix is not in candidate order")
    with _lock:
        snapshot.matrices[version_id] = matrix
        while len(snapshot.matrices) > _MAX_MATRICES:
            snapshot.matrices.popitem(last=False)
    _loaded()
    return matrix


def popularity_counts(snapshot: Snapshot, now: datetime) -> np.ndarray:
    """Registrations in the last POPULARITY_DAYS per candidate (cached for a minute)."""
    day = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0).isoformat()
    with _lock:
        hit = snapshot.popularity.get(day)
        if hit is not None and _time.monotonic() - hit[0] < POPULARITY_TTL_S:
            return hit[1]
    counts = catalog.popularity_counts(now - timedelta(days=POPULARITY_DAYS), ("register",))
    arrays = snapshot.arrays
    values = np.zeros(arrays.n, dtype=np.float64)
    for pk, count in counts.items():
        pos = arrays.pos_by_pk.get(pk)
        if pos is not None:
            values[pos] = count
    with _lock:
        snapshot.popularity = {day: (_time.monotonic(), values)}
    return values



def content_index(snapshot: Snapshot):
    from beacon.content import ContentIndex, frame_terms

    index = snapshot.content
    if index is None:
        index = ContentIndex(frame_terms(snapshot.arrays.frame))
        with _lock:
            snapshot.content = index
    return index
