//! Task state on local disk: per-table state and DMS table statistics, written atomically
//! (temporary file, fsync, rename, fsync folder) after every change that must survive a crash.
//!
//! A table is marked `Table completed` only after all its files are durable in the store, so a
//! resumed task never skips a table whose files are missing. Every enum serializes to the
//! string release 0.1.0 wrote, so its checkpoints load and resume.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::change::{ChangePos, OpCounts, Position, StreamKey};
use crate::error::{Error, ErrorKind, Result};

/// Format version of the checkpoint file.
const VERSION: u32 = 1;

/// DMS `TableState` values we use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TableState {
    /// Loading.
    #[default]
    #[serde(rename = "Full load")]
    FullLoad,
    /// Loaded; every file durable.
    #[serde(rename = "Table completed")]
    Completed,
    /// Failed; its files of this run were removed.
    #[serde(rename = "Table error")]
    Error,
    /// Interrupted; redone from the start on resume.
    #[serde(rename = "Table cancelled")]
    Cancelled,
}

impl TableState {
    /// DMS's wording.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TableState::FullLoad => "Full load",
            TableState::Completed => "Table completed",
            TableState::Error => "Table error",
            TableState::Cancelled => "Table cancelled",
        }
    }
}

/// DMS task status values we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TaskStatus {
    /// Running (or died while running: resume redoes unfinished tables).
    Running,
    /// Stopped: finished or interrupted.
    Stopped,
    /// Failed with an error.
    Failed,
}

impl TaskStatus {
    /// DMS's wording.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Failed => "failed",
        }
    }
}

/// DMS `StopReason` values we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum StopReason {
    /// Stopped by a signal.
    Normal,
    /// A full-load task finished.
    FullLoadOnlyFinished,
    /// `CdcStopPosition` `server_time` reached.
    StoppedAtServerTime,
    /// `CdcStopPosition` `commit_time` reached.
    StoppedAtCommitTime,
    /// `StopTaskCachedChangesNotApplied`: stopped after the full load.
    StoppedAfterFullLoad,
    /// `StopTaskCachedChangesApplied`: stopped once the changes made during the load were written.
    StoppedAfterCachedEvents,
    /// Stopped by an error.
    FatalError,
}

impl StopReason {
    /// DMS's wording.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StopReason::Normal => "NORMAL",
            StopReason::FullLoadOnlyFinished => "FULL_LOAD_ONLY_FINISHED",
            StopReason::StoppedAtServerTime => "STOPPED_AT_SERVER_TIME",
            StopReason::StoppedAtCommitTime => "STOPPED_AT_COMMIT_TIME",
            StopReason::StoppedAfterFullLoad => "STOPPED_AFTER_FULL_LOAD",
            StopReason::StoppedAfterCachedEvents => "STOPPED_AFTER_CACHED_EVENTS",
            StopReason::FatalError => "FATAL_ERROR",
        }
    }
}

/// Phase of a CDC task, with DMS's console wording where it has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CdcPhase {
    /// Set up but not yet started (release 0.1.0 wrote an empty string).
    #[default]
    #[serde(rename = "")]
    Starting,
    /// Loading tables from the snapshot the stream continues from.
    #[serde(rename = "Full load")]
    FullLoad,
    /// Streaming changes after a full load (DMS's "Load complete, replication ongoing").
    #[serde(rename = "Load complete, replication ongoing")]
    Replication,
    /// A `cdc` task streaming changes.
    #[serde(rename = "Replication ongoing")]
    Cdc,
}

impl CdcPhase {
    /// DMS's wording.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CdcPhase::Starting => "Starting",
            CdcPhase::FullLoad => "Full load",
            CdcPhase::Replication => "Load complete, replication ongoing",
            CdcPhase::Cdc => "Replication ongoing",
        }
    }
}

/// Statistics of one table, with DMS's `TableStatistics` field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TableStats {
    /// Schema (PostgreSQL) or database (MySQL).
    pub(crate) schema_name: String,
    /// Table name.
    pub(crate) table_name: String,
    /// DMS table state.
    pub(crate) table_state: TableState,
    /// Rows written by the full load.
    pub(crate) full_load_rows: u64,
    /// Start of the table's full load (UTC, RFC 3339).
    pub(crate) full_load_start_time: Option<String>,
    /// End of the table's full load.
    pub(crate) full_load_end_time: Option<String>,
    /// CDC inserts.
    pub(crate) inserts: u64,
    /// CDC updates.
    pub(crate) updates: u64,
    /// CDC deletes.
    pub(crate) deletes: u64,
    /// CDC DDLs.
    pub(crate) ddls: u64,
    /// Last change to these statistics.
    pub(crate) last_update_time: Option<String>,
    /// LOAD counter of this run's first file (files from it upward belong to this run).
    pub(crate) first_load_file: Option<u64>,
    /// Number of LOAD files written.
    pub(crate) full_load_files: u64,
    /// Bytes of LOAD files written.
    pub(crate) full_load_bytes: u64,
    /// LOB values cut at LobMaxSize.
    pub(crate) truncated_lobs: u64,
    /// Values written as the unchanged-value marker (PostgreSQL updates that left a large
    /// TOASTed value unchanged and did not send it).
    #[serde(default)]
    pub(crate) unchanged_markers: u64,
    /// Why the table is in error (`Table error`): the cause and its fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Times the table failed as a whole, over runs (`TableErrorEscalationCount`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) table_errors: u64,
    /// Records skipped by `DataErrorPolicy` `LOG_ERROR`/`IGNORE_RECORD`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) data_errors: u64,
    /// The segments of a segmented load (`parallel-load`), by segment name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) segments: BTreeMap<String, SegmentStats>,
    /// The predicates of an automatically chunked table's segments (`CHUNK1`…), in order: a
    /// resume reads the same chunks whatever the table's size has become.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) chunks: Vec<String>,
    /// The segments' key ranges when they are ranges of integer key columns: a
    /// `full-load-and-cdc` resume keeps finished segments only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key_ranges: Option<crate::mapping::segments::KeyRanges>,
}

/// One segment of a segmented full load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SegmentStats {
    /// `Full load` while loading, `Table completed` once every file is durable.
    pub(crate) state: TableState,
    /// Rows written.
    pub(crate) rows: u64,
    /// Files written.
    pub(crate) files: u64,
    /// Bytes written.
    pub(crate) bytes: u64,
    /// LOAD counter of the attempt's first file (a resume removes its files from it upward).
    pub(crate) first_load_file: Option<u64>,
    /// The first counter a failed attempt never used: its files are removed, but their names
    /// are not given to other content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next_load_file: Option<u64>,
    /// `full-load-and-cdc`: the position of the snapshot the segment was read from; the
    /// stream skips its rows' changes before it (the table's `loaded_at`, per segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) loaded_at: Option<Position>,
}

impl TableStats {
    /// Adds the changes of one durable CDC file.
    pub(crate) fn add_changes(&mut self, c: &FileCounts) {
        self.inserts += c.ops.inserts;
        self.updates += c.ops.updates;
        self.deletes += c.ops.deletes;
        self.unchanged_markers += c.markers;
        self.last_update_time = Some(now());
    }
}

/// The checkpoint of one task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Checkpoint {
    /// File format version.
    pub(crate) version: u32,
    /// `[task] id`.
    pub(crate) task_id: String,
    /// Identifies one run (fresh start); resumes keep it.
    pub(crate) run_id: String,
    /// DMS task status.
    pub(crate) status: TaskStatus,
    /// DMS stop reason once stopped.
    pub(crate) stop_reason: Option<StopReason>,
    /// The error that failed the task, if any.
    pub(crate) last_error: Option<String>,
    /// BucketFolder as expanded for this run (reused on resume).
    pub(crate) bucket_folder: String,
    /// Task start, µs since epoch (UseTaskStartTimeForFullLoadTimestamp uses it).
    pub(crate) task_start_us: i64,
    /// Task start, RFC 3339.
    pub(crate) start_date: String,
    /// Time the task stopped.
    pub(crate) stop_date: Option<String>,
    /// Per-table statistics by `schema.table`.
    pub(crate) tables: BTreeMap<String, TableStats>,
    /// Change-capture state (full-load-and-cdc and cdc tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cdc: Option<CdcState>,
    /// The task file's output-shaping settings this run started with, by name: a resume with
    /// different ones is refused. Empty in checkpoints of releases that did not record them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) settings: BTreeMap<String, String>,
    /// The process that holds the task's state (state in S3 only; a local folder's holder is in
    /// its lock file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lease: Option<LeaseHolder>,
}

/// The process holding a task's lease, as written into the state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LeaseHolder {
    /// Host name.
    pub(crate) host: String,
    /// The kernel's boot id: with the host name, tells whether the holder ran on this machine
    /// (its pid can then be checked).
    pub(crate) boot: String,
    /// Process id.
    pub(crate) pid: u32,
    /// One id per process start, so a restarted process with the same pid is told apart.
    pub(crate) session: String,
    /// When it took the lease (RFC 3339).
    pub(crate) since: String,
    /// When it last renewed the lease (RFC 3339; S3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) renewed: Option<String>,
    /// Seconds after `renewed` at which the lease is dead (S3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ttl_seconds: Option<u64>,
}

/// Parses a checkpoint's JSON and checks its version; the error is the cause, in words.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
    let cp: Checkpoint = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if cp.version != VERSION {
        return Err(format!("version {} (expected {VERSION})", cp.version));
    }
    Ok(cp)
}

/// Where change capture stands: enough to restart with every committed change written exactly once.
///
/// Invariant: everything a series has at or before `SeriesState::written_through` is durable in
/// the store, and `resume_from` is never past the first change some series has not durably
/// written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct CdcState {
    /// Replication slot name (PostgreSQL).
    pub(crate) slot: String,
    /// Publication name (PostgreSQL).
    pub(crate) publication: String,
    /// True when this task created the slot (and publication).
    pub(crate) created_slot: bool,
    /// Phase.
    pub(crate) phase: CdcPhase,
    /// Where streaming restarts: every transaction before it is fully written.
    pub(crate) resume_from: Option<Position>,
    /// Commit time (µs since epoch) of the newest change read from the source.
    pub(crate) last_commit_us: Option<i64>,
    /// Per-series state: each table's CDC files, or the transaction files.
    pub(crate) tables: BTreeMap<StreamKey, SeriesState>,
}

impl CdcState {
    /// The state of `series`, created on first use.
    pub(crate) fn series(&mut self, series: &StreamKey) -> &mut SeriesState {
        self.tables.entry(series.clone()).or_default()
    }
}

/// Change-capture state of one file series (a table's CDC files, or the transaction files).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct SeriesState {
    /// The last change durably written to this series: a restart skips changes at or before it.
    pub(crate) written_through: Option<ChangePos>,
    /// The snapshot point the table was loaded at: changes of transactions before it are
    /// already in the LOAD files.
    pub(crate) loaded_at: Option<Position>,
    /// Stamp (`yyyyMMddHHmmssSSS`) of the newest file name used, so names keep increasing.
    pub(crate) last_stamp: Option<String>,
    /// A file being completed: recorded before it may become visible, resolved on restart by
    /// checking whether the object exists.
    pub(crate) pending: Option<PendingFile>,
    /// The transaction whose shape change (or TRUNCATE) was last counted in `Ddls`: a session
    /// that re-reads the log from an earlier position does not count it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ddl_counted_at: Option<Position>,
    /// The table is suspended (`ErrorBehavior`) since the transaction at this position: its
    /// changes are not written until it is reloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) suspended_at: Option<Position>,
}

/// What one CDC file holds, counted per operation (and unchanged-value markers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct FileCounts {
    /// Changes by operation.
    #[serde(flatten)]
    pub(crate) ops: OpCounts,
    /// Values written as the unchanged-value marker.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) markers: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Release 0.1.0 stored a transaction file's per-table counts as `[inserts, updates, deletes]`.
impl<'de> Deserialize<'de> for FileCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Named {
            #[serde(flatten)]
            ops: OpCounts,
            #[serde(default)]
            markers: u64,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Array([u64; 3]),
            Named(Named),
        }
        Ok(match Either::deserialize(d)? {
            Either::Array([inserts, updates, deletes]) => FileCounts {
                ops: OpCounts {
                    inserts,
                    updates,
                    deletes,
                },
                markers: 0,
            },
            Either::Named(n) => FileCounts {
                ops: n.ops,
                markers: n.markers,
            },
        })
    }
}

/// A CDC file whose completion may or may not have happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct PendingFile {
    /// Object key.
    pub(crate) key: String,
    /// Last change in the file.
    pub(crate) through: ChangePos,
    /// What the file holds (a table's file).
    #[serde(flatten)]
    pub(crate) counts: FileCounts,
    /// Transaction files: what they hold per table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) per_table: BTreeMap<String, FileCounts>,
}

impl Checkpoint {
    /// A fresh run.
    pub(crate) fn new(
        task_id: &str,
        bucket_folder: String,
        start: chrono::DateTime<chrono::Utc>,
    ) -> Checkpoint {
        Checkpoint {
            version: VERSION,
            task_id: task_id.to_string(),
            run_id: uuid::Uuid::new_v4().to_string(),
            status: TaskStatus::Running,
            stop_reason: None,
            last_error: None,
            bucket_folder,
            task_start_us: start.timestamp_micros(),
            start_date: start.to_rfc3339(),
            stop_date: None,
            tables: BTreeMap::new(),
            cdc: None,
            settings: BTreeMap::new(),
            lease: None,
        }
    }

    /// True when this run ended for good (a new `run` starts fresh rather than resuming): a
    /// completed full-load-only task. A stopped CDC task always resumes.
    pub(crate) fn finished(&self) -> bool {
        self.status == TaskStatus::Stopped
            && self.stop_reason == Some(StopReason::FullLoadOnlyFinished)
            // Tables in error are loaded by the next run, which resumes this one.
            && !self.tables.values().any(|t| t.table_state == TableState::Error)
    }

    /// The CDC state, created on first use.
    pub(crate) fn cdc_mut(&mut self) -> &mut CdcState {
        self.cdc.get_or_insert_with(CdcState::default)
    }

    /// Adds one durable file's changes to the statistics of `table` (created for tables that
    /// only ever had changes).
    pub(crate) fn add_changes(&mut self, table: &str, counts: &FileCounts) {
        self.table_mut(table).add_changes(counts);
    }

    /// The statistics of `table` (`schema.table`), created for tables that only ever had
    /// changes.
    pub(crate) fn table_mut(&mut self, table: &str) -> &mut TableStats {
        let (schema, name) = table.split_once('.').unwrap_or(("", table));
        self.tables
            .entry(table.to_string())
            .or_insert_with(|| TableStats {
                schema_name: schema.to_string(),
                table_name: name.to_string(),
                table_state: TableState::Completed,
                ..TableStats::default()
            })
    }

    /// Tables whose changes are not written (suspended by `ErrorBehavior`), by `schema.table`.
    pub(crate) fn suspended(&self) -> Vec<String> {
        self.cdc
            .iter()
            .flat_map(|c| c.tables.iter())
            .filter(|(_, s)| s.suspended_at.is_some())
            .filter_map(|(k, _)| match k {
                StreamKey::Table(t) => Some(t.clone()),
                StreamKey::Transactions => None,
            })
            .collect()
    }
}

/// Current time as RFC 3339 (UTC), the form of every time in the checkpoint.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where a task's checkpoint lives.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// `<state_dir>/<task_id>/checkpoint.json`.
    pub(crate) fn new(state_dir: &Path, task_id: &str) -> CheckpointStore {
        CheckpointStore {
            path: state_dir.join(task_id).join("checkpoint.json"),
        }
    }

    /// Path of the checkpoint file.
    pub(crate) fn path(&self) -> &Path {
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
    pub(crate) fn load(&self) -> Result<Option<Checkpoint>> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error("read", e)),
        };
        decode(&text).map(Some).map_err(|e| self.error("use", e))
    }

    /// Writes the checkpoint durably and atomically.
    pub(crate) fn save(&self, cp: &Checkpoint) -> Result<()> {
        let dir = self.path.parent().expect("checkpoint path has a folder");
        std::fs::create_dir_all(dir).map_err(|e| self.error("create folder for", e))?;
        let tmp = dir.join(format!(".checkpoint.json.tmp-{}", std::process::id()));
        let json = serde_json::to_vec_pretty(cp).map_err(|e| self.error("encode", e))?;
        // A failed write (a full disk) leaves no temporary file behind.
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&json).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.error("write", e));
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.error("sync folder of", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{BinlogPos, Lsn};

    /// A write that fails leaves neither a temporary file nor a changed checkpoint.
    #[test]
    fn a_failed_save_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "t1");
        // The checkpoint's name taken by a non-empty folder: the final rename fails.
        std::fs::create_dir_all(store.path.join("x")).unwrap();
        let cp = Checkpoint::new("t1", "raw".into(), chrono::Utc::now());
        assert!(store.save(&cp).is_err());
        let folder = store.path.parent().unwrap();
        let left: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [store.path.file_name().unwrap().to_string_lossy()],
            "{left:?}"
        );
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "t1");
        assert_eq!(store.load().unwrap(), None);
        let mut cp = Checkpoint::new("t1", "raw".into(), chrono::Utc::now());
        cp.tables.insert(
            "public.a".into(),
            TableStats {
                table_state: TableState::Completed,
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

    /// Checkpoints written by release 0.1.0 (a stopped PostgreSQL task with PreserveTransactions
    /// and a MySQL task, each with a pending file added in 0.1.0's shape) load into the typed
    /// state and save back to the same JSON values.
    #[test]
    fn release_0_1_0_checkpoints_load() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let pg_text =
            std::fs::read_to_string(fixtures.join("checkpoint-0.1.0-postgres.json")).unwrap();
        let pg: Checkpoint = serde_json::from_str(&pg_text).unwrap();
        assert_eq!(pg.status, TaskStatus::Stopped);
        assert_eq!(pg.stop_reason, Some(StopReason::Normal));
        assert_eq!(pg.tables["c.a"].table_state, TableState::Completed);
        assert_eq!(pg.tables["c.a"].deletes, 1);
        let cdc = pg.cdc.as_ref().unwrap();
        assert_eq!(cdc.phase, CdcPhase::Replication);
        assert_eq!(cdc.resume_from, Some(Position::Postgres(Lsn(0x192A078))));
        let txn = &cdc.tables[&StreamKey::Transactions];
        let pending = txn.pending.as_ref().unwrap();
        assert_eq!(pending.per_table["c.b"].ops.updates, 1);
        assert_eq!(pending.through.seq, 2);
        assert_eq!(
            cdc.tables[&StreamKey::Table("c.a".into())].loaded_at,
            Some(Position::Postgres(Lsn(0x1929EE8)))
        );

        let my_text =
            std::fs::read_to_string(fixtures.join("checkpoint-0.1.0-mysql.json")).unwrap();
        let my: Checkpoint = serde_json::from_str(&my_text).unwrap();
        let cdc = my.cdc.as_ref().unwrap();
        let table = &cdc.tables[&StreamKey::Table("oldcp.a".into())];
        assert_eq!(
            table.written_through.as_ref().unwrap().commit,
            Position::MySql(BinlogPos {
                file: "mysql-bin.000001".into(),
                offset: 1562
            })
        );
        assert_eq!(table.pending.as_ref().unwrap().counts.ops.inserts, 1);

        // Saving changes nothing a 0.1.0 reader relies on, except counts becoming named.
        for (text, cp) in [(pg_text, pg), (my_text, my)] {
            let old: serde_json::Value = serde_json::from_str(&text).unwrap();
            let new = serde_json::to_value(&cp).unwrap();
            let strip = |mut v: serde_json::Value| {
                for (_, t) in v["tables"].as_object_mut().unwrap() {
                    t.as_object_mut().unwrap().remove("UnchangedMarkers");
                }
                if let Some(series) = v["cdc"]["tables"].as_object_mut() {
                    for (_, s) in series {
                        if let Some(p) = s["pending"].as_object_mut() {
                            p.remove("per_table");
                        }
                    }
                }
                v
            };
            assert_eq!(strip(new), strip(old));
        }
    }
}
