#!/usr/bin/env python3
"""Build the scikit-learn → ONNX test matrix: common estimators and pipelines exported with
skl2onnx, as a new user exports them, with scikit-learn's own predictions.

Deterministic (fixed seeds): running it twice produces identical files. Versions: see
tests/interop/requirements.txt (Python 3.11).

Writes (relative to the repository root):

    crates/ballast-engine/tests/fixtures/sklearn/<case>/{model.onnx, expected.json}

``expected.json`` (NaN written as JSON null)::

    {"library": "scikit-learn 1.9.1, skl2onnx 1.20.0, onnxruntime 1.32.0",
     "task": "classifier|regressor|transform",
     "input": {"name": "X", "datatype": "FP32|BYTES", "shape": [N, F], "data": [...]},
     "sklearn": {"label": {...}, "probabilities": {...}}    # or {"prediction": {...}}
     "names": {"label": "<onnx output>", "probabilities": "<onnx output>"},
     "onnxruntime": {"<onnx output>": {...}}}                # what onnxruntime returned

A ZipMap output (``zipmap=True``, skl2onnx's default) appears in ``onnxruntime`` as the
probability matrix, columns in class order: that is what ballast serves for it.

Usage:  python examples/make_sklearn.py [--root REPO_ROOT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (Binarizer, LabelEncoder, MinMaxScaler, Normalizer,
                                   OneHotEncoder, StandardScaler)
from sklearn.svm import LinearSVC

warnings.filterwarnings("ignore")
OPSET = {"": 17, "ai.onnx.ml": 3}
LIB = f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnxruntime {ort.__version__}"
N_TEST = 64


def tensor(arr: np.ndarray, name: str | None = None) -> dict:
    arr = np.asarray(arr)
    out = {"name": name} if name is not None else {}
    if arr.dtype.kind in "OUS":
        out.update({"datatype": "BYTES", "shape": list(arr.shape),
                    "data": [str(v) for v in arr.reshape(-1)]})
        return out
    dt = {"f4": "FP32", "f8": "FP64", "i8": "INT64", "i4": "INT32"}[arr.dtype.str[1:]]
    flat = arr.reshape(-1)
    if arr.dtype.kind == "i":
        data = [int(v) for v in flat]
    else:
        data = [None if math.isnan(v) else float(v) for v in flat]
    out.update({"datatype": dt, "shape": list(arr.shape), "data": data})
    return out


def dump(obj: dict) -> str:
    lines = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'), allow_nan=False)}"
             for k, v in obj.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def ort_outputs(model: onnx.ModelProto, x: np.ndarray) -> dict:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))
    out = {}
    for name, value in got.items():
        if isinstance(value, list):   # ZipMap: list of {class: probability}
            keys = list(value[0].keys())
            value = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
        out[name] = value
    return out


def data(task: str, seed: int, n_classes: int = 3, n_features: int = 8):
    if task == "classifier":
        x, y = make_classification(400 + N_TEST, n_features, n_informative=5,
                                   n_classes=n_classes, random_state=seed)
    else:
        x, y = make_regression(400 + N_TEST, n_features, noise=5.0, random_state=seed)
    x = x.astype(np.float32)
    return x[:400], y[:400], x[400:]


def with_nans(x: np.ndarray, seed: int, frac: float = 0.1) -> np.ndarray:
    x = x.copy()
    rng = np.random.default_rng(seed)
    x[rng.random(x.shape) < frac] = np.nan
    return x


def write_case(root: str, case: str, model, x_te: np.ndarray, task: str, zipmap=None):
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    opts = None if zipmap is None else {id(final): {"zipmap": zipmap}}
    onx = to_onnx(model, x_te[:1], options=opts, target_opset=OPSET)
    input_name = onx.graph.input[0].name
    d = os.path.join(root, case)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    got = ort_outputs(onx, x_te)
    out_names = [o.name for o in onx.graph.output]
    expected = {"library": LIB, "task": task, "input": tensor(x_te, input_name)}
    if task == "classifier":
        label = model.predict(x_te)
        if hasattr(model, "predict_proba"):
            scores = model.predict_proba(x_te)
        else:
            scores = model.decision_function(x_te)
        if label.dtype.kind in "OUS":
            label = label.astype(str)
        expected["sklearn"] = {"label": tensor(np.asarray(label)),
                               "probabilities": tensor(np.asarray(scores, np.float64))}
        expected["names"] = {"label": out_names[0], "probabilities": out_names[1]}
    elif task == "regressor":
        expected["sklearn"] = {"prediction": tensor(np.asarray(model.predict(x_te), np.float64))}
        expected["names"] = {"prediction": out_names[0]}
    else:
        expected["sklearn"] = {"transform": tensor(np.asarray(model.transform(x_te)))}
        expected["names"] = {"transform": out_names[0]}
    expected["onnxruntime"] = {k: tensor(v) for k, v in got.items()}
    with open(os.path.join(d, "expected.json"), "w") as f:
        f.write(dump(expected))
    ops = sorted({n.op_type for n in onx.graph.node})
    print(f"{case:32s} {', '.join(ops)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    args = ap.parse_args()
    root = os.path.join(args.root, "crates/ballast-engine/tests/fixtures/sklearn")

    classifiers = {
        "logreg_binary": lambda: (LogisticRegression(), data("classifier", 1, 2)),
        "logreg_multiclass": lambda: (LogisticRegression(max_iter=500), data("classifier", 2)),
        "scaler_logreg": lambda: (make_pipeline(StandardScaler(), LogisticRegression()),
                                  data("classifier", 3)),
        "mlp_classifier": lambda: (MLPClassifier(hidden_layer_sizes=(16,), max_iter=400,
                                                 random_state=0), data("classifier", 4)),
        "mlp_binary": lambda: (MLPClassifier(hidden_layer_sizes=(8,), activation="tanh",
                                             max_iter=400, random_state=0),
                               data("classifier", 5, 2)),
        "normalizer_binarizer_logreg": lambda: (
            make_pipeline(Normalizer(), Binarizer(threshold=0.1), LogisticRegression()),
            data("classifier", 6)),
        "scaler_rf_classifier": lambda: (
            make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=8, max_depth=4,
                                                                   random_state=0)),
            data("classifier", 7)),
        "string_labels": lambda: (LogisticRegression(max_iter=500), data("classifier", 8)),
    }
    for case, make in classifiers.items():
        model, (x, y, x_te) = make()
        if case == "string_labels":
            y = np.array(["fraud", "ok", "review"])[y]
        model.fit(x, y)
        for zipmap in (True, False):
            write_case(root, f"{case}_{'zipmap' if zipmap else 'tensor'}", model, x_te,
                       "classifier", zipmap)

    # Imputation: NaN in training and test data; the graph's Imputer makes NaN "missing".
    x, y, x_te = data("classifier", 9)
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(with_nans(x, 1), y)
    write_case(root, "imputer_scaler_logreg_zipmap", model, with_nans(x_te, 2), "classifier", True)

    # Categorical columns one-hot encoded beside scaled numeric ones.
    x, y, x_te = data("classifier", 10)
    rng = np.random.default_rng(0)
    for xs in (x, x_te):
        xs[:, 6] = rng.integers(0, 4, len(xs))
        xs[:, 7] = rng.integers(0, 3, len(xs))
    x_te[:3, 6] = 9  # a category never seen in training: handle_unknown="ignore"
    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3, 4, 5]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), [6, 7])]),
        LogisticRegression(max_iter=500))
    model.fit(x, y)
    write_case(root, "column_transformer_onehot_zipmap", model, x_te, "classifier", True)

    x, y, x_te = data("classifier", 11)
    write_case(root, "linear_svc", LinearSVC().fit(x, y), x_te, "classifier", None)

    regressors = {
        "linear_regression": lambda: LinearRegression(),
        "imputer_minmax_ridge": lambda: make_pipeline(SimpleImputer(strategy="median"),
                                                      MinMaxScaler(), Ridge()),
        "mlp_regressor": lambda: MLPRegressor(hidden_layer_sizes=(16,), max_iter=600,
                                              random_state=0),
        "scaler_rf_regressor": lambda: make_pipeline(
            StandardScaler(), RandomForestRegressor(n_estimators=8, max_depth=4, random_state=0)),
    }
    for i, (case, make) in enumerate(regressors.items()):
        x, y, x_te = data("regressor", 20 + i)
        if case == "imputer_minmax_ridge":
            x, x_te = with_nans(x, 3), with_nans(x_te, 4)
        write_case(root, case, make().fit(x, y), x_te, "regressor")

    # LabelEncoder on strings (a preprocessing step users export on its own).
    words = np.array(["visa", "amex", "mastercard", "discover"])
    enc = LabelEncoder().fit(words)
    x_te = words[np.random.default_rng(1).integers(0, 4, 16)]
    onx = to_onnx(enc, x_te[:1], target_opset=OPSET)
    d = os.path.join(root, "label_encoder")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    got = ort_outputs(onx, x_te)
    expected = {"library": LIB, "task": "transform",
                "input": tensor(x_te, onx.graph.input[0].name),
                "sklearn": {"transform": tensor(enc.transform(x_te).astype(np.int64))},
                "names": {"transform": onx.graph.output[0].name},
                "onnxruntime": {k: tensor(v) for k, v in got.items()}}
    with open(os.path.join(d, "expected.json"), "w") as f:
        f.write(dump(expected))
    print(f"{'label_encoder':32s} {', '.join(sorted({n.op_type for n in onx.graph.node}))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
