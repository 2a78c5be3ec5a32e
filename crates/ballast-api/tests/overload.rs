//! Overload, deadlines, cancellation, batching and draining, end to end on real sockets.
//! A test engine (`SlowDoubler`) makes engine time and engine calls observable.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use ballast_core::ModelConfig;
use ballast_proto::inference::{
    InferTensorContents, ModelInferRequest, model_infer_request::InferInputTensor,
};
use common::*;
use serde_json::{Value, json};

fn config(f: impl FnOnce(&mut ModelConfig)) -> ModelConfig {
    let mut c = ModelConfig {
        max_batch_size: 0,
        instances: 1,
        ..ModelConfig::default()
    };
    f(&mut c);
    c
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> reqwest::Response {
    http.post(url).body(body).send().await.expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheds_with_429_and_retry_after_at_the_concurrency_limit() {
    let engine = SlowDoubler::new(Duration::from_millis(400));
    let server = start_slow(
        "shed",
        engine.clone(),
        config(|c| {
            c.min_concurrency = Some(2);
            c.max_concurrency = Some(2);
        }),
        api_config(),
    )
    .await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/shed/infer");
    let a = tokio::spawn({
        let (h, u) = (http.clone(), url.clone());
        async move { post(&h, &u, slow_body(1.0)).await.status() }
    });
    let b = tokio::spawn({
        let (h, u) = (http.clone(), url.clone());
        async move { post(&h, &u, slow_body(2.0)).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let refused = post(&http, &url, slow_body(3.0)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let v: Value = refused.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("model 'shed' is at its concurrency limit"),
        "{v}"
    );
    assert!(
        !a.is_finished() && !b.is_finished(),
        "the refusal came back while admitted work was still running"
    );

    let mut grpc = server.grpc_client().await;
    let status = grpc
        .model_infer(ModelInferRequest {
            model_name: "shed".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![1, 1],
                parameters: Default::default(),
                contents: Some(InferTensorContents {
                    fp32_contents: vec![1.0],
                    ..Default::default()
                }),
            }],
            ..Default::default()
        })
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);

    assert_eq!(a.await.unwrap(), 200);
    assert_eq!(b.await.unwrap(), 200);
    assert_eq!(engine.calls(), 2, "refused requests cost no engine time");
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"ballast_rejections_total{model="shed",version="1",reason="concurrency_limit"} 2"#
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheds_when_the_queue_is_full() {
    let engine = SlowDoubler::new(Duration::from_millis(400));
    let server = start_slow(
        "queuefull",
        engine.clone(),
        config(|c| {
            c.max_queue_size = 1;
            c.min_concurrency = Some(100);
        }),
        api_config(),
    )
    .await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/queuefull/infer");
    let running = tokio::spawn({
        let (h, u) = (http.clone(), url.clone());
        async move { post(&h, &u, slow_body(1.0)).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = tokio::spawn({
        let (h, u) = (http.clone(), url.clone());
        async move { post(&h, &u, slow_body(2.0)).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = post(&http, &url, slow_body(3.0)).await;
    assert_eq!(refused.status(), 429);
    let v: Value = refused.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("queue is full"),
        "{v}"
    );
    assert_eq!(running.await.unwrap(), 200);
    assert_eq!(queued.await.unwrap(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_cancelled_requests_are_never_computed() {
    let engine = SlowDoubler::new(Duration::from_millis(300));
    let server = start_slow("expiry", engine.clone(), config(|_| {}), api_config()).await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/expiry/infer");
    let busy = tokio::spawn({
        let (h, u) = (http.clone(), url.clone());
        async move { post(&h, &u, slow_body(1.0)).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    // OIP timeout parameter (microseconds): expires while queued behind `busy`.
    let started = std::time::Instant::now();
    let body = json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [5.0]}], "parameters": {"timeout": 50_000}});
    let expired = post(&http, &url, body.to_string()).await;
    assert_eq!(expired.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "answered at the deadline, not after the engine freed up"
    );
    let v: Value = expired.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("deadline exceeded"),
        "{v}"
    );

    // The header form of the deadline.
    let expired = http
        .post(&url)
        .header("x-ballast-timeout-ms", "30")
        .body(slow_body(6.0))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 504);

    // A client that goes away while queued.
    let gone = http
        .post(&url)
        .timeout(Duration::from_millis(40))
        .body(slow_body(7.0))
        .send()
        .await;
    assert!(gone.is_err(), "client-side timeout");

    assert_eq!(busy.await.unwrap(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        engine.calls(),
        1,
        "only the request that kept its deadline and its caller was computed"
    );

    // A deadline that already passed on arrival is refused before queueing.
    let gone = http.post(&url).body(json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}], "parameters": {"timeout": -5}}).to_string()).send().await.unwrap();
    assert_eq!(gone.status(), 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_into_few_engine_calls() {
    let engine = SlowDoubler::new(Duration::from_millis(20));
    let server = start_slow(
        "batching",
        engine.clone(),
        config(|c| {
            c.max_batch_size = 32;
            c.max_queue_delay = Duration::from_millis(30);
        }),
        api_config(),
    )
    .await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/batching/infer");
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (h, u) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let v: Value = post(&h, &u, slow_body(i as f32))
                    .await
                    .json()
                    .await
                    .unwrap();
                v["outputs"][0]["data"][0].as_f64().unwrap()
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(
            t.await.unwrap(),
            2.0 * i as f64,
            "request {i} got its own row back"
        );
    }
    assert_eq!(engine.rows.load(std::sync::atomic::Ordering::SeqCst), 32);
    assert!(
        engine.calls() <= 8,
        "32 concurrent requests took {} engine calls",
        engine.calls()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_results_are_identical_to_solo_results_on_a_real_model() {
    // A copy of the fraud model with a long batching window, so concurrent requests merge.
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("fraud/2");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::copy(
        examples_dir().join("models/fraud/2/model.onnx"),
        model_dir.join("model.onnx"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("fraud/config.toml"),
        "max_batch_size = 64\nmax_queue_delay_ms = 40\n",
    )
    .unwrap();
    let server = start_repo(dir.path()).await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/fraud/infer");
    let body = |i: usize| {
        let row: Vec<f32> = (0..12)
            .map(|j| ((i * 31 + j * 7) % 17) as f32 / 4.0 - 2.0)
            .collect();
        json!({"inputs": [{"name": "features", "shape": [1, 12], "datatype": "FP32", "data": row}],
               "parameters": {"binary_data_output": true}})
        .to_string()
    };
    // Alone: one at a time.
    let mut solo = Vec::new();
    for i in 0..40 {
        solo.push(post(&http, &url, body(i)).await.bytes().await.unwrap());
    }
    let batch_sum_before = batch_rows(&http, &server).await;
    // Together.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (h, u, b) = (http.clone(), url.clone(), body(i));
            tokio::spawn(async move { post(&h, &u, b).await.bytes().await.unwrap() })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(
            t.await.unwrap(),
            solo[i],
            "request {i}: batched bytes differ from solo bytes"
        );
    }
    let (sum, count) = batch_rows(&http, &server).await;
    let (rows, calls) = (sum - batch_sum_before.0, count - batch_sum_before.1);
    assert_eq!(rows, 40.0);
    assert!(
        calls < 20.0,
        "40 concurrent rows took {calls} engine calls: not batched"
    );
    server.stop().await;
}

/// (sum, count) of the fraud batch-size histogram.
async fn batch_rows(http: &reqwest::Client, server: &TestServer) -> (f64, f64) {
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let read = |suffix: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("ballast_inference_batch_size_{suffix}{{"))
                    && l.contains(r#"model="fraud""#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (read("sum"), read("count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drain_finishes_in_flight_work_and_refuses_new() {
    let engine = SlowDoubler::new(Duration::from_millis(400));
    let server = start_slow("drain", engine.clone(), config(|_| {}), api_config()).await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/drain/infer");
    let in_flight = tokio::spawn({
        let (h, u) = (http.clone(), url.clone());
        async move { post(&h, &u, slow_body(1.0)).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.handle.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!server.handle.state.is_ready());
    // A new request on a fresh connection is refused (connection closed) or answered 503.
    match reqwest::Client::new()
        .post(&url)
        .body(slow_body(2.0))
        .send()
        .await
    {
        Ok(resp) => assert_eq!(resp.status(), 503),
        Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
    }
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "admitted work finishes during the drain"
    );
    assert_eq!(server.stop().await, 0, "nothing left in flight");
}
