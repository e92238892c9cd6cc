"""What a training records about the model it stores: the fit (epochs, best epoch, how it
ended, the loss curve), what each component chose on validation, the offline evaluation and
its comparison with the active version. Plain JSON-safe values, as the version's metadata and
`train --json` carry them."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from beacon.convergence import fit_convergence
from data_access import models_store as store

log = logging.getLogger(__name__)


def loss_value(entry) -> float | None:
    """A loss-history entry is a number or a dict with "loss" (the model's per-epoch record)."""
    value = entry.get("loss") if isinstance(entry, dict) else entry
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def plain(value):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None (Postgres JSON rejects NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return plain(value.item())
        except (ValueError, AttributeError):
            pass
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def stored_fit(model, losses: list, seconds: float, components: dict[str, Any],
                hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The stored model's fit: epochs of the weights it keeps (the refit on all data when there
    was one), the best epoch early stopping chose, whether early stopping or the epoch cap
    ended it (`convergence.fit_convergence`; None without early stopping), its components
    (`components_report`, as stored with the version) and its loss curve, every phase in
    order."""
    curve = [entry for entry in losses if isinstance(entry, dict)]
    refit = [entry for entry in curve if entry.get("phase") == "refit"]
    # a retry's discarded run trained nothing that was stored
    kept = [entry for entry in curve if entry.get("phase", "train") == "train"]
    validation = dict(getattr(model, "validation", {}) or {})
    converged = fit_convergence(curve, hyperparameters)
    return plain({
        "epochs": len(refit) if refit else len(kept),
        "validation_epochs": len(kept),
        "best_epoch": validation.get("best_epoch"),
        "best_validation_ndcg": validation.get("best_ndcg"),
        "convergence": converged.to_dict() if converged is not None else None,
        # where the cap ended the first run: both runs (rate, epochs, best) and the one kept
        "learning_rate_retry": validation.get("learning_rate_retry"),
        **components,
        "seconds": round(seconds, 3),
        "loss_curve": [{"epoch": e.get("epoch"), "phase": e.get("phase", "train"),
                        "loss": e.get("loss"), "val_metric": e.get("val_metric")}
                       for e in curve],
    })


def components_report(model) -> dict[str, Any]:
    """What each component of `model` chose on validation (stored with the version, reported
    by `train --json`): coattendance, content, trend."""
    validation = dict(getattr(model, "validation", {}) or {})
    return plain({"coattendance": _coattendance_report(model, validation),
                   "content": _content_report(model, validation),
                   "trend": _trend_report(model, validation)})


def _coattendance_report(model, validation: dict[str, Any]) -> dict[str, Any]:
    """The co-attendance component as stored (weight 0: switched off on validation), with the
    validation NDCG of the hybrid alone and of the chosen blend."""
    chosen = dict(validation.get("coattendance") or {})
    component = getattr(model, "coattendance", None)
    return {"weight": component.weight if component is not None else 0.0,
            "lambda": component.lam if component is not None else None,
            "recency": component.recency if component is not None else None,
            "events": int(len(component.event_ids)) if component is not None else 0,
            "validation_hybrid_ndcg": chosen.get("hybrid_ndcg"),
            "validation_blend_ndcg": chosen.get("blend_ndcg")}


def _content_report(model, validation: dict[str, Any]) -> dict[str, Any]:
    """The content component as stored (weight 0: switched off on its cold validation split),
    with that split's NDCG of the hybrid alone and of the chosen blend."""
    chosen = dict(validation.get("content") or {})
    component = getattr(model, "content", None)
    return {"weight": component.weight if component is not None else 0.0,
            "neighbours": component.neighbours if component is not None else None,
            "popularity_weight": component.popularity_weight if component is not None else 0.0,
            "events": int(len(component.event_ids)) if component is not None else 0,
            "terms": int(component.width) if component is not None else 0,
            "validation_cold_events": chosen.get("events"),
            "validation_hybrid_ndcg": chosen.get("hybrid_ndcg"),
            "validation_blend_ndcg": chosen.get("blend_ndcg")}


def _trend_report(model, validation: dict[str, Any]) -> dict[str, Any]:
    """The trend component as stored (both weights 0: switched off on its time split), with
    that split's users per group and NDCG of the probe alone and of the chosen blend."""
    chosen = dict(validation.get("trend") or {})
    component = getattr(model, "trend", None)
    return {"weight_known": component.weight_known if component is not None else 0.0,
            "weight_new": component.weight_new if component is not None else 0.0,
            "half_life_days": component.half_life_days if component is not None else None,
            "events": int(len(component.event_ids)) if component is not None else 0,
            "validation_split_time": chosen.get("split_time"),
            "validation_users": chosen.get("users"),
            "validation_ndcg": chosen.get("ndcg")}


def evaluate_version(data, config, on_step=None) -> dict:
    """The temporal-holdout evaluation (it trains its own model on the past: its epochs only
    refresh the heartbeat, they are not the run's progress). The holdout model's own fit is
    reported as "holdout_model", so it is not read as the stored model's."""
    try:
        from beacon.evaluate import evaluate_holdout

        metrics = dict(evaluate_holdout(data, config, k=getattr(config, "eval_k", 10),
                                        callback=on_step))
        return plain(metrics)
    except Exception as error:  # noqa: BLE001 - a model without numbers still serves
        # a warning, not an error: the training succeeded (an "error:" line on stderr reads as
        # a failed command to whoever watches cron's mail); the traceback goes to the log file
        from beacon.errors import BeaconError

        expected = isinstance(error, BeaconError)  # e.g. nothing upcoming at the cutoff
        log.warning("the model is stored without offline metrics: %s", error,
                    exc_info=not expected)
        return {"evaluation_error": f"{type(error).__name__}: {error}"}


def _ndcg(metrics: dict | None) -> float | None:
    block = (metrics or {}).get("beacon")
    if isinstance(block, dict) and isinstance(block.get("ndcg"), (int, float)):
        return float(block["ndcg"])
    return None


def compare_with_active(metrics: dict, active: store.VersionMeta | None) -> dict:
    """The new version's offline numbers next to the active one's (recorded, not enforced)."""
    if active is None:
        return {}
    new, old = _ndcg(metrics), _ndcg(active.metrics)
    out: dict[str, Any] = {"previous_version": active.id, "ndcg": new, "previous_ndcg": old,
                           "k": metrics.get("k"), "previous_k": (active.metrics or {}).get("k")}
    if new is not None and old is not None:
        out["delta"] = new - old
        if new < old:
            out["note"] = (f"offline NDCG {new:.4f} is below the previous version {active.id}'s "
                           f"{old:.4f} (on an earlier holdout); activated anyway, roll back with "
                           f"`models activate {active.id}` if needed")
    return out
