//! Our retry layer for S3 operations: exponential backoff with jitter inside a total time budget.
//!
//! object_store retries a request only when it can tell the failure apart (5xx, 429, a refused or
//! reset connection) and only for a few seconds here (see the module comment of `s3`). This layer
//! wraps whole operations (list, HEAD, delete, PUT, one part, one completion) and retries every
//! failure that is not a definite refusal ([`transient`]), including cut response bodies, which
//! object_store reports as Decode/Unknown errors and never retries, until the budget runs out.

use std::future::Future;
use std::time::Duration;

use crate::retry::{Backoff, Policy};

/// Wait before the first retry. Long enough that a burst of failures does not hammer a server
/// that is already in trouble; short enough that a single dropped connection costs little.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two attempts: once S3 has been away this long, we look every 10–20 s,
/// so the end of an outage is noticed within 20 s without flooding the endpoint meanwhile.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// How long and how often one S3 operation is retried at our layer.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    /// Waits and the total time after the first attempt's start during which retries may
    /// start (`[target] retry_timeout_seconds`).
    pub(crate) backoff: Policy,
    /// Most retries of one operation (`[target] max_retries`); by default high enough that the
    /// budget is what stops retrying.
    pub(crate) max_retries: usize,
}

impl RetryPolicy {
    /// The policy for a budget and retry count, with the standard backoff.
    pub(super) fn new(budget: Duration, max_retries: usize) -> RetryPolicy {
        RetryPolicy {
            backoff: Policy {
                initial: FIRST_BACKOFF,
                max: MAX_BACKOFF,
                budget,
            },
            max_retries,
        }
    }

    /// Starts the clock for one operation.
    pub(super) fn start(&self) -> Retry {
        Retry {
            backoff: Backoff::starting_now(self.backoff),
            max_retries: self.max_retries,
        }
    }
}

/// The retry state of one operation.
pub(super) struct Retry {
    backoff: Backoff,
    max_retries: usize,
}

impl Retry {
    /// Call after a failed attempt: waits and returns true when another attempt may start, false
    /// when the retries or the budget are used up.
    pub(super) async fn wait(&mut self, what: &str, error: &str) -> bool {
        if self.backoff.retries() as usize >= self.max_retries {
            return false;
        }
        let elapsed = self.backoff.elapsed();
        let Some(wait) = self.backoff.failed() else {
            return false;
        };
        tracing::warn!(
            "S3 {what} failed: {error}; retry {} in {:.1} s ({:.0} s of the {} s retry budget used)",
            self.backoff.retries(),
            wait.as_secs_f64(),
            elapsed.as_secs_f64(),
            self.backoff.budget().as_secs()
        );
        tokio::time::sleep(wait).await;
        true
    }

    /// Time since the operation's first attempt started.
    pub(super) fn elapsed(&self) -> Duration {
        self.backoff.elapsed()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::time::Instant;

    fn unavailable() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable".into(),
        }
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
