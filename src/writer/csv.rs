//! CSV encoding with DMS's delimiters, NULL token and RFC 4180 quoting (reference §3).
//!
//! Hand-written rather than with the `csv` crate: DMS delimiters may be multi-character strings,
//! NULL needs its own token distinct from an empty string, and values arrive already as text, so
//! the only work left is quoting, which is a few lines.

use std::io::Write;

use flate2::write::GzEncoder;

use super::values::{
    render_datetime, render_decimal_text, render_timestamp_column, INFINITY_DATE, NEG_INFINITY_DATE,
};
use super::{EncodeSpec, Encoder, Prepared};
use crate::change::DmsType;
use crate::error::{Error, Result};
use crate::layout::Compression;

/// Encodes rows as CSV text, optionally gzip-compressed.
pub(crate) struct CsvEncoder {
    spec: std::sync::Arc<EncodeSpec>,
    /// Uncompressed bytes rendered but not yet taken or compressed.
    pending: Vec<u8>,
    gzip: Option<GzEncoder<Vec<u8>>>,
    /// Uncompressed bytes produced so far: the MaxFileSize measure.
    size: u64,
    /// Last rendered timestamp-column value, reused while rows share a time.
    ts_cache: (i64, String),
    scratch: Vec<u8>,
}

impl CsvEncoder {
    /// A new file; writes the header when `AddColumnName` is on.
    pub(crate) fn new(spec: std::sync::Arc<EncodeSpec>) -> CsvEncoder {
        let gzip = (spec.compression == Compression::Gzip)
            .then(|| GzEncoder::new(Vec::new(), flate2::Compression::default()));
        let mut enc = CsvEncoder {
            spec,
            pending: Vec::with_capacity(1 << 16),
            gzip,
            size: 0,
            ts_cache: (i64::MIN, String::new()),
            scratch: Vec::new(),
        };
        if enc.spec.csv.add_column_name {
            let names: Vec<String> = enc.spec.output_names();
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    enc.pending
                        .extend_from_slice(enc.spec.csv.delimiter.as_bytes());
                }
                enc.field(name.as_bytes(), true);
            }
            enc.pending
                .extend_from_slice(enc.spec.csv.row_delimiter.as_bytes());
        }
        enc
    }

    /// Appends one field, quoting it per RFC 4180 when `quotable` and needed.
    fn field(&mut self, v: &[u8], quotable: bool) {
        let csv = &self.spec.csv;
        let needs_quotes = csv.rfc4180
            && quotable
            && ((v.is_empty() && csv.null_value.is_empty())
                || v.iter().any(|&b| b == b'"' || b == b'\n' || b == b'\r')
                || contains(v, csv.delimiter.as_bytes())
                || contains(v, csv.row_delimiter.as_bytes()));
        if !needs_quotes {
            self.pending.extend_from_slice(v);
            return;
        }
        self.pending.push(b'"');
        for part in v.split_inclusive(|&b| b == b'"') {
            self.pending.extend_from_slice(part);
            if part.last() == Some(&b'"') {
                self.pending.push(b'"');
            }
        }
        self.pending.push(b'"');
    }

    /// Moves pending text into the compressor (if any).
    fn compress_pending(&mut self) -> Result<()> {
        if let Some(gz) = self.gzip.as_mut() {
            gz.write_all(&self.pending)
                .map_err(|e| Error::internal(format!("gzip: {e}")))?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// True if `needle` occurs in `hay` (single bytes take the fast path).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    match needle {
        [b] => memchr::memchr(*b, hay).is_some(),
        _ => memchr::memmem::find(hay, needle).is_some(),
    }
}

impl Encoder for CsvEncoder {
    fn write(
        &mut self,
        prepared: &Prepared,
        rows: std::ops::Range<usize>,
        limit: u64,
    ) -> Result<usize> {
        let batch = &prepared.rows;
        let spec = self.spec.clone();
        let delim = spec.csv.delimiter.as_bytes();
        let before = self.pending.len();
        let mut written = 0;
        for row in rows {
            // At least one row per call; then stop as soon as the file reached its limit.
            if written > 0 && self.size + (self.pending.len() - before) as u64 >= limit {
                break;
            }
            written += 1;
            let mut first = true;
            let mut sep = |enc: &mut CsvEncoder| {
                if !first {
                    enc.pending.extend_from_slice(delim);
                }
                first = false;
            };
            if spec.op_column {
                sep(self);
                self.pending
                    .extend_from_slice(batch.ops[row].letter().as_bytes());
            }
            if spec.timestamp_column.is_some() {
                sep(self);
                let t = batch.times[row];
                if self.ts_cache.0 != t {
                    self.ts_cache.1.clear();
                    render_timestamp_column(t, &mut self.ts_cache.1);
                    self.ts_cache.0 = t;
                }
                let ts = std::mem::take(&mut self.ts_cache.1);
                self.pending.extend_from_slice(ts.as_bytes());
                self.ts_cache.1 = ts;
            }
            for (col, column) in spec.columns.iter().enumerate() {
                sep(self);
                let Some(v) = batch.get(row, col) else {
                    self.pending
                        .extend_from_slice(spec.csv.null_value.as_bytes());
                    continue;
                };
                match column.dms_type {
                    DmsType::Boolean => self.pending.extend_from_slice(match v {
                        b"t" | b"1" | b"true" => b"true",
                        _ => b"false",
                    }),
                    // CSV holds any value as text: what cannot be rendered in DMS's form is
                    // written as the source gave it, never an error.
                    DmsType::DateTime => {
                        let mut scratch = std::mem::take(&mut self.scratch);
                        scratch.clear();
                        match render_datetime(v, &mut scratch) {
                            Ok(()) => self.pending.extend_from_slice(&scratch),
                            Err(_) => self.pending.extend_from_slice(v),
                        }
                        self.scratch = scratch;
                    }
                    DmsType::Numeric { scale, .. } => {
                        let frac = v
                            .iter()
                            .position(|&b| b == b'.')
                            .map_or(0, |i| v.len() - i - 1);
                        // Unbounded numeric is NUMERIC(28,6) in DMS: rounded to its scale like
                        // Parquet, but every digit before the point is kept (no precision
                        // applies to text), and NaN and the infinities are written as they are.
                        if frac == scale.max(0) as usize
                            || !render_decimal_text(v, scale, &mut self.pending)
                        {
                            self.pending.extend_from_slice(v);
                        }
                    }
                    DmsType::Date => self.pending.extend_from_slice(match v {
                        b"infinity" => INFINITY_DATE.as_bytes(),
                        b"-infinity" => NEG_INFINITY_DATE.as_bytes(),
                        _ => v,
                    }),
                    // Hex never needs quotes, but an empty value must stay distinct from NULL.
                    DmsType::Bytes { .. } => self.field(v.strip_prefix(b"\\x").unwrap_or(v), true),
                    DmsType::String { .. } => self.field(v, true),
                    _ => self.field(v, false),
                }
            }
            self.pending
                .extend_from_slice(spec.csv.row_delimiter.as_bytes());
        }
        self.size += (self.pending.len() - before) as u64;
        self.compress_pending()?;
        Ok(written)
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn buffered(&self) -> usize {
        self.pending.len() + self.gzip.as_ref().map_or(0, |gz| gz.get_ref().len())
    }

    fn take_output(&mut self) -> Vec<u8> {
        match self.gzip.as_mut() {
            Some(gz) => std::mem::take(gz.get_mut()),
            None => std::mem::replace(&mut self.pending, Vec::with_capacity(1 << 16)),
        }
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>> {
        self.compress_pending()?;
        match self.gzip.take() {
            Some(gz) => gz
                .finish()
                .map_err(|e| Error::internal(format!("gzip: {e}"))),
            None => Ok(std::mem::take(&mut self.pending)),
        }
    }
}
