//! Our retry layer for S3 operations: exponential backoff with jitter inside a total time budget.
//!
//! object_store retries a request only when it can tell the failure apart (5xx, 429, a refused or
//! reset connection) and only for a few seconds here (see the module comment of `s3`). This layer
//! wraps whole operations (list, HEAD, delete, PUT, one part, one completion) and retries every
//! failure that is not a definite refusal ([`transient`]), including cut response bodies, which
//! object_store reports as Decode/Unknown errors and never retries, until the budget runs out.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Wait before the first retry. Long enough that a burst of failures does not hammer a server
/// that is already in trouble; short enough that a single dropped connection costs little.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two attempts: once S3 has been away this long, we look every 10–20 s,
/// so the end of an outage is noticed within 20 s without flooding the endpoint meanwhile.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// How long and how often one S3 operation is retried at our layer.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    /// Total time after the first attempt's start during which retries may start
    /// (`[target] retry_timeout_seconds`).
    pub budget: Duration,
    /// Most retries of one operation (`[target] max_retries`); by default high enough that the
    /// budget is what stops retrying.
    pub max_retries: usize,
    /// Wait before the first retry; doubles on each retry up to `cap`.
    pub first: Duration,
    /// Longest single wait.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The policy for a budget and retry count, with the standard backoff.
    pub fn new(budget: Duration, max_retries: usize) -> RetryPolicy {
        RetryPolicy {
            budget,
            max_retries,
            first: FIRST_BACKOFF,
            cap: MAX_BACKOFF,
        }
    }

    /// The wait before retry number `retry` (1-based), given a random number: "equal jitter",
    /// uniformly in `[d/2, d]` with `d = min(cap, first × 2^(retry−1))`. The lower half keeps the
    /// growth exponential; the random half keeps many writers that failed together (parts in
    /// flight, tables loading in parallel) from retrying in lockstep.
    pub fn backoff(&self, retry: u32, random: u64) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32 << retry.saturating_sub(1).min(30));
        let full = doubled.min(self.cap);
        let half = full / 2;
        let spread = (full - half).as_nanos() as u64;
        half + Duration::from_nanos(random % (spread + 1))
    }

    /// Starts the clock for one operation.
    pub fn start(&self) -> Retry {
        Retry {
            policy: *self,
            start: Instant::now(),
            retries: 0,
        }
    }
}

/// The retry state of one operation.
pub(super) struct Retry {
    policy: RetryPolicy,
    start: Instant,
    retries: usize,
}

impl Retry {
    /// Call after a failed attempt: waits and returns true when another attempt may start, false
    /// when the retries or the budget are used up. The last wait is shortened to end at the
    /// budget, so no attempt starts after it.
    pub async fn wait(&mut self, what: &str, error: &str) -> bool {
        let elapsed = self.start.elapsed();
        if self.retries >= self.policy.max_retries || elapsed >= self.policy.budget {
            return false;
        }
        self.retries += 1;
        let wait = self
            .policy
            .backoff(self.retries as u32, random())
            .min(self.policy.budget - elapsed);
        tracing::warn!(
            "S3 {what} failed: {error}; retry {} in {:.1} s ({:.0} s of the {} s retry budget used)",
            self.retries,
            wait.as_secs_f64(),
            elapsed.as_secs_f64(),
            self.policy.budget.as_secs()
        );
        tokio::time::sleep(wait).await;
        true
    }

    /// Time since the operation's first attempt started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Runs an idempotent operation, retrying [`transient`] failures within the policy.
pub(super) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut state = policy.start();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) && state.wait(what, &super::one_line(&e.to_string())).await => {
            }
            Err(e) => return Err(e),
        }
    }
}

/// False for definite refusals that a retry cannot change (missing object, bucket or upload;
/// denied access; a 4xx answer other than 408/429); true for everything else, whose cause may
/// pass: 5xx, throttling, refused or reset connections, timeouts, cut or garbled responses.
pub(super) fn transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::NotFound { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::InvalidPath { .. }
        | E::UnknownConfigurationKey { .. } => false,
        // object_store does not expose the status of a Generic error except in its text.
        e => match status_in(&e.to_string()) {
            Some(status) => !(400..500).contains(&status) || status == 408 || status == 429,
            None => true,
        },
    }
}

/// The HTTP status an object_store error text reports ("... status code: 400 Bad Request ...").
fn status_in(text: &str) -> Option<u16> {
    let (_, rest) = text.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
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
    use std::sync::atomic::AtomicUsize;

    fn unavailable() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable".into(),
        }
    }

    #[test]
    fn backoff_grows_and_jitter_stays_in_bounds() {
        let p = RetryPolicy::new(Duration::from_secs(300), 100);
        let mut last_floor = Duration::ZERO;
        for retry in 1..40u32 {
            let full = (FIRST_BACKOFF * 2u32.pow(retry.min(20) - 1)).min(MAX_BACKOFF);
            for random in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                let w = p.backoff(retry, random);
                assert!(
                    w >= full / 2 && w <= full,
                    "retry {retry}: {w:?} vs {full:?}"
                );
            }
            assert_eq!(p.backoff(retry, 0), full / 2, "the floor is half the step");
            assert!(p.backoff(retry, 0) >= last_floor, "the floor never shrinks");
            last_floor = p.backoff(retry, 0);
        }
        assert_eq!(p.backoff(1, 0), FIRST_BACKOFF / 2);
        assert_eq!(p.backoff(3, 0), FIRST_BACKOFF * 2);
        // Real jitter: many draws are not all equal.
        let draws: std::collections::HashSet<_> =
            (0..20).map(|_| p.backoff(10, random())).collect();
        assert!(draws.len() > 10, "{draws:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_budget_and_no_later() {
        let p = RetryPolicy::new(Duration::from_secs(300), 1000);
        let attempts = AtomicUsize::new(0);
        let start = Instant::now();
        let mut starts = Vec::new();
        let r: object_store::Result<()> = retry(&p, "test", || {
            attempts.fetch_add(1, Ordering::Relaxed);
            starts.push(start.elapsed());
            async { Err(unavailable()) }
        })
        .await;
        assert!(r.is_err());
        let n = attempts.load(Ordering::Relaxed);
        // Waits of 0.25–0.5, 0.5–1, ... up to 10–20 s: between ~20 and ~36 retries fit in 300 s.
        assert!((18..=40).contains(&n), "{n} attempts");
        assert_eq!(
            *starts.last().unwrap(),
            Duration::from_secs(300),
            "last try at the budget"
        );
        assert!(start.elapsed() <= Duration::from_secs(300));
        // Each wait lies in its jittered step, the steps doubling up to the cap; only the last
        // wait is shortened to end at the budget.
        let gaps: Vec<_> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        for (i, gap) in gaps[..gaps.len() - 1].iter().enumerate() {
            let full = (FIRST_BACKOFF * 2u32.pow(i.min(20) as u32)).min(MAX_BACKOFF);
            assert!(*gap >= full / 2 && *gap <= full, "wait {i}: {gap:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn max_retries_and_permanent_errors_stop_early() {
        let p = RetryPolicy::new(Duration::from_secs(300), 3);
        let attempts = AtomicUsize::new(0);
        let _ = retry(&p, "test", || {
            attempts.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(unavailable()) }
        })
        .await;
        assert_eq!(attempts.load(Ordering::Relaxed), 4, "first try + 3 retries");

        let attempts = AtomicUsize::new(0);
        let start = Instant::now();
        let r = retry(&p, "test", || {
            attempts.fetch_add(1, Ordering::Relaxed);
            async {
                Err::<(), _>(object_store::Error::NotFound {
                    path: "k".into(),
                    source: "404".into(),
                })
            }
        })
        .await;
        assert!(matches!(r, Err(object_store::Error::NotFound { .. })));
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_failure_is_retried_to_success() {
        let p = RetryPolicy::new(Duration::from_secs(300), 100);
        let attempts = AtomicUsize::new(0);
        let r = retry(&p, "test", || {
            let n = attempts.fetch_add(1, Ordering::Relaxed);
            async move {
                match n {
                    0 => Err(unavailable()),
                    1 => Err(object_store::Error::Generic {
                        store: "S3",
                        source: "error decoding response body".into(),
                    }),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }

    #[test]
    fn classifies_errors() {
        let generic = |s: &str| object_store::Error::Generic {
            store: "S3",
            source: s.to_string().into(),
        };
        assert!(transient(&unavailable()));
        assert!(transient(&generic("error decoding response body")));
        assert!(transient(&generic("status code: 429 Too Many Requests")));
        assert!(!transient(&generic(
            "Server returned non-2xx status code: 400 Bad Request: InvalidPart"
        )));
        assert!(!transient(&object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into()
        }));
    }
}
