//! The optional Prometheus endpoint (`tributary run --metrics-addr`): the same figures as
//! `tributary status`, published from the running task, in Prometheus's conventions (`# HELP`
//! and `# TYPE` for every metric, counters named `_total`, units in the name). A small HTTP
//! server of our own answers `GET /metrics` (and `/health`), and 404 for any other path.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, Unit};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};

/// The text exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Longest request head read; a scraper's is a few hundred bytes.
const MAX_HEAD_BYTES: usize = 8192;

/// Starts serving `/metrics` on `addr`.
pub(super) fn install(addr: SocketAddr) -> Result<()> {
    let bind_error = |e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Config,
            format!("cannot serve metrics on {addr}: {e}"),
            "pick a free address for --metrics-addr (e.g. 127.0.0.1:9187)",
        )
    };
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| bind_error(&e))?;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| bind_error(&e))?;
    describe();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &handle).await {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            });
        }
    });
    Ok(())
}

/// Answers one HTTP/1.x request and closes the connection.
async fn answer(
    mut stream: tokio::net::TcpStream,
    handle: &PrometheusHandle,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            handle.run_upkeep();
            ("200 OK", CONTENT_TYPE, handle.render())
        }
        ("GET" | "HEAD", "/health") => ("200 OK", "text/plain", "OK\n".to_string()),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "not found: metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "use GET /metrics\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The `# HELP` text, type and unit of every metric we publish (README lists the same names).
fn describe() {
    let per_table: [(&str, &str); 6] = [
        (
            "tributary_full_load_rows_total",
            "Rows written by the full load, per table (FullLoadRows).",
        ),
        (
            "tributary_inserts_total",
            "Inserts written by change capture, per table (Inserts).",
        ),
        (
            "tributary_updates_total",
            "Updates written by change capture, per table (Updates).",
        ),
        (
            "tributary_deletes_total",
            "Deletes written by change capture, per table (Deletes).",
        ),
        (
            "tributary_ddls_total",
            "Table shape changes and truncates seen by change capture, per table (Ddls).",
        ),
        (
            "tributary_unchanged_markers_total",
            "Unchanged large values written as the marker, per table (UnchangedMarkers).",
        ),
    ];
    for (name, help) in per_table {
        describe_counter!(name, Unit::Count, help);
    }
    describe_counter!(
        "tributary_cdc_reconnects_total",
        Unit::Count,
        "Streaming sessions that ended on a retryable error and were started again."
    );
    describe_counter!(
        "tributary_cdc_files_total",
        Unit::Count,
        "CDC files written, by what closed them (size, interval, memory, shape, stop)."
    );
    describe_gauge!(
        "tributary_cdc_latency_source_seconds",
        Unit::Seconds,
        "Seconds between now and the commit time of the newest change read (CDCLatencySource)."
    );
    describe_gauge!(
        "tributary_cdc_latency_target_seconds",
        Unit::Seconds,
        "Seconds between now and the commit time of the oldest change not yet in a file (CDCLatencyTarget)."
    );
    describe_gauge!(
        "tributary_slot_retained_wal_bytes",
        Unit::Bytes,
        "WAL the PostgreSQL replication slot retains, in bytes."
    );
}

/// Publishes the checkpoint's statistics and the CDC latencies (seconds): source = now − newest
/// commit read, target = now − oldest change not yet in a file (0 when nothing is pending).
pub(super) fn publish(cp: &Checkpoint, oldest_pending_commit_us: Option<i64>) {
    let now = chrono::Utc::now().timestamp_micros();
    for (table, s) in &cp.tables {
        let t = table.clone();
        // The checkpoint holds the totals: counters are set to them.
        metrics::counter!("tributary_full_load_rows_total", "table" => t.clone())
            .absolute(s.full_load_rows);
        metrics::counter!("tributary_inserts_total", "table" => t.clone()).absolute(s.inserts);
        metrics::counter!("tributary_updates_total", "table" => t.clone()).absolute(s.updates);
        metrics::counter!("tributary_deletes_total", "table" => t.clone()).absolute(s.deletes);
        metrics::counter!("tributary_ddls_total", "table" => t.clone()).absolute(s.ddls);
        metrics::counter!("tributary_unchanged_markers_total", "table" => t)
            .absolute(s.unchanged_markers);
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
