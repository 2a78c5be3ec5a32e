//! Traffic policies in force: which version answers an unversioned request (baseline or
//! canary) and which requests are mirrored to a shadow. The per-arm figures a rollout is
//! judged on, and the comparison of shadow outputs, are in `traffic/stats.rs`.
//!
//! Routing is lock-free on the request path; the shadow runs on its own task after the client
//! has its answer.

use std::sync::Arc;
use std::time::Duration;

use ballast_core::traffic::TrafficPolicy;
use ballast_core::{Error, ErrorCode, Tensor};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::context::{Priority, Protocol, RequestContext, RouteTaken};
use crate::model::{Admission, ModelVersion};
use crate::request::{InferRequest, InferResponse, Timing};

mod stats;
pub use stats::*;

/// A policy bound to loaded versions.
pub struct ActiveTraffic {
    pub policy: TrafficPolicy,
    pub baseline: Arc<ModelVersion>,
    pub canary: Option<Arc<ModelVersion>>,
    pub shadow: Option<Arc<ModelVersion>>,
    pub stats: Arc<RolloutStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Baseline,
    Candidate,
}

/// Where one request goes.
pub struct Routed {
    pub version: Arc<ModelVersion>,
    arm: Option<(Arc<RolloutStats>, Arm)>,
    shadow: Option<(Arc<ModelVersion>, Arc<RolloutStats>)>,
}

/// FNV-1a: stable across processes and replicas, so a user stays on one arm everywhere.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// True for `percent` % of draws.
fn chosen(percent: f64, draw: u64) -> bool {
    // 0.01 % resolution.
    ((draw % 10_000) as f64) < percent * 100.0
}

impl ActiveTraffic {
    /// Picks the arm for one request; `header` looks up a request header by name.
    pub fn route<'h>(&self, header: impl Fn(&str) -> Option<&'h [u8]>) -> Routed {
        let mut version = self.baseline.clone();
        let mut arm = Arm::Baseline;
        if let (Some(c), Some(candidate)) = (&self.policy.canary, &self.canary) {
            let draw = c
                .sticky_header
                .as_deref()
                .and_then(&header)
                .map_or_else(rand::random::<u64>, stable_hash);
            if chosen(c.percent, draw) {
                version = candidate.clone();
                arm = Arm::Candidate;
            }
        }
        let shadow = match (&self.policy.shadow, &self.shadow) {
            (Some(s), Some(target))
                if arm == Arm::Baseline && chosen(s.percent, rand::random::<u64>()) =>
            {
                Some((target.clone(), self.stats.clone()))
            }
            _ => None,
        };
        Routed {
            version,
            arm: Some((self.stats.clone(), arm)),
            shadow,
        }
    }
}

impl Routed {
    pub fn direct(version: Arc<ModelVersion>) -> Self {
        Self {
            version,
            arm: None,
            shadow: None,
        }
    }

    fn record(&self, elapsed: Duration, error: Option<ErrorCode>, served: Option<&Timing>) {
        if let Some((stats, arm)) = &self.arm {
            match arm {
                Arm::Baseline => stats.baseline.record(elapsed, error, served),
                Arm::Candidate => stats.candidate.record(elapsed, error, served),
            }
        }
    }

    /// Admission on the chosen version; a refusal counts against its arm.
    pub fn admit(
        &self,
        protocol: Protocol,
        priority: Priority,
        rows: Option<usize>,
        left: Option<Duration>,
    ) -> Result<Admission, Error> {
        self.version
            .admit(protocol, priority, rows, left)
            .inspect_err(|e| {
                self.record(Duration::ZERO, Some(e.code), None);
            })
    }

    /// The arm this request was sent to, under a traffic policy.
    pub fn arm(&self) -> Option<Arm> {
        self.arm.as_ref().map(|(_, a)| *a)
    }

    /// True when the request will also be mirrored to a shadow candidate.
    pub fn shadowed(&self) -> bool {
        self.shadow.is_some()
    }

    /// Records a request that failed between admission and inference (a body that did not
    /// decode) and passes the error through.
    pub fn reject_admitted(&self, admission: Admission, err: Error) -> Error {
        self.version.reject_admitted(admission, err)
    }

    /// Runs the request on the chosen version; mirrors it to the shadow afterwards, off the
    /// response path, as a task on `tasks` (so shutdown can wait for it).
    pub async fn infer(
        self,
        admission: Admission,
        request: InferRequest,
        ctx: &RequestContext,
        tasks: &TaskTracker,
    ) -> Result<InferResponse, Error> {
        let mirror = self.shadow.as_ref().map(|_| InferRequest {
            id: None,
            inputs: request.inputs.clone(),
            outputs: request.outputs.clone(),
            deadline: request.deadline,
            // Mirrored work runs below everything a client sent.
            priority: Priority::Shadow,
        });
        let started = Instant::now();
        let result = self.version.infer(admission, request).await;
        let elapsed = started.elapsed();
        self.record(
            elapsed,
            result.as_ref().err().map(|e| e.code),
            result.as_ref().ok().map(|r| &r.timing),
        );
        if let (Some((target, stats)), Some(mirror), Ok(response)) =
            (self.shadow, mirror, result.as_ref())
        {
            let primary = response.outputs.clone();
            // The mirror is observed as the candidate's own request, under the client's id.
            let mut mirrored = ctx.clone();
            mirrored.protocol = Protocol::Internal;
            mirrored.priority = Priority::Shadow;
            mirrored.route = Some(RouteTaken {
                model: target.name.clone(),
                version: target.version_label.clone(),
                requested: None,
                arm: Some(Arm::Candidate),
                shadowed: false,
            });
            tasks.spawn(shadow(target, stats, mirror, primary, elapsed, mirrored));
        }
        result
    }
}

/// Runs the mirrored request on the candidate and compares. Never touches the client's
/// response; a candidate at its limit simply refuses (counted as a failure of the candidate).
async fn shadow(
    target: Arc<ModelVersion>,
    stats: Arc<RolloutStats>,
    request: InferRequest,
    primary: Vec<Tensor>,
    primary_elapsed: Duration,
    ctx: RequestContext,
) {
    let started = Instant::now();
    let rows = request.inputs.first().map(Tensor::rows);
    let inputs = if target.observed.wants_tensors() {
        request.inputs.clone()
    } else {
        Vec::new()
    };
    let logged_inputs = match &target.logged {
        Some(_) => request.inputs.clone(),
        None => Vec::new(),
    };
    let result = match target.admit(Protocol::Internal, Priority::Shadow, rows, None) {
        Ok(admission) => target.infer(admission, request).await,
        Err(e) => Err(e),
    };
    let elapsed = started.elapsed();
    if let (Some(log), Some(route)) = (&target.logged, &ctx.route) {
        // On record as the candidate's run of the client's request (same id, arm
        // `candidate`, priority `shadow`), whether it answered or not.
        log.mirrored(crate::capture::record(
            &ctx,
            crate::capture::Outcome {
                model: &route.model,
                version: &route.version,
                status: match &result {
                    Ok(_) => ballast_capture::record::Status::Ok,
                    Err(e) if is_capacity_failure(e.code) => {
                        ballast_capture::record::Status::Refused
                    }
                    Err(_) => ballast_capture::record::Status::Error,
                },
                code: result.as_ref().err().map(|e| e.code),
                timing: result.as_ref().ok().map(|r| r.timing),
                inputs: logged_inputs,
                outputs: result
                    .as_ref()
                    .map_or_else(|_| Vec::new(), |r| r.outputs.clone()),
                parameters: None,
            },
        ));
    }
    if let Some(route) = &ctx.route {
        target.observed.emit(crate::observe::Finished {
            ctx: &ctx,
            model: &route.model,
            version: &route.version,
            arm: route.arm,
            timing: result.as_ref().ok().map(|r| r.timing),
            error: result.as_ref().err().map(|e| e.code),
            inputs,
            outputs: result.as_ref().map_or(&[][..], |r| &r.outputs),
        });
    }
    // Refused for capacity or out of time: the server's doing, not the candidate's.
    let dropped = result
        .as_ref()
        .err()
        .is_some_and(|e| is_capacity_failure(e.code));
    if dropped {
        stats.shadow.lock().dropped += 1;
        crate::metrics::shadow_dropped(&target.name, &target.version_label);
        return;
    }
    // Only requests the baseline answered are mirrored, so every error here is one the
    // baseline did not make on the same input.
    stats.candidate.record(
        elapsed,
        result.as_ref().err().map(|e| e.code),
        result.as_ref().ok().map(|r| &r.timing),
    );
    let mut c = stats.shadow.lock();
    match result {
        Ok(response) => {
            let compared = compare(&primary, &response.outputs);
            c.add(
                &compared,
                elapsed.as_secs_f64() - primary_elapsed.as_secs_f64(),
            );
            crate::metrics::shadow_compared(
                &target.name,
                &target.version_label,
                compared.max_diff <= AGREEMENT_TOLERANCE && compared.labels_agree != Some(false),
                c_summary(&c),
            );
        }
        Err(_) => c.failed += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sticky_choice_is_stable_and_proportional() {
        let hits = (0..10_000u32)
            .filter(|i| chosen(10.0, stable_hash(format!("user-{i}").as_bytes())))
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert_eq!(stable_hash(b"abc"), stable_hash(b"abc"));
        assert!(!chosen(0.0, 0));
        assert!(chosen(100.0, 9_999));
    }
}
