//! Object-key naming in DMS's S3 layout. Pure functions: no I/O, no clock.
//!
//! Kept free of side effects so every key DMS would produce (reference §2, §1.7) can be pinned
//! by a test, and so resume logic can recompute keys without touching S3.

use crate::error::{Error, Result};
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// Output file format; decides the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// `DataFormat=csv` (DMS default).
    Csv,
    /// `DataFormat=parquet`.
    Parquet,
}

/// DMS `CompressionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// `NONE` (DMS default).
    None,
    /// `GZIP`: whole-file gzip for CSV, but the column codec for Parquet.
    Gzip,
}

/// DMS `DatePartitionSequence`; variants spell the DMS values (`YYYYMMDD` is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateSequence {
    YyyyMmDd,
    YyyyMmDdHh,
    YyyyMm,
    MmYyyyDd,
    DdMmYyyy,
}

/// DMS `DatePartitionDelimiter`; `SLASH` (default) nests folders, `NONE` concatenates the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateDelimiter {
    Slash,
    Underscore,
    Dash,
    None,
}

/// Date-partition settings; `None` in `Layout::date_partition` means DatePartitionEnabled=false.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DatePartition {
    /// Order of the date parts.
    pub(crate) sequence: DateSequence,
    /// Separator between the parts.
    pub(crate) delimiter: DateDelimiter,
    /// `DatePartitionTimezone`; DMS applies it to CDC file names too (§1.7).
    pub(crate) timezone: Tz,
}

impl Default for DatePartition {
    /// DMS defaults when only `DatePartitionEnabled=true` is given.
    fn default() -> Self {
        let (sequence, delimiter) = (DateSequence::YyyyMmDd, DateDelimiter::Slash);
        DatePartition {
            sequence,
            delimiter,
            timezone: chrono_tz::UTC,
        }
    }
}

/// Everything that decides object keys for one task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// Expanded BucketFolder without leading/trailing slashes ("" = none).
    pub(crate) bucket_folder: String,
    /// Output format.
    pub(crate) format: FileFormat,
    /// Output compression.
    pub(crate) compression: Compression,
    /// Date folders for CDC files; `None` = DatePartitionEnabled=false.
    pub(crate) date_partition: Option<DatePartition>,
}

impl Layout {
    /// File extension incl. dot: ".csv", ".csv.gz" (CSV+GZIP), ".parquet" (Parquet+GZIP stays
    /// ".parquet": GZIP is the Parquet-internal codec, so the file itself is not gzipped).
    pub(crate) fn extension(&self) -> &'static str {
        match (self.format, self.compression) {
            (FileFormat::Csv, Compression::None) => ".csv",
            (FileFormat::Csv, Compression::Gzip) => ".csv.gz",
            (FileFormat::Parquet, _) => ".parquet",
        }
    }

    /// Prefix of everything a table owns: "[folder/]schema/table/" (always ends with '/').
    ///
    /// The trailing slash matters: without it, deleting table `t` would also delete `t2`'s
    /// objects. Names are not validated here; callers run `check_segment` once per table.
    pub(crate) fn table_prefix(&self, schema: &str, table: &str) -> String {
        format!("{}{schema}/{table}/", dir(&self.bucket_folder))
    }

    /// Full-load file key: "[folder/]schema/table/LOAD%08X.ext"; `counter` starts at 1.
    pub(crate) fn load_key(&self, schema: &str, table: &str, counter: u64) -> Result<String> {
        // Wider counters would break the fixed 8-digit width that listing order relies on.
        if counter == 0 || counter > u64::from(u32::MAX) {
            return Err(Error::config(
                format!("LOAD counter {counter} for {schema}.{table} is not in 1..=0xFFFFFFFF"),
                "LOAD counters must fit 8 hex digits; raise MaxFileSize so fewer files are needed",
            ));
        }
        let prefix = self.table_prefix(schema, table);
        Ok(format!("{prefix}LOAD{counter:08X}{}", self.extension()))
    }

    /// Parses the LOAD counter out of a key or file name produced by `load_key` (any extension).
    /// None if not a LOAD file.
    ///
    /// Strict on purpose (8 upper-case hex digits, counter >= 1): anything looser could match a
    /// user's own object and make numbering continue from a wrong value.
    pub(crate) fn parse_load_counter(file_name: &str) -> Option<u32> {
        let name = file_name.rsplit('/').next().unwrap_or(file_name);
        let (digits, tail) = name.strip_prefix("LOAD")?.split_at_checked(8)?;
        let upper_hex = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
        if !digits.bytes().all(upper_hex) || !(tail.is_empty() || tail.starts_with('.')) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok().filter(|&n| n != 0)
    }

    /// The `yyyyMMddHHmmssSSS` stamp a CDC file created at `file_time` is named by (partition
    /// timezone, else UTC). Callers keep names strictly increasing with [`next_stamp`].
    pub(crate) fn cdc_stamp(&self, file_time: DateTime<Utc>) -> String {
        let tz = self
            .date_partition
            .as_ref()
            .map_or(chrono_tz::UTC, |p| p.timezone);
        stamp(file_time, tz)
    }

    /// CDC file key "[folder/]schema/table/[date folders/]yyyyMMdd-HHmmssSSS.ext" for a stamp
    /// from [`cdc_stamp`](Self::cdc_stamp) or [`next_stamp`]: the date folder and the name both
    /// come from the stamp, so they always agree.
    pub(crate) fn cdc_key_at(&self, schema: &str, table: &str, stamp: &str) -> String {
        let mut key = self.table_prefix(schema, table);
        if let Some(p) = &self.date_partition {
            key.push_str(&folder_from_stamp(p, stamp));
            key.push('/');
        }
        let (date, time) = stamp.split_at(stamp.len() - 9);
        format!("{key}{date}-{time}{}", self.extension())
    }

    /// The folder of the transaction files: "[folder/]cdc_path/".
    pub(crate) fn cdc_txn_folder(&self, cdc_path: &str) -> String {
        format!(
            "{}{}",
            dir(&self.bucket_folder),
            dir(cdc_path.trim_matches('/'))
        )
    }

    /// Transaction file key for PreserveTransactions:
    /// "[folder/]cdc_path/CDC_TXN-yyyyMMddHHmmssSSS.csv" (plus ".gz" with GZIP).
    ///
    /// Always CSV because DMS writes these as CSV even for Parquet tasks; the stamp is UTC
    /// because DMS forbids PreserveTransactions with date partitioning.
    pub(crate) fn cdc_txn_key_at(&self, cdc_path: &str, stamp: &str) -> String {
        let ext = match self.compression {
            Compression::None => ".csv",
            Compression::Gzip => ".csv.gz",
        };
        format!("{}CDC_TXN-{stamp}{ext}", self.cdc_txn_folder(cdc_path))
    }
}

/// "folder/" or "", so an unset BucketFolder or CdcPath never yields a key starting with '/'.
fn dir(folder: &str) -> String {
    match folder {
        "" => String::new(),
        f => format!("{f}/"),
    }
}

/// `yyyyMMddHHmmssSSS` wall-clock time of `at` in `tz`: the one rendering every name derives from.
///
/// Millis are clamped because chrono encodes a leap second as nanos >= 1e9, and a 4-digit
/// millisecond field would break the fixed width and thus the chronological sort order.
fn stamp(at: DateTime<Utc>, tz: Tz) -> String {
    let t = at.with_timezone(&tz);
    let ms = (t.nanosecond() / 1_000_000).min(999);
    let (y, mo, d) = (t.year(), t.month(), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{ms:03}")
}

/// Placeholder tokens with their byte range counted from the end of a `stamp`, so a year that
/// is not 4 digits wide cannot shift the other fields. Case-sensitive: `MM` month, `mm` minute.
const TOKENS: [(&str, usize, usize); 7] = [
    ("yyyy", usize::MAX, 13),
    ("MM", 13, 11),
    ("dd", 11, 9),
    ("HH", 9, 7),
    ("mm", 7, 5),
    ("ss", 5, 3),
    ("SSS", 3, 0),
];

/// One field of a `stamp` by its `TOKENS` name.
fn field<'a>(stamp: &'a str, token: &str) -> &'a str {
    let (_, from, to) = TOKENS.iter().find(|t| t.0 == token).expect("known token");
    &stamp[stamp.len().saturating_sub(*from)..stamp.len() - to]
}

/// Accepted tokens for error messages.
fn token_list() -> String {
    TOKENS.map(|t| t.0).join(", ")
}

/// The stamp one millisecond after `stamp` (calendar arithmetic on the local wall-clock time),
/// for a file that would otherwise not sort after its predecessor: two flushes in one
/// millisecond, a clock stepped back, or a daylight-saving fall-back in the partition timezone.
pub(crate) fn next_stamp(stamp: &str) -> String {
    let parsed = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S%3f");
    match parsed {
        Ok(t) => {
            let t = t + chrono::Duration::milliseconds(1);
            let ms = t.and_utc().timestamp_subsec_millis().min(999);
            format!("{}{ms:03}", t.format("%Y%m%d%H%M%S"))
        }
        // Not one of ours (cannot happen for stamps we made): append a digit, which still sorts after.
        Err(_) => format!("{stamp}0"),
    }
}

/// The date-partition folder for a local-time stamp.
fn folder_from_stamp(p: &DatePartition, s: &str) -> String {
    let [y, m, d, h] = ["yyyy", "MM", "dd", "HH"].map(|t| field(s, t));
    let parts = match p.sequence {
        DateSequence::YyyyMmDd => vec![y, m, d],
        DateSequence::YyyyMmDdHh => vec![y, m, d, h],
        DateSequence::YyyyMm => vec![y, m],
        DateSequence::MmYyyyDd => vec![m, y, d],
        DateSequence::DdMmYyyy => vec![d, m, y],
    };
    parts.join(match p.delimiter {
        DateDelimiter::Slash => "/",
        DateDelimiter::Underscore => "_",
        DateDelimiter::Dash => "-",
        DateDelimiter::None => "",
    })
}

/// Expands date/time placeholders in a BucketFolder value once at task start, in UTC, then
/// normalizes it with `normalize_folder`. Tokens yyyy, MM, dd, HH, mm, ss, SSS may be combined
/// with literal non-letters inside one pair of braces, e.g. `{yyyyMMdd-HHmmss}`.
///
/// Expanding once (not per file) keeps a task's output in one folder even past midnight.
pub(crate) fn expand_bucket_folder(template: &str, at: DateTime<Utc>) -> Result<String> {
    let s = stamp(at, chrono_tz::UTC);
    let (mut out, mut rest) = (String::new(), template);
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = match (rest.as_bytes()[i], after.find(['{', '}'])) {
            (b'{', Some(j)) if after.as_bytes()[j] == b'}' => j,
            _ => {
                return Err(Error::config(
                    format!("BucketFolder {template:?} has unbalanced or nested braces"),
                    format!("write each placeholder as one {{...}} of {}", token_list()),
                ))
            }
        };
        expand_placeholder(template, &after[..end], &s, &mut out)?;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    check_folder("BucketFolder", template, &out)
}

/// Appends one expanded `{...}` body. Letters outside the tokens are rejected so `{YYYY}` or
/// `{foo}` fail loudly instead of landing literally in every key.
fn expand_placeholder(template: &str, body: &str, s: &str, out: &mut String) -> Result<()> {
    let unknown = || {
        Error::config(
            format!("BucketFolder {template:?} has an unknown placeholder {{{body}}}"),
            format!(
                "use only {} (case-sensitive), e.g. {{yyyy-MM-dd}}",
                token_list()
            ),
        )
    };
    let (mut p, mut tokens) = (body, 0);
    while let Some(c) = p.chars().next() {
        if let Some((tok, ..)) = TOKENS.iter().find(|t| p.starts_with(t.0)) {
            out.push_str(field(s, tok));
            p = &p[tok.len()..];
            tokens += 1;
        } else if c.is_alphabetic() {
            return Err(unknown());
        } else {
            out.push(c);
            p = &p[c.len_utf8()..];
        }
    }
    // A body without any token ("{}", "{-}") is a typo far more often than an intended literal.
    if tokens == 0 {
        return Err(unknown());
    }
    Ok(())
}

/// Trims leading/trailing '/' from a folder setting (BucketFolder, CdcPath) and rejects what S3
/// would store verbatim but tools cannot address sanely: backslashes, "//", "." and "..".
pub(crate) fn normalize_folder(setting: &str, value: &str) -> Result<String> {
    check_folder(setting, value, value)
}

/// `normalize_folder` that reports `shown`, so errors quote what the user wrote, not its expansion.
fn check_folder(setting: &str, shown: &str, value: &str) -> Result<String> {
    let folder = value.trim_matches('/');
    let problem = if folder.contains('\\') {
        "contains a backslash"
    } else if folder.is_empty() {
        return Ok(String::new());
    } else if folder.split('/').any(str::is_empty) {
        "contains an empty folder name (\"//\")"
    } else if folder.split('/').any(|seg| seg == "." || seg == "..") {
        "contains a \".\" or \"..\" folder, which S3 does not resolve"
    } else {
        return Ok(folder.to_string());
    };
    Err(Error::config(
        format!("{setting} {shown:?} {problem}"),
        format!("write {setting} as folder names joined by single '/', e.g. \"exports/dms\""),
    ))
}

/// Validates a table's schema and name as key segments (see [`check_segment`]).
pub(crate) fn check_table(t: &crate::change::TableSchema) -> Result<()> {
    check_segment("schema", &t.schema)?;
    check_segment("table", &t.table)
}

/// Validates a schema or table name as one key segment: non-empty, no '/', not "." or "..".
///
/// Everything else (any UTF-8, any case) is allowed because DMS keeps source names verbatim.
pub(crate) fn check_segment(what: &str, name: &str) -> Result<()> {
    if !name.is_empty() && !name.contains('/') && name != "." && name != ".." {
        return Ok(());
    }
    Err(Error::config(
        format!("{what} name {name:?} cannot be used as an S3 folder name"),
        format!("rename the {what} with a transformation rule: non-empty, no '/', not . or .."),
    ))
}

/// Parses `DatePartitionTimezone` (IANA `Area/Location`).
pub(crate) fn parse_timezone(value: &str) -> Result<Tz> {
    value.parse().map_err(|_| {
        Error::config(
            format!("DatePartitionTimezone {value:?} is not an IANA timezone"),
            "use an Area/Location name such as \"UTC\", \"Europe/Berlin\" or \"Asia/Tokyo\"",
        )
    })
}

/// Case-insensitive lookup shared by the setting enums, because DMS accepts any case and its own
/// examples mix `YYYYMMDD` and `yyyymmdd`; every error lists the accepted values.
fn parse_choice<T: Copy>(setting: &str, value: &str, choices: &[(&str, T)]) -> Result<T> {
    let found = choices.iter().find(|(n, _)| n.eq_ignore_ascii_case(value));
    found.map(|&(_, v)| v).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let fix = format!("use one of: {}", names.join(", "));
        Error::config(format!("{setting} {value:?} is not supported"), fix)
    })
}

/// Implements `FromStr` for a setting enum via `parse_choice`.
macro_rules! setting_values {
    ($ty:ident, $setting:literal, $($name:literal => $variant:ident),+ $(,)?) => {
        impl FromStr for $ty {
            type Err = Error;
            /// Accepts the DMS spellings in any case.
            fn from_str(s: &str) -> Result<Self> {
                parse_choice($setting, s, &[$(($name, $ty::$variant)),+])
            }
        }
    };
}

setting_values!(DateSequence, "DatePartitionSequence", "YYYYMMDD" => YyyyMmDd,
    "YYYYMMDDHH" => YyyyMmDdHh, "YYYYMM" => YyyyMm, "MMYYYYDD" => MmYyyyDd, "DDMMYYYY" => DdMmYyyy);
setting_values!(DateDelimiter, "DatePartitionDelimiter",
    "SLASH" => Slash, "UNDERSCORE" => Underscore, "DASH" => Dash, "NONE" => None);
setting_values!(FileFormat, "DataFormat", "csv" => Csv, "parquet" => Parquet);
setting_values!(Compression, "CompressionType", "NONE" => None, "GZIP" => Gzip);

#[cfg(test)]
mod tests {
    use super::*;

    impl Layout {
        /// The key of a CDC file created at `file_time`.
        fn cdc_key(&self, schema: &str, table: &str, file_time: DateTime<Utc>) -> String {
            self.cdc_key_at(schema, table, &self.cdc_stamp(file_time))
        }

        /// The key of a transaction file created at `file_time`.
        fn cdc_txn_key(&self, cdc_path: &str, file_time: DateTime<Utc>) -> String {
            self.cdc_txn_key_at(cdc_path, &stamp(file_time, chrono_tz::UTC))
        }
    }

    /// The date-partition folder of a file created at `at`.
    fn date_folder(p: &DatePartition, at: DateTime<Utc>) -> String {
        folder_from_stamp(p, &stamp(at, p.timezone))
    }
    use chrono::{Duration, TimeZone};
    use {Compression as C, DateDelimiter as D, DateSequence as S, FileFormat as F};

    /// Builds an instant with milliseconds, since most names hinge on their padding.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + Duration::milliseconds(ms)
    }

    /// 2022-05-21T14:58:15.042Z: the §2.5 reference day with milliseconds that need padding.
    fn t0() -> DateTime<Utc> {
        at(2022, 5, 21, 14, 58, 15, 42)
    }

    #[test]
    fn next_stamp_rolls_over_calendar_boundaries() {
        assert_eq!(next_stamp("20220521145815042"), "20220521145815043");
        assert_eq!(next_stamp("20221231235959999"), "20230101000000000");
        assert_eq!(next_stamp("20240228235959999"), "20240229000000000");
        let a = "20220521145815042".to_string();
        assert!(next_stamp(&a) > a);
    }

    #[test]
    fn cdc_key_at_puts_folder_and_name_from_one_stamp() {
        let l = lay("", F::Csv, C::None, Some(DatePartition::default()));
        assert_eq!(
            l.cdc_key_at("s", "t", "20221231235959999"),
            "s/t/2022/12/31/20221231-235959999.csv"
        );
        assert_eq!(
            l.cdc_key("s", "t", t0()),
            l.cdc_key_at("s", "t", &l.cdc_stamp(t0()))
        );
    }

    /// Positional constructors keep the table-driven cases on one line each.
    fn lay(folder: &str, format: F, compression: C, dp: Option<DatePartition>) -> Layout {
        let (bucket_folder, date_partition) = (folder.to_string(), dp);
        Layout {
            bucket_folder,
            format,
            compression,
            date_partition,
        }
    }

    /// See `lay`.
    fn part(sequence: S, delimiter: D, tz: &str) -> DatePartition {
        let timezone = parse_timezone(tz).unwrap();
        DatePartition {
            sequence,
            delimiter,
            timezone,
        }
    }

    /// Debug text, so tests do not depend on the real `Error`'s field names.
    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        format!("{:?}", r.unwrap_err())
    }

    #[test]
    fn extensions() {
        let ext = |f, c| lay("", f, c, None).extension();
        assert_eq!(ext(F::Csv, C::None), ".csv");
        assert_eq!(ext(F::Csv, C::Gzip), ".csv.gz");
        assert_eq!(ext(F::Parquet, C::None), ".parquet");
        assert_eq!(ext(F::Parquet, C::Gzip), ".parquet");
    }

    #[test]
    fn load_keys_roll_over_in_upper_case_hex() {
        let l = lay("", F::Csv, C::None, None);
        for (n, hex) in [(1, "1"), (9, "9"), (10, "A"), (15, "F"), (16, "10")] {
            let key = l.load_key("s", "t", n).unwrap();
            assert_eq!(key, format!("s/t/LOAD{hex:0>8}.csv"));
        }
        assert_eq!(
            l.load_key("s", "t", 0xFFFF_FFFF).unwrap(),
            "s/t/LOADFFFFFFFF.csv"
        );
        assert!(err(l.load_key("s", "t", 0)).contains("counter 0 for s.t"));
        assert!(err(l.load_key("s", "t", 1 << 32)).contains("4294967296"));
        // Date partitions never apply to full-load files.
        let dp = Some(DatePartition::default());
        let l = lay("exports/dms", F::Parquet, C::Gzip, dp);
        let want = "exports/dms/s/T/LOAD00000001.parquet";
        assert_eq!(l.load_key("s", "T", 1).unwrap(), want);
    }

    #[test]
    fn parse_load_counter_round_trips_and_is_strict() {
        let (gz, pq) = (
            lay("", F::Csv, C::Gzip, None),
            lay("a", F::Parquet, C::None, None),
        );
        for l in [gz, pq] {
            for n in [1u32, 9, 10, 15, 16, 0xFFFF_FFFF] {
                let key = l.load_key("s", "t", n.into()).unwrap();
                assert_eq!(Layout::parse_load_counter(&key), Some(n), "{key}");
            }
        }
        assert_eq!(Layout::parse_load_counter("LOAD0000000A"), Some(10));
        let bad = "LOAD00000000.csv LOAD0000000a.csv LOAD1.csv LOAD000000001.csv LOAD00000001x \
            SEGMENT1_LOAD00000001.csv 20220521-145815042.csv LOAD/x.csv LOAD0000é.csv";
        for name in bad.split(' ') {
            assert_eq!(Layout::parse_load_counter(name), None, "{name}");
        }
    }

    #[test]
    fn table_prefix_with_and_without_bucket_folder() {
        for (folder, want) in [("", "public/Orders/"), ("a/b", "a/b/public/Orders/")] {
            let l = lay(folder, F::Csv, C::None, None);
            assert_eq!(l.table_prefix("public", "Orders"), want);
        }
    }

    #[test]
    fn cdc_names_are_utc_and_millisecond_padded() {
        let l = lay("", F::Csv, C::None, None);
        let want = "db/posts/20220521-145815042.csv";
        assert_eq!(l.cdc_key("db", "posts", t0()), want);
        let (t, pq) = (
            at(2021, 11, 29, 2, 47, 36, 4),
            lay("f", F::Parquet, C::Gzip, None),
        );
        assert_eq!(pq.cdc_key("s", "t", t), "f/s/t/20211129-024736004.parquet");
        // Sub-millisecond digits are truncated: rounding up could reorder two files in a listing.
        let t = at(2022, 1, 1, 0, 0, 0, 0) + Duration::microseconds(999_999);
        assert_eq!(l.cdc_key("s", "t", t), "s/t/20220101-000000999.csv");
    }

    #[test]
    fn all_date_partition_combinations() {
        let cases = [
            (S::YyyyMmDd, "2022/05/21 2022_05_21 2022-05-21 20220521"),
            (
                S::YyyyMmDdHh,
                "2022/05/21/14 2022_05_21_14 2022-05-21-14 2022052114",
            ),
            (S::YyyyMm, "2022/05 2022_05 2022-05 202205"),
            (S::MmYyyyDd, "05/2022/21 05_2022_21 05-2022-21 05202221"),
            (S::DdMmYyyy, "21/05/2022 21_05_2022 21-05-2022 21052022"),
        ];
        for (sequence, wants) in cases {
            let delimiters = [D::Slash, D::Underscore, D::Dash, D::None];
            for (delimiter, want) in delimiters.into_iter().zip(wants.split(' ')) {
                let p = part(sequence, delimiter, "UTC");
                assert_eq!(date_folder(&p, t0()), want, "{sequence:?} {delimiter:?}");
                let key = lay("", F::Csv, C::None, Some(p)).cdc_key("s", "t", t0());
                assert_eq!(key, format!("s/t/{want}/20220521-145815042.csv"));
            }
        }
    }

    #[test]
    fn partition_timezone_moves_folder_and_name_across_midnight() {
        let (t, tokyo) = (
            at(2022, 5, 21, 23, 30, 0, 0),
            part(S::YyyyMmDd, D::Slash, "Asia/Tokyo"),
        );
        assert_eq!(date_folder(&tokyo, t), "2022/05/22");
        let key = lay("f", F::Csv, C::Gzip, Some(tokyo)).cdc_key("s", "t", t);
        assert_eq!(key, "f/s/t/2022/05/22/20220522-083000000.csv.gz");
        let la = part(S::YyyyMmDdHh, D::Dash, "America/Los_Angeles");
        assert_eq!(
            date_folder(&la, at(2022, 5, 21, 3, 0, 0, 0)),
            "2022-05-20-20"
        );
        assert!(err(parse_timezone("Mars/Olympus")).contains("Mars/Olympus"));
    }

    #[test]
    fn cdc_txn_keys_are_always_csv_and_utc() {
        let t = at(2020, 11, 17, 15, 30, 46, 33);
        let l = lay("", F::Parquet, C::None, None);
        assert_eq!(l.cdc_txn_key("txn", t), "txn/CDC_TXN-20201117153046033.csv");
        let dp = Some(part(S::YyyyMmDd, D::Slash, "Asia/Tokyo"));
        let l = lay("f", F::Parquet, C::Gzip, dp);
        let want = "f/a/txn/CDC_TXN-20201117153046033.csv.gz";
        assert_eq!(l.cdc_txn_key("/a/txn/", t), want);
        assert_eq!(l.cdc_txn_key("", t), "f/CDC_TXN-20201117153046033.csv.gz");
    }

    #[test]
    fn bucket_folder_placeholders_expand_in_utc() {
        let ok = |template| expand_bucket_folder(template, at(2024, 3, 7, 9, 5, 2, 7)).unwrap();
        assert_eq!(ok(""), "");
        assert_eq!(ok("/"), "");
        assert_eq!(ok("/exports/dms/"), "exports/dms");
        let want = "x/2024/03/07/090502.007";
        assert_eq!(ok("x/{yyyy}/{MM}/{dd}/{HH}{mm}{ss}.{SSS}"), want);
        assert_eq!(ok("run-{yyyyMMdd-HHmmss}"), "run-20240307-090502");
        assert_eq!(ok("{yyyy-MM-dd}/ünï"), "2024-03-07/ünï");
    }

    #[test]
    fn bucket_folder_errors_name_the_problem() {
        let cases = [
            ("{foo}", "{foo}"),
            ("{YYYY}", "{YYYY}"),
            ("{yy}", "{yy}"),
            ("{}", "{}"),
            ("{-}", "{-}"),
            ("a/{yyyy", "unbalanced"),
            ("a}b", "unbalanced"),
            ("{{yyyy}}", "unbalanced"),
            ("a//b", "empty folder"),
            ("{yyyy}//b", "{yyyy}//b"),
            ("a/./b", r#"\".\""#),
            ("../b", r#"\"..\""#),
            ("a\\b", "backslash"),
        ];
        for (template, needle) in cases {
            let e = err(expand_bucket_folder(template, t0()));
            assert!(e.contains(needle), "{template}: {e}");
        }
        let e = err(expand_bucket_folder("{foo}", t0()));
        assert!(e.contains("yyyy, MM, dd, HH, mm, ss, SSS"), "{e}");
        assert!(err(normalize_folder("CdcPath", "a//b")).contains("CdcPath"));
    }

    #[test]
    fn segments() {
        for ok in ["public", "Mixed Case", "ünïcode", "a.b", "..."] {
            assert!(check_segment("table", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", ".", ".."] {
            let e = err(check_segment("schema", bad));
            assert!(e.contains("schema name"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn setting_values_parse_in_any_case() {
        assert_eq!("yyyymmddhh".parse::<S>().unwrap(), S::YyyyMmDdHh);
        assert_eq!("DDMMYYYY".parse::<S>().unwrap(), S::DdMmYyyy);
        assert_eq!("dash".parse::<D>().unwrap(), D::Dash);
        assert_eq!("NONE".parse::<D>().unwrap(), D::None);
        assert_eq!("Parquet".parse::<F>().unwrap(), F::Parquet);
        assert_eq!("gzip".parse::<C>().unwrap(), C::Gzip);
        let e = err("YYYY".parse::<S>());
        assert!(e.contains("YYYYMMDD, YYYYMMDDHH, YYYYMM, MMYYYYDD, DDMMYYYY"));
        assert!(err("comma".parse::<D>()).contains("SLASH, UNDERSCORE, DASH, NONE"));
        assert!(err("json".parse::<F>()).contains("csv, parquet"));
        assert!(err("zstd".parse::<C>()).contains("NONE, GZIP"));
    }
}
