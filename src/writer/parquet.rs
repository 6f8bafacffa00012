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
use parquet::schema::types::ColumnPath;

use super::values::{self, render_timestamp_column, BadValue};
use super::{EncodeSpec, Encoder, Prepared};
use crate::change::{Column, DmsType, RowBatch};
use crate::config::target::{Encoding, ParquetVersion};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Compression;

/// Upper bound on a row group's buffered bytes, so wide LOB rows cannot grow memory without
/// limit before `RowGroupLength` rows are reached.
const MAX_ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Rows sampled from a file's first batch to judge each column's distinctness.
const DICTIONARY_SAMPLE_ROWS: usize = 1024;
/// A column whose sample is more distinct than this is written PLAIN: a dictionary of nearly
/// unique values saves nothing, and arrow-rs would intern every value before falling back.
const DICTIONARY_MAX_DISTINCT: f64 = 0.9;

/// True when the sampled values of `col` are nearly all distinct.
fn mostly_distinct(batch: &RowBatch, col: usize) -> bool {
    let n = batch.len().min(DICTIONARY_SAMPLE_ROWS);
    if n < 64 {
        return false;
    }
    let distinct: std::collections::HashSet<Option<&[u8]>> =
        (0..n).map(|r| batch.get(r, col)).collect();
    distinct.len() as f64 > n as f64 * DICTIONARY_MAX_DISTINCT
}

/// Timezone stored on DATETIME columns: marks them UTC-adjusted, as DMS's files are.
const UTC: &str = "UTC";

/// Encodes rows as one Parquet file.
pub(crate) struct ParquetEncoder {
    spec: Arc<EncodeSpec>,
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    ts_cache: (i64, String),
    /// Raw bytes of the rows encoded so far (the size estimate's yardstick).
    raw_written: u64,
}

/// The Arrow type written for a DMS type.
pub(crate) fn arrow_type(t: DmsType, timestamp_ms: bool) -> DataType {
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
    /// A new file; a sample of `first` (its first rows) decides which columns skip the dictionary.
    pub(crate) fn new(spec: Arc<EncodeSpec>, first: &Prepared) -> Result<ParquetEncoder> {
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
        let mut props = WriterProperties::builder();
        if pq.encoding != Encoding::Plain {
            for (col, c) in spec.columns.iter().enumerate() {
                if mostly_distinct(&first.rows, col) {
                    props = props
                        .set_column_dictionary_enabled(ColumnPath::from(c.name.as_str()), false);
                }
            }
        }
        let props = props
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
            raw_written: 0,
        })
    }
}

/// Converts every source column of `batch` into Arrow arrays (the CPU-heavy part of Parquet
/// output, run on the converter thread, not the encoder's).
pub(crate) fn convert(spec: &EncodeSpec, batch: &RowBatch) -> Result<Vec<ArrayRef>> {
    let utf8 = spec
        .columns
        .iter()
        .any(|c| matches!(c.dms_type, DmsType::String { .. }))
        && batch.all_utf8();
    let mut scratch = Vec::new();
    spec.columns
        .iter()
        .enumerate()
        .map(|(col, c)| column(spec, batch, col, c, utf8, &mut scratch))
        .collect()
}

/// The error for a value of column `c` that its Parquet type cannot hold: names the column,
/// the value and the fix (the caller adds the table).
fn value_error(c: &Column, e: BadValue) -> Error {
    let rule = format!(
        "add a change-data-type rule with data-type string for column {}",
        c.name
    );
    // Unbounded PostgreSQL numeric is DMS's NUMERIC(28,6); DMS's own setting makes it text.
    let setting = match c.dms_type {
        DmsType::Numeric { .. } if c.source_type == "numeric" => {
            "set MapUnboundedNumericAsString = true in [source.settings] (every unbounded numeric column), or "
        }
        _ => "",
    };
    Error::new(
        ErrorKind::Data,
        format!(
            "column {} ({}): cannot write value {:?} as Parquet {}: {}",
            c.name, c.source_type, e.value, c.dms_type, e.why
        ),
        format!(
            "write the column as text: {setting}{rule}; or use DataFormat=csv, which writes the value as it is"
        ),
    )
}

/// The Parquet value of a DATETIME cell in the column's unit (µs, or ms with
/// `ParquetTimestampInMillisecond`).
fn datetime(v: &[u8], ms: bool) -> Result<i64, BadValue> {
    values::parquet_datetime(v).map(|us| if ms { us.div_euclid(1000) } else { us })
}

/// Fails where [`convert`] would fail on row `row` of `batch`: what a CDC change is checked
/// with when it enters the writer, so that no row its file cannot hold is ever buffered.
pub(crate) fn check_row(spec: &EncodeSpec, batch: &RowBatch, row: usize) -> Result<()> {
    let ms = spec.parquet.timestamp_in_millisecond;
    for (col, c) in spec.columns.iter().enumerate() {
        let Some(v) = batch.get(row, col) else {
            continue;
        };
        let checked = match c.dms_type {
            DmsType::Boolean => values::parse_bool(v).map(drop),
            DmsType::Int1 => values::parse_int::<i8>(v).map(drop),
            DmsType::Int2 => values::parse_int::<i16>(v).map(drop),
            DmsType::Int4 => values::parse_int::<i32>(v).map(drop),
            DmsType::Int8 => values::parse_int::<i64>(v).map(drop),
            DmsType::UInt1 => values::parse_int::<u8>(v).map(drop),
            DmsType::UInt2 => values::parse_int::<u16>(v).map(drop),
            DmsType::UInt4 => values::parse_int::<u32>(v).map(drop),
            DmsType::UInt8 => values::parse_int::<u64>(v).map(drop),
            DmsType::Real4 | DmsType::Real8 => values::parse_float(v).map(drop),
            DmsType::Numeric { precision, scale } => {
                values::parse_decimal(v, precision, scale).map(drop)
            }
            DmsType::Date => values::parquet_date(v).map(drop),
            DmsType::Time => values::parquet_time(v).map(drop),
            DmsType::DateTime => datetime(v, ms).map(drop),
            DmsType::String { .. } => std::str::from_utf8(v)
                .map(drop)
                .map_err(|_| BadValue::new(v, "it is not UTF-8 text")),
            DmsType::Bytes { .. } => values::check_bytes(v),
        };
        checked.map_err(|e| value_error(c, e))?;
    }
    Ok(())
}

/// Builds the Arrow array of one source column; `utf8` says the whole batch is valid UTF-8.
fn column(
    spec: &EncodeSpec,
    batch: &RowBatch,
    col: usize,
    c: &Column,
    utf8: bool,
    scratch: &mut Vec<u8>,
) -> Result<ArrayRef> {
    {
        let rows = 0..batch.len();
        let n = rows.len();
        let err = |e: BadValue| value_error(c, e);
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
        let ms = spec.parquet.timestamp_in_millisecond;
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
            DmsType::Date => build!(Date32Builder::with_capacity(n), |v| values::parquet_date(v)),
            DmsType::Time => build!(Time64MicrosecondBuilder::with_capacity(n), |v| {
                values::parquet_time(v)
            }),
            DmsType::DateTime if ms => build!(
                TimestampMillisecondBuilder::with_capacity(n).with_timezone(UTC),
                |v| datetime(v, true)
            ),
            DmsType::DateTime => build!(
                TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC),
                |v| datetime(v, false)
            ),
            DmsType::String { .. } => {
                let checked = utf8;
                let mut b = StringBuilder::with_capacity(n, n * 16);
                for row in rows.clone() {
                    match batch.get(row, col) {
                        None => b.append_null(),
                        // SAFETY: `all_utf8` proved every cell of this batch valid UTF-8.
                        #[allow(unsafe_code)]
                        Some(v) if checked => {
                            b.append_value(unsafe { std::str::from_utf8_unchecked(v) })
                        }
                        Some(v) => b.append_value(
                            std::str::from_utf8(v)
                                .map_err(|_| err(BadValue::new(v, "it is not UTF-8 text")))?,
                        ),
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
                            scratch.clear();
                            values::parse_bytes(v, scratch).map_err(err)?;
                            b.append_value(&*scratch);
                        }
                    }
                }
                Arc::new(b.finish())
            }
        })
    }
}

impl ParquetEncoder {
    /// Rows from `from` (before `end`) whose estimated encoded size fits `budget`, at least one:
    /// their raw bytes times the file's encoded/raw ratio so far (1 before anything is written).
    fn rows_within(&self, batch: &RowBatch, from: usize, end: usize, budget: u64) -> usize {
        let ratio = match self.raw_written {
            0 => 1.0,
            raw => self.size() as f64 / raw as f64,
        };
        let fits = |n: usize| batch.rows_data_bytes(from..from + n) as f64 * ratio <= budget as f64;
        // Largest n with fits(n): raw bytes grow with n, so binary search.
        let (mut lo, mut hi) = (1, end - from);
        if fits(hi) {
            return hi;
        }
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Encodes rows `rows` as one record batch.
    fn write_slice(&mut self, prepared: &Prepared, rows: std::ops::Range<usize>) -> Result<()> {
        let spec = self.spec.clone();
        let batch = &prepared.rows;
        let converted = prepared
            .arrays
            .as_ref()
            .ok_or_else(|| Error::internal("Parquet batch was not prepared"))?;
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
        arrays.extend(converted.iter().map(|a| a.slice(rows.start, rows.len())));
        let rb = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::internal(format!("record batch: {e}")))?;
        self.writer
            .write(&rb)
            .map_err(|e| Error::internal(format!("parquet encode: {e}")))?;
        self.raw_written += batch.rows_data_bytes(rows) as u64;
        Ok(())
    }
}

impl Encoder for ParquetEncoder {
    fn write(
        &mut self,
        prepared: &Prepared,
        rows: std::ops::Range<usize>,
        limit: u64,
    ) -> Result<usize> {
        let mut at = rows.start;
        while at < rows.end && (at == rows.start || self.size() < limit) {
            // Half the room left per step: a wrong estimate is corrected by the next one, and
            // the file converges on the limit instead of jumping past it.
            let room = limit.saturating_sub(self.size()) / 2;
            let n = self.rows_within(&prepared.rows, at, rows.end, room);
            self.write_slice(prepared, at..at + n)?;
            at += n;
        }
        Ok(at - rows.start)
    }

    fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    fn buffered(&self) -> usize {
        self.writer.memory_size() + self.writer.inner().len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Op;
    use crate::config::target::S3Settings;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn spec(settings: &str) -> Arc<EncodeSpec> {
        let mut bag = crate::config::settings::SettingsBag::new("test");
        bag.extend_eca(settings).unwrap();
        let s = S3Settings::parse(bag, None).unwrap();
        let table = crate::change::TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: ["unique", "few"]
                .iter()
                .map(|n| Column {
                    name: n.to_string(),
                    dms_type: DmsType::String { lob: false },
                    source_type: "text".into(),
                })
                .collect(),
            key: Vec::new(),
        };
        Arc::new(EncodeSpec::full_load(&s, &table))
    }

    /// Encodes 500 rows and returns, per column, whether its chunk has a dictionary page.
    fn dictionary_pages(settings: &str) -> Vec<bool> {
        let mut batch = RowBatch::new(2);
        for i in 0..500 {
            batch.push_cell(format!("value-{i}").as_bytes());
            batch.push_cell(["a", "b", "c"][i % 3].as_bytes());
            batch.end_row(Op::Insert, 0).unwrap();
        }
        let spec = spec(settings);
        let prepared = spec.prepare(batch).unwrap();
        let mut enc = Box::new(ParquetEncoder::new(spec, &prepared).unwrap());
        let n = prepared.rows.len();
        assert_eq!(enc.write(&prepared, 0..n, u64::MAX).unwrap(), n);
        let mut bytes = enc.take_output();
        bytes.extend(enc.finish().unwrap());
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let rg = reader.metadata().row_group(0);
        (0..2)
            .map(|c| rg.column(c).dictionary_page_offset().is_some())
            .collect()
    }

    #[test]
    fn nearly_unique_columns_skip_the_dictionary() {
        assert_eq!(dictionary_pages("dataFormat=parquet"), vec![false, true]);
        assert_eq!(
            dictionary_pages("dataFormat=parquet;encodingType=plain"),
            vec![false, false]
        );
    }

    /// `check_row` (what CDC checks a change with) fails exactly where `convert` fails, for
    /// every type, on values that fit, values at the edges and values that do not; in both
    /// timestamp units. Then CSV writes every one of them.
    #[test]
    fn check_row_agrees_with_convert_and_csv_takes_everything() {
        let numeric = |precision, scale| DmsType::Numeric { precision, scale };
        let cases: Vec<(DmsType, &[&str])> = vec![
            (DmsType::Boolean, &["t", "f", "yes"]),
            (DmsType::Int1, &["-128", "128", "x"]),
            (DmsType::Int2, &["32767", "32768"]),
            (DmsType::Int4, &["-2147483648", "1.5"]),
            (
                DmsType::Int8,
                &["9223372036854775807", "9223372036854775808"],
            ),
            (DmsType::UInt1, &["255", "-1"]),
            (DmsType::UInt2, &["65535", "65536"]),
            (DmsType::UInt4, &["4294967295", "4294967296"]),
            (
                DmsType::UInt8,
                &["18446744073709551615", "18446744073709551616"],
            ),
            (DmsType::Real4, &["1.5", "NaN", "-Infinity", "1e+30", "x"]),
            (DmsType::Real8, &["1e300", "Infinity", "1,5"]),
            (
                numeric(28, 6),
                &[
                    "0.611111104488373",
                    "9999999999999999999999.9999994",
                    "9999999999999999999999.9999995",
                    "1500000000000000000000000000000",
                    "NaN",
                    "Infinity",
                    "-Infinity",
                ],
            ),
            (numeric(10, 0), &["-9999999999", "10000000000", "NaN"]),
            (
                DmsType::Date,
                &[
                    "2024-02-29",
                    "2023-02-29",
                    "infinity",
                    "-infinity",
                    "0001-01-01",
                    "9999-12-31",
                    "10000-01-01",
                    "0001-12-31 BC",
                ],
            ),
            (
                DmsType::Time,
                &["00:00:00", "23:59:59.999999", "24:00:00", "25:00:00"],
            ),
            (
                DmsType::DateTime,
                &[
                    "2024-02-29 12:34:56.5+00",
                    "infinity",
                    "-infinity",
                    "9999-12-31 23:59:59.999999",
                    "10000-01-01 00:00:00",
                    "0044-03-15 10:00:00+00 BC",
                ],
            ),
            (DmsType::String { lob: true }, &["héllo", ""]),
            (
                DmsType::Bytes { lob: false },
                &["\\x00ff", "\\x0", "marker"],
            ),
        ];
        for ms in [false, true] {
            for (dms_type, values) in &cases {
                let column = Column {
                    name: "c".into(),
                    dms_type: *dms_type,
                    source_type: "numeric".into(),
                };
                let mut spec = (*spec(&format!(
                    "dataFormat=parquet;parquetTimestampInMillisecond={ms}"
                )))
                .clone();
                spec.columns = vec![column];
                for v in *values {
                    let mut batch = RowBatch::new(1);
                    batch.push_cell(v.as_bytes());
                    batch.end_row(Op::Insert, 0).unwrap();
                    let checked = check_row(&spec, &batch, 0);
                    let converted = convert(&spec, &batch);
                    assert_eq!(
                        checked.is_ok(),
                        converted.is_ok(),
                        "{dms_type} {v:?}: check {checked:?}"
                    );
                    if let Err(e) = checked {
                        assert_eq!(e.kind, ErrorKind::Data);
                        assert!(e.message.contains(&format!("{v:?}")), "{e}");
                    }
                    spec.format = crate::layout::FileFormat::Csv;
                    assert!(spec.check_row(&batch, 0).is_ok());
                    let mut csv = crate::writer::csv::CsvEncoder::new(Arc::new(spec.clone()));
                    let prepared = spec.prepare(batch).unwrap();
                    assert_eq!(csv.write(&prepared, 0..1, u64::MAX).unwrap(), 1, "{v:?}");
                    spec.format = crate::layout::FileFormat::Parquet;
                }
            }
        }
    }
}
