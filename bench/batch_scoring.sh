#!/usr/bin/env bash
# `ballast batch` against the engine alone: ROWS rows of the fraud model's 12 features (FILES
# Parquet files, row groups of ROW_GROUP rows) scored into a fresh output directory, ROUNDS
# times. Each run also times the engine by itself over the same input tensors, in the same
# process, before and after the batch (the hidden flag --compare-engine: the tensors are built
# first, untimed, then only the engine calls are timed, in calls of the same --batch-size), so
# the ratio = batch rows/s ÷ engine-alone rows/s is what reading Parquet, building tensors,
# writing the output parts (zstd, fsync, rename) and checkpointing cost on top of the engine.
#
#   cargo build --release -p ballast
#   bash bench/batch_scoring.sh          # ROWS=1000000 FILES=4 ROW_GROUP=65536 ROUNDS=3 BATCH=1024
#
# Needs python3 with numpy and pyarrow (tests/interop/requirements.txt) to write the inputs.
# Prints one line per round and the median ratio; raw JSON summaries stay in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/ballast}
ROWS=${ROWS:-1000000}
FILES=${FILES:-4}
ROW_GROUP=${ROW_GROUP:-65536}
ROUNDS=${ROUNDS:-3}
BATCH=${BATCH:-1024}
OUT=${OUT:-$(mktemp -d)}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p ballast" >&2; exit 1; }
echo "results in $OUT" >&2

python3 - "$OUT/in" "$ROWS" "$FILES" "$ROW_GROUP" <<'PY'
import os, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
out, rows, files, row_group = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(out, exist_ok=True)
names = [l.strip() for l in open("examples/data/fraud_feature_names.txt") if l.strip()]
rng = np.random.default_rng(7)
for f in range(files):
    n = rows // files + (1 if f < rows % files else 0)
    x = rng.normal(1.0, 1.5, size=(n, len(names))).astype(np.float32)
    cols = {name: x[:, j] for j, name in enumerate(names)}
    cols["label"] = rng.integers(0, 2, n)
    pq.write_table(pa.table(cols), f"{out}/part-{f}.parquet", row_group_size=row_group)
PY

DATA="$OUT/registry"
"$BIN" model push examples/models/fraud/1 --name fraud --allow-missing-card --data-dir "$DATA" >/dev/null

for round in $(seq 1 "$ROUNDS"); do
  rm -rf "$OUT/scored"
  "$BIN" batch --model fraud --input "$OUT/in/*.parquet" --output "$OUT/scored" \
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
