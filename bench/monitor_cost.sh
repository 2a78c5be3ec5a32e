#!/usr/bin/env bash
# What live drift monitoring costs at capacity: the demo's light model (fraud, 12 features,
# ONNX Runtime) served with its reference profile, monitoring on against `--no-monitor`, in
# interleaved rounds (on, off, on, off, ...) so that machine noise falls on both alike.
# The server is pinned to core 0 (its observer thread included: the monitor's work is paid from
# the same core that serves), the generator to core 1, closed loop at 64 connections. Each
# round is measured by `ballast bench` (binary tensors) and by oha (JSON, independent of
# ballast). Besides throughput it reports the server's CPU time per answer (from
# /proc/PID/stat): when the generator's core, not the server's, is the limit, throughput hides
# the cost and CPU per answer still shows it.
#
#   cargo build --release -p ballast && cargo install oha
#   bash bench/monitor_cost.sh                 # ROUNDS=3 DUR=6 ROWS=1
#   ROWS=16 bash bench/monitor_cost.sh         # 16 rows a request: the monitor's per-row work
#
# Prints a Markdown table; raw files stay in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-6}
ROWS=${ROWS:-1}
CONNS=${CONNS:-64}
OUT=${OUT:-$(mktemp -d)}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }
HAVE_OHA=1
command -v oha >/dev/null || { echo "oha not found (cargo install oha): ballast bench only" >&2; HAVE_OHA=0; }
echo "results in $OUT" >&2

mkdir -p "$OUT/models/fraud/1"
cp examples/models/fraud/config.toml "$OUT/models/fraud/"
cp examples/models/fraud/1/model.onnx "$OUT/models/fraud/1/"
cp examples/data/fraud_sample.csv "$OUT/models/fraud/1/reference.csv"
# oha's body: reference rows, so the monitor bins values like live traffic's.
python3 - "$ROWS" >"$OUT/body.json" <<'PY'
import csv, json, sys
rows = int(sys.argv[1])
with open("examples/data/fraud_sample.csv") as f:
    data = [r for r in csv.reader(f)][1:]
flat = [float(x) for r in data[:rows] for x in r[:12]]
print(json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [rows, 12], "data": flat}]}))
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

start_server() { # extra args...
  HP=$(free_port); GP=$(free_port)
  taskset -c "$SERVER_CPU" "$BIN" serve --model-repository "$OUT/models" --http-port "$HP" \
    --grpc-port "$GP" --log-level warn "$@" >>"$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$HP/v2/health/ready" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not become ready" >&2; cat "$OUT/server.log" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
trap 'kill $SERVER 2>/dev/null || true' EXIT

# name -> "req/s cpu_us_per_answer busy_share"
measure() { # name, command...
  local name=$1; shift
  local t0 t1 answered rps
  t0=$(cpu_ticks "$SERVER")
  "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || true
  t1=$(cpu_ticks "$SERVER")
  case $name in
    *bench*) rps=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["throughput_ok_per_s"])' "$OUT/$name.out") ;;
    *oha*) rps=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); s=r["statusCodeDistribution"]; print(s.get("200",0)/r["summary"]["total"])' "$OUT/$name.out") ;;
  esac
  python3 -c 'import sys
rps, ticks, tick, dur = map(float, sys.argv[1:])
print(f"{rps:.0f} {ticks / tick / (rps * dur) * 1e6:.2f} {ticks / tick / dur:.2f}")' "$rps" $(( t1 - t0 )) "$TICK" "$DUR"
}

: >"$OUT/results.txt"
for round in $(seq 1 "$ROUNDS"); do
  for mode in on off; do
    if [ "$mode" = on ]; then start_server; else start_server --no-monitor; fi
    monitored=$(curl -fsS "http://127.0.0.1:$HP/v2/models/fraud/monitor" | python3 -c 'import json,sys; print(json.load(sys.stdin)["versions"][0]["monitored"])')
    [ "$mode" = on ] && [ "$monitored" != True ] && { echo "monitoring did not start" >&2; exit 1; }
    [ "$mode" = off ] && [ "$monitored" != False ] && { echo "--no-monitor still monitors" >&2; exit 1; }
    r=$(measure "bench-$mode-$round" taskset -c "$CLIENT_CPU" "$BIN" bench --http-url "http://127.0.0.1:$HP" \
      --model fraud --concurrency "$CONNS" --duration "$DUR" --warmup 0 --rows "$ROWS" --json)
    echo "bench $mode $round $r" | tee -a "$OUT/results.txt" >&2
    if [ "$HAVE_OHA" = 1 ]; then
      # oha reports rps over all answers; `measure` counts only 200s.
      r=$(measure "oha-$mode-$round" taskset -c "$CLIENT_CPU" oha --no-tui --output-format json -z "${DUR}s" \
        -c "$CONNS" -m POST -H 'content-type: application/json' -D "$OUT/body.json" \
        "http://127.0.0.1:$HP/v2/models/fraud/infer")
      echo "oha $mode $round $r" | tee -a "$OUT/results.txt" >&2
    fi
    if [ "$mode" = on ]; then
      rows=$(curl -fsS "http://127.0.0.1:$HP/metrics" | awk '/^ballast_monitored_rows_total/{s+=$2} END{print s+0}')
      dropped=$(curl -fsS "http://127.0.0.1:$HP/metrics" | awk '/^ballast_observer_dropped_total/{s+=$2} END{print s+0}')
      echo "monitored rows $rows, dropped observations $dropped" | tee -a "$OUT/results.txt" >&2
    fi
    stop_server
  done
done

python3 - "$OUT/results.txt" "$ROWS" <<'PY'
import sys, statistics as st
rows = {}
extra = []
for line in open(sys.argv[1]):
    p = line.split()
    if p[0] in ("bench", "oha"):
        rows.setdefault((p[0], p[1]), []).append((float(p[3]), float(p[4]), float(p[5])))
    else:
        extra.append(line.strip())
print(f"| generator | rows/request | monitor | req/s (median of rounds) | server CPU µs per answer | server core busy | throughput on/off | CPU per answer on/off |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for gen in ("bench", "oha"):
    if (gen, "on") not in rows:
        continue
    med = {m: [st.median(x[i] for x in rows[(gen, m)]) for i in range(3)] for m in ("on", "off")}
    for m in ("on", "off"):
        rps, cpu, busy = med[m]
        ratio = f"{med['on'][0] / med['off'][0]:.3f}" if m == "on" else ""
        cratio = f"{med['on'][1] / med['off'][1]:.3f}" if m == "on" else ""
        print(f"| {gen} | {sys.argv[2]} | {m} | {rps:,.0f} | {cpu:.1f} | {busy:.2f} | {ratio} | {cratio} |")
for e in extra:
    print(e)
PY
