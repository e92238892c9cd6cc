"""Did early stopping end a fit, or did the epoch cap end it while the validation metric was
still improving? The second means an under-trained model, and an operator should hear it.

Read from what every version keeps (its loss history and hyperparameters), so it answers for
versions trained before it existed too. On the scale data (tens of thousands of events, a
week of history) the defaults hit the cap with the curve still rising, where a higher
learning rate reached 2.7 times the validation NDCG in the same epochs (docs/training.md).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from beacon.model.early_stopping import _best_epoch


@dataclass(frozen=True)
class Convergence:
    """How early stopping ended: `validation_epochs` run of a cap of `epochs`, the `best_epoch`
    it chose, and whether the cap cut it off while the metric was still improving."""

    validation_epochs: int
    epochs: int
    best_epoch: int
    still_improving: bool
    note: str  # "" when early stopping ended the fit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_convergence(loss_history: Sequence[Any],
                    hyperparameters: Mapping[str, Any]) -> Convergence | None:
    """The early-stopping phase of `loss_history` (entries of phase "train" with a validation
    metric) judged with the fit's own `hyperparameters` (epochs, patience, smoothing, min_delta,
    min_epochs, eval_k); None when the fit had no validation curve (early stopping off, a
    per-user fold-in, a history without validation figures)."""
    values = [float(entry["val_metric"]) for entry in loss_history
              if isinstance(entry, Mapping) and entry.get("phase", "train") == "train"
              and isinstance(entry.get("val_metric"), (int, float))]
    epochs = _int(hyperparameters.get("epochs"))
    if not values or epochs is None:
        return None
    half = max(_int(hyperparameters.get("smoothing")) or 1, 1) // 2
    patience = _int(hyperparameters.get("patience")) or 0
    best = _best_epoch(values, half, float(hyperparameters.get("min_delta") or 0.0),
                       _int(hyperparameters.get("min_epochs")) or 1)
    ran = len(values)
    still_improving = ran >= epochs and ran - half - best < patience
    note = ""
    if still_improving:
        k = _int(hyperparameters.get("eval_k")) or 10
        note = (f"training reached its cap of {epochs} epochs before early stopping ended it "
                f"(validation NDCG@{k} best at epoch {best}): the model is likely "
                "under-trained. Raise epochs, or learning_rate on a large, sparse catalog")
    return Convergence(validation_epochs=ran, epochs=epochs, best_epoch=best,
                       still_improving=still_improving, note=note)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None
