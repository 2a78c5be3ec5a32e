//! Priority classes, deadline-aware admission, the front door and the request context, end to
//! end on real sockets with a test engine whose calls take a known time.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use ballast_core::ModelConfig;
use ballast_proto::inference::{
    InferParameter, InferTensorContents, ModelInferRequest, infer_parameter,
    model_infer_request::InferInputTensor,
};
use common::*;
use serde_json::Value;

fn unbatched() -> ModelConfig {
    ModelConfig {
        max_batch_size: 0,
        instances: 1,
        ..ModelConfig::default()
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: String,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = http.post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("send")
}

fn grpc_request(model: &str, priority: Option<&str>) -> tonic::Request<ModelInferRequest> {
    let mut parameters = std::collections::HashMap::new();
    if let Some(p) = priority {
        parameters.insert(
            "priority".to_string(),
            InferParameter {
                parameter_choice: Some(infer_parameter::ParameterChoice::StringParam(p.into())),
            },
        );
    }
    tonic::Request::new(ModelInferRequest {
        model_name: model.into(),
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
        parameters,
        ..Default::default()
    })
}

/// One request through, so the scheduler knows what a call costs (100 ms here).
async fn prime(http: &reqwest::Client, url: &str) {
    let r = post(http, url, slow_body(0.5), &[]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_standing_queue_lower_classes_are_refused_first_and_deadlines_are_respected() {
    let engine = SlowDoubler::new(Duration::from_millis(100));
    let server = start_slow("prio", engine.clone(), unbatched(), api_config()).await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/prio/infer");
    prime(&http, &url).await;

    // One request computing and three queued: ~300 ms of predicted wait. Budgets with a
    // 100 ms call: default 200 ms (two calls), sheddable 100 ms, critical 800 ms.
    let mut running = Vec::new();
    for i in 0..4 {
        let (h, u) = (http.clone(), url.clone());
        running.push(tokio::spawn(async move {
            post(
                &h,
                &u,
                slow_body(i as f32),
                &[("x-ballast-priority", "critical")],
            )
            .await
            .status()
        }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    let sheddable = post(
        &http,
        &url,
        slow_body(9.0),
        &[("x-ballast-priority", "sheddable")],
    )
    .await;
    assert_eq!(sheddable.status(), 429);
    assert_eq!(sheddable.headers()["retry-after"], "1");
    let v: Value = sheddable.json().await.unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("budget for sheddable requests"), "{msg}");

    let default = post(&http, &url, slow_body(9.0), &[]).await;
    assert_eq!(
        default.status(),
        429,
        "300 ms of queue is over default's 200 ms"
    );

    // The OIP priority parameter says the same as the header.
    let by_param = post(
        &http,
        &url,
        r#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}],"parameters":{"priority":"sheddable"}}"#.into(),
        &[("x-ballast-priority", "critical")],
    )
    .await;
    assert_eq!(
        by_param.status(),
        429,
        "the body's priority applies after decode"
    );

    let mut grpc = server.grpc_client().await;
    let status = grpc
        .model_infer(grpc_request("prio", Some("sheddable")))
        .await
        .expect_err("sheddable over gRPC");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "1000"
    );

    // A critical request is admitted, unless its own deadline cannot be met.
    let tight = post(
        &http,
        &url,
        slow_body(9.0),
        &[
            ("x-ballast-priority", "critical"),
            ("x-ballast-timeout-ms", "50"),
        ],
    )
    .await;
    assert_eq!(tight.status(), 429);
    let v: Value = tight.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("within the request's deadline"),
        "{v}"
    );
    let critical = post(
        &http,
        &url,
        slow_body(9.0),
        &[("x-ballast-priority", "critical")],
    )
    .await;
    assert_eq!(critical.status(), 200);

    for r in running {
        assert_eq!(r.await.unwrap(), 200);
    }
    // 1 prime + 4 queued + 1 critical: nothing refused reached the engine.
    assert_eq!(engine.calls(), 6);
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
            r#"ballast_rejections_total{model="prio",version="1",reason="queue_budget"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"ballast_rejections_total{model="prio",version="1",reason="deadline_unmeetable"} 1"#
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_refuses_by_priority_before_reading_the_request() {
    let engine = SlowDoubler::new(Duration::from_millis(1));
    let server = start_slow("door", engine.clone(), unbatched(), api_config()).await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/door/infer");
    // The event loop "lags" 12 ms: over default's 10 ms budget, under critical's 40 ms.
    server
        .handle
        .state
        .door
        .force_lag(Duration::from_millis(12));

    let refused = post(&http, &url, slow_body(1.0), &[]).await;
    assert_eq!(refused.status(), 429);
    let v: Value = refused.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("requests wait 12.0 ms before they are read"),
        "{v}"
    );
    // Refused before routing: even an unknown model gets the overload answer, not a 404.
    let unknown = post(
        &http,
        &server.url("/v2/models/nope/infer"),
        slow_body(1.0),
        &[],
    )
    .await;
    assert_eq!(unknown.status(), 429);
    let mut grpc = server.grpc_client().await;
    let status = grpc
        .model_infer(grpc_request("door", None))
        .await
        .expect_err("refused at the door");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.metadata().get("grpc-retry-pushback-ms").is_some());

    let mut critical = grpc_request("door", None);
    critical
        .metadata_mut()
        .insert("x-ballast-priority", "critical".parse().unwrap());
    grpc.model_infer(critical).await.expect("critical passes");
    let ok = post(
        &http,
        &url,
        slow_body(1.0),
        &[("x-ballast-priority", "critical")],
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        engine.calls(),
        2,
        "only the critical requests were computed"
    );

    server.handle.state.door.force_lag(Duration::ZERO);
    assert_eq!(post(&http, &url, slow_body(1.0), &[]).await.status(), 200);
    let bad = post(
        &http,
        &url,
        slow_body(1.0),
        &[("x-ballast-priority", "urgent")],
    )
    .await;
    assert_eq!(bad.status(), 400);
    let v: Value = bad.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("x-ballast-priority"),
        "{v}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_generated() {
    let engine = SlowDoubler::new(Duration::from_millis(1));
    let server = start_slow("ids", engine, unbatched(), api_config()).await;
    let http = reqwest::Client::new();
    let url = server.url("/v2/models/ids/infer");

    let given = post(&http, &url, slow_body(1.0), &[("x-request-id", "abc-123")]).await;
    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let generated = post(&http, &url, slow_body(1.0), &[]).await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32, "{id}");
    let again = post(&http, &url, slow_body(1.0), &[]).await;
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), id);

    // The OIP id field wins and is echoed in the body and the header.
    let body =
        r#"{"id":"oip-7","inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]}"#;
    let oip = post(&http, &url, body.into(), &[("x-request-id", "hdr")]).await;
    assert_eq!(oip.headers()["x-request-id"], "oip-7");
    let v: Value = oip.json().await.unwrap();
    assert_eq!(v["id"], "oip-7");

    // Errors carry the id too.
    let missing = post(
        &http,
        &server.url("/v2/models/none/infer"),
        slow_body(1.0),
        &[("x-request-id", "e1")],
    )
    .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-request-id"], "e1");

    let mut grpc = server.grpc_client().await;
    let mut req = grpc_request("ids", None);
    req.metadata_mut()
        .insert("x-request-id", "g-1".parse().unwrap());
    let resp = grpc.model_infer(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "g-1");
    server.stop().await;
}
