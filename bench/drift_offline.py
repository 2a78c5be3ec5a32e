#!/usr/bin/env python3
"""Helpers for bench/drift_offline.sh.

    drift_offline.py generate DIR ROWS FEATURES   # reference.parquet and current.parquet
    drift_offline.py evidently DIR OUT.json       # Evidently's data drift report, verdicts
    drift_offline.py compare OUT.json BALLAST.json  # same verdicts? prints a summary

The data: FEATURES float64 columns of ROWS rows, reference N(0, 1) (feature k scaled by
1 + k/10); in current, every third feature moves by 0.15 standard deviations (drift the
default Wasserstein rule flags: 0.15 >= 0.1), every fifth (not also a third) by 0.02 (below
it), the rest keep their distribution; 1% of current values are NaN. Row groups of 64k rows.
"""

import json
import sys
import time


def generate(out_dir, rows, features):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(35)
    ref, cur = {}, {}
    for k in range(features):
        scale = 1.0 + k / 10.0
        shift = 0.15 if k % 3 == 0 else (0.02 if k % 5 == 0 else 0.0)
        ref[f"f{k:02d}"] = rng.normal(0.0, scale, rows)
        c = rng.normal(shift * scale, scale, rows)
        c[rng.random(rows) < 0.01] = np.nan
        cur[f"f{k:02d}"] = c
    for name, cols in (("reference", ref), ("current", cur)):
        pq.write_table(pa.table(cols), f"{out_dir}/{name}.parquet", row_group_size=65536)


def evidently(data_dir, out):
    """Evidently's data drift preset with its defaults, reading the Parquet files included."""
    t0 = time.perf_counter()
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(f"{data_dir}/reference.parquet")
    cur = pd.read_parquet(f"{data_dir}/current.parquet")
    snapshot = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
    result = snapshot.dict()
    elapsed = time.perf_counter() - t0
    verdicts = {}
    for metric in result["metrics"]:
        # ValueDrift(column=...) metrics: value is the drift score; the config holds the
        # method and threshold.
        cfg = metric.get("config", {})
        col = cfg.get("column")
        if col is None or not str(metric.get("metric_name", "")).startswith("ValueDrift"):
            continue
        value = metric["value"]
        threshold = cfg.get("threshold")
        method = cfg.get("method")
        verdicts[col] = {"value": value, "threshold": threshold, "method": method}
    with open(out, "w") as f:
        json.dump({"seconds": elapsed, "columns": verdicts, "raw_names": [m.get("metric_name") for m in result["metrics"]][:5]}, f, indent=1)
    print(f"evidently: {elapsed:.1f} s, {len(verdicts)} columns")


def compare(evidently_json, ballast_json):
    ev = json.load(open(evidently_json))["columns"]
    ba = {f["name"]: f for f in json.load(open(ballast_json))["features"]}
    same = differ = 0
    worst = 0.0
    for col, e in sorted(ev.items()):
        b = ba.get(col)
        if b is None:
            continue
        is_p = "p_value" in str(e["method"])
        ev_drift = e["value"] < e["threshold"] if is_p else e["value"] >= e["threshold"]
        if ev_drift == b["drifted"]:
            same += 1
        else:
            differ += 1
            print(f"  {col}: evidently {e}, ballast drifted={b['drifted']} {b.get('verdict')}")
        if b.get("verdict") and b["verdict"]["test"] == "wasserstein_normed":
            worst = max(worst, abs(b["verdict"]["value"] - e["value"]))
    print(f"verdicts: {same} the same, {differ} different; "
          f"max |normed Wasserstein ballast - evidently| = {worst:.3e}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "generate":
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "evidently":
        evidently(sys.argv[2], sys.argv[3])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
