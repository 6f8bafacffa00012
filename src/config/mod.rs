//! The task file: parsed and validated once at start, into types the rest of the program trusts.

pub mod settings;
pub mod target;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{redact_url, Error, Result};
use crate::mapping::TableMappings;
use settings::SettingsBag;
pub use target::S3Settings;

/// Default `FullLoadSettings.MaxFullLoadSubTasks` (tables loaded in parallel).
pub const DEFAULT_MAX_FULL_LOAD_SUB_TASKS: u64 = 8;
/// Largest `MaxFullLoadSubTasks` DMS allows.
pub const MAX_FULL_LOAD_SUB_TASKS: u64 = 49;
/// Default retries of one S3 operation: more than fit in the default time budget (waits of 0.5 s
/// doubling to 10–20 s allow at most ~36 in 300 s), so the budget is what stops retrying.
pub const DEFAULT_S3_MAX_RETRIES: u64 = 100;
/// Default time budget, seconds, for retrying one S3 operation (list, PUT, part, completion...)
/// with exponential backoff: an S3 or network outage of up to ~4½ minutes is ridden out.
pub const DEFAULT_S3_RETRY_TIMEOUT_S: u64 = 300;
/// Folder (beside the task file) holding checkpoints when `[task] state` is not set.
pub const DEFAULT_STATE_FOLDER: &str = "tributary-state";

/// DMS `MigrationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationType {
    /// full-load: load every selected table from one snapshot, then stop.
    FullLoad,
    /// full-load-and-cdc: full load from the replication slot's snapshot, then stream changes.
    FullLoadAndCdc,
    /// cdc: stream changes only.
    Cdc,
}

/// DMS `FullLoadSettings.TargetTablePrepMode` on S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepMode {
    /// DROP_AND_CREATE (our default): delete the table's objects before loading it.
    DropAndCreate,
    /// TRUNCATE_BEFORE_LOAD: the same on S3 (there is no table metadata to keep).
    TruncateBeforeLoad,
    /// DO_NOTHING: keep existing objects; LOAD numbering continues after the highest existing file.
    DoNothing,
}

/// Task-level DMS settings (`[task.settings]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSettings {
    /// `FullLoadSettings.TargetTablePrepMode`.
    pub prep_mode: PrepMode,
    /// `FullLoadSettings.MaxFullLoadSubTasks`.
    pub max_sub_tasks: usize,
    /// `TargetMetadata.SupportLobs`: false drops LOB columns from the output.
    pub support_lobs: bool,
    /// `TargetMetadata.LobMaxSize` in KB; None = no truncation (our default, unlike DMS's 32 KB).
    pub lob_max_size_kb: Option<u64>,
    /// `ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated` (default true, as in DMS):
    /// a source TRUNCATE deletes the table's objects.
    pub handle_truncate: bool,
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
    fn parse(mut bag: SettingsBag) -> Result<TaskSettings> {
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
        let lob_max_size_kb = match lob_kb {
            Some(v) if limited => {
                Some(v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bag.invalid("TargetMetadata.LobMaxSize", &v, "a positive number of KB")
                })?)
            }
            _ => None,
        };
        let support_lobs = bag.bool("TargetMetadata.SupportLobs", true)?;
        let handle_truncate = bag.bool(
            "ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated",
            true,
        )?;
        // Accepted for paste-compatibility: pgoutput reports no DROP TABLE, and ALTER TABLE always
        // changes the output shape (a new file starts with the new columns).
        bag.bool(
            "ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped",
            true,
        )?;
        bag.bool(
            "ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered",
            true,
        )?;
        bag.finish(TASK_SETTINGS)?;
        Ok(TaskSettings {
            prep_mode,
            max_sub_tasks,
            support_lobs,
            lob_max_size_kb,
            handle_truncate,
        })
    }
}

/// Source database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL 10+.
    Postgres,
    /// MySQL 5.7/8.x and MariaDB 10.x.
    MySql,
}

/// `[source]`.
#[derive(Clone)]
pub struct SourceConfig {
    /// Engine.
    pub engine: Engine,
    /// Connection URL with `${ENV}` expanded. Holds secrets: format it only through [`SourceConfig::redacted`].
    pub url: String,
    /// Change-capture endpoint settings.
    pub cdc: SourceCdcSettings,
}

/// Default `HeartbeatFrequency`, minutes.
pub const DEFAULT_HEARTBEAT_FREQUENCY_MIN: u64 = 5;

/// Source endpoint settings for change capture (`[source.settings]`, DMS names).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceCdcSettings {
    /// `SlotName`: an existing slot to read (cdc tasks), or the name of the slot to create.
    pub slot_name: Option<String>,
    /// `PublicationName` (ours; DMS has no pgoutput setting): default `tributary_<task id>`.
    pub publication_name: Option<String>,
    /// `HeartbeatEnable`.
    pub heartbeat: bool,
    /// `HeartbeatFrequency`, minutes.
    pub heartbeat_frequency_min: u64,
    /// `HeartbeatSchema`.
    pub heartbeat_schema: String,
    /// `ServerId` (ours, MySQL): the replica id the binlog reader registers with; None derives
    /// one from the task id.
    pub server_id: Option<u32>,
}

/// Every name `[source.settings]` accepts.
const SOURCE_SETTINGS: &[&str] = &[
    "SlotName",
    "PluginName",
    "PublicationName",
    "HeartbeatEnable",
    "HeartbeatFrequency",
    "HeartbeatSchema",
    "CaptureDdls",
    "DdlArtifactsSchema",
    "ServerId",
];

impl SourceCdcSettings {
    /// Parses `[source.settings]`.
    fn parse(mut bag: SettingsBag) -> Result<SourceCdcSettings> {
        bag.choice("PluginName", "pgoutput", &["pgoutput"])?;
        let slot_name = bag.string("SlotName");
        let publication_name = bag.string("PublicationName");
        for (what, v) in [
            ("SlotName", &slot_name),
            ("PublicationName", &publication_name),
        ] {
            if let Some(v) = v {
                crate::source::postgres::slot::check_name(what, v)?;
            }
        }
        let heartbeat = bag.bool("HeartbeatEnable", false)?;
        let heartbeat_frequency_min = bag.int(
            "HeartbeatFrequency",
            DEFAULT_HEARTBEAT_FREQUENCY_MIN,
            1,
            24 * 60,
            "minutes",
        )?;
        let heartbeat_schema = bag
            .string("HeartbeatSchema")
            .unwrap_or_else(|| "public".to_string());
        // DDLs reach us through pgoutput's Relation messages; no event trigger is installed.
        bag.bool("CaptureDdls", true)?;
        bag.string("DdlArtifactsSchema");
        let server_id = match bag.string("ServerId") {
            None => None,
            Some(v) => Some(v.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                Error::config(
                    format!("[source.settings] ServerId {v:?} is not valid"),
                    "use a number from 1 to 4294967295 that no other replica of the server uses",
                )
            })?),
        };
        bag.finish(SOURCE_SETTINGS)?;
        Ok(SourceCdcSettings {
            slot_name,
            publication_name,
            heartbeat,
            heartbeat_frequency_min,
            heartbeat_schema,
            server_id,
        })
    }
}

/// Where a MySQL/MariaDB `cdc` task starts (`cdc_start_position`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MySqlStart {
    /// A binlog file and offset, DMS's native form (`mysql-bin.000024:373`).
    Binlog(crate::change::BinlogPos),
    /// A MariaDB GTID position (`0-1-1234`, one `domain-server-sequence` per domain, comma
    /// separated): the task starts right after that transaction.
    MariaDbGtid(String),
}

impl MySqlStart {
    /// Parses either form.
    pub fn parse(s: &str) -> Result<MySqlStart> {
        if let Ok(p) = s.parse::<crate::change::BinlogPos>() {
            return Ok(MySqlStart::Binlog(p));
        }
        let gtid = !s.is_empty()
            && s.split(',').all(|g| {
                let parts: Vec<&str> = g.trim().split('-').collect();
                parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            });
        if gtid {
            return Ok(MySqlStart::MariaDbGtid(s.replace(' ', "")));
        }
        Err(Error::config(
            format!("[task] cdc_start_position {s:?} is neither a binlog position nor a MariaDB GTID position"),
            "use a binlog file and offset such as mysql-bin.000024:373 (SHOW MASTER STATUS), or a MariaDB GTID such as 0-1-1234 (@@gtid_binlog_pos)",
        ))
    }
}

/// `CdcStopPosition`: where a CDC task stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdcStop {
    /// `server_time:…`: our clock reaches this time (µs since epoch).
    ServerTime(i64),
    /// `commit_time:…`: the first transaction committed after this time is not written.
    CommitTime(i64),
}

impl CdcStop {
    /// Parses `server_time:2026-11-22T10:00:00` / `commit_time:…` (UTC, optional `.ffffff`).
    pub fn parse(s: &str) -> Result<CdcStop> {
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

impl SourceConfig {
    /// The URL with its password hidden.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("engine", &self.engine)
            .field("url", &self.redacted())
            .finish()
    }
}

/// Where objects go.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetLocation {
    /// `file:///path`: a local folder.
    Local(PathBuf),
    /// `s3://bucket`.
    S3 {
        /// Bucket name.
        bucket: String,
    },
}

/// `[target]`.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Folder or bucket.
    pub location: TargetLocation,
    /// Custom S3 endpoint (LocalStack, MinIO, moto); `AWS_ENDPOINT_URL` is used when unset.
    pub endpoint: Option<String>,
    /// Region; the AWS chain decides when unset.
    pub region: Option<String>,
    /// Retries per S3 request on 5xx/throttling/timeouts.
    pub max_retries: usize,
    /// Time budget for one request's retries.
    pub retry_timeout_s: u64,
    /// DMS S3 endpoint settings.
    pub settings: S3Settings,
}

/// The validated task.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    /// `[task] id`: names checkpoints; letters, digits, `-`, `_`.
    pub id: String,
    /// Migration type.
    pub migration_type: MigrationType,
    /// Selection rules.
    pub mappings: TableMappings,
    /// Folder for checkpoints and statistics.
    pub state_dir: PathBuf,
    /// Task-level DMS settings.
    pub settings: TaskSettings,
    /// `CdcStartPosition` of a PostgreSQL `cdc` task: the LSN it starts at (with `SlotName`).
    pub cdc_start: Option<crate::change::Lsn>,
    /// `CdcStartPosition` of a MySQL `cdc` task.
    pub cdc_start_binlog: Option<MySqlStart>,
    /// `CdcStopPosition`.
    pub cdc_stop: Option<CdcStop>,
    /// Source.
    pub source: SourceConfig,
    /// Target.
    pub target: TargetConfig,
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
    cdc_start_position: Option<String>,
    cdc_stop_position: Option<String>,
    #[serde(default)]
    settings: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    engine: String,
    url: String,
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

    /// Parses task-file text; relative paths resolve against `base`.
    pub fn parse(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TaskConfig> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            Error::config(
                format!("invalid task file: {}", e.message()),
                format!(
                    "fix the TOML{}; see configs/ for examples",
                    e.span()
                        .map(|s| format!(" near byte {}", s.start))
                        .unwrap_or_default()
                ),
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
        let mappings = TableMappings::parse(&mappings_json)?;
        let state_dir = match raw.task.state {
            None => base.join(DEFAULT_STATE_FOLDER),
            Some(s) => local_path(&s, base).ok_or_else(|| {
                Error::config(
                    format!("[task] state {s:?} is not a local folder"),
                    "use file:///path or a plain path (checkpoints in S3 are not supported yet)",
                )
            })?,
        };
        let mut bag = SettingsBag::new("[task.settings]");
        bag.extend_toml(&raw.task.settings, "")?;
        let settings = TaskSettings::parse(bag)?;

        let engine = match raw.source.engine.as_str() {
            "postgres" | "postgresql" => Engine::Postgres,
            "mysql" | "mariadb" => Engine::MySql,
            other => {
                return Err(Error::config(
                    format!("[source] engine {other:?} is not supported"),
                    "use \"postgres\" or \"mysql\" (MySQL and MariaDB)",
                ))
            }
        };
        let url = expand_env(&raw.source.url, env)?;
        let mut bag = SettingsBag::new("[source.settings]");
        bag.extend_toml(&raw.source.settings, "")?;
        let source_cdc = SourceCdcSettings::parse(bag)?;
        let mysql = engine == Engine::MySql;
        let cdc_start_binlog = raw
            .task
            .cdc_start_position
            .as_deref()
            .filter(|_| mysql)
            .map(MySqlStart::parse)
            .transpose()?;
        if cdc_start_binlog.is_some() && migration_type != MigrationType::Cdc {
            return Err(Error::config(
                "[task] cdc_start_position needs migration_type = \"cdc\"",
                "set migration_type = \"cdc\", or remove cdc_start_position",
            ));
        }
        let cdc_start = raw
            .task
            .cdc_start_position
            .as_deref()
            .filter(|_| !mysql)
            .map(|s| {
                s.parse::<crate::change::Lsn>().map_err(|e| {
                    Error::config(
                        format!("[task] cdc_start_position: {e}"),
                        "use a PostgreSQL LSN such as 4AF/B00000D0 (the slot's confirmed_flush_lsn)",
                    )
                })
            })
            .transpose()?;
        if cdc_start.is_some()
            && (migration_type != MigrationType::Cdc || source_cdc.slot_name.is_none())
        {
            return Err(Error::config(
                "[task] cdc_start_position needs migration_type = \"cdc\" and [source.settings] SlotName",
                "name the existing slot in SlotName (as DMS requires), or remove cdc_start_position",
            ));
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
        let endpoint = raw
            .target
            .endpoint
            .map(|e| expand_env(&e, env))
            .transpose()?;
        Ok(TaskConfig {
            id,
            migration_type,
            mappings,
            state_dir,
            settings,
            cdc_start,
            cdc_start_binlog,
            cdc_stop,
            source: SourceConfig {
                engine,
                url,
                cdc: source_cdc,
            },
            target: TargetConfig {
                location,
                endpoint,
                region: raw.target.region,
                max_retries: raw.target.max_retries.unwrap_or(DEFAULT_S3_MAX_RETRIES) as usize,
                retry_timeout_s: raw
                    .target
                    .retry_timeout_seconds
                    .unwrap_or(DEFAULT_S3_RETRY_TIMEOUT_S),
                settings: target_settings,
            },
        })
    }
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
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
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
        assert_eq!(t.settings.lob_max_size_kb, Some(32));
        assert_eq!(t.settings.prep_mode, PrepMode::DropAndCreate);
        assert_eq!(t.source.url, "postgres://u:s3cret@h/db");
        assert!(!format!("{:?}", t.source).contains("s3cret"));
        assert_eq!(t.target.settings.bucket_folder, "raw");
        assert_eq!(t.state_dir, Path::new("/etc/trib/tributary-state"));
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
        assert_eq!(t.cdc_start, Some(crate::change::Lsn(0x4AF_B000_00D0)));
        assert_eq!(t.source.cdc.slot_name.as_deref(), Some("my_slot"));
        assert!(t.source.cdc.heartbeat);
        assert_eq!(
            t.source.cdc.heartbeat_frequency_min,
            DEFAULT_HEARTBEAT_FREQUENCY_MIN
        );
        let bad = text.replace("SlotName = \"my_slot\"", "SlotName = \"My-Slot\"");
        let e = TaskConfig::parse(&bad, Path::new("/"), &env).unwrap_err();
        assert!(e.to_string().contains("lower-case"), "{e}");
        let unknown = text.replace("HeartbeatEnable", "HeartbeatEnabled");
        assert!(TaskConfig::parse(&unknown, Path::new("/"), &env).is_err());
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
        assert!(cdc.source.cdc.heartbeat);
        assert!(cdc.target.settings.cdc.date_partition.is_some());
        let my = TaskConfig::load(&base.join("mysql-sharded.toml"), &env).unwrap();
        assert_eq!(my.source.engine, Engine::MySql);
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
        let Some(MySqlStart::Binlog(p)) = &t.cdc_start_binlog else {
            panic!("not a binlog position")
        };
        assert_eq!((p.file.as_str(), p.offset), ("mysql-bin.000024", 373));
        assert_eq!(t.source.cdc.server_id, Some(77));
        assert!(t.cdc_start.is_none());
        let g = mysql_task("cdc_start_position = \"0-1-17,1-2-3\"", "").unwrap();
        assert_eq!(
            g.cdc_start_binlog,
            Some(MySqlStart::MariaDbGtid("0-1-17,1-2-3".into()))
        );
        let e = mysql_task("cdc_start_position = \"4AF/B00000D0\"", "").unwrap_err();
        assert!(e.to_string().contains("mysql-bin.000024:373"), "{e}");
        let e = mysql_task("", "ServerId = 0").unwrap_err();
        assert!(e.to_string().contains("ServerId"), "{e}");
    }
}
