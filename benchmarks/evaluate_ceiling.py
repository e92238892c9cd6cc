"""How far `beacon evaluate` can go past popularity on MovieLens-100k: rankings that need no
model, including two that read the answers, on evaluate's own holdout.

    benchmarks/.venv/bin/python benchmarks/evaluate_ceiling.py                 # ratings 0+, 3+, 4+
    benchmarks/.venv/bin/python benchmarks/evaluate_ceiling.py --min-ratings 4

`evaluate` trains before one global cutoff (18% of the registrations fall after it) and ranks
every upcoming event for each user who registered after it. On MovieLens most of those users
have no interaction before the cutoff: any model ranks them from their age, gender and
occupation alone. This script splits the data exactly as `evaluate` does
(`beacon.evaluate.default_cutoff`; every movie is upcoming, as `real_data.py` imports them)
and scores, for users with and without history:

- popularity: interactions before the cutoff (`evaluate`'s baseline);
- recent popularity: the same, decayed with a half-life of 3, 7, 14 or 30 days, counted
  as Beacon's trend component counts it (`beacon.model.trend.decayed_counts`);
- the test period's popularity (reads the answers): what everybody else registered for after
  the cutoff, the user's own registrations left out;
- the same among the users of the same gender and age decade (reads the answers).

The two that read the answers bound what a ranking shared by everybody, or by a demographic
segment, can reach. Beacon's figures are read from the stored `real_data*.json` runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from benchmarks.real_data import MovieLens, load  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from beacon.evaluate import default_cutoff  # noqa: E402
from beacon.model.trend import decayed_counts  # noqa: E402
from beacon.ranking_metrics import ndcg_of_top, top_columns  # noqa: E402

K = 10
HALF_LIVES_DAYS = (3, 7, 14, 30)
GOAL = 1.3
STORED = {0.0: "real_data.json", 3.0: "real_data_min_rating_3.json",
          4.0: "real_data_min_rating_4.json"}


def _ndcg(scores: np.ndarray, relevant: np.ndarray, excluded: np.ndarray) -> float:
    """NDCG@K; ties go to the lower column, as a stable sort would."""
    scores = scores - np.arange(scores.shape[1])[None, :] * 1e-9
    scores = np.where(excluded, -np.inf, scores)
    return ndcg_of_top(top_columns(scores, K), relevant)


def ceilings(data: MovieLens) -> dict[str, Any]:
    ratings = data.ratings
    items = np.sort(data.items["item"].unique())
    col = pd.Series(np.arange(len(items)), index=items)
    frame = pd.DataFrame({"occurred_at": ratings["ts"], "type": "register"})
    cut = default_cutoff(frame)
    train, test = ratings[ratings["ts"] < cut], ratings[ratings["ts"] >= cut]
    users = np.sort(test["user"].unique())
    row = pd.Series(np.arange(len(users)), index=users)
    n = len(items)
    relevant = np.zeros((len(users), n), dtype=bool)
    relevant[row[test["user"]].to_numpy(), col[test["item"]].to_numpy()] = True
    excluded = np.zeros_like(relevant)
    seen = train[train["user"].isin(users)]
    excluded[row[seen["user"]].to_numpy(), col[seen["item"]].to_numpy()] = True
    known = np.isin(users, train["user"].unique())

    # the counts Beacon's trend component keeps (an infinite half-life: plain popularity)
    cols, times = col[train["item"]].to_numpy(), train["ts"].to_numpy()
    everyone = np.ones((len(users), 1))
    rankings: dict[str, np.ndarray] = {
        "popularity": everyone * decayed_counts(cols, times, cut, float("inf"), n)}
    for days in HALF_LIVES_DAYS:
        rankings[f"recent popularity, half-life {days} d"] = \
            everyone * decayed_counts(cols, times, cut, float(days), n)
    own = relevant.astype(np.float64)
    rankings["test period's popularity, own left out (reads the answers)"] = \
        own.sum(axis=0)[None, :] - own
    people = data.users.set_index("user").loc[users]
    segment = people["gender"].to_numpy() + (people["age"].to_numpy() // 10).astype(str)
    same = (segment[:, None] == segment[None, :]).astype(np.float64)
    np.fill_diagonal(same, 0.0)
    rankings["test period's popularity, same gender and age decade (reads the answers)"] = \
        same @ own + 1e-6 * own.sum(axis=0)[None, :]

    groups = {"all": np.ones(len(users), dtype=bool), "with_history": known,
              "without_history": ~known}
    table = {name: {group: round(_ndcg(s[mask], relevant[mask], excluded[mask]), 4)
                    for group, mask in groups.items()}
             for name, s in rankings.items()}
    return {"cutoff_epoch": int(cut), "users": {g: int(m.sum()) for g, m in groups.items()},
            "candidates": n, "ndcg_at_10": table}


def stored_beacon(min_rating: float) -> dict[str, Any] | None:
    """Beacon's `evaluate` by history group, from the stored real-data run at this threshold."""
    path = C.RESULTS / STORED.get(min_rating, "")
    if min_rating not in STORED or not path.exists():
        return None
    run = json.loads(path.read_text())
    seeds = (run.get("beacon_evaluate") or {}).get("seeds") or {}
    if not seeds:
        return None
    out: dict[str, Any] = {"file": f"benchmarks/results/{path.name}",
                           "commit": run["machine"].get("git_commit"), "seeds": {}}
    for seed, block in seeds.items():
        by = block.get("by_history") or {}
        out["seeds"][seed] = {"all": round(block["beacon_ndcg"], 4),
                              **{g: round(b["beacon_ndcg"], 4) for g, b in by.items()}}
    return out


def needed_with_history(result: dict[str, Any]) -> float:
    """NDCG@10 the users with history would need for GOAL x popularity overall, if the users
    without history got the test period's own popularity (the bound above)."""
    users, table = result["users"], result["ndcg_at_10"]
    target = GOAL * table["popularity"]["all"] * users["all"]
    bound = table["test period's popularity, own left out (reads the answers)"]
    return round((target - bound["without_history"] * users["without_history"])
                 / users["with_history"], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-ratings", default="0,3,4",
                        help="comma-separated positive thresholds (default 0,3,4)")
    parser.add_argument("--out", help="results file (default benchmarks/results/evaluate_ceiling.json)")
    args = parser.parse_args()
    began = time.perf_counter()
    thresholds: dict[str, Any] = {}
    for min_rating in [float(x) for x in args.min_ratings.split(",") if x]:
        result = ceilings(load(min_rating))
        pop = result["ndcg_at_10"]["popularity"]["all"]
        result["ratio_to_popularity"] = {name: round(v["all"] / pop, 3)
                                         for name, v in result["ndcg_at_10"].items()}
        result["needed_with_history_for_goal"] = needed_with_history(result)
        result["beacon_evaluate_stored"] = stored_beacon(min_rating)
        thresholds[f"{min_rating:g}"] = result
        C.log(f"ratings >= {min_rating:g}: " + json.dumps(result["ratio_to_popularity"]))
    best_bound = {t: r["ratio_to_popularity"][
        "test period's popularity, own left out (reads the answers)"] for t, r in thresholds.items()}
    payload = {"k": K, "goal_ratio": GOAL, "thresholds": thresholds,
               "headline": {f"bound_ratio_ratings_{t}": C.headline(v, "higher", "quality")
                            for t, v in best_bound.items()},
               "seconds": round(time.perf_counter() - began, 1)}
    C.write_result("evaluate_ceiling", payload, args.out)
    print(json.dumps({t: {"users": r["users"], "ndcg_at_10": r["ndcg_at_10"],
                          "needed_with_history_for_goal": r["needed_with_history_for_goal"]}
                      for t, r in thresholds.items()}, indent=1))


if __name__ == "__main__":
    main()
