//! The one backoff policy: exponential waits with jitter inside a total time budget, used by
//! change capture to ride out a lost source or target ([`RECONNECT`]) and by the S3 store for
//! each request (`store::s3`).
//!
//! Whether an error is worth retrying is decided elsewhere ([`crate::error::Error::retryable`],
//! and the S3 store's classification of object_store errors); this module only decides how long
//! to wait and when to give up.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The first wait's full step.
    pub(crate) initial: Duration,
    /// The longest step.
    pub(crate) max: Duration,
    /// Time after which no new attempt starts.
    pub(crate) budget: Duration,
}

/// How a change-capture task rides out a lost source connection, a server restart or failover,
/// or a target outage: steps from 1 s doubling to 60 s, for up to 30 minutes without progress.
pub(crate) const RECONNECT: Policy = Policy {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
    budget: Duration::from_secs(30 * 60),
};

impl Policy {
    /// The wait before retry number `retry` (1-based), given a random number: "equal jitter",
    /// uniformly in `[d/2, d]` with `d = min(max, initial × 2^(retry−1))`. The lower half keeps
    /// the growth exponential; the random half keeps many clients that failed together from
    /// retrying in lockstep.
    pub(crate) fn wait(&self, retry: u32, random: u64) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32 << retry.saturating_sub(1).min(30));
        let full = doubled.min(self.max);
        let half = full / 2;
        let spread = (full - half).as_nanos() as u64;
        half + Duration::from_nanos(random % (spread + 1))
    }
}

/// The state of one retry sequence.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: Policy,
    retries: u32,
    since: Option<Instant>,
}

impl Backoff {
    /// A sequence whose budget starts at its first failure.
    pub(crate) fn new(policy: Policy) -> Backoff {
        Backoff {
            policy,
            retries: 0,
            since: None,
        }
    }

    /// A sequence whose budget starts now (an operation about to make its first attempt).
    pub(crate) fn starting_now(policy: Policy) -> Backoff {
        Backoff {
            since: Some(Instant::now()),
            ..Backoff::new(policy)
        }
    }

    /// Progress was made: the next failure starts a new sequence with a full budget.
    pub(crate) fn reset(&mut self) {
        self.retries = 0;
        self.since = None;
    }

    /// Records a failure and returns how long to wait before the next attempt, or None when the
    /// budget is spent. The last wait is shortened to end at the budget.
    pub(crate) fn failed(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let elapsed = now.duration_since(*self.since.get_or_insert(now));
        if elapsed >= self.policy.budget {
            return None;
        }
        self.retries += 1;
        let wait = self.policy.wait(self.retries, random());
        Some(wait.min(self.policy.budget - elapsed))
    }

    /// Failures recorded since the last reset.
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    /// Time since the budget started (zero before the first failure of a [`Backoff::new`]).
    pub(crate) fn elapsed(&self) -> Duration {
        self.since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// The policy's budget, for messages.
    pub(crate) fn budget(&self) -> Duration {
        self.policy.budget
    }
}

/// A random number for jitter, std only: every `RandomState` is freshly keyed, and hashing a
/// counter makes two calls differ even with equal keys.
fn random() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(CALLS.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_jitter_stays_in_bounds() {
        let p = RECONNECT;
        let mut last_floor = Duration::ZERO;
        for retry in 1..40u32 {
            let full = (p.initial * 2u32.pow(retry.min(20) - 1)).min(p.max);
            for random in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                let w = p.wait(retry, random);
                assert!(
                    w >= full / 2 && w <= full,
                    "retry {retry}: {w:?} vs {full:?}"
                );
            }
            assert_eq!(p.wait(retry, 0), full / 2, "the floor is half the step");
            assert!(p.wait(retry, 0) >= last_floor, "the floor never shrinks");
            last_floor = p.wait(retry, 0);
        }
        let draws: std::collections::HashSet<_> = (0..20).map(|_| p.wait(10, random())).collect();
        assert!(draws.len() > 10, "no real jitter: {draws:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_ends_retrying_and_progress_renews_it() {
        let policy = Policy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            budget: Duration::from_secs(60),
        };
        let mut b = Backoff::new(policy);
        let start = Instant::now();
        while let Some(wait) = b.failed() {
            tokio::time::sleep(wait).await;
        }
        // The last wait ends at the budget (the timer rounds to the millisecond).
        let waited = start.elapsed();
        assert!(waited >= policy.budget && waited <= policy.budget + Duration::from_millis(50));
        assert!(b.retries() >= 60 / 8);
        b.reset();
        assert!(b.failed().unwrap() <= Duration::from_secs(1));
    }
}
