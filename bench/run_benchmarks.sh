#!/usr/bin/env bash
# Reproduces every figure in docs/benchmarks.md in one run on this machine, and prints them as a
# Markdown table with ratios against baselines measured in the same run.
#   bash bench/run_benchmarks.sh            # DUR=10 s per point, OVL=30 s per overload level
#   DUR=5 OVL=10 bash bench/run_benchmarks.sh   # quicker, noisier
# Needs: a release build (cargo build --release -p ballast); for the FastAPI comparison,
# `pip install -r bench/python/requirements.txt` (skipped with a note when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
DUR=${DUR:-10}
OVL=${OVL:-30}
OUT=${OUT:-$(mktemp -d)}
echo "results in $OUT" >&2
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }

# Two repositories with the fraud model: batching on (as shipped) and off.
mkdir -p "$OUT/on/fraud/2" "$OUT/off/fraud/2"
cp examples/models/fraud/2/model.onnx "$OUT/on/fraud/2/"; cp examples/models/fraud/config.toml "$OUT/on/fraud/"
cp examples/models/fraud/2/model.onnx "$OUT/off/fraud/2/"; printf 'max_batch_size = 0\n' > "$OUT/off/fraud/config.toml"

SERVER=""
start() { # repo
  HP=$(free_port); GP=$(free_port)
  "$BIN" serve --model-repository "$1" --http-port "$HP" --grpc-port "$GP" --log-level warn >"$OUT/server.log" 2>&1 &
  SERVER=$!
  wait_ready "http://127.0.0.1:$HP/v2/health/ready"
}
stop() { kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=""; }
trap 'stop' EXIT
bench() { # name, args...
  local name=$1; shift
  "$BIN" bench --http-url "http://127.0.0.1:$HP" --grpc-url "http://127.0.0.1:$GP" --model fraud --json "$@" >"$OUT/$name.json"
  echo "  $name done" >&2
}

echo "in-process engine" >&2
"$BIN" bench --in-process "$OUT/on" --model fraud --batch-sizes 1,64 --duration 5 --json >"$OUT/inproc.json"

echo "batching on" >&2
start "$OUT/on"
bench eff_http --rows 64 --concurrency 4 --duration "$DUR"
bench eff_grpc --rows 64 --concurrency 4 --duration "$DUR" --protocol grpc
bench light_http --rows 1 --concurrency 1 --duration "$DUR"
bench light_grpc --rows 1 --concurrency 1 --duration "$DUR" --protocol grpc
bench c64_on --rows 1 --concurrency 64 --duration "$DUR" --protocol grpc
bench json_ballast --rows 1 --concurrency 16 --duration "$DUR" --json-tensors
stop

echo "batching off" >&2
start "$OUT/off"
bench c64_off --rows 1 --concurrency 64 --duration "$DUR" --protocol grpc
# Overload runs against the unbatched server: its capacity is low enough that the load
# generator, which shares this machine's cores, can still offer 10x of it.
# Capacity: a closed loop below the admission limit (no request refused), so it measures
# service, not a storm of retried refusals.
bench c8_off --rows 1 --concurrency 8 --duration "$DUR" --protocol grpc
CAP=$(python3 -c "import json; print(json.load(open('$OUT/c8_off.json'))['throughput_ok_per_s'])")
for x in 2 5 10; do
  RATE=$(python3 -c "print(round($CAP * $x))")
  bench "overload_${x}x" --rows 1 --rate "$RATE" --duration "$OVL" --protocol grpc --connections 8
done
grep VmHWM "/proc/$SERVER/status" | awk '{print $2}' >"$OUT/peak_rss_kb"
stop

if python3 -c 'import fastapi, uvicorn, onnxruntime' 2>/dev/null; then
  echo "FastAPI + onnxruntime baseline" >&2
  HP=$(free_port); GP=0
  python3 bench/python/fastapi_server.py --model examples/models/fraud/2/model.onnx --name fraud --port "$HP" --workers 2 >"$OUT/fastapi.log" 2>&1 &
  SERVER=$!
  wait_ready "http://127.0.0.1:$HP/v2/health/ready"
  bench json_fastapi --rows 1 --concurrency 16 --duration "$DUR" --json-tensors
  stop
else
  echo "fastapi/uvicorn/onnxruntime not installed: skipping the FastAPI comparison" >&2
fi

python3 bench/summarize.py "$OUT"
