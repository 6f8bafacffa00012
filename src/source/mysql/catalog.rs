//! MySQL/MariaDB catalog: which tables the mappings select, their columns in DMS types
//! (reference §4.4), and how each column's value becomes canonical text.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::my_error;
use crate::change::{Column, DmsType, RowBatch, TableSchema};
use crate::error::Result;
use crate::mapping::filter::Dialect;
use crate::mapping::segments::{self, ParallelLoad, Partition};
use crate::mapping::{Lobs, RelationKind, TableMappings};
use crate::source::SourceTable;

/// Databases that are never user data (DMS warns that `%` would select them).
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// How a column's value (text protocol, or binlog bytes) becomes the canonical text of its
/// [`DmsType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueKind {
    /// Already canonical: integers, DECIMAL, strings, ENUM/SET, JSON text, TIME, YEAR.
    Plain,
    /// FLOAT (`single`) or DOUBLE: re-rendered by [`float_text`] so the full load and the binlog
    /// agree (servers differ on when they switch to exponent form).
    Float {
        /// FLOAT (4 bytes): shortest text that round-trips through f32.
        single: bool,
    },
    /// BIT(1) as BOOLEAN.
    Bit1,
    /// BIT(n>1), BINARY, VARBINARY, BLOBs, spatial types: bytes rendered as `\x` hex.
    Binary,
    /// DATE: zero dates become NULL.
    Date,
    /// DATETIME: zero dates become NULL.
    DateTime,
    /// TIMESTAMP: as DATETIME over the text protocol (UTC by the session time zone); in the
    /// binlog it arrives as seconds since the epoch.
    Timestamp,
}

/// One selected column with its conversion.
#[derive(Debug, Clone)]
pub(super) struct MyColumn {
    /// Output column.
    pub(crate) column: Column,
    /// Conversion to canonical text.
    pub(crate) kind: ValueKind,
    /// Type byte width for integers (1, 2, 3, 4, 8), used to reinterpret binlog values.
    pub(crate) int_bytes: u8,
    /// Fractional-second digits of DATETIME/TIMESTAMP/TIME (the text protocol pads to them).
    pub(crate) fsp: u8,
    /// ENUM or SET labels in definition order (binlog rows carry indexes / bitmasks).
    pub(crate) labels: Arc<[String]>,
    /// A SET column (its binlog value is a bitmask over `labels`).
    pub(crate) is_set: bool,
}

/// The `(N)` of `datetime(N)`, `time(N)`, `timestamp(N)`; 0 without one.
fn fsp_of(column_type: &str) -> u8 {
    column_type
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

/// The labels of `enum('a','b''c')` / `set(...)`, unquoted.
fn labels_of(column_type: &str) -> Vec<String> {
    let Some(inner) = column_type
        .split_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '\'') => quoted = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                cur.push('\'');
                chars.next();
            }
            (true, '\'') => {
                quoted = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (true, c) => cur.push(c),
            (false, _) => {}
        }
    }
    out
}

/// A selected table.
#[derive(Debug, Clone)]
pub(super) struct MyTable {
    /// What the full load sees.
    pub(crate) source: SourceTable,
    /// Columns in ordinal order (LOB columns already dropped when SupportLobs=false).
    pub(crate) columns: Vec<MyColumn>,
    /// Positions (0-based, among *all* source columns) of the columns kept, for binlog rows that
    /// carry every column.
    pub(crate) kept: Vec<usize>,
    /// Names of the primary-key columns (empty without a key).
    pub(crate) key: Vec<String>,
    /// Number of source columns, dropped LOB columns included (binlog rows carry them all).
    pub(crate) total_columns: usize,
    /// ` WHERE …` of its selection rules' source filters for the full load ("" without).
    pub(crate) filter: String,
}

/// Quotes an identifier with backticks.
pub(super) fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// DMS type, conversion and integer width of a column from `information_schema.COLUMNS`.
fn map_type(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
) -> (DmsType, ValueKind, u8) {
    let unsigned = column_type.contains("unsigned");
    let string = DmsType::String { lob: false };
    let int = |s: DmsType, u: DmsType, w: u8| (if unsigned { u } else { s }, ValueKind::Plain, w);
    match data_type {
        "tinyint" => int(DmsType::Int1, DmsType::UInt1, 1),
        "smallint" => int(DmsType::Int2, DmsType::UInt2, 2),
        "mediumint" => int(DmsType::Int4, DmsType::UInt4, 3),
        "int" | "integer" => int(DmsType::Int4, DmsType::UInt4, 4),
        "bigint" => int(DmsType::Int8, DmsType::UInt8, 8),
        "decimal" | "numeric" => {
            let p = precision.unwrap_or(10);
            let s = scale.unwrap_or(0);
            if p <= 38 {
                let t = DmsType::Numeric {
                    precision: p as u8,
                    scale: s as i8,
                };
                (t, ValueKind::Plain, 0)
            } else {
                // Wider than Parquet's DECIMAL128: keep every digit as text.
                (string, ValueKind::Plain, 0)
            }
        }
        "float" => (DmsType::Real8, ValueKind::Float { single: true }, 0),
        "double" | "real" => (DmsType::Real8, ValueKind::Float { single: false }, 0),
        "bit" if precision.unwrap_or(1) == 1 => (DmsType::Boolean, ValueKind::Bit1, 0),
        "bit" | "binary" | "varbinary" | "tinyblob" | "blob" => {
            (DmsType::Bytes { lob: false }, ValueKind::Binary, 0)
        }
        "mediumblob" | "longblob" | "geometry" | "point" | "linestring" | "polygon"
        | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => {
            (DmsType::Bytes { lob: true }, ValueKind::Binary, 0)
        }
        "mediumtext" | "longtext" | "json" => (DmsType::String { lob: true }, ValueKind::Plain, 0),
        "date" => (DmsType::Date, ValueKind::Date, 0),
        "datetime" => (DmsType::DateTime, ValueKind::DateTime, 0),
        "timestamp" => (DmsType::DateTime, ValueKind::Timestamp, 0),
        "year" => (DmsType::Int2, ValueKind::Plain, 0),
        // char, varchar, tinytext, text, enum, set, time (DMS: STRING), and anything newer.
        _ => (string, ValueKind::Plain, 0),
    }
}

/// True for a zero or partly-zero date (`0000-00-00`, `2024-00-10`), which DMS writes as NULL.
fn zero_date(v: &[u8]) -> bool {
    v.len() >= 10 && (v.starts_with(b"0000") || &v[5..7] == b"00" || &v[8..10] == b"00")
}

impl MyColumn {
    /// An `UNSIGNED` integer column (binlog values without signedness metadata arrive as signed
    /// bit patterns).
    pub(super) fn unsigned(&self) -> bool {
        matches!(
            self.column.dms_type,
            DmsType::UInt1 | DmsType::UInt2 | DmsType::UInt4 | DmsType::UInt8
        )
    }
}

/// Appends a float as a cell: shortest round-trip digits, exponent form below 1e-4 and from
/// 1e15 on.
pub(super) fn push_float(v: f64, single: bool, out: &mut RowBatch) {
    use std::io::Write;
    let exp = v != 0.0 && !(1e-4..1e15).contains(&v.abs());
    let buf = out.cell_buf();
    let _ = match (single, exp) {
        (true, true) => write!(buf, "{:e}", v as f32),
        (true, false) => write!(buf, "{}", v as f32),
        (false, true) => write!(buf, "{v:e}"),
        (false, false) => write!(buf, "{v}"),
    };
    out.end_cell();
}

/// Appends `v` (MySQL's text form, or raw bytes for binary kinds) to `out` as a canonical cell.
pub(super) fn push_value(kind: ValueKind, v: &[u8], out: &mut RowBatch) {
    match kind {
        ValueKind::Plain => out.push_cell(v),
        ValueKind::Float { single } => {
            match std::str::from_utf8(v)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
            {
                Some(f) => push_float(f, single, out),
                None => out.push_cell(v),
            }
        }
        ValueKind::Bit1 => out.push_cell(if v.iter().any(|&b| b != 0) {
            b"t"
        } else {
            b"f"
        }),
        ValueKind::Binary => {
            let buf = out.cell_buf();
            buf.extend_from_slice(b"\\x");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for &b in v {
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 15) as usize]);
            }
            out.end_cell();
        }
        ValueKind::Date | ValueKind::DateTime | ValueKind::Timestamp if zero_date(v) => {
            out.push_null()
        }
        ValueKind::Date | ValueKind::DateTime | ValueKind::Timestamp => out.push_cell(v),
    }
}

/// Lists the base tables (and views when the mappings ask) the mappings select, with their
/// columns and keys.
pub(super) async fn selected_tables(
    conn: &mut Conn,
    mappings: &TableMappings,
    lobs: Lobs,
) -> Result<Vec<MyTable>> {
    let rels: Vec<(String, String, String, Option<u64>)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES
             WHERE TABLE_TYPE IN ('BASE TABLE', 'VIEW')
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| my_error(e, "reading the catalog"))?;
    let mut out = Vec::new();
    for (schema, table, ttype, rows) in rels {
        if SYSTEM_SCHEMAS.contains(&schema.as_str()) {
            continue;
        }
        let kind = if ttype == "VIEW" {
            RelationKind::View
        } else {
            RelationKind::Table
        };
        if !mappings.selects(&schema, &table, kind) {
            continue;
        }
        let support = mappings.lobs(&schema, &table, lobs).support;
        let mut t = describe(conn, &schema, &table, support).await?;
        t.source.load_order = mappings.load_order(&schema, &table, kind);
        t.source.kind = kind;
        t.source.estimated_rows = rows;
        let map = mappings.table_map(&t.source.schema)?;
        t.filter = map.where_clause(Dialect::MySql, &quote_ident);
        if let Some((load, id)) = mappings.parallel_load(&schema, &table) {
            let parts = match load.wants_partitions() {
                true => partitions(conn, &schema, &table, load).await?,
                false => Vec::new(),
            };
            t.source.segments = segments::segments(
                load,
                id,
                &t.source.schema,
                &parts,
                Dialect::MySql,
                &quote_ident,
            )?;
            t.source.key_ranges =
                segments::rule_key_ranges(load, &t.source.schema, &t.source.segments);
        }
        out.push(t);
    }
    Ok(out)
}

/// The partitions of `schema.table` a `parallel-load` rule of type `load` reads: top-level
/// partitions (`partitions-auto`), leaves (`subpartitions-auto`), or both levels (a list), each
/// with the `PARTITION (…)` read that selects it.
async fn partitions(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    load: &ParallelLoad,
) -> Result<Vec<Partition>> {
    let rows: Vec<(String, Option<String>)> = conn
        .exec(
            "SELECT PARTITION_NAME, SUBPARTITION_NAME FROM information_schema.PARTITIONS
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL
             ORDER BY PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(|e| my_error(e, &format!("reading the partitions of {schema}.{table}")))?;
    let read = |p: &str| {
        format!(
            "{}.{} PARTITION ({})",
            quote_ident(schema),
            quote_ident(table),
            quote_ident(p)
        )
    };
    let mut out: Vec<Partition> = Vec::new();
    for (p, sub) in rows {
        let names = match (load, sub) {
            (ParallelLoad::SubpartitionsAuto, Some(s)) => vec![s],
            (ParallelLoad::PartitionsList(_), Some(s)) => vec![p, s],
            _ => vec![p],
        };
        for n in names {
            if !out.iter().any(|(have, _)| *have == n) {
                out.push((n.clone(), read(&n)));
            }
        }
    }
    Ok(out)
}

/// Indexes (ascending) of the columns named `key` among `columns`.
pub(super) fn key_indexes<'a>(
    key: &[String],
    columns: impl Iterator<Item = &'a Column>,
) -> Vec<usize> {
    columns
        .enumerate()
        .filter(|(_, c)| key.contains(&c.name))
        .map(|(i, _)| i)
        .collect()
}

/// One table's columns and primary key, as the catalog has them now.
pub(super) async fn describe(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    support_lobs: bool,
) -> Result<MyTable> {
    let (columns, kept, total_columns) = table_columns(conn, schema, table, support_lobs).await?;
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
             ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(|e| my_error(e, "reading primary keys"))?;
    Ok(MyTable {
        source: SourceTable {
            load_order: 0,
            schema: Arc::new(TableSchema {
                schema: schema.to_string(),
                table: table.to_string(),
                columns: columns.iter().map(|c| c.column.clone()).collect(),
                key: key_indexes(&key, columns.iter().map(|c| &c.column)),
            }),
            kind: RelationKind::Table,
            estimated_rows: None,
            segments: Vec::new(),
            key_ranges: None,
        },
        columns,
        kept,
        key,
        total_columns,
        filter: String::new(),
    })
}

/// Columns of one table in ordinal order, the ordinals kept, and the total column count.
async fn table_columns(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    support_lobs: bool,
) -> Result<(Vec<MyColumn>, Vec<usize>, usize)> {
    type Row = (String, String, String, Option<u64>, Option<u64>);
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
             ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(|e| my_error(e, "reading column definitions"))?;
    let mut columns = Vec::new();
    let mut kept = Vec::new();
    let total = rows.len();
    for (i, (name, data_type, column_type, precision, scale)) in rows.into_iter().enumerate() {
        let data_type = data_type.to_ascii_lowercase();
        let (dms_type, kind, int_bytes) = map_type(&data_type, &column_type, precision, scale);
        if dms_type.is_lob() && !support_lobs {
            continue;
        }
        kept.push(i);
        let enumish = matches!(data_type.as_str(), "enum" | "set");
        columns.push(MyColumn {
            fsp: if matches!(data_type.as_str(), "datetime" | "timestamp" | "time") {
                fsp_of(&column_type)
            } else {
                0
            },
            labels: if enumish {
                labels_of(&column_type).into()
            } else {
                Vec::new().into()
            },
            is_set: data_type == "set",
            column: Column {
                name,
                dms_type,
                source_type: column_type,
            },
            kind,
            int_bytes,
        });
    }
    Ok((columns, kept, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_map_follows_the_reference() {
        let t = |d, c, p, s| map_type(d, c, p, s).0;
        assert_eq!(t("tinyint", "tinyint(4)", None, None), DmsType::Int1);
        assert_eq!(t("int", "int(10) unsigned", None, None), DmsType::UInt4);
        assert_eq!(
            t("mediumint", "mediumint(8) unsigned", None, None),
            DmsType::UInt4
        );
        assert_eq!(
            t("bigint", "bigint(20) unsigned", None, None),
            DmsType::UInt8
        );
        assert_eq!(
            t("decimal", "decimal(12,3)", Some(12), Some(3)),
            DmsType::Numeric {
                precision: 12,
                scale: 3
            }
        );
        assert_eq!(
            t("decimal", "decimal(65,2)", Some(65), Some(2)),
            DmsType::String { lob: false }
        );
        assert_eq!(t("float", "float", None, None), DmsType::Real8);
        assert_eq!(t("bit", "bit(1)", Some(1), None), DmsType::Boolean);
        assert_eq!(
            t("bit", "bit(64)", Some(64), None),
            DmsType::Bytes { lob: false }
        );
        assert_eq!(t("blob", "blob", None, None), DmsType::Bytes { lob: false });
        assert_eq!(
            t("longblob", "longblob", None, None),
            DmsType::Bytes { lob: true }
        );
        assert_eq!(
            t("text", "text", None, None),
            DmsType::String { lob: false }
        );
        assert_eq!(
            t("longtext", "longtext", None, None),
            DmsType::String { lob: true }
        );
        assert_eq!(
            t("timestamp", "timestamp(6)", None, None),
            DmsType::DateTime
        );
        assert_eq!(t("year", "year(4)", None, None), DmsType::Int2);
        assert_eq!(
            t("time", "time(6)", None, None),
            DmsType::String { lob: false }
        );
    }

    #[test]
    fn column_type_details() {
        assert_eq!(fsp_of("datetime(6)"), 6);
        assert_eq!(fsp_of("time"), 0);
        assert_eq!(labels_of("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(labels_of("set('x','y')"), vec!["x", "y"]);
    }

    #[test]
    fn values_become_canonical() {
        let mut b = RowBatch::new(5);
        push_value(ValueKind::Bit1, &[1], &mut b);
        push_value(ValueKind::Binary, &[0, 0xAB], &mut b);
        push_value(ValueKind::Date, b"0000-00-00", &mut b);
        push_value(ValueKind::DateTime, b"2024-02-29 12:00:00.000001", &mut b);
        push_value(ValueKind::DateTime, b"2024-00-01 00:00:00", &mut b);
        b.end_row(crate::change::Op::Insert, 0).unwrap();
        assert_eq!(b.get(0, 0), Some(&b"t"[..]));
        assert_eq!(b.get(0, 1), Some(&b"\\x00ab"[..]));
        assert_eq!(b.get(0, 2), None);
        assert_eq!(b.get(0, 3), Some(&b"2024-02-29 12:00:00.000001"[..]));
        assert_eq!(b.get(0, 4), None);
    }
}
