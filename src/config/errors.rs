//! DMS `ErrorBehavior`: what a failing table or record does to the task.

use super::settings::SettingsBag;
use crate::error::Result;

/// What happens when a table, or one of its records, fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The record is skipped, the error logged and counted (`LOG_ERROR`).
    LogError,
    /// The record is skipped and counted (`IGNORE_RECORD`).
    IgnoreRecord,
    /// The table stops — its load or its changes — and the others go on (`SUSPEND_TABLE`).
    SuspendTable,
    /// The task stops (`STOP_TASK`).
    StopTask,
}

impl Policy {
    /// True when the record is skipped and the table goes on.
    pub(crate) fn skips_record(self) -> bool {
        matches!(self, Policy::LogError | Policy::IgnoreRecord)
    }
}

/// DMS's names of the policies, in [`Policy`] order.
const POLICIES: [&str; 4] = ["LOG_ERROR", "IGNORE_RECORD", "SUSPEND_TABLE", "STOP_TASK"];

/// `ErrorBehavior.DataErrorPolicy` default. DMS's is `LOG_ERROR`, which drops the record with
/// a log line; ours suspends the table so no row is lost without the operator deciding (an
/// exported DMS task states `LOG_ERROR` explicitly and gets DMS's behaviour).
const DEFAULT_DATA_POLICY: &str = "SUSPEND_TABLE";

/// The `ErrorBehavior` settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorBehavior {
    /// `TableErrorPolicy`: a table that fails as a whole is suspended (default) or stops the task.
    pub(crate) table: Policy,
    /// `DataErrorPolicy`: a record whose value cannot be written.
    pub(crate) data: Policy,
    /// `DataErrorEscalationCount` (with `DataErrorEscalationPolicy`): after this many skipped
    /// records in one table, the escalation policy applies (None: never).
    pub(crate) data_escalation: Option<(u64, Policy)>,
    /// `TableErrorEscalationCount`: a table that failed this many times (over runs) stops the
    /// task (`TableErrorEscalationPolicy` is always `STOP_TASK`, as in DMS). None: never.
    pub(crate) table_escalation: Option<u64>,
    /// `FailOnNoTablesCaptured`: a task whose mappings select no table fails (default true).
    pub(crate) fail_on_no_tables: bool,
}

impl Default for ErrorBehavior {
    fn default() -> Self {
        ErrorBehavior {
            table: Policy::SuspendTable,
            data: Policy::SuspendTable,
            data_escalation: None,
            table_escalation: None,
            fail_on_no_tables: true,
        }
    }
}

impl ErrorBehavior {
    /// Reads the `ErrorBehavior.*` keys of `bag`.
    pub(super) fn parse(bag: &mut SettingsBag) -> Result<ErrorBehavior> {
        let mut policy = |name: &str, default: &'static str, allowed: &[&'static str]| {
            bag.choice(name, default, allowed).map(|p| {
                match POLICIES.iter().position(|n| *n == p) {
                    Some(0) => Policy::LogError,
                    Some(1) => Policy::IgnoreRecord,
                    Some(2) => Policy::SuspendTable,
                    _ => Policy::StopTask,
                }
            })
        };
        let table = policy(
            "ErrorBehavior.TableErrorPolicy",
            "SUSPEND_TABLE",
            &POLICIES[2..],
        )?;
        let data = policy(
            "ErrorBehavior.DataErrorPolicy",
            DEFAULT_DATA_POLICY,
            &POLICIES,
        )?;
        // No value is ever truncated on the way to S3 (LOBs are cut by LobMaxSize, which is the
        // configured behaviour, counted, not an error): accepted, nothing to apply it to.
        policy(
            "ErrorBehavior.DataTruncationErrorPolicy",
            "LOG_ERROR",
            &POLICIES,
        )?;
        let data_escalation_policy = policy(
            "ErrorBehavior.DataErrorEscalationPolicy",
            "SUSPEND_TABLE",
            &POLICIES[2..],
        )?;
        policy(
            "ErrorBehavior.TableErrorEscalationPolicy",
            "STOP_TASK",
            &POLICIES[3..],
        )?;
        let count = |bag: &mut SettingsBag, name: &str| {
            bag.int(name, 0, 0, u64::from(u32::MAX), "errors")
                .map(|n| (n > 0).then_some(n))
        };
        let data_escalation = count(bag, "ErrorBehavior.DataErrorEscalationCount")?
            .map(|n| (n, data_escalation_policy));
        let table_escalation = count(bag, "ErrorBehavior.TableErrorEscalationCount")?;
        let fail_on_no_tables = bag.bool("ErrorBehavior.FailOnNoTablesCaptured", true)?;
        Ok(ErrorBehavior {
            table,
            data,
            data_escalation,
            table_escalation,
            fail_on_no_tables,
        })
    }
}
