//! The logical replication transport: a replication-protocol session (`CREATE_REPLICATION_SLOT`,
//! `START_REPLICATION`, standby status updates).
//!
//! Transport: `pgwire-replication` (pinned `~0.5`), because tokio-postgres has no CopyBoth and the
//! forks that add it are git dependencies. It forwards raw pgoutput bytes; decoding is ours
//! ([`super::pgoutput`]). Only this file knows the crate, so replacing it touches nothing else.

use bytes::Bytes;
use pgwire_replication::{
    PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent, SslMode, TlsConfig,
};

use crate::change::Lsn;
use crate::config::source::PgConfig;
use crate::config::tls::{TlsMode, TlsSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::source::cause::{self, Endpoint};

/// Session settings for the walsender, so pgoutput's text values are in the same canonical form
/// the full load reads (see [`crate::change::DmsType`] and `SESSION_SETUP`).
const WALSENDER_OPTIONS: &str = "-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=postgres \
     -c extra_float_digits=1 -c bytea_output=hex -c lc_monetary=C";

/// One event of a logical replication stream.
#[derive(Debug)]
pub(super) enum StreamEvent {
    /// A transaction starts; `final_lsn` is its commit record's LSN.
    Begin {
        /// Commit LSN of the transaction.
        final_lsn: Lsn,
        /// Commit time, µs since the Unix epoch.
        commit_us: i64,
    },
    /// A pgoutput message inside a transaction (Relation, Insert, Update, Delete, Truncate, ...).
    Data(Bytes),
    /// The transaction ends.
    Commit {
        /// End of the commit record: streaming from here skips this transaction.
        end_lsn: Lsn,
    },
    /// The server is alive and has written WAL up to `wal_end`.
    KeepAlive {
        /// Server WAL end.
        wal_end: Lsn,
    },
}

/// What `CREATE_REPLICATION_SLOT` returned.
#[derive(Debug, Clone)]
pub(super) struct CreatedSlot {
    /// The position streaming starts from; the exported snapshot shows every transaction
    /// committed before it.
    pub(crate) consistent_point: Lsn,
    /// Exported snapshot name, valid until the session runs its next command.
    pub(crate) snapshot: Option<String>,
}

/// A replication session on one slot: create the slot on it (optionally exporting a snapshot),
/// then start streaming on the same session.
pub(super) struct PgReplication {
    client: ReplicationClient,
    started: bool,
    /// The host name the server's certificate was checked against.
    host: String,
    /// The server's port, for messages.
    port: u16,
    /// The source's TLS settings, for failures of the handshake (reported by the first command).
    tls: TlsSettings,
}

/// Connection settings for a replication session on `slot` reading `publication`, with the host
/// name the server's certificate is checked against.
async fn config(
    source: &PgConfig,
    slot: &str,
    publication: &str,
    start: Option<Lsn>,
) -> Result<(ReplicationConfig, String, u16)> {
    let parsed = super::driver_config(source).await?;
    let host = super::host_name(&parsed);
    let port = parsed.get_ports().first().copied().unwrap_or(5432);
    let user = parsed.get_user().unwrap_or("postgres").to_string();
    let password = parsed
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let database = parsed.get_dbname().unwrap_or(&user).to_string();
    // libpq's hostaddr: connect to that address, check the certificate against the host name.
    let addr = parsed.get_hostaddrs().first().map(|a| a.to_string());
    let mut cfg = ReplicationConfig::new(
        addr.clone().unwrap_or_else(|| host.clone()),
        user,
        password,
        database,
        slot,
        publication,
    )
    .with_port(port)
    .with_options(WALSENDER_OPTIONS)
    .with_application_name(format!("tributary {slot}"))
    // Room for a few batches of changes while the writer uploads a file.
    .with_buffer_size(8192)
    .with_tls(tls_config(&source.tls, &host, addr.is_some()));
    if let Some(lsn) = start {
        let lsn = pgwire_replication::Lsn::from_u64(lsn.0);
        cfg = cfg.with_start_lsn(lsn).with_ack_lsn(lsn);
    }
    Ok((cfg, host, port))
}

/// The replication connection's TLS: the same mode, CAs and client certificate as the SQL
/// connections (see [`crate::source::tls`]).
fn tls_config(tls: &TlsSettings, host: &str, by_address: bool) -> TlsConfig {
    let mode = match tls.mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require => SslMode::Require,
        TlsMode::VerifyCa => SslMode::VerifyCa,
        TlsMode::VerifyFull => SslMode::VerifyFull,
    };
    let mut config = TlsConfig {
        mode,
        ca_pem_path: crate::source::tls::ca_bundle(tls),
        ..TlsConfig::default()
    };
    // The crate checks an IP address host only through its name override (rustls then matches
    // the certificate's IP address names), and the override is how hostaddr keeps the name.
    if by_address || host.parse::<std::net::IpAddr>().is_ok() {
        config = config.with_sni_hostname(host);
    }
    if let Some(c) = &tls.client {
        config = config.with_client_cert(&c.cert, &c.key);
    }
    config
}

/// Maps a transport error to ours, naming the fix for the causes we know. A lost connection
/// (I/O, a terminated walsender, a server restart) is retryable.
fn wire_error(e: PgWireError, doing: &str, at: Option<Endpoint<'_>>) -> Error {
    let text = e.to_string();
    if matches!(e, PgWireError::Io(_) | PgWireError::Task(_)) {
        // The I/O error is kept only as text: its words tell DNS, refused, timeout, closed.
        if let Some(c) = cause::from_text(&text) {
            return cause::describe(
                "PostgreSQL",
                at,
                &format!("{doing} (replication connection)"),
                c,
            );
        }
    }
    let lower = text.to_lowercase();
    let sqlstate = text
        .split("SQLSTATE ")
        .nth(1)
        .map(|r| r.chars().take(5).collect::<String>());
    let known = sqlstate.as_deref().and_then(super::sqlstate_kind);
    let (kind, fix) = if let Some((kind, fix)) = known {
        (kind, fix)
    } else if matches!(e, PgWireError::Io(_) | PgWireError::Task(_)) {
        (
            ErrorKind::SourceConnect,
            "the replication connection was lost; the task reconnects by itself",
        )
    } else if lower.contains("logical decoding requires") || lower.contains("wal_level") {
        (
            ErrorKind::SourcePrivilege,
            "set wal_level=logical in postgresql.conf and restart PostgreSQL",
        )
    } else if lower.contains("permission denied")
        || lower.contains("must be superuser")
        || lower.contains("replication role")
    {
        (
            ErrorKind::SourcePrivilege,
            "grant the task's user the REPLICATION attribute (ALTER ROLE ... REPLICATION) and allow replication connections in pg_hba.conf",
        )
    } else if lower.contains("does not exist") && lower.contains("slot") {
        (
            ErrorKind::Config,
            "the replication slot is gone (dropped, or invalidated by max_slot_wal_keep_size): reload the task with tributary run --restart, or create the slot (SELECT pg_create_logical_replication_slot('NAME', 'pgoutput'))",
        )
    } else if lower.contains("already exists") {
        (
            ErrorKind::Config,
            "another task uses this slot name: drop the old slot (SELECT pg_drop_replication_slot('NAME')) or set a different SlotName",
        )
    } else if lower.contains("all replication slots are in use")
        || lower.contains("max_replication_slots")
    {
        (
            ErrorKind::SourcePrivilege,
            "raise max_replication_slots in postgresql.conf (and restart) or drop unused slots",
        )
    } else if lower.contains("number of requested standby connections")
        || lower.contains("max_wal_senders")
    {
        (
            ErrorKind::SourcePrivilege,
            "raise max_wal_senders in postgresql.conf and restart PostgreSQL",
        )
    } else if lower.contains("is active for pid") {
        // Also what a restart right after a crash sees until the server notices the dead
        // connection: transient, so the caller retries for a while.
        (
            ErrorKind::SourceConnect,
            "another process is streaming from this slot: stop it (or the other tributary run) first",
        )
    } else if lower.contains("pg_hba") || lower.contains("no pg_hba.conf entry") {
        (
            ErrorKind::SourcePrivilege,
            "add a 'host replication USER ADDRESS scram-sha-256' line to pg_hba.conf and reload",
        )
    } else if lower.contains("password authentication failed") {
        (
            ErrorKind::SourceAuth,
            "fix the user/password in [source] url (use ${ENV_VAR} for the password)",
        )
    } else {
        (
            ErrorKind::Source,
            "check the source is reachable and the server log; rerun the task to resume",
        )
    };
    Error::new(
        kind,
        format!("replication error while {doing}: {text}"),
        fix,
    )
}

impl PgReplication {
    /// Opens a replication session for `slot`, not yet streaming. `start` is where streaming
    /// begins (None: the slot's confirmed position).
    pub(super) async fn connect(
        source: &PgConfig,
        slot: &str,
        publication: &str,
        start: Option<Lsn>,
    ) -> Result<PgReplication> {
        let (cfg, host, port) = config(source, slot, publication, start).await?;
        crate::source::tls::install_provider();
        let client = ReplicationClient::connect_gated(cfg).await.map_err(|e| {
            crate::source::login::during_rotation(
                &source.auth,
                wire_error(
                    e,
                    "connecting for replication",
                    Some(Endpoint { host: &host, port }),
                ),
            )
        })?;
        Ok(PgReplication {
            client,
            started: false,
            host,
            port,
            tls: source.tls.clone(),
        })
    }

    /// [`wire_error`], or the TLS handshake's failure with the setting to change.
    fn error(&self, e: PgWireError, doing: &str) -> Error {
        match &e {
            PgWireError::Tls(text) => {
                crate::source::tls::handshake_error_text(&self.host, &self.tls, text)
            }
            _ => None,
        }
        .unwrap_or_else(|| {
            let at = Endpoint {
                host: &self.host,
                port: self.port,
            };
            wire_error(e, doing, Some(at))
        })
    }

    /// `CREATE_REPLICATION_SLOT` with pgoutput; `export` asks for a snapshot (valid until the
    /// next command on this session), `temporary` for a slot dropped when the session ends.
    pub(super) async fn create_slot(
        &mut self,
        slot: &str,
        export: bool,
        temporary: bool,
    ) -> Result<CreatedSlot> {
        let sql = format!(
            "CREATE_REPLICATION_SLOT {slot}{} LOGICAL pgoutput {}",
            if temporary { " TEMPORARY" } else { "" },
            if export {
                "EXPORT_SNAPSHOT"
            } else {
                "NOEXPORT_SNAPSHOT"
            }
        );
        let rows = self
            .client
            .simple_query(&sql)
            .await
            .map_err(|e| self.error(e, &format!("creating replication slot {slot}")))?;
        let row = rows
            .first()
            .ok_or_else(|| Error::internal("CREATE_REPLICATION_SLOT returned no row"))?;
        let text = |i: usize| {
            row.get(i)
                .and_then(|v| v.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let consistent_point = text(1).and_then(|s| s.parse::<Lsn>().ok()).ok_or_else(|| {
            Error::internal("CREATE_REPLICATION_SLOT returned no consistent point")
        })?;
        Ok(CreatedSlot {
            consistent_point,
            snapshot: text(2),
        })
    }

    /// Sends `START_REPLICATION` and waits until the server accepted it.
    pub(super) async fn start(&mut self) -> Result<()> {
        self.client
            .start()
            .await
            .map_err(|e| self.error(e, "starting replication"))?;
        self.client
            .wait_started()
            .await
            .map_err(|e| self.error(e, "starting replication"))?;
        self.started = true;
        Ok(())
    }

    /// The next event; None when the server ended the stream. Cancel-safe (a channel receive).
    pub(super) async fn next(&mut self) -> Result<Option<StreamEvent>> {
        loop {
            let ev = self
                .client
                .recv()
                .await
                .map_err(|e| self.error(e, "streaming changes"))?;
            let Some(ev) = ev else { return Ok(None) };
            return Ok(Some(match ev {
                ReplicationEvent::Begin {
                    final_lsn,
                    commit_time_micros,
                    ..
                } => StreamEvent::Begin {
                    final_lsn: Lsn(final_lsn.as_u64()),
                    commit_us: super::pgoutput::pg_epoch_to_unix_us(commit_time_micros),
                },
                ReplicationEvent::Commit { end_lsn, .. } => StreamEvent::Commit {
                    end_lsn: Lsn(end_lsn.as_u64()),
                },
                ReplicationEvent::XLogData { data, .. } => StreamEvent::Data(data),
                ReplicationEvent::KeepAlive { wal_end, .. } => StreamEvent::KeepAlive {
                    wal_end: Lsn(wal_end.as_u64()),
                },
                // Logical messages (pg_logical_emit_message) and stop markers carry no rows.
                ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => continue,
            }));
        }
    }

    /// Reports everything before `lsn` as durably processed (monotonic; sent asynchronously).
    pub(super) fn confirm(&self, lsn: Lsn) {
        self.client
            .update_applied_lsn(pgwire_replication::Lsn::from_u64(lsn.0));
    }

    /// Ends the stream cleanly.
    pub(super) async fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.client
            .shutdown()
            .await
            .map_err(|e| self.error(e, "stopping replication"))
    }
}
