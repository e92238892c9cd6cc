"""Training: seconds per epoch and to convergence at 100k, 1M and 5M interactions on CPU, peak
memory; the smart-retrain skip check (fingerprint) on the scale data; per-user fold-in.

    benchmarks/.venv/bin/python benchmarks/training.py            # scale data (run scale_data.py first)
    benchmarks/.venv/bin/python benchmarks/training.py --small    # whatever small data is loaded

Sizes are taken from the scale dataset by sampling whole users (every interaction of a random set
of users) until the size is reached; all events stay, as on a smaller platform. The full-size
model is then stored as the active global version of the scale databases (Postgres and, when
present, SQLite) with the fingerprint the training service would give it, so that model_io.py,
serving.py and console.py find an active model and the skip check answers "data unchanged".
No GPU is used or available on the project's machines: every number here is CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402
from beacon.actions import cli_actor  # noqa: E402


def subset(data, target: int, seed: int = 0):
    """Every interaction of a random set of users, about `target` rows in all."""
    import numpy as np

    inter = data.interactions
    if target >= len(inter):
        return data
    counts = inter["user_id"].value_counts()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(counts))
    users = counts.index.to_numpy()[order]
    cumulative = np.cumsum(counts.to_numpy()[order])
    take = int(np.searchsorted(cumulative, target)) + 1
    chosen = set(users[:take].tolist())
    keep = inter["user_id"].isin(chosen).to_numpy()
    return dataclasses.replace(
        data,
        interactions=inter[keep].reset_index(drop=True),
        users=data.users[data.users["id"].isin(chosen)].reset_index(drop=True),
    )


def fit_one(data, config, label: str) -> tuple[dict, object]:
    from beacon.model import HybridModel

    epochs: list[dict] = []
    C.reset_peak_rss()
    baseline = C.rss_mib()
    began = time.perf_counter()

    def on_epoch(report) -> None:
        epochs.append({"epoch": report.epoch, "phase": report.phase,
                       "seconds": round(report.seconds, 3), "loss": round(report.loss, 5),
                       "val_ndcg": None if report.val_metric is None else
                       round(report.val_metric, 5),
                       "at": round(time.perf_counter() - began, 2)})
        C.log(f"  {label} {report.phase} epoch {report.epoch}/{report.total_epochs}: "
              f"{report.seconds:.2f} s, loss {report.loss:.4f}, val {report.val_metric}")

    model = HybridModel.fit(data, config, on_epoch)
    total = time.perf_counter() - began
    train = [e for e in epochs if e["phase"] == "train"]
    retry = [e for e in epochs if e["phase"] == "retry"]  # a capped first run's second try
    refit = [e for e in epochs if e["phase"] == "refit"]
    best_epoch = model.validation.get("best_epoch")
    retried = model.validation.get("learning_rate_retry")
    kept = retry if retried and retried["kept"] == "retry" else train
    best_at = next((e["at"] for e in kept if e["epoch"] == best_epoch), None)
    result = {
        "interactions": int(len(data.interactions)),
        "users": int(len(data.users)),
        "events": int(len(data.events)),
        "pairs": model.counts.get("pairs"),
        "training_rows": model.counts.get("interactions"),
        "fit_seconds": round(total, 2),
        "train_epochs": len(train),
        "best_epoch": best_epoch,
        "best_val_ndcg": model.validation.get("best_ndcg"),
        "retry_epochs": len(retry),
        "learning_rate_retry": retried,
        "refit_epochs": len(refit),
        "seconds_per_epoch_train_median": round(statistics.median(
            [e["seconds"] for e in train]), 3) if train else None,
        "seconds_per_epoch_refit_median": round(statistics.median(
            [e["seconds"] for e in refit]), 3) if refit else None,
        "seconds_to_best_epoch": best_at,
        "peak_rss_mib": round(C.peak_rss_mib(), 1),
        "rss_before_fit_mib": round(baseline, 1),
        "peak_rss_increase_mib": round(C.peak_rss_mib() - baseline, 1),
        "epochs": epochs,
    }
    C.log(f"{label}: {result['interactions']:,} interactions, fit {total:.1f} s "
          f"({len(train)} train + {len(retry)} retry + {len(refit)} refit epochs), peak +{result['peak_rss_increase_mib']} MiB")
    return result, model


def profile_epoch(data, config) -> list[str]:
    """Where one training epoch's time goes (pyinstrument): one epoch on all pairs, no
    validation (patience 0), on the given data."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return ["pyinstrument not installed"]
    from beacon.model import HybridModel

    quick = config.with_overrides(epochs=1, patience=0)
    profiler = Profiler(interval=0.002)
    profiler.start()
    HybridModel.fit(data, quick)
    profiler.stop()
    return profiler.output_text(unicode=False, color=False).splitlines()[:70]


def store_active(model, url: str, config, seconds: float) -> int:
    """Store and activate `model` in the database at `url`, fingerprinted as the service does."""
    C.use_database(url)
    from beacon import training, versions
    from data_access import models_store

    fingerprint = training.training_fingerprint(config)
    blob = model.to_bytes()
    version = models_store.insert_version(
        scope="global", blob=blob, model_type="hybrid", fingerprint=fingerprint.digest,
        hyperparameters=config.to_dict(), counts=dict(model.counts), training_seconds=seconds,
        loss_history=list(model.loss_history), metrics={}, created_by="benchmark")
    models_store.activate(version)
    versions.clear_cache()
    C.log(f"stored model version {version} ({len(blob) / 2**20:.1f} MiB) as active in {url}")
    return version


def skip_check(url: str, config, repeat: int = 7) -> dict:
    """training.decide(): the fingerprint computed in the database + the active version."""
    C.use_database(url)
    from beacon import training
    from data_access import runs

    first_s, decision = C.timed(lambda: training.decide(config))
    median, times = C.median_time(lambda: training.decide(config), repeat=repeat, warmup=0)
    types = sorted(t for t, w in config.type_weights.items() if w)
    fp_median, fp_times = C.median_time(lambda: runs.data_fingerprint(config.to_dict(), types),
                                        repeat=repeat, warmup=0)
    out = {
        "decide_first_call_seconds": round(first_s, 4),
        "decide_median_seconds": round(median, 4),
        "decide_seconds": [round(t, 4) for t in times],
        "fingerprint_median_seconds": round(fp_median, 4),
        "train": decision.train,
        "reason": decision.reason,
    }
    if url.startswith("postgresql"):
        out["plan"] = _explain_fingerprint(url, types)
    C.log(f"skip check on {url.split('@')[-1]}: decide median {median * 1000:.1f} ms "
          f"({decision.reason})")
    return out


def _explain_fingerprint(url: str, types: list[str]) -> list[str]:
    from sqlalchemy import text

    from data_access.db import get_engine

    in_list = ", ".join(f"'{t}'" for t in types)
    sql = ("EXPLAIN (ANALYZE, BUFFERS) SELECT type, count(*), max(occurred_at) FROM interactions "
           f"WHERE type IN ({in_list}) GROUP BY type")
    with get_engine(url).connect() as connection:
        return [row[0] for row in connection.execute(text(sql))]


def fold_in_bench(url: str, n_users: int = 30, service_users: int = 10) -> dict:
    """Per-user fold-in: the compute alone (model.fold_in on a loaded history) and the whole
    service call (training.train(scope='user'): reads, fold-in, store, activate)."""
    import numpy as np
    from sqlalchemy import text

    C.use_database(url)
    from beacon import training, versions
    from beacon.features import UserContext
    from data_access.db import get_engine
    from data_access.training_data import load_user_context_row

    loaded = versions.active_global()
    if loaded is None:
        return {"error": "no active model"}
    with get_engine(url).connect() as connection:
        rows = connection.execute(text(
            "SELECT u.id, u.email FROM users u JOIN (SELECT user_id, count(*) AS n FROM "
            "interactions WHERE type <> 'impression' GROUP BY user_id HAVING count(*) >= 5) c "
            "ON c.user_id = u.id ORDER BY u.id LIMIT 2000")).all()
    rng = np.random.default_rng(1)
    picks = [rows[i] for i in rng.choice(len(rows), size=min(n_users, len(rows)), replace=False)]
    history_s, compute_s, lengths = [], [], []
    for user_id, _email in picks:
        context = UserContext.from_row(load_user_context_row(int(user_id)))
        h_s, history = C.timed(lambda: training._user_history_frame(int(user_id)))
        c_s, _ = C.timed(lambda: loaded.model.fold_in(context, history))
        history_s.append(h_s)
        compute_s.append(c_s)
        lengths.append(len(history))
    service_s, statuses = [], []
    for user_id, email in picks[:service_users]:
        s, result = C.timed(lambda: training.train(scope="user", user=email, trigger="cli",
                                                   actor=cli_actor()))
        service_s.append(s)
        statuses.append(result.status)
    out = {
        "users": len(picks),
        "history_rows_median": statistics.median(lengths) if lengths else None,
        "compute": C.summary_ms(compute_s),
        "history_read": C.summary_ms(history_s),
        "service_call": C.summary_ms(service_s) if service_s else None,
        "service_statuses": statuses,
    }
    C.log(f"fold-in: compute p50 {out['compute']['p50_ms']} ms, history read p50 "
          f"{out['history_read']['p50_ms']} ms, service p50 "
          f"{out['service_call']['p50_ms'] if service_s else None} ms")
    return out


def fold_in_headline(fold: dict) -> dict:
    return {
        "fold_in_compute_p50_ms": C.headline((fold.get("compute") or {}).get("p50_ms"), "lower",
                                             "time", goal=20, unit="ms"),
        "fold_in_service_p50_ms": C.headline((fold.get("service_call") or {}).get("p50_ms"),
                                             "lower", "time", goal=20, unit="ms"),
    }


def only_fold_in(url: str, out: str | None, calls: int) -> None:
    """Rerun the fold-in part alone and merge it into the stored training result: the fits
    and skip checks stay as they were; the fold-in numbers carry their own command, time and
    machine (load average, commit)."""
    path = Path(out) if out else C.RESULTS / "training.json"
    fold = fold_in_bench(url, n_users=max(30, calls), service_users=calls)
    command = C.command_line()
    fold.update(command=command, finished_at=datetime.now(timezone.utc).isoformat(
        timespec="seconds"), machine=C.machine())
    doc = json.loads(path.read_text()) if path.exists() else {
        "benchmark": "training", "command": command, "finished_at": fold["finished_at"],
        "machine": fold["machine"], "headline": {}}
    doc["fold_in"] = fold
    for key, value in fold_in_headline(fold).items():
        doc["headline"][key] = {**value, "command": command}
    path.write_text(json.dumps(doc, indent=2, default=C._default) + "\n")
    C.log(f"updated the fold-in part of {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=C.PG_SCALE_URL, help="database with the scale data")
    parser.add_argument("--sizes", default="100000,1000000,full",
                        help="interaction counts to train on, comma separated ('full' = all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="ModelConfig.threads (default: the config's default)")
    parser.add_argument("--no-store", action="store_true", help="do not store the model")
    parser.add_argument("--no-profile", action="store_true", help="skip the one-epoch profile")
    parser.add_argument("--full-overrides", default=None,
                        help="JSON of ModelConfig overrides for the 'full' size only, e.g. "
                             "'{\"patience\": 0, \"epochs\": 2}' (no early-stopping validator)")
    parser.add_argument("--small", action="store_true", help="sizes 20k,50k,full (debugging)")
    parser.add_argument("--only", choices=("foldin",), default=None,
                        help="foldin: only the per-user fold-in, against the active model "
                             "already stored in --url; updates the fold-in part of the "
                             "stored result (--out, default results/training.json)")
    parser.add_argument("--fold-in-calls", type=int, default=10,
                        help="timed service calls train(scope='user') (default 10)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.only == "foldin":
        only_fold_in(args.url, args.out, args.fold_in_calls)
        return
    sizes = "20000,50000,full" if args.small else args.sizes

    C.use_database(args.url)
    import torch

    from beacon.config import ModelConfig
    from data_access.training_data import load_training_data

    config = ModelConfig() if args.threads is None else ModelConfig(threads=args.threads)
    C.log(f"loading training data from {args.url.split('@')[-1]}")
    load_s, data = C.timed(lambda: load_training_data(url=args.url))
    C.log(f"loaded {len(data.interactions):,} interactions in {load_s:.1f} s")
    fits = {}
    profile: list[str] = []
    full_model, full_seconds = None, None
    for size in sizes.split(","):
        target = len(data.interactions) if size == "full" else int(size)
        part = subset(data, target)
        label = f"{len(part.interactions):,}"
        size_config = config
        if size == "full" and args.full_overrides:
            size_config = config.with_overrides(**json.loads(args.full_overrides))
        fits[size], model = fit_one(part, size_config, label)
        if size_config is not config:
            fits[size]["config_overrides"] = json.loads(args.full_overrides)
        if size == sizes.split(",")[1 if "," in sizes else 0] and not args.no_profile:
            C.log(f"profiling one epoch at {label} interactions")
            profile = profile_epoch(part, config)
        if size == "full":
            full_model, full_seconds = model, fits[size]["fit_seconds"]
        del model, part

    stored = {}
    skip = {}
    if full_model is not None and not args.no_store:
        stored["postgres" if args.url.startswith("postgresql") else "sqlite"] = store_active(
            full_model, args.url, config, full_seconds)
        if args.url.startswith("postgresql") and C.SQLITE_SCALE_PATH.exists():
            stored["sqlite"] = store_active(full_model, C.SQLITE_SCALE_URL, config, full_seconds)
    for name, url in (("postgres", args.url), ("sqlite", C.SQLITE_SCALE_URL)):
        if name == "sqlite" and not C.SQLITE_SCALE_PATH.exists():
            continue
        skip[name] = skip_check(url, config)
    fold = fold_in_bench(args.url, service_users=args.fold_in_calls) \
        if full_model is not None else {}

    one_m = fits.get("1000000", {})
    full = fits.get("full", {})
    pg_skip = skip.get("postgres", {})
    headline = {
        "fit_seconds_1M": C.headline(one_m.get("fit_seconds"), "lower", "time", goal=30, unit="s"),
        "fit_seconds_full": C.headline(full.get("fit_seconds"), "lower", "time", unit="s"),
        "epoch_seconds_full": C.headline(full.get("seconds_per_epoch_refit_median"), "lower",
                                         "time", unit="s"),
        "skip_check_seconds_postgres": C.headline(pg_skip.get("decide_median_seconds"), "lower",
                                                  "time", goal=0.2, unit="s"),
        **fold_in_headline(fold),
    }
    C.write_result("training", {
        "database": args.url.split("@")[-1],
        "device": "cpu (no GPU on this machine or lent to this task)",
        "torch_threads_during_fit": config.threads or torch.get_num_threads(),
        "config": config.to_dict(),
        "load_training_data_seconds": round(load_s, 2),
        "fits": fits, "epoch_profile_second_size": profile, "stored_versions": stored, "skip_check": skip, "fold_in": fold,
        "headline": headline,
    }, out=args.out or (str(C.DEBUG_RESULTS / "training_small.json") if args.small else None))


if __name__ == "__main__":
    main()
