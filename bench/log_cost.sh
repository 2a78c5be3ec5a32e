#!/usr/bin/env bash
# What prediction logging costs at capacity: the demo's light model (fraud, 12 features) served
# with logging off (--no-prediction-log), buffered and durable, in interleaved rounds so that
# machine noise falls on every mode alike. Server pinned to core 0 (its log writer and segmenter
# threads included: logging is paid from the core that serves), `ballast bench` on core 1,
# closed loop at 64 connections. Reports throughput, the server's CPU time per answer (from
# /proc/PID/stat), latency p50/p99, and per mode the records the log wrote (its metrics), so a
# mode that silently did not log cannot pass for a cheap one.
#
#   cargo build --release -p ballast
#   bash bench/log_cost.sh                 # ROUNDS=3 DUR=6
#
# Prints a Markdown table; raw files stay in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-6}
CONNS=${CONNS:-64}
OUT=${OUT:-$(mktemp -d)}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }
echo "results in $OUT" >&2

for mode in off buffered durable; do
  mkdir -p "$OUT/models-$mode/fraud/1"
  cp examples/models/fraud/1/model.onnx "$OUT/models-$mode/fraud/1/"
  cp examples/models/fraud/config.toml "$OUT/models-$mode/fraud/config.toml"
  printf '\n[log]\ndurability = "%s"\n' "$([ "$mode" = buffered ] && echo buffered || echo durable)" \
    >>"$OUT/models-$mode/fraud/config.toml"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

start_server() { # mode
  HP=$(free_port); GP=$(free_port)
  while [ "$GP" = "$HP" ]; do GP=$(free_port); done
  local extra=()
  [ "$1" = off ] && extra=(--no-prediction-log)
  rm -rf "$OUT/data-$1"
  taskset -c "$SERVER_CPU" "$BIN" serve --model-repository "$OUT/models-$1" --data-dir "$OUT/data-$1" \
    --http-port "$HP" --grpc-port "$GP" --log-level warn --no-monitor "${extra[@]}" >>"$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$HP/v2/health/ready" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not become ready" >&2; cat "$OUT/server.log" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
trap 'kill $SERVER 2>/dev/null || true' EXIT

metric() { curl -fsS "http://127.0.0.1:$HP/metrics" | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'; }

: >"$OUT/results.txt"
for round in $(seq 1 "$ROUNDS"); do
  for mode in off buffered durable; do
    start_server "$mode"
    t0=$(cpu_ticks "$SERVER")
    taskset -c "$CLIENT_CPU" "$BIN" bench --http-url "http://127.0.0.1:$HP" --model fraud \
      --concurrency "$CONNS" --duration "$DUR" --warmup 0 --json >"$OUT/$mode-$round.json" 2>/dev/null || true
    t1=$(cpu_ticks "$SERVER")
    written=$(metric ballast_prediction_log_records_total)
    dropped=$(metric ballast_prediction_log_dropped_total)
    refused=$(curl -fsS "http://127.0.0.1:$HP/metrics" | awk '/reason="prediction_log_full"/ {s += $NF} END {print s + 0}')
    stop_server
    python3 - "$OUT/$mode-$round.json" "$mode" "$round" $(( t1 - t0 )) "$TICK" "$DUR" "$written" "$dropped" "$refused" >>"$OUT/results.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
mode, rnd, ticks, tick, dur, written, dropped, refused = sys.argv[2], sys.argv[3], *map(float, sys.argv[4:])
rps = r["throughput_ok_per_s"]
lat = r["latency_ok"]
p50, p99 = lat["p50_us"], lat["p99_us"]
print(mode, rnd, f"{rps:.0f}", f"{ticks / tick / (rps * dur) * 1e6:.2f}", p50, p99, int(written), int(dropped), int(refused))
PY
    tail -1 "$OUT/results.txt" >&2
  done
done

python3 - "$OUT/results.txt" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    rows.setdefault(p[0], []).append([float(x) for x in p[2:]])
base = st.median(r[0] for r in rows["off"])
base_cpu = st.median(r[1] for r in rows["off"])
print("| logging | req/s (median of rounds) | vs off | server CPU µs per answer | vs off | p50 µs | p99 µs | records written | dropped | refused (log full) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in ("off", "buffered", "durable"):
    m = [st.median(r[i] for r in rows[mode]) for i in range(4)]
    tot = [sum(r[i] for r in rows[mode]) for i in (4, 5, 6)]
    print(f"| {mode} | {m[0]:,.0f} | {m[0] / base:.3f} | {m[1]:.1f} | {m[1] / base_cpu:.3f} | {m[2]:.0f} | {m[3]:.0f} | {tot[0]:,.0f} | {tot[1]:,.0f} | {tot[2]:,.0f} |")
PY
