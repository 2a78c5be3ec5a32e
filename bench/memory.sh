#!/usr/bin/env bash
# Memory after bursts, measured as a new user would try it: one light model, steady load on a few
# connections, then a 3 s burst from thousands of connections, then idle; RSS sampled throughout.
# Done when: RSS returns to within 20% of its steady level within 60 s of each burst.
#
#   cargo build --release -p ballast && bash bench/memory.sh
#   BURSTS="20000 60000" BURST_CONNS=3000 SETTLE=60 bash bench/memory.sh
#
# Prints one line per sample (seconds since start, phase, RSS MB) and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
BURSTS=${BURSTS:-"20000 60000"}
BURST_CONNS=${BURST_CONNS:-3000}
SETTLE=${SETTLE:-60}
OUT=${OUT:-$(mktemp -d)}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }
command -v oha >/dev/null || { echo "needs oha: cargo install oha" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
python3 bench/make_bench_models.py "$OUT/models" >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
python3 -c "import json,random; random.seed(1); print(json.dumps({'inputs':[{'name':'features','shape':[1,12],'datatype':'FP32','data':[round(random.uniform(-1,1),4) for _ in range(12)]}]}))" >"$OUT/body.json"
HP=$(free_port); GP=$(free_port)
taskset -c 0 "$BIN" serve --model-repository "$OUT/models" --http-port "$HP" --grpc-port "$GP" --log-level warn >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$HP/v2/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$HP/v2/models/light/infer"
rss_mb() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$SERVER/status"; }
T0=$(date +%s.%N)
sample() { printf '%6.1f s  %-24s %s MB\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$1" "$(rss_mb)"; }
oha_run() { taskset -c 1 oha --no-tui -m POST -H 'content-type: application/json' -D "$OUT/body.json" "$@" "$url" >/dev/null 2>&1 || true; }
sample "idle after start"
# Steady: 8 connections at 1k req/s, reconnecting every 5 s, for STEADY s (default 30): the level
# memory settles at under steady load with connection churn.
for i in $(seq 5 5 "${STEADY:-30}"); do oha_run -z 5s -c 8 -q 1000; sample "steady (8 conns, 1k/s)"; done
steady=$(rss_mb)
summary=""
for rate in $BURSTS; do
  oha_run -z 3s -c "$BURST_CONNS" -q "$rate" --latency-correction
  peak=$(awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$SERVER/status")
  sample "after ${rate}/s burst"
  back=""
  for i in $(seq 5 5 "$SETTLE"); do
    # The steady load goes on between bursts, as in production.
    oha_run -z 5s -c 8 -q 1000
    now=$(rss_mb); sample "  +${i} s (steady load)"
    # The first sample from which every later one stays within 20% of steady.
    if python3 -c "import sys; sys.exit(0 if $now <= 1.2*$steady else 1)"; then back=${back:-$i}; else back=""; fi
  done
  summary+="burst ${rate}/s, ${BURST_CONNS} conns: peak RSS so far ${peak} MB; back and staying within 20% of steady (${steady} MB) from: ${back:-not within ${SETTLE}} s; last ${now} MB"$'\n'
done
echo "----"
printf '%s' "$summary"
