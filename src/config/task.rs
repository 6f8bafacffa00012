//! Task-level DMS settings (`[task.settings]`) and the task's stop position.

use super::dms_task::{self, Unapplied};
use super::errors::ErrorBehavior;
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

/// Default `TargetMetadata.LobMaxSize`, KB, when `LimitedSizeLobMode` is on without a size.
pub(crate) const DEFAULT_LOB_MAX_SIZE_KB: usize = 32;

/// Where a `full-load-and-cdc` task stops by itself after its full load (DMS's
/// `StopTaskCachedChangesNotApplied` / `StopTaskCachedChangesApplied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopAfterLoad {
    /// Right after the full load, before any change is written (`STOPPED_AFTER_FULL_LOAD`).
    CachedChangesNotApplied,
    /// Once the changes made while the tables loaded are written (`STOPPED_AFTER_CACHED_EVENTS`).
    CachedChangesApplied,
}

/// Task-level DMS settings (`[task.settings]` or the task-settings JSON), units converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskSettings {
    /// `FullLoadSettings.TargetTablePrepMode`.
    pub(crate) prep_mode: PrepMode,
    /// `FullLoadSettings.MaxFullLoadSubTasks`.
    pub(crate) max_sub_tasks: usize,
    /// `TargetMetadata.SupportLobs`: false drops LOB columns from the output.
    pub(crate) support_lobs: bool,
    /// `TargetMetadata.LobMaxSize` in bytes when `LimitedSizeLobMode` applies; None = no
    /// truncation (our default when neither key is given, unlike DMS's 32 KB).
    pub(crate) lob_max_bytes: Option<usize>,
    /// `ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated` (default true, as in DMS):
    /// a source TRUNCATE deletes the table's objects.
    pub(crate) handle_truncate: bool,
    /// `ErrorBehavior`: what a failing table or record does.
    pub(crate) errors: ErrorBehavior,
    /// `TargetMetadata.TargetSchema` (None when absent or empty).
    pub(crate) target_schema: Option<String>,
    /// `FullLoadSettings.StopTaskCachedChanges*`.
    pub(crate) stop_after_load: Option<StopAfterLoad>,
    /// `Logging.LogComponents` as `tracing` filter directives.
    pub(crate) log_directives: Vec<String>,
    /// Keys the task sets that are accepted and not applied, with why (`validate` lists them).
    pub(crate) unapplied: Vec<Unapplied>,
}

impl TaskSettings {
    /// Parses the task settings, wherever they were written.
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
        let limited_given = bag.has("TargetMetadata.LimitedSizeLobMode");
        let limited = bag.bool("TargetMetadata.LimitedSizeLobMode", true)?;
        let lob_kb = bag.take("TargetMetadata.LobMaxSize");
        let lob_max_bytes = match lob_kb {
            Some(v) if limited => {
                let kb = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bag.invalid("TargetMetadata.LobMaxSize", &v, "a positive number of KB")
                })?;
                Some(kb * 1024)
            }
            // A document that turns limited mode on without a size gets DMS's default size.
            None if limited && limited_given => Some(DEFAULT_LOB_MAX_SIZE_KB * 1024),
            _ => None,
        };
        let support_lobs = bag.bool("TargetMetadata.SupportLobs", true)?;
        let target_schema = bag
            .string("TargetMetadata.TargetSchema")
            .filter(|s| !s.is_empty());
        let handle_truncate = bag.bool(
            "ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated",
            true,
        )?;
        let not_applied = bag.bool("FullLoadSettings.StopTaskCachedChangesNotApplied", false)?;
        let applied = bag.bool("FullLoadSettings.StopTaskCachedChangesApplied", false)?;
        let stop_after_load = match (not_applied, applied) {
            (true, true) => {
                return Err(Error::config(
                    "FullLoadSettings.StopTaskCachedChangesNotApplied and StopTaskCachedChangesApplied are both true",
                    "keep one: NotApplied stops before the changes made during the load, Applied after them",
                ))
            }
            (true, false) => Some(StopAfterLoad::CachedChangesNotApplied),
            (false, true) => Some(StopAfterLoad::CachedChangesApplied),
            (false, false) => None,
        };
        let errors = ErrorBehavior::parse(&mut bag)?;
        let log_directives = dms_task::log_directives(&mut bag)?;
        let unapplied = dms_task::check_rest(bag)?;
        Ok(TaskSettings {
            prep_mode,
            max_sub_tasks,
            support_lobs,
            lob_max_bytes,
            handle_truncate,
            errors,
            target_schema,
            stop_after_load,
            log_directives,
            unapplied,
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
