//! SQLite's `DateTime` (`date.c`): a julian day number in milliseconds and/or calendar fields,
//! each computed from the other on demand, the parsing of time values and the modifiers.
//!
//! The algorithms are SQLite's own (Meeus' julian day conversion on the proleptic Gregorian
//! calendar, fields normalised lazily), so edge cases such as `2021-02-30` or `+1 month` from
//! January 31st give SQLite's answers. Local time is UTC: `localtime` and `utc` run SQLite's
//! conversions with a zero offset, including their side effects (normalising the fields,
//! clearing an earlier error).

use super::date::{civil_from_days, UNIX_EPOCH_JD_MS};
use super::num::{atof, is_space};

/// SQLite's `DateTime`: a julian day in ms and/or calendar fields, each with a validity flag.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Dt {
    /// Julian day number × 86400000.
    pub(super) jd: i64,
    /// Year.
    pub(super) y: i32,
    /// Month 1-12.
    pub(super) m: i32,
    /// Day 1-31.
    pub(super) d: i32,
    /// Hour.
    pub(super) h: i32,
    /// Minute.
    pub(super) mi: i32,
    /// Seconds with fraction.
    pub(super) s: f64,
    /// Time zone offset in minutes.
    tz: i32,
    /// `jd` is valid.
    pub(super) valid_jd: bool,
    /// `y`, `m`, `d` are valid.
    valid_ymd: bool,
    /// `h`, `mi`, `s` are valid.
    valid_hms: bool,
    /// `tz` is valid.
    valid_tz: bool,
    /// A time zone was given (or `utc` applied).
    tz_set: bool,
    /// `s` holds a raw number still open to `unixepoch`/`julianday`/`auto`.
    raw_s: bool,
    /// Out of range.
    pub(super) error: bool,
}

/// Reads exactly `n` digits at `z[i..]` in `min..=max`.
fn digits(z: &[u8], i: usize, n: usize, min: i32, max: i32) -> Option<i32> {
    let s = z.get(i..i + n)?;
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0, |a, &c| a * 10 + i32::from(c - b'0'));
    (min..=max).contains(&v).then_some(v)
}

impl Dt {
    /// `datetimeError`: SQLite forgets everything but the error.
    fn fail(&mut self) {
        *self = Dt {
            error: true,
            ..Dt::default()
        };
    }

    /// `toLocaltime` with UTC as the local zone: the calendar fields of the julian day, and the
    /// error state cleared (as SQLite does, so `localtime` after an invalid value yields a date).
    fn localtime(&mut self) {
        self.compute_jd();
        let (t, year_diff) = if !(210_866_760_000_000..=213_014_145_600_000).contains(&self.jd) {
            // SQLite maps years outside 1970-2037 into that range for the C library and back.
            let mut x = *self;
            x.compute_ymd_hms();
            let diff = (2000 + x.y % 4) - x.y;
            x.y += diff;
            x.valid_jd = false;
            x.compute_jd();
            (x.jd / 1000 - UNIX_EPOCH_JD_MS / 1000, diff)
        } else {
            (self.jd / 1000 - UNIX_EPOCH_JD_MS / 1000, 0)
        };
        let (y, m, d) = civil_from_days(t.div_euclid(86400));
        let secs = t.rem_euclid(86400);
        self.y = y as i32 - year_diff;
        self.m = m as i32;
        self.d = d as i32;
        self.h = (secs / 3600) as i32;
        self.mi = (secs / 60 % 60) as i32;
        self.s = (secs % 60) as f64 + (self.jd % 1000) as f64 * 0.001;
        self.valid_ymd = true;
        self.valid_hms = true;
        self.valid_jd = false;
        self.raw_s = false;
        self.valid_tz = false;
        self.error = false;
    }

    /// `parseTimezone`: `[+-]HH:MM` or `Z` then only spaces. True on error.
    fn parse_tz(&mut self, z: &[u8]) -> bool {
        let mut i = 0;
        while i < z.len() && is_space(z[i]) {
            i += 1;
        }
        self.tz = 0;
        let sgn = match z.get(i) {
            None => return false,
            Some(b'-') => -1,
            Some(b'+') => 1,
            Some(b'Z' | b'z') => 0,
            Some(_) => return true,
        };
        i += 1;
        if sgn != 0 {
            let (Some(h), Some(m)) = (digits(z, i, 2, 0, 14), digits(z, i + 3, 2, 0, 59)) else {
                return true;
            };
            if z[i + 2] != b':' {
                return true;
            }
            i += 5;
            self.tz = sgn * (m + h * 60);
        }
        while i < z.len() && is_space(z[i]) {
            i += 1;
        }
        self.tz_set = true;
        i < z.len()
    }

    /// `parseHhMmSs`: `HH:MM[:SS[.fff]]` and an optional zone. True on error.
    fn parse_hms(&mut self, z: &[u8]) -> bool {
        let (Some(h), Some(m)) = (digits(z, 0, 2, 0, 24), digits(z, 3, 2, 0, 59)) else {
            return true;
        };
        if z[2] != b':' {
            return true;
        }
        let mut i = 5;
        let mut s = 0.0;
        if z.get(i) == Some(&b':') {
            let Some(sec) = digits(z, i + 1, 2, 0, 59) else {
                return true;
            };
            s = f64::from(sec);
            i += 3;
            if z.get(i) == Some(&b'.') && z.get(i + 1).is_some_and(u8::is_ascii_digit) {
                let (mut ms, mut scale) = (0.0, 1.0);
                i += 1;
                while i < z.len() && z[i].is_ascii_digit() {
                    ms = ms * 10.0 + f64::from(z[i] - b'0');
                    scale *= 10.0;
                    i += 1;
                }
                s += ms / scale;
            }
        }
        self.valid_jd = false;
        self.raw_s = false;
        self.valid_hms = true;
        self.h = h;
        self.mi = m;
        self.s = s;
        if self.parse_tz(&z[i..]) {
            return true;
        }
        self.valid_tz = self.tz != 0;
        false
    }

    /// `parseYyyyMmDd`: `[-]YYYY-MM-DD`, optionally followed by spaces or `T` and a time. True on
    /// error.
    fn parse_ymd(&mut self, z: &[u8]) -> bool {
        let neg = z.first() == Some(&b'-');
        let z = if neg { &z[1..] } else { z };
        let (Some(y), Some(m), Some(d)) = (
            digits(z, 0, 4, 0, 9999),
            digits(z, 5, 2, 1, 12),
            digits(z, 8, 2, 1, 31),
        ) else {
            return true;
        };
        if z[4] != b'-' || z[7] != b'-' {
            return true;
        }
        let mut i = 10;
        while i < z.len() && (is_space(z[i]) || z[i] == b'T') {
            i += 1;
        }
        if self.parse_hms(&z[i..]) {
            if i < z.len() {
                return true;
            }
            self.valid_hms = false;
        }
        self.valid_jd = false;
        self.valid_ymd = true;
        self.y = if neg { -y } else { y };
        self.m = m;
        self.d = d;
        if self.valid_tz {
            self.compute_jd();
        }
        false
    }

    /// `setRawDateNumber`: a number is a julian day, or raw seconds for `unixepoch`.
    pub(super) fn set_raw(&mut self, r: f64) {
        self.s = r;
        self.raw_s = true;
        if (0.0..5_373_484.5).contains(&r) {
            self.jd = (r * 86_400_000.0 + 0.5) as i64;
            self.valid_jd = true;
        }
    }

    /// `parseDateOrTime`: a date, a time, `now` or a julian day number. True on error.
    pub(super) fn parse(&mut self, z: &[u8]) -> bool {
        if !self.parse_ymd(z) || !self.parse_hms(z) {
            return false;
        }
        if z.eq_ignore_ascii_case(b"now") {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            self.jd = ms + UNIX_EPOCH_JD_MS;
            self.valid_jd = true;
            return false;
        }
        let (rc, r) = atof(z);
        if rc > 0 {
            self.set_raw(r);
            return false;
        }
        true
    }

    /// `computeJD`: the julian day from the calendar fields (2000-01-01 when only a time).
    pub(super) fn compute_jd(&mut self) {
        if self.valid_jd {
            return;
        }
        let (mut y, mut m, d) = if self.valid_ymd {
            (self.y, self.m, self.d)
        } else {
            (2000, 1, 1)
        };
        if !(-4713..=9999).contains(&y) || self.raw_s {
            self.fail();
            return;
        }
        if m <= 2 {
            y -= 1;
            m += 12;
        }
        let a = y / 100;
        let b = 2 - a + a / 4;
        let x1 = 36525 * (y + 4716) / 100;
        let x2 = 306_001 * (m + 1) / 10000;
        self.jd = ((f64::from(x1 + x2 + d + b) - 1524.5) * 86_400_000.0) as i64;
        self.valid_jd = true;
        if self.valid_hms {
            self.jd += i64::from(self.h) * 3_600_000
                + i64::from(self.mi) * 60_000
                + (self.s * 1000.0 + 0.5) as i64;
            if self.valid_tz {
                self.jd -= i64::from(self.tz) * 60_000;
                self.valid_ymd = false;
                self.valid_hms = false;
                self.valid_tz = false;
            }
        }
    }

    /// `computeYMD`: calendar date from the julian day.
    fn compute_ymd(&mut self) {
        if self.valid_ymd {
            return;
        }
        if !self.valid_jd {
            (self.y, self.m, self.d) = (2000, 1, 1);
        } else if !valid_jd(self.jd) {
            self.fail();
            return;
        } else {
            let z = ((self.jd + 43_200_000) / 86_400_000) as i32;
            let a = ((f64::from(z) - 1_867_216.25) / 36524.25) as i32;
            let a = z + 1 + a - a / 4;
            let b = a + 1524;
            let c = ((f64::from(b) - 122.1) / 365.25) as i32;
            let d = (36525 * (c & 32767)) / 100;
            let e = (f64::from(b - d) / 30.6001) as i32;
            let x1 = (30.6001 * f64::from(e)) as i32;
            self.d = b - d - x1;
            self.m = if e < 14 { e - 1 } else { e - 13 };
            self.y = if self.m > 2 { c - 4716 } else { c - 4715 };
        }
        self.valid_ymd = true;
    }

    /// `computeHMS`: time of day from the julian day.
    fn compute_hms(&mut self) {
        if self.valid_hms {
            return;
        }
        self.compute_jd();
        let ms = (self.jd.wrapping_add(43_200_000) % 86_400_000) as i32;
        let mut s = f64::from(ms) / 1000.0;
        let whole = s as i32;
        s -= f64::from(whole);
        self.h = whole / 3600;
        let rest = whole - self.h * 3600;
        self.mi = rest / 60;
        self.s = s + f64::from(rest - self.mi * 60);
        self.raw_s = false;
        self.valid_hms = true;
    }

    /// Both calendar date and time of day.
    pub(super) fn compute_ymd_hms(&mut self) {
        self.compute_ymd();
        self.compute_hms();
    }

    /// Forgets the calendar fields (after the julian day changed).
    fn clear_fields(&mut self) {
        self.valid_ymd = false;
        self.valid_hms = false;
        self.valid_tz = false;
    }

    /// `parseModifier`: applies one modifier (`idx` is its 1-based position). True on error.
    pub(super) fn modify(&mut self, z: &[u8], idx: usize) -> bool {
        let lower = z.to_ascii_lowercase();
        let l = lower.as_slice();
        match l.first() {
            Some(b'a') if l == b"auto" => {
                if idx > 1 {
                    return true;
                }
                if !self.raw_s || self.valid_jd {
                    self.raw_s = false;
                    return false;
                }
                if self.s >= -210_866_760_000.0 && self.s <= 253_402_300_799.0 {
                    let r = self.s * 1000.0 + UNIX_EPOCH_JD_MS as f64;
                    self.clear_fields();
                    self.jd = (r + 0.5) as i64;
                    self.valid_jd = true;
                    self.raw_s = false;
                    return false;
                }
                true
            }
            Some(b'j') if l == b"julianday" => {
                if idx > 1 || !(self.valid_jd && self.raw_s) {
                    return true;
                }
                self.raw_s = false;
                false
            }
            // Local time is UTC here: SQLite's conversion with a zero offset.
            Some(b'l') if l == b"localtime" => {
                self.localtime();
                false
            }
            Some(b'u') if l == b"unixepoch" && self.raw_s => {
                if idx > 1 {
                    return true;
                }
                let r = self.s * 1000.0 + UNIX_EPOCH_JD_MS as f64;
                if !(0.0..464_269_060_800_000.0).contains(&r) {
                    return true;
                }
                self.clear_fields();
                self.jd = (r + 0.5) as i64;
                self.valid_jd = true;
                self.raw_s = false;
                false
            }
            Some(b'u') if l == b"utc" => {
                if !self.tz_set {
                    // SQLite's search for the UTC time whose local time is this one; with UTC
                    // as the local zone it ends at once unless the value was out of range.
                    self.compute_jd();
                    let orig = self.jd;
                    let mut guess = orig;
                    let mut err = 0;
                    for _ in 0..4 {
                        guess -= err;
                        let mut t = Dt {
                            jd: guess,
                            valid_jd: true,
                            ..Dt::default()
                        };
                        t.localtime();
                        t.compute_jd();
                        err = t.jd - orig;
                        if err == 0 {
                            break;
                        }
                    }
                    *self = Dt {
                        jd: guess,
                        valid_jd: true,
                        tz_set: true,
                        ..Dt::default()
                    };
                }
                false
            }
            Some(b'w') if l.starts_with(b"weekday ") => {
                let (rc, r) = atof(&l[8..]);
                let n = r as i64;
                if rc <= 0 || n as f64 != r || !(0.0..7.0).contains(&r) {
                    return true;
                }
                self.compute_ymd_hms();
                self.valid_tz = false;
                self.valid_jd = false;
                self.compute_jd();
                let mut day = ((self.jd + 129_600_000) / 86_400_000) % 7;
                if day > n {
                    day -= 7;
                }
                self.jd = self.jd.wrapping_add((n - day) * 86_400_000);
                self.clear_fields();
                false
            }
            Some(b's') if l.starts_with(b"start of ") => {
                if !self.valid_jd && !self.valid_ymd && !self.valid_hms {
                    return true;
                }
                self.compute_ymd();
                self.valid_hms = true;
                (self.h, self.mi, self.s) = (0, 0, 0.0);
                self.raw_s = false;
                self.valid_tz = false;
                self.valid_jd = false;
                match &l[9..] {
                    b"month" => self.d = 1,
                    b"year" => (self.m, self.d) = (1, 1),
                    b"day" => {}
                    _ => return true,
                }
                false
            }
            Some(b'+' | b'-' | b'0'..=b'9') => self.offset(z),
            _ => true,
        }
    }

    /// `±NNN unit` and `±HH:MM[:SS[.fff]]` modifiers. True on error.
    fn offset(&mut self, z: &[u8]) -> bool {
        let mut n = 1;
        while n < z.len() && z[n] != b':' && !is_space(z[n]) {
            n += 1;
        }
        let (rc, mut r) = atof(&z[..n]);
        if rc <= 0 {
            return true;
        }
        if z.get(n) == Some(&b':') {
            let z2 = if z[0].is_ascii_digit() { z } else { &z[1..] };
            let mut tx = Dt::default();
            if tx.parse_hms(z2) {
                return true;
            }
            tx.compute_jd();
            tx.jd -= 43_200_000;
            let day = tx.jd / 86_400_000;
            tx.jd -= day * 86_400_000;
            if z[0] == b'-' {
                tx.jd = -tx.jd;
            }
            self.compute_jd();
            self.clear_fields();
            self.jd = self.jd.wrapping_add(tx.jd);
            return false;
        }
        let mut i = n;
        while i < z.len() && is_space(z[i]) {
            i += 1;
        }
        let mut unit = &z[i..];
        if unit.len() > 10 || unit.len() < 3 {
            return true;
        }
        if unit.last().is_some_and(|c| c.eq_ignore_ascii_case(&b's')) {
            unit = &unit[..unit.len() - 1];
        }
        self.compute_jd();
        // SQLite keeps these limits as C floats.
        const UNITS: [(&[u8], f32, f64); 6] = [
            (b"second", 4.6427e14, 1.0),
            (b"minute", 7.7379e12, 60.0),
            (b"hour", 1.2897e11, 3600.0),
            (b"day", 5_373_485.0, 86400.0),
            (b"month", 176_546.0, 2_592_000.0),
            (b"year", 14713.0, 31_536_000.0),
        ];
        let rounder = if r < 0.0 { -0.5 } else { 0.5 };
        let mut rc = true;
        for (name, limit, xform) in UNITS {
            let limit = f64::from(limit);
            if !unit.eq_ignore_ascii_case(name) || r <= -limit || r >= limit {
                continue;
            }
            if name == b"month" {
                self.compute_ymd_hms();
                self.m += r as i32;
                let x = if self.m > 0 {
                    (self.m - 1) / 12
                } else {
                    (self.m - 12) / 12
                };
                self.y += x;
                self.m -= x * 12;
                self.valid_jd = false;
                r -= f64::from(r as i32);
            } else if name == b"year" {
                self.compute_ymd_hms();
                self.y += r as i32;
                self.valid_jd = false;
                r -= f64::from(r as i32);
            }
            self.compute_jd();
            // Wrapping: a long chain of huge offsets must not panic; the result is out of range
            // and NULL either way.
            self.jd = self.jd.wrapping_add((r * 1000.0 * xform + rounder) as i64);
            rc = false;
            break;
        }
        self.clear_fields();
        rc
    }
}

/// `validJulianDay`: 0000-01-01 BC 4713 noon through 9999-12-31 23:59:59.999.
pub(super) fn valid_jd(jd: i64) -> bool {
    (0..=464_269_060_799_999).contains(&jd)
}
