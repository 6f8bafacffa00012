//! The full load's consistent snapshot: one exported snapshot, every table streamed with
//! `COPY ... TO STDOUT` (text format) on its own connection that imports it.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::Client;

use super::catalog::{self, quote_ident, PgTable};
use super::copy::CopyParser;
use super::{connect, pg_error};
use crate::change::RowBatch;
use crate::config::source::PgConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::filter::Dialect;
use crate::mapping::segments::{self, KeyRanges, Segment};
use crate::mapping::{Lobs, TableMappings};
use crate::source::chunks;
use crate::source::{read_from, ReadOptions, ReadProgress, Snapshot, SourceTable, Split};

/// A batch is handed to the writer once it holds `ReadOptions::batch_bytes` of cell data, or
/// this many rows.
const BATCH_ROWS: usize = 16 * 1024;

/// Streams one table with COPY inside a transaction that imported `snapshot_id`.
async fn copy_table(
    source: &PgConfig,
    snapshot_id: &str,
    pg: &PgTable,
    segment: Option<Segment>,
    opts: ReadOptions,
    tx: mpsc::Sender<RowBatch>,
    progress: Arc<ReadProgress>,
) -> Result<u64> {
    let schema = &pg.source.schema;
    let name = schema.qualified();
    let client = connect(source).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot_id}'"
        ))
        .await
        .map_err(|e| pg_error(e, &format!("importing the snapshot for {name}")))?;
    let select: Vec<&str> = pg.columns.iter().map(|c| c.select.as_str()).collect();
    let relation = format!(
        "{}.{}",
        catalog::quote_ident(&schema.schema),
        catalog::quote_ident(&schema.table)
    );
    let query = format!(
        "COPY (SELECT {} {}) TO STDOUT",
        select.join(", "),
        read_from(relation, &pg.filter, segment.as_ref())
    );
    let stream = client
        .copy_out(query.as_str())
        .await
        .map_err(|e| pg_error(e, &format!("starting COPY of {name}")))?;
    futures::pin_mut!(stream);
    let ncols = pg.columns.len();
    let lob = pg
        .columns
        .iter()
        .map(|c| opts.lob_limit(c.column.dms_type))
        .collect();
    let mut parser = CopyParser::new(ncols, lob);
    let mut batch = RowBatch::new(ncols);
    let mut time = opts.clock.now_us();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| pg_error(e, &format!("reading {name}")))?;
        let rows = parser.feed(&chunk, &mut batch, time)?;
        progress.add(rows as u64, chunk.len() as u64);
        let full = batch.data_bytes() >= opts.batch_bytes || batch.len() >= BATCH_ROWS;
        if full && parser.at_row_boundary() {
            total += batch.len() as u64;
            let full = std::mem::replace(&mut batch, RowBatch::new(ncols));
            if tx.send(full).await.is_err() {
                // The writer stopped (error or cancel); it reports why.
                return Ok(total);
            }
            time = opts.clock.now_us();
        }
    }
    if parser.has_partial_line() {
        return Err(Error::new(
            ErrorKind::Source,
            format!("COPY of {name} ended in the middle of a row"),
            "check the server log; rerun the task",
        ));
    }
    progress
        .truncated_lobs
        .fetch_add(parser.truncated, std::sync::atomic::Ordering::Relaxed);
    total += batch.len() as u64;
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    let _ = client.batch_execute("COMMIT").await;
    Ok(total)
}

/// A snapshot exported from a REPEATABLE READ transaction (`pg_export_snapshot()`), held open
/// until [`Snapshot::close`] so that workers can import it at any time during the load.
///
/// For full-load-and-cdc the exporting session is the replication slot's instead; only
/// [`PgSnapshot::export`] differs.
pub(super) struct PgSnapshot {
    source: PgConfig,
    holder: Mutex<Option<Client>>,
    snapshot_id: String,
    tables: Vec<PgTable>,
}

impl PgSnapshot {
    /// Opens the exporting transaction and reads the catalog inside it, so the table list and
    /// the rows come from the same instant.
    pub(super) async fn export(
        source: &PgConfig,
        mappings: &TableMappings,
        lobs: Lobs,
    ) -> Result<PgSnapshot> {
        let client = connect(source).await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| pg_error(e, "starting the snapshot transaction"))?;
        let row = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| pg_error(e, "exporting the snapshot"))?;
        let snapshot_id: String = row.get(0);
        let tables = catalog::selected_tables(&client, mappings, lobs, source.types).await?;
        Ok(PgSnapshot {
            source: source.clone(),
            holder: Mutex::new(Some(client)),
            snapshot_id,
            tables,
        })
    }

    /// Imports a snapshot exported elsewhere (a replication slot's, for full-load-and-cdc) into
    /// a holder transaction that keeps it importable for the whole load, and reads the catalog
    /// inside it.
    pub(super) async fn import(
        source: &PgConfig,
        snapshot_id: &str,
        mappings: &TableMappings,
        lobs: Lobs,
    ) -> Result<PgSnapshot> {
        let client = connect(source).await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                snapshot_id.replace('\'', "")
            ))
            .await
            .map_err(|e| pg_error(e, "importing the replication slot's snapshot"))?;
        let tables = catalog::selected_tables(&client, mappings, lobs, source.types).await?;
        Ok(PgSnapshot {
            source: source.clone(),
            holder: Mutex::new(Some(client)),
            snapshot_id: snapshot_id.to_string(),
            tables,
        })
    }

    /// Catalog details of the selected tables (for `validate`).
    pub(super) fn pg_tables(&self) -> &[PgTable] {
        &self.tables
    }

    fn find(&self, table: &SourceTable) -> Result<&PgTable> {
        self.tables
            .iter()
            .find(|t| Arc::ptr_eq(&t.source.schema, &table.schema))
            .ok_or_else(|| Error::internal("table is not part of this snapshot"))
    }
}

#[async_trait]
impl Snapshot for PgSnapshot {
    async fn tables(&self) -> Result<Vec<SourceTable>> {
        let denied: Vec<String> = self
            .tables
            .iter()
            .filter(|t| !t.can_select)
            .map(|t| t.source.schema.qualified())
            .collect();
        if !denied.is_empty() {
            return Err(Error::new(
                ErrorKind::SourcePrivilege,
                format!("the source user may not SELECT from {}", denied.join(", ")),
                "GRANT SELECT ON those tables (and USAGE on their schemas) to the task's user, or exclude them in table_mappings",
            ));
        }
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
        let found = self.find(table).cloned();
        let source = self.source.clone();
        let snapshot_id = self.snapshot_id.clone();
        let segment = segment.cloned();
        Box::pin(async move {
            copy_table(&source, &snapshot_id, &found?, segment, opts, tx, progress).await
        })
    }

    async fn split(&self, table: &SourceTable, chunk_bytes: u64) -> Result<Split> {
        let pg = self.find(table)?;
        let holder = self.holder.lock().await;
        let Some(client) = holder.as_ref() else {
            return Ok((Vec::new(), None));
        };
        // In a savepoint: a failed query must not abort the transaction that holds the snapshot.
        let savepoint = |sql: &'static str| async move {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| pg_error(e, "estimating a table's size"))
        };
        savepoint("SAVEPOINT tributary_split").await?;
        let (preds, keys) = match split_table(client, pg, chunk_bytes).await {
            Ok(p) => {
                savepoint("RELEASE SAVEPOINT tributary_split").await?;
                p
            }
            Err(e) => {
                savepoint("ROLLBACK TO SAVEPOINT tributary_split").await?;
                return Err(e);
            }
        };
        if !preds.is_empty() {
            tracing::info!(table = %table.schema.qualified(), chunks = preds.len(), "big table: loading it in automatic chunks");
        }
        let chunks = segments::chunks(&preds);
        let keys = keys.map(|(cols, bounds)| KeyRanges::new(cols, bounds, &chunks));
        Ok((chunks, keys))
    }

    async fn close(&self) -> Result<()> {
        if let Some(client) = self.holder.lock().await.take() {
            let _ = client.batch_execute("COMMIT").await;
        }
        Ok(())
    }
}

/// Chunk predicates, with the key columns (unquoted) and cut points when they are key ranges.
type Chunked = (Vec<String>, Option<(Vec<String>, Vec<Vec<i128>>)>);

/// Pages of a table the key sample reads (8 MB at the default block size), whatever its size.
const SAMPLE_PAGES: f64 = 1000.0;

/// The chunk predicates of `pg` (see [`chunks`]): key ranges at boundaries sampled from about
/// [`SAMPLE_PAGES`] random pages (`TABLESAMPLE SYSTEM`) when its primary key (else its replica
/// identity index) is all integers; else `ctid` page ranges for a plain table on PostgreSQL 14
/// or later (a TID range scan reads each); else none. The size is the relation's size on disk
/// now (`pg_relation_size`, summed over a partitioned table's partitions): unlike `relpages`
/// it needs no `ANALYZE` after a bulk load.
async fn split_table(client: &Client, pg: &PgTable, chunk_bytes: u64) -> Result<Chunked> {
    let name = pg.source.schema.qualified();
    let ctx = format!("estimating the size of {name}");
    let row = client
        .query_one(
            "SELECT c.relkind::text,
                    CASE WHEN c.relkind = 'p'
                         THEN (SELECT coalesce(sum(pg_relation_size(t.relid)), 0)::int8
                               FROM pg_partition_tree(c.oid) t)
                         ELSE pg_relation_size(c.oid)::int8 END,
                    current_setting('block_size')::int8,
                    current_setting('server_version_num')::int4
             FROM pg_class c WHERE c.oid = $1::oid",
            &[&pg.oid],
        )
        .await
        .map_err(|e| pg_error(e, &ctx))?;
    let (relkind, bytes, block, version): (String, i64, i64, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let n = chunks::count(bytes.max(0) as u64, chunk_bytes);
    if n < 2 {
        return Ok((Vec::new(), None));
    }
    let pages = (bytes / block.max(1)).max(1) as u64;
    // int2, int4, int8 or numeric(p ≤ 18, 0) (the sample reads them as int8), in the index's
    // column order, so a range reads as one index range.
    let key = client
        .query(
            "SELECT a.attname,
                    a.atttypid IN (20, 21, 23)
                    OR (a.atttypid = 1700 AND a.atttypmod >= 4
                        AND (a.atttypmod - 4) & 65535 = 0 AND (a.atttypmod - 4) >> 16 <= 18)
             FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indexrelid = (SELECT indexrelid FROM pg_index
                                   WHERE indrelid = $1::oid AND (indisprimary OR indisreplident)
                                   ORDER BY indisprimary DESC LIMIT 1)
             ORDER BY k.n",
            &[&pg.oid],
        )
        .await
        .map_err(|e| pg_error(e, &ctx))?;
    let integers = !key.is_empty() && key.iter().all(|r| r.get::<_, bool>(1));
    if integers {
        let cols: Vec<String> = key.iter().map(|r| quote_ident(r.get(0))).collect();
        let percent = (100.0 * SAMPLE_PAGES / pages as f64).clamp(0.000_001, 100.0);
        // Sorted by position: a name would sort by the output column, not the key.
        let values: Vec<String> = cols.iter().map(|c| format!("t.{c}::int8")).collect();
        let order: Vec<String> = (1..=cols.len()).map(|i| i.to_string()).collect();
        let rows = client
            .query(
                &format!(
                    "SELECT {} FROM {}.{} t TABLESAMPLE SYSTEM ({percent:.6}) ORDER BY {}",
                    values.join(", "),
                    quote_ident(&pg.source.schema.schema),
                    quote_ident(&pg.source.schema.table),
                    order.join(", ")
                ),
                &[],
            )
            .await
            .map_err(|e| pg_error(e, &format!("sampling the key of {name}")))?;
        let sample: Vec<Vec<i128>> = rows
            .iter()
            .map(|r| {
                (0..cols.len())
                    .map(|i| i128::from(r.get::<_, i64>(i)))
                    .collect()
            })
            .collect();
        let bounds = chunks::quantiles(&sample, n);
        if bounds.is_empty() {
            return Ok((Vec::new(), None));
        }
        let names = key.iter().map(|r| r.get::<_, String>(0)).collect();
        return Ok((
            chunks::key_ranges(&cols, &bounds, Dialect::Postgres),
            Some((names, bounds)),
        ));
    }
    if relkind == "r" && version >= 140_000 {
        return Ok((chunks::page_ranges(pages, n), None));
    }
    Ok((Vec::new(), None))
}
