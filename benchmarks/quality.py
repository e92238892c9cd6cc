"""Quality against peers on the same temporal split of the demo data, at two sizes.

    benchmarks/.venv/bin/python benchmarks/quality.py                 # default demo size + 5k users
    benchmarks/.venv/bin/python benchmarks/quality.py --sizes default # one size
    benchmarks/.venv/bin/python benchmarks/quality.py --quick         # tiny grids (debugging)
    benchmarks/.venv/bin/python benchmarks/quality.py --data-seeds 42,1,2 --out ...
                                      # the same comparison on other draws of the demo data

Data: `load_demo_data` with a fixed seed and anchor into an SQLite file under benchmarks/data/,
read back with data_access.training_data.load_training_data.

Split (the one beacon.evaluate.evaluate_holdout uses): cutoff = the time after which 18% of
registrations happen (beacon.evaluate.default_cutoff); train on interactions before it; rank the
events upcoming at the cutoff for every user who registered for one of them after it; hits are
those registrations (register/attend), minus pairs the user had already registered for or
rejected before the cutoff, which are also excluded from the ranking, as serving does.

Tuning: every model (peers included) picks its hyperparameters on a validation split carved from
the training period with the same rule (cutoff at 18% of the training period's registrations),
by NDCG@10; then it is refit on the whole training period with the chosen setting and scored once
on the test period. The test period is never looked at while tuning.

Metrics: beacon.evaluate's hit_rate_at_k, ndcg_at_k, recall_at_k, precision_at_k and coverage,
for every model. "cold": test registrations on events with no interaction at all before the
cutoff; each model ranks only those cold candidates for the users who had such a registration
(the same protocol as beacon.evaluate's cold block). Ties (e.g. items a collaborative model has
never seen) are broken by earliest start, then id, for every model alike.

Models: popularity (positive interactions before the cutoff); implicit's ALS and BPR; EASE and
item-kNN (cosine), written here in numpy/scipy; LightFM (WARP) with the same user and event
feature tokens Beacon uses, when it is installed; Beacon (HybridModel). Peers get Beacon's
interaction weights (positive part). A user a collaborative peer has never seen gets the
popularity ranking (the usual fallback); items it has never seen rank after the ones it has.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from beacon.actions import cli_actor  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

NOW = "2026-11-01T12:00:00+00:00"
SIZES = {
    "default": dict(users=1000, events=500, days=60, seed=42),   # load_demo_data's defaults
    "5k": dict(users=5000, events=2500, days=60, seed=42),
}
K = 10
HIT_TYPES = ("register", "attend")
EXCLUDED_TYPES = ("register", "attend", "reject")


# --------------------------------------------------------------------------- data and split


def load_data(users: int, events: int, days: int, seed: int):
    from beacon.demo import load_demo_data
    from data_access import migrate
    from data_access.training_data import load_training_data

    path = C.DATA / f"quality_{users}u_{events}e_{days}d_s{seed}.sqlite3"
    url = f"sqlite:///{path}"
    if not path.exists():
        C.log(f"generating demo data {users} users / {events} events / {days} days -> {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(url)
        load_demo_data(users=users, events=events, days=days, seed=seed, now=NOW, url=url, actor=cli_actor())
    return load_training_data(url=url)


@dataclass
class Split:
    cutoff: int
    train: Any  # TrainingData with interactions before the cutoff
    cand_ids: np.ndarray  # event DB ids upcoming at the cutoff
    cand_start: np.ndarray  # epoch seconds
    cold: np.ndarray  # bool per candidate: no interaction before the cutoff
    users: np.ndarray  # evaluated user ids
    relevant: list[set]  # per evaluated user: candidate event ids registered after the cutoff
    excluded: list[set]  # per evaluated user: candidate ids registered/rejected before


def make_split(data, cutoff: int) -> Split:
    inter = data.interactions
    types = inter["type"].astype(str).to_numpy()
    times = inter["occurred_at"].to_numpy()
    before = times < cutoff
    events = data.events.reset_index(drop=True)
    start = pd.to_datetime(events["start_time"], utc=True)
    start_s = ((start - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    upcoming = start_s > cutoff
    cand_ids = events["id"].to_numpy(np.int64)[upcoming]
    cand_start = start_s[upcoming]
    order = np.lexsort((cand_ids, cand_start))
    cand_ids, cand_start = cand_ids[order], cand_start[order]
    is_cand = inter["event_id"].isin(set(cand_ids.tolist())).to_numpy()
    after_hits = inter[(~before) & np.isin(types, HIT_TYPES) & is_cand]
    prior = inter[before & np.isin(types, EXCLUDED_TYPES) & is_cand]
    excluded_pairs = set(zip(prior["user_id"].tolist(), prior["event_id"].tolist()))
    relevant: dict[int, set] = {}
    for u, e in zip(after_hits["user_id"].tolist(), after_hits["event_id"].tolist()):
        if (u, e) not in excluded_pairs:
            relevant.setdefault(u, set()).add(e)
    users = np.array(sorted(relevant), dtype=np.int64)
    excluded: dict[int, set] = {}
    for u, e in excluded_pairs:
        if u in relevant:
            excluded.setdefault(u, set()).add(e)
    touched = set(inter.loc[before, "event_id"].tolist())
    cold = np.array([e not in touched for e in cand_ids.tolist()], dtype=bool)
    return Split(cutoff=cutoff, train=data.before(cutoff), cand_ids=cand_ids,
                 cand_start=cand_start, cold=cold, users=users,
                 relevant=[relevant[u] for u in users.tolist()],
                 excluded=[excluded.get(u, set()) for u in users.tolist()])


# --------------------------------------------------------------------------- evaluation


def evaluate(split: Split, scores: np.ndarray, k: int = K) -> dict:
    """Metrics of a [users, candidates] score matrix with beacon.evaluate's functions."""
    from beacon.evaluate import coverage, hit_rate_at_k, ndcg_at_k, precision_at_k, recall_at_k

    col = {e: i for i, e in enumerate(split.cand_ids.tolist())}
    cold_set = set(split.cand_ids[split.cold].tolist())
    cold_cols = np.flatnonzero(split.cold)
    sums = {"hit_rate": 0.0, "ndcg": 0.0, "recall": 0.0, "precision": 0.0}
    cold_sums = dict.fromkeys(sums, 0.0)
    lists, cold_lists = [], []
    hits = cold_hits = cold_users = 0
    ids = split.cand_ids
    for r in range(len(split.users)):
        row = np.asarray(scores[r], dtype=np.float64).copy()
        row[np.isnan(row)] = -np.inf
        for e in split.excluded[r]:
            row[col[e]] = -np.inf
        relevant = split.relevant[r]
        ranked = _top(row, split.cand_start, ids, np.arange(len(ids)), k)
        lists.append(ranked)
        sums["hit_rate"] += hit_rate_at_k(ranked, relevant, k)
        sums["ndcg"] += ndcg_at_k(ranked, relevant, k)
        sums["recall"] += recall_at_k(ranked, relevant, k)
        sums["precision"] += precision_at_k(ranked, relevant, k)
        got = [e for e in ranked if e in relevant]
        hits += len(got)
        cold_hits += sum(1 for e in got if e in cold_set)
        cold_relevant = relevant & cold_set
        if cold_relevant and len(cold_cols):
            cold_users += 1
            ranked_c = _top(row, split.cand_start, ids, cold_cols, k)
            cold_lists.append(ranked_c)
            cold_sums["hit_rate"] += hit_rate_at_k(ranked_c, cold_relevant, k)
            cold_sums["ndcg"] += ndcg_at_k(ranked_c, cold_relevant, k)
            cold_sums["recall"] += recall_at_k(ranked_c, cold_relevant, k)
            cold_sums["precision"] += precision_at_k(ranked_c, cold_relevant, k)
    n = max(len(split.users), 1)
    out = {name: round(value / n, 5) for name, value in sums.items()}
    out["coverage"] = round(coverage(lists, len(ids), k), 5)
    out["hits"] = hits
    out["cold_hit_share"] = round(cold_hits / hits, 4) if hits else 0.0
    cold = {name: round(value / max(cold_users, 1), 5) for name, value in cold_sums.items()}
    cold["coverage"] = round(coverage(cold_lists, len(cold_cols), k), 5) if len(cold_cols) else 0.0
    cold["users"] = cold_users
    cold["candidates"] = int(len(cold_cols))
    out["cold"] = cold
    return out


def _top(row: np.ndarray, start: np.ndarray, ids: np.ndarray, cols: np.ndarray, k: int) -> list:
    """Best k of `cols` by score desc, then earliest start, then id; -inf rows never shown."""
    values = row[cols]
    allowed = cols[values > -np.inf]
    if len(allowed) == 0:
        return []
    v = row[allowed]
    if len(allowed) > 4 * k:
        threshold = np.partition(-v, k - 1)[k - 1]
        keep = -v <= threshold
        allowed, v = allowed[keep], v[keep]
    order = np.lexsort((ids[allowed], start[allowed], -v))
    return ids[allowed[order[:k]]].tolist()


# --------------------------------------------------------------------------- peers


def positive_weights(train, config=None) -> pd.DataFrame:
    """(user_id, event_id, weight): summed positive Beacon type weights per pair."""
    from beacon.config import ModelConfig

    config = config or ModelConfig()
    inter = train.interactions
    types = inter["type"].astype(str)
    weight = types.map(config.type_weights).fillna(0.0).to_numpy(dtype=np.float64)
    frame = pd.DataFrame({"user_id": inter["user_id"].to_numpy(), "event_id":
                          inter["event_id"].to_numpy(), "type": types.to_numpy(), "w": weight})
    frame = frame.drop_duplicates(["user_id", "event_id", "type"])
    pairs = frame.groupby(["user_id", "event_id"], sort=True)["w"].sum().reset_index()
    return pairs[pairs["w"] > 0].reset_index(drop=True)


class Matrix:
    """User x item CSR of the positive weights, with the id maps."""

    def __init__(self, train):
        import scipy.sparse as sp

        pairs = positive_weights(train)
        self.user_ids = np.unique(pairs["user_id"].to_numpy())
        self.item_ids = np.unique(pairs["event_id"].to_numpy())
        self.urow = pd.Series(np.arange(len(self.user_ids)), index=self.user_ids)
        self.icol = pd.Series(np.arange(len(self.item_ids)), index=self.item_ids)
        self.X = sp.csr_matrix(
            (pairs["w"].to_numpy(dtype=np.float32),
             (self.urow[pairs["user_id"]].to_numpy(), self.icol[pairs["event_id"]].to_numpy())),
            shape=(len(self.user_ids), len(self.item_ids)))

    def rows(self, user_ids: np.ndarray) -> np.ndarray:
        return self.urow.reindex(user_ids).fillna(-1).to_numpy(dtype=np.int64)

    def cols(self, item_ids: np.ndarray) -> np.ndarray:
        return self.icol.reindex(item_ids).fillna(-1).to_numpy(dtype=np.int64)


def popularity_scores(train, split: Split) -> np.ndarray:
    from beacon.config import ModelConfig

    positive = [t for t, w in ModelConfig().type_weights.items() if w > 0]
    inter = train.interactions
    counts = inter.loc[inter["type"].astype(str).isin(positive), "event_id"].value_counts()
    return pd.Series(split.cand_ids).map(counts).fillna(0).to_numpy(dtype=np.float64)


def cf_scores(matrix: Matrix, split: Split, item_scores: Callable[[np.ndarray], np.ndarray],
              popularity: np.ndarray) -> np.ndarray:
    """Scores from a collaborative model: item_scores(user rows) -> [n, n_items]; unknown
    items rank last (-1e9 - ties by start), unknown users get popularity."""
    rows = matrix.rows(split.users)
    cols = matrix.cols(split.cand_ids)
    known_c = cols >= 0
    out = np.full((len(split.users), len(split.cand_ids)), -1e9, dtype=np.float64)
    known_u = rows >= 0
    if known_u.any() and known_c.any():
        block = item_scores(rows[known_u])
        sub = out[known_u]
        sub[:, known_c] = block[:, cols[known_c]]
        out[known_u] = sub
    out[~known_u] = popularity
    return out


def fit_als(train, split, params, popularity):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    m = Matrix(train)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=params["factors"], regularization=params["reg"],
                                        alpha=params["alpha"], iterations=params["iterations"],
                                        random_state=0, num_threads=1)
        model.fit(m.X, show_progress=False)
    U, V = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return cf_scores(m, split, lambda r: U[r] @ V.T, popularity)


def fit_bpr(train, split, params, popularity):
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    m = Matrix(train)
    X = m.X.copy()
    X.data[:] = 1.0
    model = BayesianPersonalizedRanking(factors=params["factors"], learning_rate=params["lr"],
                                        regularization=params["reg"],
                                        iterations=params["iterations"], random_state=0,
                                        num_threads=1)
    with threadpool_limits(1, "blas"):
        model.fit(X, show_progress=False)
    U, V = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return cf_scores(m, split, lambda r: U[r] @ V.T, popularity)


def ease_weights(X, lam: float) -> np.ndarray:
    """EASE's closed-form item-item weights for a user x item matrix (zero diagonal)."""
    G = (X.T @ X).toarray()
    G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G)
    B = -P / np.diag(P)[None, :]
    B[np.diag_indices_from(B)] = 0.0
    return B


def fit_ease(train, split, params, popularity):
    m = Matrix(train)
    X = m.X.astype(np.float64)
    B = ease_weights(X, params["lambda"])
    return cf_scores(m, split, lambda r: np.asarray(X[r] @ B), popularity)


def fit_knn(train, split, params, popularity):
    m = Matrix(train)
    X = m.X.astype(np.float64)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0))).ravel()
    norms[norms == 0] = 1.0
    S = (X.T @ X).toarray() / np.outer(norms, norms)
    np.fill_diagonal(S, 0.0)
    k = params["neighbours"]
    if k and k < S.shape[0]:
        cut = np.partition(S, -k, axis=0)[-k]
        S[S < cut[None, :]] = 0.0
    return cf_scores(m, split, lambda r: np.asarray(X[r] @ S), popularity)


def _features(table: pd.DataFrame, n_rows: int, identity_rows: np.ndarray):
    """CSR [n_rows, n_rows + n_tokens]: identity (only for rows seen in training) + tokens,
    each row normalized to sum 1 (LightFM's usual practice)."""
    import scipy.sparse as sp

    tokens = pd.Index(sorted(set(table["token"].tolist())))
    rows = np.concatenate([identity_rows, table["row"].to_numpy(dtype=np.int64)])
    cols = np.concatenate([identity_rows, n_rows + tokens.get_indexer(table["token"])])
    data = np.ones(len(rows), dtype=np.float32)
    F = sp.csr_matrix((data, (rows, cols)), shape=(n_rows, n_rows + len(tokens)))
    sums = np.asarray(F.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.diags(1.0 / sums).dot(F).tocsr().astype(np.float32)


def fit_lightfm(train, split, params, popularity):
    import scipy.sparse as sp
    from lightfm import LightFM

    from beacon.features import event_token_table, user_token_table

    users = train.users.reset_index(drop=True)
    events = train.events.reset_index(drop=True)
    pairs = positive_weights(train)
    urow = pd.Series(np.arange(len(users)), index=users["id"].to_numpy())
    erow = pd.Series(np.arange(len(events)), index=events["id"].to_numpy())
    pairs = pairs[pairs["user_id"].isin(urow.index) & pairs["event_id"].isin(erow.index)]
    r = urow[pairs["user_id"]].to_numpy()
    c = erow[pairs["event_id"]].to_numpy()
    shape = (len(users), len(events))
    interactions = sp.coo_matrix((np.ones(len(r), np.float32), (r, c)), shape=shape)
    weights = sp.coo_matrix((pairs["w"].to_numpy(np.float32), (r, c)), shape=shape)
    uf = _features(user_token_table(users), len(users), np.unique(r))
    itf = _features(event_token_table(events), len(events), np.unique(c))
    model = LightFM(no_components=params["components"], loss="warp",
                    learning_rate=params["lr"], item_alpha=params["alpha"],
                    user_alpha=params["alpha"], random_state=0)
    model.fit(interactions, user_features=uf, item_features=itf, sample_weight=weights,
              epochs=params["epochs"], num_threads=1)
    ub, ue = model.get_user_representations(uf)
    ib, ie = model.get_item_representations(itf)
    ur = urow.reindex(split.users).to_numpy()
    ec = erow.reindex(split.cand_ids).to_numpy()
    return ue[ur] @ ie[ec].T + ib[ec][None, :] + ub[ur][:, None]


def fit_beacon(train, split, params, popularity):
    from beacon.config import ModelConfig
    from beacon.model import HybridModel

    config = ModelConfig().with_overrides(**params)
    model = HybridModel.fit(train, config)
    events = train.events.set_index("id").loc[split.cand_ids].reset_index()
    matrix = model.event_matrix(events)
    users = train.users.set_index("id").loc[split.users].reset_index()
    if hasattr(model, "score_users"):  # everything serving scores with (id, tokens, place term)
        scores = model.score_users(users, matrix)
        if all(getattr(model, part, None) is None
               for part in ("coattendance", "content", "trend")):
            return scores
        # serving blends the co-attendance, content and trend components with the events
        # each user registered for
        from beacon.model.coattendance import newest_first

        inter = train.interactions
        registered = inter[inter["type"].astype(str).isin(("register", "attend"))]
        histories = newest_first(registered, split.users, "user_id", "event_id", "occurred_at")
        scores = model.blend_users(scores, histories, np.asarray(split.cand_ids))
        if hasattr(model, "blend_content"):
            scores = model.blend_content(scores, histories, matrix)
        if hasattr(model, "blend_trend"):
            scores = model.blend_trend(scores, np.array([len(h) > 0 for h in histories]),
                                       np.asarray(split.cand_ids))
        return scores
    vectors = model.user_matrix(users)
    return vectors @ matrix.vectors.T + matrix.bias[None, :]


def fit_popularity(train, split, params, popularity):
    return np.broadcast_to(popularity, (len(split.users), len(popularity))).copy()


GRIDS: dict[str, tuple[Callable, list[dict]]] = {
    "popularity": (fit_popularity, [{}]),
    "als": (fit_als, [dict(factors=f, reg=r, alpha=a, iterations=15)
                      for f in (32, 64) for r in (0.05,) for a in (0.5, 2.0, 10.0)]),
    "bpr": (fit_bpr, [dict(factors=f, lr=lr, reg=0.01, iterations=100)
                      for f in (32, 64) for lr in (0.05, 0.1)]),
    "ease": (fit_ease, [{"lambda": v} for v in (2.0, 10.0, 50.0, 200.0, 1000.0)]),
    "item_knn": (fit_knn, [{"neighbours": k} for k in (20, 100, 0)]),
    "lightfm": (fit_lightfm, [dict(components=c, lr=0.05, alpha=1e-6, epochs=e)
                              for c in (32, 64) for e in (20, 40, 80)]),
    "beacon": (fit_beacon, [{}, {"learning_rate": 0.02, "validation_split": "time",
                                 "negatives": 16},
                            {"validation_split": "time"}, {"negative_sampling": "touched"},
                            {"negative_sampling": "alive"}, {"dim": 64}, {"id_dropout": 0.5},
                            {"loss": "bpr"},
                            {"negatives": 16}, {"learning_rate": 0.01},
                            {"learning_rate": 0.01, "id_dropout": 0.5},
                            {"learning_rate": 0.01, "negatives": 64},
                            {"learning_rate": 0.01, "dim": 64}]),
}
QUICK = {"als": 1, "bpr": 1, "ease": 2, "item_knn": 1, "lightfm": 1, "beacon": 2}


def run_size(name: str, spec: dict, models: list[str], quick: bool) -> dict:
    from beacon.evaluate import default_cutoff

    began = time.perf_counter()
    data = load_data(**spec)
    test_cut = default_cutoff(data.interactions)
    test = make_split(data, test_cut)
    val_cut = default_cutoff(test.train.interactions)
    val = make_split(test.train, val_cut)
    iso = lambda s: pd.Timestamp(s, unit="s", tz="UTC").isoformat()  # noqa: E731
    out: dict[str, Any] = {
        "data": {**spec, "now": NOW, "interactions": int(len(data.interactions)),
                 "users": int(len(data.users)), "events": int(len(data.events))},
        "test": {"cutoff": iso(test_cut), "train_interactions": int(len(test.train.interactions)),
                 "users_evaluated": int(len(test.users)), "candidates": int(len(test.cand_ids)),
                 "cold_candidates": int(test.cold.sum()),
                 "relevant": int(sum(len(r) for r in test.relevant)),
                 "cold_relevant_share": round(sum(
                     len(r & set(test.cand_ids[test.cold].tolist())) for r in test.relevant)
                     / max(1, sum(len(r) for r in test.relevant)), 4)},
        "validation": {"cutoff": iso(val_cut),
                       "train_interactions": int(len(val.train.interactions)),
                       "users_evaluated": int(len(val.users)),
                       "candidates": int(len(val.cand_ids))},
        "models": {},
    }
    C.log(f"[{name}] {out['data']['interactions']:,} interactions; test {out['test']}")
    val_pop = popularity_scores(val.train, val)
    test_pop = popularity_scores(test.train, test)
    for model_name in models:
        if model_name == "lightfm":
            try:
                import lightfm  # noqa: F401
            except ImportError:
                out["models"]["lightfm"] = {"skipped": "lightfm is not installed"}
                continue
        fit, grid = GRIDS[model_name]
        if quick:
            grid = grid[: QUICK.get(model_name, 1)]
        tried = []
        for params in grid:
            t0 = time.perf_counter()
            scores = fit(val.train, val, params, val_pop)
            metrics = evaluate(val, scores)
            tried.append({"params": params, "val_ndcg": metrics["ndcg"],
                          "val_hit_rate": metrics["hit_rate"],
                          "seconds": round(time.perf_counter() - t0, 2)})
            C.log(f"[{name}] {model_name} {params}: val NDCG@10 {metrics['ndcg']:.4f}")
        best = max(tried, key=lambda t: t["val_ndcg"])
        t0 = time.perf_counter()
        scores = fit(test.train, test, best["params"], test_pop)
        fit_s = time.perf_counter() - t0
        metrics = evaluate(test, scores)
        out["models"][model_name] = {"best_params": best["params"], "grid": tried,
                                     "test": metrics, "fit_seconds": round(fit_s, 2)}
        C.log(f"[{name}] {model_name} TEST: NDCG@10 {metrics['ndcg']:.4f}, HR@10 "
              f"{metrics['hit_rate']:.4f}, cold NDCG@10 {metrics['cold']['ndcg']:.4f}")
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def crosscheck() -> None:
    """Beacon's default config through this harness and through beacon.evaluate.evaluate_holdout
    on the default demo data: the two must agree (same split, same metrics)."""
    from beacon.evaluate import default_cutoff, evaluate_holdout

    data = load_data(**SIZES["default"])
    engine = evaluate_holdout(data, k=K)
    split = make_split(data, default_cutoff(data.interactions))
    ours = evaluate(split, fit_beacon(split.train, split, {}, popularity_scores(split.train,
                                                                                split)))
    print(f"evaluate_holdout: NDCG@10 {engine['beacon']['ndcg']:.5f}, HR@10 "
          f"{engine['beacon']['hit_rate']:.5f}, cold NDCG@10 {engine['cold']['beacon']['ndcg']:.5f}"
          f", users {engine['users_evaluated']}, candidates {engine['candidates']}")
    print(f"quality.py:       NDCG@10 {ours['ndcg']:.5f}, HR@10 {ours['hit_rate']:.5f}, cold "
          f"NDCG@10 {ours['cold']['ndcg']:.5f}, users {len(split.users)}, candidates "
          f"{len(split.cand_ids)}")


def sizes_to_run(sizes: list[str], seeds: list[str]) -> list[tuple[str, dict]]:
    """(name, data spec) per size and seed: SIZE for the size's own seed, SIZE_sSEED else."""
    out = []
    for seed in map(int, seeds):
        for size in sizes:
            spec = {**SIZES[size], "seed": seed}
            out.append((size if seed == SIZES[size]["seed"] else f"{size}_s{seed}", spec))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="default,5k")
    parser.add_argument("--models", default=",".join(GRIDS))
    parser.add_argument("--quick", action="store_true", help="first 1-2 grid points only")
    parser.add_argument("--crosscheck", action="store_true",
                        help="only compare this harness with evaluate_holdout (default size)")
    parser.add_argument("--merge", action="store_true",
                        help="replace only these sizes/models in the existing results file")
    parser.add_argument("--data-seeds", default="42",
                        help="demo data seeds; a size drawn with another seed than 42 is "
                             "reported as SIZE_sSEED")
    parser.add_argument("--out")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.crosscheck:
        crosscheck()
        return
    out_path = Path(args.out) if args.out else (
        C.DEBUG_RESULTS / "quality_quick.json" if args.quick else C.RESULTS / "quality.json")
    results = {}
    if args.merge and out_path.exists():
        import json

        results = json.loads(out_path.read_text())["sizes"]
    for size, spec in sizes_to_run(args.sizes.split(","), args.data_seeds.split(",")):
        fresh = run_size(size, spec, args.models.split(","), args.quick)
        if args.merge and size in results:
            results[size]["models"].update(fresh["models"])
        else:
            results[size] = fresh
    headline = {}
    for size, result in results.items():
        for model_name, block in result["models"].items():
            if "test" not in block:
                continue
            headline[f"{size}_{model_name}_ndcg"] = C.headline(block["test"]["ndcg"], "higher",
                                                               "quality")
            headline[f"{size}_{model_name}_cold_ndcg"] = C.headline(
                block["test"]["cold"]["ndcg"], "higher", "quality")
    C.write_result("quality", {"k": K, "sizes": results, "headline": headline}, out=str(out_path))


if __name__ == "__main__":
    main()
