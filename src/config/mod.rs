//! The task file: parsed and validated once at start, into types the rest of the program trusts.
//! Units are converted here (bytes, `Duration`); defaults are named constants.

pub(crate) mod dms_task;
pub(crate) mod errors;
pub mod import;
pub(crate) mod settings;
pub(crate) mod source;
pub(crate) mod target;
pub(crate) mod task;
pub(crate) mod tls;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::layout::FileFormat;
use crate::mapping::TableMappings;
use settings::SettingsBag;
pub(crate) use source::SourceConfig;
pub(crate) use target::S3Settings;
pub(crate) use task::{CdcStop, PrepMode, TaskSettings};

/// Every DMS task-settings key and what Tributary does with it, as a Markdown table.
pub fn task_settings_table() -> String {
    dms_task::markdown_table()
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Default retries of one S3 operation: more than fit in the default time budget (waits of 0.5 s
/// doubling to 10–20 s allow at most ~36 in 300 s), so the budget is what stops retrying.
pub(crate) const DEFAULT_S3_MAX_RETRIES: u64 = 100;
/// Default time budget, seconds, for retrying one S3 operation (list, PUT, part, completion...)
/// with exponential backoff: an S3 or network outage of up to ~4½ minutes is ridden out.
pub(crate) const DEFAULT_S3_RETRY_TIMEOUT_S: u64 = 300;
/// Folder (beside the task file) holding checkpoints when `[task] state` is not set.
const DEFAULT_STATE_FOLDER: &str = "tributary-state";
/// Default `[task] lease_ttl_seconds`: a lease in S3 not renewed for this long belongs to a dead
/// process and the next run takes it over; the holder renews it every sixth of it.
pub(crate) const DEFAULT_LEASE_TTL_S: u64 = 60;
/// Bounds of `[task] lease_ttl_seconds`.
const LEASE_TTL_RANGE_S: std::ops::RangeInclusive<u64> = 6..=3600;

/// DMS `MigrationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MigrationType {
    /// full-load: load every selected table from one snapshot, then stop.
    FullLoad,
    /// full-load-and-cdc: full load from the change stream's snapshot, then stream changes.
    FullLoadAndCdc,
    /// cdc: stream changes only.
    Cdc,
}

/// Where objects go.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TargetLocation {
    /// `file:///path`: a local folder.
    Local(PathBuf),
    /// `s3://bucket`.
    S3 {
        /// Bucket name.
        bucket: String,
    },
}

/// Where a task keeps its state (checkpoint and lease): `[task] state`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StateLocation {
    /// A local folder (a plain path or `file:///path`).
    Local(PathBuf),
    /// `s3://bucket/prefix`, reached with the target's endpoint, region and credentials.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without a trailing `/` (may be empty).
        prefix: String,
    },
}

impl StateLocation {
    /// The location as the task file names it, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            StateLocation::Local(p) => p.display().to_string(),
            StateLocation::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            StateLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// `[target]`.
#[derive(Debug, Clone)]
pub(crate) struct TargetConfig {
    /// Folder or bucket.
    pub(crate) location: TargetLocation,
    /// Custom S3 endpoint (LocalStack, MinIO, moto); `AWS_ENDPOINT_URL` is used when unset.
    pub(crate) endpoint: Option<String>,
    /// Region; the AWS chain decides when unset.
    pub(crate) region: Option<String>,
    /// Retries per S3 request on 5xx/throttling/timeouts.
    pub(crate) max_retries: usize,
    /// Time budget for one request's retries.
    pub(crate) retry_timeout: Duration,
    /// DMS S3 endpoint settings.
    pub(crate) settings: S3Settings,
}

/// The validated task.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    /// `[task] id`: names checkpoints; letters, digits, `-`, `_`.
    pub(crate) id: String,
    /// Migration type.
    pub(crate) migration_type: MigrationType,
    /// Selection rules.
    pub(crate) mappings: TableMappings,
    /// The table-mapping JSON in a canonical form (keys sorted, no spacing): a resumed run
    /// compares it with the one the run started with.
    pub(crate) mappings_canonical: String,
    /// Where checkpoints, statistics and the task's lease live.
    pub(crate) state: StateLocation,
    /// `[task] lease_ttl_seconds`: how long an S3 lease outlives its last renewal.
    pub(crate) lease_ttl: Duration,
    /// Task-level DMS settings.
    pub(crate) settings: TaskSettings,
    /// `CdcStopPosition`.
    pub(crate) cdc_stop: Option<CdcStop>,
    /// Source.
    pub(crate) source: SourceConfig,
    /// Target.
    pub(crate) target: TargetConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    task: RawTask,
    source: RawSource,
    target: RawTarget,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: String,
    migration_type: String,
    table_mappings: Option<String>,
    table_mappings_file: Option<PathBuf>,
    state: Option<String>,
    lease_ttl_seconds: Option<u64>,
    cdc_start_position: Option<String>,
    cdc_stop_position: Option<String>,
    task_settings: Option<String>,
    task_settings_file: Option<PathBuf>,
    #[serde(default)]
    settings: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    engine: String,
    url: String,
    extra_connection_attributes: Option<String>,
    #[serde(default)]
    settings: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: String,
    endpoint: Option<String>,
    region: Option<String>,
    extra_connection_attributes: Option<String>,
    max_retries: Option<u64>,
    retry_timeout_seconds: Option<u64>,
    #[serde(default)]
    settings: toml::Table,
}

impl TaskConfig {
    /// Reads and validates a task file; `${VAR}` in URLs and the endpoint come from `env`.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<TaskConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                format!("cannot read task file {}: {e}", path.display()),
                "pass an existing file with --config",
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        TaskConfig::parse(&text, base, env).map_err(|e| e.context(path.display()))
    }

    /// `Logging.LogComponents` of the task settings as `tracing` filter directives.
    pub fn log_directives(&self) -> &[String] {
        &self.settings.log_directives
    }

    /// The task's id (`[task] id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Parses task-file text; relative paths resolve against `base`.
    pub(crate) fn parse(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TaskConfig> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| line_column(text, s.start));
            Error::config(
                match at {
                    Some((line, column)) => format!(
                        "invalid task file at line {line}, column {column}: {}",
                        e.message()
                    ),
                    None => format!("invalid task file: {}", e.message()),
                },
                "fix the TOML there; see configs/ for examples",
            )
        })?;
        let id = raw.task.id.trim().to_string();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::config(
                format!("[task] id {id:?} is not valid"),
                "use letters, digits, '-' and '_' only (it names the checkpoint)",
            ));
        }
        let migration_type = match raw.task.migration_type.as_str() {
            "full-load" => MigrationType::FullLoad,
            "full-load-and-cdc" => MigrationType::FullLoadAndCdc,
            "cdc" => MigrationType::Cdc,
            other => {
                return Err(Error::config(
                    format!("[task] migration_type {other:?} is not valid"),
                    "use one of full-load, full-load-and-cdc, cdc",
                ))
            }
        };
        let task_json = task_settings_json(&raw.task, base)?;
        let mappings_json = match (raw.task.table_mappings, raw.task.table_mappings_file) {
            (Some(json), None) => json,
            (None, Some(file)) => {
                let file = base.join(file);
                std::fs::read_to_string(&file).map_err(|e| {
                    Error::config(
                        format!("cannot read table_mappings_file {}: {e}", file.display()),
                        "point table_mappings_file at the DMS table-mapping JSON",
                    )
                })?
            }
            _ => {
                return Err(Error::config(
                    "[task] needs exactly one of table_mappings and table_mappings_file",
                    "set table_mappings = '''{\"rules\": [...]}''' or table_mappings_file = \"mappings.json\"",
                ))
            }
        };
        let mut mappings = TableMappings::parse(&mappings_json)?;
        // serde_json's maps are sorted, so equal mappings give equal text however written.
        let mappings_canonical = serde_json::from_str::<serde_json::Value>(&mappings_json)
            .map_or(mappings_json.clone(), |v| v.to_string());
        let state = match raw.task.state {
            None => StateLocation::Local(base.join(DEFAULT_STATE_FOLDER)),
            Some(s) => parse_state(&s, base)?,
        };
        let ttl = raw.task.lease_ttl_seconds.unwrap_or(DEFAULT_LEASE_TTL_S);
        if !LEASE_TTL_RANGE_S.contains(&ttl) {
            return Err(Error::config(
                format!("[task] lease_ttl_seconds = {ttl} is out of range"),
                format!(
                    "use {} to {} seconds (default {DEFAULT_LEASE_TTL_S})",
                    LEASE_TTL_RANGE_S.start(),
                    LEASE_TTL_RANGE_S.end()
                ),
            ));
        }
        let mut bag = SettingsBag::new("[task.settings]");
        if let Some(json) = &task_json {
            bag.extend_json(json, "")?;
        }
        bag.extend_toml(&raw.task.settings, "")?;
        let settings = TaskSettings::parse(bag)?;
        if let Some(schema) = &settings.target_schema {
            mappings.set_target_schema(schema);
        }

        let cdc_stop = raw
            .task
            .cdc_stop_position
            .as_deref()
            .map(CdcStop::parse)
            .transpose()?;
        let target_url = expand_env(&raw.target.url, env)?;
        let location = parse_target_url(&target_url, base)?;
        let bucket = match &location {
            TargetLocation::S3 { bucket } => Some(bucket.as_str()),
            TargetLocation::Local(_) => None,
        };
        let mut bag = SettingsBag::new("[target.settings]");
        bag.extend_toml(&raw.target.settings, "")?;
        if let Some(eca) = &raw.target.extra_connection_attributes {
            bag.extend_eca(eca)?;
        }
        let target_settings = S3Settings::parse(bag, bucket)?;
        let mut source_bag = SettingsBag::new("[source.settings]");
        source_bag.extend_toml(&raw.source.settings, "")?;
        if let Some(eca) = &raw.source.extra_connection_attributes {
            source_bag.extend_eca(eca)?;
        }
        let source = SourceConfig::parse(
            source::RawSource {
                engine: &raw.source.engine,
                url: expand_env(&raw.source.url, env)?,
                settings: source_bag,
                cdc_start: raw.task.cdc_start_position.as_deref(),
            },
            &id,
            migration_type,
            target_settings.unchanged_marker.clone(),
        )?;
        let endpoint = raw
            .target
            .endpoint
            .map(|e| expand_env(&e, env))
            .transpose()?;
        // The columns every file may start with: where files name their columns (Parquet, CSV
        // with AddColumnName), a source column of the same name gives files readers refuse.
        let added = [
            (migration_type != MigrationType::FullLoad || target_settings.include_op_for_full_load)
                .then(|| "Op".to_string()),
            target_settings.timestamp_column_name.clone(),
        ];
        let named = target_settings.data_format == FileFormat::Parquet
            || target_settings.csv.add_column_name;
        if named {
            mappings.reserve(added.into_iter().flatten().collect());
        }
        Ok(TaskConfig {
            id,
            migration_type,
            mappings,
            mappings_canonical,
            state,
            lease_ttl: Duration::from_secs(ttl),
            settings,
            cdc_stop,
            source,
            target: TargetConfig {
                location,
                endpoint,
                region: raw.target.region,
                max_retries: raw.target.max_retries.unwrap_or(DEFAULT_S3_MAX_RETRIES) as usize,
                retry_timeout: Duration::from_secs(
                    raw.target
                        .retry_timeout_seconds
                        .unwrap_or(DEFAULT_S3_RETRY_TIMEOUT_S),
                ),
                settings: target_settings,
            },
        })
    }
}

/// DMS's `ReplicationTaskSettings` document from `[task] task_settings` (inline JSON) or
/// `task_settings_file`, if either is given. An export's `ReplicationTaskSettings` field is a
/// JSON string holding the document; that form is unwrapped too.
fn task_settings_json(raw: &RawTask, base: &Path) -> Result<Option<serde_json::Value>> {
    let (text, origin) = match (&raw.task_settings, &raw.task_settings_file) {
        (None, None) => return Ok(None),
        (Some(t), None) => (t.clone(), "[task] task_settings".to_string()),
        (None, Some(f)) => {
            let file = base.join(f);
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Error::config(
                    format!("cannot read task_settings_file {}: {e}", file.display()),
                    "point task_settings_file at the DMS task-settings JSON",
                )
            })?;
            (text, format!("task_settings_file {}", file.display()))
        }
        (Some(_), Some(_)) => {
            return Err(Error::config(
                "[task] sets both task_settings and task_settings_file",
                "keep one of them",
            ))
        }
    };
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::config(
            format!(
                "{origin} is not valid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
            "fix the JSON there (it is the ReplicationTaskSettings document DMS exports)",
        )
    })?;
    if let Some(inner) = value
        .get("ReplicationTaskSettings")
        .and_then(|v| v.as_str())
    {
        value = serde_json::from_str(inner).map_err(|e| {
            Error::config(
                format!("{origin}: ReplicationTaskSettings is not valid JSON: {e}"),
                "fix the JSON string held in ReplicationTaskSettings",
            )
        })?;
    }
    Ok(Some(value))
}

/// `file:///x` or a plain path → a path (relative paths against `base`); None for other schemes.
fn local_path(s: &str, base: &Path) -> Option<PathBuf> {
    if let Some(rest) = s.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    if s.contains("://") {
        return None;
    }
    Some(base.join(s))
}

/// Parses `[task] state`: `s3://bucket/prefix`, `file:///path` or a plain path.
fn parse_state(s: &str, base: &Path) -> Result<StateLocation> {
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::config(
                format!("[task] state {s:?} names no bucket"),
                "use s3://BUCKET/PREFIX, e.g. s3://my-bucket/tributary-state",
            ));
        }
        return Ok(StateLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    local_path(s, base)
        .map(StateLocation::Local)
        .ok_or_else(|| {
            Error::config(
                format!("[task] state {s:?} is neither a folder nor s3://BUCKET/PREFIX"),
                "use s3://bucket/prefix, file:///path or a plain path",
            )
        })
}

/// Parses `[target] url`.
fn parse_target_url(url: &str, base: &Path) -> Result<TargetLocation> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let bucket = rest.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err(Error::config(
                format!("[target] url {url:?} must be s3://BUCKET with no path"),
                "put the folder in the BucketFolder setting",
            ));
        }
        return Ok(TargetLocation::S3 {
            bucket: bucket.to_string(),
        });
    }
    match local_path(url, base) {
        Some(p) if url.starts_with("file://") => Ok(TargetLocation::Local(p)),
        _ => Err(Error::config(
            format!("[target] url {url:?} is neither s3://BUCKET nor file:///PATH"),
            "use s3://my-bucket or file:///absolute/folder",
        )),
    }
}

/// Expands `${NAME}` from the environment; a missing variable is an error (never an empty secret).
pub(crate) fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            Error::config("unterminated ${ in the task file", "close it: ${NAME}")
        })?;
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            Error::config(
                format!("environment variable {name} is not set"),
                format!("export {name}=... before running, or write the value into the task file"),
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPPINGS: &str = r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"public","table-name":"%"},"rule-action":"include"}]}"#;

    fn task(extra_task: &str, target: &str) -> String {
        format!(
            "[task]\nid = \"t1\"\nmigration_type = \"full-load\"\ntable_mappings = '''{MAPPINGS}'''\n{extra_task}\n[source]\nengine = \"postgres\"\nurl = \"postgres://u:${{PGPASS}}@h/db\"\n[target]\n{target}\n"
        )
    }

    fn env(name: &str) -> Option<String> {
        (name == "PGPASS").then(|| "s3cret".to_string())
    }

    #[test]
    fn parses_full_task() {
        let text = task(
            "[task.settings]\nFullLoadSettings.MaxFullLoadSubTasks = 2\nTargetMetadata.LobMaxSize = 32",
            "url = \"s3://lake\"\nendpoint = \"http://127.0.0.1:4566\"\nextra_connection_attributes = \"dataFormat=parquet;bucketFolder=raw;\"",
        );
        let t = TaskConfig::parse(&text, Path::new("/etc/trib"), &env).unwrap();
        assert_eq!(t.settings.max_sub_tasks, 2);
        assert_eq!(t.settings.lob_max_bytes, Some(32 * 1024));
        assert_eq!(t.settings.prep_mode, PrepMode::DropAndCreate);
        assert_eq!(t.source.url(), "postgres://u:s3cret@h/db");
        assert!(!format!("{:?}", t.source).contains("s3cret"));
        assert_eq!(t.target.settings.bucket_folder, "raw");
        assert_eq!(
            t.state,
            StateLocation::Local(Path::new("/etc/trib/tributary-state").into())
        );
        assert_eq!(t.lease_ttl, Duration::from_secs(DEFAULT_LEASE_TTL_S));
        assert_eq!(
            t.target.location,
            TargetLocation::S3 {
                bucket: "lake".into()
            }
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let bad = [
            task("colour = \"red\"", "url = \"file:///tmp/x\""),
            task(
                "",
                "url = \"file:///tmp/x\"\n[target.settings]\nDataFromat = \"csv\"",
            ),
            task("", "url = \"s3://bucket/path\""),
            task("", "url = \"/tmp/relative-without-scheme\""),
            task(
                "[task.settings]\nFullLoadSettings.MaxFullLoadSubTasks = 50",
                "url = \"file:///tmp/x\"",
            ),
            task(
                "[task.settings]\nFullLoadSettings.TargetTablePrepMode = \"WIPE\"",
                "url = \"file:///tmp/x\"",
            ),
            task("", "url = \"file:///tmp/x\"\nbucket = \"x\""),
        ];
        for text in bad {
            let err = TaskConfig::parse(&text, Path::new("/"), &env).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Config, "{text}");
        }
        let no_env = TaskConfig::parse(
            &task("", "url = \"file:///tmp/x\""),
            Path::new("/"),
            &|_| None,
        )
        .unwrap_err();
        assert!(no_env.message.contains("PGPASS"), "{no_env}");
    }

    #[test]
    fn cdc_positions_and_source_settings() {
        assert_eq!(
            CdcStop::parse("commit_time:2026-11-22T10:00:00").unwrap(),
            CdcStop::CommitTime(1_795_341_600_000_000)
        );
        assert_eq!(
            CdcStop::parse("server_time:2026-11-22T10:00:00.5").unwrap(),
            CdcStop::ServerTime(1_795_341_600_500_000)
        );
        assert!(CdcStop::parse("commit:2026-11-22T10:00:00").is_err());
        let text = task("", "url = \"s3://lake\"")
            .replace(
                "migration_type = \"full-load\"",
                "migration_type = \"cdc\"\ncdc_start_position = \"4AF/B00000D0\"",
            )
            .replace(
                "[target]",
                "[source.settings]\nSlotName = \"my_slot\"\nHeartbeatEnable = true\n[target]",
            );
        let t = TaskConfig::parse(&text, Path::new("/"), &env).unwrap();
        let SourceConfig::Postgres(pg) = &t.source else {
            panic!("not PostgreSQL")
        };
        assert_eq!(pg.start, Some(crate::change::Lsn(0x4AF_B000_00D0)));
        assert_eq!((pg.slot_name.as_str(), pg.slot_given), ("my_slot", true));
        assert_eq!(pg.publication, "tributary_t1");
        assert_eq!(
            pg.heartbeat.as_ref().map(|h| h.every),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            pg.unchanged_toast,
            source::UnchangedToast::Marker(source::DEFAULT_UNCHANGED_MARKER.into())
        );
        let bad = text.replace("SlotName = \"my_slot\"", "SlotName = \"My-Slot\"");
        let e = TaskConfig::parse(&bad, Path::new("/"), &env).unwrap_err();
        assert!(e.to_string().contains("lower-case"), "{e}");
        let unknown = text.replace("HeartbeatEnable", "HeartbeatEnabled");
        assert!(TaskConfig::parse(&unknown, Path::new("/"), &env).is_err());
    }

    #[test]
    fn dms_task_settings_documents_in_every_form() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dms");
        let file_url = "url = \"file:///tmp/x\"";
        let full = task("task_settings_file = \"task-settings-full.json\"", file_url);
        let t = TaskConfig::parse(&full, &fixture, &env).unwrap();
        let s = &t.settings;
        assert_eq!(s.lob_max_bytes, Some(32 * 1024));
        assert_eq!(s.errors.data, errors::Policy::LogError);
        assert!(s.log_directives.contains(&"tributary::source=debug".into()));
        assert!(s
            .log_directives
            .contains(&"tributary::writer::cdc=warn".into()));
        for key in [
            "Logging.EnableLogging",
            "ValidationSettings.ThreadCount",
            "ControlTablesSettings.HistoryTimeslotInMinutes",
        ] {
            assert!(
                s.unapplied.iter().any(|u| u.name.eq_ignore_ascii_case(key)),
                "{key} not listed: {:?}",
                s.unapplied
            );
        }
        // The same key in the document and in [task.settings] is an error.
        let twice = full.replacen(
            "[source]",
            "[task.settings]\nFullLoadSettings.CommitRate = 5\n[source]",
            1,
        );
        let e = TaskConfig::parse(&twice, &fixture, &env).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");

        // The seed walkthrough's settings, inline, and the export's string-wrapped form.
        let seed = r#"{"TargetMetadata": {"SupportLobs": true, "LimitedSizeLobMode": true, "LobMaxSize": 1024},
            "FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD", "MaxFullLoadSubTasks": 49, "CommitRate": 50000},
            "Logging": {"EnableLogging": true}}"#;
        let wrapped = serde_json::json!({ "ReplicationTaskSettings": seed }).to_string();
        let inline = |doc: &str| task(&format!("task_settings = '''{doc}'''"), file_url);
        for doc in [seed.to_string(), wrapped] {
            let t = TaskConfig::parse(&inline(&doc), Path::new("/"), &env).unwrap();
            assert_eq!(t.settings.lob_max_bytes, Some(1024 * 1024));
            assert_eq!(t.settings.prep_mode, PrepMode::TruncateBeforeLoad);
            assert_eq!(t.settings.max_sub_tasks, 49);
        }
        // Limited mode without a size is DMS's 32 KB; neither key: no truncation.
        let limited = inline(r#"{"TargetMetadata": {"LimitedSizeLobMode": true}}"#);
        let t = TaskConfig::parse(&limited, Path::new("/"), &env).unwrap();
        assert_eq!(t.settings.lob_max_bytes, Some(32 * 1024));
        let t = TaskConfig::parse(&task("", file_url), Path::new("/"), &env).unwrap();
        assert_eq!(t.settings.lob_max_bytes, None);
        // A value that would change the files is refused with the key named.
        let batch = inline(r#"{"TargetMetadata": {"BatchApplyEnabled": true}}"#);
        let e = TaskConfig::parse(&batch, Path::new("/"), &env).unwrap_err();
        assert!(e.to_string().contains("BatchApplyEnabled"), "{e}");
        let e =
            TaskConfig::parse(&inline(r#"{"TargetMetadata": "#), Path::new("/"), &env).unwrap_err();
        assert!(e.to_string().contains("not valid JSON at line 1"), "{e}");
    }

    #[test]
    fn state_locations() {
        let base = Path::new("/etc/trib");
        assert_eq!(
            parse_state("s3://b/some/prefix/", base).unwrap(),
            StateLocation::S3 {
                bucket: "b".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(
            parse_state("s3://b", base).unwrap(),
            StateLocation::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            parse_state("file:///var/st", base).unwrap(),
            StateLocation::Local("/var/st".into())
        );
        assert_eq!(
            parse_state("st", base).unwrap(),
            StateLocation::Local("/etc/trib/st".into())
        );
        for bad in ["s3:///p", "gs://b/p"] {
            let e = parse_state(bad, base).unwrap_err();
            assert!(e.fix.contains("s3://"), "{e}");
        }
        let text = task(
            "state = \"s3://b/p\"\nlease_ttl_seconds = 2",
            "url = \"file:///tmp/x\"",
        );
        let e = TaskConfig::parse(&text, base, &env).unwrap_err();
        assert!(e.to_string().contains("lease_ttl_seconds"), "{e}");
    }

    #[test]
    fn toml_errors_name_the_line_and_column() {
        let text = "[task]\nid = \"t\"\nmigration_type = full-load\n";
        let e = TaskConfig::parse(text, Path::new("/"), &|_: &str| None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid task file at line 3, column 18: "),
            "{e}"
        );
        assert_eq!(line_column("é\nab", 5), (2, 3));
        assert_eq!(line_column("abc", 0), (1, 1));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The example task files in configs/ must stay valid.
    #[test]
    fn example_configs_parse() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let env = |_: &str| Some("x".to_string());
        for name in ["local-folder.toml", "s3.toml", "dms-walkthrough.toml"] {
            let t =
                TaskConfig::load(&base.join(name), &env).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.migration_type, MigrationType::FullLoad, "{name}");
        }
        let cdc = TaskConfig::load(&base.join("full-load-and-cdc.toml"), &env).unwrap();
        assert_eq!(cdc.migration_type, MigrationType::FullLoadAndCdc);
        assert!(matches!(&cdc.source, SourceConfig::Postgres(p) if p.heartbeat.is_some()));
        assert!(cdc.target.settings.cdc.date_partition.is_some());
        let my = TaskConfig::load(&base.join("mysql-sharded.toml"), &env).unwrap();
        assert!(matches!(my.source, SourceConfig::MySql(_)));
        assert_eq!(my.migration_type, MigrationType::FullLoadAndCdc);
    }

    /// A MySQL task file with extra `[task]` and `[source.settings]` lines.
    fn mysql_task(extra: &str, settings: &str) -> Result<TaskConfig> {
        let text = format!(
            r#"[task]
id = "m"
migration_type = "cdc"
{extra}
table_mappings = '''{{"rules":[{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"d","table-name":"%"}},"rule-action":"include"}}]}}'''
[source]
engine = "mysql"
url = "mysql://u@h:3306/d"
[source.settings]
{settings}
[target]
url = "file:///tmp/x"
"#
        );
        TaskConfig::parse(&text, Path::new("/tmp"), &|_: &str| None)
    }

    #[test]
    fn mysql_start_positions_and_server_id() {
        let t = mysql_task(
            "cdc_start_position = \"mysql-bin.000024:373\"",
            "ServerId = 77",
        )
        .unwrap();
        let SourceConfig::MySql(my) = &t.source else {
            panic!("not MySQL")
        };
        let Some(source::BinlogStart::Position(p)) = &my.start else {
            panic!("not a binlog position")
        };
        assert_eq!((p.file.as_str(), p.offset), ("mysql-bin.000024", 373));
        assert_eq!(my.server_id, 77);
        let g = mysql_task("cdc_start_position = \"0-1-17,1-2-3\"", "").unwrap();
        assert!(matches!(&g.source, SourceConfig::MySql(m)
            if m.start == Some(source::BinlogStart::MariaDbGtid("0-1-17,1-2-3".into()))));
        assert!(
            mysql_task("", "SlotName = \"x\"").is_err(),
            "PostgreSQL settings on MySQL"
        );
        let e = mysql_task("cdc_start_position = \"4AF/B00000D0\"", "").unwrap_err();
        assert!(e.to_string().contains("mysql-bin.000024:373"), "{e}");
        let e = mysql_task("", "ServerId = 0").unwrap_err();
        assert!(e.to_string().contains("ServerId"), "{e}");
        let t = mysql_task(
            "",
            "ServerTimezone = \"US/Pacific\"\nEventsPollInterval = 10\nAfterConnectScript = \"SET @x = 1\"",
        )
        .unwrap();
        assert!(
            matches!(&t.source, SourceConfig::MySql(m) if m.after_connect.as_deref() == Some("SET @x = 1"))
        );
        let e = mysql_task("", "ServerTimezone = \"Mars/Olympus\"").unwrap_err();
        assert!(e.to_string().contains("ServerTimezone"), "{e}");
        assert!(mysql_task("", "EventsPollInterval = 0").is_err());
        assert!(
            mysql_task("", "MapBooleanAsBoolean = true").is_err(),
            "PostgreSQL-only"
        );
    }
}
