#!/usr/bin/env python3
"""Build ballast's gradient-boosted-tree models and test fixtures.

Deterministic (fixed seeds, one thread everywhere): running it twice produces
byte-identical files. Versions: see examples/requirements.txt (Python 3.11).
Reuses the synthetic fraud dataset of ``make_models.py`` (imported, not copied).

Writes (relative to the repository root):

    examples/models/fraud_xgb/1/model.json      XGBoost binary:logistic, 100 trees, depth 6
    examples/models/fraud_xgb/config.toml       (NaN allowed: it is "missing" for trees)
    crates/ballast-engine/tests/fixtures/trees/<case>/{model.json|model.txt|model.onnx, expected.json}
        (XGBoost cases also hold model.ubj: the same booster saved as UBJSON)
    crates/ballast-engine/benches/fixtures/fraud_xgb_300/{model.json, model.onnx}

``expected.json`` (one per case; NaN written as JSON null)::

    {"library": "xgboost 3.2.0", "kind": "xgboost|lightgbm|onnx", "objective": "...",
     "n_features": 6, "n_classes": 1,
     "input": {"name": "features", "datatype": "FP32|FP64", "shape": [200, 6], "data": [...]},
     "outputs": {"<name>": {"datatype": "FP32|FP64|INT64", "shape": [...], "data": [...]}},
     "margin": {...},        # raw scores; xgboost and lightgbm cases only
     "reference": {...}}     # onnx cases only: the source library's own predictions

Naming: XGBoost input ``features`` FP32 [N,F], outputs ``probability`` FP32 [N]
(binary), ``probabilities`` FP32 [N,C] (multiclass), ``prediction`` FP32 [N]
(regression); margin FP32 (``output_margin=True``). LightGBM: the same names,
FP64 everywhere (margin = ``raw_score=True``). ONNX: the graph's own names, as
onnxruntime returns them.

Every expected output is computed from the model *file* as written (reloaded),
not from the in-memory training object. Self-checks: onnxruntime vs xgboost for
every onnxmltools conversion (max |diff| <= 1e-5), and an independent pure-Python
walk of every XGBoost JSON / LightGBM text file (see ``xgb_json_margin`` and
``lgb_text_raw``: they document the decision rules the files encode) against the
library's margins.

Usage:  python examples/make_trees.py [--root REPO_ROOT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

sys.dont_write_bytecode = True     # no __pycache__ left in examples/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_models import FEATURE_NAMES, make_fraud_dataset, roc_auc  # noqa: E402

import lightgbm as lgb  # noqa: E402
import onnx  # noqa: E402
import onnxmltools  # noqa: E402
import onnxruntime as ort  # noqa: E402
import skl2onnx  # noqa: E402
import sklearn  # noqa: E402
import xgboost as xgb  # noqa: E402
from onnxmltools.convert.common.data_types import FloatTensorType as MlFloatTensorType  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

N_TEST = 200
N_BOUNDARY = 20          # last rows of every test input: one feature set exactly to a split threshold
SKL_OPSET = {"": 17, "ai.onnx.ml": 3}
ONNXMLTOOLS_OPSET = 15   # the highest onnxmltools 1.16's xgboost converter accepts
XGB_ONNX_TOL = 1e-5
DEMO_CONFIG = "max_batch_size = 64\nmax_queue_delay_ms = 0\nallow_non_finite = true\n"

XGB_LIB = f"xgboost {xgb.__version__}"
LGB_LIB = f"lightgbm {lgb.__version__}"
ORT_LIB = f"onnxruntime {ort.__version__}"

SUMMARY: list[tuple[str, str, str, int, int, str]] = []   # case, kind, objective, trees, bytes, check
SIZES: dict[str, int] = {}


# --------------------------------------------------------------------------
# Small synthetic datasets
# --------------------------------------------------------------------------

def synth_features(n: int, rng: np.random.Generator) -> np.ndarray:
    """Six features of different shapes; feature 3 is integer-valued, 4 is 0/1, 5 has many exact zeros."""
    x = np.column_stack([
        rng.normal(0.0, 1.0, n),
        rng.uniform(-2.0, 2.0, n),
        rng.exponential(1.5, n),
        rng.integers(0, 6, n).astype(np.float64),
        (rng.random(n) < 0.4).astype(np.float64),
        np.where(rng.random(n) < 0.35, 0.0, rng.normal(1.0, 1.0, n)),
    ])
    return np.round(x, 3)


def synth_score(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(x, nan=0.0)
    return (1.5 * np.sin(1.5 * x[:, 0]) + 1.0 * (x[:, 1] > 0.5) + 0.6 * x[:, 2] - 0.4 * x[:, 3]
            + 0.8 * x[:, 4] * x[:, 5] - 0.5 * (x[:, 5] == 0) - 0.6)


def add_nans(x: np.ndarray, rng: np.random.Generator, cols: list[int], frac: float) -> np.ndarray:
    x = x.copy()
    for c in cols:
        x[rng.random(len(x)) < frac, c] = np.nan
    return x


def make_task(kind: str, seed: int, n_train: int = 3000, n_classes: int = 3):
    """Returns (x_train, y_train, x_test); NaN in features 0, 2, 5 of both sets (test: also 1)."""
    rng = np.random.default_rng(seed)
    x = synth_features(n_train + N_TEST, rng)
    s = synth_score(x)
    if kind == "binary":
        y = (rng.random(len(x)) < 1.0 / (1.0 + np.exp(-2.0 * s))).astype(np.float64)
    elif kind == "regression":
        y = np.round(3.0 * s + rng.normal(0.0, 0.5, len(x)), 3)
    else:
        k = np.column_stack([s, np.cos(2.0 * np.nan_to_num(x[:, 0])) + x[:, 2] - 1.0,
                             0.7 * x[:, 1] - 0.5 * x[:, 3] + 1.0, x[:, 5] - x[:, 4]])[:, :n_classes]
        y = np.argmax(2.0 * k + rng.gumbel(size=k.shape), axis=1).astype(np.float64)
    x_tr, y_tr, x_te = x[:n_train], y[:n_train], x[n_train:]
    x_tr = add_nans(x_tr, rng, [0, 2, 5], 0.05)
    x_te = add_nans(x_te, rng, [0, 1, 2, 5], 0.10)
    x_te[5] = np.nan        # one row with every feature missing
    return x_tr, y_tr, x_te


def set_boundary_rows(x_te: np.ndarray, splits: list[tuple[int, float]], seed: int) -> np.ndarray:
    """The last N_BOUNDARY rows get one feature set exactly to a split threshold of the model."""
    x_te = x_te.copy()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(splits), size=min(N_BOUNDARY, len(splits)), replace=False)
    for i, p in enumerate(sorted(picks)):
        feat, thr = splits[p]
        x_te[N_TEST - N_BOUNDARY + i, feat] = thr
    return x_te


# --------------------------------------------------------------------------
# Independent readers of the model files (pure Python): executable format notes
# --------------------------------------------------------------------------

def xgb_base_margin(learner: dict) -> np.ndarray:
    """learner_model_param.base_score is a string: "[5E-1]" (xgboost 3.x: a vector, one value
    per output group). For binary:logistic it is a probability (margin = logit); for
    multi:softprob and reg:squarederror it is already a margin."""
    raw = learner["learner_model_param"]["base_score"].strip()
    vals = [float(v) for v in raw.strip("[]").split(",")]
    obj = learner["objective"]["name"]
    if obj in ("binary:logistic", "reg:logistic"):
        return np.array([math.log(v / (1.0 - v)) for v in vals])
    return np.array(vals)


def _xgb_tree_leaf(t: dict, row: np.ndarray, cats: dict[int, set[int]]) -> float:
    """Decision rules: NaN -> default_left (0/1 ints) picks the child; numerical
    (split_type 0): go left iff x < split_condition (float32 compare); categorical
    (split_type 1): the categories listed for the node go RIGHT, every other one
    (including unseen and negative codes) goes left. Leaves: left_children == -1,
    the leaf value is split_conditions[node] (also base_weights[node])."""
    left, right = t["left_children"], t["right_children"]
    nid = 0
    while left[nid] != -1:
        v = row[t["split_indices"][nid]]
        if math.isnan(v):
            nid = left[nid] if t["default_left"][nid] else right[nid]
        elif t["split_type"][nid] == 1:
            nid = right[nid] if (v >= 0 and int(v) in cats[nid]) else left[nid]
        else:
            nid = left[nid] if np.float32(v) < np.float32(t["split_conditions"][nid]) else right[nid]
    return float(np.float32(t["split_conditions"][nid]))


def xgb_json_margin(path: str, x: np.ndarray) -> np.ndarray:
    """Margins [N, groups] from an XGBoost JSON model file."""
    with open(path) as f:
        learner = json.load(f)["learner"]
    gb = learner["gradient_booster"]
    weights = None
    if gb["name"] == "dart":
        weights, gb = gb["weight_drop"], gb["gbtree"]
    model = gb["model"]
    base = xgb_base_margin(learner)
    out = np.tile(base, (len(x), 1))
    for i, (t, group) in enumerate(zip(model["trees"], model["tree_info"])):
        cats = {}
        for node, seg, size in zip(t["categories_nodes"], t["categories_segments"], t["categories_sizes"]):
            cats[node] = set(t["categories"][seg:seg + size])
        w = 1.0 if weights is None else weights[i]
        for r in range(len(x)):
            out[r, group] += w * _xgb_tree_leaf(t, x[r], cats)
    return out


def json_trees(path: str) -> list[dict]:
    with open(path) as f:
        gb = json.load(f)["learner"]["gradient_booster"]
    return (gb["gbtree"]["model"] if gb["name"] == "dart" else gb["model"])["trees"]


def xgb_numeric_splits(path: str) -> list[tuple[int, float]]:
    out = set()
    for t in json_trees(path):
        for nid, lc in enumerate(t["left_children"]):
            if lc != -1 and t["split_type"][nid] == 0:
                out.add((t["split_indices"][nid], float(np.float32(t["split_conditions"][nid]))))
    return sorted(out)


def lgb_parse(path: str) -> tuple[dict, list[dict]]:
    header, trees, cur = {}, [], None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Tree="):
                cur = {}
                trees.append(cur)
            elif line == "end of trees":
                break
            elif "=" in line:
                k, v = line.split("=", 1)
                (header if cur is None else cur)[k] = v
    return header, trees


def _lgb_ints(t, k):
    return [int(v) for v in t.get(k, "").split()]


def _lgb_floats(t, k):
    return [float(v) for v in t.get(k, "").split()]


def _lgb_tree_leaf(t: dict, row: np.ndarray) -> float:
    """decision_type bits: 1 = categorical, 2 = default_left, (dt >> 2) & 3 = missing type
    (0 None, 1 Zero, 2 NaN). Numerical: NaN becomes 0.0 unless missing type is NaN; a
    "missing" value (Zero: |x| <= 1e-35; NaN: isnan) follows default_left; otherwise go
    left iff x <= threshold (double). Categorical: NaN and negative values go right;
    threshold is an index i into cat_boundaries; cat_threshold[cat_boundaries[i] ..
    cat_boundaries[i+1]] is a bitset of uint32 words; category c in the set goes LEFT.
    Children: >= 0 internal node, < 0 leaf ~child."""
    if int(t["num_leaves"]) == 1:
        return _lgb_floats(t, "leaf_value")[0]
    feat, thr, dtype = _lgb_ints(t, "split_feature"), _lgb_floats(t, "threshold"), _lgb_ints(t, "decision_type")
    left, right, leaf = _lgb_ints(t, "left_child"), _lgb_ints(t, "right_child"), _lgb_floats(t, "leaf_value")
    cb, ct = _lgb_ints(t, "cat_boundaries"), _lgb_ints(t, "cat_threshold")
    n = 0
    while n >= 0:
        v, dt = float(row[feat[n]]), dtype[n]
        if dt & 1:
            if math.isnan(v) or not (-2.0 ** 31 < v < 2.0 ** 31) or int(v) < 0:
                go_left = False
            else:
                c, i = int(v), int(thr[n])
                words = ct[cb[i]:cb[i + 1]]
                go_left = c // 32 < len(words) and (words[c // 32] >> (c % 32)) & 1 == 1
        else:
            missing = (dt >> 2) & 3
            if math.isnan(v) and missing != 2:
                v = 0.0
            if (missing == 1 and abs(v) <= 1e-35) or (missing == 2 and math.isnan(v)):
                go_left = bool(dt & 2)
            else:
                go_left = v <= thr[n]
        n = left[n] if go_left else right[n]
    return leaf[~n]


def lgb_text_raw(path: str, x: np.ndarray) -> np.ndarray:
    """Raw scores [N, num_tree_per_iteration]; tree i adds to class i % K. The initial score
    (boost_from_average) is folded into the first iteration's leaves: there is no base score."""
    header, trees = lgb_parse(path)
    k = int(header["num_tree_per_iteration"])
    out = np.zeros((len(x), k))
    for i, t in enumerate(trees):
        for r in range(len(x)):
            out[r, i % k] += _lgb_tree_leaf(t, x[r])
    return out


def lgb_numeric_splits(path: str) -> list[tuple[int, float]]:
    _, trees = lgb_parse(path)
    out = set()
    for t in trees:
        if int(t["num_leaves"]) > 1:
            for f, th, dt in zip(_lgb_ints(t, "split_feature"), _lgb_floats(t, "threshold"),
                                 _lgb_ints(t, "decision_type")):
                if not dt & 1:
                    out.add((f, th))
    return sorted(out)


def onnx_numeric_splits(model: onnx.ModelProto) -> list[tuple[int, float]]:
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    a = {at.name: at for at in node.attribute}
    out = set()
    for f, v, mode in zip(a["nodes_featureids"].ints, a["nodes_values"].floats, a["nodes_modes"].strings):
        if mode != b"LEAF":
            out.add((int(f), float(np.float32(v))))
    return sorted(out)


# --------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------

def tensor(arr: np.ndarray, name: str | None = None) -> dict:
    arr = np.asarray(arr)
    dt = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.int64): "INT64",
          np.dtype(np.int32): "INT32"}[arr.dtype]
    flat = arr.reshape(-1)
    if arr.dtype.kind == "i":
        data = [int(v) for v in flat]
    else:
        # float() of a float32/float64 is exact; Python's repr round-trips it.
        data = [None if math.isnan(v) else float(v) for v in flat]
    out = {"name": name} if name is not None else {}
    out.update({"datatype": dt, "shape": list(arr.shape), "data": data})
    return out


def dump_expected(obj: dict) -> str:
    """One top-level key per line, each value compact; parses back to `obj`."""
    lines = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'), allow_nan=False)}" for k, v in obj.items()]
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    assert json.loads(text) == obj
    return text


def write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    SIZES[path] = len(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def ort_session(model_bytes: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort_session(model.SerializeToString())
    (inp,) = sess.get_inputs()
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {inp.name: x})))


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# --------------------------------------------------------------------------
# XGBoost
# --------------------------------------------------------------------------

def xgb_dmatrix(x: np.ndarray, feature_types: list[str] | None, y=None) -> xgb.DMatrix:
    if feature_types and "c" in feature_types:
        return xgb.DMatrix(x, label=y, missing=np.nan, feature_types=feature_types,
                           enable_categorical=True, nthread=1)
    return xgb.DMatrix(x, label=y, missing=np.nan, nthread=1)


def xgb_train_save(path: str, params: dict, x: np.ndarray, y: np.ndarray, rounds: int,
                   feature_types: list[str] | None = None) -> xgb.Booster:
    p = {"nthread": 1, "seed": 0, "tree_method": "hist"}
    p.update(params)
    booster = xgb.train(p, xgb_dmatrix(x.astype(np.float32), feature_types, y), rounds)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    booster.save_model(path)
    SIZES[path] = os.path.getsize(path)
    loaded = xgb.Booster(model_file=path)     # predictions come from the file as written
    loaded.set_param({"nthread": 1})
    return loaded


def xgb_predict(booster: xgb.Booster, x32: np.ndarray, feature_types=None) -> tuple[np.ndarray, np.ndarray]:
    d = xgb_dmatrix(x32, feature_types)
    rng = (0, booster.num_boosted_rounds())   # every tree (dart: weight_drop applied, no dropout)
    pred = booster.predict(d, iteration_range=rng).astype(np.float32)
    margin = booster.predict(d, output_margin=True, iteration_range=rng).astype(np.float32)
    return pred, margin


def check_xgb_file(label: str, path: str, x32: np.ndarray, margin: np.ndarray) -> float:
    """The walk sums in float64; xgboost accumulates float32 (base margin first, then tree by tree)."""
    walk = xgb_json_margin(path, x32)
    diff = max_abs(walk.reshape(margin.shape), margin)
    assert diff < 1e-6 * (1.0 + len(json_trees(path))), (label, diff)
    return diff


def xgb_case(root: str, case: str, params: dict, task: str, rounds: int, seed: int,
             x_tr=None, y_tr=None, x_te=None, feature_types=None) -> tuple[xgb.Booster, np.ndarray]:
    d = os.path.join(root, case)
    if x_tr is None:
        x_tr, y_tr, x_te = make_task(task, seed, n_classes=params.get("num_class", 3))
    path = os.path.join(d, "model.json")
    booster = xgb_train_save(path, params, x_tr, y_tr, rounds, feature_types)
    # The same model in UBJSON (XGBoost's default format since 2.1): must predict the same.
    ubj = os.path.join(d, "model.ubj")
    booster.save_model(ubj)
    SIZES[ubj] = os.path.getsize(ubj)
    x_te = set_boundary_rows(x_te, xgb_numeric_splits(path), seed + 1).astype(np.float32)
    pred, margin = xgb_predict(booster, x_te, feature_types)
    n_classes = int(params.get("num_class", 1))
    out_name = {"binary": "probability", "regression": "prediction", "multiclass": "probabilities"}[task]
    expected = {
        "library": XGB_LIB, "kind": "xgboost", "objective": params["objective"],
        "n_features": int(x_te.shape[1]), "n_classes": n_classes,
        "input": tensor(x_te, "features"),
        "outputs": {out_name: tensor(pred)},
        "margin": tensor(margin),
    }
    write_text(os.path.join(d, "expected.json"), dump_expected(expected))
    diff = check_xgb_file(case, path, x_te, margin)
    n_trees = len(booster.get_dump())
    SUMMARY.append((case, "xgboost", params["objective"], n_trees, SIZES[path],
                    f"json walk |diff| {diff:.2g}"))
    return booster, x_te


def xgb_categorical_data(seed: int):
    """4 numerical features + 2 categorical (codes 0..7 and 0..19 in training); the test set
    also has unseen codes (8..11, 20..24) and NaN in both."""
    rng = np.random.default_rng(seed)
    n = 3000 + N_TEST
    x = synth_features(n, rng)[:, :4]
    c1 = rng.integers(0, 8, n).astype(np.float64)
    c2 = rng.integers(0, 20, n).astype(np.float64)
    eff1 = np.array([1.2, -1.0, 2.0, 0.0, -2.0, 0.8, -0.3, 2.5])
    eff2 = np.round(rng.normal(0.0, 1.2, 20), 3)
    s = synth_score(np.column_stack([x, np.zeros(n), np.ones(n)])) + eff1[c1.astype(int)] + eff2[c2.astype(int)]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-1.5 * s))).astype(np.float64)
    x = np.column_stack([x, c1, c2])
    x_tr, y_tr, x_te = x[:3000], y[:3000], x[3000:].copy()
    x_tr = add_nans(x_tr, rng, [0, 4, 5], 0.04)
    x_te[::7, 4] = rng.integers(8, 12, len(x_te[::7]))       # unseen codes
    x_te[3::9, 5] = rng.integers(20, 25, len(x_te[3::9]))
    x_te = add_nans(x_te, rng, [0, 2, 4, 5], 0.08)
    return x_tr, y_tr, x_te


# --------------------------------------------------------------------------
# LightGBM
# --------------------------------------------------------------------------

def lgb_case(root: str, case: str, params: dict, task: str, rounds: int, seed: int,
             x_tr=None, y_tr=None, x_te=None, categorical=None) -> None:
    d = os.path.join(root, case)
    if x_tr is None:
        x_tr, y_tr, x_te = make_task(task, seed, n_classes=params.get("num_class", 3))
    p = {"num_threads": 1, "deterministic": True, "force_col_wise": True, "seed": 7, "verbosity": -1,
         "num_leaves": 12, "max_depth": 4, "learning_rate": 0.2}
    p.update(params)
    ds = lgb.Dataset(x_tr, y_tr, categorical_feature=categorical if categorical else "auto",
                     params={"verbosity": -1}, free_raw_data=False)
    booster = lgb.train(p, ds, rounds)
    path = os.path.join(d, "model.txt")
    os.makedirs(d, exist_ok=True)
    booster.save_model(path)
    SIZES[path] = os.path.getsize(path)
    loaded = lgb.Booster(model_file=path)
    x_te = set_boundary_rows(x_te, lgb_numeric_splits(path), seed + 1).astype(np.float64)
    pred = np.asarray(loaded.predict(x_te, num_threads=1), dtype=np.float64)
    raw = np.asarray(loaded.predict(x_te, raw_score=True, num_threads=1), dtype=np.float64)
    header, trees = lgb_parse(path)
    n_classes = int(header["num_class"])
    out_name = {"binary": "probability", "regression": "prediction", "multiclass": "probabilities"}[task]
    expected = {
        "library": LGB_LIB, "kind": "lightgbm", "objective": header["objective"],
        "n_features": int(x_te.shape[1]), "n_classes": n_classes,
        "input": tensor(x_te, "features"),
        "outputs": {out_name: tensor(pred)},
        "margin": tensor(raw),
    }
    write_text(os.path.join(d, "expected.json"), dump_expected(expected))
    walk = lgb_text_raw(path, x_te).reshape(raw.shape)
    diff = max_abs(walk, raw)
    assert diff < 1e-12, (case, diff)
    SUMMARY.append((case, "lightgbm", header["objective"], len(trees), SIZES[path], f"text walk |diff| {diff:.2g}"))


def lgb_categorical_data(seed: int):
    x_tr, y_tr, x_te = xgb_categorical_data(seed)
    x_te = x_te.copy()
    x_te[11::23, 4] = -1.0      # negative codes: LightGBM treats them as missing (right child)
    return x_tr, y_tr, x_te


# --------------------------------------------------------------------------
# ONNX (skl2onnx / onnxmltools)
# --------------------------------------------------------------------------

def onnx_case(root: str, case: str, model: onnx.ModelProto, x32: np.ndarray, objective: str,
              reference: dict[str, np.ndarray], compare: tuple[str, str] | None, tol: float | None) -> float:
    d = os.path.join(root, case)
    data = model.SerializeToString()
    path = os.path.join(d, "model.onnx")
    write_bytes(path, data)
    outs = ort_run(onnx.load_from_string(data), x32)
    n_classes = int(outs["probabilities"].shape[1]) if "probabilities" in outs else 1
    expected = {
        "library": ORT_LIB, "kind": "onnx", "objective": objective,
        "n_features": int(x32.shape[1]), "n_classes": n_classes,
        "input": tensor(x32, "features"),
        "outputs": {k: tensor(v) for k, v in outs.items()},
        "reference": {k: tensor(v) for k, v in reference.items()},
    }
    write_text(os.path.join(d, "expected.json"), dump_expected(expected))
    diff = float("nan")
    if compare:
        ort_name, ref_name = compare
        got = outs[ort_name]
        want = reference[ref_name]
        if ort_name == "probabilities" and want.ndim == 1:
            got = got[:, 1]
        diff = max_abs(got.reshape(want.shape), want)
        if tol is not None:
            assert diff <= tol, (case, diff)
    n_trees = len(set(onnx_tree_ids(model)))
    SUMMARY.append((case, "onnx", objective, n_trees, len(data), f"ORT vs {ref_name} |diff| {diff:.2g}"))
    return diff


def onnx_tree_ids(model: onnx.ModelProto) -> list[int]:
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    return list(next(a for a in node.attribute if a.name == "nodes_treeids").ints)


def canonical_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """skl2onnx lists opset_import in set order (varies with PYTHONHASHSEED) and sometimes lists
    the default domain twice; keep one entry per domain (its highest version), sorted by domain."""
    versions: dict[str, int] = {}
    for o in model.opset_import:
        versions[o.domain] = max(versions.get(o.domain, 0), o.version)
    del model.opset_import[:]
    for domain in sorted(versions):
        model.opset_import.append(onnx.helper.make_opsetid(domain, versions[domain]))
    onnx.checker.check_model(model, full_check=True)
    return model


# Both converters name the graph with a random UUID unless given a name.
def skl_to_onnx(est, n_features: int, classifier: bool, name: str) -> onnx.ModelProto:
    opts = {id(est): {"zipmap": False}} if classifier else None
    return canonical_opsets(skl2onnx.convert_sklearn(
        est, name=name, initial_types=[("features", FloatTensorType([None, n_features]))],
        options=opts, target_opset=SKL_OPSET))


def xgb_to_onnx(booster: xgb.Booster, n_features: int, name: str) -> onnx.ModelProto:
    return canonical_opsets(onnxmltools.convert_xgboost(
        booster, name=name, initial_types=[("features", MlFloatTensorType([None, n_features]))],
        target_opset=ONNXMLTOOLS_OPSET))


def check_xgb_onnx(label: str, model: onnx.ModelProto, booster: xgb.Booster, x32: np.ndarray) -> float:
    """Self-check: onnxruntime's probabilities equal xgboost's within XGB_ONNX_TOL."""
    prob_ort = ort_run(model, x32)["probabilities"][:, 1]
    prob_xgb = booster.predict(xgb_dmatrix(x32, None), iteration_range=(0, booster.num_boosted_rounds()))
    diff = max_abs(prob_ort, prob_xgb)
    print(f"  [self-check] {label}: onnxruntime vs xgboost probability max |diff| = {diff:.3g} "
          f"over {len(x32)} rows ({int(np.isnan(x32).any(axis=1).sum())} with NaN)")
    assert diff <= XGB_ONNX_TOL, (label, diff)
    return diff


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def fraud_data():
    """The fraud dataset and split of make_models.py, with ~2% NaN put into the training features."""
    x, y, _ = make_fraud_dataset(20_000)
    perm = np.random.default_rng(7).permutation(len(x))
    test_idx, train_idx = perm[:4_000], perm[4_000:]
    x_tr, y_tr, x_te, y_te = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    rng = np.random.default_rng(2024)
    x_tr = x_tr.copy()
    x_tr[rng.random(x_tr.shape) < 0.02] = np.nan
    x_te_nan = x_te.copy()
    x_te_nan[rng.random(x_te.shape) < 0.02] = np.nan
    return x_tr, y_tr, x_te, y_te, x_te_nan


FRAUD_PARAMS = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1}
# The demo model is pruned (gamma, min_child_weight) so its JSON stays under the 200 kB that
# make_models.py asserts for every file under examples/models; the benchmark model is not.
DEMO_PARAMS = {**FRAUD_PARAMS, "gamma": 1.0, "min_child_weight": 10}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    help="repository root receiving the files (default: the parent of this script's directory)")
    args = ap.parse_args()
    root = args.root
    fixtures = os.path.join(root, "crates", "ballast-engine", "tests", "fixtures", "trees")
    benches = os.path.join(root, "crates", "ballast-engine", "benches", "fixtures")
    print(f"{XGB_LIB}, {LGB_LIB}, scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, "
          f"onnxmltools {onnxmltools.__version__}, onnx {onnx.__version__}, {ORT_LIB}, numpy {np.__version__}")

    # ---- 1. demo model ------------------------------------------------------
    x_tr, y_tr, x_te, y_te, x_te_nan = fraud_data()
    assert x_tr.shape[1] == len(FEATURE_NAMES)
    demo_path = os.path.join(root, "examples", "models", "fraud_xgb", "1", "model.json")
    demo = xgb_train_save(demo_path, DEMO_PARAMS, x_tr, y_tr, 100)
    assert SIZES[demo_path] < 200_000, SIZES[demo_path]
    write_text(os.path.join(root, "examples", "models", "fraud_xgb", "config.toml"), DEMO_CONFIG)
    p_demo = demo.predict(xgb_dmatrix(x_te, None))
    print(f"fraud_xgb/1: {len(demo.get_dump())} trees, held-out AUC {roc_auc(y_te, p_demo):.4f} "
          f"(with 2% NaN in the held-out features: {roc_auc(y_te, demo.predict(xgb_dmatrix(x_te_nan, None))):.4f})")
    sample = x_te_nan[:N_TEST]
    m = demo.predict(xgb_dmatrix(sample, None), output_margin=True)
    diff = check_xgb_file("fraud_xgb", demo_path, sample, m.reshape(-1, 1))
    SUMMARY.append(("examples/models/fraud_xgb/1", "xgboost", "binary:logistic", len(demo.get_dump()),
                    SIZES[demo_path], f"json walk |diff| {diff:.2g}"))

    # ---- 2. engine fixtures ---------------------------------------------------
    onnx_diffs = {}
    xgb_bin, xgb_bin_x = xgb_case(fixtures, "xgb_binary", {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3},
                                  "binary", 20, 101)
    xgb_case(fixtures, "xgb_regression", {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.3},
             "regression", 20, 201)
    xgb_case(fixtures, "xgb_multiclass", {"objective": "multi:softprob", "num_class": 4, "max_depth": 3, "eta": 0.3},
             "multiclass", 10, 301)
    cx_tr, cy_tr, cx_te = xgb_categorical_data(401)
    xgb_case(fixtures, "xgb_categorical", {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3,
                                           "max_cat_to_onehot": 4},
             "binary", 20, 401, cx_tr, cy_tr, cx_te, feature_types=["q"] * 4 + ["c", "c"])
    xgb_case(fixtures, "xgb_base_score", {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3,
                                          "base_score": 0.3}, "binary", 15, 501)
    xgb_case(fixtures, "xgb_dart", {"objective": "binary:logistic", "booster": "dart", "max_depth": 4, "eta": 0.3,
                                    "rate_drop": 0.3, "skip_drop": 0.0, "sample_type": "uniform",
                                    "normalize_type": "tree"}, "binary", 20, 601)

    lgb_case(fixtures, "lgb_binary", {"objective": "binary"}, "binary", 20, 1101)
    lgb_case(fixtures, "lgb_regression", {"objective": "regression"}, "regression", 20, 1201)
    lgb_case(fixtures, "lgb_multiclass", {"objective": "multiclass", "num_class": 3}, "multiclass", 10, 1301)
    lx_tr, ly_tr, lx_te = lgb_categorical_data(1401)
    lgb_case(fixtures, "lgb_categorical", {"objective": "binary", "min_data_per_group": 20, "cat_smooth": 5,
                                           "max_cat_to_onehot": 4}, "binary", 20, 1401, lx_tr, ly_tr, lx_te,
             categorical=[4, 5])
    zx_tr, zy_tr, zx_te = make_task("binary", 1501)
    zx_te[::4, 5] = 0.0          # exact zeros (feature 5 already has ~35%), and in other features too
    zx_te[1::6, 0] = 0.0
    zx_te[2::6, 2] = 0.0
    lgb_case(fixtures, "lgb_missing_zero", {"objective": "binary", "zero_as_missing": True}, "binary", 20, 1501,
             zx_tr, zy_tr, zx_te)
    lgb_case(fixtures, "lgb_nan_as_missing_off", {"objective": "binary", "use_missing": False}, "binary", 20, 1601)

    # sklearn -> skl2onnx (finite inputs: sklearn trees reject NaN by default).
    for case, task, est, seed in [
        ("skl_rf_classifier", "multiclass",
         RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0, n_jobs=1), 2101),
        ("skl_gb_classifier", "binary",
         GradientBoostingClassifier(n_estimators=20, max_depth=3, learning_rate=0.2, random_state=0), 2201),
        ("skl_gb_regressor", "regression",
         GradientBoostingRegressor(n_estimators=20, max_depth=3, learning_rate=0.2, random_state=0), 2301),
        ("skl_rf_regressor", "regression",
         RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0, n_jobs=1), 2401),
    ]:
        x_tr_s, y_tr_s, x_te_s = make_task(task, seed, n_classes=3)
        x_tr_s = np.nan_to_num(x_tr_s, nan=0.0).astype(np.float32)
        x_te_s = np.nan_to_num(x_te_s, nan=0.0).astype(np.float32)
        classifier = task != "regression"
        est.fit(x_tr_s, y_tr_s.astype(np.int64) if classifier else y_tr_s)
        model = skl_to_onnx(est, x_tr_s.shape[1], classifier, case)
        x_te_s = set_boundary_rows(x_te_s.astype(np.float64), onnx_numeric_splits(model), seed + 1).astype(np.float32)
        if classifier:
            ref = {"predict_proba": np.asarray(est.predict_proba(x_te_s), np.float64),
                   "predict": np.asarray(est.predict(x_te_s), np.int64)}
            compare = ("probabilities", "predict_proba")
        else:
            ref = {"predict": np.asarray(est.predict(x_te_s), np.float64)}
            compare = ("variable", "predict")
        onnx_diffs[case] = onnx_case(fixtures, case, model, x_te_s, type(est).__name__, ref, compare, None)

    # xgboost -> onnxmltools (TreeEnsembleClassifier), same inputs as xgb_binary.
    xgb_onnx = xgb_to_onnx(xgb_bin, xgb_bin_x.shape[1], "onnx_xgb_binary")
    onnx_diffs["onnx_xgb_binary"] = check_xgb_onnx("onnx_xgb_binary", xgb_onnx, xgb_bin, xgb_bin_x)
    ref = {"xgboost_probability": xgb_bin.predict(xgb_dmatrix(xgb_bin_x, None)).astype(np.float32)}
    onnx_case(fixtures, "onnx_xgb_binary", xgb_onnx, xgb_bin_x, "binary:logistic", ref,
              ("probabilities", "xgboost_probability"), XGB_ONNX_TOL)

    # ---- 3. benchmark models --------------------------------------------------
    bench_json = os.path.join(benches, "fraud_xgb_300", "model.json")
    bench = xgb_train_save(bench_json, FRAUD_PARAMS, x_tr, y_tr, 300)
    bench_onnx = xgb_to_onnx(bench, x_tr.shape[1], "fraud_xgb_300")
    write_bytes(os.path.join(benches, "fraud_xgb_300", "model.onnx"), bench_onnx.SerializeToString())
    print(f"fraud_xgb_300: {len(bench.get_dump())} trees, held-out AUC "
          f"{roc_auc(y_te, bench.predict(xgb_dmatrix(x_te, None))):.4f}")
    onnx_diffs["fraud_xgb_300/model.onnx"] = check_xgb_onnx("fraud_xgb_300/model.onnx", bench_onnx, bench, x_te_nan)
    m = bench.predict(xgb_dmatrix(sample, None), output_margin=True)
    diff = check_xgb_file("fraud_xgb_300", bench_json, sample, m.reshape(-1, 1))
    SUMMARY.append(("benches/fixtures/fraud_xgb_300 (json)", "xgboost", "binary:logistic", len(bench.get_dump()),
                    SIZES[bench_json], f"json walk |diff| {diff:.2g}"))
    SUMMARY.append(("benches/fixtures/fraud_xgb_300 (onnx)", "onnx", "binary:logistic",
                    len(set(onnx_tree_ids(bench_onnx))),
                    SIZES[os.path.join(benches, "fraud_xgb_300", "model.onnx")],
                    f"ORT vs xgboost |diff| {onnx_diffs['fraud_xgb_300/model.onnx']:.2g}"))

    # ---- summary ----------------------------------------------------------------
    print()
    print(f"{'case':40s} {'kind':9s} {'objective':28s} {'trees':>5s} {'bytes':>9s}  check")
    for case, kind, obj, n_trees, size, check in SUMMARY:
        print(f"{case:40s} {kind:9s} {obj:28s} {n_trees:5d} {size:9d}  {check}")
    total = sum(SIZES.values())
    bench_total = sum(s for p, s in SIZES.items() if p.startswith(benches))
    print(f"\n{len(SIZES)} files, {total} bytes in all ({bench_total} bytes of benchmark models)")
    assert bench_total < 8_000_000, bench_total
    return 0


if __name__ == "__main__":
    sys.exit(main())
