//! DMS `add-column` expressions: SQLite expression syntax, compiled once per table into a tree
//! and evaluated per row without an embedded SQLite.
//!
//! DMS evaluates a transformation rule's `expression` with SQLite, binding each `$column` and each
//! `$AR_H_*`/`$AR_M_*` header variable as a parameter. This module reproduces that: values are
//! SQLite's dynamic types ([`Val`]), operators and functions follow SQLite 3's documented rules
//! (checked against SQLite 3.40.1 in the unit tests), and the result is rendered as SQLite would
//! render it as text.
//!
//! How a source value becomes an SQLite value (the type it would have been bound with):
//! - integer types → INTEGER (a UINT8 above `i64::MAX` → REAL, as SQLite's INTEGER affinity does);
//! - `Real4`/`Real8` → REAL (`Infinity` → ±Inf; `NaN` → NULL, as binding a NaN in SQLite does);
//! - `Numeric` → INTEGER when the text has no `.` and fits `i64`, else REAL (`NaN` → NULL);
//! - `Boolean` → INTEGER 1/0;
//! - `Date`/`Time`/`String` → TEXT; `DateTime` → TEXT without the optional `+00` suffix (SQLite's
//!   date functions reject `+00`, and the value is UTC anyway);
//! - `Bytes` → BLOB (the `\x` hex decoded).
//!
//! Parameters have no affinity in SQLite, so comparisons between a column and a literal follow
//! the values' own types (`$int_col = '5'` is false); only `CAST(...)` gives an operand affinity.
//!
//! Evaluation borrows wherever it can: a column's text is a slice of the caller's row, literals
//! are slices of the tree, and `||` chains and `upper`/`lower` write straight into the output
//! buffer, so the common expressions allocate nothing per row.
//!
//! Known differences from SQLite 3.40:
//! - REAL text and `printf`/`round` digits are computed from the exact binary value; SQLite 3.40
//!   uses x87 `long double` arithmetic, which differs only where a value's 16th significant digit
//!   is a rounding tie or beyond (e.g. 637015604333144.5) and in `quote()`'s 20-digit form.
//! - `localtime` and `utc` use UTC as the local zone; `utc` on a time before julian day 0 is NULL.
//! - `OR` stops at a true left operand (as SQLite's `AND` does at a false one), so a runtime
//!   error on its right is not raised then.
//! - Trees deeper than 200 levels and LIKE/GLOB patterns with over 1000 wildcards are refused
//!   (stack safety); SQLite allows 1000 levels and patterns up to 50000 bytes.
//! - Not supported: subqueries, `COLLATE`, `REGEXP`/`MATCH`, JSON operators, aggregate and
//!   window functions, parameters other than `$name`, and functions outside the DMS list.

use std::borrow::Cow;

use crate::change::Column;

mod date;
mod eval;
mod func;
mod julian;
mod lex;
mod num;
mod parse;
mod pattern;
mod printf;
mod sha256;
mod strings;
mod tree;

/// Values of the `$AR_H_*` header and `$AR_M_*` metadata variables for one row.
///
/// Every variable is TEXT in expressions. The two timestamps are rendered as
/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC): text is what DMS's SQLite would have been given, this form
/// is accepted by SQLite's date functions, and it keeps the microseconds.
pub(crate) struct Vars<'a> {
    /// `$AR_H_OPERATION`: "INSERT", "UPDATE" or "DELETE" (full load: "INSERT").
    pub(crate) operation: &'a str,
    /// `$AR_H_STREAM_POSITION`: the source log position as text ("" in a full load).
    pub(crate) stream_position: &'a str,
    /// `$AR_H_CHANGE_SEQ`: 35-digit text ("" in a full load).
    pub(crate) change_seq: &'a str,
    /// `$AR_H_TIMESTAMP`, µs since the Unix epoch (UTC).
    pub(crate) timestamp_us: i64,
    /// `$AR_H_COMMIT_TIMESTAMP`, µs since the Unix epoch (UTC).
    pub(crate) commit_timestamp_us: i64,
    /// `$AR_H_USER` ("" when unknown).
    pub(crate) user: &'a str,
    /// `$AR_M_SOURCE_SCHEMA`.
    pub(crate) schema: &'a str,
    /// `$AR_M_SOURCE_TABLE_NAME`.
    pub(crate) table: &'a str,
}

/// A compiled expression.
#[derive(Debug)]
pub(crate) struct Expr {
    /// The parsed tree.
    root: tree::Node,
    /// Source column indexes the tree reads, ascending and distinct (checked by the tests:
    /// the parser resolves every `$name`).
    #[cfg(test)]
    columns: Vec<usize>,
    /// Reads `$AR_H_STREAM_POSITION` or `$AR_H_CHANGE_SEQ`.
    log_position: bool,
}

impl Expr {
    /// Compiles `text`. `columns` are the source table's columns (their order is the index `cell`
    /// takes); `$name` refers to a column by exact name, `$AR_H_...`/`$AR_M_...` to a variable (a
    /// variable name wins over a column of the same name). Err(message) names the problem and
    /// where (e.g. "unknown column $foo at offset 0; the table has id, name" or "unexpected ')' at
    /// offset 12").
    pub(crate) fn compile(text: &str, columns: &[Column]) -> Result<Expr, String> {
        let mut used = parse::Refs::default();
        let root = parse::parse(text, columns, &mut used)?;
        #[cfg(test)]
        let columns = {
            let mut c = used.columns;
            c.sort_unstable();
            c.dedup();
            c
        };
        Ok(Expr {
            root,
            #[cfg(test)]
            columns,
            log_position: used.log_position,
        })
    }

    /// True when the expression reads the change's log position (`$AR_H_STREAM_POSITION`,
    /// `$AR_H_CHANGE_SEQ`): callers build that text per change only then.
    pub(crate) fn reads_log_position(&self) -> bool {
        self.log_position
    }

    /// Source column indexes the expression reads, ascending.
    #[cfg(test)]
    pub(crate) fn columns_used(&self) -> Vec<usize> {
        self.columns.clone()
    }

    /// Evaluates for one row. `cell(i)` is column i's value in canonical text (None = SQL NULL).
    /// Appends the result's text to `out` and returns Ok(true), or returns Ok(false) for NULL
    /// (`out` untouched). Err(message) for a runtime error that SQLite would raise (e.g.
    /// `abs(-9223372036854775808)`, a LIKE escape that is not one character).
    ///
    /// The returned slices' lifetime `'c` is named because a `dyn Fn` returning a reference needs
    /// one; any closure over a row fits.
    pub(crate) fn eval<'c>(
        &self,
        cell: &dyn Fn(usize) -> Option<&'c [u8]>,
        vars: &Vars,
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        // Re-wrapping the closure lets one lifetime cover the tree, the row and the variables.
        let get = |i: usize| cell(i);
        let cx = eval::Cx { cell: &get, vars };
        eval::write_text(&self.root, &cx, out)
    }
}

/// An SQLite value. TEXT is kept as bytes: rows carry UTF-8, and SQLite itself treats text as
/// bytes except where a function counts characters.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    /// SQL NULL.
    Null,
    /// INTEGER.
    Int(i64),
    /// REAL (never NaN: SQLite turns NaN into NULL).
    Real(f64),
    /// TEXT.
    Text(Cow<'a, [u8]>),
    /// BLOB.
    Blob(Cow<'a, [u8]>),
}

impl<'a> Val<'a> {
    /// True for NULL.
    fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// SQLite's `typeof()` name.
    fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Int(_) => "integer",
            Val::Real(_) => "real",
            Val::Text(_) => "text",
            Val::Blob(_) => "blob",
        }
    }

    /// The value as text bytes, borrowed from the value when it is TEXT or BLOB; None for NULL.
    fn as_text(&self) -> Option<Cow<'_, [u8]>> {
        match self {
            Val::Null => None,
            Val::Text(b) | Val::Blob(b) => Some(Cow::Borrowed(b)),
            v => {
                let mut buf = Vec::new();
                push_text(v, &mut buf);
                Some(Cow::Owned(buf))
            }
        }
    }

    /// The value as text bytes (`sqlite3_value_text`), None for NULL. Borrows when it can.
    fn into_text(self) -> Option<Cow<'a, [u8]>> {
        match self {
            Val::Null => None,
            Val::Text(b) | Val::Blob(b) => Some(b),
            v => {
                let mut buf = Vec::new();
                push_text(&v, &mut buf);
                Some(Cow::Owned(buf))
            }
        }
    }
}

/// Appends `v`'s text form to `out` (nothing for NULL): integers in decimal, reals as SQLite's
/// `%!.15g`, text and blobs as their bytes.
fn push_text(v: &Val, out: &mut Vec<u8>) {
    match v {
        Val::Null => {}
        Val::Int(i) => push_int(*i, out),
        Val::Real(r) => num::push_real(*r, out),
        Val::Text(b) | Val::Blob(b) => out.extend_from_slice(b),
    }
}

/// Appends the decimal digits of `i` (hand-rolled: this runs for every integer result).
fn push_int(i: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut u = i.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if i < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

/// `cow[start..end]`, still borrowed when `cow` was.
fn slice_cow(cow: Cow<'_, [u8]>, start: usize, end: usize) -> Cow<'_, [u8]> {
    match cow {
        Cow::Borrowed(b) => Cow::Borrowed(&b[start..end]),
        Cow::Owned(mut v) => {
            v.truncate(end);
            v.drain(..start);
            Cow::Owned(v)
        }
    }
}

/// The part of `b` before its first NUL: SQLite's text functions see NUL-terminated strings.
fn until_nul(b: &[u8]) -> &[u8] {
    match memchr::memchr(0, b) {
        Some(n) => &b[..n],
        None => b,
    }
}

#[cfg(test)]
mod tests;
