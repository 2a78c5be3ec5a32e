#!/usr/bin/env python3
"""Baseline for benchmarks: a plain FastAPI + uvicorn + onnxruntime server.

Serves one ONNX model over the Open Inference Protocol v2 HTTP/REST JSON API,
written the way a typical team would: pydantic request models, one
InferenceSession per worker process, ``sess.run`` inside the request handler,
no batching.

Endpoints:
    GET  /v2/health/live
    GET  /v2/health/ready
    GET  /v2/models/{name}
    GET  /v2/models/{name}/ready
    POST /v2/models/{name}/infer          (JSON tensors; "data" flat lists)

Usage:
    pip install -r bench/python/requirements.txt
    python bench/python/fastapi_server.py --model examples/models/fraud/2/model.onnx \\
        --name fraud --port 8080 --workers 2
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Optional

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

# Settings reach every uvicorn worker process through the environment.
MODEL_PATH = os.environ.get("BASELINE_MODEL_PATH", "")
MODEL_NAME = os.environ.get("BASELINE_MODEL_NAME", "model")
MODEL_VERSION = os.environ.get("BASELINE_MODEL_VERSION", "1")
INTRA_OP_THREADS = int(os.environ.get("BASELINE_INTRA_OP_THREADS", "0"))

ORT_TO_OIP = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
}
OIP_TO_NUMPY = {
    "FP32": np.float32, "FP64": np.float64, "FP16": np.float16,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "BOOL": np.bool_,
}

NUMPY_TO_OIP = {np.dtype(v): k for k, v in OIP_TO_NUMPY.items()}


def load_session() -> ort.InferenceSession:
    if not MODEL_PATH:
        raise RuntimeError("BASELINE_MODEL_PATH is not set (use --model)")
    opts = ort.SessionOptions()
    if INTRA_OP_THREADS > 0:
        opts.intra_op_num_threads = INTRA_OP_THREADS
    return ort.InferenceSession(MODEL_PATH, sess_options=opts, providers=["CPUExecutionProvider"])


# One session per process, created when the worker imports this module.
sess = load_session() if MODEL_PATH else None


def tensor_metadata(node) -> dict:
    return {
        "name": node.name,
        "datatype": ORT_TO_OIP[node.type],
        "shape": [d if isinstance(d, int) else -1 for d in node.shape],
    }


# ---- request / response schemas (OIP v2) ---------------------------------

class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Optional[dict[str, Any]] = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: Optional[dict[str, Any]] = None


class InferenceRequest(BaseModel):
    id: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    inputs: list[RequestInput]
    outputs: Optional[list[RequestOutput]] = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: Optional[str] = None
    id: Optional[str] = None
    outputs: list[ResponseOutput]


# ---- app ------------------------------------------------------------------

# strict_content_type=False: OIP clients such as tritonclient POST JSON without
# a Content-Type header; parse the body as JSON anyway.
app = FastAPI(title="baseline OIP v2 server", strict_content_type=False)


@app.exception_handler(HTTPException)
async def oip_error(_request, exc: HTTPException):
    # OIP v2 error body: {"error": "<message>"}
    return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)})


def check_model(name: str) -> None:
    if name != MODEL_NAME:
        raise HTTPException(status_code=404, detail=f"model '{name}' not found")


@app.get("/v2/health/live")
def live():
    return {"live": True}


@app.get("/v2/health/ready")
def ready():
    return {"ready": sess is not None}


@app.get("/v2/models/{name}/ready")
def model_ready(name: str):
    check_model(name)
    return {"name": name, "ready": True}


@app.get("/v2/models/{name}")
def model_metadata(name: str):
    check_model(name)
    return {
        "name": MODEL_NAME,
        "versions": [MODEL_VERSION],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(i) for i in sess.get_inputs()],
        "outputs": [tensor_metadata(o) for o in sess.get_outputs()],
    }


@app.post("/v2/models/{name}/infer", response_model=InferenceResponse, response_model_exclude_none=True)
def infer(name: str, request: InferenceRequest):
    check_model(name)
    expected = {i.name: i for i in sess.get_inputs()}

    feeds = {}
    for inp in request.inputs:
        if inp.name not in expected:
            raise HTTPException(status_code=400, detail=f"unexpected input '{inp.name}'")
        want = ORT_TO_OIP[expected[inp.name].type]
        if inp.datatype != want:
            raise HTTPException(
                status_code=400,
                detail=f"input '{inp.name}' has datatype {inp.datatype}, expected {want}",
            )
        try:
            feeds[inp.name] = np.array(inp.data, dtype=OIP_TO_NUMPY[want]).reshape(inp.shape)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=f"input '{inp.name}': {e}")
    missing = set(expected) - set(feeds)
    if missing:
        raise HTTPException(status_code=400, detail=f"missing inputs: {sorted(missing)}")

    output_names = [o.name for o in sess.get_outputs()]
    if request.outputs:
        for o in request.outputs:
            if o.name not in output_names:
                raise HTTPException(status_code=400, detail=f"unknown output '{o.name}'")
        output_names = [o.name for o in request.outputs]

    try:
        results = sess.run(output_names, feeds)
    except Exception as e:  # shape errors etc. surface from onnxruntime
        raise HTTPException(status_code=400, detail=str(e))

    return InferenceResponse(
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        id=request.id,
        outputs=[
            ResponseOutput(
                name=n,
                shape=list(r.shape),
                datatype=NUMPY_TO_OIP[r.dtype],
                data=r.reshape(-1).tolist(),
            )
            for n, r in zip(output_names, results)
        ],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="Baseline FastAPI OIP v2 server (one ONNX model)")
    ap.add_argument("--model", required=True, help="path to model.onnx")
    ap.add_argument("--name", required=True, help="model name in the URL")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--version", default=None,
                    help="model version reported in metadata/responses "
                         "(default: the model file's parent directory name if numeric, else 1)")
    ap.add_argument("--intra-op-threads", type=int, default=0,
                    help="onnxruntime intra-op threads per worker (0 = onnxruntime default)")
    args = ap.parse_args()

    os.environ["BASELINE_MODEL_PATH"] = os.path.abspath(args.model)
    os.environ["BASELINE_MODEL_NAME"] = args.name
    parent = os.path.basename(os.path.dirname(os.path.abspath(args.model)))
    os.environ["BASELINE_MODEL_VERSION"] = args.version or (parent if parent.isdigit() else "1")
    os.environ["BASELINE_INTRA_OP_THREADS"] = str(args.intra_op_threads)

    # Import string so that --workers > 1 works; each worker loads its own session.
    uvicorn.run("fastapi_server:app", app_dir=os.path.dirname(os.path.abspath(__file__)),
                host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
