"""Prediction logs read by the tools users read them with: pyarrow and duckdb.

A server of its own (``ballast serve`` on a copy of ``examples/models``, its own
``--data-dir``) answers requests from the real ``tritonclient`` over HTTP and gRPC,
for the fraud model (FP32) and the datatype model (every datatype it declares);
SIGTERM rolls its log into Parquet segments. Then:

* pyarrow reads every segment file on its own and all of them as one dataset;
* duckdb reads them with ``read_parquet('<data-dir>/logs/segments/**/*.parquet')``;
* each request's id, model, version, status and its input and output values, as
  logged, equal what was sent and answered;
* ``ballast logs query --json`` agrees with both.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from test_repository import _binary, _repo, servers  # noqa: F401

OIP_TO_NP = {
    "BOOL": np.bool_, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}


def _inputs(meta: dict, rows: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, str]]:
    out = {}
    for spec in meta["inputs"]:
        shape = [rows if d == -1 else d for d in spec["shape"]]
        dt = spec["datatype"]
        if dt == "BYTES":
            arr = np.array([f"note {i}".encode() for i in range(int(np.prod(shape)))], dtype=np.object_).reshape(shape)
        elif dt == "BOOL":
            arr = rng.integers(0, 2, shape).astype(np.bool_)
        elif dt in ("UINT8", "INT32", "INT64"):
            arr = rng.integers(0, 100, shape).astype(OIP_TO_NP[dt])
        else:
            arr = rng.standard_normal(shape).astype(OIP_TO_NP[dt])
        out[spec["name"]] = (arr, dt)
    return out


def _send(server, model: str, transport: str, request_id: str, inputs) -> dict[str, np.ndarray]:
    mod = httpclient if transport == "http" else grpcclient
    client = server.http if transport == "http" else server.grpc
    ins = []
    for name, (arr, dt) in inputs.items():
        i = mod.InferInput(name, list(arr.shape), dt)
        i.set_data_from_numpy(arr)
        ins.append(i)
    res = client.infer(model, ins, request_id=request_id)
    meta = server.http.get_model_metadata(model)
    return {o["name"]: res.as_numpy(o["name"]) for o in meta["outputs"]}


def test_pyarrow_and_duckdb_read_every_segment_and_the_values_are_what_was_sent(tmp_path, servers):
    repo = _repo(tmp_path, "fraud", "dtypes")
    server = servers(repo)
    rng = np.random.default_rng(33)
    sent = {}
    for model in ("fraud", "dtypes"):
        meta = server.http.get_model_metadata(model)
        for transport in ("http", "grpc"):
            for k in range(5):
                rid = f"{model}-{transport}-{k}"
                inputs = _inputs(meta, rows=2, rng=rng)
                outputs = _send(server, model, transport, rid, inputs)
                sent[rid] = (model, meta["versions"][-1] if meta.get("versions") else None, inputs, outputs)
    server.stop()

    logs = server.data_dir / "logs"
    files = sorted(p for p in logs.rglob("*.parquet") if not any(part.startswith(".") for part in p.parts))
    assert files, f"no segments under {logs}"
    assert not list((logs / "wal").glob("*.wal")), "a clean stop leaves no WAL behind"
    rows = 0
    for f in files:
        t = pq.read_table(f)
        rows += t.num_rows
        assert t.schema.field("time").type.tz == "UTC"
        assert "inputs" in t.schema.names and "outputs" in t.schema.names
    assert rows == len(sent), f"{rows} rows for {len(sent)} requests"

    dataset = ds.dataset(logs / "segments", format="parquet")
    assert dataset.count_rows() == len(sent)

    con = duckdb.connect()
    glob = str(logs / "segments" / "**" / "*.parquet")
    got = con.execute(
        f"SELECT id, model, version, status, inputs, outputs FROM read_parquet('{glob}', union_by_name = true) ORDER BY id"
    ).fetchall()
    assert len(got) == len(sent)
    by_id = {r[0]: r for r in got}
    assert set(by_id) == set(sent)
    for rid, (model, _, inputs, outputs) in sent.items():
        _, m, version, status, ins, outs = by_id[rid]
        assert (m, status) == (model, "ok")
        assert version
        for name, (arr, dt) in inputs.items():
            logged = ins[name]
            flat = arr.reshape(-1)
            assert len(logged) == flat.size, (rid, name)
            if dt == "BYTES":
                assert logged == [b.decode() for b in flat], (rid, name)
            else:
                np.testing.assert_allclose(np.array(logged, dtype=np.float64), flat.astype(np.float64), rtol=1e-6, err_msg=f"{rid} {name}")
        for name, arr in outputs.items():
            flat = arr.reshape(-1)
            if flat.dtype == np.object_:
                assert outs[name] == [b.decode() if isinstance(b, bytes) else str(b) for b in flat]
            else:
                np.testing.assert_allclose(np.array(outs[name], dtype=np.float64), flat.astype(np.float64), rtol=1e-6, err_msg=f"{rid} {name}")

    out = subprocess.run(
        [str(_binary()), "logs", "query", "--json", "--data-dir", str(server.data_dir), "--model", "fraud"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    queried = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(q["id"] for q in queried) == sorted(r for r in sent if r.startswith("fraud-"))
    for q in queried:
        assert q["outputs"]["probability"] == [float(x) for x in by_id[q["id"]][5]["probability"]]
