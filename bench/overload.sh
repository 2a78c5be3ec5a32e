#!/usr/bin/env bash
# Overload benchmarks, measured the way docs/benchmarks.md says: the server pinned to core 0,
# the load generator to core 1 (taskset), open loop, latency from the intended send time,
# goodput = 200s within 100 ms of it, as a share of the closed-loop capacity measured in the
# same run. The generator is oha (independent of ballast; `cargo install oha`), HTTP/1.1 JSON,
# one row per request. Every point reports the rate that was actually answered and is marked
# void when it is under 90% of the intended rate.
#
#   cargo build --release -p ballast && bash bench/overload.sh        # DUR=8 s per point
#   MODELS=heavy POINTS="2 5" DUR=5 bash bench/overload.sh              # a subset
#
# Prints one JSON line per point and a Markdown table at the end; raw files stay in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
DUR=${DUR:-8}
MODELS=${MODELS:-"light heavy"}
POINTS=${POINTS:-"0.8 1.5 2 5 10"}
# Open-loop connections per model: enough that the generator is not bounded by them (rate x
# latency, Little's law: the heavy model's admitted requests wait a few ms, so 256 connections
# could not offer 2x), few enough that oha on one core keeps up (1024 for the light model cost
# oha so much it offered only 56% of 0.8x).
CONNS_light=${CONNS_light:-256}
CONNS_heavy=${CONNS_heavy:-1024}
OUT=${OUT:-$(mktemp -d)}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }
command -v oha >/dev/null || { echo "needs oha: cargo install oha" >&2; exit 1; }
echo "results in $OUT" >&2

python3 bench/make_bench_models.py "$OUT/models" >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
body() { python3 -c "import json,random; random.seed(1); print(json.dumps({'inputs':[{'name':'features','shape':[1,$1],'datatype':'FP32','data':[round(random.uniform(-1,1),4) for _ in range($1)]}]}))"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

HP=$(free_port); GP=$(free_port)
taskset -c "$SERVER_CPU" "$BIN" serve --model-repository "$OUT/models" --http-port "$HP" --grpc-port "$GP" --log-level warn >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$HP/v2/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
TICK=$(getconf CLK_TCK)

run_oha() { # name, url, bodyfile, extra oha args...
  local name=$1 url=$2 bodyf=$3; shift 3
  local t0 t1
  t0=$(cpu_ticks $SERVER)
  taskset -c "$CLIENT_CPU" oha --no-tui --output-format csv -o "$OUT/$name.csv" -z "${DUR}s" \
    -m POST -H 'content-type: application/json' -D "$bodyf" "$@" "$url" >/dev/null 2>&1 || true
  t1=$(cpu_ticks $SERVER)
  echo $(( t1 - t0 ))
}

echo "| model | point | intended req/s | answered req/s | goodput (% of capacity) | ok p99 ms | refusal p99 ms | server CPU µs per answer |" >"$OUT/table.md"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |" >>"$OUT/table.md"
for model in $MODELS; do
  width=12; [ "$model" = heavy ] && width=256
  conns_var="CONNS_$model"; conns=${CONNS:-${!conns_var:-256}}
  body "$width" >"$OUT/$model.json"
  url="http://127.0.0.1:$HP/v2/models/$model/infer"
  # Capacity: closed loop, 64 connections, nothing refused at this concurrency.
  ticks=$(run_oha "$model-capacity" "$url" "$OUT/$model.json" -c 64)
  cap=$(python3 bench/oha_goodput.py "$OUT/$model-capacity.csv" "$DUR" 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"]/'"$DUR"')')
  echo "{\"model\":\"$model\",\"capacity_per_s\":$cap,\"server_cpu_s\":$(echo "$ticks/$TICK" | bc -l)}"
  cpu_per_ok=$(python3 -c "print($ticks/$TICK/($cap*$DUR)*1e6)")
  echo "| $model | capacity (closed loop, 64 conns) | - | $(printf %.0f "$cap") | 100 | - | - | $(printf %.1f "$cpu_per_ok") |" >>"$OUT/table.md"
  for x in $POINTS; do
    rate=$(python3 -c "print(int($cap*$x))")
    ticks=$(run_oha "$model-x$x" "$url" "$OUT/$model.json" -q "$rate" --latency-correction -c "$conns")
    line=$(python3 bench/oha_goodput.py "$OUT/$model-x$x.csv" "$DUR" "$rate")
    echo "{\"model\":\"$model\",\"point\":\"${x}x\",\"server_cpu_ticks\":$ticks,\"rss_kb\":$(rss_kb $SERVER),\"result\":$line}"
    python3 - "$line" "$model" "$x" "$cap" "$ticks" "$TICK" "$DUR" >>"$OUT/table.md" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); model, x, cap = sys.argv[2], sys.argv[3], float(sys.argv[4])
ticks, tick, dur = float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
answered = r["ok"] + r["refused"] + r["other"]
cpu = ticks / tick / max(answered, 1) * 1e6
void = " (void: not offered)" if r["void"] else ""
print(f"| {model} | {x}x open loop{void} | {r['intended_rate']:.0f} | {r['answered_rate']:.0f} | {100*r['goodput_per_s']/cap:.1f} | {r['ok_p99_ms']:.2f} | {r['refused_p99_ms']:.2f} | {cpu:.1f} |")
PY
  done
  # Retry storm: 512 connections, each resending the moment it is answered (refusals included).
  ticks=$(run_oha "$model-storm" "$url" "$OUT/$model.json" -c 512)
  line=$(python3 bench/oha_goodput.py "$OUT/$model-storm.csv" "$DUR" 1)
  echo "{\"model\":\"$model\",\"point\":\"retry-storm\",\"result\":$line}"
  python3 -c "import json; r=json.loads('$line'); print(f\"| $model | retry storm (512 conns, resend at once) | - | {r['answered_rate']:.0f} | {100*r['goodput_per_s']/$cap:.1f} | {r['ok_p99_ms']:.2f} | {r['refused_p99_ms']:.2f} | - |\")" >>"$OUT/table.md"
  # Spike: 0.5x -> 5x -> 0.5x, 3 s each, back to back; recovery = first 100 ms bin after the
  # spike from which every bin's goodput is >= 97% of what it offered.
  for phase in 0.5 5 0.5b; do
    f=${phase%b}; rate=$(python3 -c "print(int($cap*$f))")
    DUR=3 run_oha "$model-spike-$phase" "$url" "$OUT/$model.json" -q "$rate" --latency-correction -c "$conns" >/dev/null
  done
  python3 - "$OUT" "$model" "$cap" >>"$OUT/table.md" <<'PY'
import csv, sys
out, model, cap = sys.argv[1], sys.argv[2], float(sys.argv[3])
rate = int(cap * 0.5)
bins = {}
for row in csv.DictReader(open(f"{out}/{model}-spike-0.5b.csv")):
    b = int(float(row["request-start"]) / 0.1)
    good = row["status"] == "200" and float(row["request-duration"]) <= 0.1
    bins[b] = bins.get(b, 0) + good
need = 0.97 * rate * 0.1
rec = None
for b in sorted(bins):
    if all(bins.get(k, 0) >= need for k in range(b, max(bins))):
        rec = b * 0.1
        break
spike = sum(1 for r in csv.DictReader(open(f"{out}/{model}-spike-5.csv")) if r["status"] == "200" and float(r["request-duration"]) <= 0.1) / 3
txt = f"{rec:.1f} s" if rec is not None else "not within 3 s"
print(f"| {model} | spike 0.5x→5x→0.5x | {int(cap*5)} at the peak | - | {100*spike/cap:.1f} during the spike | - | - | recovery to full goodput: {txt} |")
PY
done
echo "peak RSS $(awk '/VmHWM/{print $2}' /proc/$SERVER/status) kB, now $(rss_kb $SERVER) kB" | tee -a "$OUT/table.md"
cat "$OUT/table.md"
