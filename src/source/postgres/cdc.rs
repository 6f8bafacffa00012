//! pgoutput messages → rows in the canonical text form: relation (table shape) tracking, the
//! per-type normalisation that makes CDC values match full-load values, and unchanged-TOAST
//! resolution.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio_postgres::Client;

use super::catalog::{self, Normalize, TypeInfo};
use super::pgoutput::{Relation, Tuple, Value};
use crate::change::{Column, DmsType, RowBatch, TableSchema};
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::{RelationKind, TableMappings};
use crate::source::lob_cut_len;

/// How one output column is filled from a pgoutput tuple.
#[derive(Debug, Clone)]
struct ColumnMap {
    /// Index in the relation's (and tuple's) columns.
    src: usize,
    norm: Normalize,
    /// LobMaxSize cut: (max bytes, is bytea).
    lob_cut: Option<(usize, bool)>,
}

/// A relation as the stream last described it.
#[derive(Debug, Clone)]
pub struct Rel {
    /// `schema.table`.
    pub key: String,
    /// Output shape.
    pub schema: Arc<TableSchema>,
    /// Whether the table mappings select it.
    pub selected: bool,
    /// REPLICA IDENTITY FULL: updates carry the whole old row.
    pub identity_full: bool,
    cols: Vec<ColumnMap>,
}

/// What the decoder needs from the task: selection, LOB and unchanged-TOAST settings.
#[derive(Debug, Clone)]
pub struct RowOptions {
    /// Table selection.
    pub mappings: TableMappings,
    /// `SupportLobs`: false drops LOB columns.
    pub support_lobs: bool,
    /// LobMaxSize in bytes.
    pub lob_max_bytes: Option<usize>,
    /// `CsvNoSupValue` when `UseCsvNoSupValue` is on: written for unchanged TOASTed values that
    /// cannot be recovered.
    pub no_sup_value: Option<String>,
}

/// Tracks relations by OID and turns tuples into rows.
pub struct Relations {
    client: Client,
    opts: RowOptions,
    rels: HashMap<u32, Rel>,
    types: BTreeMap<u32, TypeInfo>,
}

impl Relations {
    /// `client` is an ordinary connection used to look up column types.
    pub fn new(client: Client, opts: RowOptions) -> Relations {
        Relations {
            client,
            opts,
            rels: HashMap::new(),
            types: BTreeMap::new(),
        }
    }

    /// The relation with `oid`, as last described.
    pub fn get(&self, oid: u32) -> Option<&Rel> {
        self.rels.get(&oid)
    }

    /// Records a Relation message and returns the relation's state.
    pub async fn update(&mut self, r: &Relation) -> Result<&Rel> {
        let selected = self
            .opts
            .mappings
            .selects(&r.namespace, &r.name, RelationKind::Table);
        let missing: Vec<u32> = r
            .columns
            .iter()
            .map(|c| c.type_oid)
            .filter(|o| !self.types.contains_key(o))
            .collect();
        if selected && !missing.is_empty() {
            let found = catalog::lookup_types(&self.client, &missing).await?;
            self.types.extend(found);
        }
        let mut columns = Vec::new();
        let mut cols = Vec::new();
        if selected {
            for (i, c) in r.columns.iter().enumerate() {
                let t = self.types.get(&c.type_oid).ok_or_else(|| {
                    Error::internal(format!(
                        "type {} of {}.{} not found",
                        c.type_oid, r.name, c.name
                    ))
                })?;
                let dms_type = catalog::dms_type_of(t, c.type_modifier);
                if dms_type.is_lob() && !self.opts.support_lobs {
                    continue;
                }
                cols.push(ColumnMap {
                    src: i,
                    norm: Normalize::for_type(&t.typname),
                    lob_cut: self
                        .opts
                        .lob_max_bytes
                        .filter(|_| dms_type.is_lob())
                        .map(|m| (m, matches!(dms_type, DmsType::Bytes { .. }))),
                });
                columns.push(Column {
                    name: c.name.clone(),
                    dms_type,
                    source_type: t.display.clone(),
                });
            }
        }
        let rel = Rel {
            key: format!("{}.{}", r.namespace, r.name),
            schema: Arc::new(TableSchema {
                schema: r.namespace.clone(),
                table: r.name.clone(),
                columns,
            }),
            selected,
            identity_full: r.replica_identity == b'f',
            cols,
        };
        self.rels.insert(r.oid, rel);
        Ok(&self.rels[&r.oid])
    }

    /// Pushes the output cells of one row into `out` (the caller ends the row). `old` is the
    /// old tuple of an UPDATE, used for values pgoutput leaves out (unchanged TOAST).
    pub fn push_row(
        &self,
        rel: &Rel,
        new: &Tuple<'_>,
        old: Option<&Tuple<'_>>,
        out: &mut RowBatch,
    ) -> Result<()> {
        for (out_col, c) in rel.cols.iter().enumerate() {
            let mut value = new.values.get(c.src).copied().unwrap_or(Value::Null);
            if value == Value::Unchanged {
                value = old
                    .and_then(|o| o.values.get(c.src).copied())
                    .unwrap_or(Value::Unchanged);
            }
            match value {
                Value::Null => out.push_null(),
                Value::Text(bytes) => {
                    normalize(c.norm, bytes, out.cell_buf());
                    out.end_cell();
                    if let Some((max, is_bytes)) = c.lob_cut {
                        if let Some(len) = lob_cut_len(out.last_cell(), max, is_bytes) {
                            out.truncate_last_cell(len);
                        }
                    }
                }
                Value::Unchanged => match &self.opts.no_sup_value {
                    Some(v) => out.push_cell(v.as_bytes()),
                    None => {
                        let col = &rel.schema.columns[out_col].name;
                        return Err(Error::new(
                            ErrorKind::Source,
                            format!(
                                "an UPDATE of {} left the large (TOASTed) column {col} unchanged, and PostgreSQL did not send its value (the table's REPLICA IDENTITY is not FULL)",
                                rel.key
                            ),
                            format!(
                                "run ALTER TABLE {} REPLICA IDENTITY FULL so updates carry whole rows, and set UseCsvNoSupValue=true (with CsvNoSupValue) to write a placeholder for changes already in the WAL",
                                rel.key
                            ),
                        ));
                    }
                },
                Value::Binary(_) => {
                    return Err(Error::internal(
                        "pgoutput sent a binary value (binary mode is off)",
                    ))
                }
            }
        }
        Ok(())
    }

    /// Pushes a DELETE's before-image: the key columns (or the whole row with REPLICA IDENTITY
    /// FULL); columns the server did not send are NULL, as DMS writes them.
    pub fn push_before_image(&self, rel: &Rel, old: &Tuple<'_>, out: &mut RowBatch) -> Result<()> {
        for c in &rel.cols {
            match old.values.get(c.src).copied().unwrap_or(Value::Null) {
                Value::Text(bytes) => {
                    normalize(c.norm, bytes, out.cell_buf());
                    out.end_cell();
                }
                _ => out.push_null(),
            }
        }
        Ok(())
    }
}

/// Appends `v` in canonical form.
fn normalize(n: Normalize, v: &[u8], out: &mut Vec<u8>) {
    match n {
        Normalize::None => out.extend_from_slice(v),
        Normalize::Bpchar => {
            let end = v.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
            out.extend_from_slice(&v[..end]);
        }
        Normalize::Money => out.extend(v.iter().filter(|&&b| b != b'$' && b != b',')),
        Normalize::TimetzUtc => match timetz_to_utc(v) {
            Some(s) => out.extend_from_slice(s.as_bytes()),
            None => out.extend_from_slice(v),
        },
    }
}

/// `HH:MM:SS[.ffffff]±HH[:MM[:SS]]` → the same instant's UTC time of day, as
/// `(v AT TIME ZONE 'UTC')::time` renders it.
fn timetz_to_utc(v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    let sign_at = s.rfind(['+', '-'])?;
    let (time, zone) = s.split_at(sign_at);
    let (clock, frac) = match time.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (time, None),
    };
    let hms: Vec<i64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let zparts: Vec<i64> = zone[1..]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let offset = zparts
        .iter()
        .zip([3600, 60, 1])
        .map(|(v, m)| v * m)
        .sum::<i64>()
        * sign;
    let secs = (h * 3600 + m * 60 + sec - offset).rem_euclid(86_400);
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(n: Normalize, v: &str) -> String {
        let mut out = Vec::new();
        normalize(n, v.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn normalizers_match_the_full_load_casts() {
        assert_eq!(norm(Normalize::Money, "-$1,234.56"), "-1234.56");
        assert_eq!(norm(Normalize::Money, "$0.00"), "0.00");
        assert_eq!(norm(Normalize::Bpchar, "ab  "), "ab");
        assert_eq!(norm(Normalize::Bpchar, "   "), "");
        assert_eq!(norm(Normalize::TimetzUtc, "10:30:00+02"), "08:30:00");
        assert_eq!(
            norm(Normalize::TimetzUtc, "23:30:00.25-01:30"),
            "01:00:00.25"
        );
        assert_eq!(norm(Normalize::TimetzUtc, "00:10:00+05:30"), "18:40:00");
        assert_eq!(norm(Normalize::None, "x"), "x");
    }
}
