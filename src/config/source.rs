//! `[source]`: the engine, chosen here once, with each engine's own settings (DMS endpoint
//! setting names in `[source.settings]`) and change-capture start position.

use std::time::Duration;

use super::settings::SettingsBag;
use super::tls::{Dialect, TlsSettings};
use super::MigrationType;
use crate::change::{BinlogPos, Lsn};
use crate::error::{redact_url, Error, Result};

/// Default `HeartbeatFrequency`, minutes.
const DEFAULT_HEARTBEAT_FREQUENCY_MIN: u64 = 5;
/// Default `HeartbeatSchema`.
const DEFAULT_HEARTBEAT_SCHEMA: &str = "public";
/// What an unchanged TOASTed value is written as when `UseCsvNoSupValue`/`CsvNoSupValue` do not
/// name a marker: the placeholder PostgreSQL's own `test_decoding` prints for such a value.
pub(crate) const DEFAULT_UNCHANGED_MARKER: &str = "unchanged-toast-datum";

/// `[source]`, per engine.
#[derive(Clone)]
pub(crate) enum SourceConfig {
    /// PostgreSQL 10+.
    Postgres(PgConfig),
    /// MySQL 5.7/8.x and MariaDB 10.x.
    MySql(MyConfig),
}

/// A PostgreSQL source.
#[derive(Clone)]
pub(crate) struct PgConfig {
    /// Connection URL with `${ENV}` expanded. Holds secrets: format it only redacted.
    pub(crate) url: String,
    /// [`PgConfig::url`] without its TLS parameters, for the drivers.
    pub(crate) driver_url: String,
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey` from the URL.
    pub(crate) tls: TlsSettings,
    /// `SlotName`, or `tributary_<task id>`.
    pub(crate) slot_name: String,
    /// True when `SlotName` was given: a `cdc` task may then read an existing slot.
    pub(crate) slot_given: bool,
    /// `PublicationName` (ours; default `tributary_<task id>`).
    pub(crate) publication: String,
    /// True when `PublicationName` was given (`drop` then keeps it: it may be shared).
    pub(crate) publication_given: bool,
    /// `HeartbeatEnable` with `HeartbeatFrequency` and `HeartbeatSchema`.
    pub(crate) heartbeat: Option<Heartbeat>,
    /// `UnchangedToastValues`: what an UPDATE's unchanged, unsent TOASTed value becomes.
    pub(crate) unchanged_toast: UnchangedToast,
    /// The endpoint settings that decide how types are written.
    pub(crate) types: PgTypes,
    /// `ExecuteTimeout`: the statement timeout of catalog and metadata queries (not of the
    /// full load's COPY streams, which are one long statement per table).
    pub(crate) execute_timeout: Duration,
    /// `AfterConnectScript`: SQL run on every new connection (not the replication stream's).
    pub(crate) after_connect: Option<String>,
    /// `CdcStartPosition` (`[task] cdc_start_position`): an LSN in the existing slot `SlotName`.
    pub(crate) start: Option<Lsn>,
    /// Where the login comes from besides the URL (Secrets Manager, IAM tokens).
    pub(crate) auth: Auth,
}

/// PostgreSQL endpoint settings that shape values, by DMS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTypes {
    /// `MapUnboundedNumericAsString`: `numeric` without precision is written as text (every
    /// digit, NaN, the infinities) instead of DMS's NUMERIC(28,6).
    pub(crate) numeric_as_string: bool,
    /// `MapBooleanAsBoolean`: `boolean` is a BOOLEAN; by default (false, as in DMS) it is the
    /// string `true`/`false` (DMS's CHAR(5)) — a Parquet UTF8 column.
    pub(crate) boolean_as_boolean: bool,
    /// `TrimSpaceInChar` (default true, as in DMS): `char(n)` values lose their trailing blanks.
    pub(crate) trim_char: bool,
    /// `MapLongVarcharAs` `CLOB`/`NCLOB`: `varchar` without a length is a LOB (cut at
    /// `LobMaxSize`, dropped without `SupportLobs`); `WSTRING` (default) keeps it a string.
    pub(crate) long_varchar_as_lob: bool,
}

impl Default for PgTypes {
    fn default() -> Self {
        PgTypes {
            numeric_as_string: false,
            boolean_as_boolean: false,
            trim_char: true,
            long_varchar_as_lob: false,
        }
    }
}

/// Default `ExecuteTimeout`, seconds (DMS's).
const DEFAULT_EXECUTE_TIMEOUT_S: u64 = 60;

/// DMS's heartbeat: a row written periodically so an idle database's slot keeps moving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    /// `HeartbeatFrequency`.
    pub(crate) every: Duration,
    /// `HeartbeatSchema`.
    pub(crate) schema: String,
}

/// What an UPDATE's unchanged TOASTed value is written as when PostgreSQL did not send it (the
/// table's `REPLICA IDENTITY` is not FULL). Never a silent NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnchangedToast {
    /// `marker` (default): the marker string, counted per table; consumers keep the column's
    /// previous value when they see it.
    Marker(String),
    /// `lookup`: the value read from the table by key at the time the change is processed
    /// (the marker when the row is gone).
    Lookup(String),
    /// `fail`: stop the task with the fix (release 0.1.0's behaviour).
    Fail,
}

/// A MySQL or MariaDB source.
#[derive(Clone)]
pub(crate) struct MyConfig {
    /// Connection URL with `${ENV}` expanded. Holds secrets: format it only redacted.
    pub(crate) url: String,
    /// [`MyConfig::url`] without its TLS parameters, for the driver.
    pub(crate) driver_url: String,
    /// `ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key` from the URL.
    pub(crate) tls: TlsSettings,
    /// `ServerId` (ours): the replica id the binlog reader registers with.
    pub(crate) server_id: u32,
    /// `AfterConnectScript`: SQL run on every new connection, after Tributary's session setup.
    pub(crate) after_connect: Option<String>,
    /// `CdcStartPosition` of a `cdc` task.
    pub(crate) start: Option<BinlogStart>,
    /// Where the login comes from besides the URL (Secrets Manager, IAM tokens).
    pub(crate) auth: Auth,
}

/// A source's login when the URL does not hold it all: obtained again for every connection
/// (`source::login`), so a rotated secret or an expired token never stops a reconnect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Auth {
    /// `SecretsManagerSecretId`: the secret (name or ARN, RDS JSON shape) holding the user,
    /// password and, when present, host, port and database.
    pub(crate) secret: Option<String>,
    /// `SecretsManagerAccessRoleArn`: the role assumed to read the secret.
    pub(crate) secret_role: Option<String>,
    /// `IamDatabaseAuthentication` (ours): the password is an RDS IAM authentication token.
    pub(crate) iam: bool,
}

/// Where a MySQL/MariaDB `cdc` task starts (`cdc_start_position`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BinlogStart {
    /// A binlog file and offset, DMS's native form (`mysql-bin.000024:373`).
    Position(BinlogPos),
    /// A MariaDB GTID position (`0-1-1234`, one `domain-server-sequence` per domain, comma
    /// separated): the task starts right after that transaction.
    MariaDbGtid(String),
}

/// Every name `[source.settings]` accepts for PostgreSQL.
const PG_SETTINGS: &[&str] = &[
    "SlotName",
    "PluginName",
    "PublicationName",
    "HeartbeatEnable",
    "HeartbeatFrequency",
    "HeartbeatSchema",
    "CaptureDdls",
    "DdlArtifactsSchema",
    "UnchangedToastValues",
    "MapUnboundedNumericAsString",
    "MapBooleanAsBoolean",
    "TrimSpaceInChar",
    "MapLongVarcharAs",
    "MapJsonbAsClob",
    "ExecuteTimeout",
    "AfterConnectScript",
    "DatabaseMode",
    "FailTasksOnLobTruncation",
    "fetchCacheSize",
    "SecretsManagerSecretId",
    "SecretsManagerAccessRoleArn",
    "IamDatabaseAuthentication",
];

/// Every name `[source.settings]` accepts for MySQL/MariaDB.
const MY_SETTINGS: &[&str] = &[
    "ServerId",
    "AfterConnectScript",
    "ServerTimezone",
    "EventsPollInterval",
    "CleanSourceMetadataOnMismatch",
    "ParallelLoadThreads",
    "SecretsManagerSecretId",
    "SecretsManagerAccessRoleArn",
    "IamDatabaseAuthentication",
];

/// What `[source]` says, before it is checked.
pub(super) struct RawSource<'a> {
    pub(crate) engine: &'a str,
    pub(crate) url: String,
    pub(crate) settings: SettingsBag,
    pub(crate) cdc_start: Option<&'a str>,
}

impl SourceConfig {
    /// Parses `[source]` for task `task_id`; `marker` is the target's `CsvNoSupValue` when
    /// `UseCsvNoSupValue` is on.
    pub(super) fn parse(
        raw: RawSource<'_>,
        task_id: &str,
        migration: MigrationType,
        marker: Option<String>,
    ) -> Result<SourceConfig> {
        let RawSource {
            engine,
            url,
            settings,
            cdc_start,
        } = raw;
        if cdc_start.is_some() && migration != MigrationType::Cdc {
            return Err(Error::config(
                "[task] cdc_start_position needs migration_type = \"cdc\"",
                "set migration_type = \"cdc\", or remove cdc_start_position",
            ));
        }
        match engine {
            "postgres" | "postgresql" => PgConfig::parse(url, settings, cdc_start, task_id, marker)
                .map(SourceConfig::Postgres),
            "mysql" | "mariadb" => {
                MyConfig::parse(url, settings, cdc_start, task_id).map(SourceConfig::MySql)
            }
            other => Err(Error::config(
                format!("[source] engine {other:?} is not supported"),
                "use \"postgres\" or \"mysql\" (MySQL and MariaDB)",
            )),
        }
    }

    /// The connection URL (holds secrets).
    pub(crate) fn url(&self) -> &str {
        match self {
            SourceConfig::Postgres(c) => &c.url,
            SourceConfig::MySql(c) => &c.url,
        }
    }

    /// The URL with its password hidden.
    pub(crate) fn redacted(&self) -> String {
        redact_url(self.url())
    }
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = match self {
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::MySql(_) => "mysql",
        };
        f.debug_struct("SourceConfig")
            .field("engine", &engine)
            .field("url", &self.redacted())
            .finish()
    }
}

impl PgConfig {
    fn parse(
        url: String,
        mut bag: SettingsBag,
        cdc_start: Option<&str>,
        task_id: &str,
        marker: Option<String>,
    ) -> Result<PgConfig> {
        bag.choice("PluginName", "pgoutput", &["pgoutput"])?;
        let given = bag.string("SlotName");
        let publication = bag.string("PublicationName");
        for (what, v) in [("SlotName", &given), ("PublicationName", &publication)] {
            if let Some(v) = v {
                check_name(what, v)?;
            }
        }
        let heartbeat = bag.bool("HeartbeatEnable", false)?;
        let minutes = bag.int(
            "HeartbeatFrequency",
            DEFAULT_HEARTBEAT_FREQUENCY_MIN,
            1,
            24 * 60,
            "minutes",
        )?;
        let schema = bag
            .string("HeartbeatSchema")
            .unwrap_or_else(|| DEFAULT_HEARTBEAT_SCHEMA.to_string());
        // DDLs reach us through pgoutput's Relation messages; no event trigger is installed.
        bag.bool("CaptureDdls", true)?;
        bag.string("DdlArtifactsSchema");
        let marker = marker.unwrap_or_else(|| DEFAULT_UNCHANGED_MARKER.to_string());
        let unchanged_toast = match bag.choice(
            "UnchangedToastValues",
            "marker",
            &["marker", "lookup", "fail"],
        )? {
            "lookup" => UnchangedToast::Lookup(marker),
            "fail" => UnchangedToast::Fail,
            _ => UnchangedToast::Marker(marker),
        };
        let types = PgTypes {
            numeric_as_string: bag.bool("MapUnboundedNumericAsString", false)?,
            boolean_as_boolean: bag.bool("MapBooleanAsBoolean", false)?,
            trim_char: bag.bool("TrimSpaceInChar", true)?,
            long_varchar_as_lob: bag.choice(
                "MapLongVarcharAs",
                "wstring",
                &["wstring", "clob", "nclob"],
            )? != "wstring",
        };
        // jsonb is a LOB written as its text either way: DMS's NCLOB and CLOB are both strings
        // on S3, so the setting is accepted and checked, and changes nothing.
        bag.bool("MapJsonbAsClob", false)?;
        let execute_timeout = Duration::from_secs(bag.int(
            "ExecuteTimeout",
            DEFAULT_EXECUTE_TIMEOUT_S,
            1,
            86_400,
            "seconds",
        )?);
        let after_connect = bag
            .string("AfterConnectScript")
            .filter(|s| !s.trim().is_empty());
        bag.choice("DatabaseMode", "default", &["default"])
            .map_err(|_| {
                Error::config(
                "[source.settings] DatabaseMode babelfish is not supported",
                "read the Babelfish database through its PostgreSQL port with DatabaseMode default",
            )
            })?;
        // The full load streams whole tables (COPY), so there is no fetch cache to size.
        bag.int("fetchCacheSize", 10_000, 1, u64::from(u32::MAX), "rows")?;
        if bag.bool("FailTasksOnLobTruncation", false)? {
            return Err(Error::config(
                "[source.settings] FailTasksOnLobTruncation=true is not supported",
                "remove it: a LOB cut at LobMaxSize is logged and counted per table (status shows it); raise LobMaxSize to keep whole values",
            ));
        }
        let auth = Auth::parse(&mut bag, &url)?;
        bag.finish(PG_SETTINGS)?;
        let start = cdc_start
            .map(|s| {
                s.parse::<Lsn>().map_err(|e| {
                    Error::config(
                        format!("[task] cdc_start_position: {e}"),
                        "use a PostgreSQL LSN such as 4AF/B00000D0 (the slot's confirmed_flush_lsn)",
                    )
                })
            })
            .transpose()?;
        if start.is_some() && given.is_none() {
            return Err(Error::config(
                "[task] cdc_start_position needs [source.settings] SlotName",
                "name the existing slot in SlotName (as DMS requires), or remove cdc_start_position",
            ));
        }
        let default = default_name(task_id);
        let (driver_url, tls) = TlsSettings::split_url(&url, Dialect::Libpq)?;
        auth.check_tls(&tls, "sslmode=require")?;
        Ok(PgConfig {
            url,
            driver_url,
            tls,
            slot_given: given.is_some(),
            slot_name: given.unwrap_or_else(|| default.clone()),
            publication_given: publication.is_some(),
            publication: publication.unwrap_or(default),
            heartbeat: heartbeat.then(|| Heartbeat {
                every: Duration::from_secs(minutes * 60),
                schema,
            }),
            unchanged_toast,
            types,
            execute_timeout,
            after_connect,
            start,
            auth,
        })
    }
}

impl MyConfig {
    fn parse(
        url: String,
        mut bag: SettingsBag,
        cdc_start: Option<&str>,
        task_id: &str,
    ) -> Result<MyConfig> {
        let server_id = match bag.string("ServerId") {
            None => default_server_id(task_id),
            Some(v) => v.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                Error::config(
                    format!("[source.settings] ServerId {v:?} is not valid"),
                    "use a number from 1 to 4294967295 that no other replica of the server uses",
                )
            })?,
        };
        let after_connect = bag
            .string("AfterConnectScript")
            .filter(|s| !s.trim().is_empty());
        // Sessions read TIMESTAMP in UTC (time_zone '+00:00') and the binlog carries epoch
        // seconds, so the server's zone is never needed to interpret a value; checked only.
        if let Some(zone) = bag.string("ServerTimezone") {
            crate::layout::parse_timezone(&zone).map_err(|_| {
                Error::config(
                    format!("[source.settings] ServerTimezone {zone:?} is not a time zone"),
                    "use an IANA name such as US/Pacific or Europe/Paris (no quotes)",
                )
            })?;
        }
        // The binlog is streamed (the server pushes events), so there is no poll to pace.
        bag.int("EventsPollInterval", 5, 1, 60, "seconds")?;
        // Table metadata is read from the catalog and the binlog's row metadata, never cached
        // across runs, so there is nothing to clean on a mismatch.
        bag.bool("CleanSourceMetadataOnMismatch", false)?;
        // DMS's ParallelLoadThreads of a MySQL endpoint speeds loading *into* MySQL; the full
        // load's readers are MaxFullLoadSubTasks.
        bag.int("ParallelLoadThreads", 0, 0, 32, "threads")?;
        let auth = Auth::parse(&mut bag, &url)?;
        bag.finish(MY_SETTINGS)?;
        let (driver_url, tls) = TlsSettings::split_url(&url, Dialect::MySql)?;
        auth.check_tls(&tls, "ssl-mode=REQUIRED")?;
        Ok(MyConfig {
            url,
            driver_url,
            tls,
            server_id,
            after_connect,
            start: cdc_start.map(BinlogStart::parse).transpose()?,
            auth,
        })
    }
}

impl Auth {
    /// `SecretsManagerSecretId`, `SecretsManagerAccessRoleArn` and `IamDatabaseAuthentication`,
    /// checked against what the URL `url` already says.
    fn parse(bag: &mut SettingsBag, url: &str) -> Result<Auth> {
        let auth = Auth {
            secret: bag.string("SecretsManagerSecretId"),
            secret_role: bag.string("SecretsManagerAccessRoleArn"),
            iam: bag.bool("IamDatabaseAuthentication", false)?,
        };
        if auth.secret_role.is_some() && auth.secret.is_none() {
            return Err(Error::config(
                "[source.settings] SecretsManagerAccessRoleArn is set without SecretsManagerSecretId",
                "name the secret in SecretsManagerSecretId, or remove SecretsManagerAccessRoleArn",
            ));
        }
        if let Some(role) = &auth.secret_role {
            if !role.starts_with("arn:") || !role.contains(":role/") {
                return Err(Error::config(
                    format!(
                        "[source.settings] SecretsManagerAccessRoleArn {role:?} is not a role ARN"
                    ),
                    "use the role's ARN, such as arn:aws:iam::123456789012:role/dms-secrets-access",
                ));
            }
        }
        let has_password = url::Url::parse(url).is_ok_and(|u| u.password().is_some());
        if has_password && (auth.secret.is_some() || auth.iam) {
            let from = if auth.secret.is_some() {
                "SecretsManagerSecretId"
            } else {
                "IamDatabaseAuthentication"
            };
            return Err(Error::config(
                format!("[source] url has a password, but {from} provides it"),
                "remove the password from [source] url (keep the user for IAM authentication)",
            ));
        }
        Ok(auth)
    }

    /// RDS takes IAM tokens only over TLS, and the token is a password for 15 minutes: a task
    /// that turns TLS off is refused rather than sending it in clear.
    fn check_tls(&self, tls: &TlsSettings, fix: &str) -> Result<()> {
        if self.iam && tls.mode == super::tls::TlsMode::Disable {
            return Err(Error::config(
                "IamDatabaseAuthentication needs TLS, but [source] url turns it off",
                format!("use {fix} (or stronger) in [source] url"),
            ));
        }
        Ok(())
    }

    /// True when a connection's login needs AWS (a secret or a token).
    pub(crate) fn uses_aws(&self) -> bool {
        self.secret.is_some() || self.iam
    }
}

impl BinlogStart {
    /// Parses either form.
    pub(crate) fn parse(s: &str) -> Result<BinlogStart> {
        if let Ok(p) = s.parse::<BinlogPos>() {
            return Ok(BinlogStart::Position(p));
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
            return Ok(BinlogStart::MariaDbGtid(s.replace(' ', "")));
        }
        Err(Error::config(
            format!("[task] cdc_start_position {s:?} is neither a binlog position nor a MariaDB GTID position"),
            "use a binlog file and offset such as mysql-bin.000024:373 (SHOW MASTER STATUS), or a MariaDB GTID such as 0-1-1234 (@@gtid_binlog_pos)",
        ))
    }
}

/// A valid slot or publication name: what `START_REPLICATION SLOT name` accepts unquoted.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        return Ok(());
    }
    Err(Error::config(
        format!("{what} {name:?} is not a valid name"),
        "use at most 63 lower-case letters, digits and underscores",
    ))
}

/// The slot (and publication) name a task uses when none is configured.
fn default_name(task_id: &str) -> String {
    let mut s: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s.insert_str(0, "tributary_");
    s.truncate(63);
    s
}

/// A replica id derived from the task id, stable across restarts (so a restarted task replaces
/// its own stale dump connection) and unlikely to collide with real replicas' small ids.
fn default_server_id(task_id: &str) -> u32 {
    // FNV-1a: tiny, stable across Rust versions (unlike DefaultHasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in task_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    1_000_000 + h % 1_000_000_000
}

/// Every name `[source.settings]` accepts for `engine` (`postgres` or `mysql`), for
/// `tributary import-dms`, which carries over exactly what this parser takes.
pub(crate) fn accepted_settings(engine: &str) -> &'static [&'static str] {
    if engine == "mysql" {
        MY_SETTINGS
    } else {
        PG_SETTINGS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_and_ids() {
        assert_eq!(default_name("Shop-To-Lake"), "tributary_shop_to_lake");
        assert!(check_name("SlotName", "My-Slot").is_err());
        assert!(default_server_id("a") != default_server_id("b"));
        assert!(default_server_id("task") >= 1_000_000);
    }
}
