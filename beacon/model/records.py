"""The model's plain records: an epoch's report and a frame of events as vectors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from beacon.features import Places


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
    #: TF-IDF rows (csr) of the events for the content component; None without one
    content: Any = None
    #: the trend component's value of each event (log1p of its decayed count); None without one
    trend: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.event_ids)
