//! DMS's `ReplicationTaskSettings` document: every key DMS documents, classified once.
//!
//! A task exported with `aws dms describe-replication-tasks` carries every key of every section.
//! Each key is here with what Tributary does with it: read by [`super::TaskSettings`]
//! ([`Class::Implemented`]), accepted because it changes nothing an S3 target or this
//! architecture has ([`Class::Irrelevant`], listed by `validate`), or accepted only with the
//! values that change nothing and refused otherwise ([`Class::Only`]). Nothing that changes the
//! output is silently ignored. The README's "Task settings" table is rendered from this one
//! (`tributary settings`), and a test keeps them equal.

use super::settings::SettingsBag;
use crate::error::{Error, Result};

/// What Tributary does with one task-settings key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Read and applied; the text says how.
    Implemented(&'static str),
    /// Accepted and not applied, for the reason given; `validate` lists the keys a task sets.
    Irrelevant(&'static str),
    /// Accepted with one of these values (compared case-insensitively), which change nothing;
    /// any other value is refused with the reason.
    Only(&'static [&'static str], &'static str),
}

/// One key (`Section.Key`; `Section.*` covers every key under a section).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// Dotted name as in the JSON document.
    pub(crate) name: &'static str,
    /// What is done with it.
    pub(crate) class: Class,
}

/// Shorthand constructors, to keep the table readable.
const fn imp(name: &'static str, how: &'static str) -> Key {
    Key {
        name,
        class: Class::Implemented(how),
    }
}
const fn irr(name: &'static str, why: &'static str) -> Key {
    Key {
        name,
        class: Class::Irrelevant(why),
    }
}
const fn only(name: &'static str, values: &'static [&'static str], why: &'static str) -> Key {
    Key {
        name,
        class: Class::Only(values, why),
    }
}

const FULL_LOB: &str = "full LOB mode only, which DMS does not support with an S3 target";
const LOAD_THREADS: &str = "per-table load threads of DynamoDB, Kinesis, Kafka, OpenSearch and \
                            Redshift targets; an S3 load is parallel through MaxFullLoadSubTasks \
                            and parallel-load rules";
const APPLY_THREADS: &str = "parallel apply of Kinesis, Kafka, OpenSearch and DynamoDB targets";
const CONTROL: &str = "control tables live in a database target; `tributary status` and the \
                       state folder hold the same facts";
const STREAM_BUFFERS: &str = "DMS's internal stream buffers; Tributary's memory is bounded by \
                              design (README: Memory)";
const TUNING: &str = "transactional or batch apply to a database target; S3 files are cut by \
                      the endpoint's CdcMaxBatchInterval, CdcMinFileSize and MaxFileSize, as in \
                      DMS";
const APPLY_CONFLICT: &str = "apply conflicts exist only on database targets; S3 appends every \
                              change";
const RECOVERABLE: &str = "lost connections are retried by Tributary's own reconnect policy \
                           (README: Failure handling), which never gives up on what it can survive";
const VALIDATION: &str = "data validation is not performed (Tributary's tests replay the files \
                          against the source); the files are the same with or without it";
const CLOUDWATCH: &str = "DMS uploads its log to CloudWatch; Tributary logs to stderr, which a \
                          container's log driver collects";
const LOG_COMPONENT: &str = "sets the log level of the Tributary modules doing this component's \
                             work (README: Logging); RUST-style TRIBUTARY_LOG overrides it";

/// Every key of DMS's task-settings document, in the document's order.
pub(crate) const KEYS: &[Key] = &[
    imp(
        "TargetMetadata.TargetSchema",
        "names every table's schema folder; schema transformation rules (matched by source \
         schema) still apply to it",
    ),
    imp(
        "TargetMetadata.SupportLobs",
        "false drops LOB columns from the files",
    ),
    only(
        "TargetMetadata.FullLobMode",
        &["false"],
        "DMS does not support full LOB mode with an S3 target; LOBs are written whole unless \
         LimitedSizeLobMode cuts them",
    ),
    irr("TargetMetadata.LobChunkSize", FULL_LOB),
    imp(
        "TargetMetadata.LimitedSizeLobMode",
        "true cuts LOB values at LobMaxSize (32 KB when LobMaxSize is absent, as in DMS)",
    ),
    imp("TargetMetadata.LobMaxSize", "KB; LOB values are cut there"),
    irr("TargetMetadata.InlineLobMaxSize", FULL_LOB),
    irr(
        "TargetMetadata.LoadMaxFileSize",
        "sizes the CSV files DMS bulk-loads into database targets; S3 files are sized by the \
         endpoint's MaxFileSize",
    ),
    irr("TargetMetadata.ParallelLoadThreads", LOAD_THREADS),
    irr("TargetMetadata.ParallelLoadBufferSize", LOAD_THREADS),
    irr("TargetMetadata.ParallelLoadQueuesPerThread", LOAD_THREADS),
    irr("TargetMetadata.ParallelApplyThreads", APPLY_THREADS),
    irr("TargetMetadata.ParallelApplyBufferSize", APPLY_THREADS),
    irr("TargetMetadata.ParallelApplyQueuesPerThread", APPLY_THREADS),
    only(
        "TargetMetadata.BatchApplyEnabled",
        &["false"],
        "DMS does not support batch apply with an S3 target (it can lose changes)",
    ),
    irr(
        "TargetMetadata.TaskRecoveryTableEnabled",
        "creates awsdms_txn_state in a database target",
    ),
    imp(
        "FullLoadSettings.TargetTablePrepMode",
        "DROP_AND_CREATE and TRUNCATE_BEFORE_LOAD delete the table's objects before its load; \
         DO_NOTHING keeps them and continues the LOAD numbering",
    ),
    irr(
        "FullLoadSettings.CreatePkAfterFullLoad",
        "S3 objects have no primary key to create",
    ),
    imp(
        "FullLoadSettings.StopTaskCachedChangesApplied",
        "full-load-and-cdc stops once the changes made during the full load are written",
    ),
    imp(
        "FullLoadSettings.StopTaskCachedChangesNotApplied",
        "full-load-and-cdc stops after the full load; the next run writes the changes",
    ),
    imp(
        "FullLoadSettings.MaxFullLoadSubTasks",
        "tables and segments loaded at once",
    ),
    irr(
        "FullLoadSettings.TransactionConsistencyTimeout",
        "the full load reads one consistent snapshot; there is nothing to wait for",
    ),
    irr(
        "FullLoadSettings.CommitRate",
        "rows per commit to a database target; S3 files are sized by MaxFileSize",
    ),
    only(
        "TTSettings.EnableTT",
        &["false"],
        "Time Travel is for Oracle sources",
    ),
    irr(
        "TTSettings.*",
        "Time Travel settings, used only with EnableTT (Oracle sources)",
    ),
    irr("Logging.EnableLogging", CLOUDWATCH),
    irr("Logging.EnableLogContext", CLOUDWATCH),
    irr("Logging.CloudWatchLogGroup", CLOUDWATCH),
    irr("Logging.CloudWatchLogStream", CLOUDWATCH),
    irr("Logging.LogConfiguration.*", CLOUDWATCH),
    imp("Logging.LogComponents.*", LOG_COMPONENT),
    irr("ControlTablesSettings.*", CONTROL),
    irr("StreamBufferSettings.*", STREAM_BUFFERS),
    irr(
        "ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped",
        "a dropped table's files stay (a data lake keeps history) and the table is no longer \
         captured, whatever the value; DMS does not document what it deletes on S3",
    ),
    imp(
        "ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated",
        "true deletes the table's objects when the source truncates it",
    ),
    only(
        "ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered",
        &["true"],
        "false would keep writing the old columns and drop new columns' values; files follow \
         the table's shape (a new file starts with the new columns)",
    ),
    imp(
        "ErrorBehavior.DataErrorPolicy",
        "a record whose value cannot be written (README: Errors)",
    ),
    irr(
        "ErrorBehavior.DataTruncationErrorPolicy",
        "no value is truncated on the way to S3 except LOBs at LobMaxSize, which is configured, \
         not an error",
    ),
    irr(
        "ErrorBehavior.DataMaskingErrorPolicy",
        "data-masking transformations are refused by the mapping parser",
    ),
    imp(
        "ErrorBehavior.DataErrorEscalationPolicy",
        "applies after DataErrorEscalationCount skipped records",
    ),
    imp(
        "ErrorBehavior.DataErrorEscalationCount",
        "skipped records of one table before DataErrorEscalationPolicy",
    ),
    imp(
        "ErrorBehavior.TableErrorPolicy",
        "SUSPEND_TABLE or STOP_TASK when a table fails",
    ),
    imp(
        "ErrorBehavior.TableErrorEscalationPolicy",
        "STOP_TASK after TableErrorEscalationCount",
    ),
    imp(
        "ErrorBehavior.TableErrorEscalationCount",
        "failures of one table, over runs, before the task stops",
    ),
    irr("ErrorBehavior.RecoverableErrorCount", RECOVERABLE),
    irr("ErrorBehavior.RecoverableErrorInterval", RECOVERABLE),
    irr("ErrorBehavior.RecoverableErrorThrottling", RECOVERABLE),
    irr("ErrorBehavior.RecoverableErrorThrottlingMax", RECOVERABLE),
    irr(
        "ErrorBehavior.RecoverableErrorStopRetryAfterThrottlingMax",
        RECOVERABLE,
    ),
    irr("ErrorBehavior.ApplyErrorDeletePolicy", APPLY_CONFLICT),
    irr("ErrorBehavior.ApplyErrorInsertPolicy", APPLY_CONFLICT),
    irr("ErrorBehavior.ApplyErrorUpdatePolicy", APPLY_CONFLICT),
    irr("ErrorBehavior.ApplyErrorEscalationPolicy", APPLY_CONFLICT),
    irr("ErrorBehavior.ApplyErrorEscalationCount", APPLY_CONFLICT),
    irr(
        "ErrorBehavior.ApplyErrorFailOnTruncationDdl",
        APPLY_CONFLICT,
    ),
    irr("ErrorBehavior.FullLoadIgnoreConflicts", APPLY_CONFLICT),
    irr(
        "ErrorBehavior.FailOnTransactionConsistencyBreached",
        "the full load reads one consistent snapshot, so consistency cannot be breached",
    ),
    imp(
        "ErrorBehavior.FailOnNoTablesCaptured",
        "a task whose mappings select no table fails",
    ),
    irr(
        "ErrorBehavior.EventErrorPolicy",
        "event errors of streaming targets (Kinesis, Kafka)",
    ),
    irr("ChangeProcessingTuning.*", TUNING),
    only(
        "ValidationSettings.ValidationOnly",
        &["false"],
        "a validation-only task writes no files, and Tributary does not validate",
    ),
    irr("ValidationSettings.*", VALIDATION),
    only(
        "CharacterSetSettings.*",
        &[],
        "character replacement would change values; it is not implemented",
    ),
    irr(
        "BeforeImageSettings.*",
        "before-image records of Kinesis, Kafka and OpenSearch targets; on S3 use the \
         add-before-image-columns transformation",
    ),
    irr(
        "LoopbackPreventionSettings.*",
        "bidirectional replication between two databases",
    ),
    only(
        "PostProcessingRules",
        &[],
        "undocumented by DMS; put post-processing rules in the table mappings",
    ),
    irr(
        "FailTaskWhenCleanTaskResourceFailed",
        "DMS's clean-up of its replication instance resources",
    ),
];

/// DMS's log components, by their `Id`, each with the Tributary modules that do its work
/// (empty: nothing of ours corresponds; the severity is accepted).
pub(crate) const LOG_COMPONENTS: &[(&str, &[&str])] = &[
    ("TRANSFORMATION", &["tributary::mapping"]),
    (
        "SOURCE_UNLOAD",
        &["tributary::source", "tributary::task::full_load"],
    ),
    ("IO", &["tributary::store"]),
    (
        "TARGET_LOAD",
        &["tributary::writer::load", "tributary::task::full_load"],
    ),
    (
        "PERFORMANCE",
        &["tributary::progress", "tributary::task::metrics"],
    ),
    ("SOURCE_CAPTURE", &["tributary::source"]),
    ("SORTER", &[]),
    ("REST_SERVER", &["tributary::task::metrics"]),
    ("VALIDATOR_EXT", &[]),
    (
        "TARGET_APPLY",
        &[
            "tributary::writer::cdc",
            "tributary::task::apply",
            "tributary::task::commit",
        ],
    ),
    ("TASK_MANAGER", &["tributary::task"]),
    ("TABLES_MANAGER", &["tributary::task"]),
    ("METADATA_MANAGER", &["tributary::source"]),
    ("FILE_FACTORY", &["tributary::store"]),
    ("COMMON", &[]),
    ("ADDONS", &[]),
    ("DATA_STRUCTURE", &[]),
    ("COMMUNICATION", &[]),
    ("FILE_TRANSFER", &["tributary::store"]),
];

/// DMS's severities, with the `tracing` level each maps to (None: leave the default).
const SEVERITIES: &[(&str, Option<&str>)] = &[
    ("LOGGER_SEVERITY_DEFAULT", None),
    ("LOGGER_SEVERITY_ERROR", Some("error")),
    ("LOGGER_SEVERITY_WARNING", Some("warn")),
    ("LOGGER_SEVERITY_INFO", Some("info")),
    ("LOGGER_SEVERITY_DEBUG", Some("debug")),
    ("LOGGER_SEVERITY_DETAILED_DEBUG", Some("trace")),
];

/// The class of `name` (a dotted key): an exact entry first, then the longest `Section.*`.
pub(crate) fn classify(name: &str) -> Option<Class> {
    let lower = name.to_ascii_lowercase();
    if let Some(k) = KEYS.iter().find(|k| k.name.eq_ignore_ascii_case(name)) {
        return Some(k.class);
    }
    KEYS.iter()
        .filter_map(|k| {
            let prefix = k.name.strip_suffix('*')?.to_ascii_lowercase();
            lower
                .starts_with(&prefix)
                .then_some((prefix.len(), k.class))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, class)| class)
}

/// A key the task sets that is accepted and not applied, with why (for `validate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unapplied {
    /// Dotted key as written.
    pub(crate) name: String,
    /// Why it changes nothing.
    pub(crate) reason: &'static str,
}

/// Checks every key left in `bag` after the implemented ones were read: irrelevant keys are
/// returned for `validate`, `Only` keys are checked, anything else is unknown.
pub(crate) fn check_rest(bag: SettingsBag) -> Result<Vec<Unapplied>> {
    let mut unapplied = Vec::new();
    let mut unknown = SettingsBag::new("[task.settings]");
    for (name, value) in bag.into_entries() {
        match classify(&name) {
            Some(Class::Irrelevant(reason)) => unapplied.push(Unapplied { name, reason }),
            Some(Class::Only(values, reason)) => {
                if !values.iter().any(|v| v.eq_ignore_ascii_case(value.trim())) {
                    return Err(Error::config(
                        format!("task setting {name} = {value} is not supported: {reason}"),
                        match values.first() {
                            Some(v) if !v.is_empty() => format!("set {name} to {v} or remove it"),
                            _ => format!("remove {name}"),
                        },
                    ));
                }
            }
            // Implemented keys were read already; one left here is a component name we do not
            // know, or a key under an implemented section that DMS does not have.
            Some(Class::Implemented(_)) | None => unknown.insert(&name, value)?,
        }
    }
    let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    unknown.finish(&names)?;
    Ok(unapplied)
}

/// Reads `Logging.LogComponents.<Id>` keys into `tracing` filter directives
/// (`tributary::source=debug`), most specific last so they win.
pub(crate) fn log_directives(bag: &mut SettingsBag) -> Result<Vec<String>> {
    let mut directives = Vec::new();
    for (id, modules) in LOG_COMPONENTS {
        let name = format!("Logging.LogComponents.{id}");
        let Some(value) = bag.take(&name) else {
            continue;
        };
        let level = SEVERITIES
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| {
                let all: Vec<&str> = SEVERITIES.iter().map(|(s, _)| *s).collect();
                bag.invalid(&name, &value, &format!("one of {}", all.join(", ")))
            })?
            .1;
        if let Some(level) = level {
            directives.extend(modules.iter().map(|m| format!("{m}={level}")));
        }
    }
    // Longer (more specific) module paths last: tracing's filter prefers the most specific
    // match anyway; sorting keeps the directive string stable for tests and messages.
    directives.sort_by_key(|d| (d.split('=').next().map_or(0, str::len), d.clone()));
    directives.dedup();
    Ok(directives)
}

/// The README table of every key, rendered from [`KEYS`].
pub(crate) fn markdown_table() -> String {
    let mut out = String::from("| Key | Tributary |\n|---|---|\n");
    for k in KEYS {
        let text = match k.class {
            Class::Implemented(how) => format!("**applied**: {how}"),
            Class::Irrelevant(why) => format!("accepted, not applied: {why}"),
            Class::Only(values, why) => {
                let allowed = if values.is_empty() {
                    "absent, null or empty".to_string()
                } else {
                    values
                        .iter()
                        .map(|v| format!("`{v:?}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("accepted only as {allowed}; otherwise refused: {why}")
            }
        };
        out.push_str(&format!(
            "| `{}` | {} |\n",
            k.name,
            text.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_prefers_exact_then_longest_prefix() {
        assert!(matches!(
            classify("ValidationSettings.ValidationOnly"),
            Some(Class::Only(..))
        ));
        assert!(matches!(
            classify("validationsettings.ThreadCount"),
            Some(Class::Irrelevant(_))
        ));
        assert!(matches!(
            classify("TTSettings.EnableTT"),
            Some(Class::Only(..))
        ));
        assert!(matches!(
            classify("TTSettings.TTS3Settings.EncryptionMode"),
            Some(Class::Irrelevant(_))
        ));
        assert_eq!(classify("Nonsense.Key"), None);
    }

    #[test]
    fn only_values_are_enforced_and_unknown_keys_refused() {
        let mut bag = SettingsBag::new("[task.settings]");
        bag.insert("TargetMetadata.BatchApplyEnabled", "true".into())
            .unwrap();
        let e = check_rest(bag).unwrap_err().to_string();
        assert!(e.contains("BatchApplyEnabled") && e.contains("set"), "{e}");

        let mut bag = SettingsBag::new("[task.settings]");
        bag.insert("CharacterSetSettings.CharacterReplacements", "[{}]".into())
            .unwrap();
        let e = check_rest(bag).unwrap_err().to_string();
        assert!(e.contains("remove CharacterSetSettings"), "{e}");

        let mut bag = SettingsBag::new("[task.settings]");
        bag.insert("Logging.EnableLoging", "true".into()).unwrap();
        let e = check_rest(bag).unwrap_err().to_string();
        assert!(e.contains("did you mean Logging.EnableLogging"), "{e}");

        let mut bag = SettingsBag::new("[task.settings]");
        bag.insert("StreamBufferSettings.StreamBufferCount", "3".into())
            .unwrap();
        bag.insert("TargetMetadata.FullLobMode", "FALSE".into())
            .unwrap();
        let rest = check_rest(bag).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].reason, STREAM_BUFFERS);
    }

    #[test]
    fn log_components_become_filter_directives() {
        let mut bag = SettingsBag::new("[task.settings]");
        bag.insert(
            "Logging.LogComponents.SOURCE_CAPTURE",
            "LOGGER_SEVERITY_DEBUG".into(),
        )
        .unwrap();
        bag.insert("Logging.LogComponents.IO", "LOGGER_SEVERITY_DEFAULT".into())
            .unwrap();
        bag.insert(
            "Logging.LogComponents.TARGET_APPLY",
            "LOGGER_SEVERITY_ERROR".into(),
        )
        .unwrap();
        let d = log_directives(&mut bag).unwrap();
        assert!(d.contains(&"tributary::source=debug".to_string()), "{d:?}");
        assert!(
            d.contains(&"tributary::writer::cdc=error".to_string()),
            "{d:?}"
        );
        assert!(
            !d.iter().any(|x| x.starts_with("tributary::store")),
            "{d:?}"
        );
        let mut bag = SettingsBag::new("[task.settings]");
        bag.insert("Logging.LogComponents.IO", "LOUD".into())
            .unwrap();
        assert!(log_directives(&mut bag).is_err());
    }

    /// The README's table is this table.
    #[test]
    fn readme_renders_every_key() {
        let readme = include_str!("../../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's task-settings table is out of date; replace it with the output of \
             `tributary settings`"
        );
    }
}
