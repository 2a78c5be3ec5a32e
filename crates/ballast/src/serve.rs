//! `ballast serve`: bind both listeners, load and warm every model, serve, drain on SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use ballast_api::{ApiConfig, Server};
use ballast_serve::{ModelRepository, RepositoryOptions};
use tokio_util::sync::CancellationToken;

use crate::config::ServeSettings;

pub async fn run(settings: ServeSettings) -> anyhow::Result<()> {
    let server = Server::bind(ApiConfig {
        http_addr: settings.http_addr,
        grpc_addr: settings.grpc_addr,
        max_request_bytes: settings.max_request_bytes,
        drain_grace: settings.drain_grace,
    })
    .await
    .with_context(|| {
        format!(
            "cannot bind {} / {}",
            settings.http_addr, settings.grpc_addr
        )
    })?;
    let shutdown = CancellationToken::new();
    let handle = server.handle(shutdown.clone())?;
    tracing::info!(http = %handle.http_addr, grpc = %handle.grpc_addr, "listening; loading models");
    let serving = tokio::spawn(server.run(shutdown.clone()));
    tokio::spawn(shutdown_on_signal(shutdown.clone()));

    let options = RepositoryOptions {
        onnxruntime_library: settings.onnxruntime_library.clone(),
        ..RepositoryOptions::default()
    };
    let loading = ModelRepository::load(&settings.model_repository, &options);
    let repo = tokio::select! {
        repo = loading => repo,
        () = shutdown.cancelled() => {
            tracing::info!("shutdown requested while loading models");
            return Ok(());
        }
    };
    let repo = match repo {
        Ok(r) => r,
        Err(e) => {
            shutdown.cancel();
            let _ = serving.await;
            anyhow::bail!(
                "cannot load models from {}: {}",
                settings.model_repository.display(),
                e.message
            );
        }
    };
    handle.set_repository(Arc::new(repo));
    tracing::info!(http = %handle.http_addr, grpc = %handle.grpc_addr, "ready");
    let left = serving.await.context("server task failed")??;
    if left > 0 {
        tracing::warn!(
            requests = left,
            "grace period ended with requests still in flight"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub async fn shutdown_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    token.cancel();
}
