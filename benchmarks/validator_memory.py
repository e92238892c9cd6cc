"""How big the training's early-stopping validator gets at 1M and at the full scale data: the
dense [validation users x candidates] arrays beacon.model._Validator builds (no fit is run).

    benchmarks/.venv/bin/python benchmarks/validator_memory.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402


def main() -> None:
    import numpy as np

    C.use_database(C.PG_SCALE_URL)
    from beacon import model as M
    from beacon.config import ModelConfig
    from benchmarks.training import subset
    from data_access.training_data import load_training_data

    data = load_training_data(url=C.PG_SCALE_URL)
    config = ModelConfig()
    sizes = {}
    for target in (1_000_000, len(data.interactions)):
        part = subset(data, target)
        prep = M._prepare(part, config)
        split = M._split_time(prep.rows, config.validation_fraction)
        val = prep.rows[prep.rows["t"] >= split]
        cands = np.flatnonzero(prep.event_start > split)
        strong = val[val["weight"] >= M.STRONG_SHARE * prep.max_weight]
        strong = strong[np.isin(strong["erow"].to_numpy(), cands)]
        users = np.unique(strong["urow"].to_numpy())
        itemsize = prep.place(users[:2, None], cands[None, :2]).itemsize
        cells = len(users) * len(cands)
        gib = 2 ** 30
        sizes[str(len(part.interactions))] = {
            "validation_users": int(len(users)), "candidates": int(len(cands)), "cells": cells,
            "place_array_gib": round(cells * 3 * itemsize / gib, 2),
            "scores_float32_gib": round(cells * 4 / gib, 2),
            "argpartition_int64_gib": round(cells * 8 / gib, 2),
            "relevant_bool_gib": round(cells / gib, 2),
        }
        C.log(f"{len(part.interactions):,}: {sizes[str(len(part.interactions))]}")
    C.write_result("validator_memory", {"sizes": sizes, "headline": {}})


if __name__ == "__main__":
    main()
