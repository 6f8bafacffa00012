//! Parquet encoding with DMS's type map (reference §4.1) and writer settings (§1.5).
//!
//! Rows are converted column by column into Arrow arrays and handed to arrow-rs's `ArrowWriter`,
//! which writes into a `Vec<u8>` that we drain after each batch; encoded bytes therefore leave
//! memory as soon as a row group is flushed, and the writer stays synchronous (CPU work) while
//! uploads stay async.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
    UInt16Builder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression as PqCompression;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

use super::values::{self, render_timestamp_column, BadValue};
use super::{EncodeSpec, Encoder};
use crate::change::{Column, DmsType, RowBatch};
use crate::config::target::{Encoding, ParquetVersion};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Compression;

/// Upper bound on a row group's buffered bytes, so wide LOB rows cannot grow memory without
/// limit before `RowGroupLength` rows are reached.
const MAX_ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Timezone stored on DATETIME columns: marks them UTC-adjusted, as DMS's files are.
const UTC: &str = "UTC";

/// Encodes rows as one Parquet file.
pub struct ParquetEncoder {
    spec: Arc<EncodeSpec>,
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    ts_cache: (i64, String),
    scratch: Vec<u8>,
    /// Whether the batch being written is all valid UTF-8 (computed once per `write`).
    utf8_checked: Option<bool>,
}

/// The Arrow type written for a DMS type.
pub fn arrow_type(t: DmsType, timestamp_ms: bool) -> DataType {
    match t {
        DmsType::Boolean => DataType::Boolean,
        DmsType::Int1 => DataType::Int8,
        DmsType::Int2 => DataType::Int16,
        DmsType::Int4 => DataType::Int32,
        DmsType::Int8 => DataType::Int64,
        DmsType::UInt1 => DataType::UInt8,
        DmsType::UInt2 => DataType::UInt16,
        DmsType::UInt4 => DataType::UInt32,
        DmsType::UInt8 => DataType::UInt64,
        DmsType::Numeric { precision, scale } => DataType::Decimal128(precision, scale),
        DmsType::Real4 => DataType::Float32,
        DmsType::Real8 => DataType::Float64,
        DmsType::Date => DataType::Date32,
        DmsType::Time => DataType::Time64(TimeUnit::Microsecond),
        DmsType::DateTime if timestamp_ms => {
            DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()))
        }
        DmsType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        DmsType::String { .. } => DataType::Utf8,
        DmsType::Bytes { .. } => DataType::Binary,
    }
}

impl ParquetEncoder {
    /// A new file.
    pub fn new(spec: Arc<EncodeSpec>) -> Result<ParquetEncoder> {
        let pq = &spec.parquet;
        let mut fields = Vec::new();
        if spec.op_column {
            fields.push(Field::new("Op", DataType::Utf8, false));
        }
        if let Some(name) = &spec.timestamp_column {
            fields.push(Field::new(name, DataType::Utf8, false));
        }
        for c in &spec.columns {
            // Source columns are OPTIONAL regardless of NOT NULL, as in DMS's files.
            fields.push(Field::new(
                &c.name,
                arrow_type(c.dms_type, pq.timestamp_in_millisecond),
                true,
            ));
        }
        let schema = Arc::new(Schema::new(fields));
        let props = WriterProperties::builder()
            .set_writer_version(match pq.version {
                ParquetVersion::V1 => WriterVersion::PARQUET_1_0,
                ParquetVersion::V2 => WriterVersion::PARQUET_2_0,
            })
            .set_compression(match spec.compression {
                Compression::None => PqCompression::UNCOMPRESSED,
                Compression::Gzip => PqCompression::GZIP(Default::default()),
            })
            .set_dictionary_enabled(pq.encoding != Encoding::Plain)
            .set_dictionary_page_size_limit(pq.dict_page_size_limit)
            .set_data_page_size_limit(pq.data_page_size)
            .set_max_row_group_row_count(Some(pq.row_group_length))
            .set_max_row_group_bytes(Some(MAX_ROW_GROUP_BYTES))
            .set_statistics_enabled(if pq.enable_statistics {
                EnabledStatistics::Page
            } else {
                EnabledStatistics::None
            })
            .set_created_by(format!("tributary version {}", env!("CARGO_PKG_VERSION")))
            .build();
        // No ARROW:schema key-value metadata: DMS's files carry none, and readers use the
        // Parquet logical types.
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true);
        let writer =
            ArrowWriter::try_new_with_options(Vec::with_capacity(1 << 20), schema.clone(), options)
                .map_err(|e| Error::internal(format!("parquet writer: {e}")))?;
        Ok(ParquetEncoder {
            spec,
            schema,
            writer,
            ts_cache: (i64::MIN, String::new()),
            scratch: Vec::new(),
            utf8_checked: None,
        })
    }

    /// Builds the Arrow array of one source column over `rows`.
    fn column(
        &mut self,
        batch: &RowBatch,
        rows: &std::ops::Range<usize>,
        col: usize,
        c: &Column,
    ) -> Result<ArrayRef> {
        let n = rows.len();
        let err = |e: BadValue| {
            Error::new(
                ErrorKind::Data,
                format!(
                    "column {} ({}): cannot write {} as Parquet {}",
                    c.name, c.source_type, e.0, c.dms_type
                ),
                "map the column to a string with a view or a cast, or use DataFormat=csv",
            )
        };
        macro_rules! build {
            ($builder:expr, |$v:ident| $parse:expr) => {{
                let mut b = $builder;
                for row in rows.clone() {
                    match batch.get(row, col) {
                        None => b.append_null(),
                        Some($v) => b.append_value($parse.map_err(err)?),
                    }
                }
                Arc::new(b.finish()) as ArrayRef
            }};
        }
        let ms = self.spec.parquet.timestamp_in_millisecond;
        Ok(match c.dms_type {
            DmsType::Boolean => build!(BooleanBuilder::with_capacity(n), |v| values::parse_bool(v)),
            DmsType::Int1 => build!(Int8Builder::with_capacity(n), |v| values::parse_int::<i8>(
                v
            )),
            DmsType::Int2 => build!(
                Int16Builder::with_capacity(n),
                |v| values::parse_int::<i16>(v)
            ),
            DmsType::Int4 => build!(
                Int32Builder::with_capacity(n),
                |v| values::parse_int::<i32>(v)
            ),
            DmsType::Int8 => build!(
                Int64Builder::with_capacity(n),
                |v| values::parse_int::<i64>(v)
            ),
            DmsType::UInt1 => build!(UInt8Builder::with_capacity(n), |v| values::parse_int::<u8>(
                v
            )),
            DmsType::UInt2 => build!(
                UInt16Builder::with_capacity(n),
                |v| values::parse_int::<u16>(v)
            ),
            DmsType::UInt4 => build!(
                UInt32Builder::with_capacity(n),
                |v| values::parse_int::<u32>(v)
            ),
            DmsType::UInt8 => build!(
                UInt64Builder::with_capacity(n),
                |v| values::parse_int::<u64>(v)
            ),
            DmsType::Real4 => build!(Float32Builder::with_capacity(n), |v| values::parse_float(v)
                .map(|f| f as f32)),
            DmsType::Real8 => build!(Float64Builder::with_capacity(n), |v| values::parse_float(v)),
            DmsType::Numeric { precision, scale } => {
                let b = Decimal128Builder::with_capacity(n)
                    .with_precision_and_scale(precision, scale)
                    .map_err(|e| Error::internal(format!("decimal type: {e}")))?;
                build!(b, |v| values::parse_decimal(v, precision, scale))
            }
            DmsType::Date => build!(Date32Builder::with_capacity(n), |v| values::parse_date(v)),
            DmsType::Time => build!(Time64MicrosecondBuilder::with_capacity(n), |v| {
                values::parse_time(v)
            }),
            DmsType::DateTime if ms => build!(
                TimestampMillisecondBuilder::with_capacity(n).with_timezone(UTC),
                |v| values::parse_datetime(v).map(|us| us.div_euclid(1000))
            ),
            DmsType::DateTime => build!(
                TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC),
                |v| values::parse_datetime(v)
            ),
            DmsType::String { .. } => {
                let checked = *self.utf8_checked.get_or_insert_with(|| batch.all_utf8());
                let mut b = StringBuilder::with_capacity(n, n * 16);
                for row in rows.clone() {
                    match batch.get(row, col) {
                        None => b.append_null(),
                        // SAFETY: `all_utf8` proved every cell of this batch valid UTF-8.
                        Some(v) if checked => {
                            b.append_value(unsafe { std::str::from_utf8_unchecked(v) })
                        }
                        Some(v) => b.append_value(std::str::from_utf8(v).map_err(|_| {
                            err(BadValue(format!("row {row}: text that is not UTF-8")))
                        })?),
                    }
                }
                Arc::new(b.finish())
            }
            DmsType::Bytes { .. } => {
                let mut b = BinaryBuilder::with_capacity(n, n * 16);
                for row in rows.clone() {
                    match batch.get(row, col) {
                        None => b.append_null(),
                        Some(v) => {
                            self.scratch.clear();
                            values::parse_bytes(v, &mut self.scratch).map_err(err)?;
                            b.append_value(&self.scratch);
                        }
                    }
                }
                Arc::new(b.finish())
            }
        })
    }
}

impl Encoder for ParquetEncoder {
    fn write(&mut self, batch: &RowBatch, rows: std::ops::Range<usize>) -> Result<()> {
        let spec = self.spec.clone();
        self.utf8_checked = None;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        if spec.op_column {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len());
            for row in rows.clone() {
                b.append_value(batch.ops[row].letter());
            }
            arrays.push(Arc::new(b.finish()));
        }
        if spec.timestamp_column.is_some() {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 26);
            for row in rows.clone() {
                let t = batch.times[row];
                if self.ts_cache.0 != t {
                    self.ts_cache.1.clear();
                    render_timestamp_column(t, &mut self.ts_cache.1);
                    self.ts_cache.0 = t;
                }
                b.append_value(&self.ts_cache.1);
            }
            arrays.push(Arc::new(b.finish()));
        }
        for (col, c) in spec.columns.iter().enumerate() {
            arrays.push(self.column(batch, &rows, col, c)?);
        }
        let rb = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::internal(format!("record batch: {e}")))?;
        self.writer
            .write(&rb)
            .map_err(|e| Error::internal(format!("parquet encode: {e}")))
    }

    fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    fn take_output(&mut self) -> Vec<u8> {
        // Draining the sink is safe: the writer tracks offsets itself and never reads back.
        std::mem::take(self.writer.inner_mut())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>> {
        self.writer
            .finish()
            .map_err(|e| Error::internal(format!("parquet footer: {e}")))?;
        Ok(std::mem::take(self.writer.inner_mut()))
    }
}
