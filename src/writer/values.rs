//! Parsers and renderers for the canonical text forms of [`crate::change::DmsType`] values.
//!
//! Hand-written because they run once per value on the hot path and must accept exactly the
//! canonical forms (PostgreSQL's output with DateStyle=ISO, TimeZone=UTC): chrono's
//! format-string parsing is several times slower and rejects years beyond 9999 and `BC`.

use std::fmt::Write as _;

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;
/// Microseconds per day.
const US_PER_DAY: i64 = 86_400_000_000;
/// Date DMS writes for `infinity` (reference §3.5).
pub(crate) const INFINITY_DATE: &str = "9999-12-31";
/// Timestamp DMS writes for `infinity`.
pub(crate) const INFINITY_DATETIME: &str = "9999-12-31 23:59:59";
/// Date DMS writes for `-infinity` (4713 BC, PostgreSQL's earliest).
pub(crate) const NEG_INFINITY_DATE: &str = "4713-01-01 BC";
/// Timestamp DMS writes for `-infinity`.
pub(crate) const NEG_INFINITY_DATETIME: &str = "4713-01-01 00:00:00 BC";

/// A value that is not in its type's canonical form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BadValue(pub(crate) String);

type R<T> = Result<T, BadValue>;

fn bad<T>(what: &str, v: &[u8]) -> R<T> {
    Err(BadValue(format!("{what} {:?}", String::from_utf8_lossy(v))))
}

/// Parses ASCII digits into a number.
fn digits(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some(n)
}

/// Splits a trailing ` BC` off.
fn strip_bc(v: &[u8]) -> (&[u8], bool) {
    match v.strip_suffix(b" BC") {
        Some(rest) => (rest, true),
        None => (v, false),
    }
}

/// Parses `t`/`f` (also `true`/`false`, `1`/`0`, which MySQL sources may hand over).
pub(crate) fn parse_bool(v: &[u8]) -> R<bool> {
    match v {
        b"t" | b"true" | b"1" => Ok(true),
        b"f" | b"false" | b"0" => Ok(false),
        _ => bad("boolean", v),
    }
}

/// Parses an integer of any width.
pub(crate) fn parse_int<T: std::str::FromStr>(v: &[u8]) -> R<T> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or_else(|| bad("integer", v), Ok)
}

/// Parses a float, including `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn parse_float(v: &[u8]) -> R<f64> {
    let s = std::str::from_utf8(v).map_err(|_| BadValue("float: not UTF-8".into()))?;
    match s {
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_or_else(|_| bad("float", v), Ok),
    }
}

/// Parses an integer-valued decimal (`-123`) below `limit` in magnitude: the fast path for
/// `numeric(p,0)` with p ≤ 18; anything else (fractions, signs like `+`, NaN) is an error the
/// caller answers with [`parse_decimal`].
pub(crate) fn parse_decimal_int(v: &[u8], limit: i64) -> R<i64> {
    let (neg, body) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    match digits(body) {
        Some(n) if n < limit => Ok(if neg { -n } else { n }),
        _ => bad("decimal", v),
    }
}

/// Parses decimal text into an unscaled i128 at `scale`, rounding half away from zero (as
/// PostgreSQL does when it casts to fewer digits), and checks the result fits `precision`.
pub(crate) fn parse_decimal(v: &[u8], precision: u8, scale: i8) -> R<i128> {
    // Fast path for the common case of a short integer at scale 0 (ids, counters).
    if scale == 0 && precision <= 18 {
        let (neg, body) = v.strip_prefix(b"-").map_or((false, v), |b| (true, b));
        if let Some(n) = digits(body).filter(|n| *n < 10i64.pow(u32::from(precision))) {
            return Ok(i128::from(if neg { -n } else { n }));
        }
    }
    let (neg, body) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let (int_part, frac_part) = match body.iter().position(|&b| b == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.iter().chain(frac_part).all(u8::is_ascii_digit)
    {
        return bad("decimal", v);
    }
    let scale_u = scale.max(0) as usize;
    let mut n: i128 = 0;
    let push = |n: i128, d: u8| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(i128::from(d - b'0')))
    };
    for &d in int_part {
        n = push(n, d).ok_or_else(|| {
            BadValue(format!(
                "decimal {:?} is too large",
                String::from_utf8_lossy(v)
            ))
        })?;
    }
    for i in 0..scale_u {
        let d = frac_part.get(i).copied().unwrap_or(b'0');
        n = push(n, d).ok_or_else(|| {
            BadValue(format!(
                "decimal {:?} is too large",
                String::from_utf8_lossy(v)
            ))
        })?;
    }
    if frac_part.get(scale_u).is_some_and(|&d| d >= b'5') {
        n += 1;
    }
    let limit = 10i128
        .checked_pow(u32::from(precision))
        .unwrap_or(i128::MAX);
    if n >= limit {
        return Err(BadValue(format!(
            "decimal {:?} does not fit NUMERIC({precision},{scale})",
            String::from_utf8_lossy(v)
        )));
    }
    Ok(if neg { -n } else { n })
}

/// Appends an unscaled decimal as text with `scale` fraction digits.
pub(crate) fn render_decimal(n: i128, scale: i8, out: &mut Vec<u8>) {
    let digits = n.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    if n < 0 {
        out.push(b'-');
    }
    if scale == 0 {
        out.extend_from_slice(digits.as_bytes());
        return;
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    out.extend_from_slice(int.as_bytes());
    out.push(b'.');
    out.extend_from_slice(frac.as_bytes());
}

/// Parses `YYYY-MM-DD` (any year width, optional ` BC`) into (astronomical year, month, day).
fn ymd(v: &[u8]) -> R<(i32, u32, u32)> {
    let (v, bc) = strip_bc(v);
    let dash2 = v.len().checked_sub(3).filter(|&i| v.get(i) == Some(&b'-'));
    let dash1 = v.len().checked_sub(6).filter(|&i| v.get(i) == Some(&b'-'));
    let (Some(d1), Some(d2)) = (dash1, dash2) else {
        return bad("date", v);
    };
    let (Some(y), Some(m), Some(d)) = (
        digits(&v[..d1]),
        digits(&v[d1 + 1..d2]),
        digits(&v[d2 + 1..]),
    ) else {
        return bad("date", v);
    };
    // Year 1 BC is astronomical year 0.
    let year = if bc { 1 - y as i32 } else { y as i32 };
    Ok((year, m as u32, d as u32))
}

thread_local! {
    /// The last date parsed and its day number: consecutive timestamps mostly share a date.
    static LAST_DATE: std::cell::RefCell<(Vec<u8>, i32)> = const { std::cell::RefCell::new((Vec::new(), 0)) };
}

/// Days since 1970-01-01 for a canonical date; `±infinity` clamp to DMS's limits.
pub(crate) fn parse_date(v: &[u8]) -> R<i32> {
    if let Some(days) = LAST_DATE.with_borrow(|(d, n)| (d.as_slice() == v).then_some(*n)) {
        return Ok(days);
    }
    let days = parse_date_uncached(v)?;
    LAST_DATE.with_borrow_mut(|(d, n)| {
        d.clear();
        d.extend_from_slice(v);
        *n = days;
    });
    Ok(days)
}

fn parse_date_uncached(v: &[u8]) -> R<i32> {
    let v = match v {
        b"infinity" => INFINITY_DATE.as_bytes(),
        b"-infinity" => NEG_INFINITY_DATE.as_bytes(),
        _ => v,
    };
    let (y, m, d) = ymd(v)?;
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .map(|date| chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_CE_DAYS)
        .map_or_else(|| bad("date", v), Ok)
}

/// Microseconds since midnight for `HH:MM:SS[.ffffff]` (24:00:00 allowed, as in PostgreSQL).
pub(crate) fn parse_time(v: &[u8]) -> R<i64> {
    if v.len() < 8 || v[2] != b':' || v[5] != b':' {
        return bad("time", v);
    }
    let (Some(h), Some(m), Some(s)) = (digits(&v[..2]), digits(&v[3..5]), digits(&v[6..8])) else {
        return bad("time", v);
    };
    let frac = match &v[8..] {
        [] => 0,
        [b'.', f @ ..] if !f.is_empty() && f.len() <= 6 => {
            digits(f).ok_or_else(|| BadValue("time fraction".into()))?
                * 10i64.pow(6 - f.len() as u32)
        }
        _ => return bad("time", v),
    };
    if h > 24 || m > 59 || s > 60 {
        return bad("time", v);
    }
    Ok(((h * 60 + m) * 60 + s) * 1_000_000 + frac)
}

/// Splits a canonical timestamp into (date, time, bc), dropping a `+00` zone.
fn split_datetime(v: &[u8]) -> R<(&[u8], &[u8], bool)> {
    let (v, bc) = strip_bc(v);
    let v = v.strip_suffix(b"+00").unwrap_or(v);
    let sp = v
        .iter()
        .position(|&b| b == b' ')
        .map_or_else(|| bad("timestamp", v), Ok)?;
    Ok((&v[..sp], &v[sp + 1..], bc))
}

/// Microseconds since the Unix epoch (UTC) for a canonical timestamp.
pub(crate) fn parse_datetime(v: &[u8]) -> R<i64> {
    let v = match v {
        b"infinity" => INFINITY_DATETIME.as_bytes(),
        b"-infinity" => NEG_INFINITY_DATETIME.as_bytes(),
        _ => v,
    };
    let (date, time, bc) = split_datetime(v)?;
    let days = if bc {
        let mut date_bc = date.to_vec();
        date_bc.extend_from_slice(b" BC");
        parse_date(&date_bc)?
    } else {
        parse_date(date)?
    };
    Ok(i64::from(days) * US_PER_DAY + parse_time(time)?)
}

/// Appends a timestamp as `YYYY-MM-DD HH:MM:SS.ffffff` (always six fraction digits).
pub(crate) fn render_datetime(v: &[u8], out: &mut Vec<u8>) -> R<()> {
    let v = match v {
        b"infinity" => INFINITY_DATETIME.as_bytes(),
        b"-infinity" => NEG_INFINITY_DATETIME.as_bytes(),
        _ => v,
    };
    let (date, time, bc) = split_datetime(v)?;
    if time.len() < 8 {
        return bad("timestamp", v);
    }
    out.extend_from_slice(date);
    out.push(b' ');
    out.extend_from_slice(&time[..8]);
    out.push(b'.');
    let frac = time.get(9..).unwrap_or(b"");
    if frac.len() > 6 || (time.len() > 8 && time[8] != b'.') {
        return bad("timestamp", v);
    }
    out.extend_from_slice(frac);
    out.extend(std::iter::repeat_n(b'0', 6 - frac.len()));
    if bc {
        out.extend_from_slice(b" BC");
    }
    Ok(())
}

/// Renders µs since the epoch as DMS's timestamp-column text `yyyy-MM-dd HH:mm:ss.SSSSSS` (UTC).
pub(crate) fn render_timestamp_column(us: i64, out: &mut String) {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => {
            let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f"));
        }
        None => out.push_str(INFINITY_DATETIME),
    }
}

/// Decodes canonical bytes (`\x` + hex) into raw bytes. A value without the `\x` prefix is
/// taken as it is: that is the unchanged-value marker a source writes in place of a value it
/// did not receive (see `DmsType`).
pub(crate) fn parse_bytes(v: &[u8], out: &mut Vec<u8>) -> R<()> {
    let Some(hex) = v.strip_prefix(b"\\x") else {
        out.extend_from_slice(v);
        return Ok(());
    };
    if hex.len() % 2 != 0 {
        return bad("bytea", v);
    }
    let nib = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    for pair in hex.chunks_exact(2) {
        match (nib(pair[0]), nib(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return bad("bytea", v),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"-12.345", 10, 2), Ok(-1235));
        assert_eq!(parse_decimal(b"0.611111104488373", 28, 6), Ok(611_111));
        assert_eq!(parse_decimal(b"12", 5, 3), Ok(12_000));
        assert_eq!(parse_decimal(b".5", 2, 0), Ok(1));
        assert!(parse_decimal(b"100", 2, 0).is_err());
        assert_eq!(parse_decimal_int(b"-42", 100), Ok(-42));
        assert!(parse_decimal_int(b"100", 100).is_err());
        assert!(parse_decimal_int(b"1.5", 100).is_err());
        let mut out = Vec::new();
        render_decimal(-5, 3, &mut out);
        assert_eq!(out, b"-0.005");
        out.clear();
        render_decimal(611_111, 6, &mut out);
        assert_eq!(out, b"0.611111");
        assert!(parse_decimal(b"NaN", 10, 2).is_err());
        assert!(parse_decimal(b"1e5", 10, 2).is_err());
        assert_eq!(
            parse_decimal(b"99999999999999999999999999999999999999", 38, 0),
            Ok(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date(b"1970-01-01"), Ok(0));
        assert_eq!(parse_date(b"2000-03-01"), Ok(11_017));
        assert_eq!(
            parse_date(b"0001-12-31 BC"),
            parse_date(b"0001-01-01").map(|d| d - 1)
        );
        assert!(parse_date(b"2023-02-29").is_err());
        assert_eq!(parse_time(b"00:00:01.5"), Ok(1_500_000));
        assert_eq!(parse_time(b"24:00:00"), Ok(US_PER_DAY));
        assert_eq!(
            parse_datetime(b"1970-01-02 00:00:00.000001+00"),
            Ok(US_PER_DAY + 1)
        );
        assert_eq!(
            parse_datetime(b"infinity"),
            parse_datetime(b"9999-12-31 23:59:59")
        );
        let mut out = Vec::new();
        render_datetime(b"2024-05-01 10:20:30.5+00", &mut out).unwrap();
        assert_eq!(out, b"2024-05-01 10:20:30.500000");
        out.clear();
        render_datetime(b"-infinity", &mut out).unwrap();
        assert_eq!(out, b"4713-01-01 00:00:00.000000 BC");
        let mut s = String::new();
        render_timestamp_column(1_000_001, &mut s);
        assert_eq!(s, "1970-01-01 00:00:01.000001");
    }

    #[test]
    fn bytes_and_bools() {
        let mut out = Vec::new();
        parse_bytes(b"\\x00ff7A", &mut out).unwrap();
        assert_eq!(out, [0, 255, 0x7a]);
        assert!(parse_bytes(b"\\x0", &mut out).is_err());
        out.clear();
        // Without the prefix: the unchanged-value marker, taken as it is.
        parse_bytes(b"unchanged-toast-datum", &mut out).unwrap();
        assert_eq!(out, b"unchanged-toast-datum");
        assert_eq!(parse_bool(b"t"), Ok(true));
        assert!(parse_bool(b"yes").is_err());
    }

    proptest! {
        #[test]
        fn decimal_round_trips(n in -10i128.pow(20)..10i128.pow(20), scale in 0i8..10) {
            let s = n.abs().to_string();
            let s = format!("{:0>width$}", s, width = scale as usize + 1);
            let (i, f) = s.split_at(s.len() - scale as usize);
            let text = format!("{}{}{}{}", if n < 0 { "-" } else { "" }, i, if scale > 0 { "." } else { "" }, f);
            prop_assert_eq!(parse_decimal(text.as_bytes(), 38, scale), Ok(n));
        }

        #[test]
        fn datetime_matches_chrono(us in -60_000_000_000_000_000i64..200_000_000_000_000_000i64) {
            let t = chrono::DateTime::from_timestamp_micros(us).unwrap();
            let text = t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
            prop_assert_eq!(parse_datetime(text.as_bytes()), Ok(us));
        }
    }
}
