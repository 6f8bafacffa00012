//! Numbers as SQLite reads and prints them: `sqlite3AtoF`/`sqlite3Atoi64` for text, and the
//! digit generation of SQLite's `printf` (`%f %e %g`, which also renders every REAL as text via
//! `%!.15g`).
//!
//! SQLite generates digits in `long double` arithmetic and rounds half up at the requested
//! digit. Here the first 20 digits of the exact binary value are computed in integer
//! arithmetic (truncated, so a value just below a tie stays below it) and then rounded half up
//! the same way, so results match SQLite except for values within ~1e-19 of a rounding tie.

use std::fmt::Write as _;

use super::Val;

/// SQLite's `sqlite3Isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
pub(super) fn is_space(c: u8) -> bool {
    c == b' ' || (b'\t'..=b'\r').contains(&c)
}

/// `sqlite3AtoF`: the longest numeric prefix of `z` (after leading spaces) as f64, and SQLite's
/// verdict: 1 = the whole text is an integer, 2 or 3 = the whole text is a real, -1 = a real
/// prefix followed by other text, 0 = no number or an integer prefix.
pub(super) fn atof(z: &[u8]) -> (i32, f64) {
    let n = z.len();
    let mut i = 0;
    while i < n && is_space(z[i]) {
        i += 1;
    }
    let start = i;
    if i < n && (z[i] == b'-' || z[i] == b'+') {
        i += 1;
    }
    let mut digits = 0;
    while i < n && z[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    let mut e_type = 1;
    let mut e_valid = true;
    if i < n && z[i] == b'.' {
        i += 1;
        e_type += 1;
        while i < n && z[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    let mut end = i;
    if i < n && (z[i] == b'e' || z[i] == b'E') {
        i += 1;
        e_valid = false;
        e_type += 1;
        if i < n && (z[i] == b'-' || z[i] == b'+') {
            i += 1;
        }
        while i < n && z[i].is_ascii_digit() {
            i += 1;
            e_valid = true;
        }
        if e_valid {
            end = i;
        }
    }
    while i < n && is_space(z[i]) {
        i += 1;
    }
    let value = if digits == 0 {
        0.0
    } else {
        // The scanned bytes are ASCII digits, sign, '.' and exponent, which Rust parses.
        std::str::from_utf8(&z[start..end])
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let rc = if i == n && digits > 0 && e_valid {
        e_type
    } else if e_type >= 2 && (e_type == 3 || e_valid) && digits > 0 {
        -1
    } else {
        0
    };
    (rc, value)
}

/// `sqlite3Atoi64`: the integer prefix of `z` (saturating at the i64 range) and SQLite's verdict:
/// 0 = the whole text is an integer that fits, 1 = other text follows, 2 = too big, 3 = exactly
/// 2^63, -1 = no digits.
pub(super) fn atoi64(z: &[u8]) -> (i32, i64) {
    let n = z.len();
    let mut i = 0;
    while i < n && is_space(z[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < n && (z[i] == b'-' || z[i] == b'+') {
        neg = z[i] == b'-';
        i += 1;
    }
    let start = i;
    while i < n && z[i] == b'0' {
        i += 1;
    }
    let first = i;
    let mut u: u64 = 0;
    while i < n && z[i].is_ascii_digit() {
        u = u.wrapping_mul(10).wrapping_add(u64::from(z[i] - b'0'));
        i += 1;
    }
    let nd = i - first;
    let mut rc = 0;
    if nd == 0 && start == first {
        rc = -1;
    } else if z[i..].iter().any(|&c| !is_space(c)) {
        rc = 1;
    }
    let big = nd > 19 || (nd == 19 && &z[first..i] >= b"9223372036854775808".as_slice());
    if !big {
        let v = u as i64;
        return (rc, if neg { -v } else { v });
    }
    let sat = if neg { i64::MIN } else { i64::MAX };
    if nd == 19 && &z[first..i] == b"9223372036854775808" {
        (if neg { rc } else { 3 }, sat)
    } else {
        (2, sat)
    }
}

/// The number SQLite's arithmetic reads from text or a blob (`computeNumericType`): an integer
/// when the text is (or starts as) an integer that fits, else the real prefix; 0 for no number.
pub(super) fn text_num(b: &[u8]) -> Val<'static> {
    let (rc, r) = atof(b);
    if rc <= 0 {
        if rc == 0 {
            let (rc2, i) = atoi64(b);
            if rc2 <= 1 {
                return Val::Int(i);
            }
        }
        Val::Real(r)
    } else if rc == 1 {
        match atoi64(b) {
            (0, i) => Val::Int(i),
            _ => Val::Real(r),
        }
    } else {
        Val::Real(r)
    }
}

/// SQLite's numeric affinity on text (`applyNumericAffinity`): the number when the whole text
/// is one, None when the text stays text.
pub(super) fn numeric_affinity(b: &[u8]) -> Option<Val<'static>> {
    let (rc, r) = atof(b);
    if rc <= 0 {
        return None;
    }
    if rc == 1 {
        if let (0, i) = atoi64(b) {
            return Some(Val::Int(i));
        }
    }
    Some(Val::Real(r))
}

/// `CAST(text AS NUMERIC)` (`sqlite3VdbeMemNumerify`): an integer when the text reads as one or
/// as a real with an integral value, else a real.
pub(super) fn numerify(b: &[u8]) -> Val<'static> {
    let (rc, r) = atof(b);
    if rc == 0 || rc == 1 {
        let (rc2, i) = atoi64(b);
        if rc2 <= 1 {
            return Val::Int(i);
        }
    }
    let i = r as i64;
    if real_same_as_int(r, i) {
        Val::Int(i)
    } else {
        Val::Real(r)
    }
}

/// `sqlite3RealSameAsInt`: `r` is zero or exactly the (not too large) integer `i`.
fn real_same_as_int(r: f64, i: i64) -> bool {
    r == 0.0 || (r.to_bits() == (i as f64).to_bits() && (-(1 << 51)..(1 << 51)).contains(&i))
}

/// A fixed-size writer for the rare floats formatted through `std::fmt`.
struct Stack {
    /// Bytes written.
    buf: [u8; 48],
    /// Length used.
    len: usize,
}

impl std::fmt::Write for Stack {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// 10^20: one past the largest 20-digit mantissa.
const TEN20: u128 = 100_000_000_000_000_000_000;

/// 5^k for k in 0..=32 (5^32 < 2^75, so a 53-bit mantissa times any of them fits u128).
const POW5: [u128; 33] = {
    let mut t = [1u128; 33];
    let mut i = 1;
    while i < 33 {
        t[i] = t[i - 1] * 5;
        i += 1;
    }
    t
};

/// Decimal digits of a non-negative float: `d[0]` is the digit of weight `10^exp`; all zeros
/// for zero.
#[derive(Clone, Copy)]
struct Digits {
    /// Digit values 0-9, most significant first.
    d: [u8; 20],
    /// Decimal exponent of `d[0]`.
    exp: i32,
}

impl Digits {
    /// The first 20 significant digits of a finite `x >= 0`, truncated (not rounded: a value
    /// just below a rounding tie must stay below it).
    fn of(x: f64) -> Digits {
        if x == 0.0 {
            return Digits { d: [0; 20], exp: 0 };
        }
        let (m, exp) = mantissa20(x);
        Digits::from_u128(m, exp)
    }

    /// Splits a 20-digit integer (two u64 halves, so one 128-bit division).
    fn from_u128(m: u128, exp: i32) -> Digits {
        let mut d = [0u8; 20];
        let (mut hi, mut lo) = ((m / 10_000_000_000) as u64, (m % 10_000_000_000) as u64);
        for k in (10..20).rev() {
            d[k] = (lo % 10) as u8;
            lo /= 10;
        }
        for k in (0..10).rev() {
            d[k] = (hi % 10) as u8;
            hi /= 10;
        }
        Digits { d, exp }
    }

    /// Rounds half up to the first `keep` digits (SQLite adds half a unit of the last kept
    /// digit, then truncates); `keep <= 0` rounds to zero or up to a single 1.
    fn round(&mut self, keep: i64) {
        if keep >= 20 {
            return;
        }
        if keep < 0 {
            self.d = [0; 20];
            return;
        }
        let k = keep as usize;
        let up = self.d[k] >= 5;
        self.d[k..].fill(0);
        if !up {
            return;
        }
        let mut i = k;
        loop {
            if i == 0 {
                // Carried out of the first digit: 99.9 → 100.
                self.d = [0; 20];
                self.d[0] = 1;
                self.exp += 1;
                return;
            }
            i -= 1;
            if self.d[i] < 9 {
                self.d[i] += 1;
                return;
            }
            self.d[i] = 0;
        }
    }

    /// True when every digit is zero.
    fn is_zero(&self) -> bool {
        self.d.iter().all(|&d| d == 0)
    }
}

/// The first 20 significant digits of a finite `x > 0`, truncated, as an integer in
/// `[10^19, 10^20)`, and the decimal exponent of the first digit.
fn mantissa20(x: f64) -> (u128, i32) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (m, q) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | 1 << 52, biased - 1075)
    };
    // x = m * 2^q exactly. floor(log10(2^e)) is at most one below the decimal exponent d.
    let mut d = ((biased - 1023) * 78913) >> 18;
    for _ in 0..3 {
        match scaled(u128::from(m), q, 19 - d) {
            Some(n) if n >= TEN20 => d += 1,
            Some(n) if n < TEN20 / 10 => d -= 1,
            Some(n) => return (n, d),
            None => break,
        }
    }
    // Beyond the integer range (below ~1e-13 or above ~1e38): Rust's exact formatting, one
    // digit more than needed, truncated.
    let mut w = Stack {
        buf: [0; 48],
        len: 0,
    };
    // `{:.20e}` of a finite f64 fits 48 bytes, so the write cannot fail.
    let _ = write!(w, "{x:.20e}");
    let s = &w.buf[..w.len];
    let epos = s.iter().position(|&c| c == b'e').unwrap_or(s.len());
    let n = s[..epos]
        .iter()
        .filter(|c| c.is_ascii_digit())
        .take(20)
        .fold(0u128, |n, &c| n * 10 + u128::from(c - b'0'));
    let exp = std::str::from_utf8(&s[(epos + 1).min(s.len())..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    (n, exp)
}

/// `floor(m * 2^q * 10^k)` in u128 arithmetic, None when an intermediate would not fit.
fn scaled(m: u128, q: i32, k: i32) -> Option<u128> {
    if k >= 0 {
        let a = m * *POW5.get(k as usize)?;
        let s = k + q;
        if s >= 0 {
            (s < a.leading_zeros() as i32).then(|| a << s)
        } else if s > -128 {
            Some(a >> -s)
        } else {
            Some(0)
        }
    } else {
        let p = 10u128.checked_pow(k.unsigned_abs())?;
        if q >= 0 {
            (q < 75).then(|| (m << q) / p)
        } else if q > -128 {
            Some((m >> -q) / p)
        } else {
            Some(0)
        }
    }
}

/// The conversion and flags of one `printf` float directive.
#[derive(Clone, Copy)]
pub(super) struct FloatSpec {
    /// `f`, `e`, `E`, `g` or `G`.
    pub(super) conv: u8,
    /// Digits after the point (`f`, `e`) or significant digits (`g`); default 6.
    pub(super) precision: Option<usize>,
    /// `#`: keep the point and trailing zeros.
    pub(super) alt: bool,
    /// `!`: SQLite's "alternate form 2": 26 significant digits and `.0` kept.
    pub(super) bang: bool,
    /// `+` or space before non-negative numbers.
    pub(super) sign: Option<u8>,
}

/// Appends `x` formatted as SQLite's `printf` does for `spec` (no width padding: the caller pads).
pub(super) fn push_float(x: f64, spec: FloatSpec, out: &mut Vec<u8>) {
    // -0.0 is not below zero, so SQLite prints it without a sign.
    let (prefix, v) = if x < 0.0 {
        (Some(b'-'), -x)
    } else {
        (spec.sign, x)
    };
    if let Some(p) = prefix {
        out.push(p);
    }
    if v.is_infinite() {
        out.extend_from_slice(b"Inf");
        return;
    }
    let upper = spec.conv.is_ascii_uppercase();
    let mut conv = spec.conv.to_ascii_lowercase();
    let mut precision = spec.precision.unwrap_or(6).min(100_000) as i64;
    if conv == b'g' && precision > 0 {
        precision -= 1;
    }
    let mut g = if conv == b'f' && v != 0.0 {
        let (mut m, mut exp) = mantissa20(v);
        // SQLite nudges the value up by 3e-16 of itself when few digits are asked for, so
        // that round(2.675, 2) is 2.68.
        let bexp = ((v.to_bits() >> 52) & 0x7ff) as i64 - 1023;
        if precision + bexp / 3 < 15 {
            m += m * 3 / 10_000_000_000_000_000;
            if m >= TEN20 {
                m /= 10;
                exp += 1;
            }
        }
        let mut g = Digits::from_u128(m, exp);
        g.round(i64::from(g.exp) + precision + 1);
        g
    } else {
        let mut g = Digits::of(v);
        if conv != b'f' {
            g.round(precision + 1);
        }
        g
    };
    let rtz;
    if conv == b'g' {
        rtz = !spec.alt;
        if g.exp < -4 || i64::from(g.exp) > precision {
            conv = b'e';
        } else {
            precision -= i64::from(g.exp);
            conv = b'f';
        }
    } else {
        rtz = spec.bang;
    }
    if g.is_zero() && conv == b'e' {
        g.exp = 0;
    }
    let e2 = if conv == b'e' { 0 } else { g.exp };
    // SQLite produces 16 significant digits (26 with `!`) and zeros after them.
    let nsd = if spec.bang { 20 } else { 16 };
    let mut di = 0usize;
    let mut next = |out: &mut Vec<u8>| {
        out.push(b'0' + if di < nsd { g.d[di] } else { 0 });
        di += 1;
    };
    let start = out.len();
    if e2 < 0 {
        out.push(b'0');
    } else {
        for _ in 0..=e2 {
            next(out);
        }
    }
    let dp = precision > 0 || spec.alt || spec.bang;
    if dp {
        out.push(b'.');
    }
    let mut e = e2 + 1;
    while e < 0 && precision > 0 {
        out.push(b'0');
        precision -= 1;
        e += 1;
    }
    while precision > 0 {
        next(out);
        precision -= 1;
    }
    if rtz && dp {
        while out.len() > start && out[out.len() - 1] == b'0' {
            out.pop();
        }
        if out.last() == Some(&b'.') {
            if spec.bang {
                out.push(b'0');
            } else {
                out.pop();
            }
        }
    }
    if conv == b'e' {
        out.push(if upper { b'E' } else { b'e' });
        push_exp(g.exp, out);
    }
}

/// An exponent as C's printf writes it: sign and at least two digits.
fn push_exp(e: i32, out: &mut Vec<u8>) {
    out.push(if e < 0 { b'-' } else { b'+' });
    let e = e.unsigned_abs();
    if e >= 100 {
        out.push(b'0' + (e / 100) as u8);
    }
    out.push(b'0' + (e / 10 % 10) as u8);
    out.push(b'0' + (e % 10) as u8);
}

/// Appends a REAL as SQLite renders it as text (`%!.15g`): `1.0`, `0.1`, `1.0e+20`, `-Inf`.
/// A direct layout of [`push_float`]'s result for that format, as this runs for every REAL.
pub(super) fn push_real(x: f64, out: &mut Vec<u8>) {
    // Integral values below 10^15 print as the integer with ".0".
    if x.fract() == 0.0 && x.abs() < 1e15 {
        super::push_int(x as i64, out);
        out.extend_from_slice(b".0");
        return;
    }
    if x < 0.0 {
        out.push(b'-');
    }
    if x.is_infinite() {
        out.extend_from_slice(b"Inf");
        return;
    }
    let mut g = Digits::of(x.abs());
    g.round(15);
    let mut n = 15;
    while n > 1 && g.d[n - 1] == 0 {
        n -= 1;
    }
    let sig = &g.d[..n];
    let push = |out: &mut Vec<u8>, ds: &[u8]| out.extend(ds.iter().map(|d| b'0' + d));
    let exp = g.exp;
    if !(-4..=14).contains(&exp) {
        push(out, &sig[..1]);
        out.push(b'.');
        if n > 1 {
            push(out, &sig[1..]);
        } else {
            out.push(b'0');
        }
        out.push(b'e');
        push_exp(exp, out);
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        push(out, &sig[..n.min(int_len)]);
        for _ in n..int_len {
            out.push(b'0');
        }
        out.push(b'.');
        if n > int_len {
            push(out, &sig[int_len..]);
        } else {
            out.push(b'0');
        }
    } else {
        out.extend_from_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push(b'0');
        }
        push(out, sig);
    }
}
