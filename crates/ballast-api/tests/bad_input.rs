//! Every bad input gets a 4xx (HTTP) or INVALID_ARGUMENT / NOT_FOUND (gRPC) whose message names
//! the field, what was expected and what came — never a panic, a hang or a 5xx.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;
use std::time::Duration;

use ballast_proto::inference::{
    InferTensorContents, ModelInferRequest, model_infer_request::InferInputTensor,
    model_infer_request::InferRequestedOutputTensor,
};
use common::*;
use serde_json::json;

/// (what, url, body, header length, status, message fragments)
type Case<'a> = (&'a str, String, Vec<u8>, Option<usize>, u16, Vec<&'a str>);

fn features(rows: usize) -> serde_json::Value {
    json!({"name": "features", "shape": [rows, 12], "datatype": "FP32", "data": vec![0.25f32; rows * 12]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_inputs_get_4xx_naming_the_field() {
    let server = start_repo(&examples_dir().join("models")).await;
    // No connection reuse: a refusal answered before its body is read (413, oversized
    // headers) closes that connection, and a pooled client could pick the closed connection
    // for the next request and fail writing it (a broken pipe seen once in CI).
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let infer = server.url("/v2/models/fraud/infer");

    let binary_header = |size: usize| {
        json!({"inputs": [{"name": "features", "shape": [1, 12], "datatype": "FP32", "parameters": {"binary_data_size": size}}]})
            .to_string()
    };
    let nan_body = {
        let h = binary_header(48);
        let mut b = h.clone().into_bytes();
        for i in 0..12 {
            let x = if i == 5 { f32::NAN } else { 1.0 };
            b.extend_from_slice(&x.to_le_bytes());
        }
        (h.len(), b)
    };
    let truncated = {
        let h = binary_header(48);
        let mut b = h.clone().into_bytes();
        b.extend_from_slice(&[0u8; 40]);
        (h.len(), b)
    };
    let oversized = {
        let h = binary_header(48);
        let mut b = h.clone().into_bytes();
        b.extend_from_slice(&[0u8; 60]);
        (h.len(), b)
    };

    let cases: Vec<Case> = vec![
        ("invalid JSON", infer.clone(), b"{\"inputs\": [".to_vec(), None, 400, vec!["invalid JSON"]),
        ("missing inputs", infer.clone(), b"{}".to_vec(), None, 400, vec!["missing field `inputs`"]),
        (
            "wrong dtype",
            infer.clone(),
            json!({"inputs": [{"name": "features", "shape": [1, 12], "datatype": "INT64", "data": vec![1; 12]}]}).to_string().into_bytes(),
            None, 400, vec!["input 'features'", "expected datatype FP32, got INT64"],
        ),
        (
            "wrong shape",
            infer.clone(),
            json!({"inputs": [{"name": "features", "shape": [1, 11], "datatype": "FP32", "data": vec![1.0; 11]}]}).to_string().into_bytes(),
            None, 400, vec!["input 'features'", "dimension 1 must be 12", "got 11"],
        ),
        (
            "wrong rank",
            infer.clone(),
            json!({"inputs": [{"name": "features", "shape": [12], "datatype": "FP32", "data": vec![1.0; 12]}]}).to_string().into_bytes(),
            None, 400, vec!["input 'features'", "rank 2", "rank 1"],
        ),
        (
            "element count",
            infer.clone(),
            json!({"inputs": [{"name": "features", "shape": [2, 12], "datatype": "FP32", "data": vec![1.0; 23]}]}).to_string().into_bytes(),
            None, 400, vec!["input 'features'", "needs 24 elements", "has 23"],
        ),
        (
            "string in a number tensor",
            infer.clone(),
            json!({"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [1.0, "x"]}]}).to_string().into_bytes(),
            None, 400, vec!["input 'features'", "data element 1", "expected a number for FP32"],
        ),
        (
            "unknown input",
            infer.clone(),
            json!({"inputs": [features(1), {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1.0]}]}).to_string().into_bytes(),
            None, 400, vec!["unknown input 'extra'", "expected one of: features"],
        ),
        (
            "missing input",
            server.url("/v2/models/dtypes/infer"),
            json!({"inputs": [{"name": "x_fp32", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).to_string().into_bytes(),
            None, 400, vec!["missing input 'x_fp64"],
        ),
        (
            "unknown output",
            infer.clone(),
            json!({"inputs": [features(1)], "outputs": [{"name": "score"}]}).to_string().into_bytes(),
            None, 400, vec!["unknown output 'score'", "probability, is_fraud"],
        ),
        ("NaN where forbidden", infer.clone(), nan_body.1, Some(nan_body.0), 400, vec!["input 'features'", "element 5 is NaN", "allow_non_finite"]),
        ("truncated binary", infer.clone(), truncated.1, Some(truncated.0), 400, vec!["input 'features'", "binary_data_size is 48 bytes but only 40"]),
        ("oversized binary", infer.clone(), oversized.1, Some(oversized.0), 400, vec!["12 bytes of binary data beyond"]),
        (
            "header length beyond body",
            infer.clone(),
            b"{}".to_vec(),
            Some(100), 400, vec!["Inference-Header-Content-Length is 100", "only 2 bytes"],
        ),
        (
            "unknown datatype",
            infer.clone(),
            json!({"inputs": [{"name": "features", "shape": [1, 12], "datatype": "FLOAT", "data": vec![1.0; 12]}]}).to_string().into_bytes(),
            None, 400, vec!["input 'features'", "datatype 'FLOAT'"],
        ),
        (
            "negative dimension",
            infer.clone(),
            json!({"inputs": [{"name": "features", "shape": [-1, 12], "datatype": "FP32", "data": vec![1.0; 12]}]}).to_string().into_bytes(),
            None, 400, vec!["input 'features'", "negative dimension"],
        ),
        ("unknown model", server.url("/v2/models/nope/infer"), json!({"inputs": []}).to_string().into_bytes(), None, 404, vec!["unknown model 'nope'", "fraud"]),
        (
            "unknown version",
            server.url("/v2/models/fraud/versions/9/infer"),
            json!({"inputs": [features(1)]}).to_string().into_bytes(),
            None, 404, vec!["model 'fraud' has no version '9'", "1, 2"],
        ),
        (
            "body over the limit",
            infer.clone(),
            vec![b' '; 300 * 1024],
            None, 413, vec!["exceeds the limit of 262144 bytes"],
        ),
    ];

    for (what, url, body, header_len, status, fragments) in cases {
        let mut req = http.post(&url).body(body);
        if let Some(n) = header_len {
            req = req.header("Inference-Header-Content-Length", n);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let v: serde_json::Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no error field in {v}"));
        for f in fragments {
            assert!(msg.contains(f), "{what}: message {msg:?} lacks {f:?}");
        }
    }

    // The server is still healthy and answers good requests.
    let ok = http
        .post(&infer)
        .json(&json!({"inputs": [features(1)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"model="fraud",version="2",protocol="http",outcome="invalid_argument""#)
    );
    server.stop().await;
}

/// A body sent chunked (no Content-Length) is refused once it passes the limit; its size is
/// never known, so the message names the limit and the setting instead ("request body of more
/// bytes" before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_gets_413_naming_the_limit_and_the_setting() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start_repo(&examples_dir().join("models")).await;
    let mut conn = tokio::net::TcpStream::connect(server.handle.http_addr)
        .await
        .unwrap();
    let mut request = b"POST /v2/models/fraud/infer HTTP/1.1\r\nhost: localhost\r\n\
content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        .to_vec();
    // 300 KiB in 16 KiB chunks, over the test server's 256 KiB.
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..(300 / 16 + 1) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = conn.write_all(&request).await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
            if response.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    for fragment in [
        "chunked request body",
        "exceeds the limit of 262144 bytes",
        "max_request_bytes",
        "--max-request-bytes",
    ] {
        assert!(text.contains(fragment), "lacks {fragment:?}: {text}");
    }
    assert!(!text.contains("more bytes"), "{text}");
    server.stop().await;
}

fn grpc_input(
    name: &str,
    dtype: &str,
    shape: Vec<i64>,
    contents: Option<InferTensorContents>,
) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: dtype.into(),
        shape,
        parameters: HashMap::new(),
        contents,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_inputs_get_invalid_argument_or_not_found() {
    let server = start_repo(&examples_dir().join("models")).await;
    let mut grpc = server.grpc_client().await;
    let fp32 = |n: usize| {
        Some(InferTensorContents {
            fp32_contents: vec![0.5; n],
            ..Default::default()
        })
    };
    let cases: Vec<(&str, ModelInferRequest, tonic::Code, Vec<&str>)> = vec![
        (
            "unknown model",
            ModelInferRequest {
                model_name: "nope".into(),
                ..Default::default()
            },
            tonic::Code::NotFound,
            vec!["unknown model 'nope'"],
        ),
        (
            "unknown version",
            ModelInferRequest {
                model_name: "fraud".into(),
                model_version: "7".into(),
                ..Default::default()
            },
            tonic::Code::NotFound,
            vec!["no version '7'"],
        ),
        (
            "wrong dtype",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input(
                    "features",
                    "FP64",
                    vec![1, 12],
                    Some(InferTensorContents {
                        fp64_contents: vec![0.0; 12],
                        ..Default::default()
                    }),
                )],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            vec!["input 'features'", "expected datatype FP32, got FP64"],
        ),
        (
            "wrong contents field",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input(
                    "features",
                    "FP32",
                    vec![1, 12],
                    Some(InferTensorContents {
                        int64_contents: vec![0; 12],
                        ..Default::default()
                    }),
                )],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            vec!["takes contents.fp32_contents, got contents.int64_contents"],
        ),
        (
            "element count",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input("features", "FP32", vec![1, 12], fp32(11))],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            vec!["input 'features'", "needs 12 elements", "has 11"],
        ),
        (
            "truncated raw",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input("features", "FP32", vec![1, 12], None)],
                raw_input_contents: vec![vec![0u8; 47].into()],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            vec!["input 'features'", "expected 48 bytes", "got 47"],
        ),
        (
            "raw count mismatch",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input("features", "FP32", vec![1, 12], None)],
                raw_input_contents: vec![vec![0u8; 48].into(), vec![0u8; 4].into()],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            vec!["raw_input_contents has 2 entries for 1 inputs"],
        ),
        (
            "NaN where forbidden",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input(
                    "features",
                    "FP32",
                    vec![1, 12],
                    Some(InferTensorContents {
                        fp32_contents: [vec![f32::INFINITY], vec![0.0; 11]].concat(),
                        ..Default::default()
                    }),
                )],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            vec!["element 0 is inf"],
        ),
        (
            "unknown output",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input("features", "FP32", vec![1, 12], fp32(12))],
                outputs: vec![InferRequestedOutputTensor {
                    name: "nope".into(),
                    parameters: HashMap::new(),
                }],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            vec!["unknown output 'nope'"],
        ),
        (
            "message over the limit",
            ModelInferRequest {
                model_name: "fraud".into(),
                inputs: vec![grpc_input("features", "FP32", vec![6000, 12], fp32(72_000))],
                ..Default::default()
            },
            tonic::Code::OutOfRange,
            vec!["message length too large"],
        ),
    ];
    for (what, req, code, fragments) in cases {
        let status = grpc.model_infer(req).await.expect_err(what);
        // tonic reports an over-size message with its own code; every other case is ours.
        assert_eq!(status.code(), code, "{what}: {}", status.message());
        for f in fragments {
            assert!(
                status.message().contains(f),
                "{what}: message {:?} lacks {f:?}",
                status.message()
            );
        }
    }
    server.stop().await;
}
