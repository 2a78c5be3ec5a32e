#!/usr/bin/env python3
"""Build the two models the overload benchmarks run against (deterministic, fixed seeds).

    light/1/model.onnx   12 -> 32 -> 16 -> 1 MLP: a few microseconds a row; the server's own
                         protocol work dominates, as for most tabular fraud / risk models.
    heavy/1/model.onnx   256 -> 1024 -> 1024 -> 1 MLP (~1.3 M multiply-adds a row, 4.3 MB of
                         weights): ~0.3-0.5 ms a row at batch 1 on one core, and batching pays
                         because a batch reads the weights once (GEMM instead of GEMV).

Each model gets the shipped defaults (`max_batch_size = 64`, `max_queue_delay_ms = 0`) in its
`config.toml`. Needs numpy and onnx (both in tests/interop/requirements.txt).

Usage:  python bench/make_bench_models.py OUT_DIR
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp(name: str, sizes: list[int], seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    x = "features"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        bias = (rng.standard_normal(b) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
        last = i == len(sizes) - 2
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"]))
        if last:
            nodes.append(helper.make_node("Sigmoid", [f"z{i}"], ["score"]))
        else:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i}"]))
            x = f"h{i}"
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(
        graph, producer_name="ballast-bench", opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    for name, sizes, seed in (("light", [12, 32, 16, 1], 1), ("heavy", [256, 1024, 1024, 1], 2)):
        os.makedirs(os.path.join(out, name, "1"), exist_ok=True)
        onnx.save(mlp(name, sizes, seed), os.path.join(out, name, "1", "model.onnx"))
        with open(os.path.join(out, name, "config.toml"), "w") as f:
            f.write("max_batch_size = 64\nmax_queue_delay_ms = 0\n")
        print(f"{out}/{name}: {' -> '.join(map(str, sizes))} MLP")


if __name__ == "__main__":
    main()
