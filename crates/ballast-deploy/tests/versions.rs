//! Which stored versions a registry-backed server serves, and what a request for one it does
//! not serve is told.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use ballast_registry::PRODUCTION;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_version_that_is_not_served_says_how_to_serve_it() {
    let dir = tempfile::tempdir().unwrap();
    let cli = registry_at(dir.path()).await;
    let src = tempfile::tempdir().unwrap();
    let mut versions = Vec::new();
    for (i, seed) in [1u32, 2, 3].into_iter().enumerate() {
        let d = version_dir(
            src.path(),
            &format!("v{i}"),
            &xgb_model(FEATURES, 5, seed, 0),
            &[],
        );
        versions.push(push(&cli, &d, "pinned").await);
    }
    let (v1, v3) = (versions[0], versions[2]);
    cli.promote("pinned", v3, PRODUCTION, "test", "initial")
        .await
        .unwrap();
    let stack = start(dir).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v2/models/pinned/versions/{v1}/infer", stack.http);
    let r = client
        .post(&url)
        .body(body(FEATURES, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(
        text.contains(&format!("version {v1} is in the registry but not loaded"))
            && text.contains(&format!("ballast model promote pinned@{v1} --alias v{v1}")),
        "{text}"
    );
    // A version that does not exist at all gets the plain answer.
    let r = client
        .post(format!("{}/v2/models/pinned/versions/99/infer", stack.http))
        .body(body(FEATURES, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(!text.contains("in the registry"), "{text}");

    // Following the advice makes it servable, by number and by alias.
    cli.promote("pinned", v1, &format!("v{v1}"), "test", "pin")
        .await
        .unwrap();
    let mut served = false;
    for _ in 0..500 {
        let r = client
            .post(&url)
            .body(body(FEATURES, 1))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "version {v1} is served once an alias points at it");
    let r = client
        .post(format!(
            "{}/v2/models/pinned/versions/v{v1}/infer",
            stack.http
        ))
        .body(body(FEATURES, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
