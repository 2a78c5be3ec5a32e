//! One served model version: the signature and config it was loaded with, its scheduler, and
//! the request path from admission to the selected outputs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ballast_core::validate::{RequestLimits, validate_inputs};
use ballast_core::{Error, ErrorCode, ModelConfig, ModelSignature, Tensor, TensorData};
use ballast_engine::Backend;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::context::{Priority, Protocol};
use crate::metrics::{ModelMetrics, Rejection};
use crate::request::{InferRequest, InferResponse};
use crate::scheduler::batcher::Entry;
use crate::scheduler::{Scheduler, Slot};

pub struct ModelVersion {
    pub name: Arc<str>,
    pub version: u64,
    pub version_label: Arc<str>,
    pub signature: ModelSignature,
    pub config: ModelConfig,
    pub engine: &'static str,
    /// The engine takes NaN inputs as "missing" (trees, graphs that impute).
    pub nan_is_missing: bool,
    /// Output names the configuration gave in place of the engine's (Triton's `output__0`),
    /// by output index; `None` when nothing is renamed.
    output_names: Option<Vec<Option<String>>>,
    scheduler: Scheduler,
    /// Shared with the repository: set when the server drains.
    draining: Arc<AtomicBool>,
    metrics: ModelMetrics,
    /// What observers want of this version's requests (set once, when it starts).
    pub(crate) observed: crate::observe::Observed,
    /// How its predictions are logged (set once, when it starts); `None`: not logged.
    pub(crate) logged: Option<Arc<crate::capture::VersionLog>>,
}

/// A request admitted by the model's scheduler; it holds its slot (and its reserved rows in
/// the queue estimate) until dropped.
pub struct Admission {
    slot: Slot,
    started: Instant,
    protocol: Protocol,
}

/// The signature a model is served with: the engine's, corrected by the config's `[[input]]`
/// and `[[output]]` tables; with it, the configured name of each renamed output (by index).
/// `ballast batch` maps columns onto the same signature.
pub fn served_signature(
    backend: &dyn Backend,
    config: &ModelConfig,
) -> Result<(ModelSignature, Vec<Option<String>>), Error> {
    let mut signature = backend.signature().clone();
    ModelConfig::apply_overrides(&config.inputs, &mut signature.inputs, "input")?;
    let renamed = ModelConfig::apply_overrides(&config.outputs, &mut signature.outputs, "output")?;
    Ok((signature, renamed))
}

impl ModelVersion {
    pub(crate) fn start(
        name: &str,
        version: u64,
        backend: Arc<dyn Backend>,
        config: ModelConfig,
        draining: Arc<AtomicBool>,
        life: &crate::lifecycle::Lifecycle,
    ) -> Result<Self, Error> {
        let (signature, renamed) = served_signature(backend.as_ref(), &config)?;
        let output_names = renamed.iter().any(Option::is_some).then_some(renamed);
        let mut config = config;
        if config.max_batch_size > 0 && !signature.supports_batching() {
            tracing::info!(
                model = name,
                version,
                "not every input and output has a variable first dimension; batching disabled"
            );
            config.max_batch_size = 0;
        }
        let name: Arc<str> = Arc::from(name);
        let version_label: Arc<str> = Arc::from(version.to_string());
        let metrics = ModelMetrics::new(&name, &version_label, backend.engine());
        let scheduler = Scheduler::start(
            name.clone(),
            backend.clone(),
            &config,
            metrics.clone(),
            life,
        )?;
        Ok(Self {
            name,
            version,
            version_label,
            signature,
            config,
            engine: backend.engine(),
            nan_is_missing: backend.nan_is_missing(),
            output_names,
            scheduler,
            draining,
            metrics,
            observed: crate::observe::Observed::default(),
            logged: None,
        })
    }

    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready_metric(&self, ready: bool) {
        self.metrics.ready.set(if ready { 1.0 } else { 0.0 });
    }

    pub fn in_flight(&self) -> usize {
        self.scheduler.in_flight()
    }

    pub fn concurrency_limit(&self) -> usize {
        self.scheduler.concurrency_limit()
    }

    pub fn queue_depth(&self) -> usize {
        self.scheduler.queue_depth()
    }

    /// Seconds a request arriving now is predicted to wait in this version's queue.
    pub fn predicted_wait(&self) -> f64 {
        self.scheduler.gate().predicted_wait()
    }

    /// Admission before any work: cheap, never waits. `rows` when known (gRPC and in-process
    /// callers), `left` the time to the request's deadline. Refusals are counted here.
    pub fn admit(
        &self,
        protocol: Protocol,
        priority: Priority,
        rows: Option<usize>,
        left: Option<std::time::Duration>,
    ) -> Result<Admission, Error> {
        if self.draining.load(Ordering::Acquire) {
            self.metrics.rejected(Rejection::Draining);
            self.metrics.outcome(protocol, Some(ErrorCode::Unavailable));
            return Err(Error::unavailable(format!(
                "model '{}' is not accepting requests: the server is draining",
                self.name
            )));
        }
        let left = left.or(self.config.default_timeout);
        match self.scheduler.admit(&self.name, priority, rows, left) {
            Ok(slot) => Ok(Admission {
                slot,
                started: Instant::now(),
                protocol,
            }),
            Err(e) => {
                crate::metrics::admission_refused(priority);
                self.metrics.outcome(protocol, Some(e.code));
                Err(e)
            }
        }
    }

    /// Counts a request refused because the prediction log could not take its record.
    pub(crate) fn refused_for_log(&self, protocol: Protocol) {
        self.metrics.rejected(Rejection::PredictionLogFull);
        self.metrics.outcome(protocol, Some(ErrorCode::Unavailable));
    }

    /// Whether this version's predictions are logged.
    pub fn is_logged(&self) -> bool {
        self.logged.is_some()
    }

    /// Records the outcome of an admitted request that failed before reaching [`Self::infer`]
    /// (for example a body that did not decode) and passes the error through.
    pub fn reject_admitted(&self, admission: Admission, err: Error) -> Error {
        let protocol = admission.protocol;
        drop(admission);
        self.metrics.outcome(protocol, Some(err.code));
        err
    }

    /// Validates, queues and awaits one request. Dropping the future cancels it: a request
    /// whose caller has gone is never computed.
    pub async fn infer(
        &self,
        admission: Admission,
        request: InferRequest,
    ) -> Result<InferResponse, Error> {
        let mut admission = admission;
        let started = admission.started;
        let protocol = admission.protocol;
        let rows = if self.config.max_batch_size > 0 {
            request.inputs.first().map_or(1, Tensor::rows)
        } else {
            1
        };
        let result = self.infer_inner(&mut admission.slot, request).await;
        drop(admission);
        let total = started.elapsed();
        if self.metrics.is_live() {
            self.metrics.request_duration.record(total.as_secs_f64());
        }
        self.metrics.stats.request(
            result.is_ok(),
            total,
            result
                .as_ref()
                .ok()
                .map(|r| (r.timing.queue, r.timing.compute, rows)),
        );
        self.metrics
            .outcome(protocol, result.as_ref().err().map(|e| e.code));
        result
    }

    async fn infer_inner(
        &self,
        slot: &mut Slot,
        request: InferRequest,
    ) -> Result<InferResponse, Error> {
        let selected = self.select_outputs(&request.outputs)?;
        let inputs = validate_inputs(&self.name, &self.signature, request.inputs, self.limits())?;
        let now = Instant::now();
        let deadline = match (request.deadline, self.config.default_timeout) {
            (Some(d), _) => Some(d),
            (None, Some(t)) => Some(now + t),
            (None, None) => None,
        };
        if deadline.is_some_and(|d| d <= now) {
            self.metrics.rejected(Rejection::DeadlineExpired);
            return Err(Error::new(
                ErrorCode::DeadlineExceeded,
                "the request's deadline had passed on arrival; no inference was run",
            ));
        }
        let rows = if self.config.max_batch_size > 0 {
            inputs.first().map_or(1, Tensor::rows)
        } else {
            1
        };
        let (tx, rx) = oneshot::channel();
        let submitted = self.scheduler.submit(
            &self.name,
            slot,
            request.priority,
            Entry {
                inputs,
                rows,
                enqueued: now,
                deadline,
                reply: tx,
                span: tracing::Span::current(),
            },
        );
        if let Err(e) = submitted {
            if e.code == ErrorCode::ResourceExhausted {
                crate::metrics::admission_refused(request.priority);
            }
            return Err(e);
        }
        let reply = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Error::new(
                        ErrorCode::DeadlineExceeded,
                        format!(
                            "deadline exceeded after {:.1} ms waiting for model '{}'",
                            now.elapsed().as_secs_f64() * 1000.0,
                            self.name
                        ),
                    ));
                }
            },
            None => rx.await,
        };
        let (mut outputs, timing) =
            reply.map_err(|_| Error::internal("the engine thread dropped the request"))??;
        if let Some(names) = &self.output_names {
            for (t, name) in outputs.iter_mut().zip(names) {
                if let Some(name) = name {
                    t.name.clone_from(name);
                }
            }
        }
        let outputs = match selected {
            None => outputs,
            Some(indices) => {
                let mut slots: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
                indices
                    .into_iter()
                    .filter_map(|i| slots.get_mut(i).and_then(Option::take))
                    .collect()
            }
        };
        Ok(InferResponse {
            model: self.name.clone(),
            version: self.version_label.clone(),
            id: request.id,
            outputs,
            timing,
        })
    }

    /// What a request may carry: rows, NaN (where the engine takes it as missing, unless the
    /// config says), ±Inf (only when the config allows non-finite values).
    pub fn limits(&self) -> RequestLimits {
        RequestLimits::for_model(&self.config, self.nan_is_missing)
    }

    /// Ends warm-up: requests from now on count in metrics and statistics.
    pub fn go_live(&self) {
        self.metrics.stats.clear();
        self.metrics.go_live();
    }

    /// Cumulative request and batch statistics (Triton's statistics extension).
    pub fn stats(&self) -> &crate::metrics::ModelStats {
        &self.metrics.stats
    }

    /// Maps requested output names to signature indices; `None` means all outputs.
    fn select_outputs(&self, names: &[String]) -> Result<Option<Vec<usize>>, Error> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut indices = Vec::with_capacity(names.len());
        for name in names {
            let Some((i, _)) = self.signature.output(name) else {
                return Err(Error::invalid(format!(
                    "unknown output '{name}' requested from model '{}'; expected one of: {}",
                    self.name,
                    self.signature.output_names()
                )));
            };
            if indices.contains(&i) {
                return Err(Error::invalid(format!(
                    "output '{name}' is requested more than once"
                )));
            }
            indices.push(i);
        }
        Ok(Some(indices))
    }

    /// A request of `rows` rows of zeros (empty strings for BYTES) for warm-up.
    pub fn warmup_request(&self, rows: usize) -> InferRequest {
        let inputs = self
            .signature
            .inputs
            .iter()
            .map(|spec| {
                let shape: Vec<usize> = spec
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| match (i, d < 0) {
                        (0, true) if self.config.max_batch_size > 0 => rows.max(1),
                        (_, true) => 1,
                        _ => d as usize,
                    })
                    .collect();
                let n: usize = shape.iter().product();
                let data = TensorData::zeros(spec.dtype, n);
                Tensor {
                    name: spec.name.clone(),
                    shape,
                    data,
                }
            })
            .collect();
        InferRequest {
            inputs,
            ..InferRequest::default()
        }
    }
}
