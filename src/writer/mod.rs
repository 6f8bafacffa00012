//! The file writers: rows become files of bounded size with the Op and timestamp columns, streamed
//! into the store. CSV and Parquet sit behind the [`Encoder`] trait; [`load::LoadWriter`] rolls
//! `LOAD%08X` files at `MaxFileSize`, [`cdc::CdcWriter`] keeps one open CDC file per table and
//! seals it when asked (the flush policy and the commit protocol live in `task`).

pub(crate) mod cdc;
pub(crate) mod csv;
pub(crate) mod load;
pub(crate) mod parquet;
pub(crate) mod values;

use std::sync::Arc;

use crate::change::{Column, RowBatch, TableSchema};
use crate::config::target::{CsvSettings, ParquetSettings};
use crate::config::S3Settings;
use crate::error::Result;
use crate::layout::{Compression, FileFormat};

/// What an encoder writes for one table: the shared settings and the output columns.
#[derive(Debug, Clone)]
pub(crate) struct EncodeSpec {
    /// File format.
    pub(crate) format: FileFormat,
    /// CompressionType.
    pub(crate) compression: Compression,
    /// CSV settings.
    pub(crate) csv: CsvSettings,
    /// Parquet settings.
    pub(crate) parquet: ParquetSettings,
    /// Whether rows start with the `Op` column (decided per phase from the §1.4 matrix).
    pub(crate) op_column: bool,
    /// `TimestampColumnName`, the column right after `Op`.
    pub(crate) timestamp_column: Option<String>,
    /// Source columns in ordinal order.
    pub(crate) columns: Vec<Column>,
}

impl EncodeSpec {
    /// The spec for a full-load file of `table`.
    pub(crate) fn full_load(settings: &S3Settings, table: &TableSchema) -> EncodeSpec {
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
    pub(crate) fn output_names(&self) -> Vec<String> {
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
    pub(crate) fn prepare(&self, rows: RowBatch) -> Result<Prepared> {
        match self.format {
            FileFormat::Csv => Ok(Prepared { rows, arrays: None }),
            FileFormat::Parquet => Ok(Prepared {
                arrays: Some(parquet::convert(self, &rows)?),
                rows,
            }),
        }
    }

    /// Fails where [`prepare`](Self::prepare) would fail on row `row` of `rows` (a value its
    /// column's Parquet type cannot hold, named with the column and the fix); CSV holds every
    /// value. CDC checks each change with it as it enters the writer, so a file never buffers a
    /// row it cannot write.
    pub(crate) fn check_row(&self, rows: &RowBatch, row: usize) -> Result<()> {
        match self.format {
            FileFormat::Csv => Ok(()),
            FileFormat::Parquet => parquet::check_row(self, rows, row),
        }
    }

    /// A fresh encoder for one file; `first` is the file's first batch, whose sample decides
    /// per-column Parquet encodings.
    pub(crate) fn encoder(self: &Arc<Self>, first: &Prepared) -> Result<Box<dyn Encoder>> {
        Ok(match self.format {
            FileFormat::Csv => Box::new(csv::CsvEncoder::new(self.clone())),
            FileFormat::Parquet => Box::new(parquet::ParquetEncoder::new(self.clone(), first)?),
        })
    }
}

/// A batch ready for an encoder: the rows, plus what [`EncodeSpec::prepare`] derived from them.
pub(crate) struct Prepared {
    /// The rows (CSV renders from them; Op and timestamp columns come from them).
    pub(crate) rows: RowBatch,
    /// Parquet: the source columns as Arrow arrays.
    pub(crate) arrays: Option<Vec<arrow_array::ArrayRef>>,
}

/// Encodes rows into the bytes of one file. Synchronous: encoding is CPU work; the caller moves
/// the produced bytes to the store.
pub(crate) trait Encoder: Send {
    /// Encodes rows of `batch` from `rows`, in order, until the file's [`size`](Self::size)
    /// reaches `limit`, and returns how many it encoded: at least one (so a file always makes
    /// progress), and CSV stops within one row of the limit. Parquet's size is an estimate
    /// until a row group is flushed, so it writes in shrinking chunks sized from the rows' raw
    /// bytes and the file's encoded/raw ratio so far, and ends close to the limit.
    fn write(
        &mut self,
        batch: &Prepared,
        rows: std::ops::Range<usize>,
        limit: u64,
    ) -> Result<usize>;
    /// The size that `MaxFileSize` is compared with: uncompressed CSV bytes, or encoded Parquet
    /// bytes (written plus buffered in the open row group).
    fn size(&self) -> u64;
    /// Bytes held in memory until the next [`take_output`](Self::take_output) or row group.
    fn buffered(&self) -> usize;
    /// Takes the bytes ready to upload (may be empty while Parquet buffers a row group).
    fn take_output(&mut self) -> Vec<u8>;
    /// Ends the file (Parquet footer, gzip trailer) and returns the remaining bytes.
    fn finish(self: Box<Self>) -> Result<Vec<u8>>;
}
