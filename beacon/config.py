"""ModelConfig: every hyperparameter of the hybrid model in one frozen, serializable object.

Defaults were tuned on a validation split carved from the training period of the demo data
(never on the evaluation holdout) and train in a few seconds on 2 CPU cores at demo size.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from beacon.errors import BeaconError

INTERACTION_TYPES: tuple[str, ...] = (
    "impression", "click", "view", "favorite", "share",
    "register", "unregister", "attend", "reject",
)

# register/attend > favorite/share > click/view; impressions ignored; reject/unregister count against.
DEFAULT_TYPE_WEIGHTS: dict[str, float] = {
    "register": 1.0,
    "attend": 1.0,
    "favorite": 0.5,
    "share": 0.5,
    "click": 0.2,
    "view": 0.1,
    "impression": 0.0,
    "unregister": -0.5,
    "reject": -1.0,
}

LOSSES = ("softmax", "bpr")
DEVICES = ("auto", "cpu", "cuda")
NEGATIVE_SAMPLING = ("published", "alive", "uniform", "touched")
VALIDATION_SPLITS = ("time", "user")


@dataclass(frozen=True)
class ModelConfig:
    dim: int = 32
    epochs: int = 30
    learning_rate: float = 0.005
    # A warm start: the first steps run at `warm_learning_rate`, which decays towards
    # `learning_rate` with a half-life of `warm_half_life` optimizer steps (0: off). Convergence
    # is bound by steps, not epochs, so this spares most epochs where an epoch is dear.
    warm_learning_rate: float = 0.0
    warm_half_life: int = 0
    # Where early stopping has not ended a fit by the epoch cap (the validation metric still
    # rising), train once more at learning_rate times this factor and keep whichever of the
    # two validates better (beacon/model/attempts.py). 1: off.
    capped_retry_factor: float = 4.0
    batch_size: int = 1024
    negatives: int = 32
    l2: float = 1e-5
    patience: int = 3
    # Early stopping: the validation metric is averaged over `smoothing` neighbouring epochs
    # (1: raw), and training runs at least `min_epochs` epochs before it may stop.
    smoothing: int = 1
    min_epochs: int = 1
    # A later epoch replaces the best one only when its validation metric is higher by more
    # than this (a noisy, flat curve keeps the earlier, cheaper epoch count).
    min_delta: float = 0.0
    validation_fraction: float = 0.1
    # How early stopping holds out its validation: "time" (the last validation_fraction of
    # every positive interaction, after one global split time) or "user" (each user's last
    # validation_fraction, ranked among the events not started at that user's own split).
    validation_split: str = "user"
    seed: int = 42
    type_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_WEIGHTS))
    max_age_hours: float = 24.0
    loss: str = "softmax"
    device: str = "auto"
    # Drop the id embedding of a training pair with this probability, so that the feature
    # tokens carry the signal that cold events and new users depend on.
    id_dropout: float = 0.3
    # "alive": negatives drawn among events that had not started when the interaction happened;
    # "published": among those, only events somebody had already touched by then (the first
    # interaction stands in for publication, which the events table does not record), so the
    # events nobody has touched yet (the cold ones) are never taught to be negatives;
    # "touched": "alive" among the events somebody touched at any time in the training data;
    # "uniform": any event.
    negative_sampling: str = "published"
    # Share of the negatives drawn from the positive's own category (hard negatives).
    hard_negatives: float = 0.0
    # After early stopping picked the epoch count, train again on all data (validation included).
    refit: bool = True
    eval_k: int = 10
    # CPU threads torch may use while fitting (0: leave torch's setting). The ops are small, so
    # one thread wastes least on a shared machine; more help only on big catalogs.
    threads: int = 1
    # A learned pairwise place term in the score: same city, log1p(km) and exp(-km/10) between
    # the user's home and the event (neutral when either side's place is unknown).
    locality: bool = True
    fold_in_steps: int = 40
    fold_in_learning_rate: float = 0.05
    fold_in_l2: float = 0.1
    coattendance_events: int = 3000
    # The co-attendance component may weigh a user's history by recency (newest first; the
    # half-life, as a share of the history, chosen on validation; off: every event the same).
    coattendance_recency: bool = True
    # The content component for events without training history (beacon/model/content_part.py):
    # its weight is chosen on a cold validation split, and it is stored only where it wins.
    content_blend: bool = True
    # With the content component: its terms' recent popularity tried beside the profile on
    # cold events (the weight chosen with the component's; off: the profile alone).
    content_popularity: bool = True
    # The trend component (beacon/model/trend.py): what was registered for lately, blended in
    # with a half-life and weights chosen on a time split; stored only where it wins.
    trend_blend: bool = True

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["type_weights"] = dict(self.type_weights)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "ModelConfig":
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BeaconError(f"unknown model setting(s): {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        if "type_weights" in data and data["type_weights"] is not None:
            merged = dict(DEFAULT_TYPE_WEIGHTS)
            tw = data["type_weights"]
            if not isinstance(tw, Mapping):
                raise BeaconError(f"type_weights must be a mapping of type -> weight, got {tw!r}")
            merged.update(tw)
            data["type_weights"] = merged
        try:
            return cls(**data)
        except TypeError as error:
            raise BeaconError(f"bad model settings: {error}") from error

    def with_overrides(self, **overrides: Any) -> "ModelConfig":
        merged = self.to_dict()
        merged.update(overrides)
        return ModelConfig.from_dict(merged)

    def weight(self, interaction_type: str) -> float:
        return float(self.type_weights.get(interaction_type, 0.0))


def _check(condition: bool, name: str, value: Any, expected: str) -> None:
    if not condition:
        raise BeaconError(f"bad value for model setting {name}: {value!r} (expected {expected})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: every numeric setting's documented range (docs/configuration.md): (low, high, integer?).
#: Bounded above too, so that neither the console's form nor the CLI can start a run that
#: never ends or exhausts memory.
RANGES: dict[str, tuple[float, float, bool]] = {
    "dim": (1, 512, True),
    "epochs": (1, 1000, True),
    "learning_rate": (1e-6, 1.0, False),
    "warm_learning_rate": (0, 1.0, False),
    "warm_half_life": (0, 1_000_000, True),
    "capped_retry_factor": (1.0, 100.0, False),
    "batch_size": (1, 65_536, True),
    "negatives": (1, 1024, True),
    "l2": (0, 1.0, False),
    "patience": (0, 1000, True),
    "smoothing": (1, 50, True),
    "min_epochs": (1, 1000, True),
    "min_delta": (0, 1.0, False),
    "seed": (0, 2**32 - 1, True),
    "max_age_hours": (0, 8760, False),
    "eval_k": (1, 1000, True),
    "threads": (0, 256, True),
    "fold_in_steps": (0, 10_000, True),
    "fold_in_learning_rate": (1e-6, 1.0, False),
    "fold_in_l2": (0, 100.0, False),
    # a dense float32 events x events inverse: 10,000 is 400 MB and a minute on 2 cores
    "coattendance_events": (0, 10_000, True),
}
TYPE_WEIGHT_RANGE = (-10.0, 10.0)


def _validate(c: ModelConfig) -> None:
    for name, (low, high, integer) in RANGES.items():
        value = getattr(c, name)
        kind = "an integer" if integer else "a number"
        _check((_is_int(value) if integer else _is_num(value)) and low <= value <= high,
               name, value, f"{kind} from {low:g} to {high:g}")
    _check(c.min_epochs <= c.epochs, "min_epochs", c.min_epochs,
           f"at most epochs ({c.epochs})")
    _check(_is_num(c.validation_fraction) and 0 <= c.validation_fraction < 0.9,
           "validation_fraction", c.validation_fraction, "a number in [0, 0.9)")
    _check(_is_num(c.id_dropout) and 0 <= c.id_dropout < 1, "id_dropout", c.id_dropout,
           "a number in [0, 1)")
    _check(_is_num(c.hard_negatives) and 0 <= c.hard_negatives <= 1, "hard_negatives",
           c.hard_negatives, "a number in [0, 1]")
    _check(c.loss in LOSSES, "loss", c.loss, " or ".join(LOSSES))
    _check(c.validation_split in VALIDATION_SPLITS, "validation_split", c.validation_split,
           " or ".join(VALIDATION_SPLITS))
    _check(c.device in DEVICES, "device", c.device, " or ".join(DEVICES))
    _check(c.negative_sampling in NEGATIVE_SAMPLING, "negative_sampling", c.negative_sampling,
           " or ".join(NEGATIVE_SAMPLING))
    _check(isinstance(c.refit, bool), "refit", c.refit, "true or false")
    _check(isinstance(c.locality, bool), "locality", c.locality, "true or false")
    _check(isinstance(c.content_blend, bool), "content_blend", c.content_blend, "true or false")
    _check(isinstance(c.trend_blend, bool), "trend_blend", c.trend_blend, "true or false")
    _check(isinstance(c.content_popularity, bool), "content_popularity", c.content_popularity,
           "true or false")
    _check(isinstance(c.coattendance_recency, bool), "coattendance_recency",
           c.coattendance_recency, "true or false")
    _check(isinstance(c.type_weights, Mapping), "type_weights", c.type_weights, "a mapping")
    for key, value in c.type_weights.items():
        _check(key in INTERACTION_TYPES, "type_weights", key,
               f"an interaction type ({', '.join(INTERACTION_TYPES)})")
        low, high = TYPE_WEIGHT_RANGE
        _check(_is_num(value) and low <= value <= high, f"type_weights[{key}]", value,
               f"a number from {low:g} to {high:g}")
    _check(any(v > 0 for v in c.type_weights.values()), "type_weights", dict(c.type_weights),
           "at least one positive weight")
