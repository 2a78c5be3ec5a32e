"""``ballast batch`` with the files and readers users have: Parquet written by pyarrow (snappy,
its default; float16, uint8 and boolean columns), the output read back by pyarrow and duckdb,
every value compared with onnxruntime on the same inputs.

* fraud: one ``[-1, 12]`` input fed by the numeric columns in file order (the label skipped);
* seqmean: a ``[-1, -1]`` input fed by ``tokens[0]..tokens[4]``, a vector output as a list column;
* dtypes: seven inputs of seven datatypes fed by ``<input>[i]`` columns.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from test_repository import EXAMPLES, _binary

FEATURES = [
    line.strip()
    for line in (EXAMPLES.parent / "data" / "fraud_feature_names.txt").read_text().splitlines()
    if line.strip()
]


def _push(data: Path, model: str) -> None:
    subprocess.run(
        [str(_binary()), "model", "push", str(EXAMPLES / model / "1"), "--name", model,
         "--allow-missing-card", "--data-dir", str(data)],
        check=True, capture_output=True,
    )


def _batch(data: Path, model: str, pattern: str, out: Path) -> dict:
    run = subprocess.run(
        [str(_binary()), "batch", "--model", model, "--input", pattern, "--output", str(out),
         "--data-dir", str(data), "--json"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _scored(out: Path) -> pa.Table:
    return ds.dataset(str(out), format="parquet").to_table().sort_by([("input_file", "ascending"), ("row", "ascending")])


def test_fraud_scores_pyarrow_files_as_onnxruntime_does(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _push(data, "fraud")
    rng = np.random.default_rng(11)
    inputs = tmp_path / "in"
    inputs.mkdir()
    xs = []
    for f in range(2):
        x = rng.normal(1.0, 1.5, size=(3_000, 12)).astype(np.float32)
        xs.append(x)
        cols = {"id": [f"t{f}-{i}" for i in range(len(x))]}
        cols.update({n: x[:, j] for j, n in enumerate(FEATURES)})
        cols["label"] = rng.integers(0, 2, len(x))
        pq.write_table(pa.table(cols), inputs / f"day-{f}.parquet", row_group_size=1_000)
    summary = _batch(data, "fraud", str(inputs / "*.parquet"), tmp_path / "out")
    assert summary["rows"] == 6_000 and summary["parts"] == 6, summary

    table = _scored(tmp_path / "out")
    assert table.column_names == ["input_file", "row", "probability", "is_fraud"]
    session = ort.InferenceSession(str(EXAMPLES / "fraud" / "1" / "model.onnx"))
    for f, x in enumerate(xs):
        name = str(inputs / f"day-{f}.parquet")
        mine = table.filter(pa.compute.equal(table["input_file"], name))
        assert mine["row"].to_pylist() == list(range(len(x)))
        prob, flag = session.run(None, {"features": x})
        np.testing.assert_allclose(mine["probability"].to_numpy(), prob.reshape(-1), atol=1e-6)
        assert mine["is_fraud"].to_pylist() == flag.reshape(-1).tolist()

    count, = duckdb.sql(f"select count(*) from read_parquet('{tmp_path / 'out'}/*.parquet')").fetchone()
    assert count == 6_000


def test_a_vector_output_is_a_list_column(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _push(data, "seqmean")
    tokens = np.random.default_rng(12).standard_normal((500, 5)).astype(np.float32)
    pq.write_table(pa.table({f"tokens[{i}]": tokens[:, i] for i in range(5)}), tmp_path / "t.parquet")
    _batch(data, "seqmean", str(tmp_path / "t.parquet"), tmp_path / "out")
    table = _scored(tmp_path / "out")
    assert pa.types.is_list(table.schema.field("scaled").type)
    assert pa.types.is_float32(table.schema.field("mean").type)
    session = ort.InferenceSession(str(EXAMPLES / "seqmean" / "1" / "model.onnx"))
    mean, scaled = session.run(None, {"tokens": tokens})
    np.testing.assert_allclose(np.array(table["scaled"].to_pylist()), scaled, atol=1e-6)
    np.testing.assert_allclose(table["mean"].to_numpy(), mean.reshape(-1), atol=1e-6)


def test_every_datatype_in_and_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _push(data, "dtypes")
    rng = np.random.default_rng(13)
    n = 400
    feeds = {
        "x_fp64": rng.standard_normal((n, 3)),
        "x_int32": rng.integers(-100, 100, (n, 3)).astype(np.int32),
        "x_int64": rng.integers(-100, 100, (n, 3)).astype(np.int64),
        "x_bool": rng.integers(0, 2, (n, 3)).astype(np.bool_),
        "x_fp32": rng.standard_normal((n, 3)).astype(np.float32),
        "x_fp16": rng.standard_normal((n, 3)).astype(np.float16),
        "x_uint8": rng.integers(0, 256, (n, 3)).astype(np.uint8),
    }
    cols = {f"{name}[{i}]": arr[:, i] for name, arr in feeds.items() for i in range(3)}
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    _batch(data, "dtypes", str(tmp_path / "d.parquet"), tmp_path / "out")
    table = _scored(tmp_path / "out")
    session = ort.InferenceSession(str(EXAMPLES / "dtypes" / "1" / "model.onnx"))
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    for name, expected in want.items():
        got = np.array(table[name].to_pylist())
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), atol=1e-3, err_msg=name)
