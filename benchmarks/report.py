"""Writes BENCHMARKS.md from the stored results (benchmarks/results/*.json) and the hand-written
notes in benchmarks/notes.md (findings, what met its goal, what is left).

    benchmarks/.venv/bin/python benchmarks/report.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402


def load(name: str) -> dict | None:
    path = C.RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def goal_cell(h: dict | None) -> str:
    if not h or "goal" not in h:
        return ""
    mark = "met" if h.get("meets_goal") else "**not met**"
    op = "≤" if h.get("better") == "lower" else "≥"
    return f"{op} {fmt(h['goal'])} {h.get('unit', '')}: {mark}"


def cmd(doc: dict) -> str:
    return f"`{doc['command']}` ({doc['finished_at']})"


GOALS = [  # (benchmark, headline key, what)
    ("import_csv_postgres", "first_import_seconds", "CSV import of 1M interactions into Postgres"),
    ("serving", "p99_ms_filters_on_largest", "recommend in memory, 100k candidates, filters on: p99"),
    ("serving", "ratio_p99_to_floor_largest", "... within 3x of the numpy floor (p99 / floor p99)"),
    ("serving", "ratio_p50_to_floor_largest", "... within 3x of the numpy floor (p50 / floor p50)"),
    ("serving", "e2e_p50_ms_filters_off", "end to end on Postgres at scale, filters off: p50"),
    ("serving", "e2e_p50_ms_filters_on", "end to end on Postgres at scale, filters on: p50"),
    ("model_io", "cold_load_seconds_postgres", "cold load of the active model from Postgres"),
    ("model_io", "cold_load_seconds_sqlite", "cold load of the active model from SQLite"),
    ("training", "fit_seconds_1M", "1M interactions to convergence on CPU"),
    ("training", "skip_check_seconds_postgres", "smart-retrain skip check, 5M interactions, Postgres"),
    ("training", "fold_in_compute_p50_ms", "per-user fold-in, the compute (p50)"),
    ("training", "fold_in_service_p50_ms", "per-user fold-in, the whole service call (p50)"),
    ("metrics_rollup", "online_metrics_rollup_seconds",
     "Metrics page service call (30 days) through the daily rollup, Postgres at scale"),
    ("real_data", "warm_ratio_to_best_peer", "MovieLens warm NDCG@10 / the best peer's"),
    ("real_data", "cold_ratio_to_content_knn", "MovieLens cold-item NDCG@10 / content kNN's"),
    ("real_data", "evaluate_ratio_to_popularity", "`evaluate` on MovieLens: Beacon / popularity"),
    ("real_data", "fit_seconds_max", "training on MovieLens-100k (slowest fit: protocols and evaluate)"),
]


def goals_table(docs: dict) -> str:
    rows = ["| goal | measured | target | command |", "| --- | ---: | --- | --- |"]
    for name, key, what in GOALS:
        doc = docs.get(name)
        h = (doc or {}).get("headline", {}).get(key)
        if not h:
            rows.append(f"| {what} | not run | | |")
            continue
        rows.append(f"| {what} | {fmt(h.get('value'))} {h.get('unit', '')} | {goal_cell(h)} | "
                     f"`{h.get('command', doc['command'])}` |")
    console = docs.get("console")
    if console:
        for title, page in console["pages"].items():
            h = console["headline"].get(f"cold_seconds_{title.lower().replace(' ', '_')}")
            rows.append(f"| console page {title}, cold cache, Postgres at scale | "
                        f"{fmt(page['cold_seconds_median'])} s | {goal_cell(h)} | "
                        f"`{console['command']}` |")
    return "\n".join(rows)


def machine_section(docs: list[dict]) -> list[str]:
    with_blas = [d for d in docs if d and d.get("machine", {}).get("blas")
                 and d.get("machine", {}).get("numpy_version")]
    m = (with_blas or docs or [{}])[0].get("machine", {})
    lines = ["## The machine", ""]
    lines.append(f"- CPU: {m.get('cpu', '?')}, {m.get('cores', '?')} cores visible, "
                 f"{m.get('memory_gib', '?')} GiB RAM; {m.get('os', '')}")
    lines.append(f"- Python {m.get('python')}, torch {m.get('torch_version')} (CPU build), "
                 f"numpy {m.get('numpy_version', '?')}, BLAS: "
                 + ", ".join(f"{b.get('internal_api')} {b.get('version') or ''} "
                             f"({b.get('num_threads')} threads)" for b in m.get("blas", [])))
    pg = next((d["loads"]["postgres"].get("postgres_version") for d in docs
               if d and d.get("benchmark") == "scale_data" and "postgres" in d.get("loads", {})),
              None)
    lines.append(f"- PostgreSQL {pg or '15'} on the same machine (Debian defaults: "
                 "shared_buffers 128MB, work_mem 4MB); SQLite through Python's sqlite3 (WAL).")
    lines.append("- **No GPU**: none on this machine and none lent to this task; every number "
                 "is CPU.")
    lines.append("- The machine is shared (2 cores, ~7 engineers until 06:15 UTC). Timed runs "
                 "were made after that, one run each; the load average at the start of each "
                 "run is in its JSON (`machine.load_average_at_start`). Medians and ratios come "
                 "from the same run.")
    lines.append("")
    return lines


def scale_section(doc: dict | None) -> list[str]:
    if not doc:
        return ["## 1. Scale data", "", "_not run_", ""]
    lines = ["## 1. Scale data", "", cmd(doc), ""]
    p = doc["params"]
    lines.append(f"Demo generator at {p['users']:,} users, {p['events']:,} events, {p['days']} "
                 f"days of history (seed {p['seed']}); half of the events upcoming.")
    lines.append("")
    lines.append("| database | interactions | load (s) | rows/s | size (MiB) | loader peak RSS (MiB) | command |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for target, r in doc["loads"].items():
        s = r["summary"]
        lines.append(f"| {target} | {s['interactions']:,} | {fmt(r['load_seconds'], 1)} | "
                     f"{fmt(s['interactions_per_second'], 0)} | {fmt(r['size_mib'], 1)} | "
                     f"{fmt(r['peak_rss_mib'], 1)} | `{r.get('command', doc['command'])}` |")
    lines.append("")
    return lines


def serving_section(doc: dict | None) -> list[str]:
    if not doc:
        return ["## 2. Serving", "", "_not run_", ""]
    lines = ["## 2. Serving", "", cmd(doc), ""]
    lines.append(f"Model version {doc['model_version']} (dim {doc['model_dim']}) trained on the "
                 f"scale data; {doc['users_timed']} users; top {doc['top']}. Times per request "
                 "in ms of the real `recommend()` on in-memory caches (candidate snapshot, event "
                 "matrix, model, user history), reasons stubbed; \"with reasons\" adds the "
                 "per-item explain of the 10 shown. The floor is `V @ u` + argpartition top-10 on "
                 "the same matrix; ratio = request percentile / floor percentile.")
    lines.append("")
    lines.append("| candidates | filters | p50 | p99 | floor p50 | floor p99 | ratio p50 | ratio p99 | "
                 "passing | filters / score / top-k (mean ms) | with reasons p50 / p99 | rps 1 thread | rps 2 threads |")
    lines.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    for n, block in doc["in_memory"].items():
        for mode in ("filters_off", "filters_on"):
            s = block[mode]
            parts = s.get("parts_mean_ms") or {}
            lines.append(
                f"| {int(n):,} | {mode.split('_')[1]} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | "
                f"{fmt(block['floor']['p50_ms'])} | {fmt(block['floor']['p99_ms'])} | "
                f"{fmt(s['ratio_p50_to_floor_p50'], 2)} | {fmt(s['ratio_p99_to_floor_p99'], 2)} | "
                f"{s['candidates_passing_median']:,} | {fmt(parts.get('filters'))} / "
                f"{fmt(parts.get('score'))} / {fmt(parts.get('top_k'))} | "
                f"{fmt(s.get('with_reasons', {}).get('p50_ms'))} / "
                f"{fmt(s.get('with_reasons', {}).get('p99_ms'))} | "
                f"{fmt(s['throughput_rps_1_threads_blas_default'], 0)} | "
                f"{fmt(s['throughput_rps_2_threads_blas_default'], 0)} "
                f"({fmt(s['throughput_rps_2_threads_blas_1'], 0)} with BLAS at 1 thread) |")
    lines.append("")
    build = [(n, b["snapshot_build_seconds"], b["event_matrix_build_seconds"])
             for n, b in doc["in_memory"].items()]
    lines.append("One-off per candidate snapshot (cached between requests): "
                 + "; ".join(f"{int(n):,} candidates: CandidateArrays {fmt(a)} s, event matrix "
                             f"{fmt(m)} s" for n, a, m in build) + ".")
    lines.append("")
    e2e = doc.get("end_to_end") or {}
    if e2e:
        lines.append(f"End to end through `beacon.recommend.recommend` on {doc['database']} "
                     f"(first call, cold caches: {fmt(e2e.get('first_call_seconds'))} s):")
        lines.append("")
        lines.append("| filters | p50 ms | p99 ms | SQL queries / request | SQL ms / request | "
                     "rps 1 thread | rps 2 threads |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode in ("filters_off", "filters_on"):
            s = e2e[mode]
            lines.append(f"| {mode.split('_')[1]} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | "
                         f"{fmt(s['sql_queries_per_request'])} | {fmt(s['sql_ms_per_request'])} | "
                         f"{fmt(s['throughput_rps_1_thread'], 0)} | "
                         f"{fmt(s['throughput_rps_2_threads'], 0)} |")
        lines.append("")
        lines.append("Where an end-to-end request's time goes (ms per request, filters off):")
        lines.append("")
        for part, ms in e2e["filters_off"]["breakdown_ms_per_request"].items():
            lines.append(f"- {part}: {fmt(ms)}")
        lines.append("")
    return lines


def model_io_section(doc: dict | None) -> list[str]:
    if not doc:
        return ["## 3. Model loading", "", "_not run_", ""]
    lines = ["## 3. Model loading", "", cmd(doc), ""]
    lines.append("| database | blob (MiB) | cold load median (ms) | active-id probe | blob read | "
                 "from_bytes | fresh process (imports excluded) |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for db, r in doc["results"].items():
        if "error" in r:
            lines.append(f"| {db} | {r['error']} |")
            continue
        p = r["parts_median_seconds"]
        lines.append(f"| {db} | {fmt(r['blob_mib'], 2)} | {fmt(r['cold_load_median_seconds'] * 1000, 1)} | "
                     f"{fmt(p['active_id_probe'] * 1000, 2)} | {fmt(p['blob_read'] * 1000, 1)} | "
                     f"{fmt(p['from_bytes'] * 1000, 1)} | "
                     f"{fmt((r['fresh_process_load_median_seconds'] or 0) * 1000, 0)} |")
    lines.append("")
    return lines


def training_section(doc: dict | None) -> list[str]:
    if not doc:
        return ["## 4. Training", "", "_not run_", ""]
    lines = ["## 4. Training", "", cmd(doc), ""]
    lines.append(f"CPU only ({doc['device']}); torch threads during the fit: "
                 f"{doc['torch_threads_during_fit']} (ModelConfig.threads default). Training "
                 f"data read from {doc['database']} in {doc['load_training_data_seconds']} s. "
                 "`fit` = HybridModel.fit wall time: the early-stopping phase (each epoch "
                 "includes its validation) then the refit on all data for the best epoch count.")
    lines.append("")
    lines.append("| interactions | users | training rows | pairs | train epochs (best) | "
                 "s/epoch train | s/epoch refit | to best epoch (s) | fit total (s) | peak RSS (MiB) |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for _, r in doc["fits"].items():
        star = f" (with {json.dumps(r['config_overrides'])}: no early-stopping validator)" \
            if r.get("config_overrides") else ""
        lines.append(f"| {r['interactions']:,}{star} | {r['users']:,} | {fmt(r['training_rows'])} | "
                     f"{fmt(r['pairs'])} | {r['train_epochs']} ({r['best_epoch']}) | "
                     f"{fmt(r['seconds_per_epoch_train_median'], 2)} | "
                     f"{fmt(r['seconds_per_epoch_refit_median'], 2)} | "
                     f"{fmt(r['seconds_to_best_epoch'], 1)} | {fmt(r['fit_seconds'], 1)} | "
                     f"{fmt(r['peak_rss_mib'], 0)} (+{fmt(r['peak_rss_increase_mib'], 0)}) |")
    lines.append("")
    for db, s in doc.get("skip_check", {}).items():
        lines.append(f"- Skip check (`training.decide()`, fingerprint in the database) on {db}: "
                     f"median {fmt(s['decide_median_seconds'] * 1000, 1)} ms (first call "
                     f"{fmt(s['decide_first_call_seconds'] * 1000, 1)} ms; the fingerprint "
                     f"aggregate alone {fmt(s['fingerprint_median_seconds'] * 1000, 1)} ms); "
                     f"decision: {s['reason']}.")
    f = doc.get("fold_in") or {}
    if f.get("compute"):
        lines.append(f"- Per-user fold-in over {f['users']} users (median history "
                     f"{fmt(f['history_rows_median'])} interactions): the compute "
                     f"(`model.fold_in`) p50 {fmt(f['compute']['p50_ms'], 1)} ms / p99 "
                     f"{fmt(f['compute']['p99_ms'], 1)} ms; reading the history "
                     f"(`training._user_history_frame`) p50 {fmt(f['history_read']['p50_ms'], 1)} ms; "
                     f"the whole service call (`train(scope='user')`: reads, fold-in, store, "
                     f"activate) p50 {fmt(f['service_call']['p50_ms'], 1)} ms / p99 "
                     f"{fmt(f['service_call']['p99_ms'], 1)} ms"
                     f" over {len(f.get('service_statuses') or [])} calls.")
        if f.get("command"):
            load = (f.get("machine") or {}).get("load_average_at_start")
            lines.append(f"  Fold-in rerun alone: `{f['command']}` ({f['finished_at']}, load "
                         f"average at start {load}, commit "
                         f"{(f.get('machine') or {}).get('git_commit', '?')}).")
    lines.append("")
    return lines


def console_section(doc: dict | None, title: str = "## 5. Console") -> list[str]:
    if not doc:
        return [title, "", "_not run_", ""]
    lines = [title, "", cmd(doc), ""]
    lines.append(f"AppTest from dashboard.py, switch_page per page, on {doc['database']}; user "
                 f"pages show {doc['user']}. First run of the app (imports, schema check, "
                 f"Overview): {fmt(doc['first_run_seconds'], 2)} s. Cold = st.cache_data "
                 "cleared before the run (median of the repeats); warm = the same page run again.")
    lines.append("")
    lines.append("| page | cold (s) | warm (s) | SQL statements (cold) | SQL time (s) | slowest statement (ms) |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for title, p in doc["pages"].items():
        q = p.get("queries_cold") or {}
        slow = (q.get("slowest") or [{}])[0]
        flag = " (exception!)" if p.get("exceptions") else ""
        lines.append(f"| {title}{flag} | {fmt(p['cold_seconds_median'], 3)} | "
                     f"{fmt(p['warm_seconds_median'], 3)} | {q.get('queries', '—')} | "
                     f"{fmt(q.get('sql_seconds'), 3)} | {fmt(slow.get('max_ms'), 1)} |")
    lines.append("")
    sq = doc.get("slowest_query")
    if sq:
        lines.append(f"Slowest statement ({sq['page']}, {fmt(sq['max_ms'], 1)} ms):")
        lines.append("")
        lines.append("```sql")
        lines.append(sq["sql"][:600])
        lines.append("```")
        lines.append("")
    return lines


def metrics_section(doc: dict | None) -> list[str]:
    if not doc:
        return []
    lines = ["### The Metrics page's queries, index variants", ""]
    lines.append("| database:index | by day | by category | totals | attribution | "
                 "online_metrics() | fingerprint | index MiB | command |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for key, r in doc["results"].items():
        q = r["queries"]
        lines.append(f"| {key} | {fmt(q['counts_by_day']['median_seconds'])} | "
                     f"{fmt(q['counts_by_category']['median_seconds'])} | "
                     f"{fmt(q['count_totals']['median_seconds'])} | "
                     f"{fmt(q['attributed_counts']['median_seconds'])} | "
                     f"{fmt(r['online_metrics_median_seconds'])} | "
                     f"{fmt(r['fingerprint_median_seconds'], 4)} | "
                     f"{fmt((r['index_bytes'] or 0) / 2**20, 1)} | `{r.get('command', '')}` |")
    lines.append("")
    lines.append("Seconds, median of the repeats, over the page's default range (last 30 UTC days).")
    lines.append("")
    return lines


def import_section(doc: dict | None) -> list[str]:
    if not doc:
        return []
    rows = doc["rows"]
    return [
        "### CSV import", "", cmd(doc), "",
        f"{rows['users']:,} users, {rows['events']:,} events and {rows['interactions']:,} "
        f"interactions into {doc['database']}: first import {fmt(doc['first_import_seconds'], 1)} s "
        f"(then the metrics rollup refresh, {fmt(doc['rollup_refresh_seconds'], 1)} s); the same "
        f"files again {fmt(doc['second_import_seconds'], 1)} s, inserting "
        f"{doc['second_import_inserted']} rows; peak memory {fmt(doc['peak_rss_mib'], 0)} MiB.",
        "",
    ]


def rollup_section(doc: dict | None) -> list[str]:
    if not doc:
        return []
    lines = ["### The daily metrics rollup", "", cmd(doc), ""]
    rebuilds = ", ".join(fmt(v, 2) for v in doc["full_rebuild_seconds"])
    lines += [
        "| what | seconds |", "| --- | ---: |",
        f"| online_metrics() over the page's 30 days, through the rollup | "
        f"{fmt(doc['online_metrics_rollup_seconds'])} |",
        f"| the same, live (a window the rollup does not cover) | "
        f"{fmt(doc['online_metrics_live_seconds'])} |",
        f"| refresh when nothing changed (every page load) | {fmt(doc['nothing_changed_seconds'], 4)} |",
        f"| full rebuild (after `db upgrade`, or deletions) | {rebuilds} |",
        f"| refresh after a day of traffic ({doc['appended_rows']:,} new rows, "
        f"{doc['incremental_days']} days recomputed) | {fmt(doc['incremental_refresh_seconds'])} |",
        f"| online_metrics() right after that refresh | "
        f"{fmt(doc['online_metrics_after_append_seconds'])} |",
        "",
        f"On {doc['database']}; speed-up of the page's service call: {doc['speedup']}x.",
        "",
    ]
    return lines


def quality_section(doc: dict | None) -> list[str]:
    if not doc:
        return ["## 6. Quality against peers", "", "_not run_", ""]
    lines = ["## 6. Quality against peers", "", cmd(doc), ""]
    for size, block in doc["sizes"].items():
        d, t = block["data"], block["test"]
        lines.append(f"**{size}**: {d['users']:,} users, {d['events']:,} events, {d['days']} days, "
                     f"seed {d['seed']}, anchored at {d['now']}; {d['interactions']:,} "
                     f"interactions. Test cutoff {t['cutoff']}: {t['users_evaluated']:,} users, "
                     f"{t['candidates']:,} candidates ({t['cold_candidates']:,} cold), "
                     f"{t['relevant']:,} relevant registrations, {fmt(100 * t['cold_relevant_share'], 1)}% "
                     f"of them on cold events. Validation cutoff {block['validation']['cutoff']}.")
        lines.append("")
        lines.append("| model | HR@10 | NDCG@10 | recall@10 | coverage | cold HR@10 | cold NDCG@10 | "
                     "cold recall@10 | chosen on validation | fit (s) |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
        for name, m in block["models"].items():
            if "test" not in m:
                lines.append(f"| {name} | {m.get('skipped', '—')} |")
                continue
            x, c = m["test"], m["test"]["cold"]
            lines.append(f"| {name} | {fmt(x['hit_rate'], 4)} | {fmt(x['ndcg'], 4)} | "
                         f"{fmt(x['recall'], 4)} | {fmt(x['coverage'], 3)} | {fmt(c['hit_rate'], 4)} | "
                         f"{fmt(c['ndcg'], 4)} | {fmt(c['recall'], 4)} | "
                         f"`{json.dumps(m['best_params'])}` | {fmt(m['fit_seconds'], 1)} |")
        lines.append("")
    return lines


METRICS = ("hit_rate", "precision", "recall", "ndcg", "map", "coverage")


def real_data_section(doc: dict | None) -> list[str]:
    title = "## 6b. Quality on real data (MovieLens-100k)"
    if not doc:
        return [title, "", "_not run_: `benchmarks/.venv/bin/python benchmarks/real_data.py`", ""]
    d = doc["data"]
    lines = [title, "", cmd(doc), "",
             f"{d['ratings']:,} ratings (at or above {d['min_rating']:g} stars), {d['users']:,} "
             f"users, {d['items']:,} movies; seeds {', '.join(map(str, doc['seeds']))}; "
             "mean ± standard deviation over the seeds, top 10. Peers chose their setting on a "
             "validation split carved from training; Beacon ran through import, `train --force "
             "--seed S`, `refresh-recommendations --top 10` and the cache.", ""]
    for protocol, block in doc["protocols"].items():
        lines.append(f"**{protocol}**: {block['users']:,} users, {block['candidates']:,} "
                     f"candidates, {block['train_ratings']:,} training and "
                     f"{block['test_ratings']:,} test ratings.")
        lines.append("")
        lines.append("| model | " + " | ".join(f"{m}@10" if m != "coverage" else m
                                               for m in METRICS) + " | chosen on validation |")
        lines.append("| --- |" + " ---: |" * len(METRICS) + " --- |")
        for name, m in block["models"].items():
            if "mean" not in m:
                lines.append(f"| {name} | {m.get('skipped', '—')} |")
                continue
            cells = " | ".join(f"{fmt(m['mean'][k], 4)} ± {fmt(m['std'][k], 4)}" for k in METRICS)
            chosen = f"`{json.dumps(m['best_params'])}`" if "best_params" in m else \
                "its engine's defaults"
            lines.append(f"| {name} | {cells} | {chosen} |")
        lines.append("")
    ev = doc.get("beacon_evaluate")
    if ev:
        lines.append("Beacon's own `evaluate --json` on all ratings imported (its temporal "
                     "holdout): " + "; ".join(
                         f"seed {s}: {fmt(v['beacon_ndcg'], 4)} vs popularity "
                         f"{fmt(v['popularity_ndcg'], 4)} ({fmt(v['ratio'], 2)}x), fit "
                         f"{fmt(v['fit_seconds'], 1)} s, {v['epochs']} epochs (best "
                         f"{v['best_epoch']})" for s, v in ev["seeds"].items()) + ".")
        lines.append("")
    return lines


def main() -> None:
    names = ("scale_data", "import_csv_postgres", "serving", "model_io", "training", "console", "console_demo",
             "metrics_queries", "metrics_rollup", "quality", "real_data")
    docs = {n: load(n) for n in names}
    notes = (C.BENCH / "notes.md").read_text() if (C.BENCH / "notes.md").exists() else ""
    lines = [
        "# Beacon benchmarks",
        "",
        "Speed, scale and quality against peers, measured side by side. One command per "
        "benchmark (each writes `benchmarks/results/<name>.json`); this page is written from "
        "those files by `benchmarks/report.py` plus the notes in `benchmarks/notes.md`. "
        "These are benchmarks, not tests: nothing in the test suite asserts a duration.",
        "",
        "## Setup",
        "",
        "```bash",
        "python3.11 -m venv benchmarks/.venv",
        "benchmarks/.venv/bin/pip install torch==2.13.0        # the CPU build, first",
        "benchmarks/.venv/bin/pip install -r benchmarks/requirements.txt",
        "benchmarks/.venv/bin/pip install 'pip<25' wheel && \\",
        "  benchmarks/.venv/bin/pip install --no-build-isolation --no-use-pep517 lightfm==1.17",
        "# Postgres: a database `bench` owned by beacon (or BENCH_PG_URL=...)",
        "cd /tmp && su postgres -c \"psql -c 'CREATE DATABASE bench OWNER beacon'\"",
        "```",
        "",
        "Order: `scale_data.py` (builds the scale databases), `training.py` (stores the scale "
        "model as the active version), then `model_io.py`, `serving.py`, `console.py`, "
        "`metrics_queries.py`, `metrics_rollup.py`; `quality.py` is independent. `bash benchmarks/run_all.sh` runs "
        "every step in that order (about 25 minutes on 2 quiet cores, logs in "
        "benchmarks/data/logs/). `regress.py` reruns the stored commands and compares.",
        "",
    ]
    lines += machine_section([d for d in docs.values() if d])
    if notes:
        notes = notes.replace("GOALS_TABLE", goals_table(docs))
        lines += [notes.rstrip(), ""]
    lines += scale_section(docs["scale_data"])
    lines += import_section(docs["import_csv_postgres"])
    lines += serving_section(docs["serving"])
    lines += model_io_section(docs["model_io"])
    lines += training_section(docs["training"])
    lines += console_section(docs["console"])
    lines += console_section(docs["console_demo"], "### The console at the default demo size "
                                                   "(1,000 users, SQLite, the embedded default)")
    lines += metrics_section(docs["metrics_queries"])
    lines += rollup_section(docs["metrics_rollup"])
    lines += quality_section(docs["quality"])
    lines += real_data_section(docs["real_data"])
    lines += ["## 7. Regression check", "",
              "`benchmarks/.venv/bin/python benchmarks/regress.py [names]` reruns each stored "
              "command into a temporary directory and compares the `headline` numbers: times and "
              "sizes may be at most 50% worse (`--time-tolerance`), quality metrics at most 0.02 "
              "lower (`--quality-tolerance`); exit status 1 on a regression. By hand, not in CI.",
              ""]
    api_notes = C.BENCH / "notes_api.md"  # the HTTP API benchmark, written by hand
    if api_notes.exists():
        lines += [api_notes.read_text().rstrip(), ""]
    (C.ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    C.log("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
