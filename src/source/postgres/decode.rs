//! pgoutput messages → rows in the canonical text form: relation (table shape) tracking, the
//! per-type normalisation that makes CDC values match full-load values, and what an UPDATE's
//! unchanged, unsent TOASTed value becomes (`UnchangedToastValues`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::catalog::{self, quote_ident, Normalize, TypeInfo};
use super::pgoutput::{Relation, Tuple, Value};
use super::{pg_error, Helper};
use crate::change::{Column, RowBatch, TableSchema};
use crate::config::source::{PgTypes, UnchangedToast};
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::{Lobs, RelationKind, TableMappings};
use crate::source::lob_cut_len;

/// How one output column is filled from a pgoutput tuple.
#[derive(Debug, Clone)]
struct ColumnMap {
    /// Index in the relation's (and tuple's) columns.
    src: usize,
    norm: Normalize,
    /// LobMaxSize cut: (max bytes, is bytea).
    lob_cut: Option<(usize, bool)>,
    /// `format_type` of the column's type (casts in key lookups).
    type_name: String,
}

/// A relation as the stream last described it.
#[derive(Debug)]
pub(super) struct Rel {
    /// `schema.table`.
    pub(crate) key: String,
    /// Output shape.
    pub(crate) schema: Arc<TableSchema>,
    /// Whether the table mappings select it.
    pub(crate) selected: bool,
    cols: Vec<ColumnMap>,
    /// Replica-identity key columns: (relation column index, name, type), for lookups.
    key_cols: Vec<(usize, String, String)>,
    /// Relation column indexes of the row's key as the mappings define it: an UPDATE that
    /// changes one of them moved the row.
    moved_key: Vec<usize>,
    /// Relation column names, by index.
    names: Vec<String>,
    /// Why this selected relation's rows cannot be decoded (its shape could not be read or
    /// mapped): each of its changes is reported to the sink as a table error, until the next
    /// Relation message describes it again.
    pub(crate) failed: Option<Error>,
}

/// What the decoder needs from the task: selection, LOB settings and the unchanged-TOAST policy.
#[derive(Debug, Clone)]
pub(super) struct RowOptions {
    /// Table selection.
    pub(crate) mappings: TableMappings,
    /// The task-wide LOB settings (`SupportLobs`, `LobMaxSize`), refined per table by the
    /// mapping's lob-settings rules.
    pub(crate) lobs: Lobs,
    /// What an unchanged, unsent TOASTed value becomes.
    pub(crate) unchanged: UnchangedToast,
    /// The endpoint settings that shape values.
    pub(crate) types: PgTypes,
}

/// Values read back by key for an UPDATE's unchanged TOASTed columns (lookup policy): by
/// relation column index, None for SQL NULL; an empty list when the row is gone.
pub(super) type Looked = Vec<(usize, Option<Vec<u8>>)>;

/// Tracks relations by OID and turns tuples into rows.
pub(super) struct Relations {
    opts: RowOptions,
    rels: HashMap<u32, Rel>,
    types: BTreeMap<u32, TypeInfo>,
}

impl Relations {
    /// An empty relation cache.
    pub(super) fn new(opts: RowOptions) -> Relations {
        Relations {
            opts,
            rels: HashMap::new(),
            types: BTreeMap::new(),
        }
    }

    /// The relation with `oid`, as last described.
    pub(super) fn get(&self, oid: u32) -> Option<&Rel> {
        self.rels.get(&oid)
    }

    /// The unchanged-TOAST policy.
    pub(super) fn unchanged(&self) -> &UnchangedToast {
        &self.opts.unchanged
    }

    /// Records a Relation message (reading unknown column types through `helper`) and returns
    /// the relation's state. An error that concerns this table alone (a type that cannot be
    /// read, a shape the table mappings cannot map) is recorded in the relation
    /// ([`Rel::failed`]) instead of ending the stream; a lost connection or a bug is returned.
    pub(super) async fn update(&mut self, r: &Relation, helper: &mut Helper) -> Result<&Rel> {
        match self.describe(r, helper).await {
            Ok(rel) => {
                self.rels.insert(r.oid, rel);
            }
            Err(e) if e.retryable() || e.kind == ErrorKind::Internal => return Err(e),
            Err(e) => {
                let rel = Rel {
                    key: format!("{}.{}", r.namespace, r.name),
                    schema: Arc::new(TableSchema {
                        schema: r.namespace.clone(),
                        table: r.name.clone(),
                        columns: Vec::new(),
                        key: Vec::new(),
                    }),
                    selected: true,
                    cols: Vec::new(),
                    key_cols: Vec::new(),
                    moved_key: Vec::new(),
                    names: r.columns.iter().map(|c| c.name.clone()).collect(),
                    failed: Some(e),
                };
                self.rels.insert(r.oid, rel);
            }
        }
        Ok(&self.rels[&r.oid])
    }

    /// The relation a Relation message describes, with its output shape.
    async fn describe(&mut self, r: &Relation, helper: &mut Helper) -> Result<Rel> {
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
            // A helper connection lost since its last use is opened again once.
            let mut again = true;
            let found = loop {
                match catalog::lookup_types(helper.client().await?, &missing).await {
                    Ok(found) => break found,
                    Err(e) if helper.reset_if_lost(&e) && std::mem::take(&mut again) => {}
                    Err(e) => return Err(e),
                }
            };
            self.types.extend(found);
        }
        let mut columns = Vec::new();
        let mut cols = Vec::new();
        let mut key_cols = Vec::new();
        let mut key = Vec::new();
        let full = r.replica_identity == b'f';
        if selected {
            let lobs = self
                .opts
                .mappings
                .lobs(&r.namespace, &r.name, self.opts.lobs);
            for (i, c) in r.columns.iter().enumerate() {
                let t = self.types.get(&c.type_oid).ok_or_else(|| {
                    Error::new(
                        ErrorKind::SourceSchema,
                        format!(
                            "column {} has type OID {}, which the catalog no longer has (dropped since this change was written)",
                            c.name, c.type_oid
                        ),
                        "the table is reloaded from a fresh snapshot by the next run",
                    )
                })?;
                if c.key {
                    key_cols.push((i, c.name.clone(), t.display.clone()));
                }
                let dms_type = catalog::dms_type_of(t, c.type_modifier, self.opts.types);
                if dms_type.is_lob() && !lobs.support {
                    continue;
                }
                if c.key && !full {
                    key.push(columns.len());
                }
                cols.push(ColumnMap {
                    src: i,
                    norm: Normalize::for_type(&t.typname, self.opts.types),
                    lob_cut: crate::source::lob_limit(lobs.max_bytes, dms_type),
                    type_name: t.display.clone(),
                });
                columns.push(Column {
                    name: c.name.clone(),
                    dms_type,
                    source_type: t.display.clone(),
                });
            }
        }
        if selected && full {
            // FULL flags every column as the key; the row's key is the primary key's.
            let mut again = true;
            let pk = loop {
                match catalog::key_columns(helper.client().await?, &[r.oid]).await {
                    Ok(mut found) => break found.remove(&r.oid).unwrap_or_default(),
                    Err(e) if helper.reset_if_lost(&e) && std::mem::take(&mut again) => {}
                    Err(e) => return Err(e),
                }
            };
            key = (0..columns.len())
                .filter(|&i| pk.contains(&columns[i].name))
                .collect();
        }
        let schema = Arc::new(TableSchema {
            schema: r.namespace.clone(),
            table: r.name.clone(),
            columns,
            key,
        });
        let mut moved_key = Vec::new();
        if selected {
            let map = self.opts.mappings.table_map(&schema)?;
            moved_key = map.key().iter().map(|&k| cols[k].src).collect();
            if !full {
                let unsent: Vec<&str> = map
                    .key()
                    .iter()
                    .chain(map.before_columns())
                    .filter(|&&k| !r.columns[cols[k].src].key)
                    .map(|&k| schema.columns[k].name.as_str())
                    .collect();
                if !unsent.is_empty() {
                    return Err(needs_full_identity(&schema.qualified(), &unsent));
                }
            }
        }
        Ok(Rel {
            key: format!("{}.{}", r.namespace, r.name),
            schema,
            selected,
            cols,
            key_cols,
            moved_key,
            names: r.columns.iter().map(|c| c.name.clone()).collect(),
            failed: None,
        })
    }

    /// Relation columns of an UPDATE's new row that are unchanged TOASTed values `old` does not
    /// carry (empty in the usual case).
    pub(super) fn missing(
        &self,
        rel: &Rel,
        new: &Tuple<'_>,
        old: Option<&Tuple<'_>>,
    ) -> Vec<usize> {
        rel.cols
            .iter()
            .map(|c| c.src)
            .filter(|&i| {
                new.values.get(i) == Some(&Value::Unchanged)
                    && !matches!(
                        old.and_then(|o| o.values.get(i)),
                        Some(Value::Text(_) | Value::Null)
                    )
            })
            .collect()
    }

    /// Reads columns `cols` of `rel`'s row with the key `new` carries, as they are now (lookup
    /// policy). An empty result means the row is gone (or its key was not sent).
    pub(super) async fn lookup(
        &self,
        helper: &mut Helper,
        rel: &Rel,
        new: &Tuple<'_>,
        cols: &[usize],
    ) -> Result<Looked> {
        let mut keys = Vec::new();
        for (i, name, type_name) in &rel.key_cols {
            match new.values.get(*i) {
                Some(Value::Text(v)) => {
                    keys.push((name, type_name, String::from_utf8_lossy(v).into_owned()))
                }
                _ => return Ok(Vec::new()),
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let select: Vec<String> = cols
            .iter()
            .map(|&i| format!("{}::text", quote_ident(&rel.names[i])))
            .collect();
        let filter: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(n, (name, ty, _))| {
                format!("{} = CAST(${}::text AS {ty})", quote_ident(name), n + 1)
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {}.{} WHERE {}",
            select.join(", "),
            quote_ident(&rel.schema.schema),
            quote_ident(&rel.schema.table),
            filter.join(" AND ")
        );
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = keys
            .iter()
            .map(|(_, _, v)| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let mut again = true;
        let row = loop {
            match helper.client().await?.query_opt(&sql, &params).await {
                Ok(row) => break row,
                Err(e) => {
                    let e = pg_error(e, &format!("reading unchanged values of {}", rel.key));
                    if !(helper.reset_if_lost(&e) && std::mem::take(&mut again)) {
                        return Err(e);
                    }
                }
            }
        };
        Ok(row.map_or_else(Vec::new, |row| {
            cols.iter()
                .enumerate()
                .map(|(n, &i)| (i, row.get::<_, Option<String>>(n).map(String::into_bytes)))
                .collect()
        }))
    }

    /// Pushes the output cells of one row into `out` (the caller ends the row) and returns how
    /// many were written as the unchanged-value marker. `old` is the old tuple of an UPDATE
    /// (REPLICA IDENTITY FULL), `looked` the values read back by key (lookup policy).
    pub(super) fn push_row(
        &self,
        rel: &Rel,
        new: &Tuple<'_>,
        old: Option<&Tuple<'_>>,
        looked: &Looked,
        out: &mut RowBatch,
    ) -> Result<u64> {
        let mut markers = 0;
        for (out_col, c) in rel.cols.iter().enumerate() {
            let mut value = new.values.get(c.src).copied().unwrap_or(Value::Null);
            if value == Value::Unchanged {
                value = old
                    .and_then(|o| o.values.get(c.src).copied())
                    .unwrap_or(Value::Unchanged);
            }
            if value == Value::Unchanged {
                if let Some((_, v)) = looked.iter().find(|(i, _)| *i == c.src) {
                    value = v.as_deref().map_or(Value::Null, Value::Text);
                }
            }
            match value {
                Value::Null => out.push_null(),
                Value::Text(bytes) => push_text(c, bytes, out),
                Value::Unchanged => {
                    out.push_cell(self.marker(rel, out_col, &c.type_name)?.as_bytes());
                    markers += 1;
                }
                Value::Binary(_) => {
                    return Err(Error::internal(
                        "pgoutput sent a binary value (binary mode is off)",
                    ))
                }
            }
        }
        Ok(markers)
    }

    /// The marker for column `out_col` of `rel`, or the error the `fail` policy stops with.
    fn marker(&self, rel: &Rel, out_col: usize, type_name: &str) -> Result<&str> {
        let col = &rel.schema.columns[out_col];
        let textual = matches!(
            col.dms_type,
            crate::change::DmsType::String { .. } | crate::change::DmsType::Bytes { .. }
        );
        match &self.opts.unchanged {
            UnchangedToast::Marker(m) | UnchangedToast::Lookup(m) if textual => Ok(m),
            // One value the server did not send: a data error (`DataErrorPolicy`).
            policy => Err(Error::new(
                ErrorKind::Data,
                format!(
                    "an UPDATE of {} left the large (TOASTed) column {} ({type_name}) unchanged, and PostgreSQL did not send its value (the table's REPLICA IDENTITY is not FULL){}",
                    rel.key,
                    col.name,
                    if matches!(policy, UnchangedToast::Fail) { "" } else { "; a marker cannot be written into this column's type" }
                ),
                format!(
                    "run ALTER TABLE {} REPLICA IDENTITY FULL so updates carry whole rows{}",
                    rel.key,
                    if matches!(policy, UnchangedToast::Fail) {
                        ", or set [source.settings] UnchangedToastValues = \"marker\" to write a marker for such values"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }

    /// Pushes a DELETE's before-image: the key columns (or the whole row with REPLICA IDENTITY
    /// FULL); columns the server did not send are NULL, as DMS writes them.
    pub(super) fn push_before_image(
        &self,
        rel: &Rel,
        old: &Tuple<'_>,
        out: &mut RowBatch,
    ) -> Result<u64> {
        for c in &rel.cols {
            match old.values.get(c.src).copied().unwrap_or(Value::Null) {
                Value::Text(bytes) => push_text(c, bytes, out),
                _ => out.push_null(),
            }
        }
        Ok(0)
    }

    /// Pushes an UPDATE's before-image: the old tuple the server sent (the whole row under
    /// REPLICA IDENTITY FULL, the identity columns when they changed), else the identity
    /// columns of `new` (unchanged, so the same) and NULL for the others — which the mappings
    /// never read (see [`needs_full_identity`]).
    pub(super) fn push_update_before(
        &self,
        rel: &Rel,
        old: Option<&Tuple<'_>>,
        new: &Tuple<'_>,
        out: &mut RowBatch,
    ) -> Result<u64> {
        if let Some(old) = old {
            return self.push_before_image(rel, old, out);
        }
        for c in &rel.cols {
            let identity = rel.key_cols.iter().any(|(i, ..)| *i == c.src);
            match new.values.get(c.src).copied() {
                Some(Value::Text(bytes)) if identity => push_text(c, bytes, out),
                _ => out.push_null(),
            }
        }
        Ok(0)
    }

    /// True when an UPDATE moved its row: a key column (as the mappings define the key)
    /// differs between the old tuple the server sent and `new`. Without an old tuple the
    /// identity columns, which hold the key, did not change.
    pub(super) fn moved(&self, rel: &Rel, old: Option<&Tuple<'_>>, new: &Tuple<'_>) -> bool {
        let Some(old) = old else {
            return false;
        };
        rel.moved_key.iter().any(|&i| {
            let after = new.values.get(i);
            after != Some(&Value::Unchanged) && old.values.get(i) != after
        })
    }
}

/// Appends the text value `bytes` of column `c` in canonical form, cut to the LOB limit.
fn push_text(c: &ColumnMap, bytes: &[u8], out: &mut RowBatch) {
    normalize(c.norm, bytes, out.cell_buf());
    out.end_cell();
    if let Some((max, is_bytes)) = c.lob_cut {
        if let Some(len) = lob_cut_len(out.last_cell(), max, is_bytes) {
            out.truncate_last_cell(len);
        }
    }
}

/// The error for a table whose mapping rules need before-images of `columns` that PostgreSQL
/// sends only under REPLICA IDENTITY FULL.
pub(super) fn needs_full_identity(table: &str, columns: &[&str]) -> Error {
    Error::config(
        format!(
            "the table mappings need the before-image of {} of {table} (define-primary-key or add-before-image-columns), which PostgreSQL sends only under REPLICA IDENTITY FULL",
            columns.join(", ")
        ),
        format!("ALTER TABLE {table} REPLICA IDENTITY FULL, or change the rules to the table's replica identity columns"),
    )
}

/// Appends `v` in canonical form.
fn normalize(n: Normalize, v: &[u8], out: &mut Vec<u8>) {
    match n {
        Normalize::None => out.extend_from_slice(v),
        Normalize::BoolText => out.extend_from_slice(match v {
            b"t" => b"true",
            b"f" => b"false",
            other => other,
        }),
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
        assert_eq!(norm(Normalize::BoolText, "t"), "true");
        assert_eq!(norm(Normalize::BoolText, "f"), "false");
    }
}
