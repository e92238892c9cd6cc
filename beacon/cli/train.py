"""`beacon train [--force] [--user EMAIL] [--seed N] [--json]`: the smart training service from cron and
scripts. Exit 0 for trained, skipped and busy; 1 for failed, or cancelled by a cancel request;
2 for bad input; 143 when SIGTERM cancelled it, 130 for Ctrl-C (the run is recorded `cancelled`,
the active model untouched).

`beacon train --cancel [--run ID | --user EMAIL]`: ask the running training (global by default)
to stop at its next batch, wherever it runs."""
from __future__ import annotations

import argparse
import math

from beacon.cli.common import add_json_flag, emit, log, on_terminal, progress_bar
from beacon.errors import BeaconError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train the global model if needed (or one user's fold-in)",
        description="Train when there is no active model, when the data changed, or when the "
        "active model is older than the maximum age; otherwise skip and say why.",
    )
    parser.add_argument("--force", action="store_true", help="train even if nothing changed")
    parser.add_argument("--user", metavar="EMAIL",
                        help="fold this user's latest interactions into the active global model")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="the model's random seed for this training (default: the "
                        "configured one); benchmarks use it to measure the spread over seeds")
    parser.add_argument("--cancel", action="store_true",
                        help="stop the running training (global, --user's, or --run's) at its "
                        "next batch instead of training")
    parser.add_argument("--run", type=int, metavar="ID", help="with --cancel: the run to stop")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


class _Progress:
    """A tqdm bar on a terminal, one plain line per epoch otherwise (stderr either way)."""

    def __init__(self) -> None:
        self.interactive = on_terminal()
        self.bar = None
        self.last_epoch = 0

    def __call__(self, report) -> None:
        loss = float(report.loss) if report.loss is not None else math.nan
        val = getattr(report, "val_metric", None)
        if not self.interactive:
            extra = f" val {val:.4f}" if val is not None else ""
            phase = getattr(report, "phase", None)
            prefix = f"{phase} " if phase and phase != "train" else ""
            log(f"{prefix}epoch {report.epoch}/{report.total_epochs} loss {loss:.4f}{extra}")
            return
        if self.bar is None or report.epoch <= self.last_epoch:
            self.close()
            phase = getattr(report, "phase", None) or "train"
            label = "training" if phase == "train" else phase
            self.bar = progress_bar(report.total_epochs, label, unit="epoch")
        elif report.total_epochs != self.bar.total:
            self.bar.total = report.total_epochs
        self.bar.update(report.epoch - self.last_epoch)
        postfix = {"loss": f"{loss:.4f}"}
        if val is not None:
            postfix["val"] = f"{val:.4f}"
        self.bar.set_postfix(postfix)
        self.last_epoch = report.epoch

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.last_epoch = 0


def _human(payload: dict) -> str:
    status = payload["status"]
    if status == "trained":
        head = f"trained: model version {payload['model_version']}"
        beacon = (payload.get("metrics") or {}).get("beacon") or {}
        if "ndcg" in beacon:
            k = payload["metrics"].get("k", "")
            pop = (payload["metrics"].get("popularity") or {}).get("ndcg")
            head += f" (offline NDCG@{k} {beacon['ndcg']:.4f}"
            head += f" vs popularity {pop:.4f})" if isinstance(pop, (int, float)) else ")"
        convergence = (payload.get("training") or {}).get("convergence") or {}
        retry = f"\nlearning rate: {convergence['retry_note']}" \
            if convergence.get("retry_note") else ""
        warning = f"\nwarning: {convergence['note']}" if convergence.get("note") else ""
        return f"{head}\nreason: {payload['reason']}{retry}{warning}"
    return f"{status}: {payload['reason']}"


def cancel(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.training import cancel_training

    if args.force:
        raise BeaconError("--cancel and --force do not go together")
    run = cancel_training(run_id=args.run, user=args.user, actor=cli_actor())
    payload = {"status": "cancel_requested", "run_id": run.id,
               "requested_by": run.cancel_requested_by}
    emit(args, payload, lambda p: f"cancel requested for training run {p['run_id']}: it stops "
         "at its next batch and is recorded as cancelled")
    return 0


def run(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.training import install_signal_cancel, recover_abandoned, train

    if args.cancel:
        return cancel(args)
    if args.run is not None:
        raise BeaconError("--run goes with --cancel")
    config = None
    if args.seed is not None:
        from beacon.training_settings import current_config

        if args.user:
            raise BeaconError("--seed applies to the global model, not to a user's fold-in")
        config = current_config().with_overrides(seed=args.seed)
    install_signal_cancel()
    progress = _Progress()
    try:
        recover_abandoned()
        result = train(
            scope="user" if args.user else "global",
            force=args.force,
            user=args.user,
            trigger="force" if args.force else "cli",
            actor=cli_actor(),
            progress_callback=progress,
            config=config,
        )
        payload = result.to_dict()
    except BeaconError:
        raise  # bad input: one line, exit 2
    except Exception as error:  # noqa: BLE001 - the outcome is still one line / one document
        payload = _unfinished(args, error)
    finally:
        progress.close()
    emit(args, payload, _human)
    if payload["status"] == "cancelled":
        return 143 if "SIGTERM" in payload["reason"] else 1
    return 1 if payload["status"] == "failed" else 0


def _unfinished(args: argparse.Namespace, error: Exception) -> dict:
    """A training that could not even start (the database busy or gone): the same document as
    any outcome, `busy` when SQLite's write lock is held, else `failed`."""
    from beacon.failures import is_busy, one_line

    return {"status": "busy" if is_busy(error) else "failed",
            "reason": one_line(error, context="python -m beacon train"),
            "model_version": None, "run_id": None, "metrics": {},
            "scope": "user" if args.user else "global", "user": args.user, "seconds": None}
