//! MySQL and MariaDB source: one consistent snapshot for every parallel reader, taken under a
//! brief `FLUSH TABLES WITH READ LOCK` together with the binlog position it corresponds to, and
//! tables streamed row by row over the text protocol.

pub mod binlog;
pub mod catalog;
pub mod prereq;

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};
use tokio::sync::mpsc;

use super::{lob_cut_len, ReadOptions, ReadProgress, Snapshot, SourceTable};
use crate::change::{BinlogPos, RowBatch};
use crate::config::SourceConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::TableMappings;
use catalog::{MyTable, ValueKind};

/// Session settings that make every value's text canonical: UTF-8, TIMESTAMP in UTC, and no
/// statement time limit for long table reads.
const SESSION_SETUP: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET SESSION net_write_timeout = 3600",
];
/// A batch is handed to the writer once it holds this many bytes of cell data...
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// ...or this many rows.
const BATCH_ROWS: usize = 16 * 1024;
/// Seconds `FLUSH TABLES WITH READ LOCK` may wait for running statements before giving up
/// (it blocks writers while it waits, so it must not wait long).
const LOCK_WAIT_S: u32 = 30;

/// Maps a driver error to our kinds, with the fix for the common causes. Messages never carry
/// the URL (the driver does not put it there; we add only the redacted form).
pub fn my_error(e: mysql_async::Error, doing: &str) -> Error {
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
                // Killed or lost connection, server shutting down: transient for a reader.
                1927 | 2013 | 1053 | 2006 => (
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
        _ => (
            ErrorKind::SourceConnect,
            format!("cannot talk to MySQL while {doing}: {e}"),
            "check that the server is running and that host and port in [source] url are right",
        ),
    };
    Error::new(kind, message, fix).with_source(e)
}

/// Connection options from the task's URL, with canonical session settings.
pub fn options(source: &SourceConfig) -> Result<Opts> {
    let opts = Opts::from_url(&source.url).map_err(|e| {
        Error::config(
            format!("[source] url {} is not a MySQL URL: {e}", source.redacted()),
            "use mysql://user:password@host:3306/database",
        )
    })?;
    Ok(OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .init(SESSION_SETUP.iter().map(|s| s.to_string()).collect())
        .into())
}

/// Opens a session with canonical output settings.
pub async fn connect(source: &SourceConfig) -> Result<Conn> {
    Conn::new(options(source)?)
        .await
        .map_err(|e| my_error(e, &format!("connecting to {}", source.redacted())))
}

/// The server's current binlog position, or None when the binary log is off.
pub async fn binlog_position(conn: &mut Conn) -> Result<Option<BinlogPos>> {
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

/// A snapshot shared by `MaxFullLoadSubTasks` worker sessions.
///
/// With the RELOAD privilege, every worker starts `WITH CONSISTENT SNAPSHOT` while
/// `FLUSH TABLES WITH READ LOCK` holds writes, and the binlog position is read under the same
/// lock: all tables come from one instant and CDC continues exactly after it. Without RELOAD,
/// workers start their snapshots one after another with the position read *before* them
/// (`lock_free`): tables may come from slightly different instants, and changes between the
/// position and a table's snapshot appear in both its LOAD and CDC files (DMS's behaviour).
pub struct MySnapshot {
    tables: Vec<MyTable>,
    workers: Arc<std::sync::Mutex<Vec<Conn>>>,
    /// Binlog position of the snapshot (None when the binary log is off).
    pub position: Option<BinlogPos>,
    /// True when the snapshot was taken without the global read lock.
    pub lock_free: bool,
}

impl MySnapshot {
    /// Opens `workers` sessions and starts their snapshots (see the type's documentation).
    pub async fn export(
        source: &SourceConfig,
        mappings: &TableMappings,
        support_lobs: bool,
        workers: usize,
    ) -> Result<MySnapshot> {
        let mut control = connect(source).await?;
        let mut pool = Vec::with_capacity(workers);
        for _ in 0..workers.max(1) {
            let mut c = connect(source).await?;
            c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await
                .map_err(|e| my_error(e, "setting the isolation level"))?;
            pool.push(c);
        }
        control
            .query_drop(format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_S}"))
            .await
            .map_err(|e| my_error(e, "setting lock_wait_timeout"))?;
        let started = std::time::Instant::now();
        let lock_free = match control.query_drop("FLUSH TABLES WITH READ LOCK").await {
            Ok(()) => false,
            Err(mysql_async::Error::Server(s)) if matches!(s.code, 1227 | 1044 | 1045) => {
                tracing::warn!(
                    "no RELOAD privilege: taking a lock-free snapshot; tables may come from slightly different instants and changes during the load may appear in both LOAD and CDC files (GRANT RELOAD for an exact handoff)"
                );
                true
            }
            Err(e) => return Err(my_error(e, "taking FLUSH TABLES WITH READ LOCK")),
        };
        let result = async {
            let position = if lock_free {
                binlog_position(&mut control).await?
            } else {
                None
            };
            let tables = catalog::selected_tables(&mut control, mappings, support_lobs).await?;
            for c in &mut pool {
                c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .map_err(|e| my_error(e, "starting the snapshot transaction"))?;
            }
            let position = match position {
                Some(p) => Some(p),
                None => binlog_position(&mut control).await?,
            };
            Ok::<_, Error>((tables, position))
        }
        .await;
        if !lock_free {
            let _ = control.query_drop("UNLOCK TABLES").await;
            tracing::info!(
                held_ms = started.elapsed().as_millis() as u64,
                "global read lock released"
            );
        }
        let _ = control.disconnect().await;
        let (tables, position) = result?;
        Ok(MySnapshot {
            tables,
            workers: Arc::new(std::sync::Mutex::new(pool)),
            position,
            lock_free,
        })
    }

    /// Catalog details of the selected tables.
    pub fn my_tables(&self) -> &[MyTable] {
        &self.tables
    }
}

/// Appends a text-protocol value as a canonical cell; returns the bytes it had at the source.
fn push_cell(kind: ValueKind, v: Option<Value>, out: &mut RowBatch) -> usize {
    match v {
        None | Some(Value::NULL) => {
            out.push_null();
            0
        }
        Some(Value::Bytes(b)) => {
            catalog::push_value(kind, &b, out);
            b.len()
        }
        // The text protocol only sends bytes; keep any other form readable anyway.
        Some(other) => {
            let text = other.as_sql(true);
            catalog::push_value(kind, text.trim_matches('\'').as_bytes(), out);
            text.len()
        }
    }
}

/// Streams one table's rows on a worker session.
async fn read_rows(
    conn: &mut Conn,
    table: &MyTable,
    opts: ReadOptions,
    tx: &mpsc::Sender<RowBatch>,
    progress: &ReadProgress,
) -> Result<u64> {
    let schema = &table.source.schema;
    let name = schema.qualified();
    let select: Vec<String> = table
        .columns
        .iter()
        .map(|c| catalog::quote_ident(&c.column.name))
        .collect();
    let query = format!(
        "SELECT {} FROM {}.{}",
        select.join(", "),
        catalog::quote_ident(&schema.schema),
        catalog::quote_ident(&schema.table)
    );
    let mut result = conn
        .query_iter(query)
        .await
        .map_err(|e| my_error(e, &format!("reading {name}")))?;
    let ncols = table.columns.len();
    let lob: Vec<Option<(usize, bool)>> = table
        .columns
        .iter()
        .map(|c| opts.lob_limit(c.column.dms_type))
        .collect();
    let mut batch = RowBatch::new(ncols);
    let mut time = opts.clock.now_us();
    let (mut total, mut bytes, mut truncated) = (0u64, 0u64, 0u64);
    while let Some(row) = result
        .next()
        .await
        .map_err(|e| my_error(e, &format!("reading {name}")))?
    {
        for (i, v) in row.unwrap_raw().into_iter().enumerate() {
            bytes += push_cell(table.columns[i].kind, v, &mut batch) as u64;
            if let Some((max, is_bytes)) = lob[i] {
                if let Some(len) = lob_cut_len(batch.last_cell(), max, is_bytes) {
                    batch.truncate_last_cell(len);
                    truncated += 1;
                }
            }
        }
        batch.end_row(crate::change::Op::Insert, time)?;
        if batch.data_bytes() >= BATCH_BYTES || batch.len() >= BATCH_ROWS {
            total += batch.len() as u64;
            progress.add(batch.len() as u64, bytes);
            bytes = 0;
            let full = std::mem::replace(&mut batch, RowBatch::new(ncols));
            if tx.send(full).await.is_err() {
                // The writer stopped (error or cancel); it reports why.
                return Ok(total);
            }
            time = opts.clock.now_us();
        }
    }
    progress.add(batch.len() as u64, bytes);
    progress
        .truncated_lobs
        .fetch_add(truncated, std::sync::atomic::Ordering::Relaxed);
    total += batch.len() as u64;
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    Ok(total)
}

#[async_trait]
impl Snapshot for MySnapshot {
    async fn tables(&self) -> Result<Vec<SourceTable>> {
        Ok(self.tables.iter().map(|t| t.source.clone()).collect())
    }

    fn read_table(
        &self,
        table: &SourceTable,
        opts: ReadOptions,
        tx: mpsc::Sender<RowBatch>,
        progress: Arc<ReadProgress>,
    ) -> BoxFuture<'static, Result<u64>> {
        let found = self
            .tables
            .iter()
            .find(|t| Arc::ptr_eq(&t.source.schema, &table.schema))
            .cloned();
        let workers = self.workers.clone();
        Box::pin(async move {
            let table =
                found.ok_or_else(|| Error::internal("table is not part of this snapshot"))?;
            let conn = workers.lock().expect("worker pool").pop();
            let mut conn = conn.ok_or_else(|| {
                Error::internal("more tables read at once than snapshot sessions")
            })?;
            let r = read_rows(&mut conn, &table, opts, &tx, &progress).await;
            if r.is_ok() {
                workers.lock().expect("worker pool").push(conn);
            }
            r
        })
    }

    async fn close(&self) -> Result<()> {
        let conns: Vec<Conn> = std::mem::take(&mut *self.workers.lock().expect("worker pool"));
        for c in conns {
            let _ = c.disconnect().await;
        }
        Ok(())
    }
}
