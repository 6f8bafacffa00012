//! The optional Prometheus endpoint (`tributary run --metrics-addr`): the same figures as
//! `tributary status`, published from the running task.

use std::net::SocketAddr;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};

/// Starts serving `/metrics` on `addr`.
pub(super) fn install(addr: SocketAddr) -> Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot serve metrics on {addr}: {e}"),
                "pick a free address for --metrics-addr (e.g. 127.0.0.1:9187)",
            )
        })
}

/// Publishes the checkpoint's statistics and the CDC latencies (seconds): source = now − newest
/// commit read, target = now − oldest change not yet in a file (0 when nothing is pending).
pub(super) fn publish(cp: &Checkpoint, oldest_pending_commit_us: Option<i64>) {
    let now = chrono::Utc::now().timestamp_micros();
    for (table, s) in &cp.tables {
        let t = table.clone();
        metrics::gauge!("tributary_full_load_rows", "table" => t.clone())
            .set(s.full_load_rows as f64);
        metrics::gauge!("tributary_inserts", "table" => t.clone()).set(s.inserts as f64);
        metrics::gauge!("tributary_updates", "table" => t.clone()).set(s.updates as f64);
        metrics::gauge!("tributary_deletes", "table" => t.clone()).set(s.deletes as f64);
        metrics::gauge!("tributary_ddls", "table" => t.clone()).set(s.ddls as f64);
        metrics::gauge!("tributary_unchanged_markers", "table" => t)
            .set(s.unchanged_markers as f64);
    }
    if let Some(c) = &cp.cdc {
        if let Some(last) = c.last_commit_us {
            metrics::gauge!("tributary_cdc_latency_source_seconds")
                .set((now - last).max(0) as f64 / 1e6);
        }
        let target = oldest_pending_commit_us.map_or(0.0, |t| (now - t).max(0) as f64 / 1e6);
        metrics::gauge!("tributary_cdc_latency_target_seconds").set(target);
    }
}

/// Counts one interrupted streaming session (a reconnect follows).
pub(super) fn reconnected() {
    metrics::counter!("tributary_cdc_reconnects_total").increment(1);
}
