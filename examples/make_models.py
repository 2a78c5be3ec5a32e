#!/usr/bin/env python3
"""Build the ballast example model repository.

Deterministic (fixed seeds): running it twice produces byte-identical files.
Dependencies: numpy + onnx to build and train; onnxruntime to compute the
expected outputs in ``fixtures/expected.json`` and to self-check every model.

Writes (relative to this file's directory):

    models/fraud/{1,2}/model.onnx    + models/fraud/config.toml
    faulty/fraud_reversed/model.onnx (v2 with its columns reversed: the demo's bad candidate)
    models/dtypes/1/model.onnx      + models/dtypes/config.toml
    models/seqmean/1/model.onnx     + models/seqmean/config.toml
    data/fraud_sample.csv           (raw features + label, ~500 rows)
    data/fraud_feature_names.txt
    fixtures/expected.json          (inputs + onnxruntime outputs, latest versions)

All graphs: ONNX ir_version 8, default-domain opset 13, only basic ops
(MatMul, Add, Relu, Sigmoid, Greater, Cast, Mul, Not, ReduceMean, Sub, Div),
first dimension dynamic ("batch").

Usage:  python examples/make_models.py [--out-dir examples]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
OPSET = 13
PRODUCER = "ballast-examples"

FEATURE_NAMES = [
    "amount_log",
    "hour_sin",
    "hour_cos",
    "merchant_risk",
    "distance_from_home_km_log",
    "velocity_1h",
    "velocity_24h",
    "card_age_days_log",
    "is_online",
    "is_foreign",
    "avg_amount_ratio",
    "failed_pin_attempts",
]
N_FEATURES = len(FEATURE_NAMES)

CONFIGS = {
    "fraud": "max_batch_size = 64\nmax_queue_delay_ms = 0\nallow_non_finite = false\n",
    "dtypes": "max_batch_size = 16\nmax_queue_delay_ms = 1\nallow_non_finite = false\n",
    "seqmean": "max_batch_size = 8\nmax_queue_delay_ms = 1\nallow_non_finite = true\n",
}

# ONNX element type -> (OIP datatype name, numpy dtype)
ONNX_TO_OIP = {
    TensorProto.FLOAT: ("FP32", np.float32),
    TensorProto.DOUBLE: ("FP64", np.float64),
    TensorProto.INT32: ("INT32", np.int32),
    TensorProto.INT64: ("INT64", np.int64),
    TensorProto.BOOL: ("BOOL", np.bool_),
    TensorProto.FLOAT16: ("FP16", np.float16),
    TensorProto.UINT8: ("UINT8", np.uint8),
}


# --------------------------------------------------------------------------
# Synthetic card-transaction dataset
# --------------------------------------------------------------------------

def make_fraud_dataset(n: int, seed: int = 20240601) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic card transactions; label depends non-linearly on features.

    Features are rounded to a few decimals and stored as float32, so the CSV
    written later holds exactly the values the model was trained/tested on.
    Returns (features float32 [n, 12], labels float32 [n], true fraud probability [n]).
    """
    rng = np.random.default_rng(seed)

    # Latent per-transaction context.
    is_online = (rng.random(n) < 0.35).astype(np.float64)
    is_foreign = (rng.random(n) < 0.06).astype(np.float64)
    # Hour of day: bimodal daytime distribution with a thin night tail.
    hour = np.where(
        rng.random(n) < 0.85,
        rng.normal(14.0, 4.0, n),
        rng.uniform(0.0, 24.0, n),
    ) % 24.0
    amount = np.exp(rng.normal(3.4, 1.1, n))  # median ~30 currency units
    amount += is_online * np.exp(rng.normal(2.5, 1.0, n))
    customer_avg = np.exp(rng.normal(3.5, 0.6, n))
    avg_amount_ratio = amount / customer_avg
    merchant_risk = rng.beta(2.0, 9.0, n)
    distance_km = np.exp(rng.normal(1.8, 1.3, n)) + is_foreign * np.exp(rng.normal(6.5, 0.7, n))
    velocity_1h = rng.poisson(0.4, n).astype(np.float64)
    velocity_24h = velocity_1h + rng.poisson(3.0, n)
    card_age_days = np.exp(rng.normal(6.0, 1.2, n))
    failed_pin = np.where(is_online > 0, 0, rng.poisson(0.08, n)).astype(np.float64)

    night = ((hour < 5.0) | (hour > 23.0)).astype(np.float64)
    new_card = (card_age_days < 30.0).astype(np.float64)

    def logit(intercept: float) -> np.ndarray:
        z = (
            intercept
            + 3.5 * np.tanh(3.0 * (merchant_risk - 0.3))           # saturating risk
            + 1.8 * np.maximum(np.log(avg_amount_ratio) - 0.7, 0)  # hinge: unusual spend
            + 2.5 * night * (np.log1p(amount) > 4.0)               # big spend at night
            + 2.5 * is_online * is_foreign                         # interaction
            + 1.2 * np.maximum(velocity_1h - 1.0, 0) ** 1.2        # bursts
            + 0.4 * np.maximum(velocity_24h - 6.0, 0)
            + 2.0 * new_card * (avg_amount_ratio > 1.5)            # new card, big spend
            + 3.0 * (failed_pin >= 2)
            + 0.6 * np.log1p(distance_km / 50.0)
            - 0.8 * (np.log1p(card_age_days) > 7.0)                # long-standing cards
        )
        return z

    # Calibrate intercept so the base fraud rate is ~2%.
    lo, hi = -20.0, 5.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if (1.0 / (1.0 + np.exp(-logit(mid)))).mean() > 0.02:
            hi = mid
        else:
            lo = mid
    p = 1.0 / (1.0 + np.exp(-logit(0.5 * (lo + hi))))
    y = (rng.random(n) < p).astype(np.float64)

    x = np.stack(
        [
            np.round(np.log1p(amount), 4),
            np.round(np.sin(2 * np.pi * hour / 24.0), 4),
            np.round(np.cos(2 * np.pi * hour / 24.0), 4),
            np.round(merchant_risk, 4),
            np.round(np.log1p(distance_km), 4),
            velocity_1h,
            velocity_24h,
            np.round(np.log1p(card_age_days), 4),
            is_online,
            is_foreign,
            np.round(avg_amount_ratio, 4),
            failed_pin,
        ],
        axis=1,
    ).astype(np.float32)
    return x, y.astype(np.float32), p


# --------------------------------------------------------------------------
# Training (numpy, Adam, binary cross-entropy)
# --------------------------------------------------------------------------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def init_mlp(sizes: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)))
        params.append(np.zeros(fan_out))
    return params


def mlp_forward(params, x):
    """Returns (logits, activations) for a ReLU MLP with a linear last layer."""
    acts = [x]
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        z = h @ w + b
        h = np.maximum(z, 0.0) if i < n_layers - 1 else z
        acts.append(h)
    return h, acts


def mlp_grads(params, acts, dlogits):
    grads = [None] * len(params)
    n_layers = len(params) // 2
    delta = dlogits
    for i in reversed(range(n_layers)):
        grads[2 * i] = acts[i].T @ delta
        grads[2 * i + 1] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ params[2 * i].T) * (acts[i] > 0)
    return grads


def train(params, x, y, *, epochs, lr, batch_size, seed, l2=1e-4):
    rng = np.random.default_rng(seed)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = 0
    y = y.reshape(-1, 1)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            logits, acts = mlp_forward(params, xb)
            dlogits = (_sigmoid(logits) - yb) / len(xb)
            grads = mlp_grads(params, acts, dlogits)
            t += 1
            for k, (p, g) in enumerate(zip(params, grads)):
                if p.ndim == 2:
                    g = g + l2 * p
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                mhat = m[k] / (1 - b1 ** t)
                vhat = v[k] / (1 - b2 ** t)
                p -= lr * mhat / (np.sqrt(vhat) + eps)
    return params


def roc_auc(y, score) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    y = np.asarray(y).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --------------------------------------------------------------------------
# ONNX graph builders
# --------------------------------------------------------------------------

def _finish(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(arr), name=name)


def build_fraud_model(params, mean, std, doc: str) -> onnx.ModelProto:
    """features -> (x-mean)/std -> [MatMul, Add, Relu]* -> MatMul, Add -> Sigmoid."""
    nodes = [
        helper.make_node("Sub", ["features", "feature_mean"], ["centered"], name="standardize_sub"),
        helper.make_node("Div", ["centered", "feature_std"], ["h0"], name="standardize_div"),
    ]
    inits = [
        _init("feature_mean", mean.astype(np.float32).reshape(1, -1)),
        _init("feature_std", std.astype(np.float32).reshape(1, -1)),
        _init("threshold", np.array([0.5], dtype=np.float32)),
    ]
    n_layers = len(params) // 2
    h = "h0"
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        inits.append(_init(f"W{i + 1}", w.astype(np.float32)))
        inits.append(_init(f"B{i + 1}", b.astype(np.float32)))
        nodes.append(helper.make_node("MatMul", [h, f"W{i + 1}"], [f"mm{i + 1}"], name=f"dense{i + 1}_matmul"))
        out = f"z{i + 1}"
        nodes.append(helper.make_node("Add", [f"mm{i + 1}", f"B{i + 1}"], [out], name=f"dense{i + 1}_bias"))
        if i < n_layers - 1:
            nodes.append(helper.make_node("Relu", [out], [f"h{i + 1}"], name=f"dense{i + 1}_relu"))
            h = f"h{i + 1}"
        else:
            h = out
    nodes.append(helper.make_node("Sigmoid", [h], ["probability"], name="sigmoid"))
    nodes.append(helper.make_node("Greater", ["probability", "threshold"], ["is_fraud"], name="threshold"))
    graph = helper.make_graph(
        nodes,
        "fraud",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", N_FEATURES])],
        outputs=[
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("is_fraud", TensorProto.BOOL, ["batch", 1]),
        ],
        initializer=inits,
    )
    return _finish(graph, doc)


def build_dtypes_model() -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Mul", ["x_fp64", "two_f64"], ["y_fp64"], name="mul_fp64"),
        helper.make_node("Add", ["x_int32", "one_i32"], ["y_int32"], name="add_int32"),
        helper.make_node("Mul", ["x_int64", "three_i64"], ["y_int64"], name="mul_int64"),
        helper.make_node("Not", ["x_bool"], ["y_bool"], name="not_bool"),
        helper.make_node("Cast", ["x_int32"], ["x_int32_as_f32"], name="cast_int32", to=TensorProto.FLOAT),
        helper.make_node("Add", ["x_fp32", "x_int32_as_f32"], ["y_fp32"], name="add_fp32"),
        # FP16 and UINT8 through Cast, which every engine implements for them.
        helper.make_node("Cast", ["x_fp16"], ["x_fp16_as_f32"], name="cast_fp16", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x_fp16_as_f32", "half_f32"], ["y_fp16_f32"], name="mul_fp16"),
        helper.make_node("Cast", ["y_fp16_f32"], ["y_fp16"], name="cast_to_fp16", to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["x_uint8"], ["x_uint8_as_i32"], name="cast_uint8", to=TensorProto.INT32),
        helper.make_node("Sub", ["max_u8_i32", "x_uint8_as_i32"], ["y_uint8_i32"], name="invert_uint8"),
        helper.make_node("Cast", ["y_uint8_i32"], ["y_uint8"], name="cast_to_uint8", to=TensorProto.UINT8),
    ]
    inits = [
        _init("two_f64", np.array([2.0], dtype=np.float64)),
        _init("one_i32", np.array([1], dtype=np.int32)),
        _init("three_i64", np.array([3], dtype=np.int64)),
        _init("half_f32", np.array([0.5], dtype=np.float32)),
        _init("max_u8_i32", np.array([255], dtype=np.int32)),
    ]
    graph = helper.make_graph(
        nodes,
        "dtypes",
        inputs=[
            vi("x_fp64", TensorProto.DOUBLE, ["batch", 3]),
            vi("x_int32", TensorProto.INT32, ["batch", 3]),
            vi("x_int64", TensorProto.INT64, ["batch", 3]),
            vi("x_bool", TensorProto.BOOL, ["batch", 3]),
            vi("x_fp32", TensorProto.FLOAT, ["batch", 3]),
            vi("x_fp16", TensorProto.FLOAT16, ["batch", 3]),
            vi("x_uint8", TensorProto.UINT8, ["batch", 3]),
        ],
        outputs=[
            vi("y_fp64", TensorProto.DOUBLE, ["batch", 3]),
            vi("y_int32", TensorProto.INT32, ["batch", 3]),
            vi("y_int64", TensorProto.INT64, ["batch", 3]),
            vi("y_bool", TensorProto.BOOL, ["batch", 3]),
            vi("y_fp32", TensorProto.FLOAT, ["batch", 3]),
            vi("y_fp16", TensorProto.FLOAT16, ["batch", 3]),
            vi("y_uint8", TensorProto.UINT8, ["batch", 3]),
        ],
        initializer=inits,
    )
    return _finish(graph, "Datatype round-trip: y_fp64=2x, y_int32=x+1, y_int64=3x, y_bool=!x, y_fp32=x_fp32+float(x_int32), y_fp16=x/2, y_uint8=255-x")


def build_seqmean_model() -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    nodes = [
        helper.make_node("ReduceMean", ["tokens"], ["mean"], name="mean", axes=[1], keepdims=1),
        helper.make_node("Mul", ["tokens", "half"], ["scaled"], name="scale"),
    ]
    graph = helper.make_graph(
        nodes,
        "seqmean",
        inputs=[vi("tokens", TensorProto.FLOAT, ["batch", "seq"])],
        outputs=[
            vi("mean", TensorProto.FLOAT, ["batch", 1]),
            vi("scaled", TensorProto.FLOAT, ["batch", "seq"]),
        ],
        initializer=[_init("half", np.array([0.5], dtype=np.float32))],
    )
    return _finish(graph, "Variable sequence length: mean over axis 1 (keepdims) and tokens*0.5")


# --------------------------------------------------------------------------
# Verification helpers (onnxruntime)
# --------------------------------------------------------------------------

def ort_session(model_bytes: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def check_model(name: str, model: onnx.ModelProto, sample_inputs: dict[str, np.ndarray]) -> None:
    """Runs in onnxruntime; checks dynamic batch dim and batch == row-wise outputs."""
    assert model.ir_version == IR_VERSION
    for vi in list(model.graph.input) + list(model.graph.output):
        d0 = vi.type.tensor_type.shape.dim[0]
        assert d0.dim_param == "batch" and not d0.HasField("dim_value"), (name, vi.name)
    sess = ort_session(model.SerializeToString())
    out_names = [o.name for o in sess.get_outputs()]
    full = sess.run(out_names, sample_inputs)
    n = next(iter(sample_inputs.values())).shape[0]
    max_diff = 0.0
    for r in range(n):
        row = sess.run(out_names, {k: v[r:r + 1] for k, v in sample_inputs.items()})
        for oname, a, b in zip(out_names, full, row):
            assert a.shape[1:] == b.shape[1:], (name, oname)
            if a.dtype.kind == "f":
                np.testing.assert_allclose(a[r:r + 1], b, rtol=1e-6, atol=1e-7, err_msg=f"{name}.{oname} row {r}")
                max_diff = max(max_diff, float(np.max(np.abs(a[r:r + 1].astype(np.float64) - b))))
            else:
                np.testing.assert_array_equal(a[r:r + 1], b, err_msg=f"{name}.{oname} row {r}")
    print(f"  [check] {name}: onnxruntime OK, batch of {n} == row-wise (max |diff| {max_diff:.3g})")


def _tensor_json(name: str, arr: np.ndarray) -> dict:
    dt = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.int32): "INT32",
          np.dtype(np.int64): "INT64", np.dtype(np.bool_): "BOOL",
          np.dtype(np.float16): "FP16", np.dtype(np.uint8): "UINT8"}[arr.dtype]
    flat = arr.reshape(-1)
    if arr.dtype == np.bool_:
        data = [bool(v) for v in flat]
    elif arr.dtype.kind in "iu":
        data = [int(v) for v in flat]
    else:
        assert np.all(np.isfinite(flat)), name
        # float(np.float32) is the exact value; it round-trips to the same f32.
        data = [float(v) for v in flat]
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": data}


def expected_case(model_name: str, version: str, model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict:
    sess = ort_session(model.SerializeToString())
    out_names = [o.name for o in sess.get_outputs()]
    outs = sess.run(out_names, inputs)
    in_order = [i.name for i in model.graph.input]
    return {
        "model": model_name,
        "version": version,
        "inputs": [_tensor_json(n, inputs[n]) for n in in_order],
        "outputs": [_tensor_json(n, o) for n, o in zip(out_names, outs)],
    }


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _write_text(path: str, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="directory receiving models/, data/, fixtures/ (default: this script's directory)")
    args = ap.parse_args()
    out = args.out_dir
    models_dir = os.path.join(out, "models")

    # ---- fraud dataset ----------------------------------------------------
    x, y, p_true = make_fraud_dataset(20_000)
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(x))
    n_test = 4_000
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    x_tr, y_tr, x_te, y_te = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    print(f"fraud dataset: {len(x)} rows, fraud rate {y.mean():.4f} "
          f"(train {len(x_tr)}, held-out {len(x_te)}, held-out fraud {int(y_te.sum())}); "
          f"held-out AUC of the true generating probability (ceiling) = {roc_auc(y_te, p_true[test_idx]):.4f}")

    mean = x_tr.astype(np.float64).mean(axis=0)
    std = x_tr.astype(np.float64).std(axis=0)
    std[std < 1e-6] = 1.0
    # Standardise exactly as the graph will (float32 Sub/Div).
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    z_tr = ((x_tr - mean32) / std32).astype(np.float64)

    fraud_models = {}
    # v1: logistic regression, 2 epochs.
    p1 = init_mlp([N_FEATURES, 1], np.random.default_rng(11))
    p1 = train(p1, z_tr, y_tr, epochs=2, lr=0.01, batch_size=256, seed=12)
    fraud_models["1"] = (p1, "fraud v1: logistic regression 12->1 (numpy Adam, 2 epochs); input raw features, standardised in-graph")
    # v2: MLP 12 -> 32 -> 16 -> 1.
    p2 = init_mlp([N_FEATURES, 32, 16, 1], np.random.default_rng(21))
    p2 = train(p2, z_tr, y_tr, epochs=60, lr=0.001, batch_size=128, seed=22, l2=1e-3)
    fraud_models["2"] = (p2, "fraud v2: MLP 12->32->16->1 ReLU (numpy Adam, 60 epochs); input raw features, standardised in-graph")

    built: dict[str, dict[str, onnx.ModelProto]] = {"fraud": {}, "dtypes": {}, "seqmean": {}}
    for ver, (params, doc) in fraud_models.items():
        model = build_fraud_model(params, mean32, std32, doc)
        built["fraud"][ver] = model
        sess = ort_session(model.SerializeToString())
        prob, flag = sess.run(["probability", "is_fraud"], {"features": x_te})
        prob, flag = prob.ravel(), flag.ravel()
        acc = float(((prob > 0.5) == (y_te > 0.5)).mean())
        tp = int(np.sum(flag & (y_te > 0.5)))
        prec = tp / max(int(flag.sum()), 1)
        rec = tp / max(int(y_te.sum()), 1)
        print(f"fraud v{ver} held-out (onnxruntime): AUC={roc_auc(y_te, prob):.4f} accuracy={acc:.4f} "
              f"precision@0.5={prec:.3f} recall@0.5={rec:.3f} flagged={int(flag.sum())} "
              f"(majority-class accuracy={1 - y_te.mean():.4f})")

    # A faulty candidate for the demo's rollout, outside the model repository (so no server of
    # examples/models serves it): v2 exported by a pipeline whose feature columns came out in
    # reverse order (it computes v2 of the reversed row). Its scores diverge from v2's.
    p_rev = [p2[0][::-1].copy()] + list(p2[1:])
    faulty = build_fraud_model(p_rev, mean32[::-1].copy(), std32[::-1].copy(),
                               "fraud candidate (faulty on purpose): v2 with its feature columns in reverse order")
    _write_bytes(os.path.join(out, "faulty", "fraud_reversed", "model.onnx"), faulty.SerializeToString())

    built["dtypes"]["1"] = build_dtypes_model()
    built["seqmean"]["1"] = build_seqmean_model()

    for name, versions in built.items():
        for ver, model in versions.items():
            _write_bytes(os.path.join(models_dir, name, ver, "model.onnx"), model.SerializeToString())
        _write_text(os.path.join(models_dir, name, "config.toml"), CONFIGS[name])

    # ---- data files -------------------------------------------------------
    sample_idx = np.sort(np.random.default_rng(99).choice(len(x_te), size=500, replace=False))
    lines = [",".join(FEATURE_NAMES + ["label"])]
    for r in sample_idx:
        lines.append(",".join([str(np.float32(v)) for v in x_te[r]] + [str(int(y_te[r]))]))
    _write_text(os.path.join(out, "data", "fraud_sample.csv"), "\n".join(lines) + "\n")
    _write_text(os.path.join(out, "data", "fraud_feature_names.txt"), "\n".join(FEATURE_NAMES) + "\n")
    # CSV round-trip must give back exactly the float32 values.
    back = np.loadtxt(os.path.join(out, "data", "fraud_sample.csv"), delimiter=",", skiprows=1, dtype=np.float64)
    assert np.array_equal(back[:, :N_FEATURES].astype(np.float32), x_te[sample_idx])
    print(f"fraud_sample.csv: 500 rows, {int(y_te[sample_idx].sum())} fraud")

    # ---- fixtures + checks ------------------------------------------------
    frng = np.random.default_rng(1234)
    cases = []
    for batch in (1, 3, 7):
        # fraud: real rows from the sample (includes fraud rows for the larger batches).
        fraud_rows = sample_idx[frng.choice(len(sample_idx), size=batch, replace=False)]
        if batch == 7:
            pos = sample_idx[y_te[sample_idx] > 0.5]
            fraud_rows[:2] = pos[:2]
        fraud_in = {"features": np.ascontiguousarray(x_te[fraud_rows])}

        dtypes_in = {
            "x_fp64": np.round(frng.normal(0, 100, (batch, 3)), 6).astype(np.float64),
            "x_int32": frng.integers(-1000, 1000, (batch, 3), dtype=np.int32),
            "x_int64": frng.integers(-(2 ** 40), 2 ** 40, (batch, 3), dtype=np.int64),
            "x_bool": frng.random((batch, 3)) < 0.5,
            "x_fp32": frng.normal(0, 10, (batch, 3)).astype(np.float32),
            "x_fp16": frng.normal(0, 10, (batch, 3)).astype(np.float16),
            "x_uint8": frng.integers(0, 256, (batch, 3), dtype=np.uint8),
        }
        seq_in = {"tokens": frng.normal(0, 3, (batch, 5)).astype(np.float32)}

        for name, ins in (("fraud", fraud_in), ("dtypes", dtypes_in), ("seqmean", seq_in)):
            latest = max(built[name], key=int)
            cases.append(expected_case(name, latest, built[name][latest], ins))
            if batch == 7:
                for ver, model in built[name].items():
                    check_model(f"{name}/{ver}", model, ins)

    # seqmean also works with another sequence length (dynamic non-batch dim).
    check_model("seqmean/1 (seq=11)", built["seqmean"]["1"],
                {"tokens": frng.normal(0, 1, (4, 11)).astype(np.float32)})

    fixtures = json.dumps(cases, indent=1)
    _write_text(os.path.join(out, "fixtures", "expected.json"), fixtures + "\n")
    print(f"expected.json: {len(cases)} cases")

    for root, _, files in os.walk(out):
        for f in files:
            p = os.path.join(root, f)
            if any(s in p for s in ("/models/", "/data/", "/fixtures/")):
                size = os.path.getsize(p)
                assert size < 200_000, (p, size)
                print(f"  wrote {os.path.relpath(p, out)} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
