//! Unit tests of `layout`.
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
        names: Default::default(),
        tags: Default::default(),
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
fn chunk_files_take_plain_names_from_their_own_block() {
    let l = lay("", F::Csv, C::None, None);
    let second = SegmentPlace::Chunk(2);
    let key = |c| l.load_key_in("s", "t", Some(&second), c);
    assert_eq!(key(0x10_0001).unwrap(), "s/t/LOAD00100001.csv");
    assert_eq!(key(0x20_0000).unwrap(), "s/t/LOAD00200000.csv");
    assert!(err(key(0x20_0001)).contains("2^20 files"));
    assert!(err(key(1)).contains("counter 1 for s.t"));
    assert_eq!(
        Layout::segment_counter(&second, "LOAD00100002.csv"),
        Some(0x10_0002)
    );
    // Another chunk's file, the table's own, and files in sub-folders are not the chunk's.
    assert_eq!(Layout::segment_counter(&second, "LOAD00000002.csv"), None);
    assert_eq!(
        Layout::segment_counter(&second, "p1/LOAD00100002.csv"),
        None
    );
    let last = SegmentPlace::Chunk(4096);
    assert_eq!(*last.counters().end(), u64::from(u32::MAX));
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
