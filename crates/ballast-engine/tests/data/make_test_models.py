#!/usr/bin/env python3
"""Build the tiny ONNX models the engine tests need beyond examples/models/.

Deterministic: running it twice writes byte-identical files next to this script.

    strings.onnx  text (STRING [batch, 2]) -> text_out = Identity(text): BYTES round trip
    uint16.onnx   x (UINT16 [batch, 2]) -> y = Cast<float>(x): a datatype ballast does not serve

Dependencies: onnx (and onnxruntime for the self-check).
Usage:  python crates/ballast-engine/tests/data/make_test_models.py
"""

import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def save(graph, name):
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="ballast-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))


save(
    helper.make_graph(
        [helper.make_node("Identity", ["text"], ["text_out"], name="identity")],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 2])],
        [helper.make_tensor_value_info("text_out", TensorProto.STRING, ["batch", 2])],
    ),
    "strings.onnx",
)

save(
    helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], name="cast", to=TensorProto.FLOAT)],
        "uint16",
        [helper.make_tensor_value_info("x", TensorProto.UINT16, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    ),
    "uint16.onnx",
)

if __name__ == "__main__":
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        pass
    else:
        s = ort.InferenceSession(os.path.join(HERE, "strings.onnx"))
        x = np.array([["héllo", ""], ["a", "b"]], dtype=object)
        assert (s.run(None, {"text": x})[0] == x).all()
        s = ort.InferenceSession(os.path.join(HERE, "uint16.onnx"))
        assert s.run(None, {"x": np.ones((1, 2), np.uint16)})[0].dtype == np.float32
