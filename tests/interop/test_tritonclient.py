"""Interop suite: the real NVIDIA ``tritonclient`` (HTTP + gRPC) against ballast.

Every output is compared with the model's own library run locally on the same
model file the server serves: onnxruntime (CPUExecutionProvider) for
``model.onnx``, xgboost for ``model.json``, lightgbm for ``model.txt``.

Tree models (XGBoost JSON, LightGBM text) are served with one input
``features`` [-1, n_features] (FP32 for XGBoost, FP64 for LightGBM) and one
output named after the objective: ``probability`` [-1] (binary),
``probabilities`` [-1, n_classes] (multiclass), ``prediction`` [-1] (anything
else); same datatype as the input. Where the model's config.toml has
``allow_non_finite = true``, requests sent as binary tensors (HTTP binary, gRPC)
carry a few NaN ("missing") feature values; JSON requests cannot carry NaN.

Environment (all required except the repository):

    BALLAST_HTTP_URL          host:port of the HTTP endpoint, no scheme (127.0.0.1:8000)
    BALLAST_GRPC_URL          host:port of the gRPC endpoint (127.0.0.1:8001)
    BALLAST_MODEL_REPOSITORY  model repository the server was started with
                              (default: examples/models, relative to the cwd
                              or to the repository root)

Run:

    pip install -r tests/interop/requirements.txt
    BALLAST_HTTP_URL=127.0.0.1:8000 BALLAST_GRPC_URL=127.0.0.1:8001 \
        python -m pytest tests/interop -v

Nothing is skipped: missing variables or an empty repository make the run fail
with a message saying what to set.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path

import lightgbm
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import xgboost
from tritonclient.utils import InferenceServerException

REPO_ROOT = Path(__file__).resolve().parents[2]

FLOAT_RTOL = 1e-5
FLOAT_ATOL = 1e-6
TREE_RTOL = 1e-6     # xgboost / lightgbm models: the server runs its own evaluator
TREE_ATOL = 1e-6
NAN_PER_INPUT = 3    # NaN values put into a tree model's binary-mode request
BATCH = 3          # value used for the first (batch) -1 dimension
OTHER_DYN = 5      # value used for every other -1 dimension
UNKNOWN_MODEL = "ballast_interop_no_such_model"

ONNX_TO_OIP = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.FLOAT16: "FP16",
}
OIP_TO_NP = {
    "FP32": np.float32, "FP64": np.float64, "FP16": np.float16,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "BOOL": np.bool_,
}
# A datatype that is *not* the declared one, for the wrong-dtype tests.
# Datatypes that do not convert losslessly to the declared one (FP32 -> FP64, INT32 -> INT64
# and INT32 -> FP64 are widened by the server, so they are not "wrong").
WRONG_DTYPE = {
    "FP32": "FP64", "FP64": "INT64", "FP16": "FP64",
    "INT32": "INT64", "INT64": "FP32", "INT8": "INT64", "INT16": "INT64",
    "UINT8": "INT32", "UINT16": "INT32", "UINT32": "INT64", "UINT64": "INT64",
    "BOOL": "INT32",
}


# --------------------------------------------------------------------------
# Model repository (read at collection time, so every case gets a name)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for dynamic dims


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    kind: str = "onnx"                        # "onnx" | "xgboost" | "lightgbm"
    allow_non_finite: bool = False            # config.toml: NaN may be sent
    categorical: tuple[int, ...] = ()         # XGBoost categorical feature indexes


def _specs(value_infos) -> tuple[TensorSpec, ...]:
    out = []
    for vi in value_infos:
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        out.append(TensorSpec(vi.name, ONNX_TO_OIP[tt.elem_type], dims))
    return tuple(out)


def _repository_dir() -> Path:
    raw = os.environ.get("BALLAST_MODEL_REPOSITORY", "examples/models")
    p = Path(raw)
    if not p.is_absolute() and not p.exists():
        p = REPO_ROOT / raw
    return p


def _tree_output(objective: str, n_classes: int, datatype: str) -> TensorSpec:
    """The output naming convention for tree models (see the module docstring)."""
    if n_classes > 1:
        return TensorSpec("probabilities", datatype, (-1, n_classes))
    if objective.startswith("binary"):
        return TensorSpec("probability", datatype, (-1,))
    return TensorSpec("prediction", datatype, (-1,))


def _xgboost_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], tuple[int, ...]]:
    """XGBoost JSON: features FP32 [-1, num_feature]; output from the objective and num_class."""
    with open(path) as f:
        learner = json.load(f)["learner"]
    n_features = int(learner["learner_model_param"]["num_feature"])
    n_classes = int(learner["learner_model_param"].get("num_class", "0") or 0)
    objective = learner["objective"]["name"]
    if objective == "multi:softmax":
        pytest.fail(f"{path}: multi:softmax has no output in the naming convention", pytrace=False)
    cats = tuple(i for i, t in enumerate(learner.get("feature_types") or []) if t == "c")
    out = _tree_output(objective, n_classes, "FP32")
    return (TensorSpec("features", "FP32", (-1, n_features)),), (out,), cats


def _lightgbm_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """LightGBM text: features FP64 [-1, max_feature_idx + 1]; output from objective and num_class."""
    header = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("Tree="):
                break
            if "=" in line:
                k, v = line.split("=", 1)
                header[k] = v
    n_features = int(header["max_feature_idx"]) + 1
    n_classes = int(header.get("num_class", "1"))
    out = _tree_output(header.get("objective", ""), n_classes, "FP64")
    return (TensorSpec("features", "FP64", (-1, n_features)),), (out,)


# Model file names, in the order an engine is chosen when a version directory holds several.
MODEL_FILES = ("model.onnx", "model.json", "model.txt")


def _load_version(model: str, vdir: Path, allow_non_finite: bool) -> ModelVersion | None:
    for fname in MODEL_FILES:
        f = vdir / fname
        if not f.is_file():
            continue
        if fname == "model.onnx":
            m = onnx.load(str(f))
            init_names = {i.name for i in m.graph.initializer}
            graph_inputs = [i for i in m.graph.input if i.name not in init_names]
            return ModelVersion(model, vdir.name, f, _specs(graph_inputs), _specs(m.graph.output),
                                "onnx", allow_non_finite)
        if fname == "model.json":
            ins, outs, cats = _xgboost_signature(f)
            return ModelVersion(model, vdir.name, f, ins, outs, "xgboost", allow_non_finite, cats)
        ins, outs = _lightgbm_signature(f)
        return ModelVersion(model, vdir.name, f, ins, outs, "lightgbm", allow_non_finite)
    return None


def _allow_non_finite(mdir: Path) -> bool:
    cfg = mdir / "config.toml"
    if not cfg.is_file():
        return False
    with open(cfg, "rb") as f:
        return bool(tomllib.load(f).get("allow_non_finite", False))


def _discover() -> dict[str, dict[str, ModelVersion]]:
    repo = _repository_dir()
    models: dict[str, dict[str, ModelVersion]] = {}
    if not repo.is_dir():
        return models
    for mdir in sorted(repo.iterdir()):
        if not mdir.is_dir():
            continue
        versions = {}
        non_finite = _allow_non_finite(mdir)
        for vdir in mdir.iterdir():
            if vdir.is_dir() and vdir.name.isdigit():
                mv = _load_version(mdir.name, vdir, non_finite)
                if mv is not None:
                    versions[vdir.name] = mv
        if versions:
            models[mdir.name] = dict(sorted(versions.items(), key=lambda kv: int(kv[0])))
    return models


MODELS = _discover()
if not MODELS:
    pytest.fail(
        f"no models found in model repository {_repository_dir()} "
        "(expected <model>/<version>/model.onnx|model.json|model.txt; set BALLAST_MODEL_REPOSITORY "
        "or run `python examples/make_models.py` and `python examples/make_trees.py`)",
        pytrace=False,
    )


def latest(model: str) -> ModelVersion:
    return MODELS[model][max(MODELS[model], key=int)]


MODEL_NAMES = sorted(MODELS)
ALL_VERSIONS = [(m, v) for m in MODEL_NAMES for v in MODELS[m]]
SINGLE_OUTPUTS = [(m, o.name) for m in MODEL_NAMES for o in latest(m).outputs]


# --------------------------------------------------------------------------
# Fixtures: server addresses and clients
# --------------------------------------------------------------------------

def _env_url(var: str, example: str) -> str:
    url = os.environ.get(var, "").strip()
    if not url:
        pytest.fail(
            f"{var} is not set. Start a ballast server on the model repository "
            f"{_repository_dir()} and export {var}={example} (host:port, no scheme).",
            pytrace=False,
        )
    if "://" in url:
        pytest.fail(f"{var}={url!r}: give host:port without a scheme, as tritonclient expects",
                    pytrace=False)
    return url


@pytest.fixture(scope="session")
def http_url() -> str:
    return _env_url("BALLAST_HTTP_URL", "127.0.0.1:8000")


@pytest.fixture(scope="session")
def grpc_url() -> str:
    return _env_url("BALLAST_GRPC_URL", "127.0.0.1:8001")


@pytest.fixture(scope="session")
def http(http_url):
    client = httpclient.InferenceServerClient(url=http_url, connection_timeout=10.0, network_timeout=60.0)
    yield client
    client.close()


@pytest.fixture(scope="session")
def grpc(grpc_url):
    client = grpcclient.InferenceServerClient(url=grpc_url)
    yield client
    client.close()


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _concrete_shape(shape: tuple[int, ...]) -> list[int]:
    return [(BATCH if i == 0 else OTHER_DYN) if d == -1 else d for i, d in enumerate(shape)]


def random_inputs(mv: ModelVersion, salt: str, binary: bool = False) -> dict[str, np.ndarray]:
    """Random values of the right dtype for every input; deterministic per (model, salt).

    ``binary``: the request carries the tensors as raw bytes (HTTP binary or gRPC), so for a
    tree model whose config allows non-finite values a few features are NaN ("missing").
    """
    rng = np.random.default_rng(zlib.crc32(f"{mv.model}/{salt}".encode()))
    out = {}
    for spec in mv.inputs:
        shape = _concrete_shape(spec.shape)
        dt = np.dtype(OIP_TO_NP[spec.datatype])
        if dt == np.bool_:
            arr = rng.random(shape) < 0.5
        elif dt.kind == "f":
            arr = rng.normal(0.0, 2.0, shape).astype(dt)
        elif dt.kind == "u":
            arr = rng.integers(0, min(1000, int(np.iinfo(dt).max) + 1), shape, dtype=dt)
        elif dt == np.int64:
            arr = rng.integers(-(2 ** 40), 2 ** 40, shape, dtype=dt)
        else:
            arr = rng.integers(-1000, 1000, shape, dtype=dt)
        if mv.kind != "onnx" and arr.ndim == 2:
            for c in mv.categorical:    # category codes: small non-negative integers
                arr[:, c] = rng.integers(0, 10, arr.shape[0])
            if binary and mv.allow_non_finite:
                flat = arr.reshape(-1)
                flat[rng.choice(flat.size, size=min(NAN_PER_INPUT, flat.size), replace=False)] = np.nan
        out[spec.name] = arr
    return out


def is_binary_mode(mode: str) -> bool:
    """Whether `mode` sends input tensors as raw bytes (HTTP binary data or gRPC)."""
    return mode == "grpc" or HTTP_MODES[mode][0]


@functools.lru_cache(maxsize=None)
def _xgboost_booster(path: Path) -> xgboost.Booster:
    booster = xgboost.Booster(model_file=str(path))
    booster.set_param({"nthread": 1})
    return booster


@functools.lru_cache(maxsize=None)
def _lightgbm_booster(path: Path) -> lightgbm.Booster:
    return lightgbm.Booster(model_file=str(path))


def reference(mv: ModelVersion, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Expected outputs from the model's own library, named and typed as the server's."""
    if mv.kind == "onnx":
        sess = _session(mv.path)
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, inputs)))
    (spec,) = mv.inputs
    (out,) = mv.outputs
    x = inputs[spec.name]
    if mv.kind == "xgboost":
        booster = _xgboost_booster(mv.path)
        kw = {}
        if mv.categorical:
            kw = {"feature_types": booster.feature_types, "enable_categorical": True}
        d = xgboost.DMatrix(x, missing=np.nan, nthread=1, **kw)
        pred = booster.predict(d, iteration_range=(0, booster.num_boosted_rounds()))
    else:
        pred = _lightgbm_booster(mv.path).predict(x, num_threads=1)
    pred = np.asarray(pred, dtype=OIP_TO_NP[out.datatype])
    want_shape = (x.shape[0],) + tuple(d for d in out.shape[1:])
    assert pred.shape == want_shape, f"{mv.model}: {mv.kind} predicted shape {pred.shape}, signature {want_shape}"
    return {out.name: pred}


def assert_same(model: str, name: str, got, want: np.ndarray) -> None:
    assert got is not None, f"{model}: output {name!r} missing from the response"
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{model}.{name}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{model}.{name}: shape {got.shape}, expected {want.shape}"
    tree = any(mv.kind != "onnx" for mv in MODELS.get(model, {}).values())
    rtol, atol = (TREE_RTOL, TREE_ATOL) if tree else (FLOAT_RTOL, FLOAT_ATOL)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{model}.{name}")
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"{model}.{name}")


# HTTP transports: (binary inputs, binary outputs); None outputs = no
# "outputs" in the request at all (tritonclient's default: everything binary).
HTTP_MODES = {
    "http_default": (True, None),
    "http_binary": (True, True),
    "http_json": (False, False),
    "http_json_in_binary_out": (False, True),
    "http_binary_in_json_out": (True, False),
}
MODES = list(HTTP_MODES) + ["grpc"]


def infer(http, grpc, mode: str, mv: ModelVersion, inputs: dict[str, np.ndarray],
          outputs: list[str] | None, model_version: str = ""):
    """Runs one inference; returns ({output name: ndarray}, raw response)."""
    wanted = outputs if outputs is not None else [o.name for o in mv.outputs]
    if mode == "grpc":
        ins = []
        for spec in mv.inputs:
            arr = inputs[spec.name]
            t = grpcclient.InferInput(spec.name, list(arr.shape), spec.datatype)
            t.set_data_from_numpy(arr)
            ins.append(t)
        outs = None if outputs is None else [grpcclient.InferRequestedOutput(n) for n in outputs]
        res = grpc.infer(mv.model, ins, model_version=model_version, outputs=outs)
        resp = res.get_response()
        got_names = [o.name for o in resp.outputs]
    else:
        bin_in, bin_out = HTTP_MODES[mode]
        ins = []
        for spec in mv.inputs:
            arr = inputs[spec.name]
            t = httpclient.InferInput(spec.name, list(arr.shape), spec.datatype)
            t.set_data_from_numpy(arr, binary_data=bin_in)
            ins.append(t)
        if outputs is None and bin_out is None:
            outs = None
        else:
            outs = [httpclient.InferRequestedOutput(n, binary_data=bool(bin_out)) for n in wanted]
        res = http.infer(mv.model, ins, model_version=model_version, outputs=outs)
        resp = res.get_response()
        got_names = [o["name"] for o in resp.get("outputs", [])]
        for o in resp.get("outputs", []):
            is_binary = "binary_data_size" in (o.get("parameters") or {})
            expect_binary = bin_out is None or bin_out
            assert is_binary == expect_binary, (
                f"{mv.model}.{o['name']}: output returned as {'binary' if is_binary else 'JSON'}, "
                f"requested {'binary' if expect_binary else 'JSON'} ({mode})")
            if not is_binary:
                assert "data" in o, f"{mv.model}.{o['name']}: JSON output without 'data'"
    assert sorted(got_names) == sorted(wanted), (
        f"{mv.model} ({mode}): response outputs {got_names}, requested {wanted}")
    return {n: res.as_numpy(n) for n in wanted}, resp


def _check_response_header(mode: str, resp, model: str, version: str | None) -> None:
    name = resp.model_name if mode == "grpc" else resp.get("model_name")
    assert name == model, f"response model_name {name!r}, expected {model!r}"
    got_version = resp.model_version if mode == "grpc" else resp.get("model_version", "")
    if version is not None and got_version:
        assert got_version == version, f"response model_version {got_version!r}, expected {version!r}"


def _metadata(http, grpc, transport: str, model: str, version: str = ""):
    """Returns (name, versions, inputs, outputs) as plain Python, for either transport."""
    if transport == "http":
        md = http.get_model_metadata(model, model_version=version)
        conv = lambda ts: [TensorSpec(t["name"], t["datatype"], tuple(int(d) for d in t["shape"])) for t in ts]
        return md["name"], list(md.get("versions", [])), conv(md["inputs"]), conv(md["outputs"])
    md = grpc.get_model_metadata(model, model_version=version)
    conv = lambda ts: [TensorSpec(t.name, t.datatype, tuple(int(d) for d in t.shape)) for t in ts]
    return md.name, list(md.versions), conv(md.inputs), conv(md.outputs)


def _message(exc: BaseException) -> str:
    if isinstance(exc, InferenceServerException):
        return f"{exc.message()} {exc.status() or ''} {exc.debug_details() or ''}"
    return str(exc)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_server_live_and_ready(http, grpc, transport):
    client = http if transport == "http" else grpc
    assert client.is_server_live(), f"{transport}: server not live"
    assert client.is_server_ready(), f"{transport}: server not ready"


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_server_metadata(http, grpc, transport):
    if transport == "http":
        md = http.get_server_metadata()
        name = md["name"]
    else:
        name = grpc.get_server_metadata().name
    assert name, f"{transport}: empty server name in server metadata"


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("model,version", ALL_VERSIONS)
def test_model_ready(http, grpc, transport, model, version):
    client = http if transport == "http" else grpc
    assert client.is_model_ready(model), f"{transport}: model {model} not ready"
    assert client.is_model_ready(model, model_version=version), f"{transport}: {model}/{version} not ready"


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize(
    "model,version",
    ALL_VERSIONS + [pytest.param(m, "", id=f"{m}-default") for m in MODEL_NAMES],
)
def test_model_metadata(http, grpc, transport, model, version):
    mv = MODELS[model][version] if version else latest(model)
    name, versions, inputs, outputs = _metadata(http, grpc, transport, model, version)
    assert name == model
    if versions:
        assert all(isinstance(v, str) for v in versions), versions
        assert set(versions) <= set(MODELS[model]), f"versions {versions} not in repository {list(MODELS[model])}"
        assert mv.version in versions, f"version {mv.version} missing from metadata versions {versions}"
    want_in = {t.name: t for t in mv.inputs}
    want_out = {t.name: t for t in mv.outputs}
    assert {t.name: t for t in inputs} == want_in, f"{transport} inputs {inputs}, expected {list(want_in.values())}"
    assert {t.name: t for t in outputs} == want_out, f"{transport} outputs {outputs}, expected {list(want_out.values())}"
    # The first (batch) dimension of every tensor is dynamic.
    for t in inputs + outputs:
        assert t.shape and t.shape[0] == -1, f"{t.name}: batch dimension should be -1, got {t.shape}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_infer_matches_reference(http, grpc, model, mode):
    mv = latest(model)
    inputs = random_inputs(mv, mode, binary=is_binary_mode(mode))
    want = reference(mv, inputs)
    outputs = None if mode in ("http_default", "grpc") else [o.name for o in mv.outputs]
    got, resp = infer(http, grpc, mode, mv, inputs, outputs)
    _check_response_header(mode, resp, model, mv.version)
    for name, arr in want.items():
        assert_same(model, name, got[name], arr)


@pytest.mark.parametrize("mode", ["http_binary", "http_json", "grpc"])
@pytest.mark.parametrize("model,version", ALL_VERSIONS)
def test_infer_explicit_version(http, grpc, model, version, mode):
    mv = MODELS[model][version]
    inputs = random_inputs(mv, f"v{version}/{mode}", binary=is_binary_mode(mode))
    want = reference(mv, inputs)
    got, resp = infer(http, grpc, mode, mv, inputs, [o.name for o in mv.outputs], model_version=version)
    _check_response_header(mode, resp, model, version)
    for name, arr in want.items():
        assert_same(model, name, got[name], arr)
    # Where versions compute different things, the answer must be this version's.
    for other_v, other in MODELS[model].items():
        if other_v == version:
            continue
        other_out = reference(other, inputs)
        differs = [n for n in want if want[n].dtype.kind == "f"
                   and not np.allclose(want[n], other_out[n], rtol=FLOAT_RTOL, atol=FLOAT_ATOL)]
        for n in differs:
            assert not np.allclose(got[n], other_out[n], rtol=FLOAT_RTOL, atol=FLOAT_ATOL), (
                f"{model}: asked for version {version}, output {n} matches version {other_v}")


@pytest.mark.parametrize("mode", ["http_binary", "http_json", "grpc"])
@pytest.mark.parametrize("model,output", SINGLE_OUTPUTS)
def test_infer_single_output(http, grpc, model, output, mode):
    mv = latest(model)
    inputs = random_inputs(mv, f"single/{output}/{mode}", binary=is_binary_mode(mode))
    want = reference(mv, inputs)
    got, resp = infer(http, grpc, mode, mv, inputs, [output])  # also checks only `output` came back
    assert_same(model, output, got[output], want[output])


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_unknown_model(http, grpc, transport):
    client_mod = httpclient if transport == "http" else grpcclient
    client = http if transport == "http" else grpc
    t = client_mod.InferInput("x", [1, 1], "FP32")
    t.set_data_from_numpy(np.zeros((1, 1), np.float32))
    with pytest.raises(InferenceServerException) as ei:
        client.infer(UNKNOWN_MODEL, [t])
    assert UNKNOWN_MODEL in _message(ei.value), f"error does not name the model: {_message(ei.value)!r}"

    with pytest.raises(InferenceServerException) as ei:
        client.get_model_metadata(UNKNOWN_MODEL)
    assert UNKNOWN_MODEL in _message(ei.value), f"error does not name the model: {_message(ei.value)!r}"

    # Either "not ready" or an error is an acceptable answer for a model that does not exist.
    try:
        ready = client.is_model_ready(UNKNOWN_MODEL)
    except InferenceServerException:
        ready = False
    assert not ready, f"{transport}: unknown model reported ready"


@pytest.mark.parametrize("mode", ["http_binary", "http_json", "grpc"])
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_wrong_input_datatype(http, grpc, model, mode):
    mv = latest(model)
    inputs = random_inputs(mv, f"wrong/{mode}")
    bad = mv.inputs[0]
    bad_dt = WRONG_DTYPE[bad.datatype]
    mod = grpcclient if mode == "grpc" else httpclient
    ins = []
    for spec in mv.inputs:
        arr = inputs[spec.name]
        dt = spec.datatype
        if spec.name == bad.name:
            dt = bad_dt
            arr = arr.astype(OIP_TO_NP[bad_dt])
        t = mod.InferInput(spec.name, list(arr.shape), dt)
        if mode == "grpc":
            t.set_data_from_numpy(arr)
        else:
            t.set_data_from_numpy(arr, binary_data=(mode == "http_binary"))
        ins.append(t)
    client = grpc if mode == "grpc" else http
    with pytest.raises(InferenceServerException) as ei:
        client.infer(model, ins)
    msg = _message(ei.value)
    assert bad.name in msg, f"error for {bad.name} sent as {bad_dt} (expects {bad.datatype}) does not name it: {msg!r}"


# --------------------------------------------------------------------------
# Triton extensions: model configuration, statistics, repository index
# --------------------------------------------------------------------------

def _stats(http, grpc, transport: str, model: str, version: str) -> dict:
    if transport == "http":
        out = http.get_inference_statistics(model_name=model, model_version=version)
    else:
        out = grpc.get_inference_statistics(model_name=model, model_version=version, as_json=True)
    (entry,) = out["model_stats"]
    return entry


def _count(d: dict, *path: str) -> int:
    """A statistics counter; protobuf's JSON writes uint64 as strings and omits zeros."""
    for p in path:
        d = d.get(p, {}) if isinstance(d, dict) else {}
    return int(d or 0)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_model_config_matches_the_metadata(http, grpc, transport):
    for model in MODELS:
        mv = latest(model)
        if transport == "http":
            cfg = http.get_model_config(model, model_version=mv.version)
        else:
            cfg = grpc.get_model_config(model, model_version=mv.version, as_json=True)["config"]
        assert cfg["name"] == model
        batching = int(cfg.get("max_batch_size", 0)) > 0
        names = {t["name"] for t in cfg.get("input", [])}
        assert names == {s.name for s in mv.inputs}, f"{model}: config inputs {names}"
        if transport == "grpc":
            for t in cfg["input"]:
                spec = next(s for s in mv.inputs if s.name == t["name"])
                dims = [int(d) for d in t.get("dims", [])]
                want = list(spec.shape[1:] if batching else spec.shape)
                assert dims == want, f"{model}.{t['name']}: dims {dims}, metadata shape {spec.shape}"
                assert t["data_type"] == "TYPE_" + {"BYTES": "STRING"}.get(spec.datatype, spec.datatype)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_inference_statistics_count_requests_rows_and_batches(http, grpc, transport):
    mv = latest("fraud")
    before = _stats(http, grpc, transport, "fraud", mv.version)
    inputs = random_inputs(mv, salt=f"stats-{transport}")
    rows = next(iter(inputs.values())).shape[0]
    infer(http, grpc, "grpc" if transport == "grpc" else "http_json", mv, inputs, None, model_version=mv.version)
    after = _stats(http, grpc, transport, "fraud", mv.version)
    assert after["name"] == "fraud" and after["version"] == mv.version
    assert _count(after, "inference_count") - _count(before, "inference_count") == rows
    assert _count(after, "inference_stats", "success", "count") - _count(before, "inference_stats", "success", "count") == 1
    assert _count(after, "execution_count") > _count(before, "execution_count")
    assert _count(after, "inference_stats", "compute_infer", "ns") > _count(before, "inference_stats", "compute_infer", "ns")
    assert int(after["last_inference"]) > 0
    assert after.get("batch_stats"), "batch statistics per batch size"


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_repository_index_lists_every_served_version(http, grpc, transport):
    if transport == "http":
        entries = http.get_model_repository_index()
    else:
        entries = grpc.get_model_repository_index(as_json=True).get("models", [])
    ready = {(e["name"], e.get("version", "")) for e in entries if e.get("state") == "READY"}
    for model, versions in MODELS.items():
        for v in versions:
            assert (model, v) in ready, f"{model} version {v} not READY in the index: {entries}"


@pytest.mark.parametrize("mode", ["http_binary", "http_json", "grpc"])
def test_lossless_datatypes_are_widened(http, grpc, mode):
    """FP32 sent for an FP64 input, INT32 for an INT64 one, FP16 for FP32 and UINT8 for INT32
    are served, with the same answer as the declared types."""
    mv = latest("dtypes")
    inputs = random_inputs(mv, f"widen/{mode}")
    narrow = {"FP64": "FP32", "INT64": "INT32", "FP32": "FP16", "INT32": "UINT8"}
    sent, widened = {}, {}
    for spec in mv.inputs:
        arr = inputs[spec.name]
        if spec.datatype in narrow:
            small = arr.astype(OIP_TO_NP[narrow[spec.datatype]])
            sent[spec.name] = (small, narrow[spec.datatype])
            widened[spec.name] = small.astype(arr.dtype)
        else:
            sent[spec.name] = (arr, spec.datatype)
            widened[spec.name] = arr
    assert any(dt != s.datatype for s, (_, dt) in zip(mv.inputs, [sent[s.name] for s in mv.inputs]))
    mod = grpcclient if mode == "grpc" else httpclient
    ins = []
    for spec in mv.inputs:
        arr, dt = sent[spec.name]
        t = mod.InferInput(spec.name, list(arr.shape), dt)
        if mode == "grpc":
            t.set_data_from_numpy(arr)
        else:
            t.set_data_from_numpy(arr, binary_data=(mode == "http_binary"))
        ins.append(t)
    client = grpc if mode == "grpc" else http
    res = client.infer("dtypes", ins)
    want = reference(mv, widened)
    for name, value in want.items():
        assert_same("dtypes", name, res.as_numpy(name), value)


def test_unimplemented_grpc_calls_say_so(grpc):
    """Triton calls ballast does not serve answer UNIMPLEMENTED with a message naming them."""
    with pytest.raises(InferenceServerException) as ei:
        grpc.get_system_shared_memory_status()
    msg = _message(ei.value)
    assert "SystemSharedMemoryStatus" in msg and "does not implement" in msg, msg


@pytest.mark.parametrize("mode", ["http_binary", "grpc"])
def test_requests_above_max_batch_size_are_served_in_order(http, grpc, mode):
    """The fraud model batches at most 64 rows; a 150-row request is served whole, rows in
    order, each equal to the model's own answer."""
    mv = latest("fraud")
    rows = 150
    rng = np.random.default_rng(zlib.crc32(f"oversize/{mode}".encode()))
    inputs = {}
    for spec in mv.inputs:
        shape = [rows] + [d if d > 0 else BATCH for d in spec.shape[1:]]
        inputs[spec.name] = rng.normal(0.0, 2.0, shape).astype(OIP_TO_NP[spec.datatype])
    got, _ = infer(http, grpc, mode, mv, inputs, None)
    want = reference(mv, inputs)
    for name, value in want.items():
        assert got[name].shape[0] == rows, f"{name}: {got[name].shape}"
        assert_same("fraud", name, got[name], value)


def test_the_documented_client_example_runs(http_url, grpc_url):
    """examples/client.py (the README's tritonclient example) runs against the server and
    prints what it promises: metadata, an HTTP and a gRPC answer, statistics."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "client.py"),
         "--http", http_url, "--grpc", grpc_url],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("fraud versions"), out.stdout
    assert any(line.startswith("HTTP  probability: [") for line in lines), out.stdout
    assert any(line.startswith("gRPC  probability: [") for line in lines), out.stdout
    assert any(line.startswith("stats version") for line in lines), out.stdout
