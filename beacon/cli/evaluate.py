"""`beacon evaluate [--k 10] [--fresh] [--json]`: the active version's offline evaluation
(temporal holdout, beacon vs popularity, city popularity and content), as stored at training time; recomputed when --k
differs from the stored k or with --fresh (that trains a holdout model: seconds to minutes)."""
from __future__ import annotations

import argparse

from beacon.cli.common import add_json_flag, bounded_int, emit, log
from beacon.errors import BeaconError

METRIC_KEYS = ("hit_rate", "precision", "recall", "ndcg", "coverage")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="offline evaluation of the active model against popularity and content")
    parser.add_argument("--k", type=bounded_int(1, 1000), default=10, help="cut-off rank (default 10)")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute on the current data instead of the stored result")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def _rows(block: dict) -> list[str]:
    lines = [f"{'strategy':16}{'users':>7}" + "".join(f"{k:>11}" for k in METRIC_KEYS)]
    for name, figures in block.items():
        if isinstance(figures, dict) and any(k in figures for k in METRIC_KEYS):
            users = figures.get("users", block.get("users_evaluated", "-"))
            cells = "".join(
                f"{figures[k]:>11.4f}" if isinstance(figures.get(k), (int, float)) else f"{'-':>11}"
                for k in METRIC_KEYS)
            lines.append(f"{name:16}{users!s:>7}{cells}")
    return lines


def _human(payload: dict) -> str:
    lines = [f"offline evaluation at k={payload.get('k')}, cutoff {payload.get('cutoff')} "
             f"(model version {payload.get('model_version')}, {payload.get('source')})"]
    if "users_evaluated" in payload:
        lines.append(f"{payload['users_evaluated']} user(s) registered after the cutoff for "
                     f"{payload.get('candidates')} upcoming event(s)")
    lines += _rows(payload)
    cold = payload.get("cold")
    if isinstance(cold, dict):
        lines.append(f"events nobody had touched before the cutoff ({cold.get('candidates', 0)}):")
        if cold.get("note") or not cold.get("users_evaluated"):
            lines.append("  " + (cold.get("note") or "not measurable on this data"))
        else:
            lines += ["  " + line for line in _rows(cold)]
    for key, label in (("with_history", "users with an interaction before the cutoff"),
                       ("without_history", "users without one (ranked from their profile)")):
        block = (payload.get("by_history") or {}).get(key)
        if isinstance(block, dict):
            lines.append(f"{label} ({block.get('users_evaluated', 0)}):")
            lines += ["  " + line for line in _rows(block)] if block.get("users_evaluated") \
                else ["  " + (block.get("note") or "not measurable on this data")]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from data_access import models_store as store

    if args.k < 1:
        raise BeaconError(f"--k must be >= 1, got {args.k}")
    active = store.active_version("global")
    stored = dict(active.metrics) if active is not None else {}
    usable = "beacon" in stored and "k" in stored
    current = "content" in stored  # stored before the content strategy: no content row
    if active is None and not args.fresh:
        raise BeaconError("no active model to evaluate: run `python -m beacon train` first "
                          "(or `evaluate --fresh`)")
    if usable and current and not args.fresh and int(stored["k"]) == args.k:
        payload = {key: value for key, value in stored.items() if key != "comparison"}
        source = "stored"
    else:
        from beacon.config import ModelConfig
        from beacon.evaluate import evaluate_holdout
        from beacon.training_settings import current_config
        from data_access.training_data import load_training_data

        config = ModelConfig.from_dict(active.hyperparameters) if active is not None and \
            active.hyperparameters else current_config()
        why = "--fresh" if args.fresh else (
            "no stored evaluation" if not usable
            else "the stored one has no content row" if not current
            else f"stored k={stored.get('k')} differs from --k {args.k}")
        log(f"evaluating on the current data ({why}); this trains a holdout model")
        payload = dict(evaluate_holdout(load_training_data(), config, k=args.k))
        source = "fresh"
    payload["model_version"] = active.id if active is not None else None
    payload["source"] = source
    emit(args, payload, _human)
    return 0
