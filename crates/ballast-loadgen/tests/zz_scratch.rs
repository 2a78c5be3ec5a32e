#![allow(clippy::unwrap_used)]
use ballast_loadgen::*;
use std::time::Duration;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/v2/models/{m}/infer",
        axum::routing::post(|| async { "{}" }),
    );
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    let t = Target {
        http_url: format!("http://{a}"),
        grpc_url: format!("http://{a}"),
        model: "m".into(),
        version: None,
    };
    let meta = ModelMeta {
        name: "m".into(),
        inputs: vec![TensorMeta {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 4],
        }],
        outputs: vec![],
    };
    let p = random_payloads(&meta, 1, 2, true, 0).unwrap();
    for mode in [
        Mode::Closed { concurrency: 32 },
        Mode::Open { rate: 5000.0 },
    ] {
        let c = RunConfig {
            protocol: Protocol::Http,
            mode,
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            connections: 64,
        };
        let r = run(&t, &c, &p, |s: &LiveStats| println!("{s:?}"))
            .await
            .unwrap();
        r.print_table();
    }
}
