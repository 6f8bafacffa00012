//! `tributary status`: the task's state from its checkpoint, with DMS's names, plus the slot's
//! lag read from the source when it is reachable.

use serde::Serialize;

use crate::checkpoint::TableStats;
use crate::config::TaskConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::source;
use crate::state::lease::LeaseView;

/// The status report (`--json` prints it as is).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// Task id.
    pub(crate) task_id: String,
    /// DMS task status (`running`, `stopped`, `failed`).
    pub(crate) status: &'static str,
    /// Phase, e.g. "Load complete, replication ongoing".
    pub(crate) phase: Option<&'static str>,
    /// DMS stop reason.
    pub(crate) stop_reason: Option<&'static str>,
    /// Error that failed the task.
    pub(crate) last_error: Option<String>,
    /// Seconds between the newest change read and now.
    #[serde(rename = "CDCLatencySource")]
    pub(crate) cdc_latency_source: Option<f64>,
    /// Seconds between the oldest change not yet in a file and now (≈ source latency while
    /// nothing is buffered; the checkpoint only knows durable positions).
    #[serde(rename = "CDCLatencyTarget")]
    pub(crate) cdc_latency_target: Option<f64>,
    /// Replication slot.
    pub(crate) slot_name: Option<String>,
    /// WAL the slot retains (bytes), when the source could be asked.
    pub(crate) slot_lag_bytes: Option<u64>,
    /// Where streaming resumes.
    pub(crate) resume_position: Option<String>,
    /// Who holds the task's lease (None: no process runs it).
    pub(crate) lease: Option<LeaseView>,
    /// Whether `lease` was looked up (not in a run's own summary).
    #[serde(skip)]
    pub(crate) lease_checked: bool,
    /// Per-table statistics.
    pub(crate) table_statistics: Vec<TableStats>,
}

/// Builds the status of `task`.
pub async fn status(task: &TaskConfig) -> Result<Status> {
    let store = crate::state::StateStore::open(task).await?;
    let cp = store.load().await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!(
                "task {} has not run yet (no checkpoint at {})",
                task.id,
                store.describe()
            ),
            "start it with tributary run --config TASK.toml",
        )
    })?;
    let mut s = Status::from_checkpoint(&cp);
    s.lease = store.lease_holder(&cp)?;
    s.lease_checked = true;
    if let Some(c) = &cp.cdc {
        s.slot_lag_bytes = source::open(task).retained_log_bytes(c).await;
    }
    Ok(s)
}

impl Status {
    /// True when the task stopped on an error (`status` then exits 1).
    pub fn failed(&self) -> bool {
        self.status == crate::checkpoint::TaskStatus::Failed.as_str()
    }

    /// True when a table is in error (suspended by `ErrorBehavior`): `status` then exits 3, as
    /// the run did.
    pub fn tables_in_error(&self) -> bool {
        self.table_statistics
            .iter()
            .any(|t| t.table_state == crate::checkpoint::TableState::Error)
    }

    /// The status as far as the checkpoint knows it (no slot lag).
    pub(crate) fn from_checkpoint(cp: &crate::checkpoint::Checkpoint) -> Status {
        let cdc = cp.cdc.as_ref();
        let now_us = chrono::Utc::now().timestamp_micros();
        let latency = cdc
            .and_then(|c| c.last_commit_us)
            .map(|t| ((now_us - t).max(0) as f64) / 1e6);
        Status {
            task_id: cp.task_id.clone(),
            status: cp.status.as_str(),
            phase: cdc.map(|c| c.phase.as_str()),
            stop_reason: cp.stop_reason.map(|r| r.as_str()),
            last_error: cp.last_error.clone(),
            cdc_latency_source: latency,
            cdc_latency_target: latency,
            slot_name: cdc.map(|c| c.slot.clone()).filter(|s| !s.is_empty()),
            slot_lag_bytes: None,
            resume_position: cdc
                .and_then(|c| c.resume_from.as_ref())
                .map(|p| p.to_string()),
            lease: None,
            lease_checked: false,
            table_statistics: cp.tables.values().cloned().collect(),
        }
    }
}

/// Renders the status for a terminal.
pub fn render(s: &Status) -> String {
    let mut out = format!("task {}: {}", s.task_id, s.status);
    if let Some(p) = &s.phase {
        out.push_str(&format!(" ({p})"));
    }
    if let Some(r) = &s.stop_reason {
        out.push_str(&format!(", stop reason {r}"));
    }
    out.push('\n');
    if let Some(e) = &s.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    match &s.lease {
        Some(l) => out.push_str(&format!("lease: {}\n", l.render())),
        None if s.lease_checked => out.push_str("lease: free (no process runs the task)\n"),
        None => {}
    }
    if let Some(slot) = &s.slot_name {
        out.push_str(&format!(
            "slot {slot}: resume at {}, retained WAL {}\n",
            s.resume_position.as_deref().unwrap_or("-"),
            s.slot_lag_bytes
                .map_or("unknown (source not reachable)".to_string(), |b| format!(
                    "{b} bytes"
                )),
        ));
    }
    if let (None, Some(at)) = (&s.slot_name, &s.resume_position) {
        // MySQL/MariaDB: no slot; the binlog position lives in the checkpoint.
        out.push_str(&format!("binlog: resume at {at}\n"));
    }
    if let Some(l) = s.cdc_latency_source {
        out.push_str(&format!("CDCLatencySource {l:.1} s\n"));
    }
    out.push_str(&format!(
        "{:<40} {:<18} {:>12} {:>10} {:>10} {:>10} {:>6} {:>8}\n",
        "table", "TableState", "FullLoadRows", "Inserts", "Updates", "Deletes", "Ddls", "Markers"
    ));
    for t in &s.table_statistics {
        out.push_str(&format!(
            "{:<40} {:<18} {:>12} {:>10} {:>10} {:>10} {:>6} {:>8}\n",
            format!("{}.{}", t.schema_name, t.table_name),
            t.table_state.as_str(),
            t.full_load_rows,
            t.inserts,
            t.updates,
            t.deletes,
            t.ddls,
            t.unchanged_markers
        ));
    }
    for t in &s.table_statistics {
        if let Some(e) = &t.error {
            out.push_str(&format!(
                "{}.{}: Table error: {e}\n",
                t.schema_name, t.table_name
            ));
        }
        if t.data_errors > 0 {
            out.push_str(&format!(
                "{}.{}: {} records skipped (DataErrorPolicy)\n",
                t.schema_name, t.table_name, t.data_errors
            ));
        }
    }
    out
}
