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
/// - `Bytes`: `\x` followed by lower-case hex; a value without the prefix is raw bytes (only the
///   unchanged-value marker is written that way).
/// - `String`: the UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DmsType {
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
    /// True for the signed and unsigned integer types.
    pub(crate) fn is_integer(self) -> bool {
        matches!(
            self,
            DmsType::Int1
                | DmsType::Int2
                | DmsType::Int4
                | DmsType::Int8
                | DmsType::UInt1
                | DmsType::UInt2
                | DmsType::UInt4
                | DmsType::UInt8
        )
    }

    /// True for the types whose values are whole numbers an i128 holds: the integers and
    /// NUMERIC(p,0) (keys such as the DMS walkthrough's `numeric(11,0)` ids).
    pub(crate) fn is_whole_number(self) -> bool {
        self.is_integer()
            || matches!(self, DmsType::Numeric { scale: 0, precision } if precision <= 38)
    }

    /// True for the LOB types (CLOB, NCLOB, BLOB).
    pub(crate) fn is_lob(self) -> bool {
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
pub(crate) struct Column {
    /// Column name as written in headers and Parquet schemas.
    pub(crate) name: String,
    /// DMS type.
    pub(crate) dms_type: DmsType,
    /// The source's own type name, for messages.
    pub(crate) source_type: String,
}

/// A selected source table and the columns written for it, in source ordinal order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableSchema {
    /// Schema (PostgreSQL) or database (MySQL) name: the first folder under BucketFolder.
    pub(crate) schema: String,
    /// Table name: the second folder.
    pub(crate) table: String,
    /// Columns in ordinal order.
    pub(crate) columns: Vec<Column>,
    /// Indexes (ascending) of the columns that identify a row at the source: the primary key
    /// (PostgreSQL: the replica identity's columns, or the primary key under REPLICA IDENTITY
    /// FULL); empty when the table has none.
    pub(crate) key: Vec<usize>,
}

impl TableSchema {
    /// Table `s.t` with text columns named `cols` (unit tests).
    #[cfg(test)]
    pub(crate) fn text_for_test(cols: &[&str]) -> std::sync::Arc<TableSchema> {
        std::sync::Arc::new(TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: cols
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    dms_type: DmsType::String { lob: false },
                    source_type: "text".into(),
                })
                .collect(),
            key: Vec::new(),
        })
    }

    /// `schema.table`, the key used in checkpoints and statistics.
    pub(crate) fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// The operation a row records; rendered in the `Op` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Insert (and every full-load row).
    Insert,
    /// Update: the row is the full after-image.
    Update,
    /// Delete: the row is the before-image.
    Delete,
}

impl Op {
    /// The DMS letter.
    pub(crate) fn letter(self) -> &'static str {
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
pub(crate) struct Lsn(pub(crate) u64);

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
pub(crate) struct BinlogPos {
    /// Binlog file name, e.g. `mysql-bin.000024`.
    pub(crate) file: String,
    /// Byte offset in that file.
    pub(crate) offset: u64,
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

/// Where a source stands in its log, typed per engine. Only comparable within one log: the
/// derived order is meaningful between values of the same variant only, which is all one task
/// ever compares.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub(crate) enum Position {
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

/// The position of one row change: where its transaction is read again from, and its ordinal
/// among the transaction's changes. Reading the same log again yields the same `ChangePos` for
/// the same change, which is what lets a restarted task skip exactly what it already wrote.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub(crate) struct ChangePos {
    /// Where streaming restarts to deliver this change's transaction again (PostgreSQL: its
    /// commit LSN; MySQL/MariaDB: the binlog position of its first event). The name is kept
    /// for checkpoints written by earlier releases.
    pub(crate) commit: Position,
    /// 1-based ordinal of the change within its transaction.
    pub(crate) seq: u64,
}

impl ChangePos {
    /// `$AR_H_STREAM_POSITION`: the change's place in the log as text whose byte order is the
    /// change order (two changes of one transaction differ in the ordinal): PostgreSQL
    /// `XXXXXXXX/XXXXXXXX.NNNNNNNNNN` (zero-padded commit LSN), MySQL/MariaDB
    /// `file:OOOOOOOOOOOOOOOOOOOO.NNNNNNNNNN` (zero-padded offset).
    pub(crate) fn stream_position(&self) -> String {
        match &self.commit {
            Position::Postgres(l) => {
                format!(
                    "{:08X}/{:08X}.{:010}",
                    l.0 >> 32,
                    l.0 & 0xFFFF_FFFF,
                    self.seq
                )
            }
            Position::MySql(b) => format!("{}:{:020}.{:010}", b.file, b.offset, self.seq),
        }
    }

    /// `$AR_H_CHANGE_SEQ`: 35 digits, the commit time to the hundredth of a second
    /// (`YYYYMMDDHHmmSShh`) and a 19-digit counter made of the commit position (13 digits) and
    /// the change's ordinal in its transaction (6 digits), so it increases with the log.
    pub(crate) fn change_seq(&self, commit_us: i64) -> String {
        let at = chrono::DateTime::from_timestamp_micros(commit_us).unwrap_or_default();
        let place = match &self.commit {
            Position::Postgres(l) => l.0 % 10_000_000_000_000,
            Position::MySql(b) => {
                (b.sequence() % 1000) * 10_000_000_000 + b.offset % 10_000_000_000
            }
        };
        format!(
            "{}{:02}{place:013}{:06}",
            at.format("%Y%m%d%H%M%S"),
            at.timestamp_subsec_millis() / 10,
            self.seq % 1_000_000
        )
    }
}

impl fmt::Display for ChangePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.commit, self.seq)
    }
}

/// Changes a file (or a table) holds, by operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct OpCounts {
    /// Inserts.
    pub(crate) inserts: u64,
    /// Updates.
    pub(crate) updates: u64,
    /// Deletes.
    pub(crate) deletes: u64,
}

impl OpCounts {
    /// Counts one change.
    pub(crate) fn add(&mut self, op: Op) {
        match op {
            Op::Insert => self.inserts += 1,
            Op::Update => self.updates += 1,
            Op::Delete => self.deletes += 1,
        }
    }
}

/// Checkpoints of release 0.1.0 stored counts as `[inserts, updates, deletes]`; both forms load.
impl<'de> serde::Deserialize<'de> for OpCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OpCounts, D::Error> {
        #[derive(serde::Deserialize)]
        struct Named {
            inserts: u64,
            updates: u64,
            deletes: u64,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Named(Named),
            Array([u64; 3]),
        }
        Ok(match Either::deserialize(d)? {
            Either::Named(n) => OpCounts {
                inserts: n.inserts,
                updates: n.updates,
                deletes: n.deletes,
            },
            Either::Array([inserts, updates, deletes]) => OpCounts {
                inserts,
                updates,
                deletes,
            },
        })
    }
}

/// The file series a change is written to: its table's CDC files, or (PreserveTransactions) the
/// shared transaction files. Checkpoints key per-series state by it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum StreamKey {
    /// `schema.table`'s own files.
    Table(String),
    /// The `CDC_TXN-*` files of every table.
    Transactions,
}

/// The checkpoint spelling of [`StreamKey::Transactions`] (release 0.1.0's sentinel; the leading
/// blank keeps it apart from every `schema.table`).
const TRANSACTIONS_KEY: &str = " CDC_TXN";

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamKey::Table(t) => f.write_str(t),
            StreamKey::Transactions => f.write_str("transaction files"),
        }
    }
}

impl serde::Serialize for StreamKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StreamKey::Table(t) => s.serialize_str(t),
            StreamKey::Transactions => s.serialize_str(TRANSACTIONS_KEY),
        }
    }
}

impl<'de> serde::Deserialize<'de> for StreamKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StreamKey, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            TRANSACTIONS_KEY => StreamKey::Transactions,
            _ => StreamKey::Table(s),
        })
    }
}

/// Fills one row's cells into a buffer: exactly the columns of the table's current shape, in
/// order. Returns how many cells it wrote as the unchanged-value marker.
pub(crate) type Fill<'a> = dyn FnMut(&mut RowBatch) -> crate::error::Result<u64> + Send + 'a;

/// Rows of one table, row-major, each cell in the canonical text form of its column's [`DmsType`].
///
/// One contiguous buffer per batch instead of a `String` per value: a batch is filled by the source
/// and read once by the encoder, so this keeps the hot path free of per-value allocations.
#[derive(Debug, Default, Clone)]
pub(crate) struct RowBatch {
    ncols: usize,
    data: Vec<u8>,
    ends: Vec<u32>,
    nulls: Vec<bool>,
    /// Operation of each row.
    pub(crate) ops: Vec<Op>,
    /// Timestamp of each row in µs since the Unix epoch (UTC): transfer or task-start time in a
    /// full load, commit time in CDC. Rendered into `TimestampColumnName`.
    pub(crate) times: Vec<i64>,
}

impl RowBatch {
    /// An empty batch for `ncols` columns.
    pub(crate) fn new(ncols: usize) -> RowBatch {
        RowBatch {
            ncols,
            ..RowBatch::default()
        }
    }

    /// An empty batch for `ncols` columns with room for `rows` rows and `data_bytes` of cells,
    /// so a batch built from a known one is allocated once, not grown by doubling.
    pub(crate) fn with_capacity(ncols: usize, rows: usize, data_bytes: usize) -> RowBatch {
        RowBatch {
            ncols,
            data: Vec::with_capacity(data_bytes),
            ends: Vec::with_capacity(rows * ncols),
            nulls: Vec::with_capacity(rows * ncols),
            ops: Vec::with_capacity(rows),
            times: Vec::with_capacity(rows),
        }
    }

    /// Cells per row.
    pub(crate) fn ncols(&self) -> usize {
        self.ncols
    }

    /// Number of complete rows.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of cell data held (the batch-size measure sources use to cut batches).
    pub(crate) fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// Bytes of cell data in rows `rows` (O(1): cell ends are cumulative), the measure encoders
    /// size their chunks by.
    pub(crate) fn rows_data_bytes(&self, rows: std::ops::Range<usize>) -> usize {
        let end_of = |row: usize| match row * self.ncols {
            0 => 0,
            cells => self.ends[cells - 1] as usize,
        };
        end_of(rows.end) - end_of(rows.start)
    }

    /// Bytes the batch's buffers hold (its memory footprint).
    pub(crate) fn memory(&self) -> usize {
        self.data.capacity()
            + self.ends.capacity() * 4
            + self.nulls.capacity()
            + self.ops.capacity()
            + self.times.capacity() * 8
    }

    /// Removes every row, keeping the buffers' capacity.
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.nulls.clear();
        self.ops.clear();
        self.times.clear();
    }

    /// Removes the last complete row.
    pub(crate) fn pop_row(&mut self) {
        if self.ops.pop().is_some() {
            self.times.pop();
            self.discard_partial_row();
        }
    }

    /// Drops the cells of a row that was started but not ended (a fill that failed half-way).
    pub(crate) fn discard_partial_row(&mut self) {
        let cells = self.ops.len() * self.ncols;
        let end = if cells == 0 {
            0
        } else {
            self.ends[cells - 1] as usize
        };
        self.ends.truncate(cells);
        self.nulls.truncate(cells);
        self.data.truncate(end);
    }

    /// The buffer the next cell's bytes are appended to; finish the cell with [`end_cell`](Self::end_cell).
    pub(crate) fn cell_buf(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Ends the cell whose bytes were appended to [`cell_buf`](Self::cell_buf).
    pub(crate) fn end_cell(&mut self) {
        self.ends.push(self.data.len() as u32);
        self.nulls.push(false);
    }

    /// Appends a NULL cell.
    pub(crate) fn push_null(&mut self) {
        self.ends.push(self.data.len() as u32);
        self.nulls.push(true);
    }

    /// Appends a cell with the given bytes.
    pub(crate) fn push_cell(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.end_cell();
    }

    /// Completes the row whose cells were pushed; the cell count must equal `ncols`.
    pub(crate) fn end_row(&mut self, op: Op, time_us: i64) -> crate::error::Result<()> {
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
    pub(crate) fn get(&self, row: usize, col: usize) -> Option<&[u8]> {
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
    pub(crate) fn all_utf8(&self) -> bool {
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

    /// Appends row `row` of `src` (same columns) as a whole row.
    pub(crate) fn push_row_from(&mut self, src: &RowBatch, row: usize) -> crate::error::Result<()> {
        for c in 0..src.ncols() {
            match src.get(row, c) {
                Some(v) => self.push_cell(v),
                None => self.push_null(),
            }
        }
        self.end_row(src.ops[row], src.times[row])
    }

    /// Shortens cell `col` of row `row` to `len` bytes in place (LOB truncation). The cell must
    /// be the last one pushed, since later cells would shift.
    pub(crate) fn truncate_last_cell(&mut self, len: usize) {
        let i = self.ends.len() - 1;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.data.truncate(start + len);
        self.ends[i] = (start + len) as u32;
    }

    /// Bytes of the last pushed cell.
    pub(crate) fn last_cell(&self) -> &[u8] {
        let i = self.ends.len() - 1;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..]
    }
}

#[cfg(test)]
mod tests;
