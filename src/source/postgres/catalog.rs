//! PostgreSQL catalog → selected tables with DMS-typed columns (reference §4.3).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_postgres::Client;

use super::pg_error;
use crate::change::{Column, DmsType, TableSchema};
use crate::config::source::PgTypes;
use crate::error::Result;
use crate::mapping::filter::Dialect;
use crate::mapping::segments::{self, ParallelLoad, Partition};
use crate::mapping::{Lobs, RelationKind, TableMappings};
use crate::source::SourceTable;

/// A column plus the SELECT expression that yields its canonical text.
#[derive(Debug, Clone)]
pub(super) struct PgColumn {
    /// Output column.
    pub(crate) column: Column,
    /// Expression in the COPY query (a quoted identifier, possibly cast).
    pub(crate) select: String,
}

/// A selected relation with its PostgreSQL specifics.
#[derive(Debug, Clone)]
pub(super) struct PgTable {
    /// What the rest of the program sees.
    pub(crate) source: SourceTable,
    /// Columns with their select expressions.
    pub(crate) columns: Vec<PgColumn>,
    /// Whether the user may SELECT from it.
    pub(crate) can_select: bool,
    /// ` WHERE …` of its selection rules' source filters ("" without).
    pub(crate) filter: String,
    /// The relation's OID.
    pub(crate) oid: u32,
}

/// Quotes an identifier for SQL.
pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// How a CDC value (pgoutput text) is brought to the form the full load's select expression
/// gives, for the few types whose select expression is not the plain column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Normalize {
    /// Already canonical.
    None,
    /// `money` text (`-$1,234.56` with lc_monetary=C) → numeric text.
    Money,
    /// `char(n)`: trailing blanks dropped (what `::text` does).
    Bpchar,
    /// `boolean` written as a string: `t`/`f` → `true`/`false` (what `::text` does).
    BoolText,
    /// `timetz` → the UTC wall-clock time.
    TimetzUtc,
}

impl Normalize {
    /// The normalizer for PostgreSQL type `typname` (domains: the base type) under `types`.
    pub(super) fn for_type(typname: &str, types: PgTypes) -> Normalize {
        match typname {
            "money" => Normalize::Money,
            "bpchar" if types.trim_char => Normalize::Bpchar,
            "bool" if !types.boolean_as_boolean => Normalize::BoolText,
            "timetz" => Normalize::TimetzUtc,
            _ => Normalize::None,
        }
    }
}

/// Type facts needed to map a column, looked up by type OID for CDC Relation messages.
#[derive(Debug, Clone)]
pub(super) struct TypeInfo {
    /// Base type name.
    pub(crate) typname: String,
    /// Base type kind (`b`, `e`, `c`, `r`, `m`, ...).
    pub(crate) typtype: String,
    /// Base type category.
    pub(crate) category: String,
    /// A domain's own type modifier (it wins over the column's).
    pub(crate) domain_typmod: Option<i32>,
    /// `format_type` text, for messages.
    pub(crate) display: String,
}

/// Looks up type facts for `oids`.
pub(super) async fn lookup_types(client: &Client, oids: &[u32]) -> Result<BTreeMap<u32, TypeInfo>> {
    let rows = client
        .query(
            "SELECT t.oid, coalesce(bt.typname, t.typname)::text, coalesce(bt.typtype, t.typtype)::text,
                    coalesce(bt.typcategory, t.typcategory)::text,
                    CASE WHEN t.typtype = 'd' THEN t.typtypmod END, format_type(t.oid, NULL)
             FROM pg_type t LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
             WHERE t.oid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading column types"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                TypeInfo {
                    typname: r.get(1),
                    typtype: r.get(2),
                    category: r.get(3),
                    domain_typmod: r.get(4),
                    display: r.get(5),
                },
            )
        })
        .collect())
}

/// DMS type of a column of the given type and modifier (the same mapping the full load uses).
pub(super) fn dms_type_of(t: &TypeInfo, typmod: i32, types: PgTypes) -> DmsType {
    let typmod = t.domain_typmod.unwrap_or(typmod);
    map_type(&t.typname, &t.typtype, &t.category, typmod, types, "x").0
}

/// DMS type and select expression for a column of PostgreSQL type `typname`
/// (for domains, the base type), given its type category, kind and modifier;
/// `types` holds the endpoint settings that shape values.
fn map_type(
    typname: &str,
    typtype: &str,
    category: &str,
    typmod: i32,
    types: PgTypes,
    ident: &str,
) -> (DmsType, String) {
    let plain = ident.to_string();
    let string = DmsType::String { lob: false };
    let lob = DmsType::String { lob: true };
    if category == "A" {
        return (lob, plain);
    }
    match typtype {
        "e" | "r" | "m" => return (string, plain),
        "c" => return (lob, plain),
        _ => {}
    }
    match typname {
        "bool" if types.boolean_as_boolean => (DmsType::Boolean, plain),
        // DMS's default CHAR(5): `true`/`false` as text.
        "bool" => (string, format!("{ident}::text")),
        "int2" => (DmsType::Int2, plain),
        "int4" => (DmsType::Int4, plain),
        "int8" | "oid" => (DmsType::Int8, plain),
        "float4" => (DmsType::Real4, plain),
        "float8" => (DmsType::Real8, plain),
        // Every digit, NaN and the infinities, as PostgreSQL prints them.
        "numeric" if typmod < 4 && types.numeric_as_string => (string, plain),
        "numeric" if typmod < 4 => (
            DmsType::Numeric {
                precision: 28,
                scale: 6,
            },
            plain,
        ),
        "numeric" => {
            let precision = ((typmod - 4) >> 16) & 0xFFFF;
            // PostgreSQL 15 packs a signed 11-bit scale.
            let raw = (typmod - 4) & 0x7FF;
            let scale = if raw & 0x400 != 0 { raw - 0x800 } else { raw };
            if (1..=38).contains(&precision) && (0..=precision).contains(&scale) {
                (
                    DmsType::Numeric {
                        precision: precision as u8,
                        scale: scale as i8,
                    },
                    plain,
                )
            } else {
                (string, plain)
            }
        }
        "money" => (
            DmsType::Numeric {
                precision: 38,
                scale: 4,
            },
            format!("{ident}::numeric"),
        ),
        // bpchar→text drops the padding: DMS's TrimSpaceInChar (default true).
        "bpchar" if types.trim_char => (string, format!("{ident}::text")),
        "varchar" if typmod < 0 && types.long_varchar_as_lob => (lob, plain),
        "varchar" | "name" | "char" | "uuid" | "interval" | "inet" | "cidr" | "macaddr"
        | "macaddr8" | "bit" | "varbit" | "point" | "line" | "lseg" | "box" | "circle"
        | "pg_lsn" | "tsquery" => (string, plain),
        "text" | "citext" | "json" | "jsonb" | "xml" | "tsvector" | "path" | "polygon"
        | "hstore" => (lob, plain),
        "bytea" => (DmsType::Bytes { lob: true }, plain),
        "timestamp" | "timestamptz" => (DmsType::DateTime, plain),
        "date" => (DmsType::Date, plain),
        "time" => (DmsType::Time, plain),
        "timetz" => (DmsType::Time, format!("({ident} AT TIME ZONE 'UTC')::time")),
        _ => (string, plain),
    }
}

/// Lists the relations the mappings select, with their columns typed under `types`. Partitions are skipped: their partitioned parent reads their
/// rows (selecting both would load rows twice).
pub(super) async fn selected_tables(
    client: &Client,
    mappings: &TableMappings,
    lobs: Lobs,
    types: PgTypes,
) -> Result<Vec<PgTable>> {
    let rels = client
        .query(
            "SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.reltuples::float8,
                    has_table_privilege(c.oid, 'SELECT')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
             ORDER BY n.nspname, c.relname",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "reading the catalog"))?;
    let mut picked: BTreeMap<u32, PgTable> = BTreeMap::new();
    for r in rels {
        let oid: u32 = r.get(0);
        let schema: String = r.get(1);
        let table: String = r.get(2);
        let relkind: String = r.get(3);
        let kind = if matches!(relkind.as_str(), "v" | "m") {
            RelationKind::View
        } else {
            RelationKind::Table
        };
        if !mappings.selects(&schema, &table, kind) {
            continue;
        }
        let reltuples: f64 = r.get(4);
        picked.insert(
            oid,
            PgTable {
                source: SourceTable {
                    load_order: mappings.load_order(&schema, &table, kind),
                    schema: Arc::new(TableSchema {
                        schema,
                        table,
                        columns: Vec::new(),
                        key: Vec::new(),
                    }),
                    kind,
                    segments: Vec::new(),
                    key_ranges: None,
                    // -1 means "never analyzed" (PostgreSQL 14+).
                    estimated_rows: (reltuples >= 0.0).then_some(reltuples as u64),
                },
                columns: Vec::new(),
                can_select: r.get(5),
                filter: String::new(),
                oid,
            },
        );
    }
    let oids: Vec<u32> = picked.keys().copied().collect();
    let cols = client
        .query(
            "SELECT a.attrelid, a.attname,
                    coalesce(bt.typname, t.typname)::text, coalesce(bt.typtype, t.typtype)::text,
                    coalesce(bt.typcategory, t.typcategory)::text,
                    CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
                    format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading column definitions"))?;
    for r in cols {
        let oid: u32 = r.get(0);
        let name: String = r.get(1);
        let typname: String = r.get(2);
        let typtype: String = r.get(3);
        let category: String = r.get(4);
        let typmod: i32 = r.get(5);
        let source_type: String = r.get(6);
        let ident = quote_ident(&name);
        let (dms_type, select) = map_type(&typname, &typtype, &category, typmod, types, &ident);
        if let Some(t) = picked.get_mut(&oid) {
            let s = &t.source.schema;
            if dms_type.is_lob() && !mappings.lobs(&s.schema, &s.table, lobs).support {
                continue;
            }
            t.columns.push(PgColumn {
                column: Column {
                    name,
                    dms_type,
                    source_type,
                },
                select,
            });
        }
    }
    let keys = key_columns(client, &oids).await?;
    let mut tables: Vec<PgTable> = picked
        .into_iter()
        .filter(|(_, t)| {
            if t.columns.is_empty() {
                tracing::warn!(table = %t.source.schema.qualified(), "skipped: no columns to write");
            }
            !t.columns.is_empty()
        })
        .map(|(oid, mut t)| {
            t.oid = oid;
            let schema = Arc::new(TableSchema {
                schema: t.source.schema.schema.clone(),
                table: t.source.schema.table.clone(),
                columns: t.columns.iter().map(|c| c.column.clone()).collect(),
                key: key_indexes(keys.get(&oid), &t.columns),
            });
            let map = mappings.table_map(&schema)?;
            t.filter = map.where_clause(Dialect::Postgres, &quote_ident);
            t.source.schema = schema;
            Ok(t)
        })
        .collect::<Result<_>>()?;
    for t in &mut tables {
        let s = t.source.schema.clone();
        if let Some((load, id)) = mappings.parallel_load(&s.schema, &s.table) {
            let parts = match load.wants_partitions() {
                true => partitions(client, t.oid, load).await?,
                false => Vec::new(),
            };
            t.source.segments =
                segments::segments(load, id, &s, &parts, Dialect::Postgres, &quote_ident)?;
            t.source.key_ranges = segments::rule_key_ranges(load, &s, &t.source.segments);
        }
    }
    // Higher load-order first (DMS), then larger tables first so the longest load starts early.
    tables.sort_by(|a, b| {
        b.source
            .load_order
            .cmp(&a.source.load_order)
            .then(b.source.estimated_rows.cmp(&a.source.estimated_rows))
    });
    Ok(tables)
}

/// The partitions of relation `oid` a `parallel-load` rule of type `load` reads: its direct
/// partitions (`partitions-auto`), its leaf partitions (`subpartitions-auto`), or every
/// partition below it (a list), each named by its relation name and read by its qualified name.
async fn partitions(client: &Client, oid: u32, load: &ParallelLoad) -> Result<Vec<Partition>> {
    let level = match load {
        ParallelLoad::PartitionsAuto => "t.level = 1",
        ParallelLoad::SubpartitionsAuto => "t.isleaf AND t.level > 0",
        _ => "t.level > 0",
    };
    let rows = client
        .query(
            &format!(
                "SELECT c.relname, n.nspname
                 FROM pg_partition_tree($1::oid) t JOIN pg_class c ON c.oid = t.relid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE {level} ORDER BY t.level, c.relname"
            ),
            &[&oid],
        )
        .await
        .map_err(|e| pg_error(e, "reading partitions"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (name, ns): (String, String) = (r.get(0), r.get(1));
            let read = format!("{}.{}", quote_ident(&ns), quote_ident(&name));
            (name, read)
        })
        .collect())
}

/// The key columns (see [`TableSchema::key`]) of each relation in `oids`: those of the replica
/// identity index (the primary key by default), or of the primary key under REPLICA IDENTITY
/// FULL — the columns pgoutput flags as the key, except that FULL flags every column.
pub(super) async fn key_columns(
    client: &Client,
    oids: &[u32],
) -> Result<std::collections::HashMap<u32, Vec<String>>> {
    let rows = client
        .query(
            "SELECT c.oid, a.attname
             FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
             WHERE c.oid = ANY($1) AND CASE c.relreplident WHEN 'i' THEN i.indisreplident
                                                        WHEN 'n' THEN false
                                                        ELSE i.indisprimary END",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading key columns"))?;
    let mut keys: std::collections::HashMap<u32, Vec<String>> = Default::default();
    for r in rows {
        keys.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(keys)
}

/// Indexes (ascending) of the columns named in `key` among `columns`.
fn key_indexes(key: Option<&Vec<String>>, columns: &[PgColumn]) -> Vec<usize> {
    let Some(key) = key else {
        return Vec::new();
    };
    columns
        .iter()
        .enumerate()
        .filter(|(_, c)| key.contains(&c.column.name))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `MapUnboundedNumericAsString` on.
    fn numeric_text() -> PgTypes {
        PgTypes {
            numeric_as_string: true,
            ..PgTypes::default()
        }
    }

    fn numeric(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7FF)) + 4
    }

    #[test]
    fn booleans_are_strings_unless_mapped_as_booleans() {
        let (t, select) = map_type("bool", "b", "B", -1, PgTypes::default(), "\"b\"");
        assert_eq!(t, DmsType::String { lob: false });
        assert_eq!(select, "\"b\"::text");
        let as_bool = PgTypes {
            boolean_as_boolean: true,
            ..PgTypes::default()
        };
        assert_eq!(
            map_type("bool", "b", "B", -1, as_bool, "x").0,
            DmsType::Boolean
        );
        let keep = PgTypes {
            trim_char: false,
            long_varchar_as_lob: true,
            ..PgTypes::default()
        };
        assert_eq!(
            map_type("bpchar", "b", "S", 9, keep, "c"),
            (DmsType::String { lob: false }, "c".into())
        );
        assert_eq!(
            map_type("varchar", "b", "S", -1, keep, "v").0,
            DmsType::String { lob: true }
        );
        assert_eq!(
            map_type("varchar", "b", "S", 14, keep, "v").0,
            DmsType::String { lob: false }
        );
    }

    #[test]
    fn type_map() {
        assert_eq!(
            map_type("numeric", "b", "N", numeric(11, 0), PgTypes::default(), "x").0,
            DmsType::Numeric {
                precision: 11,
                scale: 0
            }
        );
        assert_eq!(
            map_type("numeric", "b", "N", -1, PgTypes::default(), "x").0,
            DmsType::Numeric {
                precision: 28,
                scale: 6
            }
        );
        assert_eq!(
            map_type("numeric", "b", "N", numeric(40, 2), PgTypes::default(), "x").0,
            DmsType::String { lob: false }
        );
        assert_eq!(
            map_type("numeric", "b", "N", numeric(5, -2), PgTypes::default(), "x").0,
            DmsType::String { lob: false }
        );
        // MapUnboundedNumericAsString: unbounded numeric only.
        assert_eq!(
            map_type("numeric", "b", "N", -1, numeric_text(), "x").0,
            DmsType::String { lob: false }
        );
        assert_eq!(
            map_type("numeric", "b", "N", numeric(11, 2), numeric_text(), "x").0,
            DmsType::Numeric {
                precision: 11,
                scale: 2
            }
        );
        assert_eq!(
            map_type("money", "b", "N", -1, PgTypes::default(), "\"m\"").1,
            "\"m\"::numeric"
        );
        assert_eq!(
            map_type("_int4", "b", "A", -1, PgTypes::default(), "x").0,
            DmsType::String { lob: true }
        );
        assert_eq!(
            map_type("mood", "e", "E", -1, PgTypes::default(), "x").0,
            DmsType::String { lob: false }
        );
        assert_eq!(
            map_type("bytea", "b", "U", -1, PgTypes::default(), "x").0,
            DmsType::Bytes { lob: true }
        );
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
