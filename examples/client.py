#!/usr/bin/env python3
"""Calling ballast with NVIDIA's tritonclient, over HTTP and gRPC.

Start a server on the example models, then run this file:

    cargo run --release -- serve --model-repository examples/models
    pip install 'tritonclient[http,grpc]' numpy
    python examples/client.py                      # or: --http 127.0.0.1:8000 --grpc 127.0.0.1:8001

It scores four transactions with the `fraud` model the way a Triton user would:
metadata, an inference over HTTP (binary tensors) and over gRPC, a per-request
deadline and priority, and the server's statistics for the model.
"""

import argparse

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--http", default="127.0.0.1:8000", help="host:port of the HTTP endpoint")
    ap.add_argument("--grpc", default="127.0.0.1:8001", help="host:port of the gRPC endpoint")
    ap.add_argument("--model", default="fraud")
    args = ap.parse_args()

    http = httpclient.InferenceServerClient(args.http)
    grpc = grpcclient.InferenceServerClient(args.grpc)

    # What does the model take? (the same answer over both protocols)
    meta = http.get_model_metadata(args.model)
    inp = meta["inputs"][0]
    features = int(inp["shape"][-1])
    print(f"{meta['name']} versions {meta['versions']} on {meta['platform']}: "
          f"input {inp['name']} {inp['datatype']} {inp['shape']}")

    x = np.random.default_rng(0).standard_normal((4, features)).astype(np.float32)

    # HTTP: binary tensor data, as tritonclient sends by default.
    req = httpclient.InferInput(inp["name"], list(x.shape), inp["datatype"])
    req.set_data_from_numpy(x)
    res = http.infer(args.model, [req], request_id="client-example-1")
    out = meta["outputs"][0]["name"]
    print(f"HTTP  {out}: {np.round(res.as_numpy(out), 4).tolist()} "
          f"(version {res.get_response()['model_version']})")

    # gRPC, with a 50 ms deadline (Triton's `timeout`, in microseconds) and the request
    # sheddable under overload (Triton's priority levels: 1 critical, 2 default, 3+ sheddable;
    # or the header x-ballast-priority: critical | default | sheddable).
    req = grpcclient.InferInput(inp["name"], list(x.shape), inp["datatype"])
    req.set_data_from_numpy(x)
    try:
        res = grpc.infer(args.model, [req], timeout=50_000, priority=3)
        print(f"gRPC  {out}: {np.round(res.as_numpy(out), 4).tolist()}")
    except InferenceServerException as e:
        # 429 / RESOURCE_EXHAUSTED or UNAVAILABLE under overload: back off and retry later.
        print(f"gRPC  refused: {e.status()} {e.message()}")

    stats = http.get_inference_statistics(args.model)["model_stats"]
    for s in stats:
        print(f"stats version {s['version']}: {s['inference_count']} rows in "
              f"{s['execution_count']} batches")


if __name__ == "__main__":
    main()
