//! Object-key naming in DMS's S3 layout. Pure functions: no I/O, no clock.
//!
//! Kept free of side effects so every key DMS would produce (reference §2, §1.7) can be pinned
//! by a test, and so resume logic can recompute keys without touching S3.

use crate::error::{Error, Result};
use crate::mapping::segments::SegmentPlace;
use crate::mapping::{Names, TableMappings, TagRules};
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
    /// The mapping's schema and table name rules: source names become folder names here.
    pub(crate) names: Names,
    /// The mapping's add-tag rules: the S3 tags of each table's objects.
    pub(crate) tags: TagRules,
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
        if self.names.is_identity() {
            return format!("{}{schema}/{table}/", dir(&self.bucket_folder));
        }
        let (schema, table) = self.names.folder(schema, table);
        format!("{}{schema}/{table}/", dir(&self.bucket_folder))
    }

    /// The S3 object tags of every object of source table `schema.table`.
    pub(crate) fn tags(&self, schema: &str, table: &str) -> Vec<(String, String)> {
        self.tags.tags(schema, table)
    }

    /// The folder names (schema, table) of source table `schema.table`.
    pub(crate) fn folder(&self, schema: &str, table: &str) -> (String, String) {
        self.names.folder(schema, table)
    }

    /// Full-load file key: "[folder/]schema/table/LOAD%08X.ext"; `counter` starts at 1.
    #[cfg(test)]
    pub(crate) fn load_key(&self, schema: &str, table: &str, counter: u64) -> Result<String> {
        self.load_key_in(schema, table, None, counter)
    }

    /// Full-load file key of segment `place` of the table (reference §2.3):
    /// `…/table/<folder>/LOAD%08X.ext` or `…/table/SEGMENT<n>_LOAD%08X.ext`; None: the table's
    /// own `…/table/LOAD%08X.ext`.
    pub(crate) fn load_key_in(
        &self,
        schema: &str,
        table: &str,
        place: Option<&SegmentPlace>,
        counter: u64,
    ) -> Result<String> {
        // Wider counters would break the fixed 8-digit width that listing order relies on.
        let allowed = place.map_or(1..=u64::from(u32::MAX), |p| p.counters());
        if !allowed.contains(&counter) {
            return Err(Error::config(
                format!(
                    "LOAD counter {counter} for {schema}.{table} is not in {:#X}..={:#X}",
                    allowed.start(),
                    allowed.end()
                ),
                "LOAD counters must fit 8 hex digits (a chunk of a big table: 2^20 files); raise MaxFileSize so fewer files are needed",
            ));
        }
        let prefix = self.table_prefix(schema, table);
        let ext = self.extension();
        Ok(match place {
            None | Some(SegmentPlace::Chunk(_)) => format!("{prefix}LOAD{counter:08X}{ext}"),
            Some(SegmentPlace::Folder(f)) => format!("{prefix}{f}/LOAD{counter:08X}{ext}"),
            Some(SegmentPlace::Numbered(n)) => {
                format!("{prefix}SEGMENT{n}_LOAD{counter:08X}{ext}")
            }
        })
    }

    /// The LOAD counter of `rel` (a key below the table's prefix) when it is a file of segment
    /// `place`, as [`load_key_in`](Self::load_key_in) names them.
    pub(crate) fn segment_counter(place: &SegmentPlace, rel: &str) -> Option<u32> {
        let name = match place {
            SegmentPlace::Folder(f) => rel.strip_prefix(f.as_str())?.strip_prefix('/')?,
            SegmentPlace::Numbered(n) => rel.strip_prefix(&format!("SEGMENT{n}_"))?,
            SegmentPlace::Chunk(_) => rel,
        };
        if name.contains('/') {
            return None;
        }
        Layout::parse_load_counter(name).filter(|c| place.counters().contains(&u64::from(*c)))
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

/// Checks the selected tables against the mapping's rules ([`TableMappings::check`]) and their
/// folder names (as the rules make them) as key segments (see [`check_segment`]).
pub(crate) fn check_tables(
    mappings: &TableMappings,
    tables: &[std::sync::Arc<crate::change::TableSchema>],
) -> Result<()> {
    for t in tables {
        let (schema, table) = mappings.names().folder(&t.schema, &t.table);
        check_segment("schema", &schema)?;
        check_segment("table", &table)?;
    }
    mappings.check(tables)
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
mod tests;
