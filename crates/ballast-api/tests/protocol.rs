//! End-to-end protocol tests: a real server on 127.0.0.1:0 serving the example repository,
//! called over HTTP (reqwest) and gRPC (tonic). Outputs are checked against onnxruntime's
//! results committed in `examples/fixtures/expected.json`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;

use ballast_core::tensor::f16;
use ballast_proto::inference::{
    InferTensorContents, ModelInferRequest, ModelMetadataRequest, ServerReadyRequest,
    model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
};
use common::*;
use serde_json::{Value, json};

fn fixtures() -> Vec<Value> {
    let text =
        std::fs::read_to_string(examples_dir().join("fixtures/expected.json")).expect("fixtures");
    serde_json::from_str::<Vec<Value>>(&text).expect("fixture json")
}

fn as_f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| match x {
            Value::Bool(b) => f64::from(u8::from(*b)),
            other => other.as_f64().expect("number"),
        })
        .collect()
}

fn assert_close(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-6 + 1e-5 * w.abs();
        assert!(
            (g - w).abs() <= tol,
            "{name}[{i}]: got {g}, onnxruntime {w}"
        );
    }
}

/// Decodes raw little-endian tensor bytes into f64 for comparison.
fn raw_to_f64s(dtype: &str, raw: &[u8]) -> Vec<f64> {
    match dtype {
        "FP32" => raw
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "FP64" => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "INT32" => raw
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "INT64" => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        "BOOL" | "UINT8" => raw.iter().map(|b| f64::from(*b)).collect(),
        "FP16" => raw
            .chunks_exact(2)
            .map(|c| f64::from(f16::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        other => panic!("unexpected dtype {other}"),
    }
}

fn encode_raw(dtype: &str, data: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for x in data.as_array().unwrap() {
        match dtype {
            "FP32" => out.extend_from_slice(&(x.as_f64().unwrap() as f32).to_le_bytes()),
            "FP64" => out.extend_from_slice(&x.as_f64().unwrap().to_le_bytes()),
            "INT32" => out.extend_from_slice(&(x.as_i64().unwrap() as i32).to_le_bytes()),
            "INT64" => out.extend_from_slice(&x.as_i64().unwrap().to_le_bytes()),
            "BOOL" => out.push(u8::from(x.as_bool().unwrap())),
            "UINT8" => out.push(u8::try_from(x.as_u64().unwrap()).unwrap()),
            "FP16" => out.extend_from_slice(&f16::from_f64(x.as_f64().unwrap()).to_le_bytes()),
            other => panic!("unexpected dtype {other}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_matches_onnxruntime_on_the_example_models() {
    let server = start_repo(&examples_dir().join("models")).await;
    let http = reqwest::Client::new();
    let mut grpc = server.grpc_client().await;
    for case in fixtures() {
        let model = case["model"].as_str().unwrap();
        let version = case["version"].as_str().unwrap();
        let url = server.url(&format!("/v2/models/{model}/versions/{version}/infer"));
        let want: HashMap<String, Vec<f64>> = case["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["name"].as_str().unwrap().to_string(), as_f64s(&o["data"])))
            .collect();

        // JSON in, JSON out.
        let body = json!({ "id": "fixture", "inputs": case["inputs"] });
        let resp = http.post(&url).body(body.to_string()).send().await.unwrap();
        assert_eq!(
            resp.status(),
            200,
            "{model}: {}",
            resp.text().await.unwrap()
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["model_name"], model);
        assert_eq!(v["model_version"], version);
        assert_eq!(v["id"], "fixture");
        for out in v["outputs"].as_array().unwrap() {
            let name = out["name"].as_str().unwrap();
            assert_close(
                &format!("{model}/json/{name}"),
                &as_f64s(&out["data"]),
                &want[name],
            );
        }

        // Binary in, binary out (what tritonclient sends by default).
        let mut inputs = Vec::new();
        let mut binary = Vec::new();
        for input in case["inputs"].as_array().unwrap() {
            let raw = encode_raw(input["datatype"].as_str().unwrap(), &input["data"]);
            inputs.push(json!({
                "name": input["name"], "datatype": input["datatype"], "shape": input["shape"],
                "parameters": { "binary_data_size": raw.len() }
            }));
            binary.extend_from_slice(&raw);
        }
        let header =
            json!({ "inputs": inputs, "parameters": { "binary_data_output": true } }).to_string();
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&binary);
        let resp = http
            .post(&url)
            .header("Inference-Header-Content-Length", header.len())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let json_len: usize = resp.headers()["inference-header-content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
        let mut offset = json_len;
        for out in v["outputs"].as_array().unwrap() {
            let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
            let got = raw_to_f64s(
                out["datatype"].as_str().unwrap(),
                &bytes[offset..offset + size],
            );
            offset += size;
            assert_close(
                &format!("{model}/binary/{}", out["name"]),
                &got,
                &want[out["name"].as_str().unwrap()],
            );
        }
        assert_eq!(offset, bytes.len());

        // gRPC with raw contents.
        let request = ModelInferRequest {
            model_name: model.into(),
            model_version: version.into(),
            inputs: case["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| InferInputTensor {
                    name: i["name"].as_str().unwrap().into(),
                    datatype: i["datatype"].as_str().unwrap().into(),
                    shape: i["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_i64().unwrap())
                        .collect(),
                    parameters: HashMap::new(),
                    contents: None,
                })
                .collect(),
            raw_input_contents: case["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| encode_raw(i["datatype"].as_str().unwrap(), &i["data"]).into())
                .collect(),
            ..Default::default()
        };
        let resp = grpc
            .model_infer(request)
            .await
            .expect("grpc infer")
            .into_inner();
        assert_eq!(resp.outputs.len(), resp.raw_output_contents.len());
        for (out, raw) in resp.outputs.iter().zip(&resp.raw_output_contents) {
            assert_close(
                &format!("{model}/grpc/{}", out.name),
                &raw_to_f64s(&out.datatype, raw),
                &want[&out.name],
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_health_and_output_selection() {
    let server = start_repo(&examples_dir().join("models")).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(server.url(path)).send();

    assert_eq!(get("/v2/health/live").await.unwrap().status(), 200);
    assert_eq!(get("/v2/health/ready").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let v: Value = get("/v2").await.unwrap().json().await.unwrap();
    assert_eq!(v["name"], "ballast");
    assert!(
        v["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    let r = get("/openapi.yaml").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/yaml");
    assert_eq!(r.text().await.unwrap(), ballast_api::http::OPENAPI);

    let v: Value = get("/v2/models/fraud").await.unwrap().json().await.unwrap();
    assert_eq!(v["versions"], json!(["1", "2"]));
    assert_eq!(
        v["inputs"][0],
        json!({"name": "features", "datatype": "FP32", "shape": [-1, 12]})
    );
    assert_eq!(
        get("/v2/models/fraud/versions/1/ready")
            .await
            .unwrap()
            .status(),
        200
    );
    let cfg: Value = get("/v2/models/fraud/config")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // ONNX runs on ONNX Runtime when its library is installed, else on tract.
    let expected_engine = if ballast_engine::onnxruntime::find_library(None).is_ok() {
        "onnxruntime"
    } else {
        "tract"
    };
    assert_eq!(cfg["engine"], expected_engine);
    assert_eq!(cfg["max_batch_size"], 64);

    // Only the requested output comes back, in JSON when asked.
    let body = json!({
        "inputs": [{"name": "features", "shape": [2, 12], "datatype": "FP32", "data": vec![0.5f32; 24]}],
        "outputs": [{"name": "is_fraud", "parameters": {"binary_data": false}}]
    });
    let v: Value = http
        .post(server.url("/v2/models/fraud/infer"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["model_version"], "2",
        "the highest version is the default"
    );
    assert_eq!(v["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(v["outputs"][0]["name"], "is_fraud");
    assert_eq!(v["outputs"][0]["datatype"], "BOOL");
    assert_eq!(v["outputs"][0]["shape"], json!([2, 1]));

    let mut grpc = server.grpc_client().await;
    assert!(
        grpc.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let md = grpc
        .model_metadata(ModelMetadataRequest {
            name: "dtypes".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let dtypes: Vec<&str> = md.inputs.iter().map(|t| t.datatype.as_str()).collect();
    for want in ["FP64", "INT32", "INT64", "BOOL", "FP32"] {
        assert!(dtypes.contains(&want), "{dtypes:?} lacks {want}");
    }

    // Typed gRPC contents work too, and output selection applies.
    let resp = grpc
        .model_infer(ModelInferRequest {
            model_name: "seqmean".into(),
            inputs: vec![InferInputTensor {
                name: "tokens".into(),
                datatype: "FP32".into(),
                shape: vec![1, 4],
                parameters: HashMap::new(),
                contents: Some(InferTensorContents {
                    fp32_contents: vec![1.0, 2.0, 3.0, 6.0],
                    ..Default::default()
                }),
            }],
            outputs: vec![InferRequestedOutputTensor {
                name: "mean".into(),
                parameters: HashMap::new(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.outputs.len(), 1);
    assert_eq!(raw_to_f64s("FP32", &resp.raw_output_contents[0]), vec![3.0]);

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for name in [
        "ballast_inference_requests_total",
        "ballast_inference_request_duration_seconds_bucket",
        "ballast_inference_queue_duration_seconds_bucket",
        "ballast_inference_compute_duration_seconds_bucket",
        "ballast_inference_batch_size_bucket",
        "ballast_concurrency_limit",
        "ballast_build_info",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
    // Each request is counted under the protocol it came in on.
    assert!(
        metrics.contains(r#"model="fraud",version="2",protocol="http",outcome="ok""#),
        "{metrics}"
    );
    // (The metrics registry is process-wide and other tests here send seqmean over HTTP, so
    // only the presence of this test's gRPC line is checked, not the absence of others.)
    assert!(metrics.contains(r#"model="seqmean",version="1",protocol="grpc",outcome="ok""#));
    server.stop().await;
}

/// A tree model with no config takes NaN as "missing" (each split's default side) and answers
/// with xgboost's own prediction; the same request to an ONNX MLP is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_models_take_nan_as_missing_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        common::examples_dir().join("../crates/ballast-engine/tests/fixtures/trees/xgb_binary");
    std::fs::create_dir_all(dir.path().join("xgb/1")).unwrap();
    std::fs::copy(
        fixture.join("model.json"),
        dir.path().join("xgb/1/model.json"),
    )
    .unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    // The first fixture row that holds a NaN (JSON null), and xgboost's answer for it.
    let data = expected["input"]["data"].as_array().unwrap();
    let row = (0..200)
        .find(|r| data[r * 6..r * 6 + 6].iter().any(Value::is_null))
        .unwrap();
    let x: Vec<f32> = data[row * 6..row * 6 + 6]
        .iter()
        .map(|v| v.as_f64().map_or(f32::NAN, |f| f as f32))
        .collect();
    let want = expected["outputs"]["probability"]["data"][row]
        .as_f64()
        .unwrap();

    let server = common::start_repo(dir.path()).await;
    // Binary tensor extension: JSON cannot carry NaN.
    let header = json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 6],
        "parameters": {"binary_data_size": 24}}],
        "outputs": [{"name": "probability", "parameters": {"binary_data": false}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    for v in &x {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let resp = reqwest::Client::new()
        .post(server.url("/v2/models/xgb/infer"))
        .header("Inference-Header-Content-Length", header.len().to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    let got = out["outputs"][0]["data"][0].as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "got {got}, xgboost gave {want}");
    let cfg: Value = reqwest::get(server.url("/v2/models/xgb/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["engine"], "trees");
    assert_eq!(
        cfg["allow_non_finite"],
        Value::Null,
        "no config: the engine's default"
    );
    assert_eq!(
        (cfg["allow_nan"].clone(), cfg["allow_inf"].clone()),
        (true.into(), false.into())
    );

    // JSON has no NaN: `null` and "NaN" are missing values, and give xgboost's answer.
    for missing in [Value::Null, json!("NaN")] {
        let data: Vec<Value> = x
            .iter()
            .map(|v| {
                if v.is_nan() {
                    missing.clone()
                } else {
                    json!(v)
                }
            })
            .collect();
        let body = json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 6], "data": data}]});
        let resp = reqwest::Client::new()
            .post(server.url("/v2/models/xgb/infer"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{missing}");
        let out: Value = resp.json().await.unwrap();
        let got = out["outputs"][0]["data"][0].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-6,
            "{missing}: got {got}, xgboost gave {want}"
        );
    }
    // ±Inf is refused on a tree model unless its config allows non-finite values (XGBoost
    // refuses it too).
    let body = json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 6],
        "data": ["Infinity", 0, 0, 0, 0, 0]}]});
    let resp = reqwest::Client::new()
        .post(server.url("/v2/models/xgb/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("element 0 is inf") && text.contains("allow_non_finite"),
        "{text}"
    );
    server.stop().await;
}

/// A request with more rows than `max_batch_size` (64 for the fraud model) is served as one
/// engine call, outputs in row order; INT32 and FP32 inputs widen to INT64 and FP64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_and_lossless_datatypes_are_served() {
    let server = start_repo(&examples_dir().join("models")).await;
    let client = reqwest::Client::new();
    let rows = 150;
    let x: Vec<f32> = (0..rows * 12)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let call = |rows: usize, data: &[f32]| {
        let body = json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [rows, 12], "data": data}],
            "outputs": [{"name": "probability"}]});
        let client = client.clone();
        let url = server.url("/v2/models/fraud/versions/1/infer");
        async move {
            let resp = client.post(url).json(&body).send().await.unwrap();
            let status = resp.status();
            let out: Value = resp.json().await.unwrap();
            assert_eq!(status, 200, "{out}");
            as_f64s(&out["outputs"][0]["data"])
        }
    };
    let all = call(rows, &x).await;
    assert_eq!(all.len(), rows);
    for r in [0, 63, 64, 65, 149] {
        let one = call(1, &x[r * 12..(r + 1) * 12]).await;
        assert!(
            (one[0] - all[r]).abs() < 1e-6,
            "row {r}: {} alone, {} in the big request",
            one[0],
            all[r]
        );
    }

    // The dtypes model declares x_fp64 (FP64) and x_int64 (INT64): narrower types widen.
    let meta: Value = client
        .get(server.url("/v2/models/dtypes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut inputs = Vec::new();
    for input in meta["inputs"].as_array().unwrap() {
        let shape: Vec<i64> = input["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_i64().unwrap().max(1))
            .collect();
        let n: i64 = shape.iter().product();
        let (datatype, data) = match input["datatype"].as_str().unwrap() {
            "FP64" => ("FP32", json!(vec![0.5; n as usize])),
            "INT64" => ("INT32", json!(vec![3; n as usize])),
            "BYTES" => ("BYTES", json!(vec!["a"; n as usize])),
            "BOOL" => ("BOOL", json!(vec![true; n as usize])),
            other => (other, json!(vec![1; n as usize])),
        };
        inputs.push(
            json!({"name": input["name"], "datatype": datatype, "shape": shape, "data": data}),
        );
    }
    let resp = client
        .post(server.url("/v2/models/dtypes/infer"))
        .json(&json!({"inputs": inputs}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    server.stop().await;
}

/// An existing Triton repository serves as it is: an ONNX model's `config.pbtxt` sets its batch
/// size and Triton's default version policy (latest only), and a FIL-style XGBoost model
/// (`xgboost.json` + `config.pbtxt`) answers under the tensor names its configuration gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triton_repository_with_config_pbtxt_serves_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let models = examples_dir().join("models");
    for v in ["1", "2"] {
        let d = dir.path().join(format!("onnx_fraud/{v}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            models.join(format!("fraud/{v}/model.onnx")),
            d.join("model.onnx"),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("onnx_fraud/config.pbtxt"),
        r#"name: "onnx_fraud"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "features" data_type: TYPE_FP32 dims: [ 12 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 200 }
"#,
    )
    .unwrap();
    let fixture = examples_dir().join("../crates/ballast-engine/tests/fixtures/trees/xgb_binary");
    std::fs::create_dir_all(dir.path().join("fil_xgb/1")).unwrap();
    std::fs::copy(
        fixture.join("model.json"),
        dir.path().join("fil_xgb/1/xgboost.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("fil_xgb/config.pbtxt"),
        r#"backend: "fil"
max_batch_size: 1024
input [ { name: "input__0" data_type: TYPE_FP32 dims: [ 6 ] } ]
output [ { name: "output__0" data_type: TYPE_FP32 dims: [ ] } ]
parameters [ { key: "model_type" value: { string_value: "xgboost_json" } } ]
"#,
    )
    .unwrap();
    let server = start_repo(dir.path()).await;
    let client = reqwest::Client::new();

    let cfg: Value = client
        .get(server.url("/v2/models/onnx_fraud/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["max_batch_size"], 8, "{cfg}");
    assert_eq!(cfg["version"], "2");
    let meta: Value = client
        .get(server.url("/v2/models/onnx_fraud"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["versions"],
        json!(["2"]),
        "Triton's default version policy: latest only"
    );

    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    let row: Vec<Value> = expected["input"]["data"].as_array().unwrap()[..6].to_vec();
    let want = expected["outputs"]["probability"]["data"][0]
        .as_f64()
        .unwrap();
    let resp = client
        .post(server.url("/v2/models/fil_xgb/infer"))
        .json(&json!({"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 6], "data": row}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let out: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["outputs"][0]["name"], "output__0");
    let got = out["outputs"][0]["data"][0].as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "got {got}, xgboost gave {want}");
    server.stop().await;
}

/// A scikit-learn pipeline exported with skl2onnx's defaults (`zipmap=True`) serves as it is:
/// over the KServe V1 protocol (`instances` → `predictions`, scikit-learn's `predict()` labels)
/// and over V2 with the ZipMap output as the probability matrix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scikit_learn_export_serves_over_kserve_v1_and_v2() {
    let fixture =
        examples_dir().join("../crates/ballast-engine/tests/fixtures/sklearn/scaler_logreg_zipmap");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("iris/1")).unwrap();
    std::fs::copy(
        fixture.join("model.onnx"),
        dir.path().join("iris/1/model.onnx"),
    )
    .unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    let x = as_f64s(&expected["input"]["data"]);
    let cols = expected["input"]["shape"][1].as_u64().unwrap() as usize;
    let rows = 5;
    let instances: Vec<Vec<f64>> = (0..rows)
        .map(|r| x[r * cols..(r + 1) * cols].to_vec())
        .collect();
    let labels = &expected["sklearn"]["label"]["data"];
    let probs = as_f64s(&expected["sklearn"]["probabilities"]["data"]);

    let server = start_repo(dir.path()).await;
    let client = reqwest::Client::new();
    let status: Value = client
        .get(server.url("/v1/models/iris"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status, json!({"name": "iris", "ready": true}));
    let resp = client
        .post(server.url("/v1/models/iris:predict"))
        .json(&json!({ "instances": instances }))
        .send()
        .await
        .unwrap();
    let code = resp.status();
    let out: Value = resp.json().await.unwrap();
    assert_eq!(code, 200, "{out}");
    let predictions = out["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), rows);
    for r in 0..rows {
        assert_eq!(predictions[r], labels[r], "row {r}");
    }
    let resp = client
        .post(server.url("/v1/models/iris:explain"))
        .json(&json!({ "instances": instances }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 501);

    // V2: the ZipMap output is the probability tensor, named as in the graph.
    let flat: Vec<f64> = instances.concat();
    let resp = client
        .post(server.url("/v2/models/iris/infer"))
        .json(&json!({"inputs": [{"name": "X", "datatype": "FP32", "shape": [rows, cols], "data": flat}],
            "outputs": [{"name": "output_probability"}]}))
        .send()
        .await
        .unwrap();
    let code = resp.status();
    let out: Value = resp.json().await.unwrap();
    assert_eq!(code, 200, "{out}");
    let got = as_f64s(&out["outputs"][0]["data"]);
    let classes = got.len() / rows;
    assert_eq!(out["outputs"][0]["shape"], json!([rows, classes]));
    for (i, g) in got.iter().enumerate() {
        assert!(
            (g - probs[i]).abs() < 1e-4,
            "probability {i}: {g} vs scikit-learn {}",
            probs[i]
        );
    }
    server.stop().await;
}

/// Every route of the HTTP front end appears in `docs/inference-openapi.yaml` with its methods,
/// and every documented path is a route (the document cannot drift either way).
#[test]
fn openapi_documents_every_inference_route() {
    let doc: serde_norway::Value = serde_norway::from_str(ballast_api::http::OPENAPI).unwrap();
    let paths = doc["paths"].as_mapping().unwrap();
    let source = include_str!("../src/http/mod.rs");
    let start = source.find("Router::new()").unwrap();
    let end = source[start..].find(".fallback(").unwrap() + start;
    let mut routes = Vec::new();
    for chunk in source[start..end].split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap();
        let documented = paths
            .get(serde_norway::Value::String(path.to_string()))
            .unwrap_or_else(|| panic!("{path} is not in docs/inference-openapi.yaml"));
        for (call, method) in [("get(", "get"), ("post(", "post")] {
            if chunk.contains(call) {
                assert!(
                    documented.get(method).is_some(),
                    "{method} {path} is not documented"
                );
            }
        }
        routes.push(path.to_string());
    }
    assert!(routes.len() >= 20, "found only {} routes", routes.len());
    for (path, _) in paths {
        let path = path.as_str().unwrap();
        assert!(
            routes.iter().any(|r| r == path),
            "{path} is documented but not routed"
        );
    }
}
