//! `table-settings` rules with `parallel-load`: a table's full load split into segments that
//! are read concurrently from the one snapshot, each written and resumed on its own.
//!
//! Types as DMS documents them: `partitions-auto` (one segment per source partition),
//! `subpartitions-auto` (per leaf partition), `partitions-list` (the listed partitions),
//! `ranges` (column tuples cut at `boundaries`: N boundaries make N+1 segments) and `none`.
//! Where segment files go (reference §2.3): partitions and named ranges write sub-folders
//! `<table>/<name>/LOAD…`, unnamed ranges `<table>/SEGMENT<n>_LOAD…`, each counting from 1.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::filter::{self, Dialect};
use super::lobs::Locator;
use super::{fail, name_like};
use crate::change::{DmsType, TableSchema};
use crate::error::{Error, Result};

/// Most `ranges` columns DMS allows.
const MAX_RANGE_COLUMNS: usize = 10;

/// What a `parallel-load` rule asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ParallelLoad {
    /// `none`: the table is one unit (as without a rule).
    None,
    /// `partitions-auto`: one segment per top-level source partition.
    PartitionsAuto,
    /// `subpartitions-auto`: one segment per leaf partition.
    SubpartitionsAuto,
    /// `partitions-list`: the named partitions (and subpartitions).
    PartitionsList(Vec<String>),
    /// `ranges`: tuples of `columns` cut at each boundary.
    Ranges {
        /// Source column names.
        columns: Vec<String>,
        /// Upper bounds (exclusive), one tuple each, ascending.
        boundaries: Vec<Vec<String>>,
        /// `segment-names`: one per segment (boundaries + 1), naming sub-folders.
        names: Option<Vec<String>>,
    },
}

impl ParallelLoad {
    /// True when the segments are the source's partitions (the catalog lists them).
    pub(crate) fn wants_partitions(&self) -> bool {
        matches!(
            self,
            ParallelLoad::PartitionsAuto
                | ParallelLoad::SubpartitionsAuto
                | ParallelLoad::PartitionsList(_)
        )
    }
}

/// Where one segment's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegmentPlace {
    /// A sub-folder of the table's folder (a partition, a named range).
    Folder(String),
    /// `SEGMENT<n>_` before each file name in the table's folder (an unnamed range).
    Numbered(u32),
    /// Automatic chunk `n` (from 1) of a big table without a rule: plain `LOAD%08X` names in the
    /// table's folder, from the chunk's own block of [`CHUNK_COUNTERS`] counters, so chunks
    /// never share a name and each resumes on its own.
    Chunk(u32),
}

/// LOAD counters per automatic chunk: chunk n numbers its files from `(n - 1) * 2^20 + 1`.
pub(crate) const CHUNK_COUNTERS: u64 = 1 << 20;

impl SegmentPlace {
    /// The segment's name in logs and checkpoints: the folder, or `SEGMENT<n>`.
    pub(crate) fn key(&self) -> String {
        match self {
            SegmentPlace::Folder(f) => f.clone(),
            SegmentPlace::Numbered(n) => format!("SEGMENT{n}"),
            SegmentPlace::Chunk(n) => format!("CHUNK{n}"),
        }
    }

    /// The LOAD counters the segment's files may take: from 1 (a chunk: its block).
    pub(crate) fn counters(&self) -> std::ops::RangeInclusive<u64> {
        match self {
            SegmentPlace::Chunk(n) => {
                let base = u64::from(n.saturating_sub(1)) * CHUNK_COUNTERS;
                base + 1..=(base + CHUNK_COUNTERS).min(u64::from(u32::MAX))
            }
            _ => 1..=u64::from(u32::MAX),
        }
    }
}

/// The segments of an automatically chunked table, one per predicate (in the source's
/// dialect), in order.
pub(crate) fn chunks(predicates: &[String]) -> Vec<Segment> {
    predicates
        .iter()
        .enumerate()
        .map(|(i, p)| Segment {
            place: SegmentPlace::Chunk(i as u32 + 1),
            part: SegmentPart::Where(p.clone()),
        })
        .collect()
}

/// What one segment reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegmentPart {
    /// One partition: the SQL relation that reads it (in the source's dialect).
    Partition(String),
    /// The table's rows matching this SQL predicate (in the source's dialect).
    Where(String),
}

/// One unit of a segmented full load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Where its files go.
    pub(crate) place: SegmentPlace,
    /// What it reads.
    pub(crate) part: SegmentPart,
}

/// Segments that are ranges of integer key columns (automatic key chunks, `ranges` rules on
/// integer columns): the segment a row is in follows from its key alone, so the apply loop can
/// tell, for every change, which segment's snapshot it continues. That is what lets a
/// `full-load-and-cdc` resume keep finished segments (see `task::apply::gate`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct KeyRanges {
    /// Source column names, in the order the bounds compare them.
    pub(crate) columns: Vec<String>,
    /// Cut points, ascending: segment k holds the tuples `>= bounds[k-1]` and `< bounds[k]`,
    /// compared lexicographically (as the segments' SQL predicates do).
    pub(crate) bounds: Vec<Vec<i128>>,
    /// The segments' names (`SegmentPlace::key`), in order: `bounds.len() + 1` of them.
    pub(crate) segments: Vec<String>,
}

impl KeyRanges {
    /// The ranges of `segments`, cut at `bounds` over `columns`.
    pub(crate) fn new(columns: Vec<String>, bounds: Vec<Vec<i128>>, segments: &[Segment]) -> Self {
        KeyRanges {
            columns,
            bounds,
            segments: segments.iter().map(|s| s.place.key()).collect(),
        }
    }

    /// The name of the segment holding the key tuple `key` (values of [`Self::columns`]).
    pub(crate) fn segment_of(&self, key: &[i128]) -> &str {
        let i = self.bounds.partition_point(|b| b.as_slice() <= key);
        &self.segments[i.min(self.segments.len() - 1)]
    }

    /// True when a row cannot leave its segment without changing `key` (column names): a
    /// change of the key is a `D` of the old row and an `I`/`U` of the new one, each in its
    /// own segment.
    pub(crate) fn within(&self, key: &[&str]) -> bool {
        self.columns.iter().all(|c| key.contains(&c.as_str()))
    }
}

/// The key ranges of a `ranges` rule whose columns are all integers and whose boundaries are
/// integers (None for any other rule: its segments are not told apart by a change's key).
pub(crate) fn rule_key_ranges(
    load: &ParallelLoad,
    table: &TableSchema,
    segments: &[Segment],
) -> Option<KeyRanges> {
    let ParallelLoad::Ranges {
        columns,
        boundaries,
        ..
    } = load
    else {
        return None;
    };
    let integers = columns.iter().all(|c| {
        table
            .columns
            .iter()
            .any(|x| &x.name == c && x.dms_type.is_whole_number())
    });
    if !integers || segments.len() != boundaries.len() + 1 {
        return None;
    }
    let bounds = boundaries
        .iter()
        .map(|b| b.iter().map(|v| v.trim().parse::<i128>().ok()).collect())
        .collect::<Option<Vec<Vec<i128>>>>()?;
    if bounds.iter().any(|b| b.len() != columns.len()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    Some(KeyRanges::new(columns.clone(), bounds, segments))
}

/// `parallel-load` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    boundaries: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    segment_names: Option<Vec<String>>,
    #[serde(default)]
    partitions: Option<Vec<String>>,
    #[serde(default)]
    subpartitions: Option<Vec<String>>,
}

/// A `table-settings` rule carrying `parallel-load`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "rule-type")]
    _rule_type: IgnoredAny,
    #[serde(rename = "rule-id")]
    _rule_id: IgnoredAny,
    #[serde(rename = "rule-name")]
    _rule_name: IgnoredAny,
    object_locator: Locator,
    parallel_load: Raw,
    /// Parsed by `lobs`.
    #[serde(default, rename = "lob-settings")]
    _lob_settings: Option<IgnoredAny>,
}

/// Every `parallel-load` rule of a mapping, with its rule id.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ParallelRules {
    rules: Vec<(Locator, ParallelLoad, String)>,
}

/// Builds a parallel-load rule; `ctx` names it in errors.
pub(super) fn parse(rules: &mut ParallelRules, raw: &Value, id: &str, ctx: &str) -> Result<()> {
    let fix = format!("correct rule {id}; keys and values are case-sensitive");
    let rule = RawRule::deserialize(raw).or_else(|e| fail(ctx, e, fix))?;
    let loc = rule.object_locator;
    if loc.schema_name.contains('%') || loc.table_name.contains('%') {
        let msg = "table-settings rules name one table: the % wildcard is not allowed (as in DMS)";
        return fail(ctx, msg, "write one rule per table");
    }
    if rules.rules.iter().any(|(l, ..)| *l == loc) {
        return fail(
            ctx,
            "a second parallel-load rule for the same table",
            "keep one rule per table",
        );
    }
    let r = rule.parallel_load;
    let extra = |what: &str, present: bool| -> Result<()> {
        if present {
            return fail(
                ctx,
                format!("{what} does not belong to parallel-load type {:?}", r.kind),
                "remove it",
            );
        }
        Ok(())
    };
    let load = match r.kind.as_str() {
        "none" | "partitions-auto" | "subpartitions-auto" => {
            extra("columns", r.columns.is_some())?;
            extra("boundaries", r.boundaries.is_some())?;
            extra("partitions", r.partitions.is_some())?;
            match r.kind.as_str() {
                "none" => ParallelLoad::None,
                "partitions-auto" => ParallelLoad::PartitionsAuto,
                _ => ParallelLoad::SubpartitionsAuto,
            }
        }
        "partitions-list" => {
            extra("columns", r.columns.is_some())?;
            let mut names = r.partitions.unwrap_or_default();
            names.extend(r.subpartitions.unwrap_or_default());
            if names.is_empty() || names.iter().any(|n| n.is_empty() || n.contains('/')) {
                return fail(
                    ctx,
                    "partitions-list needs partitions: a list of partition names (no '/')",
                    "add \"partitions\": [\"p1\", \"p2\"]",
                );
            }
            ParallelLoad::PartitionsList(names)
        }
        "ranges" => {
            extra("partitions", r.partitions.is_some())?;
            let columns = r.columns.unwrap_or_default();
            if columns.is_empty() || columns.len() > MAX_RANGE_COLUMNS {
                return fail(
                    ctx,
                    format!("ranges needs 1 to {MAX_RANGE_COLUMNS} columns"),
                    "add \"columns\": [\"id\"]",
                );
            }
            let mut boundaries = Vec::new();
            for b in r.boundaries.unwrap_or_default() {
                let values: Option<Vec<String>> = b.iter().map(name_like).collect();
                match values {
                    Some(v) if v.len() == columns.len() => boundaries.push(v),
                    _ => return fail(ctx, format!("each boundary must list {} value(s), one per column, as strings or numbers", columns.len()), "write e.g. \"boundaries\": [[\"1000\"], [\"2000\"]]"),
                }
            }
            if boundaries.is_empty() {
                return fail(
                    ctx,
                    "ranges needs at least one boundary",
                    "add \"boundaries\": [[\"1000\"]]",
                );
            }
            if let Some(names) = &r.segment_names {
                let unique: std::collections::HashSet<&String> = names.iter().collect();
                let bad = names
                    .iter()
                    .any(|n| n.is_empty() || n.contains('/') || n == "." || n == "..");
                if names.len() != boundaries.len() + 1 || unique.len() != names.len() || bad {
                    return fail(ctx, format!("segment-names must give {} distinct folder names (one per segment: boundaries + 1)", boundaries.len() + 1), "fix segment-names, or remove it to name segments SEGMENT1, SEGMENT2, …");
                }
            }
            ParallelLoad::Ranges {
                columns,
                boundaries,
                names: r.segment_names,
            }
        }
        other => {
            return fail(ctx, format!("parallel-load type {other:?} is not one Tributary supports for PostgreSQL and MySQL/MariaDB"), "use partitions-auto, subpartitions-auto, partitions-list, ranges or none");
        }
    };
    rules.rules.push((loc, load, id.to_owned()));
    Ok(())
}

impl ParallelRules {
    /// The rule for `schema.table`, if any, with its rule id.
    pub(crate) fn of(&self, schema: &str, table: &str) -> Option<(&ParallelLoad, &str)> {
        self.rules
            .iter()
            .find(|(l, ..)| l.schema_name == schema && l.table_name == table)
            .map(|(_, p, id)| (p, id.as_str()))
    }

    /// The tables the rules name.
    pub(crate) fn tables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rules
            .iter()
            .map(|(l, ..)| (l.schema_name.as_str(), l.table_name.as_str()))
    }
}

/// A source partition: its name (the folder its files go to) and the SQL that reads it.
pub(crate) type Partition = (String, String);

/// The segments of `table` under `load` (rule `id`). `partitions` are the source's partitions
/// the rule's type asks for (top level for `partitions-auto`, leaves for `subpartitions-auto`,
/// every level for a list), in order; `quote` quotes an identifier in `dialect`. No segments
/// means one unit, as without a rule (also `partitions-auto` on a table without partitions).
pub(crate) fn segments(
    load: &ParallelLoad,
    id: &str,
    table: &TableSchema,
    partitions: &[Partition],
    dialect: Dialect,
    quote: &dyn Fn(&str) -> String,
) -> Result<Vec<Segment>> {
    let ctx = format!(
        "table mapping rule {id} (parallel-load on {})",
        table.qualified()
    );
    let part = |(name, read): &Partition| Segment {
        place: SegmentPlace::Folder(name.clone()),
        part: SegmentPart::Partition(read.clone()),
    };
    match load {
        ParallelLoad::None => Ok(Vec::new()),
        ParallelLoad::PartitionsAuto | ParallelLoad::SubpartitionsAuto => {
            Ok(partitions.iter().map(part).collect())
        }
        ParallelLoad::PartitionsList(names) => {
            let mut out = Vec::new();
            for n in names {
                let Some(p) = partitions.iter().find(|(name, _)| name == n) else {
                    let have: Vec<&str> = partitions.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(Error::config(
                        format!(
                            "{ctx}: {} has no partition {n:?} (it has: {})",
                            table.qualified(),
                            have.join(", ")
                        ),
                        "list the table's partition names (case-sensitive), or use partitions-auto",
                    ));
                };
                out.push(part(p));
            }
            Ok(out)
        }
        ParallelLoad::Ranges {
            columns,
            boundaries,
            names,
        } => {
            let mut cols = Vec::new();
            for c in columns {
                let col = table.columns.iter().find(|x| &x.name == c).ok_or_else(|| {
                    Error::config(
                        format!("{ctx}: no column {c:?}"),
                        "name the table's source columns (case-sensitive)",
                    )
                })?;
                if matches!(col.dms_type, DmsType::Real4 | DmsType::Real8) || col.dms_type.is_lob()
                {
                    return Err(Error::config(
                        format!("{ctx}: column {c:?} is {}; DMS does not segment by floating-point or LOB columns", col.dms_type),
                        "choose key or date columns",
                    ));
                }
                cols.push((quote(c), col.dms_type));
            }
            let mut bounds = Vec::new();
            for b in boundaries {
                let mut tuple = Vec::new();
                for ((_, t), v) in cols.iter().zip(b) {
                    tuple.push(filter::bound_literal(*t, dialect, v).map_err(|m| {
                        Error::config(
                            format!("{ctx}: boundary value {v:?} {m}"),
                            "write each boundary value in the column's type",
                        )
                    })?);
                }
                bounds.push(tuple);
            }
            let names_of = |i: usize| match names {
                Some(n) => SegmentPlace::Folder(n[i].clone()),
                None => SegmentPlace::Numbered(i as u32 + 1),
            };
            let below = |b: &[String]| filter::tuple_below(&cols, b, dialect);
            // With no NULL among them the tuples are totally ordered: each row is in one
            // segment. DMS leaves rows with a NULL segment column out of every segment; the
            // last one takes them, so no row is lost.
            let not_null: Vec<String> = cols
                .iter()
                .map(|(c, _)| format!("{c} IS NOT NULL"))
                .collect();
            let any_null: Vec<String> = cols.iter().map(|(c, _)| format!("{c} IS NULL")).collect();
            let mut out = Vec::new();
            for i in 0..=bounds.len() {
                let mut conds = not_null.clone();
                if i > 0 {
                    conds.push(format!("NOT ({})", below(&bounds[i - 1])));
                }
                if i < bounds.len() {
                    conds.push(format!("({})", below(&bounds[i])));
                } else {
                    conds = vec![format!(
                        "(({}) OR {})",
                        conds.join(" AND "),
                        any_null.join(" OR ")
                    )];
                }
                out.push(Segment {
                    place: names_of(i),
                    part: SegmentPart::Where(conds.join(" AND ")),
                });
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Column;

    fn table(types: &[(&str, DmsType)]) -> TableSchema {
        TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: types
                .iter()
                .map(|(n, t)| Column {
                    name: n.to_string(),
                    dms_type: *t,
                    source_type: String::new(),
                })
                .collect(),
            key: vec![0],
        }
    }

    fn ranges(columns: &[&str], bounds: &[&[&str]]) -> ParallelLoad {
        ParallelLoad::Ranges {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            boundaries: bounds
                .iter()
                .map(|b| b.iter().map(|v| v.to_string()).collect())
                .collect(),
            names: None,
        }
    }

    /// A `ranges` rule on integer columns places a key by the same lexicographic order its
    /// SQL predicates use; other rules cannot be placed by a change's key.
    #[test]
    fn integer_ranges_place_keys_like_their_predicates() {
        let t = table(&[
            ("a", DmsType::Int4),
            (
                "b",
                DmsType::Numeric {
                    precision: 11,
                    scale: 0,
                },
            ),
            ("d", DmsType::Date),
            (
                "f",
                DmsType::Numeric {
                    precision: 11,
                    scale: 2,
                },
            ),
        ]);
        let quote = |c: &str| format!("\"{c}\"");
        let load = ranges(&["a", "b"], &[&["1", "5"], &["2", "0"]]);
        let segs = segments(&load, "1", &t, &[], Dialect::Postgres, &quote).unwrap();
        let keys = rule_key_ranges(&load, &t, &segs).expect("integer ranges");
        assert_eq!(keys.segments, ["SEGMENT1", "SEGMENT2", "SEGMENT3"]);
        assert_eq!(keys.segment_of(&[1, 4]), "SEGMENT1");
        assert_eq!(keys.segment_of(&[1, 5]), "SEGMENT2");
        assert_eq!(keys.segment_of(&[1, 99]), "SEGMENT2");
        assert_eq!(keys.segment_of(&[2, 0]), "SEGMENT3");
        assert_eq!(keys.segment_of(&[-3, 0]), "SEGMENT1");
        assert!(keys.within(&["a", "b", "c"]) && !keys.within(&["a"]));
        let dates = ranges(&["d"], &[&["2024-01-01"]]);
        let segs = segments(&dates, "1", &t, &[], Dialect::Postgres, &quote).unwrap();
        assert!(rule_key_ranges(&dates, &t, &segs).is_none(), "dates");
        let unsorted = ranges(&["a"], &[&["5"], &["1"]]);
        let segs = segments(&unsorted, "1", &t, &[], Dialect::Postgres, &quote).unwrap();
        assert!(
            rule_key_ranges(&unsorted, &t, &segs).is_none(),
            "not ascending"
        );
        let fractions = ranges(&["f"], &[&["5"]]);
        let segs = segments(&fractions, "1", &t, &[], Dialect::Postgres, &quote).unwrap();
        assert!(
            rule_key_ranges(&fractions, &t, &segs).is_none(),
            "numeric(11,2)"
        );
        assert!(rule_key_ranges(&ParallelLoad::PartitionsAuto, &t, &[]).is_none());
    }
}
