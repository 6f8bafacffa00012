//! Task-level DMS settings (`[task.settings]`) and the task's stop position.

use super::errors::{ErrorBehavior, ERROR_BEHAVIOR_SETTINGS};
use super::settings::SettingsBag;
use crate::error::{Error, Result};

/// Default `FullLoadSettings.MaxFullLoadSubTasks` (tables loaded in parallel).
pub(crate) const DEFAULT_MAX_FULL_LOAD_SUB_TASKS: u64 = 8;
/// Largest `MaxFullLoadSubTasks` DMS allows.
const MAX_FULL_LOAD_SUB_TASKS: u64 = 49;

/// DMS `FullLoadSettings.TargetTablePrepMode` on S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrepMode {
    /// DROP_AND_CREATE (our default): delete the table's objects before loading it.
    DropAndCreate,
    /// TRUNCATE_BEFORE_LOAD: the same on S3 (there is no table metadata to keep).
    TruncateBeforeLoad,
    /// DO_NOTHING: keep existing objects; LOAD numbering continues after the highest existing file.
    DoNothing,
}

/// Task-level DMS settings (`[task.settings]`), units converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskSettings {
    /// `FullLoadSettings.TargetTablePrepMode`.
    pub(crate) prep_mode: PrepMode,
    /// `FullLoadSettings.MaxFullLoadSubTasks`.
    pub(crate) max_sub_tasks: usize,
    /// `TargetMetadata.SupportLobs`: false drops LOB columns from the output.
    pub(crate) support_lobs: bool,
    /// `TargetMetadata.LobMaxSize` in bytes; None = no truncation (our default, unlike DMS's 32 KB).
    pub(crate) lob_max_bytes: Option<usize>,
    /// `ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated` (default true, as in DMS):
    /// a source TRUNCATE deletes the table's objects.
    pub(crate) handle_truncate: bool,
    /// `ErrorBehavior`: what a failing table or record does.
    pub(crate) errors: ErrorBehavior,
}

/// Every name `[task.settings]` accepts.
const TASK_SETTINGS: &[&str] = &[
    "FullLoadSettings.TargetTablePrepMode",
    "FullLoadSettings.MaxFullLoadSubTasks",
    "FullLoadSettings.CommitRate",
    "FullLoadSettings.TransactionConsistencyTimeout",
    "TargetMetadata.SupportLobs",
    "TargetMetadata.LimitedSizeLobMode",
    "TargetMetadata.LobMaxSize",
    "TargetMetadata.FullLobMode",
    "TargetMetadata.BatchApplyEnabled",
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated",
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped",
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered",
];

impl TaskSettings {
    /// Parses `[task.settings]`.
    pub(super) fn parse(mut bag: SettingsBag) -> Result<TaskSettings> {
        let prep_mode = match bag.choice(
            "FullLoadSettings.TargetTablePrepMode",
            "drop-and-create",
            &["drop-and-create", "truncate-before-load", "do-nothing"],
        )? {
            "truncate-before-load" => PrepMode::TruncateBeforeLoad,
            "do-nothing" => PrepMode::DoNothing,
            _ => PrepMode::DropAndCreate,
        };
        let max_sub_tasks = bag.int(
            "FullLoadSettings.MaxFullLoadSubTasks",
            DEFAULT_MAX_FULL_LOAD_SUB_TASKS,
            1,
            MAX_FULL_LOAD_SUB_TASKS,
            "tables",
        )? as usize;
        // Accepted for paste-compatibility; they tune DMS internals we do not have.
        bag.int("FullLoadSettings.CommitRate", 10_000, 1, 50_000, "rows")?;
        bag.int(
            "FullLoadSettings.TransactionConsistencyTimeout",
            600,
            0,
            86_400,
            "seconds",
        )?;
        if bag.bool("TargetMetadata.FullLobMode", false)? {
            return Err(Error::config(
                "TargetMetadata.FullLobMode=true is not supported with an S3 target (as in DMS)",
                "remove it; LOBs are written whole unless TargetMetadata.LobMaxSize is set",
            ));
        }
        if bag.bool("TargetMetadata.BatchApplyEnabled", false)? {
            return Err(Error::config(
                "TargetMetadata.BatchApplyEnabled=true is not supported with an S3 target (as in DMS)",
                "remove it",
            ));
        }
        let limited = bag.bool("TargetMetadata.LimitedSizeLobMode", true)?;
        let lob_kb = bag.take("TargetMetadata.LobMaxSize");
        let lob_max_bytes = match lob_kb {
            Some(v) if limited => {
                let kb = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bag.invalid("TargetMetadata.LobMaxSize", &v, "a positive number of KB")
                })?;
                Some(kb * 1024)
            }
            _ => None,
        };
        let support_lobs = bag.bool("TargetMetadata.SupportLobs", true)?;
        let handle_truncate = bag.bool(
            "ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated",
            true,
        )?;
        // Accepted for paste-compatibility: a dropped table is not captured (as DMS on S3), and
        // ALTER TABLE always changes the output shape (a new file starts with the new columns).
        bag.bool(
            "ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped",
            true,
        )?;
        bag.bool(
            "ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered",
            true,
        )?;
        let errors = ErrorBehavior::parse(&mut bag)?;
        let accepted: Vec<&str> = TASK_SETTINGS
            .iter()
            .chain(ERROR_BEHAVIOR_SETTINGS)
            .copied()
            .collect();
        bag.finish(&accepted)?;
        Ok(TaskSettings {
            prep_mode,
            max_sub_tasks,
            support_lobs,
            lob_max_bytes,
            handle_truncate,
            errors,
        })
    }
}

/// `CdcStopPosition`: where a CDC task stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CdcStop {
    /// `server_time:…`: our clock reaches this time (µs since epoch).
    ServerTime(i64),
    /// `commit_time:…`: the first transaction committed after this time is not written.
    CommitTime(i64),
}

impl CdcStop {
    /// Parses `server_time:2026-11-22T10:00:00` / `commit_time:…` (UTC, optional `.ffffff`).
    pub(crate) fn parse(s: &str) -> Result<CdcStop> {
        let bad = || {
            Error::config(
                format!("[task] cdc_stop_position {s:?} is not valid"),
                "use server_time:YYYY-MM-DDTHH:MM:SS or commit_time:YYYY-MM-DDTHH:MM:SS (UTC)",
            )
        };
        let (kind, time) = s.split_once(':').ok_or_else(bad)?;
        // Fractional seconds are our extension (DMS takes whole seconds).
        let t = chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S%.f")
            .map_err(|_| bad())?
            .and_utc()
            .timestamp_micros();
        match kind {
            "server_time" => Ok(CdcStop::ServerTime(t)),
            "commit_time" => Ok(CdcStop::CommitTime(t)),
            _ => Err(bad()),
        }
    }
}
