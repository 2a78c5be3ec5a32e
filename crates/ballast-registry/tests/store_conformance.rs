//! The metadata store conformance suite on SQLite: a file database (as served) and an
//! in-memory one, plus reopening a file database (migrations are idempotent, data persists).

use std::sync::Arc;

use ballast_registry::store::sqlite::SqliteStore;
use ballast_registry::store::{MetadataStore, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("registry.db");
    let store = SqliteStore::open(&path).await.expect("open");
    conformance::run(Arc::new(store))
        .await
        .expect("conformance");

    // Reopen: migrations run again without harm and everything is still there.
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    let versions = reopened.list_versions("fraud").await.expect("versions");
    assert_eq!(versions.len(), 2);
    let alias = reopened
        .get_alias("fraud", "production")
        .await
        .expect("alias");
    assert_eq!(alias.map(|a| a.version), Some(2));
}

#[tokio::test]
async fn sqlite_memory_store_passes_the_conformance_suite() {
    let store = SqliteStore::in_memory().await.expect("open");
    conformance::run(Arc::new(store))
        .await
        .expect("conformance");
}
