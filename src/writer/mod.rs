//! The file writer: one format-agnostic writer that turns row batches into files of bounded size,
//! adds the Op and timestamp columns, and streams each file to the store. CSV and Parquet sit
//! behind the [`Encoder`] trait.

pub mod cdc;
pub mod csv;
pub mod parquet;
pub mod values;

use std::sync::Arc;

use bytes::Bytes;

use crate::change::{Column, RowBatch, TableSchema};
use crate::config::target::{CsvSettings, ParquetSettings};
use crate::config::S3Settings;
use crate::error::Result;
use crate::layout::{Compression, FileFormat, Layout};
use crate::store::{ObjectWriter, Store};

/// What an encoder writes for one table: the shared settings and the output columns.
#[derive(Debug, Clone)]
pub struct EncodeSpec {
    /// File format.
    pub format: FileFormat,
    /// CompressionType.
    pub compression: Compression,
    /// CSV settings.
    pub csv: CsvSettings,
    /// Parquet settings.
    pub parquet: ParquetSettings,
    /// Whether rows start with the `Op` column (decided per phase from the §1.4 matrix).
    pub op_column: bool,
    /// `TimestampColumnName`, the column right after `Op`.
    pub timestamp_column: Option<String>,
    /// Source columns in ordinal order.
    pub columns: Vec<Column>,
}

impl EncodeSpec {
    /// The spec for a full-load file of `table`.
    pub fn full_load(settings: &S3Settings, table: &TableSchema) -> EncodeSpec {
        EncodeSpec {
            format: settings.data_format,
            compression: settings.compression,
            csv: settings.csv.clone(),
            parquet: settings.parquet.clone(),
            op_column: settings.include_op_for_full_load,
            timestamp_column: settings.timestamp_column_name.clone(),
            columns: table.columns.clone(),
        }
    }

    /// Output column names in order (the CSV header).
    pub fn output_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.columns.len() + 2);
        if self.op_column {
            names.push("Op".to_string());
        }
        names.extend(self.timestamp_column.clone());
        names.extend(self.columns.iter().map(|c| c.name.clone()));
        names
    }

    /// Does the format's per-batch preparation (Parquet: text → Arrow arrays). CPU work meant
    /// to run on its own thread, ahead of the encoder.
    pub fn prepare(&self, rows: RowBatch) -> Result<Prepared> {
        match self.format {
            FileFormat::Csv => Ok(Prepared { rows, arrays: None }),
            FileFormat::Parquet => Ok(Prepared {
                arrays: Some(parquet::convert(self, &rows)?),
                rows,
            }),
        }
    }

    /// A fresh encoder for one file; `first` is the file's first batch, whose sample decides
    /// per-column Parquet encodings.
    pub fn encoder(self: &Arc<Self>, first: &Prepared) -> Result<Box<dyn Encoder>> {
        Ok(match self.format {
            FileFormat::Csv => Box::new(csv::CsvEncoder::new(self.clone())),
            FileFormat::Parquet => Box::new(parquet::ParquetEncoder::new(self.clone(), first)?),
        })
    }
}

/// A batch ready for an encoder: the rows, plus what [`EncodeSpec::prepare`] derived from them.
pub struct Prepared {
    /// The rows (CSV renders from them; Op and timestamp columns come from them).
    pub rows: RowBatch,
    /// Parquet: the source columns as Arrow arrays.
    pub arrays: Option<Vec<arrow_array::ArrayRef>>,
}

/// Encodes rows into the bytes of one file. Synchronous: encoding is CPU work; the caller moves
/// the produced bytes to the store.
pub trait Encoder: Send {
    /// Encodes rows `rows` of `batch`.
    fn write(&mut self, batch: &Prepared, rows: std::ops::Range<usize>) -> Result<()>;
    /// The size that `MaxFileSize` is compared with: uncompressed CSV bytes, or encoded Parquet
    /// bytes (written plus buffered in the open row group).
    fn size(&self) -> u64;
    /// Takes the bytes ready to upload (may be empty while Parquet buffers a row group).
    fn take_output(&mut self) -> Vec<u8>;
    /// Ends the file (Parquet footer, gzip trailer) and returns the remaining bytes.
    fn finish(self: Box<Self>) -> Result<Vec<u8>>;
}

/// Sizes a chunk of rows so a file rolls close to its limit: the rows that fit the remaining
/// budget at the estimated row size (one row until there is an estimate), at least one.
fn rows_that_fit(limit: u64, size: u64, bytes_per_row: Option<u64>, available: usize) -> usize {
    let Some(per_row) = bytes_per_row else {
        return available.min(1);
    };
    let room = limit.saturating_sub(size) / per_row.max(1);
    (room as usize).clamp(1, available)
}

/// An open file: its encoder and the object it streams into.
struct OpenFile {
    key: String,
    encoder: Box<dyn Encoder>,
    object: Box<dyn ObjectWriter>,
    rows: u64,
}

/// Writes one table's full load as `LOAD%08X` files, rolling at `MaxFileSize`.
///
/// Files become visible one by one as they complete; on error or [`abort`](Self::abort) the
/// open file is discarded (never visible), and finished files remain for the caller to delete.
pub struct LoadWriter<'a> {
    store: &'a dyn Store,
    layout: &'a Layout,
    table: &'a TableSchema,
    spec: Arc<EncodeSpec>,
    max_bytes: u64,
    next_counter: u64,
    open: Option<OpenFile>,
    /// Average encoded bytes per row seen so far (carried across files of the table).
    bytes_per_row: Option<u64>,
    /// Keys of finished files, in order (last, a file whose finish failed: it may be visible).
    pub finished: Vec<String>,
    /// Bytes of finished files.
    pub bytes: u64,
}

impl<'a> LoadWriter<'a> {
    /// A writer whose first file is `LOAD{first_counter:08X}`.
    pub fn new(
        store: &'a dyn Store,
        layout: &'a Layout,
        table: &'a TableSchema,
        spec: Arc<EncodeSpec>,
        max_file_size_kb: u64,
        first_counter: u64,
    ) -> LoadWriter<'a> {
        LoadWriter {
            store,
            layout,
            table,
            spec,
            max_bytes: max_file_size_kb * 1024,
            next_counter: first_counter,
            open: None,
            bytes_per_row: None,
            finished: Vec::new(),
            bytes: 0,
        }
    }

    /// Appends a batch, rolling files as they reach the size limit.
    pub async fn write(&mut self, batch: &Prepared) -> Result<()> {
        let mut row = 0;
        let len = batch.rows.len();
        while row < len {
            if self.open.is_none() {
                let key = self.layout.load_key(
                    &self.table.schema,
                    &self.table.table,
                    self.next_counter,
                )?;
                self.next_counter += 1;
                let object = self.store.create(&key).await?;
                self.open = Some(OpenFile {
                    key,
                    encoder: self.spec.encoder(batch)?,
                    object,
                    rows: 0,
                });
            }
            let file = self.open.as_mut().expect("opened above");
            let n = rows_that_fit(
                self.max_bytes,
                file.encoder.size(),
                self.bytes_per_row,
                len - row,
            );
            file.encoder.write(batch, row..row + n)?;
            file.rows += n as u64;
            row += n;
            let size = file.encoder.size();
            if size > 0 {
                self.bytes_per_row = Some(size.div_ceil(file.rows));
            }
            let out = file.encoder.take_output();
            if !out.is_empty() {
                file.object.write(Bytes::from(out)).await?;
            }
            if file.encoder.size() >= self.max_bytes {
                self.close().await?;
            }
        }
        Ok(())
    }

    /// Completes the open file (if any) and makes it visible; call once after the last batch.
    pub async fn close(&mut self) -> Result<()> {
        let Some(file) = self.open.take() else {
            return Ok(());
        };
        let rest = match file.encoder.finish() {
            Ok(rest) => rest,
            Err(e) => {
                let _ = file.object.abort().await;
                return Err(e);
            }
        };
        let mut object = file.object;
        if !rest.is_empty() {
            object.write(Bytes::from(rest)).await?;
        }
        let finished = object.finish().await;
        // Counted even when finish fails: an S3 completion whose outcome stayed unknown may have
        // made the object visible, and the caller deletes the finished keys on error.
        self.finished.push(file.key);
        self.bytes += finished?;
        Ok(())
    }

    /// Discards the open file; finished files stay (the caller decides about them).
    pub async fn abort(&mut self) {
        if let Some(file) = self.open.take() {
            let _ = file.object.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_fills_toward_limit() {
        assert_eq!(rows_that_fit(1000, 0, None, 5000), 1);
        assert_eq!(rows_that_fit(1000, 500, Some(10), 5000), 50);
        assert_eq!(rows_that_fit(1000, 999, Some(10), 5000), 1);
        assert_eq!(rows_that_fit(1000, 100, Some(10), 3), 3);
    }
}
