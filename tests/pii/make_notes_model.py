#!/usr/bin/env python3
"""Build the `notes` model that carries free text through ballast as a BYTES tensor.

Used by crates/ballast/tests/pii_end_to_end.rs, which sends the labelled PII corpus
(tests/pii/corpus.jsonl) through the server as the rows of this model's input and checks that
nothing unredacted is written anywhere.

Graph: `note` STRING [batch, 1] -> ai.onnx.ml LabelEncoder (keys_strings -> values_int64,
default -1) -> `topic` INT64 [batch, 1]. A note equal to one of a few topic words maps to its
index; any other note (every corpus line) maps to -1. Both engines serve it: the native onnx-ml
engine (no onnxruntime) and onnxruntime.

Deterministic: running it twice produces byte-identical files.
Dependencies: onnx (and onnxruntime, when installed, for a self-check); versions as in
examples/requirements.txt.

Writes (relative to this file's directory):

    notes/1/model.onnx
    notes/config.toml

Usage:  python tests/pii/make_notes_model.py
"""

from __future__ import annotations

import os

import onnx
from onnx import TensorProto, helper

IR_VERSION = 8
OPSET = 13
ML_OPSET = 2
PRODUCER = "ballast-tests"

TOPICS = ["refund", "address", "billing", "delivery", "complaint"]

CONFIG = """\
max_batch_size = 64
max_queue_delay_ms = 0

[log]
enabled = true
durability = "durable"
"""


def build() -> onnx.ModelProto:
    encoder = helper.make_node(
        "LabelEncoder",
        ["note"],
        ["topic"],
        domain="ai.onnx.ml",
        keys_strings=TOPICS,
        values_int64s=list(range(len(TOPICS))),
        default_int64=-1,
    )
    graph = helper.make_graph(
        [encoder],
        "notes",
        [helper.make_tensor_value_info("note", TensorProto.STRING, ["batch", 1])],
        [helper.make_tensor_value_info("topic", TensorProto.INT64, ["batch", 1])],
    )
    model = helper.make_model(
        graph,
        producer_name=PRODUCER,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def self_check(path: str) -> None:
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: self-check skipped")
        return
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    notes = np.array([["billing"], ["call me at jane.doe@example.com"], ["refund"]], dtype=object)
    (topic,) = session.run(None, {"note": notes})
    assert topic.tolist() == [[2], [-1], [0]], topic
    print("onnxruntime self-check passed")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "notes")
    os.makedirs(os.path.join(out, "1"), exist_ok=True)
    path = os.path.join(out, "1", "model.onnx")
    with open(path, "wb") as f:
        f.write(build().SerializeToString())
    with open(os.path.join(out, "config.toml"), "w") as f:
        f.write(CONFIG)
    print(f"wrote {path}")
    self_check(path)


if __name__ == "__main__":
    main()
