"""Beacon with one model setting off and on, on quality.py's demo splits, per seed.

    benchmarks/.venv/bin/python benchmarks/setting_onoff.py                       # trend_blend
    benchmarks/.venv/bin/python benchmarks/setting_onoff.py --sizes default,5k --seeds 42,1,2
    benchmarks/.venv/bin/python benchmarks/setting_onoff.py --setting content_blend
    benchmarks/.venv/bin/python benchmarks/setting_onoff.py --setting content_popularity
    benchmarks/.venv/bin/python benchmarks/setting_onoff.py --setting coattendance_recency
    benchmarks/.venv/bin/python benchmarks/setting_onoff.py --setting coattendance_events --values 0,3000

The same data, splits and scoring as benchmarks/quality.py (its validation split and its test
split), Beacon's defaults otherwise: whether a component the fit may switch on changes the
demo figures, and what each fit chose (the setting's block of `model.validation`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from benchmarks import quality as Q  # noqa: E402

CHOICE_KEYS = {"trend_blend": "trend", "content_blend": "content",
               "content_popularity": "content", "coattendance_events": "coattendance",
               "coattendance_recency": "coattendance"}


def run(size: str, seeds: list[int], setting: str,
        values: tuple[Any, Any] = (False, True)) -> dict[str, Any]:
    from beacon.evaluate import default_cutoff
    from beacon.model import HybridModel

    data = Q.load_data(**Q.SIZES[size])
    test = Q.make_split(data, default_cutoff(data.interactions))
    val = Q.make_split(test.train, default_cutoff(test.train.interactions))
    fitted: list[Any] = []
    original = HybridModel.fit.__func__

    def recording_fit(cls, frames, config=None, callback=None):
        model = original(cls, frames, config, callback)
        fitted.append(model)
        return model

    HybridModel.fit = classmethod(recording_fit)
    try:
        out: dict[str, Any] = {}
        for seed in seeds:
            for name, split in (("validation", val), ("test", test)):
                popularity = Q.popularity_scores(split.train, split)
                row: dict[str, Any] = {}
                for label, value in zip(("off", "on"), values):
                    scores = Q.fit_beacon(split.train, split, {setting: value, "seed": seed},
                                          popularity)
                    metrics = Q.evaluate(split, scores)
                    row[label] = {"ndcg": round(metrics["ndcg"], 5),
                                  "cold_ndcg": round(metrics["cold"]["ndcg"], 5)}
                chosen = fitted[-1].validation.get(CHOICE_KEYS.get(setting, setting)) or {}
                row["chosen"] = {k: v for k, v in chosen.items()
                                 if k not in ("grid",) and not isinstance(v, list)}
                out[f"{seed}/{name}"] = row
                C.log(f"[{size}] seed {seed} {name}: off {row['off']} on {row['on']} "
                      f"chosen {row['chosen']}")
        return out
    finally:
        HybridModel.fit = classmethod(original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", default="trend_blend", help="a model setting")
    parser.add_argument("--values", default="false,true",
                        help="its off and on values, JSON, comma-separated (default false,true)")
    parser.add_argument("--sizes", default="default", help=f"of {', '.join(Q.SIZES)}")
    parser.add_argument("--seeds", default="42,1,2", help="model seeds")
    parser.add_argument("--out")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    try:
        values = tuple(json.loads(v) for v in args.values.split(","))
    except json.JSONDecodeError as error:
        parser.error(f"--values: {args.values!r} is not two JSON values ({error})")
    if len(values) != 2:
        parser.error("--values takes two values: off,on")
    result = {"setting": args.setting, "values": list(values), "seeds": seeds,
              "sizes": {size: run(size, seeds, args.setting, values)
                        for size in args.sizes.split(",") if size}}
    C.write_result("setting_onoff", result, args.out)


if __name__ == "__main__":
    main()
