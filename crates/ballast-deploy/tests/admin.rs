//! The admin API on a real socket: bearer token, push by upload (twice: one copy), promote and
//! rollback reaching the inference port, policy validation, events, apply, and an OpenAPI
//! document that lists every route the router serves.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use ballast_deploy::admin::{AdminState, OPENAPI, router};
use common::*;

const TOKEN: &str = "0123456789abcdef-admin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_drives_the_registry_and_the_server_follows() {
    let _serial = SERIAL.lock().await;
    let stack = start(tempfile::tempdir().unwrap()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    let app = router(AdminState {
        deployer: stack.deployer.clone(),
        token: Some(TOKEN.into()),
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let auth = format!("Bearer {TOKEN}");

    let r = client
        .get(format!("{admin}/admin/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("{admin}/admin/v1/models"))
        .header("authorization", "Bearer wrong-token-of-same-len")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let upload = |model: String| {
        let url = format!(
            "{admin}/admin/v1/models/api/versions?file=model.json&owner=o&description=d&intended_use=u&trained_on=s3%3A%2F%2Fx&metrics=auc%3D0.9"
        );
        client
            .post(url)
            .header("authorization", &auth)
            .header("x-ballast-actor", "ci-bot")
            .body(model)
    };
    let r = upload(xgb_model(FEATURES, 5, 1, 0)).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v1: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v1["version"], 1);
    assert_eq!(
        v1["promoted"], true,
        "the model's first version becomes production"
    );
    let r = upload(xgb_model(FEATURES, 5, 1, 0)).send().await.unwrap();
    assert_eq!(r.status(), 200, "the same upload is the same version");
    let r = upload(xgb_model(FEATURES, 5, 2, 0)).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v2: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v2["promoted"], false, "later versions wait for a promote");
    assert_eq!(stack.registry.artifacts.blob_count().await.unwrap(), 2);

    // Missing card fields are named.
    let r = client
        .post(format!(
            "{admin}/admin/v1/models/api/versions?file=model.json&owner=o"
        ))
        .header("authorization", &auth)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("description") && text.contains("trained-on"),
        "{text}"
    );

    for (version, expect) in [(1, "1"), (2, "2")] {
        let r = client
            .put(format!("{admin}/admin/v1/models/api/aliases/production"))
            .header("authorization", &auth)
            .json(&serde_json::json!({ "version": version, "reason": "test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let infer = format!("{}/v2/models/api/infer", stack.http);
        let served = wait_for_async(|| async {
            let r = client
                .post(&infer)
                .body(body(FEATURES, 1))
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            (v["model_version"] == expect).then_some(())
        })
        .await;
        assert!(served, "version {version} serves after promotion");
    }
    let r = client
        .post(format!(
            "{admin}/admin/v1/models/api/aliases/production/rollback"
        ))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rb: serde_json::Value = r.json().await.unwrap();
    assert_eq!((rb["from"].as_u64(), rb["to"].as_u64()), (Some(2), Some(1)));

    let r = client
        .put(format!("{admin}/admin/v1/models/api/policy"))
        .header("authorization", &auth)
        .json(&serde_json::json!({ "canary": { "version": 2, "percent": 250 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("canary.percent"));
    let r = client
        .put(format!("{admin}/admin/v1/models/api/policy"))
        .header("authorization", &auth)
        .json(&serde_json::json!({ "canary": { "version": 9, "percent": 5 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = client
        .post(format!("{admin}/admin/v1/models/api/rollouts"))
        .header("authorization", &auth)
        .json(&serde_json::json!({ "version": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "version 1 is already production");

    let r = client
        .get(format!("{admin}/admin/v1/events?model=api&kind=promoted"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let events: serde_json::Value = r.json().await.unwrap();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[0]["details"]["actor"], "ci-bot",
        "the first push's promotion"
    );
    assert_eq!(events[1]["details"]["actor"], "admin-api");

    // Decisions reach the metrics, whoever made them.
    let metrics_url = format!("{}/metrics", stack.http);
    let counted = wait_for_async(|| async {
        let text = client
            .get(&metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|l| l.starts_with("ballast_registry_events_total{kind=\"rolled_back\"} 1"))
            .then_some(())
    })
    .await;
    assert!(counted, "ballast_registry_events_total counts the rollback");

    let r = client
        .post(format!("{admin}/admin/v1/apply?dry_run=true"))
        .header("authorization", &auth)
        .body("models:\n  - name: api\n    aliases: {staging: 2}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let plan: serde_json::Value = r.json().await.unwrap();
    assert_eq!(plan["changes"].as_array().map(Vec::len), Some(1), "{plan}");
    assert!(
        stack
            .registry
            .store
            .get_alias("api", "staging")
            .await
            .unwrap()
            .is_none()
    );

    let r = client
        .get(format!("{admin}/admin/v1/openapi.yaml"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), OPENAPI);
}

async fn wait_for_async<F, Fut>(mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    for _ in 0..300 {
        if probe().await.is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Every route in `admin.rs` appears in the OpenAPI document with its methods.
#[test]
fn openapi_documents_every_admin_route() {
    let doc: serde_norway::Value = serde_norway::from_str(OPENAPI).unwrap();
    let paths = doc["paths"].as_mapping().unwrap();
    let source = include_str!("../src/admin.rs");
    let mut routes = 0;
    let start = source.find("Router::new()").unwrap();
    let end = source[start..].find(".layer(").unwrap() + start;
    for line in source[start..end].split(".route(").skip(1) {
        let path = line.split('"').nth(1).unwrap();
        let documented = paths
            .get(serde_norway::Value::String(path.to_string()))
            .unwrap_or_else(|| panic!("{path} is not in docs/admin-openapi.yaml"));
        for (method, name) in [
            ("get(", "get"),
            ("post(", "post"),
            ("put(", "put"),
            ("delete(", "delete"),
        ] {
            if line.contains(method) {
                assert!(
                    documented.get(name).is_some(),
                    "{name} {path} is not documented"
                );
            }
        }
        routes += 1;
    }
    assert!(routes >= 14, "found {routes} routes");
}
