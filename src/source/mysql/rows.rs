//! Binlog row images → canonical text: column readers computed once per TABLE_MAP, the table
//! version rows are decoded with, and binlog values → the text of [`crate::change::DmsType`].
//!
//! Event parsing and value decoding are `mysql_common`'s; what is written here is only what no
//! crate does: mapping binlog values to DMS's text forms with the catalog's types (ENUM/SET
//! labels, fractional-second digits, unsigned reinterpretation).

use std::sync::Arc;

use mysql_async::binlog::events::{OptionalMetaExtractor, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_async::Value;
use mysql_common::io::ParseBuf;
use mysql_common::proto::MyDeserialize;

use super::catalog::{self, MyColumn, ValueKind};
use crate::change::{DmsType, RowBatch, TableSchema};
use crate::error::{Error, ErrorKind, Result};

/// How to read one binlog column, from its TABLE_MAP.
#[derive(Debug, Clone)]
pub(super) struct ColumnCodec {
    ty: ColumnType,
    meta: Vec<u8>,
    unsigned: bool,
}

/// Column readers for a TABLE_MAP, computed once per map.
///
/// Why not `mysql_common`'s own row iterator: it rebuilds column definitions (names, flags,
/// charsets) and re-parses the optional metadata for every row, which made allocation most of
/// the CDC profile. Rows are read here with its per-value decoder and these precomputed readers.
pub(super) fn codecs(tme: &TableMapEvent<'_>) -> Result<Vec<ColumnCodec>> {
    let signed: Vec<bool> = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .ok()
        .map(|m| m.iter_signedness().collect())
        .unwrap_or_default();
    let mut signedness = signed.into_iter();
    (0..tme.columns_count() as usize)
        .map(|i| {
            let ty = tme.get_column_type(i).ok().flatten().ok_or_else(|| {
                Error::new(
                    ErrorKind::Source,
                    format!(
                        "the binlog TABLE_MAP of {}.{} has an unknown column type",
                        tme.database_name(),
                        tme.table_name()
                    ),
                    "report this as a bug with the server version",
                )
            })?;
            let unsigned = ty.is_numeric_type() && signedness.next().unwrap_or(false);
            Ok(ColumnCodec {
                ty,
                meta: tme.get_column_metadata(i).unwrap_or(&[]).to_vec(),
                unsigned,
            })
        })
        .collect()
}

/// Reads one row image from `buf` into `out` (one slot per column; None for columns the image
/// does not carry). `present` is the event's column bitmap for this image.
pub(super) fn read_image<'a>(
    buf: &mut ParseBuf<'a>,
    present: &[bool],
    codecs: &'a [ColumnCodec],
    out: &mut Vec<Option<BinlogValue<'a>>>,
) -> std::io::Result<()> {
    out.clear();
    let n = present.iter().filter(|p| **p).count();
    let nulls: &[u8] = buf.parse(n.div_ceil(8))?;
    let mut k = 0;
    for (i, c) in codecs.iter().enumerate() {
        if !present.get(i).copied().unwrap_or(false) {
            out.push(None);
            continue;
        }
        let null = nulls[k / 8] & (1 << (k % 8)) != 0;
        k += 1;
        out.push(Some(if null {
            BinlogValue::Value(Value::NULL)
        } else {
            BinlogValue::deserialize((c.ty, &c.meta[..], c.unsigned, false), buf)?
        }));
    }
    Ok(())
}

/// One version of a selected table as rows of a TABLE_MAP describe it.
#[derive(Debug)]
pub(super) struct TableVersion {
    /// `schema.table`.
    pub(crate) key: String,
    /// Output schema (from the catalog).
    pub(crate) schema: Arc<TableSchema>,
    /// Catalog columns, in output order.
    pub(crate) columns: Vec<MyColumn>,
    /// For each output column, its index in the binlog row (None: not in this binlog version,
    /// written as NULL).
    pub(crate) from_binlog: Vec<Option<usize>>,
    /// Output indexes of the primary-key columns.
    pub(crate) key_cols: Vec<usize>,
}

impl TableVersion {
    /// The table version a TABLE_MAP describes. When the binlog carries column names
    /// (`binlog_row_metadata=FULL`) the version has exactly the binlog's columns: each takes
    /// the catalog's definition when the catalog has a column of that name and kind, else one
    /// derived from the TABLE_MAP — so rows older than a later `ALTER TABLE` keep their own
    /// shape (old names, dropped columns) instead of being forced into today's. Without names,
    /// columns are matched by ordinal, which needs the catalog's column count.
    pub(super) fn new(
        table: &catalog::MyTable,
        tme: &TableMapEvent<'_>,
        support_lobs: bool,
    ) -> Result<Self> {
        let total_cols = table.total_columns;
        let key = table.source.schema.qualified();
        let meta = OptionalMetaExtractor::new(tme.iter_optional_meta()).ok();
        let names: Vec<String> = meta
            .as_ref()
            .map(|m| {
                m.iter_column_name()
                    .filter_map(|n| n.ok().map(|n| n.name().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let n = tme.columns_count() as usize;
        let (columns, from_binlog) = if names.len() == n {
            let codecs = codecs(tme)?;
            let mut charsets = meta
                .as_ref()
                // The iterator repeats the default charset forever: one per column at most.
                .map(|m| {
                    m.iter_charset()
                        .take(n)
                        .map(|c| c.unwrap_or(0))
                        .collect::<Vec<u16>>()
                })
                .unwrap_or_default()
                .into_iter();
            let mut columns = Vec::new();
            let mut from = Vec::new();
            for (i, (name, codec)) in names.into_iter().zip(&codecs).enumerate() {
                let binary =
                    codec.ty.is_character_type() && charsets.next() == Some(BINARY_CHARSET);
                let derived = derived_column(name, codec, binary);
                let col = table
                    .columns
                    .iter()
                    .find(|c| {
                        c.column.name == derived.column.name
                            && family(c.column.dms_type) == family(derived.column.dms_type)
                    })
                    .cloned()
                    .unwrap_or(derived);
                if col.column.dms_type.is_lob() && !support_lobs {
                    continue;
                }
                columns.push(col);
                from.push(Some(i));
            }
            (columns, from)
        } else if n == total_cols {
            (
                table.columns.clone(),
                table.kept.iter().map(|&i| Some(i)).collect(),
            )
        } else {
            return Err(Error::new(
                ErrorKind::SourceSchema,
                format!("binlog rows of {key} have {n} columns but the table now has {total_cols}: it was altered after this binlog position"),
                "set binlog_row_metadata=FULL on the server (columns are then matched by name); the next run reloads the table from a fresh snapshot",
            ));
        };
        let schema = if columns
            .iter()
            .map(|c| &c.column)
            .eq(table.source.schema.columns.iter())
        {
            table.source.schema.clone()
        } else {
            Arc::new(TableSchema {
                schema: table.source.schema.schema.clone(),
                table: table.source.schema.table.clone(),
                columns: columns.iter().map(|c| c.column.clone()).collect(),
                key: catalog::key_indexes(&table.key, columns.iter().map(|c| &c.column)),
            })
        };
        let key_cols = table
            .key
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.column.name == k))
            .collect();
        Ok(TableVersion {
            key,
            schema,
            columns,
            from_binlog,
            key_cols,
        })
    }
}

/// MySQL's `binary` character set: such CHAR/VARCHAR/BLOB columns hold bytes, not text.
const BINARY_CHARSET: u16 = 63;

/// Coarse kind of a DMS type, to tell whether a catalog column of the same name is the same
/// column (an `INT` → `BIGINT` change keeps the kind; a drop and re-add as text does not).
fn family(t: DmsType) -> u8 {
    match t {
        DmsType::Int1 | DmsType::Int2 | DmsType::Int4 | DmsType::Int8 => 0,
        DmsType::UInt1 | DmsType::UInt2 | DmsType::UInt4 | DmsType::UInt8 => 0,
        DmsType::Numeric { .. } => 1,
        DmsType::Real4 | DmsType::Real8 => 2,
        DmsType::Boolean => 3,
        DmsType::Date => 4,
        DmsType::DateTime => 5,
        DmsType::Time | DmsType::String { .. } => 6,
        DmsType::Bytes { .. } => 7,
    }
}

/// A column defined by its TABLE_MAP alone (reference §4.4 applied to binlog types). ENUM and SET
/// labels are not in every binlog, so such derived columns hold their index / bitmask digits.
fn derived_column(name: String, c: &ColumnCodec, binary: bool) -> MyColumn {
    use ColumnType::*;
    let m = |i: usize| c.meta.get(i).copied().unwrap_or(0);
    let int = |signed: DmsType, unsigned: DmsType, width: u8, name: &str| {
        let (t, u) = if c.unsigned {
            (unsigned, " unsigned")
        } else {
            (signed, "")
        };
        (t, ValueKind::Plain, width, 0, format!("{name}{u}"))
    };
    let plain = |t: DmsType, kind: ValueKind, source: &str| (t, kind, 0, 0, source.to_string());
    let text = DmsType::String { lob: false };
    let (dms_type, kind, int_bytes, fsp, source) = match c.ty {
        MYSQL_TYPE_TINY => int(DmsType::Int1, DmsType::UInt1, 1, "tinyint"),
        MYSQL_TYPE_SHORT => int(DmsType::Int2, DmsType::UInt2, 2, "smallint"),
        MYSQL_TYPE_INT24 => int(DmsType::Int4, DmsType::UInt4, 3, "mediumint"),
        MYSQL_TYPE_LONG => int(DmsType::Int4, DmsType::UInt4, 4, "int"),
        MYSQL_TYPE_LONGLONG => int(DmsType::Int8, DmsType::UInt8, 8, "bigint"),
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => {
            let (p, s) = (m(0), m(1));
            let t = if p <= 38 {
                DmsType::Numeric {
                    precision: p,
                    scale: s as i8,
                }
            } else {
                text
            };
            plain(t, ValueKind::Plain, &format!("decimal({p},{s})"))
        }
        MYSQL_TYPE_FLOAT => plain(DmsType::Real8, ValueKind::Float { single: true }, "float"),
        MYSQL_TYPE_DOUBLE => plain(DmsType::Real8, ValueKind::Float { single: false }, "double"),
        MYSQL_TYPE_BIT => match u32::from(m(1)) * 8 + u32::from(m(0)) {
            1 => plain(DmsType::Boolean, ValueKind::Bit1, "bit(1)"),
            bits => plain(
                DmsType::Bytes { lob: false },
                ValueKind::Binary,
                &format!("bit({bits})"),
            ),
        },
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => plain(DmsType::Date, ValueKind::Date, "date"),
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => {
            let f = format!("datetime({})", m(0));
            (DmsType::DateTime, ValueKind::DateTime, 0, m(0), f)
        }
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
            let f = format!("timestamp({})", m(0));
            (DmsType::DateTime, ValueKind::Timestamp, 0, m(0), f)
        }
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => {
            (text, ValueKind::Plain, 0, m(0), format!("time({})", m(0)))
        }
        MYSQL_TYPE_YEAR => plain(DmsType::Int2, ValueKind::Plain, "year"),
        MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => plain(text, ValueKind::Plain, "enum/set"),
        MYSQL_TYPE_JSON => plain(DmsType::String { lob: true }, ValueKind::Plain, "json"),
        MYSQL_TYPE_GEOMETRY => plain(DmsType::Bytes { lob: true }, ValueKind::Binary, "geometry"),
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            // meta[0] is the length-prefix size: 3 and 4 are MEDIUM and LONG (LOBs).
            let lob = m(0) >= 3;
            if binary {
                plain(DmsType::Bytes { lob }, ValueKind::Binary, "blob")
            } else {
                plain(DmsType::String { lob }, ValueKind::Plain, "text")
            }
        }
        _ if binary => plain(
            DmsType::Bytes { lob: false },
            ValueKind::Binary,
            "varbinary",
        ),
        _ => plain(text, ValueKind::Plain, "varchar"),
    };
    MyColumn {
        column: crate::change::Column {
            name,
            dms_type,
            source_type: source,
        },
        kind,
        int_bytes,
        fsp,
        labels: Vec::new().into(),
        is_set: false,
    }
}

/// `{"a": [1, 2]}`: MySQL's own JSON text layout, so CDC values read like the full load's.
struct MySqlJsonFormatter;

impl serde_json::ser::Formatter for MySqlJsonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// Appends `.ffffff` cut to `fsp` digits (nothing for fsp 0).
fn write_fraction(buf: &mut Vec<u8>, us: u32, fsp: u8) {
    use std::io::Write;
    let fsp = fsp.min(6);
    if fsp > 0 {
        let digits = us / 10u32.pow(6 - u32::from(fsp));
        let _ = write!(buf, ".{digits:0width$}", width = fsp as usize);
    }
}

/// Appends one binlog value as the canonical cell of `col`.
pub(super) fn push_binlog_value(
    col: &MyColumn,
    v: Option<&BinlogValue<'_>>,
    out: &mut RowBatch,
) -> Result<()> {
    let v =
        match v {
            None | Some(BinlogValue::Value(Value::NULL)) => {
                out.push_null();
                return Ok(());
            }
            Some(BinlogValue::Value(v)) => v,
            Some(BinlogValue::Jsonb(j)) => {
                // The one copy of a value here: JSON is rare, and the conversion consumes.
                let json = serde_json::Value::try_from(j.clone()).map_err(|e| {
                    Error::new(
                        ErrorKind::Data,
                        format!(
                            "column {}: cannot decode a binary JSON value: {e}",
                            col.column.name
                        ),
                        "report this as a bug with the server version",
                    )
                })?;
                let mut ser =
                    serde_json::Serializer::with_formatter(out.cell_buf(), MySqlJsonFormatter);
                serde::Serialize::serialize(&json, &mut ser)
                    .map_err(|e| Error::internal(format!("JSON text: {e}")))?;
                out.end_cell();
                return Ok(());
            }
            Some(BinlogValue::JsonDiff(_)) => return Err(Error::new(
                ErrorKind::Data,
                format!(
                    "column {} arrived as a partial JSON update, which carries no full value",
                    col.column.name
                ),
                "SET GLOBAL binlog_row_value_options = '' on the server (partial JSON updates off)",
            )),
        };
    use std::io::Write;
    let timestamp = col.kind == ValueKind::Timestamp;
    match *v {
        Value::Bytes(ref b) if col.is_set => {
            let mut mask = 0u64;
            for (i, byte) in b.iter().enumerate().take(8) {
                mask |= u64::from(*byte) << (8 * i);
            }
            let buf = out.cell_buf();
            let start = buf.len();
            for (i, label) in col.labels.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    if buf.len() > start {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(label.as_bytes());
                }
            }
            out.end_cell();
        }
        Value::Bytes(ref b) if timestamp => {
            // TIMESTAMP2 arrives as "seconds[.micros]" since the epoch; 0 is the zero date.
            let text = std::str::from_utf8(b).unwrap_or("0");
            let (sec, us) = text.split_once('.').unwrap_or((text, "0"));
            push_epoch(
                sec.parse().unwrap_or(0),
                us.parse().unwrap_or(0),
                col.fsp,
                out,
            );
        }
        Value::Bytes(ref b) => catalog::push_value(col.kind, b, out),
        Value::Int(n) if !col.labels.is_empty() => {
            // ENUM: 1-based index; 0 is MySQL's "invalid value" empty string.
            let label = usize::try_from(n)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| col.labels.get(i));
            out.push_cell(label.map_or(&b""[..], |l| l.as_bytes()));
        }
        Value::Int(n) if timestamp => push_epoch(n, 0, col.fsp, out),
        Value::Int(n) if col.unsigned() && n < 0 => {
            let bits = u32::from(col.int_bytes.max(1)) * 8;
            let u = if bits >= 64 {
                n as u64
            } else {
                (n as u64) & ((1u64 << bits) - 1)
            };
            push_display(out, u);
        }
        Value::Int(n) if col.column.dms_type == DmsType::Boolean => {
            out.push_cell(if n != 0 { b"t" } else { b"f" })
        }
        Value::Int(n) => push_display(out, n),
        Value::UInt(n) => push_display(out, n),
        Value::Float(f) => catalog::push_float(f64::from(f), true, out),
        Value::Double(f) => catalog::push_float(f, false, out),
        Value::Date(y, m, d, h, mi, s, us) => {
            if y == 0 || m == 0 || d == 0 {
                out.push_null();
            } else {
                let buf = out.cell_buf();
                let _ = write!(buf, "{y:04}-{m:02}-{d:02}");
                if col.column.dms_type != DmsType::Date {
                    let _ = write!(buf, " {h:02}:{mi:02}:{s:02}");
                    write_fraction(buf, us, col.fsp);
                }
                out.end_cell();
            }
        }
        Value::Time(neg, days, h, m, s, us) => {
            let hours = days * 24 + u32::from(h);
            let sign = if neg { "-" } else { "" };
            let buf = out.cell_buf();
            let _ = write!(buf, "{sign}{hours:02}:{m:02}:{s:02}");
            write_fraction(buf, us, col.fsp);
            out.end_cell();
        }
        Value::NULL => out.push_null(),
    }
    Ok(())
}

/// Appends a number's decimal text as a cell without an intermediate String.
fn push_display(out: &mut RowBatch, n: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out.cell_buf(), "{n}");
    out.end_cell();
}

/// A TIMESTAMP as UTC text, or NULL for the zero timestamp.
fn push_epoch(sec: i64, us: u32, fsp: u8, out: &mut RowBatch) {
    if sec == 0 && us == 0 {
        out.push_null();
        return;
    }
    match chrono::DateTime::from_timestamp(sec, us * 1000) {
        Some(t) => {
            use std::io::Write;
            let buf = out.cell_buf();
            let _ = write!(buf, "{}", t.format("%Y-%m-%d %H:%M:%S"));
            write_fraction(buf, us, fsp);
            out.end_cell();
        }
        None => out.push_null(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Column, Op};

    fn col(ty: &str, dms: DmsType, kind: ValueKind) -> MyColumn {
        MyColumn {
            column: Column {
                name: "c".into(),
                dms_type: dms,
                source_type: ty.into(),
            },
            kind,
            int_bytes: if ty.starts_with("tinyint") { 1 } else { 8 },
            fsp: if ty.contains("(6)") {
                6
            } else if ty.contains("(3)") {
                3
            } else {
                0
            },
            labels: if ty.starts_with("enum") || ty.starts_with("set") {
                vec!["a".to_string(), "bb".to_string()].into()
            } else {
                Vec::new().into()
            },
            is_set: ty.starts_with("set"),
        }
    }

    fn render(c: &MyColumn, v: Value) -> Option<String> {
        let mut b = RowBatch::new(1);
        push_binlog_value(c, Some(&BinlogValue::Value(v)), &mut b).unwrap();
        b.end_row(Op::Insert, 0).unwrap();
        b.get(0, 0).map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn binlog_values_render_like_the_full_load() {
        let tu = col("tinyint(3) unsigned", DmsType::UInt1, ValueKind::Plain);
        assert_eq!(render(&tu, Value::Int(-1)).as_deref(), Some("255"));
        let ti = col("tinyint(4)", DmsType::Int1, ValueKind::Plain);
        assert_eq!(render(&ti, Value::Int(-5)).as_deref(), Some("-5"));
        let dt = col("datetime(6)", DmsType::DateTime, ValueKind::DateTime);
        assert_eq!(
            render(&dt, Value::Date(2024, 2, 29, 12, 34, 56, 123456)).as_deref(),
            Some("2024-02-29 12:34:56.123456")
        );
        assert_eq!(render(&dt, Value::Date(0, 0, 0, 0, 0, 0, 0)), None);
        let ts = col("timestamp(6)", DmsType::DateTime, ValueKind::Timestamp);
        assert_eq!(
            render(&ts, Value::Bytes(b"1709210096.654321".to_vec())).as_deref(),
            Some("2024-02-29 12:34:56.654321")
        );
        assert_eq!(
            render(&ts, Value::Bytes(b"1709210096".to_vec())).as_deref(),
            Some("2024-02-29 12:34:56.000000")
        );
        let d = col("date", DmsType::Date, ValueKind::Date);
        assert_eq!(
            render(&d, Value::Date(2024, 2, 29, 0, 0, 0, 0)).as_deref(),
            Some("2024-02-29")
        );
        let t = col("time(3)", DmsType::String { lob: false }, ValueKind::Plain);
        assert_eq!(
            render(&t, Value::Time(true, 34, 22, 59, 59, 0)).as_deref(),
            Some("-838:59:59.000")
        );
        let e = col(
            "enum('a','bb')",
            DmsType::String { lob: false },
            ValueKind::Plain,
        );
        assert_eq!(render(&e, Value::Int(2)).as_deref(), Some("bb"));
        let s = col(
            "set('a','bb')",
            DmsType::String { lob: false },
            ValueKind::Plain,
        );
        assert_eq!(render(&s, Value::Bytes(vec![3])).as_deref(), Some("a,bb"));
        let f = col("double", DmsType::Real8, ValueKind::Float { single: false });
        assert_eq!(render(&f, Value::Double(1e300)).as_deref(), Some("1e300"));
        assert_eq!(render(&f, Value::Double(1.5)).as_deref(), Some("1.5"));
        let fl = col("float", DmsType::Real8, ValueKind::Float { single: true });
        assert_eq!(render(&fl, Value::Float(1.1)).as_deref(), Some("1.1"));
        let bin = col(
            "varbinary(8)",
            DmsType::Bytes { lob: false },
            ValueKind::Binary,
        );
        assert_eq!(
            render(&bin, Value::Bytes(vec![0, 255])).as_deref(),
            Some("\\x00ff")
        );
    }
}
