//! One conformance suite for every `PredictionSink`: the local directory, an object store in
//! memory, and S3 (moto's server, `pip install 'moto[server]'`; skipped with a message when
//! it is missing unless `BALLAST_REQUIRE_MOTO=1`, as `.ci/run` sets). One test per behaviour.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_capture::sink::{LocalSink, ObjectStoreSink, PredictionSink};
use bytes::Bytes;

/// A sink under test and whatever keeps it alive.
struct Subject {
    sink: Arc<dyn PredictionSink>,
    _keep: Box<dyn std::any::Any + Send>,
}

fn local() -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(LocalSink::new(dir.path().join("logs")).unwrap());
    Some(Subject {
        sink,
        _keep: Box::new(dir),
    })
}

fn memory() -> Option<Subject> {
    let store = Arc::new(object_store::memory::InMemory::new());
    Some(Subject {
        sink: Arc::new(ObjectStoreSink::new(store, "prefix/logs", "memory://")),
        _keep: Box::new(()),
    })
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn s3() -> Option<Subject> {
    let installed = Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var("BALLAST_REQUIRE_MOTO").is_err(),
            "BALLAST_REQUIRE_MOTO is set but `python3 -m moto.server` is not available"
        );
        eprintln!("skipped: pip install 'moto[server]' to test the S3 sink");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    // Create the bucket with a plain PUT (moto accepts unsigned requests).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "PUT /logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    let options: Vec<(String, String)> = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sink = ObjectStoreSink::open("s3://logs/ballast", &options).unwrap();
    Some(Subject {
        sink: Arc::new(sink),
        _keep: Box::new(moto),
    })
}

const KEY: &str = "fraud/2/2026-12-06/04/00000000000000000001.parquet";

async fn put_then_get_returns_the_bytes(s: &dyn PredictionSink) {
    s.put(KEY, Bytes::from_static(b"segment one"))
        .await
        .unwrap();
    assert_eq!(
        s.get(KEY).await.unwrap(),
        Bytes::from_static(b"segment one")
    );
}

async fn a_second_put_replaces_the_object_whole(s: &dyn PredictionSink) {
    s.put(KEY, Bytes::from(vec![1u8; 10_000])).await.unwrap();
    s.put(KEY, Bytes::from_static(b"short")).await.unwrap();
    assert_eq!(s.get(KEY).await.unwrap(), Bytes::from_static(b"short"));
    assert_eq!(s.list("").await.unwrap().len(), 1);
}

async fn list_returns_keys_under_a_prefix_in_order_with_sizes(s: &dyn PredictionSink) {
    let keys = [
        "b/1/2026-12-06/05/00000000000000000003.parquet",
        "a/1/2026-12-06/04/00000000000000000002.parquet",
        "a/1/2026-12-06/04/00000000000000000001.parquet",
        "a/2/2026-12-06/04/00000000000000000001.parquet",
    ];
    for (i, k) in keys.iter().enumerate() {
        s.put(k, Bytes::from(vec![0u8; i + 1])).await.unwrap();
    }
    let listed = s.list("a/1").await.unwrap();
    let got: Vec<(&str, u64)> = listed.iter().map(|l| (l.key.as_str(), l.size)).collect();
    assert_eq!(got, vec![(keys[2], 3), (keys[1], 2)]);
    assert_eq!(s.list("").await.unwrap().len(), 4);
    // A prefix is whole path components: `a` is not `ab`.
    s.put(
        "ab/1/2026-12-06/04/00000000000000000009.parquet",
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(s.list("a").await.unwrap().len(), 3);
}

async fn listing_a_missing_prefix_is_empty(s: &dyn PredictionSink) {
    assert!(s.list("nobody").await.unwrap().is_empty());
}

async fn delete_removes_and_deleting_again_is_fine(s: &dyn PredictionSink) {
    s.put(KEY, Bytes::from_static(b"x")).await.unwrap();
    s.delete(KEY).await.unwrap();
    assert!(s.list("").await.unwrap().is_empty());
    s.delete(KEY).await.unwrap();
    assert!(s.get(KEY).await.is_err());
}

async fn keys_that_leave_the_root_are_refused(s: &dyn PredictionSink) {
    for bad in [
        "../escape.parquet",
        "/abs.parquet",
        "a//b.parquet",
        "a/./b.parquet",
        "",
    ] {
        let e = s.put(bad, Bytes::from_static(b"x")).await.unwrap_err();
        assert!(e.to_string().contains("segment key"), "{bad}: {e}");
    }
}

macro_rules! conformance {
    ($($subject:ident),*) => {
        $(
            mod $subject {
                conformance!(@tests $subject,
                    put_then_get_returns_the_bytes,
                    a_second_put_replaces_the_object_whole,
                    list_returns_keys_under_a_prefix_in_order_with_sizes,
                    listing_a_missing_prefix_is_empty,
                    delete_removes_and_deleting_again_is_fine,
                    keys_that_leave_the_root_are_refused);
            }
        )*
    };
    (@tests $subject:ident, $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some(s) = super::$subject() else { return };
                super::$test(s.sink.as_ref()).await;
            }
        )*
    };
}

conformance!(local, memory, s3);
