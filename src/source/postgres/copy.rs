//! Parser for PostgreSQL's COPY text format (`COPY ... TO STDOUT`): tab-separated fields, `\N`
//! for NULL, backslash escapes, one row per line.
//!
//! Hand-written because no maintained crate parses COPY *text* output into borrowed fields, and
//! this is the hot loop of a full load: one `memchr3` pass per chunk finds tabs, newlines and
//! backslashes, and field bytes are copied straight into the batch buffer.
//! Text rather than binary COPY: numeric digits and timestamps arrive exact and already in the
//! canonical form the writer wants, and the CSV path needs no re-rendering (measured in
//! docs/benchmarks.md).

use crate::change::{Op, RowBatch};
use crate::error::{Error, ErrorKind, Result};

/// Per-column LOB truncation: `Some((max_bytes, is_bytes))` for LOB columns when LobMaxSize is set.
pub(super) type LobLimits = Vec<Option<(usize, bool)>>;

/// Streaming COPY-text parser that fills [`RowBatch`]es. Rows may span chunks.
pub(super) struct CopyParser {
    ncols: usize,
    lob: LobLimits,
    /// Bytes of an escape sequence cut by a chunk boundary, replayed before the next chunk.
    carry: Vec<u8>,
    /// Fields completed in the current row.
    field: usize,
    /// The current field was `\N`.
    null: bool,
    /// LOB values truncated so far.
    pub(crate) truncated: u64,
}

impl CopyParser {
    /// A parser for rows of `ncols` fields.
    pub(super) fn new(ncols: usize, lob: LobLimits) -> CopyParser {
        CopyParser {
            ncols,
            lob,
            carry: Vec::new(),
            field: 0,
            null: false,
            truncated: 0,
        }
    }

    /// True between rows: the batch holds only complete rows and may be handed on.
    pub(super) fn at_row_boundary(&self) -> bool {
        self.field == 0 && self.carry.is_empty() && !self.null
    }

    /// True when input ended mid-row (a truncated stream).
    pub(super) fn has_partial_line(&self) -> bool {
        !self.at_row_boundary()
    }

    /// Parses `chunk` into `batch`, stamping completed rows with `time_us`; returns the number
    /// of rows completed. The field in progress continues in the batch buffer across calls.
    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        batch: &mut RowBatch,
        time_us: i64,
    ) -> Result<usize> {
        if self.carry.is_empty() {
            return self.parse(chunk, batch, time_us);
        }
        // Rare: an escape sequence was split across messages. Rejoin it with the new bytes.
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(chunk);
        self.parse(&joined, batch, time_us)
    }

    fn parse(&mut self, data: &[u8], batch: &mut RowBatch, time_us: i64) -> Result<usize> {
        let mut rows = 0;
        let mut i = 0;
        while i < data.len() {
            let Some(p) = memchr::memchr3(b'\t', b'\n', b'\\', &data[i..]) else {
                batch.cell_buf().extend_from_slice(&data[i..]);
                break;
            };
            batch.cell_buf().extend_from_slice(&data[i..i + p]);
            i += p;
            match data[i] {
                b'\t' => {
                    self.end_field(batch)?;
                    i += 1;
                }
                b'\n' => {
                    self.end_field(batch)?;
                    if self.field != self.ncols {
                        return Err(malformed("fewer fields than columns"));
                    }
                    self.field = 0;
                    batch.end_row(Op::Insert, time_us)?;
                    rows += 1;
                    i += 1;
                }
                _ => match unescape(&data[i..], batch.cell_buf()) {
                    Some(Escape::Consumed(n)) => i += n,
                    Some(Escape::Null) => {
                        self.null = true;
                        i += 2;
                    }
                    None => {
                        self.carry.extend_from_slice(&data[i..]);
                        break;
                    }
                },
            }
        }
        Ok(rows)
    }

    /// Completes the field in progress (its bytes are already in the batch buffer).
    fn end_field(&mut self, batch: &mut RowBatch) -> Result<()> {
        if self.field == self.ncols {
            return Err(malformed("more fields than columns"));
        }
        if std::mem::take(&mut self.null) {
            batch.push_null();
        } else {
            batch.end_cell();
            if let Some((max, is_bytes)) = self.lob[self.field] {
                if let Some(len) = super::super::lob_cut_len(batch.last_cell(), max, is_bytes) {
                    batch.truncate_last_cell(len);
                    self.truncated += 1;
                }
            }
        }
        self.field += 1;
        Ok(())
    }
}

fn malformed(what: &str) -> Error {
    Error::new(
        ErrorKind::SourceSchema,
        format!("COPY output has {what}; the table changed during the load"),
        "rerun the task (no DDL on selected tables during a full load)",
    )
}

/// What one escape sequence decoded to.
enum Escape {
    /// Bytes of input consumed (the decoded byte was appended).
    Consumed(usize),
    /// `\N`: the field is NULL.
    Null,
}

/// Decodes the escape at the start of `s` (`s[0]` is a backslash) into `out`: `\\`, `\t`, `\n`,
/// `\r`, `\b`, `\f`, `\v`, octal `\123`, hex `\x7F`, `\N`. None when `s` ends inside it.
fn unescape(s: &[u8], out: &mut Vec<u8>) -> Option<Escape> {
    let e = *s.get(1)?;
    let byte = match e {
        b'N' => return Some(Escape::Null),
        b'b' => 8,
        b'f' => 12,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 11,
        b'0'..=b'7' | b'x' => {
            let (radix, max, start) = if e == b'x' { (16, 2, 2) } else { (8, 3, 1) };
            let mut v = 0u32;
            let mut n = 0;
            while n < max {
                // A sequence running to the end of the chunk may continue in the next one.
                let d = *s.get(start + n)?;
                match (d as char).to_digit(radix) {
                    Some(d) => v = v * radix + d,
                    None => break,
                }
                n += 1;
            }
            if n == 0 {
                // `\x` without hex digits is a literal x.
                b'x'
            } else {
                out.push(v as u8);
                return Some(Escape::Consumed(start + n));
            }
        }
        other => other,
    };
    out.push(byte);
    Some(Escape::Consumed(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(0, 1), Some(&b"abc"[..]));
        assert_eq!(b.get(2, 0), Some(&b"3"[..]));
        let one = parse(&[b"\n\na\n"], 1);
        assert_eq!(one.len(), 3, "empty lines are rows of one empty field");
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let mut p = CopyParser::new(2, vec![None; 2]);
        let mut b = RowBatch::new(2);
        assert!(p.feed(b"1\t2\t3\n", &mut b, 0).is_err());
        let mut p = CopyParser::new(2, vec![None; 2]);
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

    /// Encodes values the way PostgreSQL's COPY text output does.
    fn encode(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = Vec::new();
        for row in rows {
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                match v {
                    None => out.extend_from_slice(b"\\N"),
                    Some(v) => {
                        for &b in v {
                            match b {
                                b'\\' => out.extend_from_slice(b"\\\\"),
                                b'\t' => out.extend_from_slice(b"\\t"),
                                b'\n' => out.extend_from_slice(b"\\n"),
                                b'\r' => out.extend_from_slice(b"\\r"),
                                8 => out.extend_from_slice(b"\\b"),
                                _ => out.push(b),
                            }
                        }
                    }
                }
            }
            out.push(b'\n');
        }
        out
    }

    proptest! {
        /// Any rows, encoded as COPY text and cut into chunks anywhere, parse back unchanged.
        #[test]
        fn round_trips_across_any_chunking(
            rows in prop::collection::vec(prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..12)), 3), 1..20),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let text = encode(&rows);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
            points.sort_unstable();
            let mut p = CopyParser::new(3, vec![None; 3]);
            let mut b = RowBatch::new(3);
            let mut last = 0;
            for &pt in points.iter().chain(std::iter::once(&text.len())) {
                p.feed(&text[last..pt], &mut b, 0).unwrap();
                last = pt;
            }
            prop_assert!(!p.has_partial_line());
            prop_assert_eq!(b.len(), rows.len());
            for (r, row) in rows.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    prop_assert_eq!(b.get(r, c), v.as_deref());
                }
            }
        }
    }
}
