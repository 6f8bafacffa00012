//! PostgreSQL source: the full load's exported snapshot ([`snapshot`]), change capture from a
//! pgoutput replication slot ([`capture`], [`stream`]), and `validate`'s checks.

mod capture;
mod catalog;
mod copy;
mod decode;
mod pgoutput;
mod replication;
mod slot;
mod snapshot;
mod stream;
mod toast;

use async_trait::async_trait;
use tokio_postgres::Client;

use crate::checkpoint::CdcState;
use crate::config::source::PgConfig;
use crate::config::{MigrationType, TaskConfig};
use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::layout;
use crate::mapping::{Lobs, RelationKind, TableMappings};
use crate::source::cause::{self, Cause, Endpoint};
use crate::source::login::{self, Engine};
use crate::source::{Capture, Report, Snapshot, Source, SourceObjects};
use snapshot::PgSnapshot;

/// Session settings that make every value's text canonical (see [`crate::change::DmsType`]).
const SESSION_SETUP: &str =
    "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres';
     SET extra_float_digits = 1; SET bytea_output = 'hex'; SET client_encoding = 'UTF8';
     SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0";

/// What every PostgreSQL reader of one task shares.
#[derive(Clone)]
struct Selection {
    task_id: String,
    config: PgConfig,
    mappings: TableMappings,
    /// The task-wide LOB settings (`SupportLobs`, `LobMaxSize`); lob-settings rules refine them.
    lobs: Lobs,
}

/// A PostgreSQL source.
pub(crate) struct PgSource {
    sel: Selection,
    migration: MigrationType,
    /// The task's file format and marker choice, for the fixes `validate` suggests.
    output: toast::Output,
}

impl PgSource {
    /// The source of `task`, whose `[source]` is `config`.
    pub(crate) fn new(config: PgConfig, task: &TaskConfig) -> PgSource {
        PgSource {
            sel: Selection {
                task_id: task.id.clone(),
                config,
                mappings: task.mappings.clone(),
                lobs: Lobs {
                    support: task.settings.support_lobs,
                    max_bytes: task.settings.lob_max_bytes,
                },
            },
            migration: task.migration_type,
            output: toast::Output {
                format: task.target.settings.data_format,
                marker_chosen: task.target.settings.unchanged_marker.is_some(),
            },
        }
    }

    /// The change-capture checks: server settings, privilege, replica identities, what
    /// unchanged TOASTed values become, and the slot's retained WAL.
    async fn validate_cdc(&self, client: &Client, report: &mut Report) -> Result<()> {
        let c = &self.sel.config;
        let found = slot::check_prerequisites(client).await?;
        if found.is_empty() {
            report.ok.push(
                "wal_level=logical, replication slots and senders available, REPLICATION privilege"
                    .into(),
            );
        }
        report.problems.extend(found);
        let selected: Vec<_> = catalog::selected_tables(
            client,
            &self.sel.mappings,
            self.sel.lobs,
            self.sel.config.types,
        )
        .await?
        .into_iter()
        .filter(|t| t.source.kind == RelationKind::Table)
        .map(|t| t.source.schema)
        .collect();
        report
            .problems
            .extend(slot::identity_problems(client, &selected, &self.sel.mappings).await?);
        let tables: Vec<String> = selected.iter().map(|t| t.qualified()).collect();
        // A publication the task does not create must already publish every selected table.
        match slot::publication_lacks(client, &c.publication, &tables).await? {
            Some(Some(problem)) => report.problems.push(problem),
            Some(None) => report.ok.push(format!(
                "publication {} publishes the selected tables",
                c.publication
            )),
            None if c.publication_given => report
                .ok
                .push(format!("publication {} will be created", c.publication)),
            None => {}
        }
        for t in slot::tables_without_identity(client, &tables).await? {
            report.problems.push(Error::config(
                format!("{t} has no primary key or replica identity; UPDATE/DELETE on it would fail once published"),
                format!("ALTER TABLE {t} REPLICA IDENTITY FULL (or add a primary key), or exclude it"),
            ));
        }
        for t in slot::tables_with_toast(client, &tables).await? {
            match toast::check(&t, &c.unchanged_toast, self.output) {
                toast::Finding::Ok(line) => report.ok.push(line),
                toast::Finding::Warning(e) => report.warnings.push(e),
                toast::Finding::Problem(e) => report.problems.push(e),
            }
        }
        if let Some(info) = slot::slot_info(client, &c.slot_name).await? {
            let retained = info.retained_bytes.unwrap_or(0);
            if retained > slot::SLOT_LAG_WARN_BYTES {
                report.problems.push(Error::new(
                    ErrorKind::Source,
                    format!(
                        "replication slot {} retains {} MB of WAL",
                        c.slot_name,
                        retained / (1024 * 1024)
                    ),
                    "run the task so it catches up, or drop the slot if the task is retired",
                ));
            } else {
                report.ok.push(format!(
                    "slot {} exists, retains {retained} bytes of WAL",
                    c.slot_name
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Source for PgSource {
    async fn validate(&self, report: &mut Report) {
        let sel = &self.sel;
        if self.migration != MigrationType::FullLoad {
            match connect(&sel.config).await {
                Ok(client) => {
                    let r = self.validate_cdc(&client, report).await;
                    report.check(r);
                }
                Err(e) => return report.problems.push(e),
            }
        }
        match PgSnapshot::export(&sel.config, &sel.mappings, sel.lobs).await {
            Ok(snapshot) => {
                report
                    .ok
                    .push(format!("source {} reachable", redact_url(&sel.config.url)));
                let tables = snapshot.pg_tables();
                if tables.is_empty() {
                    report.problems.push(no_tables());
                }
                for t in tables {
                    let name = t.source.schema.qualified();
                    if t.can_select {
                        report.ok.push(format!(
                            "table {name}: {} columns, ~{} rows",
                            t.columns.len(),
                            t.source.estimated_rows.unwrap_or(0)
                        ));
                    } else {
                        report.problems.push(Error::new(
                            ErrorKind::SourcePrivilege,
                            format!("the source user may not SELECT from {name}"),
                            format!("GRANT SELECT ON {name} TO <task user>"),
                        ));
                    }
                }
                let schemas: Vec<_> = tables.iter().map(|t| t.source.schema.clone()).collect();
                report.check(layout::check_tables(&sel.mappings, &schemas));
                let _ = snapshot.close().await;
            }
            Err(e) => report.problems.push(e),
        }
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        let sel = &self.sel;
        Ok(Box::new(
            PgSnapshot::export(&sel.config, &sel.mappings, sel.lobs).await?,
        ))
    }

    async fn capture(&self) -> Result<Box<dyn Capture>> {
        Ok(Box::new(
            capture::PgCapture::prepare(self.sel.clone()).await?,
        ))
    }

    async fn retained_log_bytes(&self, cdc: &CdcState) -> Option<u64> {
        let client = connect_timed(&self.sel.config).await.ok()?;
        let info = slot::slot_info(&client, &cdc.slot).await.ok()??;
        info.retained_bytes
    }

    async fn retire(&self, cdc: &CdcState) -> Result<()> {
        if cdc.created_slot {
            // A fresh run gets a fresh slot; the old one would pin WAL forever.
            let admin = connect_timed(&self.sel.config).await?;
            slot::drop_slot(&admin, &cdc.slot).await?;
            tracing::info!(slot = %cdc.slot, "dropped the previous run's replication slot");
        }
        Ok(())
    }

    async fn drop_objects(&self, cdc: Option<&CdcState>, apply: bool) -> Result<SourceObjects> {
        let c = &self.sel.config;
        let client = connect_timed(c).await?;
        let mut found = SourceObjects::default();
        // The slot: ours when named after the task, or when the checkpoint says we created it.
        let name = cdc.map_or(c.slot_name.as_str(), |s| s.slot.as_str());
        let ours = !c.slot_given || cdc.is_some_and(|s| s.created_slot);
        if let Some(pid) = slot::slot_owner(&client, name).await? {
            if !ours {
                found.kept.push(format!(
                    "replication slot {name} (named in SlotName, not created by the task)"
                ));
            } else if let Some(pid) = pid {
                return Err(Error::config(
                    format!("replication slot {name} is in use by server process {pid}"),
                    "stop the task (or whatever streams from the slot) first, then drop again",
                ));
            } else {
                if apply {
                    slot::drop_slot(&client, name).await?;
                }
                found.owned.push(format!("replication slot {name}"));
            }
        }
        // The publication: ours when named after the task.
        if slot::publication_exists(&client, &c.publication).await? {
            if c.publication_given {
                found.kept.push(format!(
                    "publication {} (named in PublicationName, may be shared)",
                    c.publication
                ));
            } else {
                if apply {
                    slot::drop_publication(&client, &c.publication).await?;
                }
                found.owned.push(format!("publication {}", c.publication));
            }
        }
        // The heartbeat table: ours when only this task ever wrote it.
        if let Some(hb) = &c.heartbeat {
            let table = format!("{}.{}", hb.schema, slot::HEARTBEAT_TABLE);
            match slot::heartbeat_writers(&client, &hb.schema, &self.sel.task_id).await? {
                None => {}
                Some(0) => {
                    if apply {
                        slot::drop_heartbeat(&client, &hb.schema).await?;
                    }
                    found.owned.push(format!("heartbeat table {table}"));
                }
                Some(_) => found.kept.push(format!(
                    "heartbeat table {table} (other tasks or DMS write it too)"
                )),
            }
        }
        Ok(found)
    }
}

/// The error for mappings that select nothing.
fn no_tables() -> Error {
    Error::config(
        "table_mappings select no table in the source",
        "check schema-name/table-name patterns (case-sensitive; % and _ are wildcards)",
    )
}

/// Maps a tokio-postgres error to our kinds, with the fix for the common causes.
fn pg_error(e: tokio_postgres::Error, doing: &str) -> Error {
    pg_error_at(e, doing, None)
}

/// [`pg_error`] for an error of a connection to `at`, so a network cause can name the place.
fn pg_error_at(e: tokio_postgres::Error, doing: &str, at: Option<Endpoint<'_>>) -> Error {
    let Some(db) = e.as_db_error() else {
        return link_error(e, doing, at);
    };
    let code = db.code().code();
    let msg = format!(
        "PostgreSQL error while {doing}: {} (SQLSTATE {code})",
        db.message()
    );
    let (kind, fix) = sqlstate_kind(code).unwrap_or((
        ErrorKind::Source,
        "see the PostgreSQL server log for details",
    ));
    Error::new(kind, msg, fix).with_source(e)
}

/// An error without a SQLSTATE: the network's cause when there is one (DNS, refused, timeout,
/// closed), `sslmode` and the certificates only when TLS itself failed.
fn link_error(e: tokio_postgres::Error, doing: &str, at: Option<Endpoint<'_>>) -> Error {
    let text = crate::source::tls::chain_text(&e);
    let err = match cause::find(&e).or_else(|| e.is_closed().then_some(Cause::Closed)) {
        Some(c) => cause::describe("PostgreSQL", at, doing, c),
        None if text.starts_with("error performing TLS handshake") => Error::new(
            ErrorKind::SourceConnect,
            format!("the TLS handshake with PostgreSQL failed while {doing}: {text}"),
            "check sslmode, sslrootcert, sslcert and sslkey in [source] url against the server's TLS set-up",
        ),
        None => Error::new(
            ErrorKind::SourceConnect,
            format!("cannot talk to PostgreSQL while {doing}: {text}"),
            "check that the server is running and reachable, and that host and port in [source] url are right",
        ),
    };
    err.with_source(e)
}

/// The kind and fix of the SQLSTATEs we know, for SQL and replication connections alike.
fn sqlstate_kind(code: &str) -> Option<(ErrorKind, &'static str)> {
    Some(match code {
        "28P01" | "28000" => (
            ErrorKind::SourceAuth,
            "fix the user/password in [source] url (use ${ENV_VAR} for the password) or pg_hba.conf",
        ),
        "42501" => (
            ErrorKind::SourcePrivilege,
            "GRANT USAGE ON SCHEMA and SELECT ON the table to the task's user",
        ),
        "42P01" | "3F000" => (
            ErrorKind::SourceSchema,
            "a selected table was dropped or renamed during the load; rerun the task",
        ),
        "3D000" => (ErrorKind::Config, "fix the database name in [source] url"),
        "53300" => (
            ErrorKind::SourceConnect,
            "lower FullLoadSettings.MaxFullLoadSubTasks or raise max_connections",
        ),
        // pg_terminate_backend (or a DBA's tool using it) ended the session.
        "57P01" => (
            ErrorKind::SourceConnect,
            "the session was terminated by an administrator (pg_terminate_backend, or a DBA's tool); the task reconnects by itself",
        ),
        // Server shutting down or starting up, failover in progress.
        "57P02" | "57P03" | "57P05" => (
            ErrorKind::SourceConnect,
            "the server ended the connection (restart or failover); the task reconnects by itself",
        ),
        c if c.starts_with("08") => (
            ErrorKind::SourceConnect,
            "the connection to the server failed; the task reconnects by itself",
        ),
        _ => return None,
    })
}

/// Opens a session with canonical output settings, over TLS as `sslmode` asks.
async fn connect(config: &PgConfig) -> Result<Client> {
    let mut parsed = driver_config(config).await?;
    if parsed.get_application_name().is_none() {
        // Names our sessions in pg_stat_activity, beside the walsender's "tributary <slot>".
        parsed.application_name("tributary");
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::source::tls::client_config(
        &config.tls,
    )?);
    let (client, connection) = parsed.connect(tls).await.map_err(|e| {
        let e = crate::source::tls::handshake_error(&host_name(&parsed), &config.tls, &e)
            .unwrap_or_else(|| {
                let host = host_name(&parsed);
                let at = Endpoint {
                    host: &host,
                    port: parsed.get_ports().first().copied().unwrap_or(5432),
                };
                let doing = format!("connecting to {}", redact_url(&config.url));
                pg_error_at(e, &doing, Some(at))
            });
        login::during_rotation(&config.auth, e)
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(|e| pg_error(e, "setting up the session"))?;
    if let Some(script) = &config.after_connect {
        client.batch_execute(script).await.map_err(|e| {
            let mut err = pg_error(e, "running AfterConnectScript");
            err.fix = "fix the SQL in [source.settings] AfterConnectScript (it runs on every new connection)".into();
            err
        })?;
    }
    Ok(client)
}

/// [`connect`] for short statements (catalog, slot, heartbeat, lookups): limited by
/// `ExecuteTimeout`. The full load's sessions stay unlimited: a COPY is one statement per table.
async fn connect_timed(config: &PgConfig) -> Result<Client> {
    let client = connect(config).await?;
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            config.execute_timeout.as_millis()
        ))
        .await
        .map_err(|e| pg_error(e, "setting ExecuteTimeout"))?;
    Ok(client)
}

/// The task's URL as tokio-postgres reads it (TLS parameters taken out, see
/// [`crate::config::tls`]), with the login from AWS when the task asks for it (obtained again
/// for every connection: see [`crate::source::login`]).
async fn driver_config(config: &PgConfig) -> Result<tokio_postgres::Config> {
    let url = login::driver_url(&config.driver_url, &config.auth, Engine::Postgres).await?;
    url.parse().map_err(|e| {
        Error::config(
            format!(
                "[source] url {} is not a PostgreSQL URL: {e}",
                redact_url(&config.url)
            ),
            "use postgres://user:password@host:5432/database",
        )
    })
}

/// The host name a connection checks the server's certificate against (the first host).
fn host_name(parsed: &tokio_postgres::Config) -> String {
    match parsed.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    }
}

/// An ordinary connection for catalog reads, slot checks and the heartbeat while streaming,
/// opened again when its backend is gone (terminated, server restarted), so a lost helper
/// connection is one more retryable error rather than a broken task.
struct Helper {
    config: PgConfig,
    client: Option<Client>,
}

impl Helper {
    fn new(config: PgConfig) -> Helper {
        Helper {
            config,
            client: None,
        }
    }

    /// The connection, reopened if it closed.
    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect_timed(&self.config).await?);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    /// Forgets the connection after an error that lost it, so the next use opens a new one;
    /// true when it did.
    fn reset_if_lost(&mut self, e: &Error) -> bool {
        let lost = e.kind == ErrorKind::SourceConnect;
        if lost {
            self.client = None;
        }
        lost
    }
}
