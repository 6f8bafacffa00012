//! The full load's consistent snapshot on MySQL/MariaDB: every reader session starts its
//! snapshot under one brief `FLUSH TABLES WITH READ LOCK`, which also reads the binlog position
//! the snapshot corresponds to; tables are streamed row by row over the text protocol.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use tokio::sync::mpsc;

use super::catalog::{self, MyTable, ValueKind};
use super::{binlog_position, connect, my_error};
use crate::change::{BinlogPos, RowBatch};
use crate::config::source::MyConfig;
use crate::error::{Error, Result};
use crate::mapping::filter::Dialect;
use crate::mapping::segments::{self, KeyRanges, Segment};
use crate::mapping::{Lobs, TableMappings};
use crate::source::{
    chunks, lob_cut_len, read_from, ReadOptions, ReadProgress, Snapshot, SourceTable, Split,
};

/// A batch is handed to the writer once it holds `ReadOptions::batch_bytes` of cell data, or
/// this many rows.
const BATCH_ROWS: usize = 16 * 1024;
/// Seconds `FLUSH TABLES WITH READ LOCK` may wait for running statements before giving up
/// (it blocks writers while it waits, so it must not wait long).
const LOCK_WAIT_S: u32 = 30;

/// A snapshot shared by `MaxFullLoadSubTasks` worker sessions.
///
/// With the RELOAD privilege, every worker starts `WITH CONSISTENT SNAPSHOT` while
/// `FLUSH TABLES WITH READ LOCK` holds writes, and the binlog position is read under the same
/// lock: all tables come from one instant and CDC continues exactly after it. Without RELOAD,
/// workers start their snapshots one after another with the position read *before* them
/// (`lock_free`): tables may come from slightly different instants, and changes between the
/// position and a table's snapshot appear in both its LOAD and CDC files (DMS's behaviour).
pub(super) struct MySnapshot {
    tables: Vec<MyTable>,
    workers: Arc<Workers>,
    /// Binlog position of the snapshot (None when the binary log is off).
    pub(crate) position: Option<BinlogPos>,
}

/// The snapshot's sessions. A session lost with its connection cannot be replaced (a new one
/// would see a later instant); the reads that remain wait for the sessions that are left.
struct Workers {
    /// Idle sessions.
    idle: std::sync::Mutex<Vec<Conn>>,
    /// Sessions not lost (idle or reading).
    live: std::sync::atomic::AtomicUsize,
    /// Wakes reads waiting for a session.
    freed: tokio::sync::Notify,
}

impl Workers {
    /// An idle session, once one is free.
    async fn take(&self) -> Result<Conn> {
        loop {
            let freed = self.freed.notified();
            if let Some(c) = self.idle.lock().expect("worker pool").pop() {
                return Ok(c);
            }
            if self.live.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return Err(Error::new(
                    crate::error::ErrorKind::SourceConnect,
                    "every snapshot session of the full load lost its connection",
                    "check the server and the network, then rerun the task: finished tables are kept",
                ));
            }
            freed.await;
        }
    }

    /// Returns a session after a read: kept when the read succeeded, else counted as lost.
    fn give_back(&self, conn: Conn, ok: bool) {
        if ok {
            self.idle.lock().expect("worker pool").push(conn);
        } else {
            self.live.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            tokio::spawn(async move {
                let _ = conn.disconnect().await;
            });
        }
        self.freed.notify_waiters();
        self.freed.notify_one();
    }
}

impl MySnapshot {
    /// Opens `workers` sessions and starts their snapshots (see the type's documentation).
    /// `with_position`: read the binlog position too (change capture continues from it); a
    /// full-load-only task does not, so it needs neither the binlog nor the privilege to read
    /// its position (`REPLICATION CLIENT` / `BINLOG MONITOR`).
    pub(super) async fn export(
        source: &MyConfig,
        mappings: &TableMappings,
        lobs: Lobs,
        workers: usize,
        with_position: bool,
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
            let position = if lock_free && with_position {
                binlog_position(&mut control).await?
            } else {
                None
            };
            let tables = catalog::selected_tables(&mut control, mappings, lobs).await?;
            for c in &mut pool {
                c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .map_err(|e| my_error(e, "starting the snapshot transaction"))?;
            }
            let position = match position {
                Some(p) => Some(p),
                None if with_position => binlog_position(&mut control).await?,
                None => None,
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
            workers: Arc::new(Workers {
                live: std::sync::atomic::AtomicUsize::new(pool.len()),
                idle: std::sync::Mutex::new(pool),
                freed: tokio::sync::Notify::new(),
            }),
            position,
        })
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
    segment: Option<&Segment>,
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
    let relation = format!(
        "{}.{}",
        catalog::quote_ident(&schema.schema),
        catalog::quote_ident(&schema.table)
    );
    let query = format!(
        "SELECT {} {}",
        select.join(", "),
        read_from(relation, &table.filter, segment)
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
        if batch.data_bytes() >= opts.batch_bytes || batch.len() >= BATCH_ROWS {
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
        segment: Option<&Segment>,
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
        let segment = segment.cloned();
        Box::pin(async move {
            let table =
                found.ok_or_else(|| Error::internal("table is not part of this snapshot"))?;
            let mut conn = workers.take().await?;
            let r = read_rows(&mut conn, &table, segment.as_ref(), opts, &tx, &progress).await;
            workers.give_back(conn, r.is_ok());
            r
        })
    }

    async fn split(&self, table: &SourceTable, chunk_bytes: u64) -> Result<Split> {
        let found = self
            .tables
            .iter()
            .find(|t| Arc::ptr_eq(&t.source.schema, &table.schema))
            .ok_or_else(|| Error::internal("table is not part of this snapshot"))?;
        let mut conn = self.workers.take().await?;
        let r = split_table(&mut conn, found, chunk_bytes).await;
        self.workers.give_back(conn, r.is_ok());
        let Some((first, bounds)) = r? else {
            return Ok((Vec::new(), None));
        };
        let col = catalog::quote_ident(&first);
        let chunks = segments::chunks(&chunks::key_ranges(&[col], &bounds, Dialect::MySql));
        tracing::info!(table = %table.schema.qualified(), chunks = chunks.len(), "big table: loading it in automatic chunks");
        let keys = KeyRanges::new(vec![first], bounds, &chunks);
        Ok((chunks, Some(keys)))
    }

    async fn close(&self) -> Result<()> {
        let conns: Vec<Conn> = std::mem::take(&mut *self.workers.idle.lock().expect("worker pool"));
        for c in conns {
            let _ = c.disconnect().await;
        }
        Ok(())
    }
}

/// The chunks of `table` (see [`chunks`]), as its first key column and the cut points: ranges of the primary key's first column
/// when it is an integer, cut evenly between its smallest and largest value in the snapshot
/// (two reads of the key's index). InnoDB has no block sampling, and a sample of the rows
/// would read the whole table once more before loading it. The size is the catalog's
/// `DATA_LENGTH` (InnoDB's estimate of the clustered index).
async fn split_table(
    conn: &mut Conn,
    table: &MyTable,
    chunk_bytes: u64,
) -> Result<Option<(String, Vec<Vec<i128>>)>> {
    let schema = &table.source.schema;
    let name = schema.qualified();
    let Some(first) = table.key.first() else {
        return Ok(None);
    };
    let integer = schema
        .columns
        .iter()
        .any(|c| c.name == *first && c.dms_type.is_whole_number());
    if !integer {
        return Ok(None);
    }
    let bytes: Option<Option<u64>> = conn
        .exec_first(
            "SELECT DATA_LENGTH FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&schema.schema, &schema.table),
        )
        .await
        .map_err(|e| my_error(e, &format!("estimating the size of {name}")))?;
    let n = chunks::count(bytes.flatten().unwrap_or(0), chunk_bytes);
    if n < 2 {
        return Ok(None);
    }
    let col = catalog::quote_ident(first);
    let range: Option<(Option<String>, Option<String>)> = conn
        .query_first(format!(
            "SELECT CAST(MIN({col}) AS CHAR), CAST(MAX({col}) AS CHAR) FROM {}.{}",
            catalog::quote_ident(&schema.schema),
            catalog::quote_ident(&schema.table)
        ))
        .await
        .map_err(|e| my_error(e, &format!("reading the key range of {name}")))?;
    let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
    let Some((Some(min), Some(max))) = range.map(|(a, b)| (parse(a), parse(b))) else {
        return Ok(None);
    };
    let bounds = chunks::spread(min, max, n);
    if bounds.is_empty() {
        return Ok(None);
    }
    Ok(Some((first.clone(), bounds)))
}
