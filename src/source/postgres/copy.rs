//! Parser for PostgreSQL's COPY text format (`COPY ... TO STDOUT`): tab-separated fields, `\N`
//! for NULL, backslash escapes, one row per line.
//!
//! Hand-written because no maintained crate parses COPY *text* output into borrowed fields, and
//! this is the hot loop of a full load: it unescapes straight into the batch buffer.
//! Text rather than binary COPY: numeric digits and timestamps arrive exact and already in the
//! canonical form the writer wants, and the CSV path needs no re-rendering (measured in
//! docs/benchmarks.md).

use crate::change::{Op, RowBatch};
use crate::error::{Error, ErrorKind, Result};

/// Per-column LOB truncation: `Some((max_bytes, is_bytes))` for LOB columns when LobMaxSize is set.
pub type LobLimits = Vec<Option<(usize, bool)>>;

/// Streaming COPY-text parser that fills [`RowBatch`]es.
pub struct CopyParser {
    ncols: usize,
    lob: LobLimits,
    carry: Vec<u8>,
    /// LOB values truncated so far.
    pub truncated: u64,
}

impl CopyParser {
    /// A parser for rows of `ncols` fields.
    pub fn new(ncols: usize, lob: LobLimits) -> CopyParser {
        CopyParser {
            ncols,
            lob,
            carry: Vec::new(),
            truncated: 0,
        }
    }

    /// Parses the complete lines of `chunk` (plus any carried partial line) into `batch`,
    /// stamping each row with `time_us`. Returns the number of rows added.
    pub fn feed(&mut self, chunk: &[u8], batch: &mut RowBatch, time_us: i64) -> Result<usize> {
        let Some(last_nl) = memchr::memrchr(b'\n', chunk) else {
            self.carry.extend_from_slice(chunk);
            return Ok(0);
        };
        let mut rows = 0;
        if !self.carry.is_empty() {
            let mut line = std::mem::take(&mut self.carry);
            let first_nl = memchr::memchr(b'\n', chunk).expect("found above");
            line.extend_from_slice(&chunk[..first_nl]);
            self.line(&line, batch, time_us)?;
            rows += 1;
            self.lines(&chunk[first_nl + 1..=last_nl], batch, time_us, &mut rows)?;
        } else {
            self.lines(&chunk[..=last_nl], batch, time_us, &mut rows)?;
        }
        self.carry.extend_from_slice(&chunk[last_nl + 1..]);
        Ok(rows)
    }

    /// True when input ended mid-line (a truncated stream).
    pub fn has_partial_line(&self) -> bool {
        !self.carry.is_empty()
    }

    fn lines(
        &mut self,
        data: &[u8],
        batch: &mut RowBatch,
        time_us: i64,
        rows: &mut usize,
    ) -> Result<()> {
        // `data` ends with a newline; drop it so `split` yields exactly one item per line (an
        // empty line is a real row when the table has one column).
        let Some(data) = data.strip_suffix(b"\n") else {
            return Ok(());
        };
        for line in data.split(|&b| b == b'\n') {
            self.line(line, batch, time_us)?;
            *rows += 1;
        }
        Ok(())
    }

    /// Parses one line (without its newline) into one row.
    fn line(&mut self, line: &[u8], batch: &mut RowBatch, time_us: i64) -> Result<()> {
        let mut fields = 0;
        for field in line.split(|&b| b == b'\t') {
            if fields == self.ncols {
                return Err(malformed("more fields than columns"));
            }
            if field == b"\\N" {
                batch.push_null();
            } else {
                unescape_into(field, batch.cell_buf())?;
                batch.end_cell();
                if let Some((max, is_bytes)) = self.lob[fields] {
                    if let Some(len) = super::super::lob_cut_len(batch.last_cell(), max, is_bytes) {
                        batch.truncate_last_cell(len);
                        self.truncated += 1;
                    }
                }
            }
            fields += 1;
        }
        if fields != self.ncols {
            return Err(malformed("fewer fields than columns"));
        }
        batch.end_row(Op::Insert, time_us)
    }
}

fn malformed(what: &str) -> Error {
    Error::new(
        ErrorKind::SourceSchema,
        format!("COPY output has {what}; the table changed during the load"),
        "rerun the task (no DDL on selected tables during a full load)",
    )
}

/// Decodes COPY text escapes (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`, octal `\123`, hex `\x7F`).
fn unescape_into(field: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let Some(first) = memchr::memchr(b'\\', field) else {
        out.extend_from_slice(field);
        return Ok(());
    };
    out.extend_from_slice(&field[..first]);
    let mut i = first;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            // Copy the run up to the next backslash in one go.
            let end = memchr::memchr(b'\\', &field[i..]).map_or(field.len(), |p| i + p);
            out.extend_from_slice(&field[i..end]);
            i = end;
            continue;
        }
        let Some(&e) = field.get(i + 1) else {
            return Err(malformed("a dangling backslash"));
        };
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]], ncols: usize) -> RowBatch {
        let mut p = CopyParser::new(ncols, vec![None; ncols]);
        let mut b = RowBatch::new(ncols);
        for c in chunks {
            p.feed(c, &mut b, 7).unwrap();
        }
        assert!(!p.has_partial_line());
        b
    }

    #[test]
    fn fields_nulls_and_escapes() {
        let b = parse(&[b"1\t\\N\ta\\tb\\\\c\\nd\n2\t\t\\x41\\101\\\\x00\n"], 3);
        assert_eq!(b.len(), 2);
        assert_eq!(b.get(0, 0), Some(&b"1"[..]));
        assert_eq!(b.get(0, 1), None);
        assert_eq!(b.get(0, 2), Some(&b"a\tb\\c\nd"[..]));
        assert_eq!(b.get(1, 1), Some(&b""[..]));
        assert_eq!(b.get(1, 2), Some(&b"AA\\x00"[..]));
        assert_eq!(b.times, vec![7, 7]);
    }

    #[test]
    fn rows_split_across_chunks() {
        let b = parse(&[b"1\tab", b"c\n2\t", b"x\n3", b"\ty\n"], 2);
        let one = parse(&[b"\n\na\n"], 1);
        assert_eq!(one.len(), 3, "empty lines are rows of one empty field");
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(0, 1), Some(&b"abc"[..]));
        assert_eq!(b.get(2, 0), Some(&b"3"[..]));
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let mut p = CopyParser::new(2, vec![None; 2]);
        let mut b = RowBatch::new(2);
        assert!(p.feed(b"1\t2\t3\n", &mut b, 0).is_err());
        let mut b = RowBatch::new(2);
        assert!(p.feed(b"1\n", &mut b, 0).is_err());
    }

    #[test]
    fn lob_truncation_counts() {
        let mut p = CopyParser::new(2, vec![None, Some((3, false))]);
        let mut b = RowBatch::new(2);
        p.feed(b"1\tabcdef\n2\tab\n", &mut b, 0).unwrap();
        assert_eq!(b.get(0, 1), Some(&b"abc"[..]));
        assert_eq!(b.get(1, 1), Some(&b"ab"[..]));
        assert_eq!(p.truncated, 1);
    }
}
