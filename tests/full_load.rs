//! Full loads into a local folder, replayed against the source.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::*;

/// A table with every PostgreSQL type class the type map handles, edge values first, then
/// generated rows (NULLs every 7th row, delimiters, quotes, newlines, non-ASCII text).
pub const ALL_TYPES: &str = r#"
CREATE SCHEMA s;
CREATE TYPE s.mood AS ENUM ('sad', 'happy');
CREATE TABLE s.all_types (
  id bigint PRIMARY KEY, b boolean, i2 smallint, i4 integer, n numeric(11,2), nu numeric, r real,
  d double precision, t text, vc varchar(40), c char(5), by bytea, ts timestamp, tz timestamptz,
  dt date, tm time, j json, jb jsonb, u uuid, arr int[], e s.mood, m money);
INSERT INTO s.all_types VALUES
 (1, true, -32768, 2147483647, -123456789.99, 0.611111104488373, 1.5, 3.141592653589793,
  'comma, "quote"' || chr(10) || 'newline' || chr(13) || 'cr' || chr(9) || 'tab \ backslash', 'héllo wörld ✓ 日本', 'ab',
  '\x00ff10', '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56.5+02', '2024-02-29', '23:59:59.999999',
  '{"a": [1, 2]}', '{"b":2, "a":1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,NULL,3}', 'happy', 12.34),
 (2, false, 0, 0, 0, -1e-7, 'NaN', '-Infinity', '', '', '', '\x', '1970-01-01 00:00:00', '1999-12-31 23:59:59.999999+00',
  '0001-01-01', '00:00:00', '[]', '{}', NULL, '{}', 'sad', -0.01),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO s.all_types
SELECT g, g % 2 = 0, (g % 1000)::smallint, g * 7, (g * 1.25)::numeric(11,2), g / 7.0, g / 3.0, g * 1e10,
       CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('x,"' || g || E'\n', g % 5) END, 'v' || g, 'c' || (g % 100),
       decode(md5(g::text), 'hex'), timestamp '2001-01-01' + g * interval '61.000123 seconds',
       timestamptz '2001-01-01 00:00:00+00' + g * interval '1 hour', date '2000-01-01' + g, time '00:00:00' + g * interval '1.5 seconds',
       json_build_object('g', g), jsonb_build_object('k', g::text), md5(g::text)::uuid, ARRAY[g, g + 1],
       (ARRAY['sad', 'happy'])[g % 2 + 1]::s.mood, g * 0.5
FROM generate_series(4, 2000) g;
CREATE TABLE s.empty_table (id int);
CREATE VIEW s.not_selected AS SELECT 1 AS x;
"#;

/// The rows as Tributary should write them, computed by PostgreSQL's own formatting functions
/// (an oracle independent of our renderers), in source column order.
const EXPECTED: &str = r#"
SELECT id::text AS id_text, CASE WHEN b THEN 'true' WHEN NOT b THEN 'false' END, i2::text, i4::text, n::text,
       round(nu, 6)::text, r::text, d::text, t, vc, c::text, encode(by, 'hex'),
       to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US'), to_char(tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),
       to_char(dt, 'YYYY-MM-DD'), tm::text, j::text, jb::text, u::text, arr::text, e::text, m::numeric::text
FROM s.all_types ORDER BY id"#;

/// Loads the fixture into database `db`.
pub async fn load_fixture(db: &str) {
    let client = fresh_db(db).await;
    client.batch_execute(ALL_TYPES).await.expect("fixture");
}

/// Sorts rows by their `id` column (the first after `skip` leading columns).
fn by_id(mut rows: Vec<Row>, skip: usize) -> Vec<Row> {
    rows.sort_by_key(|r| r[skip].as_ref().map(|v| v.parse::<i64>().unwrap()));
    rows
}

#[tokio::test]
async fn csv_full_load_replays_source() {
    load_fixture("fl_csv").await;
    let task = new_task(
        "fl_csv",
        "s",
        None,
        "IncludeOpForFullLoad = true\nTimestampColumnName = \"dms_ts\"\nAddColumnName = true",
        "",
    );
    let started = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    run_ok(&task, &[]);
    assert_eq!(
        files(&task.lake()),
        vec!["s/all_types/LOAD00000001.csv"],
        "empty table and view write nothing"
    );
    let text = std::fs::read_to_string(task.lake().join("s/all_types/LOAD00000001.csv")).unwrap();
    let mut rows = parse_csv(&text, ',', "");
    let header = rows.remove(0);
    let names: Vec<&str> = header.iter().map(|h| h.as_deref().unwrap()).collect();
    assert_eq!(&names[..4], ["Op", "dms_ts", "id", "b"]);
    for r in &rows {
        assert_eq!(r[0].as_deref(), Some("I"));
        let ts = r[1].as_deref().unwrap();
        assert_eq!(ts.len(), 26, "timestamp column format: {ts}");
        assert!(
            ts >= started.as_str(),
            "transfer time {ts} before task start {started}"
        );
    }
    let actual: Vec<Row> = by_id(rows, 2)
        .into_iter()
        .map(|r| r[2..].to_vec())
        .collect();
    let expected = query_rows(&connect(&pg_url("fl_csv")).await, EXPECTED).await;
    assert_rows_eq(&actual, &expected, "CSV");
    // NULL is an empty field, an empty string a quoted empty field.
    assert!(
        text.contains("\n\"I\"") || text.contains(",\"\","),
        "empty strings are quoted"
    );
}

#[tokio::test]
async fn csv_custom_delimiters_null_token_and_gzip() {
    load_fixture("fl_csv2").await;
    let task = new_task(
        "fl_csv2",
        "s",
        None,
        "CsvDelimiter = \"|\"\nCsvNullValue = \"NULL\"\nCompressionType = \"GZIP\"\nTimestampColumnName = \"ts\"\nUseTaskStartTimeForFullLoadTimestamp = true",
        "",
    );
    run_ok(&task, &[]);
    assert_eq!(files(&task.lake()), vec!["s/all_types/LOAD00000001.csv.gz"]);
    let gz = std::fs::read(task.lake().join("s/all_types/LOAD00000001.csv.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    let rows = parse_csv(&text, '|', "NULL");
    let stamps: std::collections::BTreeSet<_> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(stamps.len(), 1, "task start time is one value for all rows");
    let actual: Vec<Row> = by_id(rows, 1)
        .into_iter()
        .map(|r| r[1..].to_vec())
        .collect();
    let expected = query_rows(&connect(&pg_url("fl_csv2")).await, EXPECTED).await;
    assert_rows_eq(&actual, &expected, "CSV with | and NULL");
}

/// Renders one Arrow cell the way `EXPECTED` renders the source value.
fn cell(a: &ArrayRef, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Float32 => pg_float(f64::from(a.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => pg_float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, _) => a.as_primitive::<Decimal128Type>().value_as_string(i),
        DataType::Binary => a
            .as_binary::<i32>()
            .value(i)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        DataType::Date32 => {
            let d = a.as_primitive::<Date32Type>().value(i);
            (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(d.into()))
            .format("%Y-%m-%d")
            .to_string()
        }
        DataType::Time64(_) => {
            let us = a.as_primitive::<Time64MicrosecondType>().value(i);
            let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (us / 1_000_000) as u32,
                (us % 1_000_000 * 1000) as u32,
            )
            .unwrap();
            let s = t.format("%H:%M:%S%.6f").to_string();
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        DataType::Timestamp(_, _) => {
            let us = a.as_primitive::<TimestampMicrosecondType>().value(i);
            chrono::DateTime::from_timestamp_micros(us)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string()
        }
        other => panic!("unexpected Arrow type {other}"),
    })
}

/// PostgreSQL's spelling of special floats.
fn pg_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

/// Reads Parquet files into rows of strings.
pub fn read_parquet(paths: &[std::path::PathBuf]) -> (Arc<arrow_schema::Schema>, Vec<Row>) {
    let mut rows = Vec::new();
    let mut schema = None;
    for p in paths {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(p).unwrap()).unwrap();
        schema = Some(builder.schema().clone());
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                rows.push(batch.columns().iter().map(|c| cell(c, i)).collect());
            }
        }
    }
    (schema.expect("at least one file"), rows)
}

#[tokio::test]
async fn parquet_full_load_replays_source() {
    load_fixture("fl_pq").await;
    let task = new_task(
        "fl_pq",
        "s",
        None,
        "DataFormat = \"parquet\"\nIncludeOpForFullLoad = true\nTimestampColumnName = \"dms_ts\"\nRowGroupLength = 500",
        "",
    );
    run_ok(&task, &[]);
    let file = task.lake().join("s/all_types/LOAD00000001.parquet");
    assert_eq!(
        files(&task.lake()),
        vec!["s/all_types/LOAD00000001.parquet"]
    );
    let (schema, rows) = read_parquet(std::slice::from_ref(&file));
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    assert_eq!(
        types[..8],
        [
            "Op:Utf8",
            "dms_ts:Utf8",
            "id:Int64",
            // DMS's CHAR(5) unless MapBooleanAsBoolean (tests/source_settings.rs).
            "b:Utf8",
            "i2:Int16",
            "i4:Int32",
            "n:Decimal128(11, 2)",
            "nu:Decimal128(28, 6)"
        ]
    );
    assert!(
        types.contains(&"ts:Timestamp(µs, \"UTC\")".to_string())
            || types
                .iter()
                .any(|t| t.starts_with("ts:Timestamp(Microsecond")),
        "{types:?}"
    );
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(
            std::fs::File::open(&file).unwrap(),
        )
        .unwrap(),
    )
    .clone();
    assert!(
        meta.num_row_groups() >= 4,
        "RowGroupLength=500 over 2000 rows"
    );
    assert!(
        meta.file_metadata().key_value_metadata().is_none(),
        "no ARROW:schema metadata"
    );
    // The clamped -infinity/infinity edge rows aside, every value must equal the source's.
    let actual: Vec<Row> = by_id(rows, 2)
        .into_iter()
        .map(|r| r[2..].to_vec())
        .collect();
    let expected = query_rows(&connect(&pg_url("fl_pq")).await, EXPECTED).await;
    assert_rows_eq(&actual, &expected, "Parquet");
    python_reads(&[file.to_str().unwrap()], 2000);
}

/// When the test Python (pyarrow, duckdb) is available, both must read every file with the
/// expected row count: the files are read by the tools users actually use.
pub fn python_reads(files: &[&str], rows: i64) {
    let Ok(py) = std::env::var("TRIBUTARY_TEST_PYTHON") else {
        eprintln!("TRIBUTARY_TEST_PYTHON unset: skipping the pyarrow/duckdb cross-check");
        return;
    };
    let script = r#"
import sys, pyarrow.parquet as pq, duckdb
files = sys.argv[2:]
n = sum(pq.read_table(f).num_rows for f in files)
d = duckdb.connect().execute("select count(*) from read_parquet([%s])" % ",".join(repr(f) for f in files)).fetchall()[0][0]
assert n == int(sys.argv[1]) == d, (n, d, sys.argv[1])
print("ok", n, d)
"#;
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(rows.to_string())
        .args(files)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyarrow/duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn rollover_names_files_in_upper_hex() {
    let client = fresh_db("fl_roll").await;
    client
        .batch_execute("CREATE SCHEMA r; CREATE TABLE r.t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g")
        .await
        .unwrap();
    // ~42 bytes a row, 1 KB per file: about 40 files.
    let task = new_task("fl_roll", "r", None, "MaxFileSize = 1", "");
    run_ok(&task, &[]);
    let names = files(&task.lake());
    assert!(names.len() > 16, "expected many files, got {}", names.len());
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("r/t/LOAD{:08X}.csv", i + 1));
        let size = std::fs::metadata(task.lake().join(name)).unwrap().len();
        assert!(
            size <= 1024 + 64,
            "{name} is {size} bytes, over MaxFileSize by more than a row"
        );
    }
    assert!(names.contains(&"r/t/LOAD0000000A.csv".to_string()));
    let mut rows = Vec::new();
    for name in &names {
        rows.extend(parse_csv(
            &std::fs::read_to_string(task.lake().join(name)).unwrap(),
            ',',
            "",
        ));
    }
    let expected = query_rows(
        &client,
        "SELECT id::text AS id_text, v FROM r.t ORDER BY id",
    )
    .await;
    assert_rows_eq(&by_id(rows, 0), &expected, "rolled CSV");

    // Parquet rolls on encoded bytes.
    let pq_task = new_task(
        "fl_roll",
        "r",
        None,
        "DataFormat = \"parquet\"\nMaxFileSize = 16\nRowGroupLength = 100",
        "",
    );
    run_ok(&pq_task, &[]);
    let pq_files: Vec<_> = files(&pq_task.lake())
        .iter()
        .map(|f| pq_task.lake().join(f))
        .collect();
    assert!(pq_files.len() > 1, "Parquet did not roll: {pq_files:?}");
    let (_, rows) = read_parquet(&pq_files);
    assert_rows_eq(&by_id(rows, 0), &expected, "rolled Parquet");
}

/// Files hold their limit whatever the first rows look like: 2,000 one-character rows, then
/// rows of about 3 KB. Every file but the table's last is at most MaxFileSize plus one row
/// (CSV), or within 10 % of MaxFileSize (Parquet); all rows are there once.
#[tokio::test]
async fn max_file_size_holds_when_rows_grow() {
    let client = fresh_db("fl_grow").await;
    client
        .batch_execute(
            "CREATE SCHEMA g; CREATE TABLE g.t AS
             SELECT n AS id, CASE WHEN n <= 2000 THEN 'x'
                    ELSE repeat(md5(n::text), 96) END AS v
             FROM generate_series(1, 6000) n",
        )
        .await
        .unwrap();
    let expected = query_rows(&client, "SELECT id::text AS i, v FROM g.t ORDER BY id").await;
    let longest_row = 3072 + 16;
    for (format, limit_kb) in [("csv", 512u64), ("parquet", 100)] {
        let settings = format!("DataFormat = \"{format}\"\nMaxFileSize = {limit_kb}");
        let task = new_task("fl_grow", "g", None, &settings, "");
        run_ok(&task, &[]);
        let names = files(&task.lake());
        assert!(names.len() > 3, "{format}: {names:?}");
        let limit = limit_kb * 1024;
        for name in &names[..names.len() - 1] {
            let size = std::fs::metadata(task.lake().join(name)).unwrap().len();
            if format == "csv" {
                assert!(
                    size <= limit + longest_row,
                    "{name}: {size} bytes for MaxFileSize {limit}"
                );
                assert!(size >= limit, "{name}: {size} bytes, rolled early");
            } else {
                let off = (size as f64 - limit as f64).abs() / limit as f64;
                assert!(
                    off <= 0.10,
                    "{name}: {size} bytes, {:.0} % off {limit}",
                    off * 100.0
                );
            }
        }
        let rows = if format == "csv" {
            names
                .iter()
                .flat_map(|n| {
                    parse_csv(
                        &std::fs::read_to_string(task.lake().join(n)).unwrap(),
                        ',',
                        "",
                    )
                })
                .collect()
        } else {
            let paths: Vec<_> = names.iter().map(|n| task.lake().join(n)).collect();
            read_parquet(&paths).1
        };
        assert_rows_eq(&by_id(rows, 0), &expected, format);
    }
}

#[tokio::test]
async fn prep_modes_and_bucket_folder_override() {
    let client = fresh_db("fl_prep").await;
    client
        .batch_execute(
            "CREATE SCHEMA p; CREATE TABLE p.t AS SELECT g AS id FROM generate_series(1, 10) g",
        )
        .await
        .unwrap();
    // Default DROP_AND_CREATE: a stale file from an earlier, bigger run disappears.
    let task1 = new_task("fl_prep", "p", None, "BucketFolder = \"raw\"", "");
    std::fs::create_dir_all(task1.lake().join("raw/p/t")).unwrap();
    std::fs::write(task1.lake().join("raw/p/t/LOAD00000007.csv"), "stale\n").unwrap();
    run_ok(&task1, &[]);
    assert_eq!(files(&task1.lake()), vec!["raw/p/t/LOAD00000001.csv"]);

    // DO_NOTHING keeps existing objects and numbers after them.
    let task2 = new_task(
        "fl_prep",
        "p",
        None,
        "BucketFolder = \"raw\"",
        "FullLoadSettings.TargetTablePrepMode = \"DO_NOTHING\"",
    );
    std::fs::create_dir_all(task2.lake().join("raw/p/t")).unwrap();
    std::fs::write(task2.lake().join("raw/p/t/LOAD00000009.csv"), "kept\n").unwrap();
    run_ok(&task2, &[]);
    assert_eq!(
        files(&task2.lake()),
        vec!["raw/p/t/LOAD00000009.csv", "raw/p/t/LOAD0000000A.csv"]
    );

    // --bucket-folder with placeholders: a cron job gets a fresh folder per run.
    let out = run_ok(&task1, &["--bucket-folder", "snapshots/{yyyyMMdd}/run"]);
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    let all = files(&task1.lake());
    assert!(
        all.contains(&format!("snapshots/{today}/run/p/t/LOAD00000001.csv")),
        "{all:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains(&"raw/p/t/LOAD00000001.csv".to_string()),
        "the earlier folder is untouched"
    );
}

#[tokio::test]
async fn lob_max_size_truncates_and_support_lobs_drops() {
    let client = fresh_db("fl_lob").await;
    client
        .batch_execute(
            "CREATE SCHEMA l; CREATE TABLE l.t (id int, body text, blob bytea, small varchar(10));
             INSERT INTO l.t SELECT g, repeat('é', 600 + g), decode(repeat('ab', 1500), 'hex'), 'v' || g
             FROM generate_series(1, 5) g;
             INSERT INTO l.t VALUES (6, 'short', '\\x00', 'x');",
        )
        .await
        .unwrap();
    let task = new_task(
        "fl_lob",
        "l",
        None,
        "AddColumnName = true",
        "TargetMetadata.LobMaxSize = 1",
    );
    run_ok(&task, &[]);
    let text = std::fs::read_to_string(task.lake().join("l/t/LOAD00000001.csv")).unwrap();
    let rows = by_id(parse_csv(&text, ',', "")[1..].to_vec(), 0);
    for r in &rows[..5] {
        let body = r[1].as_deref().unwrap();
        assert!(
            body.len() <= 1024 && body.len() >= 1022,
            "text cut at a character within 1 KB: {}",
            body.len()
        );
        assert!(body.chars().all(|c| c == 'é'), "no split character");
        assert_eq!(
            r[2].as_deref().unwrap().len(),
            2048,
            "bytea cut at 1024 bytes (hex)"
        );
    }
    assert_eq!(
        rows[5][1].as_deref(),
        Some("short"),
        "short values untouched"
    );
    let checkpoint = std::fs::read_to_string(
        task.dir
            .path()
            .join("tributary-state/t-fl_lob/checkpoint.json"),
    )
    .unwrap();
    assert!(checkpoint.contains("\"TruncatedLobs\": 10"), "{checkpoint}");

    let task = new_task(
        "fl_lob",
        "l",
        None,
        "AddColumnName = true",
        "TargetMetadata.SupportLobs = false",
    );
    run_ok(&task, &[]);
    let text = std::fs::read_to_string(task.lake().join("l/t/LOAD00000001.csv")).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("id,small"),
        "LOB columns dropped from header and rows"
    );
    let rows = by_id(parse_csv(&text, ',', "")[1..].to_vec(), 0);
    let expected = query_rows(
        &client,
        "SELECT id::text AS id_text, small FROM l.t ORDER BY id",
    )
    .await;
    assert_rows_eq(&rows, &expected, "SupportLobs=false");
}
