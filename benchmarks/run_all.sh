#!/usr/bin/env bash
# Run every benchmark on one model and collect the markdown reports in benchmarks/results-<date>.md.
#
#   bash benchmarks/run_all.sh                      # the bundled model
#   MODEL=/tmp/led-cpu THREADS=1 bash benchmarks/run_all.sh
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
ARGS=()
[ -n "${MODEL:-}" ] && ARGS+=(--model "$MODEL")
[ -n "${THREADS:-}" ] && ARGS+=(--threads "$THREADS")
OUT=${OUT:-results-$(date +%Y%m%d-%H%M).md}
: > "$OUT"
for script in bench_edit.py bench_schedulers.py bench_local_vs_global.py bench_folder.py bench_hardware.py; do
    echo "running $script" >&2
    "$PY" "$script" "${ARGS[@]}" >> "$OUT"
    echo >> "$OUT"
done
echo "wrote benchmarks/$OUT" >&2
