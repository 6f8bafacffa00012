//! `change-data-type`: a value's canonical text (see [`DmsType`]) in one DMS type rewritten as the
//! canonical text of another, or the reason it cannot be.
//!
//! Conversions never lose information silently: a fractional value into an integer type, a
//! number outside the target's range or precision, or text that does not parse is an error the
//! caller reports with the table, column and value.

use crate::change::DmsType;

/// Appends `v` (canonical in `from`) to `out` as canonical text of `to`.
pub(crate) fn convert(
    from: DmsType,
    to: DmsType,
    v: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let text = std::str::from_utf8(v).map_err(|_| "is not UTF-8 text".to_string())?;
    let text = text.trim_end_matches("+00");
    match to {
        DmsType::String { .. } => out.extend_from_slice(match (from, text) {
            (DmsType::Boolean, "t") => b"true",
            (DmsType::Boolean, "f") => b"false",
            _ => v,
        }),
        DmsType::Bytes { .. } => match from {
            DmsType::Bytes { .. } => out.extend_from_slice(v),
            _ => {
                out.extend_from_slice(b"\\x");
                for b in v {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
            }
        },
        DmsType::Boolean => out.push(match text.to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "y" | "yes" => b't',
            "f" | "false" | "0" | "n" | "no" => b'f',
            _ => return Err("is not a boolean".into()),
        }),
        DmsType::Int1 => integer(text, i8::MIN as i128, i8::MAX as i128, out)?,
        DmsType::Int2 => integer(text, i16::MIN as i128, i16::MAX as i128, out)?,
        DmsType::Int4 => integer(text, i32::MIN as i128, i32::MAX as i128, out)?,
        DmsType::Int8 => integer(text, i64::MIN as i128, i64::MAX as i128, out)?,
        DmsType::UInt1 => integer(text, 0, u8::MAX as i128, out)?,
        DmsType::UInt2 => integer(text, 0, u16::MAX as i128, out)?,
        DmsType::UInt4 => integer(text, 0, u32::MAX as i128, out)?,
        DmsType::UInt8 => integer(text, 0, u64::MAX as i128, out)?,
        DmsType::Real4 | DmsType::Real8 => {
            let x: f64 = number(from, text)?
                .parse()
                .map_err(|_| "is not a number".to_string())?;
            let x = if to == DmsType::Real4 {
                f64::from(x as f32)
            } else {
                x
            };
            out.extend_from_slice(x.to_string().as_bytes());
        }
        DmsType::Numeric { precision, scale } => {
            numeric(number(from, text)?, precision, scale, out)?
        }
        DmsType::Date => {
            let date = text
                .get(..10)
                .filter(|d| valid_date(d))
                .ok_or("is not a date")?;
            out.extend_from_slice(date.as_bytes());
        }
        DmsType::Time => {
            let time = match from {
                DmsType::DateTime => text.get(11..).unwrap_or(""),
                _ => text,
            };
            if !valid_time(time) {
                return Err("is not a time".into());
            }
            out.extend_from_slice(time.as_bytes());
        }
        DmsType::DateTime => {
            let stamp = match text.len() {
                10 if valid_date(text) => format!("{text} 00:00:00"),
                n if n >= 19 && valid_date(&text[..10]) && valid_time(&text[11..]) => {
                    format!("{} {}", &text[..10], &text[11..])
                }
                _ => return Err("is not a timestamp".into()),
            };
            out.extend_from_slice(stamp.as_bytes());
        }
    }
    Ok(())
}

/// The text of a number: booleans count as 1 and 0.
fn number(from: DmsType, text: &str) -> Result<&str, String> {
    Ok(match (from, text) {
        (DmsType::Boolean, "t") => "1",
        (DmsType::Boolean, "f") => "0",
        _ => text.trim(),
    })
}

/// An integer within `lo..=hi`; a fraction other than zeros is an error, not a truncation.
fn integer(text: &str, lo: i128, hi: i128, out: &mut Vec<u8>) -> Result<(), String> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if !frac.bytes().all(|b| b == b'0') {
        return Err("has a fraction, which an integer type cannot hold".into());
    }
    let n: i128 = match int {
        "t" => 1,
        "f" => 0,
        _ => int.parse().map_err(|_| "is not an integer".to_string())?,
    };
    if n < lo || n > hi {
        return Err(format!("is outside {lo}..={hi}"));
    }
    out.extend_from_slice(n.to_string().as_bytes());
    Ok(())
}

/// A decimal rounded half away from zero to `scale` digits, within `precision` digits.
fn numeric(text: &str, precision: u8, scale: i8, out: &mut Vec<u8>) -> Result<(), String> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !ok(int) || !ok(frac) {
        return Err("is not a decimal number".into());
    }
    let scale = scale.max(0) as usize;
    // All digits as one integer scaled by 10^scale, then rounded on the first dropped digit.
    let mut kept: String = int.trim_start_matches('0').to_owned();
    kept.extend(frac.chars().chain(std::iter::repeat('0')).take(scale));
    let round_up = frac.as_bytes().get(scale).is_some_and(|d| *d >= b'5');
    let mut n: u128 = if kept.is_empty() {
        0
    } else {
        kept.parse()
            .map_err(|_| "has too many digits".to_string())?
    };
    if round_up {
        n += 1;
    }
    let body = format!("{n:0>width$}", width = scale + 1);
    let (i, f) = body.split_at(body.len() - scale);
    if i.trim_start_matches('0').len() + scale > precision as usize {
        return Err(format!("does not fit NUMERIC({precision},{scale})"));
    }
    if neg && n != 0 {
        out.push(b'-');
    }
    out.extend_from_slice(i.as_bytes());
    if scale > 0 {
        out.push(b'.');
        out.extend_from_slice(f.as_bytes());
    }
    Ok(())
}

/// `YYYY-MM-DD` with a real calendar date.
fn valid_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// `HH:MM:SS[.ffffff]`.
fn valid_time(s: &str) -> bool {
    chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(from: DmsType, to: DmsType, v: &str) -> Result<String, String> {
        let mut out = Vec::new();
        convert(from, to, v.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn numbers_convert_exactly_or_fail() {
        let s = DmsType::String { lob: false };
        let n = |p, sc| DmsType::Numeric {
            precision: p,
            scale: sc,
        };
        assert_eq!(conv(s, DmsType::Int4, "42").unwrap(), "42");
        assert_eq!(conv(n(10, 2), DmsType::Int8, "42.00").unwrap(), "42");
        assert!(conv(n(10, 2), DmsType::Int8, "42.50")
            .unwrap_err()
            .contains("fraction"));
        assert!(conv(s, DmsType::Int2, "40000")
            .unwrap_err()
            .contains("outside"));
        assert!(conv(s, DmsType::UInt1, "-1").is_err());
        assert!(conv(s, DmsType::Int4, "abc").is_err());
        assert_eq!(conv(s, n(6, 2), "1.005").unwrap(), "1.01");
        assert_eq!(conv(s, n(6, 2), "-1.004").unwrap(), "-1.00");
        assert_eq!(conv(s, n(6, 2), "-0.001").unwrap(), "0.00");
        assert_eq!(conv(DmsType::Int4, n(5, 0), "12345").unwrap(), "12345");
        assert!(conv(DmsType::Int4, n(5, 1), "12345")
            .unwrap_err()
            .contains("NUMERIC(5,1)"));
        assert_eq!(conv(DmsType::Int4, DmsType::Real8, "3").unwrap(), "3");
        assert_eq!(conv(DmsType::Boolean, DmsType::Int1, "t").unwrap(), "1");
    }

    #[test]
    fn times_and_text_convert() {
        let s = DmsType::String { lob: false };
        assert_eq!(
            conv(DmsType::DateTime, DmsType::Date, "2024-03-01 10:00:00+00").unwrap(),
            "2024-03-01"
        );
        assert_eq!(
            conv(DmsType::DateTime, DmsType::Time, "2024-03-01 10:00:00.5").unwrap(),
            "10:00:00.5"
        );
        assert_eq!(
            conv(DmsType::Date, DmsType::DateTime, "2024-03-01").unwrap(),
            "2024-03-01 00:00:00"
        );
        assert_eq!(
            conv(s, DmsType::DateTime, "2024-03-01T10:00:00").unwrap(),
            "2024-03-01 10:00:00"
        );
        assert!(conv(s, DmsType::Date, "2024-02-30").is_err());
        assert_eq!(conv(DmsType::Boolean, s, "t").unwrap(), "true");
        assert_eq!(conv(s, DmsType::Boolean, "Yes").unwrap(), "t");
        assert_eq!(
            conv(s, DmsType::Bytes { lob: false }, "hi").unwrap(),
            "\\x6869"
        );
        assert_eq!(conv(DmsType::Int8, s, "-7").unwrap(), "-7");
    }
}
