"""Triton's model repository habits, with the real ``tritonclient`` (HTTP + gRPC).

Each test starts its own ``ballast serve`` on a temporary copy of models from
``examples/models`` (ports picked free on 127.0.0.1), so it can break, add,
change and remove model directories while the server runs:

* a model that fails to load does not stop the others; it is not ready, and the
  repository index, readiness and metrics give its reason; ``--strict`` exits
  non-zero instead (Triton's ``--exit-on-error``);
* ``--model-control-mode explicit``: ``load_model`` / ``unload_model`` over both
  protocols, including a model directory added after start;
* ``--model-control-mode poll``: added, changed and removed directories are
  picked up without a restart; SIGHUP reloads in every mode and the process
  keeps running;
* ``none`` mode refuses explicit load and unload, saying which mode allows it.

Environment:

    BALLAST_BIN   the ballast binary (default: $CARGO_TARGET_DIR/debug/ballast,
                  then target/debug/ballast, then target/release/ballast)

Nothing is skipped: without a binary the run fails saying what to set.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import xgboost
from tritonclient.utils import InferenceServerException

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "models"
START_TIMEOUT_S = 120.0  # debug builds warm every model up before they report ready
CHANGE_TIMEOUT_S = 30.0


def _binary() -> Path:
    candidates = []
    if os.environ.get("BALLAST_BIN"):
        candidates.append(Path(os.environ["BALLAST_BIN"]))
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
        candidates += [target / "debug" / "ballast", target / "release" / "ballast"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    pytest.fail(
        "no ballast binary: build it (cargo build -p ballast) or set BALLAST_BIN; "
        f"looked at {', '.join(map(str, candidates))}"
    )


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Server:
    """One `ballast serve --model-repository DIR` process and its clients."""

    def __init__(self, repo: Path, *args: str, wait_ready: bool = True):
        self.http_port, self.grpc_port = _free_ports(2)
        self.data_dir = repo.parent / f"data-{self.http_port}"
        self.log_path = repo.parent / f"server-{self.http_port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                str(_binary()), "serve",
                "--model-repository", str(repo),
                "--http-port", str(self.http_port),
                "--grpc-port", str(self.grpc_port),
                # Each server its own data directory (prediction logs lock theirs).
                "--data-dir", str(self.data_dir),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpclient.InferenceServerClient(f"127.0.0.1:{self.http_port}")
        self.grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc_port}")
        if wait_ready:
            self.wait_ready()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode} before ready:\n{self.log()}")
            try:
                if self.http.is_server_ready():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not ready after {START_TIMEOUT_S} s:\n{self.log()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics") as r:
            return r.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.http.close()
        self.grpc.close()
        self._log.close()


@pytest.fixture
def servers():
    started: list[Server] = []

    def start(repo: Path, *args: str, **kw) -> Server:
        s = Server(repo, *args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _repo(tmp_path: Path, *models: str) -> Path:
    repo = tmp_path / "models"
    repo.mkdir()
    for m in models:
        shutil.copytree(EXAMPLES / m, repo / m)
    return repo


def _broken(repo: Path, name: str = "broken") -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.onnx").write_bytes(b"this is not an ONNX protobuf")


def _features(rows: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 12)).astype(np.float32)


def _infer_fraud(client, transport: str, model: str = "fraud") -> np.ndarray:
    mod = httpclient if transport == "http" else grpcclient
    x = _features(4)
    inp = mod.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    out = mod.InferRequestedOutput("probability")
    res = client.infer(model, [inp], outputs=[out])
    return res.as_numpy("probability").reshape(-1)


def _wait(what: str, probe, server: Server, timeout: float = CHANGE_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
            last = got
        except Exception as e:  # the probe may fail until the change lands
            last = e
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout} s (last: {last!r})\n{server.log()}")


def _index(server: Server, transport: str) -> dict[tuple[str, str], tuple[str, str]]:
    if transport == "http":
        entries = server.http.get_model_repository_index()
        return {(e["name"], e.get("version", "")): (e["state"], e.get("reason", "")) for e in entries}
    idx = server.grpc.get_model_repository_index()
    return {(m.name, m.version): (m.state, m.reason) for m in idx.models}


def _message(exc: BaseException) -> str:
    if isinstance(exc, InferenceServerException):
        return f"{exc.message()} {exc.status() or ''}"
    return str(exc)


# --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_model_that_fails_to_load_is_not_ready_and_the_others_serve(tmp_path, servers, transport):
    repo = _repo(tmp_path, "fraud")
    _broken(repo)
    s = servers(repo)
    client = s.http if transport == "http" else s.grpc

    assert client.is_model_ready("fraud")
    assert _infer_fraud(client, transport).shape == (4,)
    assert not client.is_model_ready("broken")

    index = _index(s, transport)
    state, reason = index[("broken", "1")]
    assert state == "UNAVAILABLE", index
    assert "model.onnx" in reason, reason
    assert index[("fraud", "1")][0] == "READY", index

    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("broken")
    assert "failed to load" in _message(e.value), _message(e.value)
    with pytest.raises(InferenceServerException) as e:
        _infer_fraud(client, transport, model="broken")
    assert "failed to load" in _message(e.value), _message(e.value)

    assert 'ballast_model_load_failures_total{model="broken"' in s.metrics()
    assert "broken" in s.log()


def test_strict_exits_non_zero_naming_the_model(tmp_path, servers):
    repo = _repo(tmp_path, "fraud")
    _broken(repo)
    s = servers(repo, "--strict", wait_ready=False)
    try:
        code = s.proc.wait(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"--strict kept serving with a broken model:\n{s.log()}")
    assert code != 0
    assert "broken" in s.log(), s.log()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_explicit_mode_loads_and_unloads_on_request(tmp_path, servers, transport):
    repo = _repo(tmp_path, "fraud")
    s = servers(repo, "--model-control-mode", "explicit")
    client = s.http if transport == "http" else s.grpc

    client.unload_model("fraud")
    assert not client.is_model_ready("fraud")
    with pytest.raises(InferenceServerException):
        _infer_fraud(client, transport)

    client.load_model("fraud")
    assert client.is_model_ready("fraud")
    assert _infer_fraud(client, transport).shape == (4,)

    # A directory added after start is served once it is loaded, not before.
    shutil.copytree(EXAMPLES / "fraud_xgb", repo / "fraud_xgb")
    assert not client.is_model_ready("fraud_xgb")
    client.load_model("fraud_xgb")
    assert client.is_model_ready("fraud_xgb")
    got = _infer_fraud(client, transport, model="fraud_xgb")
    booster = xgboost.Booster(model_file=str(repo / "fraud_xgb" / "1" / "model.json"))
    want = booster.predict(xgboost.DMatrix(_features(4)))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    # Loading what is not there names it.
    with pytest.raises(InferenceServerException) as e:
        client.load_model("no_such_model")
    assert "no_such_model" in _message(e.value), _message(e.value)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_none_mode_refuses_explicit_load_naming_the_mode(tmp_path, servers, transport):
    repo = _repo(tmp_path, "fraud")
    s = servers(repo)
    client = s.http if transport == "http" else s.grpc
    with pytest.raises(InferenceServerException) as e:
        client.unload_model("fraud")
    assert "explicit" in _message(e.value), _message(e.value)
    assert client.is_model_ready("fraud")


def test_poll_mode_picks_up_added_changed_and_removed_models(tmp_path, servers):
    repo = _repo(tmp_path, "fraud")
    (repo / "fraud" / "2").rename(tmp_path / "fraud-2")  # start with version 1 only
    s = servers(repo, "--model-control-mode", "poll", "--repository-poll-secs", "0.5")
    assert s.http.get_model_metadata("fraud")["versions"] == ["1"]

    shutil.copytree(EXAMPLES / "fraud_xgb", repo / "fraud_xgb")
    _wait("added model served", lambda: s.http.is_model_ready("fraud_xgb"), s)
    assert _infer_fraud(s.grpc, "grpc", model="fraud_xgb").shape == (4,)

    (tmp_path / "fraud-2").rename(repo / "fraud" / "2")
    _wait(
        "added version served",
        lambda: "2" in s.http.get_model_metadata("fraud")["versions"],
        s,
    )
    assert s.http.is_model_ready("fraud", "2")

    shutil.rmtree(repo / "fraud_xgb")
    _wait("removed model no longer served", lambda: not s.http.is_model_ready("fraud_xgb"), s)
    assert s.proc.poll() is None


def test_sighup_reloads_the_repository_and_keeps_serving(tmp_path, servers):
    repo = _repo(tmp_path, "fraud")
    s = servers(repo)
    shutil.copytree(EXAMPLES / "fraud_xgb", repo / "fraud_xgb")
    time.sleep(0.5)
    assert not s.http.is_model_ready("fraud_xgb")  # none mode: no change without a signal
    s.proc.send_signal(signal.SIGHUP)
    _wait("SIGHUP loaded the added model", lambda: s.grpc.is_model_ready("fraud_xgb"), s)
    assert s.proc.poll() is None
    assert _infer_fraud(s.http, "http").shape == (4,)


def test_json_null_is_a_missing_value_for_a_tree_model(tmp_path, servers):
    """curl habit: JSON has no NaN, so `null` is a missing value where the model takes NaN."""
    repo = _repo(tmp_path, "fraud_xgb")
    s = servers(repo)
    x = _features(2).astype(np.float64)
    x[0, 3] = np.nan
    x[1, 0] = np.nan
    data = [[None if np.isnan(v) else float(v) for v in row] for row in x]
    body = json.dumps(
        {"inputs": [{"name": "features", "shape": [2, 12], "datatype": "FP32", "data": data}]}
    ).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{s.http_port}/v2/models/fraud_xgb/infer",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        got = np.array(json.loads(r.read())["outputs"][0]["data"], dtype=np.float32)
    booster = xgboost.Booster(model_file=str(repo / "fraud_xgb" / "1" / "model.json"))
    want = booster.predict(xgboost.DMatrix(x.astype(np.float32), missing=np.nan))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    # A model that refuses NaN refuses null too, naming the input.
    (tmp_path / "b").mkdir()
    repo2 = _repo(tmp_path / "b", "fraud")
    s2 = servers(repo2)
    req = urllib.request.Request(
        f"http://127.0.0.1:{s2.http_port}/v2/models/fraud/infer",
        data=body,
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400
    message = json.loads(e.value.read())["error"]
    assert "features" in message, message
