//! MySQL and MariaDB source: one consistent snapshot for every parallel reader ([`snapshot`]),
//! change capture from the binlog ([`capture`], [`stream`]), and `validate`'s checks.

mod binlog;
mod capture;
mod catalog;
mod prereq;
mod rows;
mod snapshot;
mod stream;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};

use crate::change::BinlogPos;
use crate::checkpoint::CdcState;
use crate::config::source::MyConfig;
use crate::config::tls::{TlsMode, TlsSettings};
use crate::config::{MigrationType, TaskConfig};
use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::layout;
use crate::mapping::{Lobs, TableMappings};
use crate::source::cause::{self, Cause, Endpoint};
use crate::source::login::{self, Engine};
use crate::source::{Capture, Report, Snapshot, Source, SourceObjects};
use snapshot::MySnapshot;

/// Session settings that make every value's text canonical: UTF-8, TIMESTAMP in UTC, and no
/// statement time limit for long table reads.
const SESSION_SETUP: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET SESSION net_write_timeout = 3600",
];

/// What every MySQL/MariaDB reader of one task shares.
#[derive(Clone)]
struct Selection {
    config: MyConfig,
    mappings: TableMappings,
    /// The task-wide LOB settings (`SupportLobs`, `LobMaxSize`); lob-settings rules refine them.
    lobs: Lobs,
    /// `MaxFullLoadSubTasks`: the snapshot's reader sessions.
    readers: usize,
}

impl Selection {
    /// A consistent snapshot of the selected tables, with its binlog position when
    /// `with_position` (change capture continues from it).
    async fn export(&self, with_position: bool) -> Result<MySnapshot> {
        MySnapshot::export(
            &self.config,
            &self.mappings,
            self.lobs,
            self.readers,
            with_position,
        )
        .await
    }
}

/// A MySQL or MariaDB source.
pub(crate) struct MySource {
    sel: Selection,
    migration: MigrationType,
}

impl MySource {
    /// The source of `task`, whose `[source]` is `config`.
    pub(crate) fn new(config: MyConfig, task: &TaskConfig) -> MySource {
        MySource {
            sel: Selection {
                config,
                mappings: task.mappings.clone(),
                lobs: Lobs {
                    support: task.settings.support_lobs,
                    max_bytes: task.settings.lob_max_bytes,
                },
                readers: task.settings.max_sub_tasks,
            },
            migration: task.migration_type,
        }
    }

    /// Tables selected and readable, RELOAD for the consistent snapshot, and for change capture
    /// the binlog settings and replication privileges.
    async fn checks(&self, conn: &mut Conn, report: &mut Report) -> Result<()> {
        let sel = &self.sel;
        let tables = catalog::selected_tables(conn, &sel.mappings, sel.lobs).await?;
        if tables.is_empty() {
            report.problems.push(Error::config(
                "table_mappings select no table in the source",
                "check schema-name (the database) and table-name patterns (% and _ are wildcards)",
            ));
        }
        for t in &tables {
            let s = &t.source.schema;
            let probe = format!(
                "SELECT 1 FROM {}.{} LIMIT 0",
                catalog::quote_ident(&s.schema),
                catalog::quote_ident(&s.table)
            );
            match conn.query_drop(probe).await {
                Ok(()) => report.ok.push(format!(
                    "table {}: {} columns, ~{} rows",
                    s.qualified(),
                    s.columns.len(),
                    t.source.estimated_rows.unwrap_or(0)
                )),
                Err(e) => report
                    .problems
                    .push(my_error(e, &format!("reading {}", s.qualified()))),
            }
        }
        let schemas: Vec<_> = tables.iter().map(|t| t.source.schema.clone()).collect();
        report.check(layout::check_tables(&sel.mappings, &schemas));
        // Without RELOAD the load still runs (a lock-free snapshot): a warning, not a problem.
        if let Some(w) = prereq::check_reload(conn, self.migration).await? {
            report.warnings.push(w);
        }
        if self.migration != MigrationType::FullLoad {
            report
                .warnings
                .extend(prereq::check_row_metadata(conn).await?);
            let found = prereq::check_cdc(conn).await?;
            if found.is_empty() {
                report
                    .ok
                    .push("binlog on, ROW format, FULL row image, replication privileges".into());
            }
            report.problems.extend(found);
        }
        Ok(())
    }
}

#[async_trait]
impl Source for MySource {
    async fn validate(&self, report: &mut Report) {
        let mut conn = match connect(&self.sel.config).await {
            Ok(c) => c,
            Err(e) => return report.problems.push(e),
        };
        report.ok.push(format!(
            "source {} reachable",
            redact_url(&self.sel.config.url)
        ));
        let r = self.checks(&mut conn, report).await;
        report.check(r);
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(self.sel.export(false).await?))
    }

    async fn capture(&self) -> Result<Box<dyn Capture>> {
        Ok(Box::new(
            capture::MyCapture::prepare(self.sel.clone()).await?,
        ))
    }

    async fn retained_log_bytes(&self, _cdc: &CdcState) -> Option<u64> {
        // No slot: the position lives in the checkpoint, and the server keeps binlogs by its
        // own retention setting, not for us.
        None
    }

    async fn retire(&self, _cdc: &CdcState) -> Result<()> {
        Ok(())
    }

    async fn drop_objects(&self, _cdc: Option<&CdcState>, _apply: bool) -> Result<SourceObjects> {
        // A binlog reader is a connection: nothing of the task stays on the server.
        Ok(SourceObjects::default())
    }
}

/// Maps a driver error to our kinds, with the fix for the common causes. Messages never carry
/// the URL (the driver does not put it there; we add only the redacted form).
fn my_error(e: mysql_async::Error, doing: &str) -> Error {
    my_error_at(e, doing, None)
}

/// [`my_error`] for an error of a connection to `at`, so a network cause can name the place.
fn my_error_at(e: mysql_async::Error, doing: &str, at: Option<Endpoint<'_>>) -> Error {
    let (kind, message, fix) = match &e {
        mysql_async::Error::Server(s) => {
            let msg = format!(
                "MySQL error while {doing}: {} (error {})",
                s.message, s.code
            );
            match s.code {
                1045 => (
                    ErrorKind::SourceAuth,
                    msg,
                    "fix the user/password in [source] url (use ${ENV_VAR} for the password)",
                ),
                1044 | 1142 | 1143 => (
                    ErrorKind::SourcePrivilege,
                    msg,
                    "GRANT SELECT ON the database (or table) TO the task's user",
                ),
                1227 => (
                    ErrorKind::SourcePrivilege,
                    msg,
                    "GRANT the privilege named above (RELOAD, REPLICATION SLAVE, REPLICATION CLIENT / BINLOG MONITOR) TO the task's user",
                ),
                1049 => (ErrorKind::Config, msg, "fix the database name in [source] url"),
                1146 | 1054 => (
                    ErrorKind::SourceSchema,
                    msg,
                    "a selected table was dropped or altered during the load; rerun the task",
                ),
                // KILL: MariaDB tells the session (1927); MySQL's sees a lost connection.
                1927 => (
                    ErrorKind::SourceConnect,
                    msg,
                    "the session was killed by an administrator (KILL, or a DBA's tool); the task reconnects by itself",
                ),
                // Lost connection, server shutting down: transient for a reader.
                2013 | 1053 | 2006 => (
                    ErrorKind::SourceConnect,
                    msg,
                    "check that the server is up; the task reconnects by itself",
                ),
                1040 => (
                    ErrorKind::SourceConnect,
                    msg,
                    "lower FullLoadSettings.MaxFullLoadSubTasks or raise max_connections",
                ),
                1236 => (
                    ErrorKind::Source,
                    msg,
                    "the binlog position is no longer on the server (purged?): raise binlog retention and reload the task with --restart",
                ),
                _ => (ErrorKind::Source, msg, "see the MySQL server log for details"),
            }
        }
        mysql_async::Error::Url(_) => (
            ErrorKind::Config,
            format!("[source] url is not a valid MySQL URL: {e}"),
            "use mysql://user:password@host:3306/database",
        ),
        _ => {
            let closed = matches!(
                e,
                mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed)
            );
            if let Some(c) = cause::find(&e).or(closed.then_some(Cause::Closed)) {
                return cause::describe("MySQL", at, doing, c).with_source(e);
            }
            (
                ErrorKind::SourceConnect,
                format!("cannot talk to MySQL while {doing}: {e}"),
                "check that the server is running and that host and port in [source] url are right",
            )
        }
    };
    Error::new(kind, message, fix).with_source(e)
}

/// Connection options from the task's URL, with canonical session settings; `tls`: whether to
/// ask for TLS, `name`: the name to check the certificate against instead of the host.
/// `url` is the driver URL with the login filled in ([`crate::source::login`]).
fn options(source: &MyConfig, url: &str, tls: bool, name: Option<&str>) -> Result<Opts> {
    let opts = Opts::from_url(url).map_err(|e| {
        Error::config(
            format!(
                "[source] url {} is not a MySQL URL: {e}",
                redact_url(&source.url)
            ),
            "use mysql://user:password@host:3306/database",
        )
    })?;
    Ok(OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .ssl_opts(tls.then(|| ssl_opts(&source.tls, name)))
        // RDS's AWSAuthenticationPlugin takes the token as a clear-text password (over TLS).
        .enable_cleartext_plugin(source.auth.iam)
        .init(
            SESSION_SETUP
                .iter()
                .map(|s| s.to_string())
                .chain(source.after_connect.clone())
                .collect(),
        )
        .into())
}

/// The driver's TLS options for `ssl-mode`, `ssl-ca`, `ssl-cert` and `ssl-key`.
fn ssl_opts(tls: &TlsSettings, name: Option<&str>) -> SslOpts {
    let mut opts = SslOpts::default()
        .with_danger_accept_invalid_certs(tls.mode < TlsMode::VerifyCa)
        .with_danger_skip_domain_validation(tls.mode < TlsMode::VerifyFull)
        .with_danger_tls_hostname_override(name.map(str::to_string));
    if let Some(bundle) = crate::source::tls::ca_bundle(tls) {
        opts = opts
            .with_root_certs(vec![bundle.into()])
            .with_disable_built_in_roots(true);
    }
    if let Some(c) = &tls.client {
        opts = opts.with_client_identity(Some(ClientIdentity::new(
            c.cert.clone().into(),
            c.key.clone().into(),
        )));
    }
    opts
}

/// Opens a session with canonical output settings, over TLS as `ssl-mode` asks.
async fn connect(source: &MyConfig) -> Result<Conn> {
    crate::source::tls::install_provider();
    let tls = &source.tls;
    // The login is obtained again for every connection (a rotated secret, a fresh token).
    let url = &login::driver_url(&source.driver_url, &source.auth, Engine::MySql).await?;
    let mut attempt = Conn::new(options(source, url, tls.mode != TlsMode::Disable, None)?).await;
    if let Err(e) = &attempt {
        if tls.mode == TlsMode::Prefer
            && matches!(
                e,
                mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
            )
        {
            // PREFERRED: the server offers no TLS, so connect without.
            attempt = Conn::new(options(source, url, false, None)?).await;
        } else if tls.mode == TlsMode::VerifyCa {
            // The driver's VERIFY_CA still checks the name with this rustls: check the chain
            // again against a name the certificate itself carries.
            if let Some(name) = crate::source::tls::names_of_refused_certificate(e)
                .and_then(|names| names.into_iter().next())
            {
                attempt = Conn::new(options(source, url, true, Some(&name))?).await;
            }
        }
    }
    attempt.map_err(|e| {
        let (host, port) = options(source, url, false, None)
            .map(|o| (o.ip_or_hostname().to_string(), o.tcp_port()))
            .unwrap_or_default();
        // Statements the server refuses while a session opens can only be the init list:
        // ours never fail, so it is AfterConnectScript.
        let script_failed = source.after_connect.is_some()
            && matches!(&e, mysql_async::Error::Server(s) if s.code != 1045);
        let mut e = crate::source::tls::handshake_error(&host, tls, &e)
            .unwrap_or_else(|| {
                let doing = format!("connecting to {}", redact_url(&source.url));
                my_error_at(e, &doing, Some(Endpoint { host: &host, port }))
            });
        if script_failed {
            e.fix = "fix the SQL in [source.settings] AfterConnectScript (it runs on every new session)".into();
        }
        login::during_rotation(&source.auth, e)
    })
}

/// The server's current binlog position, or None when the binary log is off.
async fn binlog_position(conn: &mut Conn) -> Result<Option<BinlogPos>> {
    // MySQL 8.4 renamed SHOW MASTER STATUS; try the old name first (MariaDB, MySQL ≤ 8.3).
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(s)) if s.code == 1064 => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .map_err(|e| my_error(e, "reading the binlog position"))?,
        Err(e) => return Err(my_error(e, "reading the binlog position")),
    };
    Ok(row.and_then(|r| {
        Some(BinlogPos {
            file: r.get::<String, usize>(0)?,
            offset: r.get::<u64, usize>(1)?,
        })
    }))
}
