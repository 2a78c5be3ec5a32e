#!/usr/bin/env bash
# `ballast batch` against the engine alone: ROWS rows (FILES Parquet files, row groups of
# ROW_GROUP rows) scored into a fresh output directory, ROUNDS times, with MODEL=fraud (the
# example 12-32-16-1 MLP: microseconds a row, so reading and writing dominate) or MODEL=mlp
# (a 30-256-256-1 MLP made here with numpy + onnx, the engine-bound case of ECOSYSTEM.md). Each run also times the engine by itself over the same input tensors, in the same
# process, before and after the batch (the hidden flag --compare-engine: the tensors are built
# first, untimed, then only the engine calls are timed, in calls of the same --batch-size), so
# the ratio = batch rows/s ÷ engine-alone rows/s is what reading Parquet, building tensors,
# writing the output parts (zstd, fsync, rename) and checkpointing cost on top of the engine.
#
#   cargo build --release -p ballast
#   bash bench/batch_scoring.sh          # MODEL=fraud ROWS=1000000 FILES=4 ROW_GROUP=65536 ROUNDS=3 BATCH=1024
#   MODEL=mlp bash bench/batch_scoring.sh
#
# Needs python3 with numpy, pyarrow and onnx (tests/interop/requirements.txt) for the inputs.
# Prints one line per round and the median ratio; raw JSON summaries stay in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
ROWS=${ROWS:-1000000}
FILES=${FILES:-4}
ROW_GROUP=${ROW_GROUP:-65536}
ROUNDS=${ROUNDS:-3}
BATCH=${BATCH:-1024}
MODEL=${MODEL:-fraud}
OUT=${OUT:-$(mktemp -d)}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }
echo "results in $OUT" >&2

DATA="$OUT/registry"
case "$MODEL" in
  fraud)
    MODEL_DIR=examples/models/fraud/1
    COLUMNS=$(paste -sd, examples/data/fraud_feature_names.txt) ;;
  mlp)
    MODEL_DIR="$OUT/mlp/1"
    COLUMNS=$(python3 -c 'print(",".join(f"f{i}" for i in range(30)))')
    python3 - "$MODEL_DIR" <<'PY'
import os, sys
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
sizes, rng, nodes, inits, x = [30, 256, 256, 1], np.random.default_rng(3), [], [], "features"
for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
    inits += [numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"w{i}"),
              numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}")]
    nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"])]
    last = i == len(sizes) - 2
    nodes.append(helper.make_node("Sigmoid" if last else "Relu", [f"z{i}"], ["score" if last else f"h{i}"]))
    x = f"h{i}"
graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 30])],
                          [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])], inits)
model = helper.make_model(graph, producer_name="ballast-bench", opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
os.makedirs(sys.argv[1], exist_ok=True)
onnx.save(model, os.path.join(sys.argv[1], "model.onnx"))
PY
    ;;
  *) echo "MODEL is fraud or mlp" >&2; exit 1 ;;
esac
"$BIN" model push "$MODEL_DIR" --name "$MODEL" --allow-missing-card --data-dir "$DATA" >/dev/null

python3 - "$OUT/in" "$ROWS" "$FILES" "$ROW_GROUP" "$COLUMNS" <<'PY'
import os, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
out, rows, files, row_group = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
names = sys.argv[5].split(",")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
for f in range(files):
    n = rows // files + (1 if f < rows % files else 0)
    x = rng.normal(1.0, 1.5, size=(n, len(names))).astype(np.float32)
    cols = {name: x[:, j] for j, name in enumerate(names)}
    cols["label"] = rng.integers(0, 2, n)
    pq.write_table(pa.table(cols), f"{out}/part-{f}.parquet", row_group_size=row_group)
PY

for round in $(seq 1 "$ROUNDS"); do
  rm -rf "$OUT/scored"
  "$BIN" batch --model "$MODEL" --input "$OUT/in/*.parquet" --output "$OUT/scored" \
    --data-dir "$DATA" --batch-size "$BATCH" --quiet --json --compare-engine >"$OUT/round-$round.json"
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ratios = []
for r in range(1, rounds + 1):
    s = json.load(open(f"{out}/round-{r}.json"))
    ratios.append(s["ratio"])
    print(f"round {r}: {s['rows_scored']:,} rows, {s['files']} files, {s['parts']} parts, "
          f"engine {s['engine']} x{s['batch_rows']} rows/call: batch {s['rows_per_s']:,.0f} rows/s "
          f"({s['seconds']:.2f} s), engine alone {s['engine_rows_per_s']:,.0f} rows/s, ratio {s['ratio']:.3f}")
print(f"median ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) over {rounds} rounds")
PY
