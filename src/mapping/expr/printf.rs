//! SQLite's SQL `printf()`/`format()`: C-style directives with SQLite's extensions (`%q %Q %w`
//! quoting, `%!` alternate forms, `%,` thousands separators), reading each argument the way
//! SQLite's `sqlite3_value_*` accessors convert it.

use std::borrow::Cow;

use super::eval::{int_of, real_of};
use super::num::{push_float, FloatSpec};
use super::{until_nul, Val};

/// SQLite's default `SQLITE_LIMIT_LENGTH`: larger results are an error, not an allocation.
pub(super) const MAX_LENGTH: usize = 1_000_000_000;

/// The arguments after the format, consumed in order; missing ones read as 0 or NULL.
struct Args<'v, 'a> {
    /// The values.
    vals: &'v [Val<'a>],
    /// Next to consume.
    next: usize,
}

impl<'v> Args<'v, '_> {
    /// The next value, if any.
    fn take(&mut self) -> Option<&'v Val<'v>> {
        let v = self.vals.get(self.next);
        self.next += 1;
        v
    }

    /// `getIntArg`.
    fn int(&mut self) -> i64 {
        self.take().map_or(0, int_of)
    }

    /// `getDoubleArg`.
    fn real(&mut self) -> f64 {
        self.take().map_or(0.0, real_of)
    }

    /// `getTextArg`: None for NULL or a missing argument; text ends at a NUL.
    fn text(&mut self) -> Option<Cow<'v, [u8]>> {
        let t = self.take()?.as_text()?;
        Some(match t {
            Cow::Borrowed(b) => Cow::Borrowed(until_nul(b)),
            Cow::Owned(mut v) => {
                let n = until_nul(&v).len();
                v.truncate(n);
                Cow::Owned(v)
            }
        })
    }
}

/// Formats `fmt` with `args` into `out`. Ok(false) when SQLite's result would be NULL: nothing
/// was produced (an empty format, or an invalid directive before any output).
pub(super) fn printf(fmt: &[u8], args: &[Val], out: &mut Vec<u8>) -> Result<bool, String> {
    let fmt = until_nul(fmt);
    let mut a = Args {
        vals: args,
        next: 0,
    };
    let mut produced = false;
    let mut i = 0;
    let at = |i: usize| fmt.get(i).copied().unwrap_or(0);
    while i < fmt.len() {
        if fmt[i] != b'%' {
            let start = i;
            while i < fmt.len() && fmt[i] != b'%' {
                i += 1;
            }
            out.extend_from_slice(&fmt[start..i]);
            produced = true;
            continue;
        }
        i += 1;
        if i >= fmt.len() {
            out.push(b'%');
            produced = true;
            break;
        }
        let (mut left, mut sign, mut alt, mut bang, mut zero, mut comma) =
            (false, None, false, false, false, false);
        loop {
            match at(i) {
                b'-' => left = true,
                b'+' => sign = Some(b'+'),
                b' ' => sign = Some(b' '),
                b'#' => alt = true,
                b'!' => bang = true,
                b'0' => zero = true,
                b',' => comma = true,
                _ => break,
            }
            i += 1;
        }
        let mut width: usize = 0;
        if at(i) == b'*' {
            let w = a.int();
            if w < 0 {
                left = true;
            }
            width = usize::try_from(w.unsigned_abs()).unwrap_or(usize::MAX);
            i += 1;
        } else {
            while at(i).is_ascii_digit() {
                width = width
                    .saturating_mul(10)
                    .saturating_add(usize::from(at(i) - b'0'));
                i += 1;
            }
        }
        let mut precision: Option<usize> = None;
        if at(i) == b'.' {
            i += 1;
            let mut p: usize = 0;
            if at(i) == b'*' {
                p = usize::try_from(a.int().unsigned_abs()).unwrap_or(usize::MAX);
                i += 1;
            } else {
                while at(i).is_ascii_digit() {
                    p = p
                        .saturating_mul(10)
                        .saturating_add(usize::from(at(i) - b'0'));
                    i += 1;
                }
            }
            precision = Some(p);
        }
        if at(i) == b'l' {
            i += 1;
            if at(i) == b'l' {
                i += 1;
            }
        }
        if width > MAX_LENGTH || precision.is_some_and(|p| p > MAX_LENGTH) {
            return Err("string or blob too big".into());
        }
        let conv = at(i);
        i += 1;
        let mut buf = Vec::new();
        // Width counts characters for %c and for `!` strings, bytes otherwise.
        let mut by_chars = false;
        match conv {
            b'd' | b'i' | b'u' | b'x' | b'X' | b'o' | b'p' | b'r' => {
                let signed = matches!(conv, b'd' | b'i' | b'r');
                let v = a.int();
                let (neg, mut mag) = if signed && v < 0 {
                    (true, v.unsigned_abs())
                } else {
                    (false, v as u64)
                };
                let prefix = if neg {
                    Some(b'-')
                } else if signed {
                    sign
                } else {
                    None
                };
                let mut prec = precision.unwrap_or(0);
                if zero && prec < width.saturating_sub(usize::from(prefix.is_some())) {
                    prec = width - usize::from(prefix.is_some());
                }
                let (base, digits): (u64, &[u8]) = match conv {
                    b'x' => (16, b"0123456789abcdef"),
                    b'X' | b'p' => (16, b"0123456789ABCDEF"),
                    b'o' => (8, b"01234567"),
                    _ => (10, b"0123456789"),
                };
                let ordinal = if conv == b'r' {
                    let x = mag % 10;
                    let x = if x >= 4 || (mag / 10) % 10 == 1 { 0 } else { x };
                    Some(&b"thstndrd"[x as usize * 2..x as usize * 2 + 2])
                } else {
                    None
                };
                let alt = alt && mag != 0;
                let mut rev = Vec::new();
                loop {
                    rev.push(digits[(mag % base) as usize]);
                    mag /= base;
                    if mag == 0 {
                        break;
                    }
                }
                while rev.len() < prec {
                    rev.push(b'0');
                }
                let body: Vec<u8> = rev.iter().rev().copied().collect();
                // SQLite groups decimal conversions only.
                let body = if comma && matches!(conv, b'd' | b'i' | b'u') {
                    thousands(&body)
                } else {
                    body
                };
                buf.extend(prefix);
                if alt {
                    match conv {
                        b'o' => buf.push(b'0'),
                        b'x' => buf.extend_from_slice(b"0x"),
                        b'X' => buf.extend_from_slice(b"0X"),
                        _ => {}
                    }
                }
                buf.extend_from_slice(&body);
                buf.extend(ordinal.into_iter().flatten());
            }
            b'f' | b'e' | b'E' | b'g' | b'G' => {
                let x = a.real();
                let spec = FloatSpec {
                    conv,
                    precision,
                    alt,
                    bang,
                    sign,
                };
                push_float(x, spec, &mut buf);
                if zero && !left && buf.len() < width && x.is_finite() {
                    let at = usize::from(matches!(buf.first(), Some(b'-' | b'+' | b' ')));
                    let pad = width - buf.len();
                    buf.splice(at..at, std::iter::repeat_n(b'0', pad));
                }
            }
            b's' | b'z' => {
                let t = a.text().unwrap_or(Cow::Borrowed(b""));
                let n = match precision {
                    Some(p) if bang => char_prefix(&t, p),
                    Some(p) => p.min(t.len()),
                    None => t.len(),
                };
                buf.extend_from_slice(&t[..n]);
                by_chars = bang;
            }
            b'q' | b'Q' | b'w' => {
                let q = if conv == b'w' { b'"' } else { b'\'' };
                let t = a.text();
                let quote = t.is_some() && conv == b'Q';
                let t = t.unwrap_or(Cow::Borrowed(if conv == b'Q' {
                    b"NULL"
                } else {
                    b"(NULL)"
                }));
                let n = match precision {
                    Some(p) if bang => char_prefix(&t, p),
                    Some(p) => p.min(t.len()),
                    None => t.len(),
                };
                if quote {
                    buf.push(q);
                }
                for &c in &t[..n] {
                    buf.push(c);
                    if c == q {
                        buf.push(c);
                    }
                }
                if quote {
                    buf.push(q);
                }
                by_chars = bang;
            }
            b'c' => {
                let t = a.text();
                let ch: &[u8] = match &t {
                    Some(t) if !t.is_empty() => &t[..char_prefix(t, 1)],
                    _ => b"\0",
                };
                for _ in 0..precision.unwrap_or(1).max(1) {
                    buf.extend_from_slice(ch);
                }
                by_chars = true;
            }
            b'%' => buf.push(b'%'),
            b'n' => {
                produced = true;
                continue;
            }
            // An unknown directive ends the output there, as in SQLite.
            _ => break,
        }
        let len = if by_chars {
            buf.iter().filter(|&&c| c & 0xc0 != 0x80).count()
        } else {
            buf.len()
        };
        let pad = width.saturating_sub(len);
        if !left {
            out.extend(std::iter::repeat_n(b' ', pad));
        }
        out.extend_from_slice(&buf);
        if left {
            out.extend(std::iter::repeat_n(b' ', pad));
        }
        produced = true;
        if out.len() > MAX_LENGTH {
            return Err("string or blob too big".into());
        }
    }
    Ok(produced)
}

/// Bytes covering the first `n` characters of `t`.
fn char_prefix(t: &[u8], n: usize) -> usize {
    let mut i = 0;
    for _ in 0..n {
        if i >= t.len() {
            break;
        }
        super::pattern::skip_char(t, &mut i);
    }
    i
}

/// Digits with a `,` between each group of three.
fn thousands(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.len() + d.len() / 3);
    for (k, &c) in d.iter().enumerate() {
        if k > 0 && (d.len() - k).is_multiple_of(3) {
            out.push(b',');
        }
        out.push(c);
    }
    out
}
