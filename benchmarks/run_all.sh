#!/usr/bin/env bash
# Every benchmark at full size, in dependency order, one run each; logs under benchmarks/data/logs/.
# About 25 minutes on 2 quiet cores. Run on a quiet machine:  bash benchmarks/run_all.sh [step ...]
# (The stored results were made with these steps; `scale-sqlite` ran alongside `quality`.)
set -u
cd "$(dirname "$0")/.."
PY=benchmarks/.venv/bin/python
LOGS=benchmarks/data/logs
mkdir -p "$LOGS"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(scale-pg scale-sqlite import quality training validator model_io serving \
  rollup console console-demo metrics metrics-covering metrics-current report)
for step in "${steps[@]}"; do
  echo "== $step $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  case "$step" in
    scale)    $PY benchmarks/scale_data.py ;;
    scale-pg) $PY benchmarks/scale_data.py --target postgres ;;
    scale-sqlite) $PY benchmarks/scale_data.py --target sqlite ;;
    import)   $PY benchmarks/import_csv.py ;;
    # 5M with no early-stopping validator: as shipped it needs more than 24 GiB (validator_memory.py)
    training) $PY benchmarks/training.py --full-overrides '{"patience": 0, "epochs": 2}' ;;
    validator) $PY benchmarks/validator_memory.py ;;
    model_io) $PY benchmarks/model_io.py ;;
    serving)  $PY benchmarks/serving.py ;;
    # builds the daily metrics rollup (migration 0003) before the console is timed
    rollup)   $PY benchmarks/metrics_rollup.py ;;
    console)  $PY benchmarks/console.py ;;
    console-demo)
      db=benchmarks/data/console_demo.sqlite3; rm -f "$db" "$db"-*
      export DATABASE_URL="sqlite:///$PWD/$db"
      $PY -m beacon db upgrade && $PY -m beacon demo-data && $PY -m beacon train && unset DATABASE_URL && \
        $PY benchmarks/console.py --url "sqlite:///$PWD/$db" --out benchmarks/results/console_demo.json ;;
    metrics)  $PY benchmarks/metrics_queries.py --repeat 2 ;;
    metrics-covering) $PY benchmarks/metrics_queries.py --index covering --targets postgres --repeat 2 ;;
    metrics-current) $PY benchmarks/metrics_queries.py --index current --targets postgres --repeat 1 \
                       --out benchmarks/data/results/metrics_restore.json ;;
    quality)  $PY benchmarks/quality.py ;;
    report)   $PY benchmarks/report.py ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac > "$LOGS/$step.log" 2>&1
  echo "   exit $? at $(date -u +%H:%M:%S) (log $LOGS/$step.log)"
done
