//! Task state on local disk: per-table state and DMS table statistics, written atomically
//! (temporary file, fsync, rename, fsync folder) after every change that must survive a crash.
//!
//! A table is marked `Table completed` only after all its files are durable in the store, so a
//! resumed task never skips a table whose files are missing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::change::{ChangePos, Position};
use crate::error::{Error, ErrorKind, Result};

/// Format version of the checkpoint file.
pub const VERSION: u32 = 1;

/// DMS `TableState` values we use.
pub mod table_state {
    /// Not started yet.
    pub const BEFORE_LOAD: &str = "Before load";
    /// Loading.
    pub const FULL_LOAD: &str = "Full load";
    /// Loaded; every file durable.
    pub const COMPLETED: &str = "Table completed";
    /// Failed; its files of this run were removed.
    pub const ERROR: &str = "Table error";
    /// Interrupted; redone from the start on resume.
    pub const CANCELLED: &str = "Table cancelled";
}

/// DMS task status values we use.
pub mod task_status {
    /// Running (or died while running: resume redoes unfinished tables).
    pub const RUNNING: &str = "running";
    /// Stopped: finished or interrupted.
    pub const STOPPED: &str = "stopped";
    /// Failed with an error.
    pub const FAILED: &str = "failed";
}

/// Statistics of one table, with DMS's `TableStatistics` field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TableStats {
    /// Schema (PostgreSQL) or database (MySQL).
    pub schema_name: String,
    /// Table name.
    pub table_name: String,
    /// DMS table state.
    pub table_state: String,
    /// Rows written by the full load.
    pub full_load_rows: u64,
    /// Start of the table's full load (UTC, RFC 3339).
    pub full_load_start_time: Option<String>,
    /// End of the table's full load.
    pub full_load_end_time: Option<String>,
    /// CDC inserts.
    pub inserts: u64,
    /// CDC updates.
    pub updates: u64,
    /// CDC deletes.
    pub deletes: u64,
    /// CDC DDLs.
    pub ddls: u64,
    /// Last change to these statistics.
    pub last_update_time: Option<String>,
    /// LOAD counter of this run's first file (files from it upward belong to this run).
    pub first_load_file: Option<u64>,
    /// Number of LOAD files written.
    pub full_load_files: u64,
    /// Bytes of LOAD files written.
    pub full_load_bytes: u64,
    /// LOB values cut at LobMaxSize.
    pub truncated_lobs: u64,
}

/// The checkpoint of one task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// File format version.
    pub version: u32,
    /// `[task] id`.
    pub task_id: String,
    /// Identifies one run (fresh start); resumes keep it.
    pub run_id: String,
    /// DMS task status.
    pub status: String,
    /// DMS stop reason once stopped (`FULL_LOAD_ONLY_FINISHED`, ...).
    pub stop_reason: Option<String>,
    /// The error that failed the task, if any.
    pub last_error: Option<String>,
    /// BucketFolder as expanded for this run (reused on resume).
    pub bucket_folder: String,
    /// Task start, µs since epoch (UseTaskStartTimeForFullLoadTimestamp uses it).
    pub task_start_us: i64,
    /// Task start, RFC 3339.
    pub start_date: String,
    /// Time the task stopped.
    pub stop_date: Option<String>,
    /// Per-table statistics by `schema.table`.
    pub tables: BTreeMap<String, TableStats>,
    /// Change-capture state (full-load-and-cdc and cdc tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc: Option<CdcState>,
}

/// Phase of a CDC task, with DMS's console wording where it has one.
pub mod cdc_phase {
    /// Loading tables from the slot's snapshot.
    pub const FULL_LOAD: &str = "Full load";
    /// Streaming changes (after a full load: DMS's "Load complete, replication ongoing").
    pub const REPLICATION: &str = "Load complete, replication ongoing";
    /// A `cdc` task streaming changes.
    pub const CDC: &str = "Replication ongoing";
}

/// Where change capture stands: enough to restart with every committed change written exactly once.
///
/// Invariant: everything a table has at or before `CdcTable::written_through` is durable in the
/// store, and `resume_from` is never past the first change some table has not durably written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CdcState {
    /// Replication slot name.
    pub slot: String,
    /// Publication name.
    pub publication: String,
    /// True when this task created the slot (and publication).
    pub created_slot: bool,
    /// Phase (see [`cdc_phase`]).
    pub phase: String,
    /// Where streaming restarts: every transaction committed before it is fully written.
    pub resume_from: Option<Position>,
    /// Commit time (µs since epoch) of the newest change read from the source.
    pub last_commit_us: Option<i64>,
    /// Per-table state by `schema.table`.
    pub tables: BTreeMap<String, CdcTable>,
}

/// Change-capture state of one table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CdcTable {
    /// The last change durably written for this table: a restart skips changes at or before it.
    pub written_through: Option<ChangePos>,
    /// The snapshot point the table was loaded at: changes of transactions that committed
    /// before it are already in the LOAD files.
    pub loaded_at: Option<Position>,
    /// Stamp (`yyyyMMddHHmmssSSS`) of the newest file name used, so names keep increasing.
    pub last_stamp: Option<String>,
    /// A file being uploaded: decided (and recorded here) before the upload starts, resolved on
    /// restart by checking whether the object exists.
    pub pending: Option<PendingFile>,
}

/// A CDC file whose upload may or may not have completed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingFile {
    /// Object key.
    pub key: String,
    /// Last change in the file.
    pub through: ChangePos,
    /// Inserts in the file.
    pub inserts: u64,
    /// Updates in the file.
    pub updates: u64,
    /// Deletes in the file.
    pub deletes: u64,
    /// Transaction files (`PreserveTransactions`): inserts, updates, deletes per table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_table: BTreeMap<String, [u64; 3]>,
}

impl Checkpoint {
    /// A fresh run.
    pub fn new(
        task_id: &str,
        bucket_folder: String,
        start: chrono::DateTime<chrono::Utc>,
    ) -> Checkpoint {
        Checkpoint {
            version: VERSION,
            task_id: task_id.to_string(),
            run_id: uuid::Uuid::new_v4().to_string(),
            status: task_status::RUNNING.to_string(),
            stop_reason: None,
            last_error: None,
            bucket_folder,
            task_start_us: start.timestamp_micros(),
            start_date: start.to_rfc3339(),
            stop_date: None,
            tables: BTreeMap::new(),
            cdc: None,
        }
    }

    /// True when this run ended for good (a new `run` starts fresh rather than resuming): a
    /// completed full-load-only task. A stopped CDC task always resumes.
    pub fn finished(&self) -> bool {
        self.status == task_status::STOPPED
            && self.stop_reason.as_deref() == Some("FULL_LOAD_ONLY_FINISHED")
    }
}

/// Where a task's checkpoint lives.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// `<state_dir>/<task_id>/checkpoint.json`.
    pub fn new(state_dir: &Path, task_id: &str) -> CheckpointStore {
        CheckpointStore {
            path: state_dir.join(task_id).join("checkpoint.json"),
        }
    }

    /// Path of the checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::State,
            format!("cannot {what} checkpoint {}: {e}", self.path.display()),
            "make the [task] state folder writable (or point it elsewhere) and rerun",
        )
    }

    /// Reads the checkpoint; None when the task never ran.
    pub fn load(&self) -> Result<Option<Checkpoint>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error("read", e)),
        };
        let cp: Checkpoint = serde_json::from_str(&text).map_err(|e| self.error("parse", e))?;
        if cp.version != VERSION {
            return Err(self.error(
                "use",
                format!("version {} (expected {VERSION})", cp.version),
            ));
        }
        Ok(Some(cp))
    }

    /// Writes the checkpoint durably and atomically.
    pub fn save(&self, cp: &Checkpoint) -> Result<()> {
        let dir = self.path.parent().expect("checkpoint path has a folder");
        std::fs::create_dir_all(dir).map_err(|e| self.error("create folder for", e))?;
        let tmp = dir.join(format!(".checkpoint.json.tmp-{}", std::process::id()));
        let json = serde_json::to_vec_pretty(cp).map_err(|e| self.error("encode", e))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.error("write", e))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(|e| self.error("write", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.error("replace", e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.error("sync folder of", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "t1");
        assert_eq!(store.load().unwrap(), None);
        let mut cp = Checkpoint::new("t1", "raw".into(), chrono::Utc::now());
        cp.tables.insert(
            "public.a".into(),
            TableStats {
                table_state: table_state::COMPLETED.into(),
                full_load_rows: 3,
                ..TableStats::default()
            },
        );
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp));
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("\"FullLoadRows\": 3"), "{text}");
        assert!(
            text.contains("\"TableState\": \"Table completed\""),
            "{text}"
        );
    }
}
