//! The hard bound on requests admitted at once by one model version (`max_concurrency`): a
//! memory bound, not the overload control — [`super::admission`] decides on predicted wait long
//! before this bound is reached. Admission is a single compare-and-swap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct ConcurrencyLimiter {
    in_flight: AtomicUsize,
    limit: usize,
}

/// Holds one admitted slot; dropping it releases the slot.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<ConcurrencyLimiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConcurrencyLimiter {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            limit: limit.max(1),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits one request if the bound allows; never waits.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= self.limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        limiter: self.clone(),
                    });
                }
                Err(now) => current = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_the_limit_and_releases_on_drop() {
        let l = ConcurrencyLimiter::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert!(l.try_acquire().is_some());
        assert_eq!(l.in_flight(), 1);
    }
}
