#!/usr/bin/env bash
# Every benchmark at full size, in dependency order, one run each; logs under benchmarks/data/logs/.
# Takes about 45 minutes on 2 cores. Run on a quiet machine:  bash benchmarks/run_all.sh [step ...]
set -u
cd "$(dirname "$0")/.."
PY=benchmarks/.venv/bin/python
LOGS=benchmarks/data/logs
mkdir -p "$LOGS"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(scale training model_io serving console metrics metrics-covering quality report)
for step in "${steps[@]}"; do
  echo "== $step $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  case "$step" in
    scale)    $PY benchmarks/scale_data.py ;;
    scale-pg) $PY benchmarks/scale_data.py --target postgres ;;
    scale-sqlite) $PY benchmarks/scale_data.py --target sqlite ;;
    training) $PY benchmarks/training.py ;;
    model_io) $PY benchmarks/model_io.py ;;
    serving)  $PY benchmarks/serving.py ;;
    console)  $PY benchmarks/console.py ;;
    metrics)  $PY benchmarks/metrics_queries.py --repeat 2 ;;
    metrics-covering) $PY benchmarks/metrics_queries.py --index covering --repeat 2 ;;
    metrics-current) $PY benchmarks/metrics_queries.py --index current --repeat 2 ;;
    quality)  $PY benchmarks/quality.py ;;
    report)   $PY benchmarks/report.py ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac > "$LOGS/$step.log" 2>&1
  echo "   exit $? at $(date -u +%H:%M:%S) (log $LOGS/$step.log)"
done
