//! The artifact store on S3: moto's S3 server (PyPI `moto[server]`) on 127.0.0.1 stands in
//! for AWS. Pushes dedupe by content and loads verify every byte there too. Skips with a
//! message when moto is not installed, unless `BALLAST_REQUIRE_MOTO=1` (set by `.ci/run`).

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_registry::artifacts::ArtifactStore;
use ballast_registry::store::ModelCard;
use ballast_registry::store::sqlite::SqliteStore;
use ballast_registry::{PushRequest, Registry, RegistryError, RegistryOptions};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Option<(Moto, u16)> {
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
        .ok()?;
    let moto = Moto(child);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((moto, port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn moto_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_artifact_store_dedupes_and_verifies() {
    if !moto_installed() {
        assert!(
            std::env::var("BALLAST_REQUIRE_MOTO").is_err(),
            "BALLAST_REQUIRE_MOTO is set but `python3 -m moto.server` is not available"
        );
        eprintln!("skipped: pip install 'moto[server]' to test the S3 artifact store");
        return;
    }
    let (_moto, port) = start_moto().expect("moto server starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let r = client
        .put(format!("{endpoint}/models"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());

    let data = tempfile::tempdir().unwrap();
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
    let artifacts =
        ArtifactStore::open_with("s3://models/ballast", &data.path().join("cache"), &options)
            .unwrap();
    let registry = Registry {
        store: Arc::new(
            SqliteStore::open(&data.path().join("registry.db"))
                .await
                .unwrap(),
        ),
        artifacts: Arc::new(artifacts),
        options: RegistryOptions::new(data.path()),
    };
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("model.json"), "{\"trees\": 1}").unwrap();
    std::fs::write(src.path().join("extra.bin"), vec![7u8; 3 << 20]).unwrap();
    let card = ModelCard {
        owner: Some("o".into()),
        description: Some("d".into()),
        intended_use: Some("u".into()),
        trained_on: Some("t".into()),
        metrics: [("auc".to_string(), 0.5)].into(),
    };
    let push = || {
        registry.push(
            src.path(),
            PushRequest {
                name: "m".into(),
                card: card.clone(),
                actor: "t".into(),
                config_toml: None,
                no_promote: false,
            },
        )
    };
    let first = push().await.unwrap();
    assert_eq!(first.new_bytes, first.version.size);
    let second = push().await.unwrap();
    assert!(second.existed && second.new_bytes == 0);
    assert_eq!(registry.artifacts.blob_count().await.unwrap(), 2);

    let v = &first.version;
    let dir = registry
        .artifacts
        .materialize(&v.model, v.version, &v.digest, &v.files)
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.join("extra.bin")).unwrap().len(), 3 << 20);

    // Overwrite one blob in the bucket: the next load refuses it.
    let f = v.files.iter().find(|f| f.path == "model.json").unwrap();
    let hex = f.digest.trim_start_matches("sha256:");
    let (bucket, _) = object_store::parse_url_opts(
        &url::Url::parse("s3://models").unwrap(),
        options.iter().cloned(),
    )
    .unwrap();
    let blob = object_store::path::Path::from(format!("ballast/blobs/sha256/{}/{hex}", &hex[..2]));
    object_store::ObjectStoreExt::put(bucket.as_ref(), &blob, "{\"trees\": 2}".into())
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let err = registry
        .artifacts
        .materialize(&v.model, v.version, &v.digest, &v.files)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Integrity(ref m) if m.contains("tampered")),
        "{err:?}"
    );
}
