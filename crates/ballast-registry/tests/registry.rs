//! The registry's operations on a real data directory: content-addressed pushes, model-card
//! policy, integrity checks on load, signatures, import of a Triton-style repository, and
//! declarative apply.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ballast_registry::apply::{self, Desired};
use ballast_registry::signing::{self, SignaturePolicy};
use ballast_registry::store::ModelCard;
use ballast_registry::{PRODUCTION, PushRequest, Registry, RegistryError, RegistryOptions};

fn card() -> ModelCard {
    ModelCard {
        owner: Some("risk".into()),
        description: Some("d".into()),
        intended_use: Some("u".into()),
        trained_on: Some("s3://x".into()),
        metrics: [("auc".to_string(), 0.9)].into(),
    }
}

fn request(name: &str) -> PushRequest {
    PushRequest {
        name: name.into(),
        card: card(),
        actor: "t".into(),
        config_toml: None,
        no_promote: false,
    }
}

fn model_dir(root: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("model.json"), content).unwrap();
    std::fs::write(d.join("sub/weights.bin"), format!("w-{content}")).unwrap();
    d
}

async fn registry(dir: &Path) -> Registry {
    Registry::open(RegistryOptions::new(dir)).await.unwrap()
}

#[tokio::test]
async fn identical_artifacts_are_stored_once() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let r = registry(data.path()).await;
    let a = model_dir(src.path(), "a", "one");
    let first = r.push(&a, request("m")).await.unwrap();
    assert!(!first.existed);
    assert_eq!(first.version.version, 1);
    assert_eq!(first.version.files.len(), 2);
    assert_eq!(first.new_bytes, first.version.size);
    assert_eq!(r.artifacts.blob_count().await.unwrap(), 2);

    // The same directory again, and a byte-identical copy elsewhere: one version, no bytes.
    let again = r.push(&a, request("m")).await.unwrap();
    assert!(again.existed);
    assert_eq!(again.version.version, 1);
    let copy = model_dir(src.path(), "copy", "one");
    let copied = r.push(&copy, request("m")).await.unwrap();
    assert!(copied.existed && copied.new_bytes == 0);
    // Under another model name: a new version there, but still no new blob.
    let other = r.push(&a, request("other")).await.unwrap();
    assert_eq!((other.existed, other.new_bytes), (false, 0));
    assert_eq!(r.artifacts.blob_count().await.unwrap(), 2);
    // One changed file: one new blob, the unchanged one shared.
    std::fs::write(a.join("model.json"), "two").unwrap();
    let changed = r.push(&a, request("m")).await.unwrap();
    assert_eq!(changed.version.version, 2);
    assert_eq!(r.artifacts.blob_count().await.unwrap(), 3);
}

/// One rule for every way in: the first version of a model becomes production unless the
/// push says not to; later versions wait for a promote or a rollout.
#[tokio::test]
async fn the_first_version_of_a_model_becomes_production_unless_told_otherwise() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let r = registry(data.path()).await;
    let production = |model: &'static str| {
        let r = &r;
        async move {
            r.describe(model)
                .await
                .unwrap()
                .aliases
                .get(PRODUCTION)
                .copied()
        }
    };
    let first = r
        .push(&model_dir(src.path(), "a", "1"), request("m"))
        .await
        .unwrap();
    assert!(first.promoted);
    assert_eq!(production("m").await, Some(first.version.version));
    let second = r
        .push(&model_dir(src.path(), "b", "2"), request("m"))
        .await
        .unwrap();
    assert!(!second.promoted);
    assert_eq!(production("m").await, Some(first.version.version));
    let again = r
        .push(&model_dir(src.path(), "a", "1"), request("m"))
        .await
        .unwrap();
    assert!(again.existed && !again.promoted);
    // Told otherwise: nothing in production, and a later version does not take it either.
    let mut held = request("n");
    held.no_promote = true;
    let n1 = r
        .push(&model_dir(src.path(), "c", "3"), held)
        .await
        .unwrap();
    assert!(!n1.promoted);
    assert_eq!(production("n").await, None);
    let n2 = r
        .push(&model_dir(src.path(), "d", "4"), request("n"))
        .await
        .unwrap();
    assert!(!n2.promoted);
    assert_eq!(production("n").await, None);
    let promotions = r
        .events(&ballast_registry::store::EventFilter {
            model: Some("m".into()),
            kind: Some("promoted".into()),
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(promotions.len(), 1);
    assert!(
        promotions[0].message.contains("first version"),
        "{}",
        promotions[0].message
    );
}

#[tokio::test]
async fn a_push_needs_a_complete_model_card_and_names_what_is_missing() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let r = registry(data.path()).await;
    let mut req = request("m");
    req.card.owner = None;
    req.card.metrics.clear();
    let err = r
        .push(&model_dir(src.path(), "a", "x"), req)
        .await
        .unwrap_err();
    let RegistryError::Invalid(msg) = err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("owner") && msg.contains("metric") && !msg.contains("description"),
        "{msg}"
    );
    // The way out is named.
    assert!(msg.contains("--allow-missing-card"), "{msg}");
    let err = r
        .push(&src.path().join("missing"), request("m"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err:?}");
    let err = r
        .push(&model_dir(src.path(), "b", "x"), request("bad name!"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad name!"), "{err}");
}

#[tokio::test]
async fn loads_verify_every_byte_and_name_the_tampered_file() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let r = registry(data.path()).await;
    let v = r
        .push(&model_dir(src.path(), "a", "original"), request("m"))
        .await
        .unwrap()
        .version;
    let dir = r
        .artifacts
        .materialize(&v.model, v.version, &v.digest, &v.files)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("model.json")).unwrap(),
        "original"
    );

    // A cached copy changed on disk is fetched again from the store.
    std::fs::write(dir.join("model.json"), "tampered").unwrap();
    let dir = r
        .artifacts
        .materialize(&v.model, v.version, &v.digest, &v.files)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("model.json")).unwrap(),
        "original"
    );

    // The stored blob changed: refused, naming the file and both digests.
    let f = v.files.iter().find(|f| f.path == "model.json").unwrap();
    let hex = f.digest.trim_start_matches("sha256:");
    let blob = data
        .path()
        .join("artifacts/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    std::fs::write(&blob, "tampered").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let err = r
        .artifacts
        .materialize(&v.model, v.version, &v.digest, &v.files)
        .await
        .unwrap_err();
    let RegistryError::Integrity(msg) = err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("model.json") && msg.contains(&f.digest) && msg.contains("found sha256:"),
        "{msg}"
    );
    assert!(
        !dir.join("model.json").exists(),
        "a bad download is never left in place"
    );

    // A manifest that does not match the registered digest is refused before any fetch.
    let mut files = v.files.clone();
    files[0].size += 1;
    let err = r
        .artifacts
        .materialize(&v.model, v.version, &v.digest, &files)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Integrity(_)), "{err:?}");
}

#[tokio::test]
async fn signature_policy_refuses_unsigned_and_badly_signed_versions() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    signing::generate_key(&keys.path().join("a.pem"), &keys.path().join("a.pub")).unwrap();
    signing::generate_key(&keys.path().join("b.pem"), &keys.path().join("b.pub")).unwrap();
    let trusted = signing::read_verifying_key(&keys.path().join("a.pub")).unwrap();
    let mut options = RegistryOptions::new(data.path());
    options.signatures = SignaturePolicy {
        require: true,
        trusted: vec![trusted],
    };
    let r = Registry::open(options).await.unwrap();
    let v1 = r
        .push(&model_dir(src.path(), "a", "1"), request("m"))
        .await
        .unwrap()
        .version;
    let v2 = r
        .push(&model_dir(src.path(), "b", "2"), request("m"))
        .await
        .unwrap()
        .version;
    let err = r
        .promote("m", v1.version, PRODUCTION, "t", "r")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unsigned"), "{err}");
    let good = signing::read_signing_key(&keys.path().join("a.pem")).unwrap();
    let other = signing::read_signing_key(&keys.path().join("b.pem")).unwrap();
    r.sign("m@1", &good).await.unwrap();
    r.promote("m", v1.version, PRODUCTION, "t", "r")
        .await
        .unwrap();
    r.sign(&format!("m@{}", v2.version), &other).await.unwrap();
    let err = r
        .promote("m", v2.version, PRODUCTION, "t", "r")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // A signature copied from another version does not verify either.
    let signed = r.resolve("m@1").await.unwrap();
    r.store
        .set_signature(
            "m",
            v2.version,
            signed.signature.as_deref().unwrap(),
            "copied",
        )
        .await
        .unwrap();
    assert!(
        r.promote("m", v2.version, PRODUCTION, "t", "r")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn import_takes_a_triton_repository_and_reports_every_missing_card() {
    let data = tempfile::tempdir().unwrap();
    let r = registry(data.path()).await;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let err = r
        .import(&repo, &ModelCard::default(), "t", false)
        .await
        .unwrap_err();
    let msg = err.to_string();
    for model in ["fraud", "fraud_xgb", "dtypes", "seqmean"] {
        assert!(
            msg.contains(&format!("{model}: model card incomplete")),
            "{msg}"
        );
    }
    assert!(
        r.store.list_models().await.unwrap().is_empty(),
        "nothing imported"
    );
    let imported = r.import(&repo, &card(), "t", false).await.unwrap();
    assert!(imported.len() >= 5, "{}", imported.len());
    let fraud = r.describe("fraud").await.unwrap();
    assert_eq!(fraud.versions.len(), 2);
    // As for a push: the model's first version becomes production, the later one waits.
    assert_eq!(fraud.aliases.get(PRODUCTION), Some(&1));
    assert!(fraud.config_toml.is_some(), "config.toml comes along");
    // Importing again registers nothing new.
    let again = r.import(&repo, &card(), "t", false).await.unwrap();
    assert!(again.iter().all(|o| o.existed));
}

#[tokio::test]
async fn apply_is_idempotent_and_reports_every_problem_at_once() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    model_dir(root.path(), "v1", "one");
    model_dir(root.path(), "v2", "two");
    let file = root.path().join("ballast.yaml");
    std::fs::write(
        &file,
        r#"
models:
  - name: fraud
    card: {owner: risk, description: d, intended_use: u, trained_on: "s3://x", metrics: {auc: 0.9}}
    config: {max_batch_size: 32, max_queue_delay_ms: 1}
    versions:
      - path: v1
      - path: v2
    aliases:
      production: v1
      staging: v2
    traffic:
      canary: {version: v2, percent: 10, sticky_header: x-user}
"#,
    )
    .unwrap();
    let r = registry(data.path()).await;
    let desired = Desired::from_file(&file).unwrap();
    let plan = apply::plan(&r, &desired).await.unwrap();
    let kinds: Vec<String> = plan
        .iter()
        .map(|a| {
            serde_json::to_value(a).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "push",
            "push",
            "set_config",
            "set_alias",
            "set_alias",
            "set_policy"
        ],
        "{plan:?}"
    );
    apply::execute(&r, &desired, &plan, "t").await.unwrap();
    let d = r.describe("fraud").await.unwrap();
    assert_eq!(d.aliases.get(PRODUCTION), Some(&1));
    assert_eq!(d.aliases.get("staging"), Some(&2));
    let canary = d.policy.unwrap().canary.unwrap();
    assert_eq!((canary.version, canary.percent), (2, 10.0));
    assert!(
        apply::plan(&r, &desired).await.unwrap().is_empty(),
        "second apply changes nothing"
    );

    // Move production: exactly one change.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("production: v1", "production: 2");
    std::fs::write(&file, text).unwrap();
    let plan = apply::plan(&r, &Desired::from_file(&file).unwrap())
        .await
        .unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");

    std::fs::write(
        &file,
        r#"
models:
  - name: fraud
    config: {max_batch_size: -3}
    versions:
      - path: nowhere
    aliases:
      "7": v9
    traffic:
      canary: {version: v1, percent: 300}
  - name: fraud
    typo: 1
"#,
    )
    .unwrap();
    let err = Desired::from_file(&file).unwrap_err().to_string();
    for fragment in [
        "max_batch_size",
        "nowhere does not exist",
        "model card incomplete",
        "is a number",
        "v9 is not one of the model's declared versions",
        "percent must be between 0 and 100",
        "typo",
    ] {
        assert!(err.contains(fragment), "missing {fragment:?} in:\n{err}");
    }
    assert_eq!(
        r.describe("fraud").await.unwrap().versions.len(),
        2,
        "nothing applied"
    );
}
