//! Typed rows between sources and the writer: table schemas in DMS types, batches of rows in a
//! canonical text form, the operation of each row and its timestamp, and source positions.
//!
//! Why text: PostgreSQL's COPY text format and pgoutput both deliver values as text, and that text
//! is exact (numeric digits, timestamps to the microsecond). Keeping one canonical text form per
//! DMS type lets every source normalise once and the writer render CSV or parse Parquet values
//! without a per-value allocation. The canonical forms are listed on [`DmsType`].

use std::fmt;

/// DMS's intermediate data types (reference §4.3/§4.4); they decide Parquet types and CSV rendering.
///
/// Canonical text form of each value in a [`RowBatch`] cell:
/// - `Boolean`: `t` or `f`.
/// - integers: decimal digits with optional `-`.
/// - `Numeric`: decimal text (`-12.340`), or `NaN`/`Infinity`/`-Infinity`.
/// - `Real4`/`Real8`: PostgreSQL float text (`1.5`, `1e+30`, `NaN`, `Infinity`, `-Infinity`).
/// - `Date`: `YYYY-MM-DD`, optional ` BC`, or `infinity`/`-infinity`.
/// - `Time`: `HH:MM:SS[.ffffff]`.
/// - `DateTime`: `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC, optional `+00` and ` BC`, or `infinity`/`-infinity`.
/// - `Bytes`: `\x` followed by lower-case hex.
/// - `String`: the UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmsType {
    /// BOOLEAN.
    Boolean,
    /// INT1.
    Int1,
    /// INT2.
    Int2,
    /// INT4.
    Int4,
    /// INT8.
    Int8,
    /// UINT1.
    UInt1,
    /// UINT2.
    UInt2,
    /// UINT4.
    UInt4,
    /// UINT8.
    UInt8,
    /// NUMERIC(p,s), p ≤ 38.
    Numeric {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// REAL4.
    Real4,
    /// REAL8.
    Real8,
    /// DATE.
    Date,
    /// TIME.
    Time,
    /// DATETIME (always UTC).
    DateTime,
    /// STRING/WSTRING, or CLOB/NCLOB when `lob`.
    String {
        /// A LOB type: subject to LobMaxSize truncation and SupportLobs.
        lob: bool,
    },
    /// BYTES, or BLOB when `lob`.
    Bytes {
        /// A LOB type: subject to LobMaxSize truncation and SupportLobs.
        lob: bool,
    },
}

impl DmsType {
    /// True for the LOB types (CLOB, NCLOB, BLOB).
    pub fn is_lob(self) -> bool {
        matches!(
            self,
            DmsType::String { lob: true } | DmsType::Bytes { lob: true }
        )
    }
}

impl fmt::Display for DmsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmsType::Numeric { precision, scale } => write!(f, "NUMERIC({precision},{scale})"),
            DmsType::String { lob: true } => f.write_str("NCLOB"),
            DmsType::String { lob: false } => f.write_str("WSTRING"),
            DmsType::Bytes { lob: true } => f.write_str("BLOB"),
            DmsType::Bytes { lob: false } => f.write_str("BYTES"),
            other => write!(f, "{}", format!("{other:?}").to_uppercase()),
        }
    }
}

/// One output column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name as written in headers and Parquet schemas.
    pub name: String,
    /// DMS type.
    pub dms_type: DmsType,
    /// The source's own type name, for messages.
    pub source_type: String,
}

/// A selected source table and the columns written for it, in source ordinal order.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Schema (PostgreSQL) or database (MySQL) name: the first folder under BucketFolder.
    pub schema: String,
    /// Table name: the second folder.
    pub table: String,
    /// Columns in ordinal order.
    pub columns: Vec<Column>,
}

impl TableSchema {
    /// `schema.table`, the key used in checkpoints and statistics.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// The operation a row records; rendered in the `Op` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert (and every full-load row).
    Insert,
    /// Update: the row is the full after-image.
    Update,
    /// Delete: the row is the before-image.
    Delete,
}

impl Op {
    /// The DMS letter.
    pub fn letter(self) -> &'static str {
        match self {
            Op::Insert => "I",
            Op::Update => "U",
            Op::Delete => "D",
        }
    }
}

/// A PostgreSQL log sequence number. Serialized as its text form (`4AF/B00000D0`) so
/// checkpoints read like `pg_replication_slots`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct Lsn(pub u64);

impl From<Lsn> for String {
    fn from(l: Lsn) -> String {
        l.to_string()
    }
}

impl TryFrom<String> for Lsn {
    type Error = String;
    fn try_from(s: String) -> Result<Lsn, String> {
        s.parse()
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Lsn, String> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("LSN {s:?} is not of the form XXX/XXXXXXXX"))?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| format!("LSN {s:?}: bad high part"))?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| format!("LSN {s:?}: bad low part"))?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// A MySQL/MariaDB binlog coordinate; offsets are 64-bit (files can pass 4 GiB).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BinlogPos {
    /// Binlog file name, e.g. `mysql-bin.000024`.
    pub file: String,
    /// Byte offset in that file.
    pub offset: u64,
}

impl BinlogPos {
    /// The file's sequence number (`mysql-bin.000024` → 24): compared as a number because the
    /// suffix grows past six digits (`.999999` → `.1000000`), where text order would break.
    fn sequence(&self) -> u64 {
        self.file
            .rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Ord for BinlogPos {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.sequence(), &self.file, self.offset).cmp(&(
            other.sequence(),
            &other.file,
            other.offset,
        ))
    }
}

impl PartialOrd for BinlogPos {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::str::FromStr for BinlogPos {
    type Err = String;
    /// Parses DMS's native start position `mysql-bin.000024:373`.
    fn from_str(s: &str) -> Result<BinlogPos, String> {
        let (file, offset) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("binlog position {s:?} is not of the form file:offset"))?;
        let offset = offset
            .parse()
            .map_err(|_| format!("binlog position {s:?}: offset is not a number"))?;
        if file.is_empty() {
            return Err(format!("binlog position {s:?}: file name is empty"));
        }
        Ok(BinlogPos {
            file: file.to_string(),
            offset,
        })
    }
}

/// Where a source stands in its log: for CDC, the commit position of a transaction (PostgreSQL:
/// the commit record's LSN, which pgoutput's Begin already carries). Only comparable within one
/// log; the derived order is only meaningful between values of the same variant.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Position {
    /// PostgreSQL WAL position.
    Postgres(Lsn),
    /// MySQL/MariaDB binlog position.
    MySql(BinlogPos),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Postgres(l) => write!(f, "{l}"),
            Position::MySql(b) => write!(f, "{}:{}", b.file, b.offset),
        }
    }
}

/// The position of one row change: its transaction's commit position and its ordinal among the
/// transaction's row changes. Decoding the same log again yields the same `ChangePos` for the
/// same change, which is what lets a restarted task skip exactly what it already wrote.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ChangePos {
    /// Commit position of the transaction.
    pub commit: Position,
    /// 1-based ordinal of the change within its transaction.
    pub seq: u64,
}

impl fmt::Display for ChangePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.commit, self.seq)
    }
}

/// Rows of one table, row-major, each cell in the canonical text form of its column's [`DmsType`].
///
/// One contiguous buffer per batch instead of a `String` per value: a batch is filled by the source
/// and read once by the encoder, so this keeps the hot path free of per-value allocations.
#[derive(Debug, Default, Clone)]
pub struct RowBatch {
    ncols: usize,
    data: Vec<u8>,
    ends: Vec<u32>,
    nulls: Vec<bool>,
    /// Operation of each row.
    pub ops: Vec<Op>,
    /// Timestamp of each row in µs since the Unix epoch (UTC): transfer or task-start time in a
    /// full load, commit time in CDC. Rendered into `TimestampColumnName`.
    pub times: Vec<i64>,
}

impl RowBatch {
    /// An empty batch for `ncols` columns.
    pub fn new(ncols: usize) -> RowBatch {
        RowBatch {
            ncols,
            ..RowBatch::default()
        }
    }

    /// Number of columns per row.
    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// Number of complete rows.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no rows.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of cell data held (the batch-size measure sources use to cut batches).
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// The buffer the next cell's bytes are appended to; finish the cell with [`end_cell`](Self::end_cell).
    pub fn cell_buf(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Ends the cell whose bytes were appended to [`cell_buf`](Self::cell_buf).
    pub fn end_cell(&mut self) {
        self.ends.push(self.data.len() as u32);
        self.nulls.push(false);
    }

    /// Appends a NULL cell.
    pub fn push_null(&mut self) {
        self.ends.push(self.data.len() as u32);
        self.nulls.push(true);
    }

    /// Appends a cell with the given bytes.
    pub fn push_cell(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.end_cell();
    }

    /// Number of cells pushed so far (complete rows × ncols + cells of the row in progress).
    pub fn cells(&self) -> usize {
        self.ends.len()
    }

    /// Completes the row whose cells were pushed; the cell count must equal `ncols`.
    pub fn end_row(&mut self, op: Op, time_us: i64) -> crate::error::Result<()> {
        if self.ends.len() != (self.ops.len() + 1) * self.ncols {
            return Err(crate::error::Error::internal(format!(
                "row {} has {} cells, expected {}",
                self.ops.len() + 1,
                self.ends.len() - self.ops.len() * self.ncols,
                self.ncols
            )));
        }
        self.ops.push(op);
        self.times.push(time_us);
        Ok(())
    }

    /// Cell `col` of row `row`: `None` for NULL.
    #[inline]
    pub fn get(&self, row: usize, col: usize) -> Option<&[u8]> {
        let i = row * self.ncols + col;
        if self.nulls[i] {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.data[start..self.ends[i] as usize])
    }

    /// True when every cell is valid UTF-8. Validates the whole buffer in one pass (much faster
    /// than per value), then checks that no cell starts with a UTF-8 continuation byte, which
    /// together mean each cell on its own is valid.
    pub fn all_utf8(&self) -> bool {
        if std::str::from_utf8(&self.data).is_err() {
            return false;
        }
        let mut start = 0usize;
        self.ends.iter().all(|&end| {
            let ok = self
                .data
                .get(start)
                .is_none_or(|&b| (b & 0xC0) != 0x80 || start == end as usize);
            start = end as usize;
            ok
        })
    }

    /// Shortens cell `col` of row `row` to `len` bytes in place (LOB truncation). The cell must
    /// be the last one pushed, since later cells would shift.
    pub fn truncate_last_cell(&mut self, len: usize) {
        let i = self.ends.len() - 1;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.data.truncate(start + len);
        self.ends[i] = (start + len) as u32;
    }

    /// Bytes of the last pushed cell.
    pub fn last_cell(&self) -> &[u8] {
        let i = self.ends.len() - 1;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        let l: Lsn = "4AF/B00000D0".parse().unwrap();
        assert_eq!(l.0, 0x4AF_B000_00D0);
        assert_eq!(l.to_string(), "4AF/B00000D0");
        assert!("4AF".parse::<Lsn>().is_err());
    }

    #[test]
    fn binlog_positions_order_by_file_number() {
        let p = |s: &str| s.parse::<BinlogPos>().unwrap();
        assert!(p("mysql-bin.999999:900") < p("mysql-bin.1000000:4"));
        assert!(p("mysql-bin.000024:373") < p("mysql-bin.000024:374"));
        assert_eq!(p("mysql-bin.000024:373").offset, 373);
        assert!("mysql-bin.000024".parse::<BinlogPos>().is_err());
    }

    #[test]
    fn batch_cells() {
        let mut b = RowBatch::new(2);
        b.push_cell(b"a");
        b.push_null();
        b.end_row(Op::Insert, 1).unwrap();
        b.push_cell(b"");
        b.push_cell(b"xyz");
        b.end_row(Op::Insert, 2).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.get(0, 0), Some(&b"a"[..]));
        assert_eq!(b.get(0, 1), None);
        assert_eq!(b.get(1, 0), Some(&b""[..]));
        assert_eq!(b.get(1, 1), Some(&b"xyz"[..]));
        assert!(b.all_utf8());
        b.push_cell(b"only one");
        assert!(b.end_row(Op::Insert, 3).is_err());
        let mut split = RowBatch::new(2);
        let e_acute = "é".as_bytes();
        split.push_cell(&e_acute[..1]);
        split.push_cell(&e_acute[1..]);
        split.end_row(Op::Insert, 0).unwrap();
        assert!(
            !split.all_utf8(),
            "a character split across cells is not valid per cell"
        );
    }
}
