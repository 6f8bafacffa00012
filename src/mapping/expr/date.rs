//! SQLite's date and time functions (`date`, `time`, `datetime`, `julianday`, `unixepoch`,
//! `strftime`) on top of [`Dt`], and the text form of the header timestamps.

use std::borrow::Cow;

use super::eval::real_of;
use super::julian::{valid_jd, Dt};
use super::num::{push_float, FloatSpec};
use super::{push_int, until_nul, Val};

/// Milliseconds from the julian day epoch to the Unix epoch.
pub(super) const UNIX_EPOCH_JD_MS: i64 = 210_866_760_000_000;

/// Appends µs since the Unix epoch as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
pub(super) fn push_timestamp(us: i64, out: &mut Vec<u8>) {
    let days = us.div_euclid(86_400_000_000);
    let t = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    push_ymd(y, m, d, out);
    out.push(b' ');
    let secs = t / 1_000_000;
    push2(secs / 3600, out);
    out.push(b':');
    push2(secs / 60 % 60, out);
    out.push(b':');
    push2(secs % 60, out);
    out.push(b'.');
    let frac = t % 1_000_000;
    for p in [100_000, 10_000, 1000, 100, 10, 1] {
        out.push(b'0' + (frac / p % 10) as u8);
    }
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Two digits, zero-padded.
fn push2(v: i64, out: &mut Vec<u8>) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// `YYYY-MM-DD`, with a leading `-` for years before 1 BC as SQLite prints them.
fn push_ymd(y: i64, m: i64, d: i64, out: &mut Vec<u8>) {
    if y < 0 {
        out.push(b'-');
    }
    let ya = y.abs();
    push2(ya / 100, out);
    push2(ya % 100, out);
    out.push(b'-');
    push2(m, out);
    out.push(b'-');
    push2(d, out);
}

/// `isDate`: the time value and modifiers in `args` (none: now), or None (SQL NULL) when any is
/// NULL or invalid.
fn is_date(args: &[Val]) -> Option<Dt> {
    let mut p = Dt::default();
    match args.first() {
        None => {
            p.parse(b"now");
        }
        Some(Val::Null) => return None,
        Some(v @ (Val::Int(_) | Val::Real(_))) => p.set_raw(real_of(v)),
        Some(Val::Text(b) | Val::Blob(b)) => {
            if p.parse(until_nul(b)) {
                return None;
            }
        }
    }
    for (i, m) in args.iter().enumerate().skip(1) {
        let text = m.as_text()?;
        if p.modify(until_nul(&text), i) {
            return None;
        }
    }
    p.compute_jd();
    if p.error || !valid_jd(p.jd) {
        return None;
    }
    Some(p)
}

/// The date functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DateFn {
    /// `date()`.
    Date,
    /// `time()`.
    Time,
    /// `datetime()`.
    DateTime,
    /// `julianday()`.
    JulianDay,
    /// `unixepoch()`.
    UnixEpoch,
}

/// `date`, `time`, `datetime`, `julianday` or `unixepoch` of `args`.
pub(super) fn call(f: DateFn, args: &[Val]) -> Val<'static> {
    let Some(mut p) = is_date(args) else {
        return Val::Null;
    };
    match f {
        DateFn::JulianDay => return Val::Real(p.jd as f64 / 86_400_000.0),
        DateFn::UnixEpoch => return Val::Int(p.jd / 1000 - UNIX_EPOCH_JD_MS / 1000),
        _ => {}
    }
    p.compute_ymd_hms();
    let mut out = Vec::with_capacity(20);
    if f != DateFn::Time {
        push_ymd(i64::from(p.y), i64::from(p.m), i64::from(p.d), &mut out);
    }
    if f == DateFn::DateTime {
        out.push(b' ');
    }
    if f != DateFn::Date {
        push_hms(&p, &mut out);
    }
    Val::Text(Cow::Owned(out))
}

/// `HH:MM:SS` (whole seconds).
fn push_hms(p: &Dt, out: &mut Vec<u8>) {
    push2(i64::from(p.h), out);
    out.push(b':');
    push2(i64::from(p.mi), out);
    out.push(b':');
    push2(p.s as i64, out);
}

/// `strftime(format, time-value, modifiers...)`: NULL for an unknown `%` directive.
pub(super) fn strftime(args: &[Val]) -> Val<'static> {
    let Some(fmt) = args.first().and_then(Val::as_text) else {
        return Val::Null;
    };
    let Some(mut x) = is_date(&args[1..]) else {
        return Val::Null;
    };
    x.compute_ymd_hms();
    let fmt = until_nul(&fmt);
    let mut out = Vec::with_capacity(fmt.len() + 8);
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        if c != b'%' {
            out.push(c);
            continue;
        }
        let Some(&d) = fmt.get(i) else {
            return Val::Null;
        };
        i += 1;
        match d {
            b'd' => push2(i64::from(x.d), &mut out),
            b'f' => {
                let spec = FloatSpec {
                    conv: b'f',
                    precision: Some(3),
                    alt: false,
                    bang: false,
                    sign: None,
                };
                // C's "%06.3f": zero-padded to six characters.
                let start = out.len();
                push_float(x.s.min(59.999), spec, &mut out);
                while out.len() - start < 6 {
                    out.insert(start, b'0');
                }
            }
            b'H' => push2(i64::from(x.h), &mut out),
            b'W' | b'j' => {
                let mut y = x;
                y.valid_jd = false;
                (y.m, y.d) = (1, 1);
                y.compute_jd();
                let n_day = (x.jd - y.jd + 43_200_000) / 86_400_000;
                if d == b'W' {
                    let wd = ((x.jd + 43_200_000) / 86_400_000) % 7;
                    push2((n_day + 7 - wd) / 7, &mut out);
                } else {
                    let n = n_day + 1;
                    out.push(b'0' + (n / 100 % 10) as u8);
                    push2(n % 100, &mut out);
                }
            }
            b'J' => {
                let spec = FloatSpec {
                    conv: b'g',
                    precision: Some(16),
                    alt: false,
                    bang: false,
                    sign: None,
                };
                push_float(x.jd as f64 / 86_400_000.0, spec, &mut out);
            }
            b'm' => push2(i64::from(x.m), &mut out),
            b'M' => push2(i64::from(x.mi), &mut out),
            b's' => push_int(x.jd / 1000 - UNIX_EPOCH_JD_MS / 1000, &mut out),
            b'S' => push2(x.s as i64, &mut out),
            b'w' => out.push(b'0' + (((x.jd + 129_600_000) / 86_400_000) % 7) as u8),
            b'Y' => {
                // C's "%04d", where the sign takes one of the four places: Rust's `{:04}` too.
                out.extend_from_slice(format!("{:04}", x.y).as_bytes());
            }
            b'%' => out.push(b'%'),
            _ => return Val::Null,
        }
    }
    Val::Text(Cow::Owned(out))
}
