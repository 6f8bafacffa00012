//! The one reconnect policy: exponential backoff with jitter within a total time budget.
//!
//! Whether an error is worth retrying is decided by [`crate::error::Error::retryable`]; this
//! module only decides how long to wait and when to give up. The budget counts from the first
//! failure since the last progress, so a task that keeps making progress between failures
//! never runs out of it.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// First wait.
    pub(crate) initial: Duration,
    /// Longest wait.
    pub(crate) max: Duration,
    /// Time after the first failure without progress after which retrying stops.
    pub(crate) budget: Duration,
}

/// How a change-capture task rides out a lost source connection, a server restart or a
/// failover: 1 s doubling to 60 s, for up to 30 minutes without progress.
pub(crate) const RECONNECT: Policy = Policy {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
    budget: Duration::from_secs(30 * 60),
};

/// The state of one retry sequence.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: Policy,
    next: Duration,
    since: Option<Instant>,
}

impl Backoff {
    /// A sequence that has not failed yet.
    pub(crate) fn new(policy: Policy) -> Backoff {
        Backoff {
            policy,
            next: policy.initial,
            since: None,
        }
    }

    /// Progress was made: the next failure starts a new sequence with a full budget.
    pub(crate) fn reset(&mut self) {
        self.next = self.policy.initial;
        self.since = None;
    }

    /// Records a failure and returns how long to wait before the next attempt, or None when the
    /// budget is spent. Waits are drawn from [½·d, d] where d doubles up to `max` ("equal
    /// jitter"), so many tasks failing at once do not retry in lockstep.
    pub(crate) fn failed(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= self.policy.budget {
            return None;
        }
        let d = self.next;
        self.next = (d * 2).min(self.policy.max);
        let half = d / 2;
        Some(half + half.mul_f64(jitter()))
    }

    /// The policy's budget, for messages.
    pub(crate) fn budget(&self) -> Duration {
        self.policy.budget
    }
}

/// A random fraction in [0, 1): std's per-instance random hash keys are enough for jitter and
/// spare a dependency.
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_grow_with_jitter_until_the_budget_is_spent() {
        let policy = Policy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            budget: Duration::from_secs(60),
        };
        let mut b = Backoff::new(policy);
        let mut ceiling = Duration::from_secs(1);
        let mut waited = Duration::ZERO;
        while let Some(wait) = b.failed() {
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(policy.max);
            tokio::time::sleep(wait).await;
            waited += wait;
        }
        assert!(waited >= policy.budget && waited < policy.budget + policy.max);
        b.reset();
        assert!(b.failed().unwrap() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_is_a_fraction() {
        let draws: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.iter().any(|&j| j != draws[0]), "jitter never varies");
    }
}
