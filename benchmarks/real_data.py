"""Beacon against peers on real human data: MovieLens-100k, three protocols, several seeds.

    benchmarks/.venv/bin/python benchmarks/real_data.py                  # 3 seeds, every peer
    benchmarks/.venv/bin/python benchmarks/real_data.py --seeds 1 --quick  # debugging
    benchmarks/.venv/bin/python benchmarks/real_data.py --min-rating 4     # positives: 4 and 5 stars
    benchmarks/.venv/bin/python benchmarks/real_data.py --tune-beacon      # Beacon settings on validation

Data: MovieLens-100k as it ships inside the recbole==1.2.1 wheel. The wheel is fetched at
benchmark time (`pip download --no-deps recbole==1.2.1`) and only
recbole/dataset_example/ml-100k/ml-100k.{inter,item,user} are unpacked into benchmarks/data/
(gitignored). Every rating at or above --min-rating is a positive interaction (default: all).

Protocols, each scored on the same users for every model, top-10 HR, precision, recall, NDCG,
MAP and coverage (share of the candidates shown to at least one user):
- warm: per user, the latest 20% of interactions are the test set; every item the user did not
  interact with in training is a candidate.
- cold items: the newest 20% of items by first interaction have no training data at all; only
  they are candidates, for the users who interacted with one; a model ranks them from their
  features (genres, release year, title words; users' age, gender, occupation as tags).
- time: one global cutoff, the latest 20% of all interactions are the test set (as a platform
  serves everybody at one moment); every item a test user did not interact with before it is a
  candidate. Many test users have no interaction before the cutoff (ranked from their tags, or
  by popularity). `--protocols warm,cold` leaves it out.

Tuning: every peer picks its setting by NDCG@10 on a validation split carved from the training
data with the same rule (the latest 20% of each user's training interactions; the newest 20% of
the training items; the latest 20% of the training interactions), is refit on the whole training
data and scored once on the test set.

Beacon runs through the product: users/events/interactions CSVs (movies as events starting in
the future, ratings as registrations at their timestamps, shifted to end before `now`; users'
age band, gender and occupation as interest tags; genres, release year and title words as the
event's category and tags), `beacon import`, `beacon train --force --seed S --json`,
`beacon refresh-recommendations --top 10`, then the cached lists are read back. For the cold
protocol the warm movies start in the past (already held: not recommendable) and the cold ones in
the future (new events nobody has registered for). A third import of all ratings gives Beacon's
own `beacon evaluate --json` (its temporal holdout against popularity) and the training time.
Beacon's own choices (settings, early stopping) are its engine's, made on validation only;
`--tune-beacon` scores candidate settings on the validation splits in-process.

Peers (benchmarks/.venv): popularity, EASE (numpy), implicit ALS (both serve popularity to a
user with no training interaction, as on the time protocol's newcomers), a content kNN with
scikit-learn (TF-IDF or one-hot item features, cosine, k nearest items of the user's history),
LightFM (WARP) with the same features where it installs. Popularity and the collaborative peers
cannot rank items nobody interacted with: on the cold protocol only the feature models run. Ties
break in one fixed random order for every model (MovieLens item ids follow its catalog order).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from benchmarks.quality import ease_weights  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

K = 10
TEST_SHARE = 0.2
WHEEL = "recbole==1.2.1"
MEMBERS = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
ML_DIR = C.DATA / "ml-100k"
WORK = C.DATA / "real"
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
HISTORY_END = NOW - timedelta(days=40)  # the newest rating lands here
PAST_START = NOW - timedelta(days=30)  # movies already "held" (cold protocol's warm items)
FUTURE_START = NOW + timedelta(days=30)
STOP_WORDS = {"the", "a", "an", "of", "and", "in", "to", "on", "for", "la", "le", "de", "il"}


# --------------------------------------------------------------------------- data


def fetch() -> Path:
    """Unpack the three ml-100k files from the recbole wheel (downloaded once) into ML_DIR."""
    if all((ML_DIR / name).exists() for name in MEMBERS):
        return ML_DIR
    ML_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        C.log(f"pip download --no-deps {WHEEL}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL,
                        "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("recbole-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in MEMBERS:
                (ML_DIR / name).write_bytes(
                    archive.read(f"recbole/dataset_example/ml-100k/{name}"))
    return ML_DIR


@dataclass
class MovieLens:
    ratings: pd.DataFrame  # user, item, rating, ts
    items: pd.DataFrame  # item, title, year, genres (list), words (list)
    users: pd.DataFrame  # user, age, gender, occupation


def title_words(title: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", str(title).lower())
    return sorted({w for w in words if len(w) > 1 and w not in STOP_WORDS})


def load(min_rating: float) -> MovieLens:
    folder = fetch()

    def table(name: str) -> pd.DataFrame:
        frame = pd.read_csv(folder / name, sep="\t", dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_NONE)
        frame.columns = [c.split(":")[0] for c in frame.columns]
        return frame

    inter = table("ml-100k.inter")
    ratings = pd.DataFrame({"user": inter["user_id"].astype(int),
                            "item": inter["item_id"].astype(int),
                            "rating": inter["rating"].astype(float),
                            "ts": inter["timestamp"].astype(float).astype(np.int64)})
    ratings = ratings[ratings["rating"] >= min_rating].reset_index(drop=True)
    item = table("ml-100k.item")
    items = pd.DataFrame({"item": item["item_id"].astype(int), "title": item["movie_title"],
                          "year": item["release_year"].str.strip(),
                          "genres": item["class"].map(lambda s: [g for g in s.split() if g]),
                          "words": item["movie_title"].map(title_words)})
    user = table("ml-100k.user")
    users = pd.DataFrame({"user": user["user_id"].astype(int), "age": user["age"].astype(int),
                          "gender": user["gender"].str.lower(),
                          "occupation": user["occupation"].str.lower()})
    return MovieLens(ratings, items.sort_values("item").reset_index(drop=True),
                     users.sort_values("user").reset_index(drop=True))


def user_tags(users: pd.DataFrame) -> pd.Series:
    decade = (users["age"] // 10 * 10).astype(str)
    return ("age " + decade + "s;gender " + users["gender"] + ";occupation "
            + users["occupation"])


def item_tags(items: pd.DataFrame) -> pd.Series:
    """Genres, release year and decade, title words: the features every feature model sees."""
    def tags(row) -> list[str]:
        out = [g.lower() for g in row["genres"]]
        if row["year"].isdigit():
            out += [f"year {row['year']}", f"{row['year'][:3]}0s"]
        return out + [f"word {w}" for w in row["words"]]
    return items.apply(tags, axis=1)


# --------------------------------------------------------------------------- protocols


@dataclass
class Task:
    """One ranking task: train on `train`, rank `candidates` for `users`, hits are `test`."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    candidates: np.ndarray  # item ids, sorted
    users: np.ndarray  # user ids, sorted
    exclude_train: bool  # the user's training items are not candidates for them
    relevant: list[set] = field(default_factory=list)

    def __post_init__(self) -> None:
        grouped = self.test.groupby("user")["item"].agg(set)
        self.relevant = [grouped.get(u, set()) for u in self.users]


def warm_split(ratings: pd.DataFrame, name: str = "warm") -> Task:
    frame = ratings.sort_values(["user", "ts", "item"], kind="stable")
    n = frame.groupby("user")["item"].transform("size").to_numpy()
    position = frame.groupby("user").cumcount().to_numpy()
    n_test = np.maximum(1, np.round(n * TEST_SHARE)).astype(int)
    is_test = (position >= n - n_test) & (n >= 2)
    train, test = frame[~is_test], frame[is_test]
    users = np.unique(test["user"].to_numpy())
    return Task(name, train.reset_index(drop=True), test.reset_index(drop=True),
                np.unique(ratings["item"].to_numpy()), users, True)


def cold_split(ratings: pd.DataFrame, name: str = "cold") -> Task:
    first = ratings.groupby("item")["ts"].min().reset_index().sort_values(["ts", "item"])
    n_cold = int(math.ceil(len(first) * TEST_SHARE))
    cold = np.sort(first["item"].to_numpy()[-n_cold:])
    in_cold = ratings["item"].isin(cold)
    train, test = ratings[~in_cold], ratings[in_cold]
    users = np.unique(test["user"].to_numpy())
    return Task(name, train.reset_index(drop=True), test.reset_index(drop=True), cold, users,
                False)


def time_split(ratings: pd.DataFrame, name: str = "time") -> Task:
    frame = ratings.sort_values(["ts", "user", "item"], kind="stable")
    n_test = int(math.ceil(len(frame) * TEST_SHARE))
    train, test = frame.iloc[:-n_test], frame.iloc[-n_test:]
    return Task(name, train.reset_index(drop=True), test.reset_index(drop=True),
                np.unique(ratings["item"].to_numpy()), np.unique(test["user"].to_numpy()), True)


SPLITS = {"warm": warm_split, "cold": cold_split, "time": time_split}


# --------------------------------------------------------------------------- metrics


def score_task(task: Task, scores: np.ndarray, k: int = K) -> dict[str, float]:
    """Top-k metrics of a [users, candidates] score matrix (ties: candidate order)."""
    scores = np.array(scores, dtype=np.float64)
    col = pd.Series(np.arange(len(task.candidates)), index=task.candidates)
    row = pd.Series(np.arange(len(task.users)), index=task.users)
    if task.exclude_train:
        seen = task.train[task.train["user"].isin(task.users)]
        scores[row[seen["user"]].to_numpy(), col.reindex(seen["item"]).to_numpy()] = -np.inf
    # Ties (unseen items, empty profiles) break in a fixed random order, the same for every
    # model: the item ids of MovieLens follow its catalog order, which would leak popularity.
    shuffle = np.random.default_rng(0).permutation(len(task.candidates))
    order = shuffle[np.argsort(-scores[:, shuffle], axis=1, kind="stable")[:, :k]]
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    sums = dict(hit_rate=0.0, precision=0.0, recall=0.0, ndcg=0.0, map=0.0)
    shown = np.zeros(len(task.candidates), dtype=bool)
    for i, relevant in enumerate(task.relevant):
        top = order[i][np.isfinite(scores[i, order[i]])]
        shown[top] = True
        hits = np.array([task.candidates[c] in relevant for c in top], dtype=bool)
        n_rel = len(relevant)
        if n_rel == 0:
            continue
        n_hit = int(hits.sum())
        sums["hit_rate"] += float(n_hit > 0)
        sums["precision"] += n_hit / k
        sums["recall"] += n_hit / n_rel
        sums["ndcg"] += float(discounts[:len(hits)][hits].sum()
                              / discounts[:min(n_rel, k)].sum())
        precision_at = np.cumsum(hits) / (np.arange(len(hits)) + 1)
        sums["map"] += float(precision_at[hits].sum() / min(n_rel, k))
    n = max(len(task.users), 1)
    out = {name: round(value / n, 6) for name, value in sums.items()}
    out["coverage"] = round(float(shown.mean()), 6)
    return out


# --------------------------------------------------------------------------- peers


class Interactions:
    """User x item CSR of a task's training ratings (binary), with the id maps."""

    def __init__(self, task: Task, items: np.ndarray):
        import scipy.sparse as sp

        train = task.train.drop_duplicates(["user", "item"])
        self.user_ids = np.unique(np.concatenate([train["user"].to_numpy(), task.users]))
        self.item_ids = items
        self.urow = pd.Series(np.arange(len(self.user_ids)), index=self.user_ids)
        self.icol = pd.Series(np.arange(len(items)), index=items)
        keep = train["item"].isin(items)
        train = train[keep]
        self.X = sp.csr_matrix((np.ones(len(train), np.float32),
                                (self.urow[train["user"]].to_numpy(),
                                 self.icol[train["item"]].to_numpy())),
                               shape=(len(self.user_ids), len(items)))

    def user_rows(self, task: Task) -> np.ndarray:
        return self.urow[task.users].to_numpy()

    def candidate_cols(self, task: Task) -> np.ndarray:
        return self.icol.reindex(task.candidates).fillna(-1).to_numpy(dtype=np.int64)


def _on_candidates(m: Interactions, task: Task, full: np.ndarray) -> np.ndarray:
    """[users, candidates] from [users, m's items]; a candidate m never saw scores -inf. A
    user with no training interaction (the time protocol's newcomers), whom a collaborative
    model cannot score, gets the items' popularity, as any deployment of it would serve."""
    cols = m.candidate_cols(task)
    out = np.full((len(task.users), len(cols)), -np.inf)
    known = cols >= 0
    full = np.array(full, dtype=np.float64)
    empty = np.asarray(m.X[m.user_rows(task)].sum(axis=1)).ravel() == 0
    if empty.any():
        full[empty] = np.asarray(m.X.sum(axis=0)).ravel()[None, :]
    out[:, known] = full[:, cols[known]]
    return out


def fit_popularity(data: MovieLens, task: Task, params: dict, seed: int) -> np.ndarray:
    counts = task.train["item"].value_counts()
    pop = pd.Series(task.candidates).map(counts).fillna(0).to_numpy(dtype=np.float64)
    return np.broadcast_to(pop, (len(task.users), len(pop))).copy()


def fit_ease(data: MovieLens, task: Task, params: dict, seed: int) -> np.ndarray:
    m = Interactions(task, np.unique(task.train["item"].to_numpy()))
    X = m.X.astype(np.float64)
    B = ease_weights(X, params["lambda"])
    return _on_candidates(m, task, np.asarray(X[m.user_rows(task)] @ B))


def fit_als(data: MovieLens, task: Task, params: dict, seed: int) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    m = Interactions(task, np.unique(task.train["item"].to_numpy()))
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=params["factors"], regularization=params["reg"],
                                        alpha=params["alpha"], iterations=params["iterations"],
                                        random_state=seed, num_threads=1)
        model.fit(m.X, show_progress=False)
    U, V = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return _on_candidates(m, task, U[m.user_rows(task)] @ V.T)


def item_documents(data: MovieLens, item_ids: np.ndarray) -> list[str]:
    items = data.items.set_index("item").loc[item_ids]
    tags = item_tags(items.reset_index())
    return [" ".join(t.replace(" ", "_") for t in row) for row in tags]


def content_features(data: MovieLens, item_ids: np.ndarray, kind: str):
    """Row-normalized sparse features of the items: TF-IDF or one-hot (binary) tokens."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.preprocessing import normalize

    docs = item_documents(data, data.items["item"].to_numpy())
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", lowercase=False) if kind == "tfidf" \
        else CountVectorizer(token_pattern=r"\S+", lowercase=False, binary=True)
    F = vectorizer.fit_transform(docs)
    rows = pd.Series(np.arange(len(docs)), index=data.items["item"].to_numpy())[item_ids]
    return normalize(F[rows.to_numpy()])


def fit_content_knn(data: MovieLens, task: Task, params: dict, seed: int) -> np.ndarray:
    """Content kNN (scikit-learn): cosine similarity of item feature vectors; a candidate
    scores the sum of its similarities to the user's training items among its k nearest."""
    from sklearn.metrics.pairwise import cosine_similarity

    m = Interactions(task, np.unique(task.train["item"].to_numpy()))
    S = cosine_similarity(content_features(data, task.candidates, params["features"]),
                          content_features(data, m.item_ids, params["features"]))
    S[task.candidates[:, None] == m.item_ids[None, :]] = 0.0
    k = params["neighbours"]
    if k and k < S.shape[1]:
        cut = np.partition(S, -k, axis=1)[:, -k]
        S[S < cut[:, None]] = 0.0
    X = m.X[m.user_rows(task)]
    return np.asarray((X @ S.T))


def fit_lightfm(data: MovieLens, task: Task, params: dict, seed: int) -> np.ndarray:
    import scipy.sparse as sp
    from lightfm import LightFM
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    users, items = data.users["user"].to_numpy(), data.items["item"].to_numpy()
    urow = pd.Series(np.arange(len(users)), index=users)
    irow = pd.Series(np.arange(len(items)), index=items)
    train = task.train.drop_duplicates(["user", "item"])
    r, c = urow[train["user"]].to_numpy(), irow[train["item"]].to_numpy()
    X = sp.coo_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(users), len(items)))

    def features(docs: list[str], seen: np.ndarray) -> Any:
        tokens = CountVectorizer(token_pattern=r"\S+", lowercase=False,
                                 binary=True).fit_transform(docs)
        identity = sp.diags(np.isin(np.arange(len(docs)), seen).astype(np.float32))
        return normalize(sp.hstack([identity, tokens]).tocsr(), norm="l1").astype(np.float32)

    user_docs = [t.replace(" ", "_").replace(";", " ") for t in user_tags(data.users)]
    uf = features(user_docs, np.unique(r))
    itf = features(item_documents(data, items), np.unique(c))
    model = LightFM(no_components=params["components"], loss="warp",
                    learning_rate=params["lr"], item_alpha=params["alpha"],
                    user_alpha=params["alpha"], random_state=seed)
    model.fit(X, user_features=uf, item_features=itf, epochs=params["epochs"], num_threads=1)
    ub, ue = model.get_user_representations(uf)
    ib, ie = model.get_item_representations(itf)
    ur, ic = urow[task.users].to_numpy(), irow[task.candidates].to_numpy()
    return ue[ur] @ ie[ic].T + ib[ic][None, :]


GRIDS: dict[str, tuple[Callable, list[dict], tuple[str, ...]]] = {
    "popularity": (fit_popularity, [{}], ("warm", "time")),
    "ease": (fit_ease, [{"lambda": v} for v in (50.0, 200.0, 500.0, 1000.0, 3000.0)],
             ("warm", "time")),
    "als": (fit_als, [dict(factors=f, reg=0.05, alpha=a, iterations=15)
                      for f in (64, 128) for a in (1.0, 5.0, 20.0)], ("warm", "time")),
    "content_knn": (fit_content_knn, [dict(features=f, neighbours=k) for f in ("tfidf", "onehot")
                                      for k in (20, 100, 0)], ("warm", "cold", "time")),
    "lightfm": (fit_lightfm, [dict(components=c, lr=0.05, alpha=a, epochs=e)
                              for c in (32, 64) for a in (1e-6, 1e-4) for e in (15, 40)],
                ("warm", "cold", "time")),
}
QUICK = {"ease": 2, "als": 1, "content_knn": 2, "lightfm": 1}


def run_peer(name: str, data: MovieLens, protocol: str, seeds: list[int],
             quick: bool) -> dict[str, Any]:
    fit, grid, protocols = GRIDS[name]
    if protocol not in protocols:
        return {"skipped": "no training data on the candidates: it cannot rank them"}
    if name == "lightfm":
        try:
            import lightfm  # noqa: F401
        except ImportError:
            return {"skipped": "lightfm is not installed"}
    grid = grid[: QUICK.get(name, len(grid))] if quick else grid
    full = SPLITS[protocol](data.ratings)
    val = SPLITS[protocol](full.train, f"{protocol}-validation")
    tried = []
    for params in grid:
        t0 = time.perf_counter()
        metrics = score_task(val, fit(data, val, params, seeds[0]))
        tried.append({"params": params, "val_ndcg": metrics["ndcg"],
                      "seconds": round(time.perf_counter() - t0, 2)})
        C.log(f"[{protocol}] {name} {params}: val NDCG@10 {metrics['ndcg']:.4f}")
    best = max(tried, key=lambda t: t["val_ndcg"])
    per_seed = {}
    for seed in seeds:
        t0 = time.perf_counter()
        per_seed[seed] = {**score_task(full, fit(data, full, best["params"], seed)),
                          "fit_seconds": round(time.perf_counter() - t0, 2)}
    C.log(f"[{protocol}] {name} TEST NDCG@10 "
          f"{np.mean([m['ndcg'] for m in per_seed.values()]):.4f} ({best['params']})")
    return {"best_params": best["params"], "grid": tried, "seeds": per_seed,
            **summarize(per_seed)}


def summarize(per_seed: dict) -> dict[str, Any]:
    keys = ("hit_rate", "precision", "recall", "ndcg", "map", "coverage")
    values = {k: [m[k] for m in per_seed.values()] for k in keys}
    return {"mean": {k: round(float(np.mean(v)), 6) for k, v in values.items()},
            "std": {k: round(float(np.std(v)), 6) for k, v in values.items()}}


# --------------------------------------------------------------------------- Beacon's path


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def shifted_times(ts: pd.Series, end: int) -> pd.Series:
    """Rating timestamps moved so that the newest lands at HISTORY_END (order kept)."""
    offset = int(HISTORY_END.timestamp()) - end
    return pd.to_datetime(ts + offset, unit="s", utc=True).map(lambda t: _iso(t.to_pydatetime()))


def write_csvs(data: MovieLens, ratings: pd.DataFrame, past_items: set, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    end = int(data.ratings["ts"].max())
    users = data.users
    pd.DataFrame({"email": users["user"].map(lambda u: f"u{u}@movielens.example"),
                  "name": users["user"].map(lambda u: f"user {u}"),
                  "interest_tags": user_tags(users)}).to_csv(folder / "users.csv", index=False)
    items = data.items
    tags = item_tags(items)
    start = items["item"].map(lambda i: _iso(PAST_START if i in past_items else FUTURE_START))
    pd.DataFrame({"event_id": items["item"].map(lambda i: f"m{i}"), "title": items["title"],
                  "category": items["genres"].map(lambda g: g[0].lower() if g else ""),
                  "tags": tags.map(";".join), "start_time": start,
                  "timezone": "UTC"}).to_csv(folder / "events.csv", index=False)
    pd.DataFrame({"email": ratings["user"].map(lambda u: f"u{u}@movielens.example"),
                  "event_id": ratings["item"].map(lambda i: f"m{i}"), "type": "register",
                  "occurred_at": shifted_times(ratings["ts"], end)}).to_csv(
        folder / "interactions.csv", index=False)


def beacon_cli(url: str, *argv: str) -> dict | None:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(C.ROOT)}
    done = subprocess.run([sys.executable, "-m", "beacon", *argv], cwd=C.ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"beacon {' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return json.loads(done.stdout) if "--json" in argv else None


def imported(name: str, data: MovieLens, ratings: pd.DataFrame, past_items: set) -> str:
    folder = WORK / name
    path = folder / "beacon.sqlite3"
    if path.exists():
        path.unlink()
    write_csvs(data, ratings, past_items, folder)
    url = f"sqlite:///{path}"
    beacon_cli(url, "db", "upgrade")
    t0 = time.perf_counter()
    beacon_cli(url, "import", "--users", str(folder / "users.csv"), "--events",
               str(folder / "events.csv"), "--interactions", str(folder / "interactions.csv"))
    C.log(f"[beacon] imported {name}: {len(ratings):,} ratings in {time.perf_counter() - t0:.1f} s")
    return url


def cached_scores(url: str, task: Task) -> np.ndarray:
    """[users, candidates]: -rank for the cached top N, -inf elsewhere."""
    import sqlite3

    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT u.email, e.event_id, r.rank FROM user_recommendations r "
            "JOIN users u ON u.id = r.user_id JOIN events e ON e.id = r.event_id").fetchall()
    frame = pd.DataFrame(rows, columns=["email", "event", "rank"])
    frame["user"] = frame["email"].str.extract(r"^u(\d+)@")[0].astype(int)
    frame["item"] = frame["event"].str[1:].astype(int)
    row = pd.Series(np.arange(len(task.users)), index=task.users)
    col = pd.Series(np.arange(len(task.candidates)), index=task.candidates)
    frame = frame[frame["user"].isin(task.users) & frame["item"].isin(task.candidates)]
    scores = np.full((len(task.users), len(task.candidates)), -np.inf)
    scores[row[frame["user"]].to_numpy(), col[frame["item"]].to_numpy()] = -frame["rank"]
    return scores


def run_beacon(data: MovieLens, protocol: str, seeds: list[int]) -> dict[str, Any]:
    task = SPLITS[protocol](data.ratings)
    past = set(np.setdiff1d(data.items["item"], task.candidates).tolist()) \
        if protocol == "cold" else set()
    url = imported(protocol, data, task.train, past)
    per_seed, fits = {}, {}
    for seed in seeds:
        trained = beacon_cli(url, "train", "--force", "--seed", str(seed), "--json")
        t0 = time.perf_counter()
        beacon_cli(url, "refresh-recommendations", "--top", str(K), "--json")
        refresh_s = time.perf_counter() - t0
        per_seed[seed] = score_task(task, cached_scores(url, task))
        fits[seed] = {**{k: v for k, v in (trained.get("training") or {}).items()
                         if k != "loss_curve"}, "refresh_seconds": round(refresh_s, 1)}
        C.log(f"[{protocol}] beacon seed {seed}: NDCG@10 {per_seed[seed]['ndcg']:.4f} "
              f"(fit {fits[seed]})")
    return {"seeds": per_seed, "fits": fits, **summarize(per_seed)}


def run_beacon_evaluate(data: MovieLens, seeds: list[int]) -> dict[str, Any]:
    """All ratings imported; `train --force --seed S` then `evaluate --json` (its holdout)."""
    url = imported("full", data, data.ratings, set())
    out: dict[str, Any] = {}
    for seed in seeds:
        trained = beacon_cli(url, "train", "--force", "--seed", str(seed), "--json")
        report = beacon_cli(url, "evaluate", "--json")
        beacon, popularity = report["beacon"], report["popularity"]
        out[seed] = {"beacon_ndcg": beacon["ndcg"], "popularity_ndcg": popularity["ndcg"],
                     "ratio": round(beacon["ndcg"] / popularity["ndcg"], 4)
                     if popularity["ndcg"] else None,
                     "beacon": beacon, "popularity": popularity,
                     "users_evaluated": report.get("users_evaluated"),
                     "by_history": {
                         group: {"users": block.get("users_evaluated"),
                                 **{f"{name}_ndcg": (block.get(name) or {}).get("ndcg")
                                    for name in ("beacon", "popularity", "content")}}
                         for group, block in (report.get("by_history") or {}).items()},
                     "fit_seconds": (trained.get("training") or {}).get("seconds"),
                     "epochs": (trained.get("training") or {}).get("epochs"),
                     "best_epoch": (trained.get("training") or {}).get("best_epoch")}
        C.log(f"[evaluate] seed {seed}: beacon {beacon['ndcg']:.4f} vs popularity "
              f"{popularity['ndcg']:.4f}; fit {out[seed]['fit_seconds']} s")
    ratios = [v["ratio"] for v in out.values() if v["ratio"] is not None]
    fits = [v["fit_seconds"] for v in out.values() if v["fit_seconds"] is not None]
    return {"seeds": out, "mean_ratio": round(float(np.mean(ratios)), 4) if ratios else None,
            "std_ratio": round(float(np.std(ratios)), 4) if ratios else None,
            "mean_fit_seconds": round(float(np.mean(fits)), 2) if fits else None,
            "max_fit_seconds": round(float(np.max(fits)), 2) if fits else None}


# --------------------------------------------------------------------------- Beacon's tuning


def beacon_in_process(data: MovieLens, task: Task, overrides: dict, seed: int) -> np.ndarray:
    """Beacon's engine on a task without the database (the same frames the import builds):
    used only to compare settings on the validation splits."""
    from beacon.config import ModelConfig
    from beacon.model import HybridModel
    from beacon.model.coattendance import newest_first

    frames = training_frames(data, task)
    config = ModelConfig().with_overrides(seed=seed, **overrides)
    model = HybridModel.fit(frames, config)
    events = frames.events.set_index("id").loc[task.candidates].reset_index()
    users = frames.users.set_index("id").loc[task.users].reset_index()
    history = newest_first(task.train, task.users, "user", "item", "ts")
    co = model.validation.get("coattendance") or {}
    C.log(f"[beacon] co-attendance chosen on the model's validation split: weight "
          f"{co.get('weight')}, lambda {co.get('lambda')}, recency {co.get('recency')} (hybrid {co.get('hybrid_ndcg')}, "
          f"blend {co.get('blend_ndcg')})")
    matrix = model.event_matrix(events)
    content = model.validation.get("content") or {}
    C.log(f"[beacon] content component chosen on the cold validation split: weight "
          f"{content.get('weight')} (hybrid {content.get('hybrid_ndcg')}, blend "
          f"{content.get('blend_ndcg')})")
    trend = model.validation.get("trend") or {}
    C.log(f"[beacon] trend chosen on the time split: half-life {trend.get('half_life_days')} "
          f"days, weights {trend.get('weight_known')} / {trend.get('weight_new')} (users with / "
          f"without history; NDCG {trend.get('ndcg')})")
    scores = model.blend_users(model.score_users(users, matrix), history, task.candidates)
    scores = model.blend_content(scores, history, matrix)
    return model.blend_trend(scores, np.array([len(h) > 0 for h in history]), task.candidates)


def training_frames(data: MovieLens, task: Task) -> Any:
    """A TrainingData like the one `beacon import` + load_training_data builds for the task."""
    from data_access.training_data import TrainingData

    end = int(data.ratings["ts"].max())
    offset = int(HISTORY_END.timestamp()) - end
    past = set(np.setdiff1d(data.items["item"], task.candidates).tolist()) \
        if not task.exclude_train else set()
    users = pd.DataFrame({"id": data.users["user"].to_numpy(dtype=np.int64),
                          "tags": user_tags(data.users).map(lambda s: s.split(";")),
                          "latitude": np.nan, "longitude": np.nan, "city": None})
    items = data.items
    start = items["item"].map(lambda i: PAST_START if i in past else FUTURE_START)
    events = pd.DataFrame({"id": items["item"].to_numpy(dtype=np.int64),
                           "category": items["genres"].map(lambda g: g[0].lower() if g else None),
                           "tags": item_tags(items), "organizer": None, "city": None,
                           "latitude": np.nan, "longitude": np.nan, "price": np.nan,
                           "start_time": pd.to_datetime(start, utc=True), "timezone": "UTC",
                           "title": items["title"]})
    inter = pd.DataFrame({"user_id": task.train["user"].to_numpy(dtype=np.int64),
                          "event_id": task.train["item"].to_numpy(dtype=np.int64),
                          "type": "register",
                          "occurred_at": task.train["ts"].to_numpy(dtype=np.int64) + offset})
    inter = inter.sort_values("occurred_at", kind="stable").reset_index(drop=True)
    return TrainingData(interactions=inter, users=users, events=events,
                        loaded_at=datetime.now(timezone.utc))


def tune_beacon(data: MovieLens, grid: list[dict], seeds: list[int],
                protocols: list[str]) -> dict[str, Any]:
    """Validation NDCG@10 of each override set, per seed and their mean."""
    out: dict[str, Any] = {}
    for protocol in protocols:
        val = SPLITS[protocol](SPLITS[protocol](data.ratings).train, f"{protocol}-validation")
        rows = []
        for overrides in grid:
            t0 = time.perf_counter()
            per_seed = {seed: score_task(val, beacon_in_process(data, val, overrides,
                                                                seed))["ndcg"]
                        for seed in seeds}
            rows.append({"overrides": overrides,
                         "val_ndcg": float(np.mean(list(per_seed.values()))),
                         "per_seed": per_seed, "seconds": round(time.perf_counter() - t0, 1)})
            C.log(f"[tune {protocol}] {overrides}: val NDCG@10 {rows[-1]['val_ndcg']:.4f} "
                  f"(seeds {', '.join(f'{v:.4f}' for v in per_seed.values())}; "
                  f"{rows[-1]['seconds']} s)")
        out[protocol] = rows
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    global TEST_SHARE  # the splits read it; --test-share sets it
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    parser.add_argument("--min-rating", type=float, default=0.0,
                        help="ratings at or above this are positives (default: every rating)")
    parser.add_argument("--models", default="popularity,ease,als,content_knn,lightfm,beacon")
    parser.add_argument("--protocols", default="warm,cold,time")
    parser.add_argument("--quick", action="store_true", help="tiny grids (debugging)")
    parser.add_argument("--tune-beacon", metavar="JSON",
                        help="a JSON list of ModelConfig overrides to score on validation")
    parser.add_argument("--tune-seeds", type=int, default=1,
                        help="with --tune-beacon: score each over this many seeds (default 1)")
    parser.add_argument("--test-share", type=float, default=TEST_SHARE,
                        help="share held out by each protocol: each user's latest (warm), the "
                             "newest items (cold), the latest ratings (time); default 0.2")
    parser.add_argument("--no-evaluate", action="store_true",
                        help="skip `beacon evaluate` on the imported data (it has its own cutoff)")
    parser.add_argument("--out", help="results file (default benchmarks/results/real_data.json)")
    args = parser.parse_args()
    if not 0 < args.test_share < 1:
        parser.error(f"--test-share must be between 0 and 1, got {args.test_share}")
    TEST_SHARE = args.test_share
    seeds = list(range(1, args.seeds + 1))
    began = time.perf_counter()
    data = load(args.min_rating)
    result: dict[str, Any] = {
        "data": {"source": f"{WHEEL} recbole/dataset_example/ml-100k",
                 "min_rating": args.min_rating, "ratings": int(len(data.ratings)),
                 "users": int(data.ratings["user"].nunique()),
                 "items": int(data.ratings["item"].nunique())},
        "seeds": seeds, "k": K, "test_share": TEST_SHARE,
    }
    if args.tune_beacon:
        result["beacon_tuning"] = tune_beacon(data, json.loads(args.tune_beacon),
                                               seeds[:args.tune_seeds],
                                               [p for p in args.protocols.split(",") if p])
        C.write_result("real_data_tuning", result, args.out)
        return
    models = [m for m in args.models.split(",") if m]
    result["protocols"] = {}
    for protocol in [p for p in args.protocols.split(",") if p]:
        task = SPLITS[protocol](data.ratings)
        block: dict[str, Any] = {
            "users": int(len(task.users)), "candidates": int(len(task.candidates)),
            "train_ratings": int(len(task.train)), "test_ratings": int(len(task.test)),
            "models": {}}
        for name in models:
            block["models"][name] = run_beacon(data, protocol, seeds) if name == "beacon" \
                else run_peer(name, data, protocol, seeds, args.quick)
        result["protocols"][protocol] = block
    if "beacon" in models and not args.no_evaluate:
        result["beacon_evaluate"] = run_beacon_evaluate(data, seeds)
    result["headline"] = headline(result)
    result["seconds"] = round(time.perf_counter() - began, 1)
    C.write_result("real_data", result, args.out)
    print(json.dumps(result["headline"], indent=2))


def headline(result: dict) -> dict[str, Any]:
    """The issue's numbers to reach, as regress.py-style headlines (value, better, kind, goal)."""
    out: dict[str, Any] = {}
    protocols = result.get("protocols", {})

    def mean_ndcg(protocol: str, name: str) -> float | None:
        model = protocols.get(protocol, {}).get("models", {}).get(name, {})
        return model["mean"]["ndcg"] if "mean" in model else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 4) if a is not None and b else None

    for protocol, goal_peer, goal in (("warm", None, 1.0), ("cold", "content_knn", 1.1),
                                      ("time", None, None)):
        beacon = mean_ndcg(protocol, "beacon")
        if beacon is None or protocol not in protocols:
            continue
        peers = {n: mean_ndcg(protocol, n) for n in protocols[protocol]["models"]
                 if n != "beacon" and mean_ndcg(protocol, n) is not None}
        peer = goal_peer or (max(peers, key=peers.get) if peers else None)
        out[f"{protocol}_ndcg"] = C.headline(beacon, "higher", "quality")
        out[f"{protocol}_ratio_to_{'best_peer' if goal_peer is None else goal_peer}"] = {
            **C.headline(ratio(beacon, peers.get(peer)), "higher", "quality", goal=goal),
            "peer": peer}
    ev = result.get("beacon_evaluate")
    if ev:
        out["evaluate_ratio_to_popularity"] = C.headline(ev["mean_ratio"], "higher", "quality",
                                                         goal=1.3)
    fits = [fit.get("seconds") for block in protocols.values()
            for fit in block.get("models", {}).get("beacon", {}).get("fits", {}).values()]
    fits += [ev["max_fit_seconds"]] if ev else []
    fits = [s for s in fits if s is not None]
    if fits:  # every fit of the run counts: the protocols' and evaluate's
        out["fit_seconds_max"] = C.headline(max(fits), "lower", "time", goal=30.0, unit="s")
    return out


if __name__ == "__main__":
    main()
