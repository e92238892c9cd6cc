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

from beacon.model.early_stopping import _best_epoch, cut_off_by_cap, smoothing_half


@dataclass(frozen=True)
class Convergence:
    """How early stopping ended: `validation_epochs` run of a cap of `epochs`, the `best_epoch`
    it chose, and whether the cap cut it off while the metric was still improving."""

    validation_epochs: int
    epochs: int
    best_epoch: int
    still_improving: bool
    note: str  # "" when early stopping ended the fit
    #: "" without a second attempt; else what the capped first run and the retry at a higher
    #: learning rate reached, and which one the version kept
    retry_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_convergence(loss_history: Sequence[Any],
                    hyperparameters: Mapping[str, Any]) -> Convergence | None:
    """The early-stopping phase of `loss_history` (entries of phase "train" with a validation
    metric) judged with the fit's own `hyperparameters` (epochs, patience, smoothing, min_delta,
    min_epochs, eval_k); None when the fit had no validation curve (early stopping off, a
    per-user fold-in, a history without validation figures)."""
    values = _curve(loss_history, "train")
    epochs = _int(hyperparameters.get("epochs"))
    if not values or epochs is None:
        return None
    half = _half(hyperparameters)
    patience = _int(hyperparameters.get("patience")) or 0
    best = _best(values, hyperparameters)
    ran = len(values)
    still_improving = cut_off_by_cap(ran, best, half, patience, epochs)
    note = ""
    if still_improving:
        k = _int(hyperparameters.get("eval_k")) or 10
        note = (f"training reached its cap of {epochs} epochs before early stopping ended it "
                f"(validation NDCG@{k} best at epoch {best}): the model is likely "
                "under-trained. Raise epochs, or learning_rate on a large, sparse catalog")
    return Convergence(validation_epochs=ran, epochs=epochs, best_epoch=best,
                       still_improving=still_improving, note=note,
                       retry_note=_retry_note(loss_history, hyperparameters, epochs))


def _curve(loss_history: Sequence[Any], phase: str) -> list[float]:
    """The validation metric of every entry of `phase` (a fit without phases: "train")."""
    return [float(entry["val_metric"]) for entry in loss_history
            if isinstance(entry, Mapping) and entry.get("phase", "train") == phase
            and isinstance(entry.get("val_metric"), (int, float))]


def _half(hyperparameters: Mapping[str, Any]) -> int:
    return smoothing_half(_int(hyperparameters.get("smoothing")) or 1)


def _best(values: list[float], hyperparameters: Mapping[str, Any]) -> int:
    return _best_epoch(values, _half(hyperparameters), float(hyperparameters.get("min_delta") or 0.0),
                       _int(hyperparameters.get("min_epochs")) or 1)


def _retry_note(loss_history: Sequence[Any], hyperparameters: Mapping[str, Any],
                epochs: int) -> str:
    """Where the fit ran a second attempt at a higher learning rate (its discarded curve is
    kept in the history, each entry with its rate): what each reached, and which was kept."""
    discarded = _curve(loss_history, "discarded")
    kept = _curve(loss_history, "train")
    if not discarded or not kept:
        return ""
    (d_at, d_rate), (k_at, k_rate) = _first(loss_history, "discarded"), _first(loss_history,
                                                                               "train")
    d_best, k_best = _best(discarded, hyperparameters), _best(kept, hyperparameters)
    k = _int(hyperparameters.get("eval_k")) or 10
    if d_at < k_at:  # the first attempt's curve comes first in a history: it was discarded
        return (f"the first run, at learning rate {d_rate}, reached the cap of {epochs} epochs "
                f"still improving (validation NDCG@{k} {discarded[d_best - 1]:.4f} at epoch "
                f"{d_best}); a second run at {k_rate} reached {kept[k_best - 1]:.4f} at epoch "
                f"{k_best} and is the one kept")
    return (f"the run at learning rate {k_rate} reached the cap of {epochs} epochs still "
            f"improving (validation NDCG@{k} {kept[k_best - 1]:.4f} at epoch {k_best}); a "
            f"second run at {d_rate} reached only {discarded[d_best - 1]:.4f}, so the first is "
            "kept")


def _first(loss_history: Sequence[Any], phase: str) -> tuple[int, str]:
    """(position, learning rate as text, "?" when not recorded) of `phase`'s first entry."""
    at, entry = next((i, e) for i, e in enumerate(loss_history)
                     if isinstance(e, Mapping) and e.get("phase") == phase)
    rate = entry.get("learning_rate")
    return at, f"{rate:g}" if isinstance(rate, (int, float)) else "?"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None
