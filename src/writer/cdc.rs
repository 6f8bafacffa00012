//! The CDC writer: one open file per series (a table's CDC files, or with `PreserveTransactions`
//! the shared transaction files), filled change by change and encoded and uploaded chunk by
//! chunk into an object that stays invisible until it is completed, so memory does not grow
//! with `CdcMinFileSize`.
//!
//! Mechanism only: the writer buffers, reports its files' figures and seals a file when told,
//! saying why. When to seal is the flush policy's decision, and making a sealed file durable
//! exactly once is the commit protocol's (both in `task`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;

use super::csv::CsvEncoder;
use super::{EncodeSpec, Encoder, Prepared};
use crate::change::{ChangePos, Column, DmsType, Fill, Op, RowBatch, StreamKey, TableSchema};
use crate::checkpoint::FileCounts;
use crate::config::S3Settings;
use crate::error::{Error, Result};
use crate::layout::{self, Compression, FileFormat, Layout};
use crate::store::{ObjectWriter, Store};

/// Raw bytes of rows gathered before they are encoded and uploaded (the same size as a full
/// load's batches), so an open file holds at most this much unencoded.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// ...or this many rows.
const CHUNK_ROWS: usize = 16 * 1024;

/// The time source of the flush policy and of file names; tests drive it by hand.
pub(crate) trait Clock: Send + Sync {
    /// Current UTC time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Whether CDC rows carry the `Op` column (reference §1.4). With `CdcInsertsOnly` the CDC files
/// look like the full-load files; with `CdcInsertsAndUpdates` we keep `Op` (the documented `?`
/// case), because without it a consumer cannot tell an insert from an update.
fn cdc_op_column(s: &S3Settings) -> bool {
    !s.cdc.inserts_only || s.include_op_for_full_load
}

impl EncodeSpec {
    /// The spec for a CDC file of `table`.
    fn cdc(settings: &S3Settings, table: &TableSchema) -> EncodeSpec {
        EncodeSpec {
            op_column: cdc_op_column(settings),
            ..EncodeSpec::full_load(settings, table)
        }
    }
}

/// Why a file was sealed (logged, and counted in the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealReason {
    /// `CdcMinFileSize` reached.
    Size,
    /// `CdcMaxBatchInterval` passed since the file's first change.
    Interval,
    /// All open files together passed the memory budget; this one was the largest.
    Memory,
    /// The table's columns changed; the next file has the new ones.
    Shape,
    /// The task stops.
    Stop,
}

impl SealReason {
    /// Lower-case name for logs and metric labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SealReason::Size => "size",
            SealReason::Interval => "interval",
            SealReason::Memory => "memory",
            SealReason::Shape => "shape",
            SealReason::Stop => "stop",
        }
    }
}

/// What the flush policy looks at for one open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStats {
    /// Raw bytes of the file's rows (`CdcMinFileSize` is measured on these).
    pub(crate) raw_bytes: u64,
    /// Wall-clock ms when its first change arrived (the `CdcMaxBatchInterval` timer).
    pub(crate) opened_ms: i64,
}

/// A file whose last bytes are written but which is not yet visible: the commit protocol
/// records it, then completes `object`.
pub(crate) struct SealedFile {
    /// The series the file belongs to.
    pub(crate) series: StreamKey,
    /// Object key.
    pub(crate) key: String,
    /// The name's stamp (`yyyyMMddHHmmssSSS`).
    pub(crate) stamp: String,
    /// The upload, to complete.
    pub(crate) object: Box<dyn ObjectWriter>,
    /// The file's last change.
    pub(crate) through: ChangePos,
    /// What the file holds.
    pub(crate) counts: FileCounts,
    /// Transaction files: what they hold per table.
    pub(crate) per_table: BTreeMap<String, FileCounts>,
    /// Rows in the file.
    pub(crate) rows: u64,
    /// Why it was sealed.
    pub(crate) reason: SealReason,
}

/// A table's current shape.
struct Table {
    schema: Arc<TableSchema>,
    spec: Arc<EncodeSpec>,
    /// The series its changes go to (kept so the per-change path allocates no key).
    series: StreamKey,
    /// Its own series, whose state records what a snapshot or a restart already wrote.
    own: StreamKey,
    /// `PreserveTransactions`: renders this table's rows as transaction-file lines.
    lines: Option<LineRenderer>,
}

/// Renders one row at a time as `<op>,<table_name>,<schema_name>,<columns…>` CSV lines.
struct LineRenderer {
    encoder: CsvEncoder,
    /// One row: table and schema names, then the columns.
    row: RowBatch,
    /// The table's folder names (schema, table), as the mapping's rules make them.
    folder: (String, String),
}

/// What an open file accumulates.
enum Body {
    /// One table's rows, encoded chunk by chunk (CSV or Parquet).
    Rows {
        spec: Arc<EncodeSpec>,
        chunk: RowBatch,
        encoder: Option<Box<dyn Encoder>>,
    },
    /// Transaction lines, uploaded chunk by chunk (gzip-compressed with `CompressionType=GZIP`).
    Lines {
        text: Vec<u8>,
        gzip: Option<GzEncoder<Vec<u8>>>,
    },
}

/// A file being filled.
struct OpenFile {
    key: String,
    stamp: String,
    object: Box<dyn ObjectWriter>,
    body: Body,
    raw_bytes: u64,
    opened_ms: i64,
    first: ChangePos,
    last: ChangePos,
    first_commit_us: i64,
    counts: FileCounts,
    per_table: BTreeMap<String, FileCounts>,
    rows: u64,
    /// Memory of the encoder and the upload as of the last chunk (they only change then):
    /// keeps [`OpenFile::memory`] cheap enough to ask after every row.
    settled_memory: usize,
}

impl OpenFile {
    fn memory(&self) -> usize {
        self.settled_memory
            + match &self.body {
                Body::Rows { chunk, .. } => chunk.memory(),
                Body::Lines { text, .. } => text.capacity(),
            }
    }

    /// Measures what the encoder and the upload hold (after a chunk went out).
    fn settle_memory(&mut self) {
        self.settled_memory = self.object.buffered()
            + match &self.body {
                Body::Rows { encoder, .. } => encoder.as_ref().map_or(0, |e| e.buffered()),
                Body::Lines { gzip, .. } => gzip.as_ref().map_or(0, |g| g.get_ref().capacity()),
            };
    }

    /// Encodes and uploads what is gathered.
    async fn upload_chunk(&mut self) -> Result<()> {
        let out = match &mut self.body {
            Body::Rows {
                spec,
                chunk,
                encoder,
            } => {
                if chunk.is_empty() {
                    return Ok(());
                }
                let rows = std::mem::take(chunk);
                let n = rows.len();
                let prepared = spec.prepare(rows)?;
                let encoder = match encoder {
                    Some(e) => e,
                    None => encoder.insert(spec.encoder(&prepared)?),
                };
                encoder.write(&prepared, 0..n, u64::MAX)?;
                // Keep the chunk's buffers for the next rows.
                *chunk = prepared.rows;
                chunk.clear();
                encoder.take_output()
            }
            Body::Lines { text, gzip } => match gzip {
                Some(gz) => {
                    gz.write_all(text).map_err(gzip_error)?;
                    text.clear();
                    std::mem::take(gz.get_mut())
                }
                None => std::mem::take(text),
            },
        };
        if !out.is_empty() {
            self.object.write(Bytes::from(out)).await?;
        }
        self.settle_memory();
        Ok(())
    }

    /// True when the gathered rows should be encoded now.
    fn chunk_full(&self) -> bool {
        match &self.body {
            Body::Rows { chunk, .. } => {
                chunk.data_bytes() >= CHUNK_BYTES || chunk.len() >= CHUNK_ROWS
            }
            Body::Lines { text, .. } => text.len() >= CHUNK_BYTES,
        }
    }
}

fn gzip_error(e: std::io::Error) -> Error {
    Error::internal(format!("gzip: {e}"))
}

/// Buffers changes per series and writes CDC files. Changes arrive in commit order per table.
pub(crate) struct CdcWriter<'a> {
    store: &'a dyn Store,
    layout: &'a Layout,
    settings: &'a S3Settings,
    clock: Arc<dyn Clock>,
    tables: HashMap<String, Table>,
    files: BTreeMap<StreamKey, OpenFile>,
    /// The newest name stamp used per series, so names strictly increase.
    stamps: HashMap<StreamKey, String>,
}

impl<'a> CdcWriter<'a> {
    /// A writer whose series continue after the given newest stamps (from the checkpoint).
    pub(crate) fn new(
        store: &'a dyn Store,
        layout: &'a Layout,
        settings: &'a S3Settings,
        clock: Arc<dyn Clock>,
        stamps: impl IntoIterator<Item = (StreamKey, String)>,
    ) -> CdcWriter<'a> {
        CdcWriter {
            store,
            layout,
            settings,
            clock,
            tables: HashMap::new(),
            files: BTreeMap::new(),
            stamps: stamps.into_iter().collect(),
        }
    }

    /// The series `table`'s changes are written to and the table's own series (the same in
    /// per-table mode), once its shape is set.
    pub(crate) fn keys(&self, table: &str) -> Option<(&StreamKey, &StreamKey)> {
        self.tables.get(table).map(|t| (&t.series, &t.own))
    }

    /// True when changes of this kind are written (`CdcInsertsOnly`, `CdcInsertsAndUpdates`).
    pub(crate) fn wants(&self, op: Op) -> bool {
        let c = &self.settings.cdc;
        match op {
            Op::Insert => true,
            Op::Update => !c.inserts_only,
            Op::Delete => !c.inserts_only && !c.inserts_and_updates,
        }
    }

    /// True when `schema` differs from the shape of rows in its table's open file: the file
    /// must be sealed before [`set_shape`](Self::set_shape), so one file never mixes shapes.
    /// (Transaction lines carry no header and never need it.)
    pub(crate) fn must_seal_for(&self, schema: &TableSchema) -> bool {
        let key = schema.qualified();
        let open = self.files.get(&StreamKey::Table(key.clone()));
        open.is_some() && self.tables.get(&key).is_some_and(|t| *t.schema != *schema)
    }

    /// Installs the shape of `schema.table`'s next rows (after any seal
    /// [`must_seal_for`](Self::must_seal_for) asked for).
    pub(crate) fn set_shape(&mut self, schema: &Arc<TableSchema>) {
        let key = schema.qualified();
        if self.tables.get(&key).is_some_and(|t| t.schema == *schema) {
            return;
        }
        let lines = self
            .settings
            .cdc
            .preserve_transactions_path
            .as_ref()
            .map(|_| self.line_renderer(schema));
        let own = StreamKey::Table(key.clone());
        let series = match lines {
            Some(_) => StreamKey::Transactions,
            None => own.clone(),
        };
        self.tables.insert(
            key,
            Table {
                spec: Arc::new(EncodeSpec::cdc(self.settings, schema)),
                schema: schema.clone(),
                lines,
                series,
                own,
            },
        );
    }

    /// A line renderer for `schema`'s rows: a CSV encoder whose first columns are the table and
    /// schema names.
    fn line_renderer(&self, schema: &TableSchema) -> LineRenderer {
        let text = |name: &str| Column {
            name: name.to_string(),
            dms_type: DmsType::String { lob: false },
            source_type: "text".to_string(),
        };
        let mut columns = vec![text("table_name"), text("schema_name")];
        columns.extend(schema.columns.iter().cloned());
        let mut csv = self.settings.csv.clone();
        csv.add_column_name = false;
        let spec = EncodeSpec {
            format: FileFormat::Csv,
            compression: Compression::None,
            csv,
            parquet: self.settings.parquet.clone(),
            op_column: true,
            timestamp_column: None,
            columns,
        };
        LineRenderer {
            encoder: CsvEncoder::new(Arc::new(spec)),
            row: RowBatch::new(schema.columns.len() + 2),
            folder: self.layout.folder(&schema.schema, &schema.table),
        }
    }

    /// Adds one change of `table` to its series' file (see [`keys`](Self::keys); opening a
    /// file, and uploading a full chunk, as needed). `fill` pushes the row's cells. Returns
    /// the raw bytes that file now holds (what `CdcMinFileSize` is measured on).
    ///
    /// A row its file cannot hold (a value the Parquet column's type cannot store) is refused
    /// here, with an error naming the table, the column and the value, and nothing of it stays
    /// buffered: a file never holds a row that would fail when it is written.
    pub(crate) async fn push(
        &mut self,
        table: &str,
        op: Op,
        commit_us: i64,
        pos: ChangePos,
        fill: &mut Fill<'_>,
    ) -> Result<u64> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| Error::internal(format!("no shape for {table}")))?;
        if !self.files.contains_key(&t.series) {
            let series = t.series.clone();
            self.open(&series, table, &pos, commit_us).await?;
        }
        let t = self.tables.get_mut(table).expect("shape checked above");
        let file = self.files.get_mut(&t.series).expect("opened above");
        let added = match &mut file.body {
            Body::Rows { spec, chunk, .. } => {
                let before = chunk.data_bytes();
                let added = fill_row(chunk, fill, op, commit_us, &|rows| {
                    spec.check_row(rows, rows.len() - 1)
                });
                file.raw_bytes += (chunk.data_bytes() - before) as u64;
                added
            }
            Body::Lines { text, .. } => {
                let lines = t
                    .lines
                    .as_mut()
                    .ok_or_else(|| Error::internal("transaction file without a line renderer"))?;
                lines.row.push_cell(lines.folder.1.as_bytes());
                lines.row.push_cell(lines.folder.0.as_bytes());
                // Transaction files are CSV, which holds every value.
                fill_row(&mut lines.row, fill, op, commit_us, &|_| Ok(())).and_then(|markers| {
                    let one = Prepared {
                        rows: std::mem::take(&mut lines.row),
                        arrays: None,
                    };
                    let written = lines.encoder.write(&one, 0..1, u64::MAX);
                    lines.row = one.rows;
                    lines.row.clear();
                    written?;
                    let line = lines.encoder.take_output();
                    file.raw_bytes += line.len() as u64;
                    text.extend_from_slice(&line);
                    // Looked up before inserting: `entry` would allocate the name on every row.
                    if !file.per_table.contains_key(table) {
                        file.per_table
                            .insert(table.to_string(), FileCounts::default());
                    }
                    let counts = file.per_table.get_mut(table).expect("inserted above");
                    counts.ops.add(op);
                    counts.markers += markers;
                    Ok(markers)
                })
            }
        };
        let markers = match added {
            Ok(markers) => markers,
            Err(e) => {
                // A file opened for this row alone would be an empty object: drop it.
                if file.rows == 0 {
                    let series = t.series.clone();
                    self.discard(&series).await;
                }
                return Err(e.context(format_args!("table {table}")));
            }
        };
        file.counts.ops.add(op);
        file.counts.markers += markers;
        file.rows += 1;
        file.last = pos;
        if file.chunk_full() {
            file.upload_chunk().await?;
        }
        Ok(file.raw_bytes)
    }

    /// Opens `series`' next file, named after now (or just after its previous name).
    async fn open(
        &mut self,
        series: &StreamKey,
        table: &str,
        first: &ChangePos,
        commit_us: i64,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut stamp = self.layout.cdc_stamp(now);
        if let Some(last) = self.stamps.get(series) {
            if stamp <= *last {
                stamp = layout::next_stamp(last);
            }
        }
        let (key, body, tags) = match series {
            StreamKey::Table(_) => {
                let t = self
                    .tables
                    .get(table)
                    .ok_or_else(|| Error::internal(format!("no shape for {table}")))?;
                let key = self
                    .layout
                    .cdc_key_at(&t.schema.schema, &t.schema.table, &stamp);
                let body = Body::Rows {
                    spec: t.spec.clone(),
                    chunk: RowBatch::new(t.schema.columns.len()),
                    encoder: None,
                };
                (
                    key,
                    body,
                    self.layout.tags(&t.schema.schema, &t.schema.table),
                )
            }
            StreamKey::Transactions => {
                let path = self.settings.cdc.preserve_transactions_path.as_deref();
                let key = self.layout.cdc_txn_key_at(path.unwrap_or_default(), &stamp);
                let gzip = (self.layout.compression == Compression::Gzip)
                    .then(|| GzEncoder::new(Vec::new(), flate2::Compression::default()));
                // Transaction files hold every table's changes: no one table's tags apply.
                (
                    key,
                    Body::Lines {
                        text: Vec::new(),
                        gzip,
                    },
                    Vec::new(),
                )
            }
        };
        let object = self.store.create_tagged(&key, &tags).await?;
        self.stamps.insert(series.clone(), stamp.clone());
        self.files.insert(
            series.clone(),
            OpenFile {
                key,
                stamp,
                object,
                body,
                raw_bytes: 0,
                opened_ms: now.timestamp_millis(),
                first: first.clone(),
                last: first.clone(),
                first_commit_us: commit_us,
                counts: FileCounts::default(),
                per_table: BTreeMap::new(),
                rows: 0,
                settled_memory: 0,
            },
        );
        Ok(())
    }

    /// Writes the rest of `series`' open file and hands it over to be completed; None when
    /// nothing is open. On error the upload is dropped (nothing becomes visible).
    pub(crate) async fn seal(
        &mut self,
        series: &StreamKey,
        reason: SealReason,
    ) -> Result<Option<SealedFile>> {
        let Some(mut file) = self.files.remove(series) else {
            return Ok(None);
        };
        file.upload_chunk().await?;
        let tail = match file.body {
            Body::Rows { encoder, .. } => match encoder {
                Some(e) => e.finish()?,
                None => Vec::new(),
            },
            Body::Lines { gzip, .. } => match gzip {
                Some(gz) => gz.finish().map_err(gzip_error)?,
                None => Vec::new(),
            },
        };
        if !tail.is_empty() {
            file.object.write(Bytes::from(tail)).await?;
        }
        Ok(Some(SealedFile {
            series: series.clone(),
            key: file.key,
            stamp: file.stamp,
            object: file.object,
            through: file.last,
            counts: file.counts,
            per_table: file.per_table,
            rows: file.rows,
            reason,
        }))
    }

    /// Drops `series`' open file without writing it (its changes are read again, or its table's
    /// objects are being deleted).
    pub(crate) async fn discard(&mut self, series: &StreamKey) {
        if let Some(file) = self.files.remove(series) {
            let _ = file.object.abort().await;
        }
    }

    /// Drops every open file.
    pub(crate) async fn discard_all(&mut self) {
        let all: Vec<StreamKey> = self.files.keys().cloned().collect();
        for series in all {
            self.discard(&series).await;
        }
    }

    /// The series with an open file.
    pub(crate) fn open_series(&self) -> Vec<StreamKey> {
        self.files.keys().cloned().collect()
    }

    /// What the flush policy looks at for `series`' open file.
    pub(crate) fn stats(&self, series: &StreamKey) -> Option<FileStats> {
        self.files.get(series).map(|f| FileStats {
            raw_bytes: f.raw_bytes,
            opened_ms: f.opened_ms,
        })
    }

    /// When the oldest open file opened (wall-clock ms).
    pub(crate) fn oldest_opened_ms(&self) -> Option<i64> {
        self.files.values().map(|f| f.opened_ms).min()
    }

    /// Bytes all open files hold in memory.
    pub(crate) fn memory(&self) -> usize {
        self.files.values().map(OpenFile::memory).sum()
    }

    /// The open file holding the most memory.
    pub(crate) fn largest(&self) -> Option<StreamKey> {
        self.files
            .iter()
            .max_by_key(|(_, f)| f.memory())
            .map(|(k, _)| k.clone())
    }

    /// The earliest change not yet durable, over all open files.
    pub(crate) fn oldest(&self) -> Option<&ChangePos> {
        self.files.values().map(|f| &f.first).min()
    }

    /// Commit time (µs) of the oldest change not yet durable (the target-latency figure).
    pub(crate) fn oldest_commit_us(&self) -> Option<i64> {
        self.files.values().map(|f| f.first_commit_us).min()
    }

    /// The clock's current time in ms.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }
}

/// Fills and ends one row of `out` and `check`s it (given `out`, whose last row it is),
/// removing the row, or what was filled of it, if either fails.
fn fill_row(
    out: &mut RowBatch,
    fill: &mut Fill<'_>,
    op: Op,
    commit_us: i64,
    check: &dyn Fn(&RowBatch) -> Result<()>,
) -> Result<u64> {
    let markers = match fill(out).and_then(|markers| out.end_row(op, commit_us).map(|()| markers)) {
        Ok(markers) => markers,
        Err(e) => {
            out.discard_partial_row();
            return Err(e);
        }
    };
    if let Err(e) = check(out) {
        out.pop_row();
        return Err(e);
    }
    Ok(markers)
}

#[cfg(test)]
mod tests;
