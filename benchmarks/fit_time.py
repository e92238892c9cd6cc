"""Wall time of one `HybridModel.fit` on MovieLens-100k (or the scale data), in-process, per
seed: how long early stopping took, how long after it the fit ended (the refit, the probe and
the components' choices that were not done by then), and the epochs.

    benchmarks/.venv/bin/python benchmarks/fit_time.py [--protocol cold] [--seeds 1,2,3]
    benchmarks/.venv/bin/python benchmarks/fit_time.py --scale-url URL --size 1000000 --seeds 42

The frames are `real_data.py`'s (the same split, the same import mapping), so the fit is the
one that benchmark's product path trains, without the CLI's import and refresh around it. For a
before/after pair, run this file against each tree back to back (it imports `beacon` from the
tree it sits in).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from benchmarks import real_data as R  # noqa: E402

PROTOCOLS = ("warm", "cold")


def frames_for(args: argparse.Namespace) -> tuple[str, Any]:
    """(a label, the training frames): a MovieLens protocol's training part, or with
    `--scale-url` `training.py`'s subset of the scale data of about `--size` interactions."""
    if args.scale_url:
        from benchmarks.training import subset
        from data_access.training_data import load_training_data

        return f"scale {args.size}", subset(load_training_data(url=args.scale_url), args.size)
    data = R.load(args.min_rating)
    return args.protocol, R.training_frames(data, R.SPLITS[args.protocol](data.ratings))


def time_fit(frames: Any, seed: int) -> dict[str, Any]:
    from beacon.config import ModelConfig
    from beacon.model import HybridModel

    began = time.perf_counter()
    validation_ended: list[float] = []

    def on_epoch(report) -> None:
        if report.phase == "train":
            validation_ended[:] = [time.perf_counter() - began]

    model = HybridModel.fit(frames, ModelConfig().with_overrides(seed=seed), on_epoch)
    seconds = time.perf_counter() - began
    phases = [entry.get("phase") for entry in model.loss_history]
    return {"seed": seed, "seconds": round(seconds, 2),
            "early_stopping_seconds": round(validation_ended[0], 2) if validation_ended else None,
            "validation_epochs": phases.count("train"),
            "best_epoch": model.validation.get("best_epoch")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=PROTOCOLS, default="cold")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--min-rating", type=float, default=0.0)
    parser.add_argument("--scale-url", help="time the scale data in this database instead")
    parser.add_argument("--size", type=int, default=1_000_000,
                        help="interactions of the scale data to fit (with --scale-url)")
    parser.add_argument("--out", help="results file (default benchmarks/results/fit_time.json)")
    args = parser.parse_args()
    label, frames = frames_for(args)
    fits = []
    for seed in (int(s) for s in args.seeds.split(",")):
        fits.append(time_fit(frames, seed))
        C.log(f"[{label}] seed {seed}: {fits[-1]}")
    slowest = max(f["seconds"] for f in fits)
    C.write_result("fit_time", {
        "data": label, "min_rating": args.min_rating, "fits": fits,
        "headline": {"fit_seconds_max": C.headline(slowest, "lower", "time", goal=30.0,
                                                   unit="s")},
    }, args.out)


if __name__ == "__main__":
    main()
