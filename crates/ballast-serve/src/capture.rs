//! The serving side of prediction logs: which versions are logged and how (decided when a
//! version starts, from its `[log]` config), and the record of one request.
//!
//! Unlike the observation tap, this path is not lossy for durable models: a place in the
//! log's queue is reserved before admission (a full log refuses the request with 503 and
//! `Retry-After` before any work, counted as `prediction_log_full`), and the answer waits
//! for the fsync that covers its record. A request that fails after admission is logged
//! with its code; a refusal is logged without waiting, when the queue has room.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ballast_capture::policy::Policy;
use ballast_capture::record::{Record, Status, input_schema_hash};
use ballast_capture::{PredictionLog, Redactor, Refusal, Reservation};
use ballast_core::{Error, ErrorCode, LogConfig, LogDurability, ModelSignature, Tensor};

use crate::context::RequestContext;
use crate::request::Timing;

/// The server's prediction log and the key of its `hash` redactions.
#[derive(Clone)]
pub struct PredictionLogs {
    pub log: Arc<PredictionLog>,
    pub hash_key: Arc<[u8]>,
}

impl std::fmt::Debug for PredictionLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("PredictionLogs")
            .field("dir", &self.log.dir())
            .finish_non_exhaustive()
    }
}

impl PredictionLogs {
    /// How one version is logged, or `None` when its config turns logging off. A redaction
    /// policy that names fields the model does not have refuses the version's load.
    pub fn for_version(
        &self,
        model: &str,
        config: &LogConfig,
        signature: &ModelSignature,
    ) -> Result<Option<Arc<VersionLog>>, Error> {
        if !config.enabled || config.sample <= 0.0 {
            return Ok(None);
        }
        let policy = Policy::build(model, config, signature, &self.hash_key)
            .map_err(|e| Error::invalid(format!("model '{model}': {e}")))?;
        Ok(Some(Arc::new(VersionLog {
            log: self.log.clone(),
            sample: config.sample,
            durable: config.durability == LogDurability::Durable,
            redactor: Some(policy.into_redactor()),
        })))
    }
}

/// One version's logging, decided when it started.
pub struct VersionLog {
    log: Arc<PredictionLog>,
    sample: f64,
    durable: bool,
    redactor: Option<Arc<dyn Redactor>>,
}

/// A request that will be logged, with its reserved place when durable.
pub struct Logging {
    version: Arc<VersionLog>,
    reservation: Option<Reservation>,
}

impl VersionLog {
    /// Whether this request is logged (the sample), and for a durable version its place in
    /// the queue; an error refuses the request before any work.
    pub fn begin(self: &Arc<Self>, model: &str) -> Result<Option<Logging>, Error> {
        if self.sample < 1.0 && rand::random::<f64>() >= self.sample {
            return Ok(None);
        }
        let reservation = if self.durable {
            match self.log.reserve() {
                Ok(r) => Some(r),
                Err(Refusal::Full) => {
                    return Err(Error::unavailable(format!(
                        "model '{model}': the prediction log is behind (its queue is full); retry after the Retry-After delay"
                    )));
                }
                Err(Refusal::Stopped(why)) => {
                    return Err(Error::unavailable(format!(
                        "model '{model}': the prediction log cannot record predictions ({why}); requests are refused until it is restarted"
                    )));
                }
            }
        } else {
            None
        };
        Ok(Some(Logging {
            version: self.clone(),
            reservation,
        }))
    }

    /// Logs a shadow mirror's run on this (candidate) version: sampled, never waited for
    /// (nobody is answered from it), dropped and counted when the log is full.
    pub fn mirrored(&self, record: Record) {
        if self.sample < 1.0 && rand::random::<f64>() >= self.sample {
            return;
        }
        self.log.offer(record, self.redactor.clone());
    }
}

impl Logging {
    /// Writes the record; for a durable version, resolves once it is on disk. An error means
    /// the prediction must not be acknowledged.
    pub async fn finish(self, record: Record) -> Result<(), Error> {
        let v = self.version;
        match self.reservation {
            Some(r) => v
                .log
                .commit(r, record, v.redactor.clone())
                .await
                .map_err(|e| {
                    Error::unavailable(format!("the prediction was not acknowledged: {e}"))
                }),
            None => {
                v.log.offer(record, v.redactor.clone());
                Ok(())
            }
        }
    }

    /// Writes the record of a failed request without waiting for it.
    pub fn failed(self, record: Record) {
        let v = self.version;
        match self.reservation {
            Some(r) => drop(v.log.commit(r, record, v.redactor.clone())),
            None => {
                v.log.offer(record, v.redactor.clone());
            }
        }
    }
}

/// What a request's record is made of, beside its context.
pub struct Outcome<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub status: Status,
    pub code: Option<ErrorCode>,
    pub timing: Option<Timing>,
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    pub parameters: Option<String>,
}

/// The record of one request.
pub fn record(ctx: &RequestContext, o: Outcome<'_>) -> Record {
    let elapsed = ctx.arrival.elapsed();
    let arrived = SystemTime::now()
        .checked_sub(elapsed)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let time_us = arrived
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, micros);
    let route = ctx.route.as_ref();
    Record {
        id_generated: ctx.id.is_generated(),
        id: ctx.id.to_string(),
        trace_id: ctx.trace.map(|t| format!("{:032x}", t.trace_id)),
        time_us,
        tenant: String::new(),
        model: o.model.to_string(),
        version: o.version.to_string(),
        requested: route
            .and_then(|r| r.requested.as_deref())
            .map(str::to_string),
        arm: route.and_then(|r| r.arm).map(|a| match a {
            crate::traffic::Arm::Baseline => "baseline".to_string(),
            crate::traffic::Arm::Candidate => "candidate".to_string(),
        }),
        protocol: ctx.protocol.as_str().to_string(),
        priority: ctx.priority.as_str().to_string(),
        status: o.status,
        code: o.code.map(|c| c.as_str().to_string()),
        queue_us: o.timing.map(|t| micros(t.queue)),
        engine_us: o.timing.map(|t| micros(t.compute)),
        batch_rows: o.timing.map(|t| t.batch_rows as i64),
        total_us: micros(elapsed),
        input_schema: input_schema_hash(&o.inputs),
        parameters: o.parameters,
        inputs: o.inputs,
        outputs: o.outputs,
    }
}
