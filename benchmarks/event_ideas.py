"""The event ideas of issue 11 item 2 (time-of-week profile, lead time, distance to visited
places; beacon/model/event_ideas.py) against the baseline, on validation.

    /work/main/.venv/bin/python benchmarks/event_ideas.py                  # every variant
    /work/main/.venv/bin/python benchmarks/event_ideas.py --variants baseline,lead_time
    /work/main/.venv/bin/python benchmarks/event_ideas.py --test baseline,lead_time

Data and splits: benchmarks/quality.py's demo data at the default size (1,000 users, 500
events, 60 days, data seed 42). quality.py's rule (cutoff at 18% of the registrations) splits the
data into training and test; the same rule applied to the training part again gives the
validation split that every choice here is made on. Each variant is fitted on the validation
split's training part with model seeds 42, 1, 2, 3 and scored on its users and candidates with
quality.evaluate (overall and cold NDCG@10). Scores are what quality.fit_beacon scores (id,
tokens, place term, co-attendance and content blends) plus the ideas' term, computed from each
user's positive pairs before the cutoff with "now" = the cutoff. `--test`: the named variants
again on the test split (for the record only; nothing is chosen there).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import _common as C  # noqa: E402
from benchmarks import quality as Q  # noqa: E402

SEEDS = (42, 1, 2, 3)
IDEAS = ("time_profile", "lead_time", "visited_places")
LR_SCALE = 10.0
#: name -> (ModelConfig overrides, event_ideas module settings)
VARIANTS: dict[str, tuple[dict, dict]] = {"baseline": ({}, {})}
VARIANTS.update({name: ({name: True}, {}) for name in IDEAS})
VARIANTS.update({" + ".join(combo): (dict.fromkeys(combo, True), {})
                 for n in (2, 3) for combo in itertools.combinations(IDEAS, n)})
#: the same ideas with a history of registrations and attendance only (pairs of weight >= 1)
VARIANTS.update({f"{name} (registrations only)": ({name: True}, {"HISTORY_MIN_WEIGHT": 1.0})
                 for name in ("time_profile", "visited_places")})
#: the ideas' weights at a 10x learning rate (at 1x they stay near 0.1, step-bound)
VARIANTS.update({f"{name} (weights lr x{LR_SCALE:g})": (overrides, {"LR_SCALE": LR_SCALE})
                 for name, (overrides, _) in list(VARIANTS.items())[1:8]})
DEFAULT_SETTINGS = {"HISTORY_MIN_WEIGHT": 0.0, "LR_SCALE": 1.0}


def fit_and_score(train, split: Q.Split, overrides: dict, settings: dict
                  ) -> tuple[np.ndarray, dict]:
    """[users, candidates] scores of the hybrid fitted with `overrides`, as quality.fit_beacon
    scores them plus the ideas' term; and the learned weights of that term."""
    from beacon.config import ModelConfig
    from beacon.model import HybridModel
    from beacon.model import event_ideas as E
    from beacon.model.data import _pairs, _prepare

    for name, value in {**DEFAULT_SETTINGS, **settings}.items():
        setattr(E, name, value)
    config = ModelConfig().with_overrides(**overrides)
    model = HybridModel.fit(train, config)
    events = train.events.set_index("id").loc[split.cand_ids].reset_index()
    matrix = model.event_matrix(events)
    users = train.users.set_index("id").loc[split.users].reset_index()
    scores = model.score_users(users, matrix)
    learned = {}
    if E.enabled(config):
        prep = _prepare(train, config)
        ideas = E.EventIdeas(prep, _pairs(prep.rows), config,
                             center=model.weights["ideas_center"])
        w = model.weights["ideas_w"]
        urow = prep.user_frame.rows(split.users)
        erow = prep.event_frame.rows(split.cand_ids)
        now = np.full(len(urow), split.cutoff, dtype=np.int64)
        scores = scores + E.idea_scores(ideas, w, urow, now, erow)
        learned = dict(zip(E.feature_names(config), np.round(w.astype(float), 3).tolist()))
    inter = train.interactions
    registered = inter[inter["type"].astype(str).isin(("register", "attend"))]
    history = registered.groupby("user_id")["event_id"].agg(lambda ids: ids.to_numpy())
    histories = [history.get(u, np.zeros(0, np.int64)) for u in split.users]
    scores = model.blend_users(scores, histories, np.asarray(split.cand_ids))
    return model.blend_content(scores, histories, matrix), learned


def run(split: Q.Split, names: list[str], label: str) -> dict:
    out = {}
    for name in names:
        overrides, settings = VARIANTS[name]
        rows = []
        for seed in SEEDS:
            began = time.perf_counter()
            scores, learned = fit_and_score(split.train, split, {**overrides, "seed": seed},
                                            settings)
            metrics = Q.evaluate(split, scores)
            rows.append({"seed": seed, "ndcg": metrics["ndcg"], "cold_ndcg":
                         metrics["cold"]["ndcg"], "cold_users": metrics["cold"]["users"],
                         "weights": learned, "seconds": round(time.perf_counter() - began, 1)})
            C.log(f"[{label}] {name} seed {seed}: NDCG@10 {metrics['ndcg']:.4f}, cold "
                  f"{metrics['cold']['ndcg']:.4f} {learned}")
        out[name] = {"seeds": rows, "ndcg": _mean(rows, "ndcg"),
                     "cold_ndcg": _mean(rows, "cold_ndcg")}
    return out


def _mean(rows: list[dict], key: str) -> float:
    return round(float(np.mean([r[key] for r in rows])), 4)


def table(results: dict) -> str:
    base = results.get("baseline")
    head = "| variant | " + " | ".join(f"seed {s}" for s in SEEDS) + " | mean | vs baseline |"
    lines = [head, "|" + "---|" * (len(SEEDS) + 3)]
    for name, block in results.items():
        cells = [f"{r['ndcg']:.4f} / {r['cold_ndcg']:.4f}" for r in block["seeds"]]
        delta = "" if base is None or name == "baseline" else \
            f"{100 * (block['ndcg'] / base['ndcg'] - 1):+.1f}% / " \
            f"{100 * (block['cold_ndcg'] / base['cold_ndcg'] - 1):+.1f}%"
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | **{block['ndcg']:.4f} / {block['cold_ndcg']:.4f}** | {delta} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--test", default="", help="variants to score on the test split too")
    parser.add_argument("--out", default=str(C.DEBUG_RESULTS / "event_ideas.json"))
    args = parser.parse_args()
    import torch

    from beacon.evaluate import default_cutoff

    torch.set_num_threads(1)
    data = Q.load_data(**Q.SIZES["default"])
    test = Q.make_split(data, default_cutoff(data.interactions))
    val = Q.make_split(test.train, default_cutoff(test.train.interactions))
    results = {"validation": run(val, [v for v in args.variants.split(",") if v], "val")}
    if args.test:
        results["test"] = run(test, args.test.split(","), "test")
    for part, block in results.items():
        print(f"\n{part} (NDCG@10 overall / cold; {len(SEEDS)} model seeds)\n{table(block)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
