//! Automatic chunks: a table bigger than [`AUTO_SEGMENT_BYTES`] with no `parallel-load` rule is
//! split into segments of about that size, so every big table loads in resumable pieces without
//! the user writing a rule (DMS has no such behaviour for S3; the files keep DMS's names).
//!
//! A chunk is a range of the primary key when every key column is an integer: the key is
//! NOT NULL and unique, so each row is in exactly one chunk, a row keeps its chunk across the
//! snapshots of a resume unless its key changes, and both engines read a key range through the
//! key's index. Text keys are left out on purpose: a range that uses the index compares under
//! the column's collation, and boundaries would have to be ordered by that same collation on
//! our side. PostgreSQL tables without such a key are cut into `ctid` page ranges instead (a
//! TID range scan, PostgreSQL 14+). The engines pick the boundaries (see `split` on each
//! snapshot); this module turns them into predicates.

use crate::error::{Error, Result};
use crate::mapping::filter::Dialect;

/// Tables above this size are split into chunks of about this size: big enough that a chunk's
/// query and files cost nothing next to its rows, small enough that a crash costs minutes.
pub(crate) const AUTO_SEGMENT_BYTES: u64 = 1 << 30;
/// Most chunks per table (each takes a block of 2^20 LOAD counters out of 2^32).
const MAX_CHUNKS: u64 = 256;
/// Overrides [`AUTO_SEGMENT_BYTES`], in KB (DMS's unit for sizes); `0` turns chunks off.
pub(crate) const AUTO_SEGMENT_ENV: &str = "TRIBUTARY_AUTO_SEGMENT_KB";

/// The chunk size in bytes (None: automatic chunks are off), from [`AUTO_SEGMENT_ENV`].
pub(crate) fn chunk_bytes() -> Result<Option<u64>> {
    let Ok(v) = std::env::var(AUTO_SEGMENT_ENV) else {
        return Ok(Some(AUTO_SEGMENT_BYTES));
    };
    match v.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(kb) => Ok(Some(kb.saturating_mul(1024))),
        Err(_) => Err(Error::config(
            format!("{AUTO_SEGMENT_ENV}={v:?} is not a size in KB"),
            format!("set {AUTO_SEGMENT_ENV} to a whole number of KB (0 turns automatic chunks off), or unset it for the default of 1 GiB"),
        )),
    }
}

/// How many chunks a table of `bytes` gets at `chunk` bytes each (1: it is read whole).
pub(crate) fn count(bytes: u64, chunk: u64) -> usize {
    if bytes <= chunk || chunk == 0 {
        return 1;
    }
    bytes.div_ceil(chunk).min(MAX_CHUNKS) as usize
}

/// Up to `n - 1` strictly increasing boundaries cutting a sorted `sample` of key tuples into
/// `n` parts of about equal size.
pub(crate) fn quantiles(sample: &[Vec<i128>], n: usize) -> Vec<Vec<i128>> {
    let mut out: Vec<Vec<i128>> = Vec::new();
    for i in 1..n {
        let Some(b) = sample.get(i * sample.len() / n) else {
            break;
        };
        // The smallest key sampled is no boundary: nothing would sort below it.
        if *b > sample[0] && out.last().is_none_or(|last| last < b) {
            out.push(b.clone());
        }
    }
    out
}

/// Up to `n - 1` increasing boundaries cutting the integers `min..=max` into `n` equal spans.
pub(crate) fn spread(min: i128, max: i128, n: usize) -> Vec<Vec<i128>> {
    let width = max - min + 1;
    let mut out: Vec<Vec<i128>> = Vec::new();
    for i in 1..n as i128 {
        let b = min + width * i / n as i128;
        if b > min && out.last().is_none_or(|last| last[0] < b) {
            out.push(vec![b]);
        }
    }
    out
}

/// The chunk predicates over the key columns `cols` (quoted, in the key's order) cut at
/// `bounds`: chunk k holds the tuples `>= bounds[k-1]` and `< bounds[k]`, compared
/// lexicographically, which the key's index reads as one range.
pub(crate) fn key_ranges(cols: &[String], bounds: &[Vec<i128>], dialect: Dialect) -> Vec<String> {
    let below = |b: &[i128]| compare(cols, b, "<", dialect);
    let from = |b: &[i128]| compare(cols, b, ">=", dialect);
    (0..=bounds.len())
        .map(
            |i| match (i.checked_sub(1).map(|p| &bounds[p]), bounds.get(i)) {
                (None, Some(hi)) => below(hi),
                (Some(lo), Some(hi)) => format!("{} AND {}", from(lo), below(hi)),
                (Some(lo), None) => from(lo),
                (None, None) => "TRUE".to_owned(),
            },
        )
        .collect()
}

/// `cols op values` for a tuple, in a form the key's index reads: a row comparison on
/// PostgreSQL, the lexicographic expansion on MySQL/MariaDB (whose range optimizer reads it).
fn compare(cols: &[String], values: &[i128], op: &str, dialect: Dialect) -> String {
    let vals: Vec<String> = values.iter().map(i128::to_string).collect();
    if cols.len() == 1 {
        return format!("{} {op} {}", cols[0], vals[0]);
    }
    if dialect == Dialect::Postgres {
        return format!("({}) {op} ({})", cols.join(", "), vals.join(", "));
    }
    let strict = &op[..1];
    let terms: Vec<String> = (0..cols.len())
        .map(|i| {
            let mut parts: Vec<String> = (0..i)
                .map(|j| format!("{} = {}", cols[j], vals[j]))
                .collect();
            let last = if i + 1 == cols.len() { op } else { strict };
            parts.push(format!("{} {last} {}", cols[i], vals[i]));
            format!("({})", parts.join(" AND "))
        })
        .collect();
    format!("({})", terms.join(" OR "))
}

/// `n` PostgreSQL `ctid` page ranges over a table of `pages` pages; the last is open, so pages
/// added since the size was read are in it.
pub(crate) fn page_ranges(pages: u64, n: usize) -> Vec<String> {
    let cuts: Vec<u64> = (1..n as u64).map(|i| pages * i / n as u64).collect();
    let tid = |p: u64| format!("'({p},0)'::tid");
    (0..n)
        .map(|i| match (i.checked_sub(1).map(|p| cuts[p]), cuts.get(i)) {
            (None, Some(hi)) => format!("ctid < {}", tid(*hi)),
            (Some(lo), Some(hi)) => format!("ctid >= {} AND ctid < {}", tid(lo), tid(*hi)),
            (Some(lo), None) => format!("ctid >= {}", tid(lo)),
            (None, None) => "TRUE".to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_chunks_above_the_threshold_only() {
        assert_eq!(count(100, 100), 1);
        assert_eq!(count(101, 100), 2);
        assert_eq!(count(1000, 100), 10);
        assert_eq!(count(u64::MAX, 1), MAX_CHUNKS as usize);
    }

    #[test]
    fn boundaries_increase_strictly() {
        let sample: Vec<Vec<i128>> = [1, 1, 1, 1, 2, 3, 4, 5].iter().map(|v| vec![*v]).collect();
        assert_eq!(quantiles(&sample, 4), vec![vec![2], vec![4]]);
        assert!(quantiles(&[], 4).is_empty());
        assert_eq!(spread(1, 100, 4), vec![vec![26], vec![51], vec![76]]);
        assert_eq!(spread(5, 6, 4), vec![vec![6]]);
        assert!(spread(7, 7, 4).is_empty());
    }

    #[test]
    fn key_ranges_cover_every_tuple_once() {
        let cols = ["a".to_string(), "b".to_string()];
        let pg = key_ranges(&cols, &[vec![1, 5]], Dialect::Postgres);
        assert_eq!(pg, ["(a, b) < (1, 5)", "(a, b) >= (1, 5)"]);
        let my = key_ranges(&cols, &[vec![1, 5], vec![2, 0]], Dialect::MySql);
        assert_eq!(my[0], "((a < 1) OR (a = 1 AND b < 5))");
        assert_eq!(
            my[1],
            "((a > 1) OR (a = 1 AND b >= 5)) AND ((a < 2) OR (a = 2 AND b < 0))"
        );
        assert_eq!(my[2], "((a > 2) OR (a = 2 AND b >= 0))");
        let one = key_ranges(&["id".to_string()], &[vec![10]], Dialect::MySql);
        assert_eq!(one, ["id < 10", "id >= 10"]);
    }

    #[test]
    fn page_ranges_leave_the_last_open() {
        assert_eq!(
            page_ranges(10, 3),
            [
                "ctid < '(3,0)'::tid",
                "ctid >= '(3,0)'::tid AND ctid < '(6,0)'::tid",
                "ctid >= '(6,0)'::tid"
            ]
        );
    }
}
