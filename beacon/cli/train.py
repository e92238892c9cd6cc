"""`beacon train [--force] [--user EMAIL] [--json]`: the smart training service from cron and
scripts. Exit 0 for trained, skipped and busy; 1 for failed; 2 for bad input."""
from __future__ import annotations

import argparse
import math
import sys

from beacon.cli.common import add_json_flag, emit, log, progress_bar


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train the global model if needed (or one user's fold-in)",
        description="Train when there is no active model, when the data changed, or when the "
        "active model is older than the maximum age; otherwise skip and say why.",
    )
    parser.add_argument("--force", action="store_true", help="train even if nothing changed")
    parser.add_argument("--user", metavar="EMAIL",
                        help="fold this user's latest interactions into the active global model")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


class _Progress:
    """A tqdm bar on a terminal, one plain line per epoch otherwise (stderr either way)."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
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
        return f"{head}\nreason: {payload['reason']}"
    return f"{status}: {payload['reason']}"


def run(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.training import recover_abandoned, train

    recover_abandoned()
    progress = _Progress()
    try:
        result = train(
            scope="user" if args.user else "global",
            force=args.force,
            user=args.user,
            trigger="force" if args.force else "cli",
            actor=cli_actor(),
            progress_callback=progress,
        )
    finally:
        progress.close()
    payload = result.to_dict()
    emit(args, payload, _human)
    return 1 if result.status == "failed" else 0
