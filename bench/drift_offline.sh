#!/usr/bin/env bash
# `ballast drift` against Evidently's data drift report on the same Parquet files: 1M rows x 30
# float64 features per side (reading included in both), wall time and peak RSS from
# /usr/bin/time -v, the ratio, and whether the per-feature verdicts agree.
#
#   cargo build --release -p ballast
#   python3 -m venv /var/tmp/drift-venv
#   /var/tmp/drift-venv/bin/pip install numpy pyarrow 'pandas<3' evidently   # evidently 0.7 needs pandas 2
#   bash bench/drift_offline.sh                  # ROWS=1000000 FEATURES=30 RUNS=3
#
# Evidently runs once (it takes minutes), ballast RUNS times (each run printed, median used).
# Data and raw outputs stay in $DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
PY=${PY:-/var/tmp/drift-venv/bin/python}
ROWS=${ROWS:-1000000}
FEATURES=${FEATURES:-30}
RUNS=${RUNS:-3}
DATA=${DATA:-$(mktemp -d)}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }
echo "data and outputs in $DATA" >&2

if [ ! -f "$DATA/reference.parquet" ]; then
  "$PY" bench/drift_offline.py generate "$DATA" "$ROWS" "$FEATURES"
fi
ls -l "$DATA"/*.parquet >&2

# Seconds and peak RSS (MiB) from a /usr/bin/time -v log.
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
# CPU seconds (user + system): less sensitive than wall time to other work on shared cores.
cpu() { awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.1f", s}' "$1"; }

times=()
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -v "$BIN" drift --reference "$DATA/reference.parquet" --current "$DATA/current.parquet" \
    --json --html "$DATA/drift.html" >"$DATA/ballast.json" 2>"$DATA/ballast.$i.time"
  t=$(wall "$DATA/ballast.$i.time")
  times+=("$t")
  echo "ballast run $i: ${t} s, peak RSS $(rss "$DATA/ballast.$i.time") MiB" >&2
done
median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')

/usr/bin/time -v "$PY" bench/drift_offline.py evidently "$DATA" "$DATA/evidently.json" 2>"$DATA/evidently.time" >&2 || {
  echo "Evidently failed to run:" >&2; tail -20 "$DATA/evidently.time" >&2; exit 1; }
ev=$(wall "$DATA/evidently.time")

echo
echo "| tool | wall time (s) | CPU time (s) | peak RSS (MiB) |"
echo "| --- | ---: | ---: | ---: |"
echo "| ballast drift (median of $RUNS: ${times[*]}) | $median | $(cpu "$DATA/ballast.1.time") | $(rss "$DATA/ballast.1.time") |"
echo "| Evidently $("$PY" -c 'import evidently; print(evidently.__version__)') DataDriftPreset | $ev | $(cpu "$DATA/evidently.time") | $(rss "$DATA/evidently.time") |"
awk -v a="$ev" -v b="$median" 'BEGIN {printf "\nballast is %.1fx faster (wall)\n", a/b}'
"$PY" bench/drift_offline.py compare "$DATA/evidently.json" "$DATA/ballast.json"
