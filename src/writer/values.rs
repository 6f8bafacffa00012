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
/// 0001-01-01 and 9999-12-31 in days since 1970-01-01: the dates every Parquet reader turns
/// into values (pyarrow makes Python dates, which know the years 1 to 9999; Spark documents the
/// same range).
const PARQUET_FIRST_DAY: i32 = -719_162;
const PARQUET_LAST_DAY: i32 = 2_932_896;

/// Why a value cannot be written as its column's type: the value (as text) and the reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BadValue {
    /// The value, shortened for messages (a `numeric` may hold 100,000 digits).
    pub(crate) value: String,
    /// Why, in a few words.
    pub(crate) why: &'static str,
}

impl BadValue {
    /// `v` cannot be written because `why`.
    pub(crate) fn new(v: &[u8], why: &'static str) -> BadValue {
        const SHOWN: usize = 48;
        let text = String::from_utf8_lossy(v);
        let value = match text.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], v.len()),
            None => text.into_owned(),
        };
        BadValue { value, why }
    }
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "value {:?}: {}", self.value, self.why)
    }
}

type R<T> = Result<T, BadValue>;

fn bad<T>(why: &'static str, v: &[u8]) -> R<T> {
    Err(BadValue::new(v, why))
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
        _ => bad("it is not a boolean", v),
    }
}

/// Parses an integer of any width.
pub(crate) fn parse_int<T: std::str::FromStr>(v: &[u8]) -> R<T> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or_else(|| bad("it is not an integer of the column's width", v), Ok)
}

/// Parses a float, including `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn parse_float(v: &[u8]) -> R<f64> {
    let s = std::str::from_utf8(v).or_else(|_| bad("it is not a number", v))?;
    match s {
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => s.parse().or_else(|_| bad("it is not a number", v)),
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
    let Some((neg, int_part, frac_part)) = split_decimal(v) else {
        return match v {
            b"NaN" | b"Infinity" | b"-Infinity" => bad("a DECIMAL holds no NaN or infinity", v),
            _ => bad("it is not a decimal number", v),
        };
    };
    let too_large = || {
        BadValue::new(
            v,
            "it has more digits before the point than the precision allows",
        )
    };
    let scale_u = scale.max(0) as usize;
    let mut n: i128 = 0;
    let push = |n: i128, d: u8| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(i128::from(d - b'0')))
    };
    for &d in int_part {
        n = push(n, d).ok_or_else(too_large)?;
    }
    for i in 0..scale_u {
        let d = frac_part.get(i).copied().unwrap_or(b'0');
        n = push(n, d).ok_or_else(too_large)?;
    }
    if frac_part.get(scale_u).is_some_and(|&d| d >= b'5') {
        n += 1;
    }
    let limit = 10i128
        .checked_pow(u32::from(precision))
        .unwrap_or(i128::MAX);
    if n >= limit {
        return Err(too_large());
    }
    Ok(if neg { -n } else { n })
}

/// Splits decimal text `[-+]digits[.digits]` into (negative, integer digits, fraction digits);
/// None when it is not one (`NaN`, `Infinity`, exponents).
fn split_decimal(v: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let (neg, body) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let (int_part, frac_part) = match body.iter().position(|&b| b == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    let ok = !(int_part.is_empty() && frac_part.is_empty())
        && int_part.iter().chain(frac_part).all(u8::is_ascii_digit);
    ok.then_some((neg, int_part, frac_part))
}

/// Appends decimal text `v` with exactly `scale` fraction digits, rounded half away from zero
/// as [`parse_decimal`] rounds, at any number of digits (no precision applies: this is CSV's
/// rendering, which writes every digit the source holds). Returns false, appending nothing,
/// when `v` is not decimal text (`NaN`, `Infinity`, `-Infinity`), which CSV writes as it is.
pub(crate) fn render_decimal_text(v: &[u8], scale: i8, out: &mut Vec<u8>) -> bool {
    let Some((neg, int_part, frac_part)) = split_decimal(v) else {
        return false;
    };
    let scale = scale.max(0) as usize;
    let start = out.len();
    if neg {
        out.push(b'-');
    }
    let first_digit = out.len();
    match int_part {
        [] => out.push(b'0'),
        _ => out.extend_from_slice(int_part),
    }
    if scale > 0 {
        out.push(b'.');
        let kept = &frac_part[..frac_part.len().min(scale)];
        out.extend_from_slice(kept);
        out.extend(std::iter::repeat_n(b'0', scale - kept.len()));
    }
    if frac_part.get(scale).is_some_and(|&d| d >= b'5') {
        // Round up: carry from the last digit leftwards, past the point.
        let mut i = out.len();
        loop {
            if i == first_digit {
                out.insert(first_digit, b'1');
                break;
            }
            i -= 1;
            match out[i] {
                b'.' => {}
                b'9' => out[i] = b'0',
                _ => {
                    out[i] += 1;
                    break;
                }
            }
        }
    }
    // No negative zero (PostgreSQL's round(-0.0000001, 6) is 0.000000).
    if neg && out[first_digit..].iter().all(|&b| b == b'0' || b == b'.') {
        out.remove(start);
    }
    true
}

/// Parses `YYYY-MM-DD` (any year width, optional ` BC`) into (astronomical year, month, day).
fn ymd(v: &[u8]) -> R<(i32, u32, u32)> {
    let (v, bc) = strip_bc(v);
    let dash2 = v.len().checked_sub(3).filter(|&i| v.get(i) == Some(&b'-'));
    let dash1 = v.len().checked_sub(6).filter(|&i| v.get(i) == Some(&b'-'));
    let (Some(d1), Some(d2)) = (dash1, dash2) else {
        return bad("it is not a date", v);
    };
    let (Some(y), Some(m), Some(d)) = (
        digits(&v[..d1]),
        digits(&v[d1 + 1..d2]),
        digits(&v[d2 + 1..]),
    ) else {
        return bad("it is not a date", v);
    };
    // Year 1 BC is astronomical year 0.
    let year = if bc { 1 - y as i32 } else { y as i32 };
    Ok((year, m as u32, d as u32))
}

thread_local! {
    /// The last date parsed and its day number: consecutive timestamps mostly share a date.
    static LAST_DATE: std::cell::RefCell<(Vec<u8>, i32)> = const { std::cell::RefCell::new((Vec::new(), 0)) };
}

/// Days since 1970-01-01 for a canonical date (`±infinity` are the callers' to map).
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
    let (y, m, d) = ymd(v)?;
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .map(|date| chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_CE_DAYS)
        .map_or_else(|| bad("it is not a date", v), Ok)
}

/// Microseconds since midnight for `HH:MM:SS[.ffffff]` (24:00:00 allowed, as in PostgreSQL).
pub(crate) fn parse_time(v: &[u8]) -> R<i64> {
    if v.len() < 8 || v[2] != b':' || v[5] != b':' {
        return bad("it is not a time", v);
    }
    let (Some(h), Some(m), Some(s)) = (digits(&v[..2]), digits(&v[3..5]), digits(&v[6..8])) else {
        return bad("it is not a time", v);
    };
    let frac = match &v[8..] {
        [] => 0,
        [b'.', f @ ..] if !f.is_empty() && f.len() <= 6 => match digits(f) {
            Some(n) => n * 10i64.pow(6 - f.len() as u32),
            None => return bad("it is not a time", v),
        },
        _ => return bad("it is not a time", v),
    };
    if h > 24 || m > 59 || s > 60 {
        return bad("it is not a time", v);
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
        .map_or_else(|| bad("it is not a timestamp", v), Ok)?;
    Ok((&v[..sp], &v[sp + 1..], bc))
}

/// Microseconds since the Unix epoch (UTC) for a canonical timestamp (`±infinity` are the
/// callers' to map).
pub(crate) fn parse_datetime(v: &[u8]) -> R<i64> {
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

/// A Parquet DATE (days since 1970-01-01). `infinity` is DMS's 9999-12-31; `-infinity`, whose
/// DMS value 4713 BC no Python or Java reader can hold, is the first day they can: 0001-01-01.
/// Any other date outside the years 1 to 9999 is an error.
pub(crate) fn parquet_date(v: &[u8]) -> R<i32> {
    match v {
        b"infinity" => Ok(PARQUET_LAST_DAY),
        b"-infinity" => Ok(PARQUET_FIRST_DAY),
        _ => parquet_day(parse_date(v)?, v),
    }
}

/// A Parquet TIMESTAMP (µs since the epoch, UTC), with the years and the `±infinity` of
/// [`parquet_date`]: `infinity` is DMS's 9999-12-31 23:59:59, `-infinity` 0001-01-01 00:00:00.
pub(crate) fn parquet_datetime(v: &[u8]) -> R<i64> {
    match v {
        b"infinity" => Ok(i64::from(PARQUET_LAST_DAY) * US_PER_DAY + 86_399_000_000),
        b"-infinity" => Ok(i64::from(PARQUET_FIRST_DAY) * US_PER_DAY),
        _ => {
            let us = parse_datetime(v)?;
            parquet_day(us.div_euclid(US_PER_DAY) as i32, v)?;
            Ok(us)
        }
    }
}

/// `days` when it falls in the years 1 to 9999, else the error for `v`.
fn parquet_day(days: i32, v: &[u8]) -> R<i32> {
    match days {
        PARQUET_FIRST_DAY..=PARQUET_LAST_DAY => Ok(days),
        _ => bad("Parquet readers accept the years 1 to 9999 only", v),
    }
}

/// A Parquet TIME (µs since midnight): PostgreSQL's `24:00:00` is an error, as no reader
/// accepts a time of a full day (pyarrow reads it as 00:00:00).
pub(crate) fn parquet_time(v: &[u8]) -> R<i64> {
    match parse_time(v)? {
        us if us >= US_PER_DAY => bad("Parquet readers accept times up to 23:59:59.999999", v),
        us => Ok(us),
    }
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
        return bad("it is not a timestamp", v);
    }
    out.extend_from_slice(date);
    out.push(b' ');
    out.extend_from_slice(&time[..8]);
    out.push(b'.');
    let frac = time.get(9..).unwrap_or(b"");
    if frac.len() > 6 || (time.len() > 8 && time[8] != b'.') {
        return bad("it is not a timestamp", v);
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
    // The same conditions as `check_bytes`, found while decoding.
    let Some(hex) = v.strip_prefix(b"\\x") else {
        out.extend_from_slice(v);
        return Ok(());
    };
    if hex.len() % 2 != 0 {
        return bad("it is not hex bytes", v);
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
            _ => return bad("it is not hex bytes", v),
        }
    }
    Ok(())
}

/// Fails where [`parse_bytes`] fails, without decoding.
pub(crate) fn check_bytes(v: &[u8]) -> R<()> {
    match v.strip_prefix(b"\\x") {
        Some(hex) if hex.len() % 2 != 0 || !hex.iter().all(u8::is_ascii_hexdigit) => {
            bad("it is not hex bytes", v)
        }
        _ => Ok(()),
    }
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

    #[test]
    fn decimals_that_do_not_fit_name_the_value_and_why() {
        let why = |v: &[u8], p, s| parse_decimal(v, p, s).unwrap_err().to_string();
        assert_eq!(
            why(b"NaN", 28, 6),
            r#"value "NaN": a DECIMAL holds no NaN or infinity"#
        );
        assert!(why(b"-Infinity", 10, 2).contains("no NaN or infinity"));
        // 23 digits before the point do not fit NUMERIC(28,6); 22 do.
        assert!(parse_decimal(b"9999999999999999999999.4", 28, 6).is_ok());
        assert_eq!(
            why(b"10000000000000000000000", 28, 6),
            r#"value "10000000000000000000000": it has more digits before the point than the precision allows"#
        );
        // Beyond i128, and a value too long to show whole.
        let huge = format!("1{}", "0".repeat(200));
        let shown = why(huge.as_bytes(), 28, 6);
        assert!(
            shown.starts_with(&format!("value \"1{}… (201 bytes)\":", "0".repeat(47))),
            "{shown}"
        );
    }

    /// CSV's decimal text: rounded half away from zero to the scale at any length, like
    /// `parse_decimal`; not-a-number text is left to the caller.
    #[test]
    fn decimal_text_rounds_at_any_length() {
        let text = |v: &str, scale| {
            let mut out = Vec::new();
            render_decimal_text(v.as_bytes(), scale, &mut out)
                .then(|| String::from_utf8(out).unwrap())
        };
        assert_eq!(text("0.611111104488373", 6).as_deref(), Some("0.611111"));
        assert_eq!(text("12", 3).as_deref(), Some("12.000"));
        assert_eq!(text(".5", 0).as_deref(), Some("1"));
        assert_eq!(text("-0.0000005", 6).as_deref(), Some("-0.000001"));
        assert_eq!(text("-0.0000001", 6).as_deref(), Some("0.000000"));
        assert_eq!(text("9.9999995", 6).as_deref(), Some("10.000000"));
        assert_eq!(text("-999.5", 0).as_deref(), Some("-1000"));
        let big = format!("{}.1234567", "9".repeat(40));
        assert_eq!(text(&big, 6), Some(format!("{}.123457", "9".repeat(40))));
        assert_eq!(text("NaN", 6), None);
        assert_eq!(text("-Infinity", 6), None);
        for (v, scale) in [
            ("-12.345", 2),
            ("0.611111104488373", 6),
            ("99.995", 2),
            ("-0.5", 0),
        ] {
            let n = parse_decimal(v.as_bytes(), 38, scale).unwrap();
            let s = n.unsigned_abs().to_string();
            let s = format!("{:0>width$}", s, width = scale as usize + 1);
            let (i, f) = s.split_at(s.len() - scale as usize);
            let sign = if n < 0 { "-" } else { "" };
            let dot = if scale > 0 { "." } else { "" };
            assert_eq!(text(v, scale), Some(format!("{sign}{i}{dot}{f}")), "{v}");
        }
    }

    /// Parquet DATE, TIMESTAMP and TIME hold what every reader reads: years 1 to 9999 (±infinity
    /// clamped to their ends), times of day before 24:00:00.
    #[test]
    fn parquet_dates_and_times_stay_within_what_readers_accept() {
        let day = |y, m, d| {
            chrono::Datelike::num_days_from_ce(&chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
                - UNIX_EPOCH_CE_DAYS
        };
        assert_eq!(parquet_date(b"infinity"), Ok(day(9999, 12, 31)));
        assert_eq!(parquet_date(b"-infinity"), Ok(day(1, 1, 1)));
        assert_eq!(parquet_date(b"9999-12-31"), Ok(day(9999, 12, 31)));
        assert_eq!(parquet_date(b"0001-01-01"), Ok(day(1, 1, 1)));
        let err = |r: R<i32>| r.unwrap_err().to_string();
        assert_eq!(
            err(parquet_date(b"10000-01-01")),
            r#"value "10000-01-01": Parquet readers accept the years 1 to 9999 only"#
        );
        assert!(parquet_date(b"0001-12-31 BC").is_err());
        assert_eq!(
            parquet_datetime(b"infinity"),
            parse_datetime(b"9999-12-31 23:59:59")
        );
        assert_eq!(
            parquet_datetime(b"-infinity"),
            parse_datetime(b"0001-01-01 00:00:00")
        );
        assert_eq!(
            parquet_datetime(b"9999-12-31 23:59:59.999999+00"),
            Ok(i64::from(day(9999, 12, 31)) * US_PER_DAY + US_PER_DAY - 1)
        );
        assert!(parquet_datetime(b"10000-01-01 00:00:00").is_err());
        assert!(parquet_datetime(b"0001-12-31 23:59:59.999999+00 BC").is_err());
        assert_eq!(parquet_time(b"23:59:59.999999"), Ok(US_PER_DAY - 1));
        assert_eq!(
            parquet_time(b"24:00:00").unwrap_err().to_string(),
            r#"value "24:00:00": Parquet readers accept times up to 23:59:59.999999"#
        );
    }

    #[test]
    fn check_bytes_fails_where_parse_bytes_fails() {
        for v in [
            &b"\\x00ff"[..],
            b"\\x0",
            b"\\xzz",
            b"\\x",
            b"raw marker",
            b"",
        ] {
            let mut out = Vec::new();
            assert_eq!(
                check_bytes(v).is_ok(),
                parse_bytes(v, &mut out).is_ok(),
                "{v:?}"
            );
        }
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
        fn decimal_text_matches_parse_decimal(n in -10i128.pow(30)..10i128.pow(30), digits in 0u32..12, scale in 0i8..8) {
            // A value with `digits` fraction digits, rendered at `scale`.
            let s = format!("{:0>width$}", n.unsigned_abs(), width = digits as usize + 1);
            let (i, f) = s.split_at(s.len() - digits as usize);
            let text = format!("{}{i}{}{f}", if n < 0 { "-" } else { "" }, if digits > 0 { "." } else { "" });
            let m = parse_decimal(text.as_bytes(), 38, scale).unwrap();
            let s = format!("{:0>width$}", m.unsigned_abs(), width = scale as usize + 1);
            let (i, f) = s.split_at(s.len() - scale as usize);
            let expected = format!("{}{i}{}{f}", if m < 0 { "-" } else { "" }, if scale > 0 { "." } else { "" });
            let mut out = Vec::new();
            prop_assert!(render_decimal_text(text.as_bytes(), scale, &mut out));
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }

        #[test]
        fn datetime_matches_chrono(us in -60_000_000_000_000_000i64..200_000_000_000_000_000i64) {
            let t = chrono::DateTime::from_timestamp_micros(us).unwrap();
            let text = t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
            prop_assert_eq!(parse_datetime(text.as_bytes()), Ok(us));
        }
    }
}
