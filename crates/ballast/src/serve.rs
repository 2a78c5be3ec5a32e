//! `ballast serve`: bind both listeners, load and warm every model (from a read-only
//! repository, or from the registry with the deployer and the admin API), serve, drain on
//! SIGTERM and stop everything in order (`shutdown.rs`).
//!
//! One [`Lifecycle`] is made here and passed down: every task and thread the server starts
//! is owned by one of its stages.

use std::sync::Arc;

use anyhow::Context;
use ballast_api::{ApiConfig, Server};
use ballast_deploy::{DeployOptions, Deployer, EngineLoader};
use ballast_registry::signing::{self, SignaturePolicy};
use ballast_registry::{Registry, RegistryOptions};
use ballast_serve::{Lifecycle, ModelRepository, RepositoryOptions, Stage};
use tokio_util::sync::CancellationToken;

use crate::config::ServeSettings;

pub async fn run(settings: ServeSettings) -> anyhow::Result<()> {
    let life = Lifecycle::new();
    let server = Server::bind(
        ApiConfig {
            http_addr: settings.http_addr,
            grpc_addr: settings.grpc_addr,
            max_request_bytes: settings.max_request_bytes,
            drain_grace: settings.drain_grace,
            max_connections: settings.max_connections,
            front_door_target: settings.front_door_target,
        },
        life.clone(),
    )
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
    // The listeners and the drain: joined below, before the stages stop.
    let serving = life.spawn(Stage::Front, server.run(shutdown.clone()));
    {
        let (signal, control) = (shutdown.clone(), life.token(Stage::Control));
        life.spawn(Stage::Control, async move {
            tokio::select! {
                () = shutdown_on_signal(signal) => {}
                () = control.cancelled() => {}
            }
        });
    }
    // The control plane (deployer, admin API, watcher, alert evaluation) stops as soon as
    // shutdown begins, alongside the drain.
    let control = life.token(Stage::Control);
    // Observers attach before any model loads: each version asks them what it should hand over.
    let tap = ballast_serve::observe::Tap::new();
    if let Some(options) = settings.monitor.clone() {
        let monitor = Arc::new(ballast_monitor::Monitor::new(options));
        tap.attach(
            monitor.clone(),
            ballast_serve::observe::DEFAULT_CAPACITY,
            &life,
        )
        .context("cannot start the monitor's thread")?;
        if !settings.alert_rules.is_empty() {
            let alerts = Arc::new(
                ballast_monitor::alerts::Alerts::new(
                    settings.alert_rules.clone(),
                    &settings.alerting,
                )
                .start_delivery(&life),
            );
            handle.set_alerts(alerts.clone());
            let stop = control.clone();
            life.spawn(
                Stage::Control,
                alerts.run(monitor.clone(), async move { stop.cancelled().await }),
            );
            tracing::info!(
                rules = settings.alert_rules.len(),
                webhooks = settings.alerting.webhook.len(),
                alertmanagers = settings.alerting.alertmanager.len(),
                "alert rules active"
            );
        }
        handle.set_monitor(monitor);
    }

    // The prediction log opens (and recovers what an earlier process left) before any model
    // loads: every version started from here on logs per its `[log]` config.
    let logs = match open_prediction_log(&settings) {
        Ok(l) => l,
        Err(e) => {
            shutdown.cancel();
            let _ = serving.await;
            return Err(e);
        }
    };
    let repo = match &settings.model_repository {
        Some(dir) => {
            let options = RepositoryOptions {
                onnxruntime_library: settings.onnxruntime_library.clone(),
                strict: settings.strict,
                tap: tap.clone(),
                logs: logs.clone(),
                lifecycle: life.clone(),
                ..RepositoryOptions::default()
            };
            let loading = ModelRepository::load(dir, &options);
            let repo = tokio::select! {
                repo = loading => repo,
                () = shutdown.cancelled() => {
                    tracing::info!("shutdown requested while loading models");
                    let _ = serving.await;
                    let parts = crate::shutdown::Parts { life, repo: None, tap, logs };
                    crate::shutdown::finish(parts, settings.drain_grace).await;
                    return Ok(());
                }
            };
            match repo {
                Ok(r) => {
                    let repo = Arc::new(r);
                    let source = Arc::new(ballast_serve::watch::Source::new(
                        dir,
                        settings.model_control_mode,
                        options,
                    ));
                    repo.attach_source(source.clone());
                    watch_repository(&life, repo.clone(), source, settings.repository_poll);
                    repo
                }
                Err(e) => {
                    shutdown.cancel();
                    let _ = serving.await;
                    anyhow::bail!("cannot load models from {}: {}", dir.display(), e.message);
                }
            }
        }
        None => match start_registry(&settings, tap.clone(), logs.clone(), &life).await {
            Ok(repo) => repo,
            Err(e) => {
                shutdown.cancel();
                let _ = serving.await;
                return Err(e);
            }
        },
    };
    handle.set_repository(repo.clone());
    tracing::info!(http = %handle.http_addr, grpc = %handle.grpc_addr, "ready");
    // Shutdown: the control plane stops while the server drains; then the rest, in order.
    let (served, _) = tokio::join!(serving, async {
        shutdown.cancelled().await;
        life.stop(
            Stage::Control,
            tokio::time::Instant::now() + settings.drain_grace,
        )
        .await
    });
    let left = served.context("server task failed")??;
    if left > 0 {
        tracing::warn!(
            requests = left,
            "grace period ended with requests still in flight"
        );
    }
    let parts = crate::shutdown::Parts {
        life,
        repo: Some(repo),
        tap,
        logs,
    };
    crate::shutdown::finish(parts, settings.drain_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the prediction log when it is on: WAL under `<data-dir>/logs/wal`, segments in the
/// configured location, the `hash` key read or made once.
fn open_prediction_log(
    settings: &ServeSettings,
) -> anyhow::Result<Option<ballast_serve::capture::PredictionLogs>> {
    let Some(p) = &settings.prediction_log else {
        return Ok(None);
    };
    let sink = ballast_capture::sink::open(&p.location)
        .with_context(|| format!("cannot open the prediction log's location {}", p.location))?;
    let key_path = p
        .hash_key_file
        .clone()
        .unwrap_or_else(|| p.options.dir.join("hash.key"));
    let key = ballast_capture::policy::load_or_create_key(&key_path)
        .context("cannot read or make the prediction log's hash key")?;
    let log = ballast_capture::PredictionLog::open(p.options.clone(), sink).with_context(|| {
        format!(
            "cannot open the prediction log in {}",
            p.options.dir.display()
        )
    })?;
    tracing::info!(wal = %p.options.dir.join("wal").display(), segments = %p.location, "prediction log open");
    Ok(Some(ballast_serve::capture::PredictionLogs {
        log: Arc::new(log),
        hash_key: Arc::from(key),
    }))
}

/// SIGHUP rescans the repository in every mode (the process keeps running); poll mode also
/// rescans every `every`. Both stop at shutdown.
fn watch_repository(
    life: &Lifecycle,
    repo: Arc<ModelRepository>,
    source: Arc<ballast_serve::watch::Source>,
    every: std::time::Duration,
) {
    let poll = source.mode == ballast_serve::watch::ControlMode::Poll;
    let shutdown = life.token(Stage::Control);
    life.spawn(Stage::Control, async move {
        #[cfg(unix)]
        let mut hangup =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; it will not reload models");
                    None
                }
            };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            #[cfg(unix)]
            let sighup = async {
                match hangup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<()>();
            let why = tokio::select! {
                () = shutdown.cancelled() => return,
                () = sighup => "SIGHUP",
                _ = tick.tick(), if poll => "poll",
            };
            let acted = source.rescan(&repo).await;
            if !acted.is_empty() || why == "SIGHUP" {
                tracing::info!(trigger = why, models = ?acted, "model repository rescanned");
            }
        }
    });
}

/// Registry mode: open the registry, load what its aliases and policies name (first
/// reconcile, before readiness), keep reconciling in the background, serve the admin API.
async fn start_registry(
    settings: &ServeSettings,
    tap: ballast_serve::observe::Tap,
    logs: Option<ballast_serve::capture::PredictionLogs>,
    life: &Lifecycle,
) -> anyhow::Result<Arc<ModelRepository>> {
    let trusted = settings
        .trusted_keys
        .iter()
        .map(|k| signing::read_verifying_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = RegistryOptions::new(&settings.data_dir);
    options.artifacts = settings.artifacts.clone();
    options.signatures = SignaturePolicy {
        require: settings.require_signature,
        trusted,
    };
    let registry = Registry::open(options).await.with_context(|| {
        format!(
            "cannot open the registry in {}",
            settings.data_dir.display()
        )
    })?;
    let repo = Arc::new(
        ModelRepository::observed(tap)
            .with_logs(logs)
            .with_lifecycle(life.clone()),
    );
    let deployer = Arc::new(Deployer::new(
        Arc::new(registry),
        repo.clone(),
        Arc::new(EngineLoader {
            onnxruntime_library: settings.onnxruntime_library.clone(),
        }),
        DeployOptions::default(),
    ));
    let admin = tokio::net::TcpListener::bind(settings.admin_addr)
        .await
        .with_context(|| format!("cannot bind the admin API on {}", settings.admin_addr))?;
    let admin_addr = admin.local_addr()?;
    let router = ballast_deploy::admin::router(ballast_deploy::admin::AdminState {
        deployer: deployer.clone(),
        token: settings.admin_token.as_deref().map(Arc::from),
    });
    let admin_stop = life.token(Stage::Control);
    life.spawn(Stage::Control, async move {
        let served = axum::serve(admin, router)
            .with_graceful_shutdown(async move { admin_stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        admin = %admin_addr,
        "serving from the registry"
    );
    deployer
        .reconcile()
        .await
        .context("cannot read the registry")?;
    life.spawn(Stage::Control, deployer.run(life.token(Stage::Control)));
    Ok(repo)
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
