//! Source filters of selection rules, compiled once per table into a predicate that the full load
//! pushes into its query and change capture evaluates on each change, with the same semantics:
//!
//! - values compare in the column's type: numbers numerically, dates and times in time order (a
//!   filter value with a UTC offset is converted to UTC; one without is read as UTC, which is the
//!   session time zone of every Tributary source connection), text byte by byte (binary
//!   collation on both sides, whatever the column's collation), booleans `false < true`;
//! - a NULL satisfies only `null` (and not `notnull`): every other operator is false on NULL, as
//!   in SQL;
//! - a filter value is data: it is checked against the column's type here and written into SQL
//!   only as a quoted literal that cannot end early (dollar-quoted in PostgreSQL, hex in MySQL).

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

use super::{Condition, Filter};
use crate::change::{Column, DmsType, Op};

/// How a column's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Integers, NUMERIC and floats.
    Number,
    /// `t`/`f`.
    Boolean,
    /// Canonical dates, times and UTC datetimes (text order is time order once normalised).
    Time,
    /// Text, byte by byte.
    Text,
}

/// One operator with its operand(s), already in the column's canonical form.
#[derive(Debug, Clone)]
enum Test {
    /// `lte`/`ste`, `gte`, `eq`, `noteq`: the ordering(s) of `column.cmp(value)` that pass.
    Compare(Vec<Ordering>, String, Vec<u8>),
    /// `between` (`negated`: `notbetween`), inclusive.
    Between(bool, Vec<u8>, Vec<u8>),
    /// `null` (`negated`: `notnull`).
    Null(bool),
}

/// The conditions of one filter (OR-ed) on one column.
#[derive(Debug, Clone)]
struct Clause {
    column: usize,
    name: String,
    kind: Kind,
    tests: Vec<Test>,
}

/// SQL dialect of the full-load query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    MySql,
}

/// A table's source filters: the AND of its clauses.
#[derive(Debug, Clone)]
pub(crate) struct RowFilter {
    clauses: Vec<Clause>,
}

impl RowFilter {
    /// Compiles `filters` for a table with `columns`; Err names the column or value at fault.
    pub(super) fn compile(filters: &[&Filter], columns: &[Column]) -> Result<RowFilter, String> {
        let mut clauses = Vec::new();
        for f in filters {
            let Some(index) = columns.iter().position(|c| c.name == f.column_name) else {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "filter column {:?} is not a column of the table (it has {})",
                    f.column_name,
                    names.join(", ")
                ));
            };
            let column = &columns[index];
            // DMS refuses LOB columns; text ones are allowed here because PostgreSQL's `text`
            // maps to NCLOB, and its values arrive whole in the load and in CDC.
            let Some(kind) = kind_of(column.dms_type) else {
                return Err(format!(
                    "column {} holds bytes, which filters cannot compare",
                    column.name
                ));
            };
            let value = |v: &str| {
                canonical(column.dms_type, kind, v).map_err(|e| {
                    format!(
                        "column {} ({}): value {v:?} {e}",
                        column.name, column.dms_type
                    )
                })
            };
            let mut tests = Vec::new();
            for c in &f.filter_conditions {
                tests.push(match c {
                    Condition::Lte { value: v } => Test::Compare(
                        vec![Ordering::Less, Ordering::Equal],
                        "<=".into(),
                        value(v)?,
                    ),
                    Condition::Gte { value: v } => Test::Compare(
                        vec![Ordering::Greater, Ordering::Equal],
                        ">=".into(),
                        value(v)?,
                    ),
                    Condition::Eq { value: v } => {
                        Test::Compare(vec![Ordering::Equal], "=".into(), value(v)?)
                    }
                    Condition::NotEq { value: v } => Test::Compare(
                        vec![Ordering::Less, Ordering::Greater],
                        "<>".into(),
                        value(v)?,
                    ),
                    Condition::Between {
                        start_value,
                        end_value,
                    } => Test::Between(false, value(start_value)?, value(end_value)?),
                    Condition::NotBetween {
                        start_value,
                        end_value,
                    } => Test::Between(true, value(start_value)?, value(end_value)?),
                    Condition::Null {} => Test::Null(false),
                    Condition::NotNull {} => Test::Null(true),
                });
            }
            clauses.push(Clause {
                column: index,
                name: column.name.clone(),
                kind,
                tests,
            });
        }
        Ok(RowFilter { clauses })
    }

    /// The WHERE condition for the full-load query; `quote` quotes an identifier.
    pub(crate) fn sql(&self, dialect: Dialect, quote: &dyn Fn(&str) -> String) -> String {
        let clauses: Vec<String> = self
            .clauses
            .iter()
            .map(|c| {
                let col = match (c.kind, dialect) {
                    (Kind::Text, Dialect::Postgres) => {
                        format!("{}::text COLLATE \"C\"", quote(&c.name))
                    }
                    (Kind::Text, Dialect::MySql) => format!("CAST({} AS BINARY)", quote(&c.name)),
                    _ => quote(&c.name),
                };
                let lit = |v: &[u8]| literal(c.kind, dialect, v);
                let tests: Vec<String> = c
                    .tests
                    .iter()
                    .map(|t| match t {
                        Test::Compare(_, op, v) => format!("{col} {op} {}", lit(v)),
                        Test::Between(neg, a, b) => format!(
                            "{col} {}BETWEEN {} AND {}",
                            if *neg { "NOT " } else { "" },
                            lit(a),
                            lit(b)
                        ),
                        Test::Null(neg) => {
                            format!("{col} IS {}NULL", if *neg { "NOT " } else { "" })
                        }
                    })
                    .collect();
                format!("({})", tests.join(" OR "))
            })
            .collect();
        clauses.join(" AND ")
    }

    /// True if a change with cells `cell` (canonical text, None = NULL) passes. A DELETE is
    /// tested only on the values it carries: a filtered column it holds as NULL (a delete that
    /// carries only the key) does not filter it out, so deleted rows are never lost.
    pub(crate) fn keeps<'a>(&self, cell: &dyn Fn(usize) -> Option<&'a [u8]>, op: Op) -> bool {
        self.clauses.iter().all(|c| {
            let v = cell(c.column);
            if v.is_none() && op == Op::Delete {
                return true;
            }
            c.tests.iter().any(|t| c.test(t, v))
        })
    }
}

impl Clause {
    /// One condition on value `v`.
    fn test(&self, t: &Test, v: Option<&[u8]>) -> bool {
        match (t, v) {
            (Test::Null(neg), v) => v.is_none() != *neg,
            (_, None) => false,
            (Test::Compare(pass, _, x), Some(v)) => {
                self.cmp(v, x).is_some_and(|o| pass.contains(&o))
            }
            (Test::Between(neg, a, b), Some(v)) => match (self.cmp(v, a), self.cmp(v, b)) {
                (Some(lo), Some(hi)) => (lo != Ordering::Less && hi != Ordering::Greater) != *neg,
                _ => false,
            },
        }
    }

    /// Orders a row value against a canonical filter value in the column's type.
    fn cmp(&self, v: &[u8], x: &[u8]) -> Option<Ordering> {
        match self.kind {
            Kind::Text | Kind::Boolean => Some(v.cmp(x)),
            Kind::Time => Some(time_key(v).cmp(time_key(x))),
            Kind::Number => cmp_number(v, x),
        }
    }
}

/// A canonical date/time/datetime without what does not change its order: the `+00` suffix
/// and trailing zeros of the fraction.
fn time_key(v: &[u8]) -> &[u8] {
    let v = v.strip_suffix(b"+00").unwrap_or(v);
    if !v.contains(&b'.') {
        return v;
    }
    let mut end = v.len();
    while end > 0 && v[end - 1] == b'0' {
        end -= 1;
    }
    if end > 0 && v[end - 1] == b'.' {
        end -= 1;
    }
    &v[..end]
}

/// Numeric order: exact for decimal text (any number of digits), through f64 for exponents,
/// `NaN` above everything as in PostgreSQL.
fn cmp_number(a: &[u8], b: &[u8]) -> Option<Ordering> {
    let (a, b) = (std::str::from_utf8(a).ok()?, std::str::from_utf8(b).ok()?);
    match (decimal(a), decimal(b)) {
        (Some(x), Some(y)) => Some(cmp_decimal(x, y)),
        _ => match (a == "NaN", b == "NaN") {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            _ => a.parse::<f64>().ok()?.partial_cmp(&b.parse::<f64>().ok()?),
        },
    }
}

/// A plain decimal split into (negative, integer digits without leading zeros, fraction
/// digits without trailing zeros); None for exponents and special values.
fn decimal(s: &str) -> Option<(bool, &str, &str)> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (int, frac) = (int.trim_start_matches('0'), frac.trim_end_matches('0'));
    // -0 is 0.
    Some((neg && !(int.is_empty() && frac.is_empty()), int, frac))
}

/// Orders two [`decimal`]s.
fn cmp_decimal(a: (bool, &str, &str), b: (bool, &str, &str)) -> Ordering {
    let magnitude =
        a.1.len()
            .cmp(&b.1.len())
            .then_with(|| a.1.cmp(b.1))
            .then_with(|| a.2.cmp(b.2));
    match (a.0, b.0) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// A filter value in its column's canonical form, or why it cannot be one.
fn canonical(t: DmsType, kind: Kind, v: &str) -> Result<Vec<u8>, String> {
    let v = v.trim();
    Ok(match kind {
        Kind::Text => v.as_bytes().to_vec(),
        Kind::Boolean => match v.to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "y" | "yes" => b"t".to_vec(),
            "f" | "false" | "0" | "n" | "no" => b"f".to_vec(),
            _ => return Err("is not a boolean (true/false, 1/0)".into()),
        },
        Kind::Number => {
            let ok = decimal(v).is_some()
                || (v.parse::<f64>().is_ok()
                    && !v.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E'));
            if !ok {
                return Err("is not a number".into());
            }
            v.as_bytes().to_vec()
        }
        Kind::Time => match t {
            DmsType::Date => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| "is not a date (YYYY-MM-DD)".to_string())?
                .format("%Y-%m-%d")
                .to_string()
                .into_bytes(),
            DmsType::Time => NaiveTime::parse_from_str(v, "%H:%M:%S%.f")
                .map_err(|_| "is not a time (HH:MM:SS[.ffffff])".to_string())?
                .format("%H:%M:%S%.f")
                .to_string()
                .into_bytes(),
            _ => utc_datetime(v)
                .ok_or("is not a timestamp (YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH:MM])")?
                .into_bytes(),
        },
    })
}

/// A timestamp filter value as canonical UTC text; a value without an offset is UTC.
fn utc_datetime(v: &str) -> Option<String> {
    let v = v.replacen('T', " ", 1);
    let v = v
        .strip_suffix('Z')
        .map(|s| format!("{s}+00:00"))
        .unwrap_or(v);
    let naive = DateTime::parse_from_str(&v, "%Y-%m-%d %H:%M:%S%.f%#z")
        .map(|d| d.naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(&v, "%Y-%m-%d %H:%M:%S%.f"))
        .or_else(|_| NaiveDate::parse_from_str(&v, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN)))
        .ok()?;
    Some(naive.format("%Y-%m-%d %H:%M:%S%.f").to_string())
}

/// A canonical value as an SQL literal that cannot end early.
fn literal(kind: Kind, dialect: Dialect, v: &[u8]) -> String {
    match (kind, dialect) {
        (Kind::Text, Dialect::MySql) => format!("X'{}'", hex(v)),
        (Kind::Text, Dialect::Postgres) => {
            let text = String::from_utf8_lossy(v);
            let mut tag = String::from("$f$");
            let mut n = 0;
            while text.contains(tag.as_str()) {
                n += 1;
                tag = format!("$f{n}$");
            }
            format!("{tag}{text}{tag}")
        }
        (Kind::Boolean, Dialect::MySql) => if v == b"t" { "1" } else { "0" }.to_owned(),
        (Kind::Boolean, Dialect::Postgres) => if v == b"t" { "true" } else { "false" }.to_owned(),
        // Checked by `canonical`: digits, signs, '.', exponents, ':', '-' and spaces only.
        _ => format!("'{}'", String::from_utf8_lossy(v)),
    }
}

/// How values of type `t` compare; None for bytes, which do not.
fn kind_of(t: DmsType) -> Option<Kind> {
    Some(match t {
        DmsType::Bytes { .. } => return None,
        DmsType::Boolean => Kind::Boolean,
        DmsType::Date | DmsType::Time | DmsType::DateTime => Kind::Time,
        DmsType::String { .. } => Kind::Text,
        _ => Kind::Number,
    })
}

/// A `ranges` boundary value for a column of type `t`, as a literal of `dialect` — checked
/// and written like a filter value (data, never SQL).
pub(crate) fn bound_literal(t: DmsType, dialect: Dialect, v: &str) -> Result<String, String> {
    let kind = kind_of(t).ok_or("is for a bytes column, which cannot be compared")?;
    Ok(literal(kind, dialect, &canonical(t, kind, v)?))
}

/// SQL that is true when the tuple of `cols` (quoted name, type) sorts before `bound` (its
/// literals), lexicographically; text compares byte by byte, as in filters, so every row falls
/// on one side whatever the column's collation.
pub(crate) fn tuple_below(
    cols: &[(String, DmsType)],
    bound: &[String],
    dialect: Dialect,
) -> String {
    let col = |(c, t): &(String, DmsType)| match (kind_of(*t), dialect) {
        (Some(Kind::Text), Dialect::Postgres) => format!("{c}::text COLLATE \"C\""),
        (Some(Kind::Text), Dialect::MySql) => format!("CAST({c} AS BINARY)"),
        _ => c.clone(),
    };
    let terms: Vec<String> = (0..cols.len())
        .map(|i| {
            let mut parts: Vec<String> = (0..i)
                .map(|j| format!("{} = {}", col(&cols[j]), bound[j]))
                .collect();
            parts.push(format!("{} < {}", col(&cols[i]), bound[i]));
            format!("({})", parts.join(" AND "))
        })
        .collect();
    terms.join(" OR ")
}

/// Lower-case hex of `v`.
fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
