//! The full load's consistent snapshot: one exported snapshot, every table streamed with
//! `COPY ... TO STDOUT` (text format) on its own connection that imports it.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::Client;

use super::catalog::{self, PgTable};
use super::copy::CopyParser;
use super::{connect, pg_error};
use crate::change::RowBatch;
use crate::config::source::PgConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::segments::Segment;
use crate::mapping::{Lobs, TableMappings};
use crate::source::{read_from, ReadOptions, ReadProgress, Snapshot, SourceTable};

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

    async fn close(&self) -> Result<()> {
        if let Some(client) = self.holder.lock().await.take() {
            let _ = client.batch_execute("COMMIT").await;
        }
        Ok(())
    }
}
