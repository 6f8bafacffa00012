//! Values at the edges of what files hold (docs/compatibility.md, "Values that do not fit"):
//! PostgreSQL `numeric` NaN, infinities and values beyond NUMERIC(28,6), dates and timestamps
//! past 9999 or BC, `±infinity`, `time '24:00:00'`; MySQL TIME beyond a day, zero and invalid
//! dates, DECIMAL(65,30). CSV writes every one as text. Parquet writes what its readers accept
//! and refuses the rest with a data error naming the table, the column, the value and the fix,
//! raised when the row enters the writer (a full load's batch, a change as it is pushed), never
//! when a file is flushed. Parquet files are read back with pyarrow and DuckDB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::cdc::{cdc_task, log, spawn, terminate, wait_for, wait_streaming};
use crate::common::*;
use crate::mysql::{my_db, my_task_at, my_url};

/// A row read back: column → value as text (None for NULL).
type Cells = BTreeMap<String, Option<String>>;

/// The table every PostgreSQL test loads, and a fence table.
const PG_TABLES: &str = "CREATE SCHEMA c;
    CREATE TABLE c.edge (id int PRIMARY KEY, nu numeric, nb numeric(10,2), d date, ts timestamp,
                         tz timestamptz, tm time);
    CREATE TABLE c.fence (id int PRIMARY KEY, rev int NOT NULL);";

/// Rows `base + 1..=base + 5` of `c.edge`: every PostgreSQL value this file is about.
fn edge_rows(base: i32) -> String {
    format!(
        "INSERT INTO c.edge VALUES
         ({}, 'NaN', 'NaN', '10000-01-01', '10000-01-01 00:00:00', '10000-01-01 00:00:00+00', '24:00:00'),
         ({}, 'Infinity', 1.5, 'infinity', 'infinity', 'infinity', '23:59:59.999999'),
         ({}, '-Infinity', -0.005, '-infinity', '-infinity', '-infinity', '00:00:00'),
         ({}, 1.5e30, 12.34, '0044-03-15 BC', '0044-03-15 10:00:00 BC', '0044-03-15 10:00:00+00 BC', NULL),
         ({}, 123.4567891, NULL, '9999-12-31', '9999-12-31 23:59:59.999999', '0001-01-01 00:00:00+00', '12:00:00')",
        base + 1,
        base + 2,
        base + 3,
        base + 4,
        base + 5
    )
}

/// Builds expected rows from `(id, [cells of nu, nb, d, ts, tz, tm])`.
fn rows_of(cols: &[&str], rows: &[(i32, Vec<Option<&str>>)]) -> Vec<Cells> {
    rows.iter()
        .map(|(id, cells)| {
            let mut r: Cells = cols
                .iter()
                .zip(cells)
                .map(|(c, v)| (c.to_string(), v.map(str::to_string)))
                .collect();
            r.insert("id".into(), Some(id.to_string()));
            r
        })
        .collect()
}

const EDGE_COLUMNS: [&str; 6] = ["nu", "nb", "d", "ts", "tz", "tm"];

/// The CSV text of [`edge_rows`]: the source's values, with DMS's renderings (unbounded numeric
/// rounded to scale 6, six fraction digits on timestamps, `±infinity` clamped to DMS's values).
fn edge_csv(base: i32) -> Vec<Cells> {
    rows_of(
        &EDGE_COLUMNS,
        &[
            (
                base + 1,
                vec![
                    Some("NaN"),
                    Some("NaN"),
                    Some("10000-01-01"),
                    Some("10000-01-01 00:00:00.000000"),
                    Some("10000-01-01 00:00:00.000000"),
                    Some("24:00:00"),
                ],
            ),
            (
                base + 2,
                vec![
                    Some("Infinity"),
                    Some("1.50"),
                    Some("9999-12-31"),
                    Some("9999-12-31 23:59:59.000000"),
                    Some("9999-12-31 23:59:59.000000"),
                    Some("23:59:59.999999"),
                ],
            ),
            (
                base + 3,
                vec![
                    Some("-Infinity"),
                    Some("-0.01"),
                    Some("4713-01-01 BC"),
                    Some("4713-01-01 00:00:00.000000 BC"),
                    Some("4713-01-01 00:00:00.000000 BC"),
                    Some("00:00:00"),
                ],
            ),
            (
                base + 4,
                vec![
                    Some("1500000000000000000000000000000.000000"),
                    Some("12.34"),
                    Some("0044-03-15 BC"),
                    Some("0044-03-15 10:00:00.000000 BC"),
                    Some("0044-03-15 10:00:00.000000 BC"),
                    None,
                ],
            ),
            (
                base + 5,
                vec![
                    Some("123.456789"),
                    None,
                    Some("9999-12-31"),
                    Some("9999-12-31 23:59:59.999999"),
                    Some("0001-01-01 00:00:00.000000"),
                    Some("12:00:00"),
                ],
            ),
        ],
    )
}

/// A fresh PostgreSQL database `db` with [`PG_TABLES`].
async fn pg_db(db: &str) -> tokio_postgres::Client {
    drop_slots(db).await;
    let client = fresh_db(db).await;
    client.batch_execute(PG_TABLES).await.unwrap();
    client
}

/// Inserts fence row `id` and waits until a CDC file of `c.fence` exists with it.
async fn pg_fence(client: &tokio_postgres::Client, task: &Task, child: &mut std::process::Child) {
    client
        .batch_execute("INSERT INTO c.fence VALUES (1, 0)")
        .await
        .unwrap();
    wait_for(task, 0, child, 60, "the fence row", |fs| {
        fs.iter()
            .any(|f| f.starts_with("c/fence/") && !f.contains("LOAD"))
    });
}

/// The files of `folder` in the lake: (LOAD files, CDC files).
fn table_files(lake: &Path, folder: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (load, cdc): (Vec<String>, Vec<String>) = files(lake)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{folder}/")))
        .partition(|f| f.rsplit('/').next().unwrap().starts_with("LOAD"));
    let abs = |v: Vec<String>| v.into_iter().map(|f| lake.join(f)).collect();
    (abs(load), abs(cdc))
}

/// The rows of CSV files (with a header), sorted by `id`, without the `Op` column.
fn csv_rows(paths: &[PathBuf]) -> Vec<Cells> {
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).unwrap();
        let mut rows = parse_csv(&text, ',', "").into_iter();
        let header: Vec<String> = rows
            .next()
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect();
        out.extend(rows.map(|r| header.iter().cloned().zip(r).collect::<Cells>()));
    }
    by_id(out)
}

/// Sorts rows by `id` and drops the `Op` column.
fn by_id(mut rows: Vec<Cells>) -> Vec<Cells> {
    for r in &mut rows {
        r.remove("Op");
    }
    rows.sort_by_key(|r| r["id"].as_deref().unwrap().parse::<i64>().unwrap());
    rows
}

/// Reads Parquet files with pyarrow (`to_pylist`: every value becomes a Python object, which
/// is where pyarrow rejects dates past 9999 and misreads 24:00:00) and with DuckDB, asserts that
/// both readers see the same values, and returns them as `str()` of each Python value, sorted
/// by `id`, without `Op`.
fn python_rows(paths: &[PathBuf]) -> Vec<Cells> {
    let script = r#"
import json, sys, duckdb, pyarrow.parquet as pq
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
out = []
for f in sys.argv[1:]:
    arrow = pq.read_table(f).to_pylist()
    cur = con.execute("SELECT * FROM read_parquet(?)", [f])
    names = [d[0] for d in cur.description]
    duck = [dict(zip(names, r)) for r in cur.fetchall()]
    assert arrow == duck, (f, arrow, duck)
    out += [{k: None if v is None else str(v) for k, v in r.items()} for r in arrow]
print(json.dumps(out))
"#;
    let out = std::process::Command::new(env("TRIBUTARY_TEST_PYTHON"))
        .arg("-c")
        .arg(script)
        .args(paths)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyarrow/DuckDB could not read {paths:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    by_id(serde_json::from_slice(&out.stdout).unwrap())
}

/// The task setting that makes a data error stop the task (the default suspends the table).
const STOP_TASK: &str = "\"ErrorBehavior.DataErrorPolicy\" = \"STOP_TASK\"";

/// Waits (at most 60 s) for the task to exit on its own, and returns its exit code and the
/// `error:` line it printed.
fn failure(task: &Task, child: &mut std::process::Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the task did not stop\n{}", log(task, 0));
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let text = log(task, 0);
    let line = text
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in\n{text}"))
        .to_string();
    (status.code().unwrap_or(-1), line)
}

/// Runs a `full-load-and-cdc` task over database `db` (schema `c`): `insert(0)` runs before it
/// starts (the LOAD files), `insert(100)` while it streams (the CDC files); `prepare` edits the
/// task file first. Returns the task (its folder holds the lake) and `c/edge`'s (LOAD, CDC) files.
async fn load_then_stream(
    db: &str,
    settings: &str,
    insert: &dyn Fn(i32) -> String,
    prepare: &dyn Fn(&Task),
) -> (Task, Vec<PathBuf>, Vec<PathBuf>) {
    let client = pg_db(db).await;
    client.batch_execute(&insert(0)).await.unwrap();
    let task = cdc_task(db, "full-load-and-cdc", settings, "");
    prepare(&task);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client.batch_execute(&insert(100)).await.unwrap();
    pg_fence(&client, &task, &mut child).await;
    terminate(&task, 0, child);
    drop_slots(db).await;
    let (load, cdc) = table_files(&task.lake(), "c/edge");
    (task, load, cdc)
}

/// CSV holds every value: the LOAD and the CDC files carry the same text, whatever its
/// magnitude or year.
#[tokio::test]
async fn csv_writes_every_postgres_value_in_load_and_cdc() {
    let settings = "AddColumnName = true\nCdcMaxBatchInterval = 1";
    let (task, load, cdc) = load_then_stream("val_pg_csv", settings, &edge_rows, &|_| {}).await;
    assert_eq!(csv_rows(&load), edge_csv(0), "LOAD files");
    assert_eq!(
        csv_rows(&cdc),
        edge_csv(100),
        "CDC files\n{}",
        log(&task, 0)
    );
}

/// Parquet writes the values its readers accept — `infinity` as DMS's 9999-12-31 23:59:59,
/// `-infinity` as 0001-01-01 (DMS's 4713 BC is a date no Python or Java reader holds), the
/// largest NUMERIC(28,6) — identically in the load and in the stream, and pyarrow and DuckDB
/// read every one.
#[tokio::test]
async fn parquet_writes_what_readers_accept_in_load_and_cdc() {
    let db = "val_pg_pq_fits";
    let rows = |base: i32| {
        format!(
            "INSERT INTO c.edge VALUES
             ({}, 9999999999999999999999.9999994, 99999999.99, 'infinity', 'infinity', 'infinity', '23:59:59.999999'),
             ({}, -0.0000005, -0.005, '-infinity', '-infinity', '-infinity', '00:00:00'),
             ({}, 123.4567891, NULL, '0001-01-01', '0001-01-01 00:00:00', '9999-12-31 23:59:59.999999+00', NULL)",
            base + 1,
            base + 2,
            base + 3
        )
    };
    let expected = |base: i32| {
        rows_of(
            &EDGE_COLUMNS,
            &[
                (
                    base + 1,
                    vec![
                        Some("9999999999999999999999.999999"),
                        Some("99999999.99"),
                        Some("9999-12-31"),
                        Some("9999-12-31 23:59:59+00:00"),
                        Some("9999-12-31 23:59:59+00:00"),
                        Some("23:59:59.999999"),
                    ],
                ),
                (
                    base + 2,
                    vec![
                        Some("-0.000001"),
                        Some("-0.01"),
                        Some("0001-01-01"),
                        Some("0001-01-01 00:00:00+00:00"),
                        Some("0001-01-01 00:00:00+00:00"),
                        Some("00:00:00"),
                    ],
                ),
                (
                    base + 3,
                    vec![
                        Some("123.456789"),
                        None,
                        Some("0001-01-01"),
                        Some("0001-01-01 00:00:00+00:00"),
                        Some("9999-12-31 23:59:59.999999+00:00"),
                        None,
                    ],
                ),
            ],
        )
    };
    let settings = "DataFormat = \"parquet\"\nCdcMaxBatchInterval = 1";
    let (_task, load, cdc) = load_then_stream(db, settings, &rows, &|_| {}).await;
    assert_eq!(python_rows(&load), expected(0), "LOAD files");
    assert_eq!(python_rows(&cdc), expected(100), "CDC files");
}

/// Each value a Parquet column cannot hold is a data error — with `DataErrorPolicy = STOP_TASK`
/// it stops the task (exit 1, never the invalid-task-file 2) — that names the table, the
/// column, the value and the fix: in the
/// full load when its batch is converted (no LOAD file stays), in CDC when the change is
/// pushed — with `CdcMaxBatchInterval` an hour away, so the error cannot come from a flush.
#[tokio::test]
async fn parquet_refuses_what_readers_reject_when_the_row_enters_the_writer() {
    let db = "val_pg_pq_bad";
    let client = pg_db(db).await;
    let numeric_fix = "set MapUnboundedNumericAsString = true in [source.settings]";
    let decimal = "a DECIMAL holds no NaN or infinity";
    let years = "Parquet readers accept the years 1 to 9999 only";
    // (column, SQL literal, the value as the source prints it, why, a fix beyond the rule)
    let cases = [
        ("nu", "'NaN'", "NaN", decimal, Some(numeric_fix)),
        ("nu", "'Infinity'", "Infinity", decimal, Some(numeric_fix)),
        ("nu", "'-Infinity'", "-Infinity", decimal, Some(numeric_fix)),
        (
            "nu",
            "1.5e30",
            "1500000000000000000000000000000",
            "more digits before the point than the precision allows",
            Some(numeric_fix),
        ),
        ("nb", "'NaN'", "NaN", decimal, None),
        ("d", "'10000-01-01'", "10000-01-01", years, None),
        ("d", "'0044-03-15 BC'", "0044-03-15 BC", years, None),
        ("ts", "'10000-01-01'", "10000-01-01 00:00:00", years, None),
        (
            "tz",
            "'10000-01-01 00:00:00+00'",
            "10000-01-01 00:00:00+00",
            years,
            None,
        ),
        (
            "tm",
            "'24:00:00'",
            "24:00:00",
            "Parquet readers accept times up to 23:59:59.999999",
            None,
        ),
    ];
    let check =
        |phase: &str, code: i32, line: &str, case: &(&str, &str, &str, &str, Option<&str>)| {
            let (col, _, value, why, fix) = case;
            assert_eq!(code, 1, "{phase}, {col} = {value}: exit code ({line})");
            let cause = format!("table c.edge: column {col} (");
            let shown = format!(": cannot write value {value:?} as Parquet ");
            let rule =
                format!("add a change-data-type rule with data-type string for column {col}");
            assert!(
                line.contains(&cause)
                    && line.contains(&shown)
                    && line.contains(why)
                    && line.contains(&rule)
                    && fix.is_none_or(|f| line.contains(f))
                    && line.contains("DataFormat=csv"),
                "{phase}, {col} = {value}: {line}"
            );
        };
    for case in &cases {
        let (col, literal, ..) = case;
        client
            .batch_execute(&format!(
                "TRUNCATE c.edge; INSERT INTO c.edge (id, nu) VALUES (1, 1.5);
                 INSERT INTO c.edge (id, {col}) VALUES (2, {literal});"
            ))
            .await
            .unwrap();
        let task = new_task(db, "c", None, "DataFormat = \"parquet\"", STOP_TASK);
        let out = tributary(&[
            "run",
            "--config",
            task.path.to_str().unwrap(),
            "--no-progress",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        check("full load", out.status.code().unwrap_or(-1), line, case);
        assert!(
            table_files(&task.lake(), "c/edge").0.is_empty(),
            "no LOAD file of a failed table stays"
        );
    }
    client.batch_execute("TRUNCATE c.edge").await.unwrap();
    for case in &cases {
        let (col, literal, ..) = case;
        let task = cdc_task(
            db,
            "full-load-and-cdc",
            "DataFormat = \"parquet\"\nCdcMaxBatchInterval = 3600",
            "",
        );
        let text = std::fs::read_to_string(&task.path).unwrap();
        let text = text.replace(
            "[task.settings]\n",
            &format!("[task.settings]\n{STOP_TASK}\n"),
        );
        std::fs::write(&task.path, text).unwrap();
        let mut child = spawn(&task, 0);
        wait_streaming(&task, 0, &mut child);
        client
            .batch_execute(&format!(
                "INSERT INTO c.edge (id, nu) VALUES (1, 1.5);
                 INSERT INTO c.edge (id, {col}) VALUES (2, {literal});"
            ))
            .await
            .unwrap();
        let (code, line) = failure(&task, &mut child);
        check("CDC", code, &line, case);
        assert!(
            files(&task.lake()).iter().all(|f| f.contains("LOAD")),
            "no CDC file: {:?}",
            files(&task.lake())
        );
        drop_slots(db).await;
        client.batch_execute("TRUNCATE c.edge").await.unwrap();
    }
}

/// The fixes the errors name work: `MapUnboundedNumericAsString` writes unbounded numeric as
/// the text PostgreSQL prints (every digit, NaN, the infinities, unrounded), and
/// `change-data-type` rules to string write dates, timestamps and times as their text; Parquet
/// readers read every value, in the load and in the stream.
#[tokio::test]
async fn parquet_writes_them_as_text_with_the_fixes_the_errors_name() {
    let rule = |id: usize, col: &str| {
        format!(
            r#"{{"rule-type":"transformation","rule-id":"{id}","rule-name":"{id}","rule-target":"column","object-locator":{{"schema-name":"c","table-name":"edge","column-name":"{col}"}},"rule-action":"change-data-type","data-type":{{"type":"string","length":50}}}}"#
        )
    };
    let rules = [
        r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"c","table-name":"%"},"rule-action":"include"}"#.to_string(),
        rule(2, "nb"),
        rule(3, "d"),
        rule(4, "ts"),
        rule(5, "tz"),
        rule(6, "tm"),
    ];
    let prepare = |task: &Task| {
        crate::mapping::set_mapping(task, &rules.join(","));
        let text = std::fs::read_to_string(&task.path).unwrap();
        let settings = "[source.settings]\nMapUnboundedNumericAsString = true";
        std::fs::write(&task.path, format!("{text}\n{settings}\n")).unwrap();
    };
    let settings = "DataFormat = \"parquet\"\nCdcMaxBatchInterval = 1";
    let (_task, load, cdc) =
        load_then_stream("val_pg_pq_text", settings, &edge_rows, &prepare).await;
    let expected = |base: i32| {
        rows_of(
            &EDGE_COLUMNS,
            &[
                (
                    base + 1,
                    vec![
                        Some("NaN"),
                        Some("NaN"),
                        Some("10000-01-01"),
                        Some("10000-01-01 00:00:00"),
                        Some("10000-01-01 00:00:00+00"),
                        Some("24:00:00"),
                    ],
                ),
                (
                    base + 2,
                    vec![
                        Some("Infinity"),
                        Some("1.50"),
                        Some("infinity"),
                        Some("infinity"),
                        Some("infinity"),
                        Some("23:59:59.999999"),
                    ],
                ),
                (
                    base + 3,
                    vec![
                        Some("-Infinity"),
                        Some("-0.01"),
                        Some("-infinity"),
                        Some("-infinity"),
                        Some("-infinity"),
                        Some("00:00:00"),
                    ],
                ),
                (
                    base + 4,
                    vec![
                        Some("1500000000000000000000000000000"),
                        Some("12.34"),
                        Some("0044-03-15 BC"),
                        Some("0044-03-15 10:00:00 BC"),
                        Some("0044-03-15 10:00:00+00 BC"),
                        None,
                    ],
                ),
                (
                    base + 5,
                    vec![
                        Some("123.4567891"),
                        None,
                        Some("9999-12-31"),
                        Some("9999-12-31 23:59:59.999999"),
                        Some("0001-01-01 00:00:00+00"),
                        Some("12:00:00"),
                    ],
                ),
            ],
        )
    };
    assert_eq!(python_rows(&load), expected(0), "LOAD files");
    assert_eq!(python_rows(&cdc), expected(100), "CDC files");
}

/// MySQL/MariaDB: TIME beyond a day or negative (STRING, as DMS maps it), zero and partly-zero
/// dates (NULL, as DMS), DECIMAL(65,30) (STRING, every digit), DECIMAL(38,10) at its limit, the
/// first and last DATETIME(6) — in CSV and in Parquet, load and binlog alike. A date MySQL
/// accepts only under ALLOW_INVALID_DATES (`2023-02-31`) is text in CSV, and a data error in
/// Parquet, whose DATE cannot hold it.
#[tokio::test]
async fn mysql_values_at_the_edges_in_csv_and_parquet() {
    let db = "val_my";
    let mut conn = my_db(db).await;
    let rows = |base: i32| {
        format!(
            "SET sql_mode = ''; INSERT INTO edge VALUES
             ({}, '838:59:59.000000', '0000-00-00', '0000-00-00 00:00:00',
              99999999999999999999999999999999999.999999999999999999999999999999,
              9999999999999999999999999999.9999999999, '9999-12-31 23:59:59.999999'),
             ({}, '-25:30:00.5', '2024-00-10', '2024-01-00 10:00:00',
              -0.000000000000000000000000000001, -0.0000000001, '1000-01-01 00:00:00'),
             ({}, '-00:00:00.000001', '0001-01-01', '0001-01-01 00:00:00', 0, 0, NULL)",
            base + 1,
            base + 2,
            base + 3
        )
    };
    conn.query_drop(format!(
        "CREATE TABLE edge (id INT PRIMARY KEY, tm TIME(6), d DATE, dt DATETIME, dw DECIMAL(65,30),
                            d38 DECIMAL(38,10), dt6 DATETIME(6));
         CREATE TABLE fence (id INT PRIMARY KEY, rev INT);
         {}",
        rows(0)
    ))
    .await
    .unwrap();
    let cols = ["tm", "d", "dt", "dw", "d38", "dt6"];
    for format in ["csv", "parquet"] {
        // Each format's task starts from the same three rows and streams three more.
        conn.query_drop("DELETE FROM edge WHERE id > 100; DELETE FROM fence")
            .await
            .unwrap();
        let settings = format!("DataFormat = \"{format}\"\nCdcMaxBatchInterval = 1");
        let task = my_task_at(&my_url(db), db, "full-load-and-cdc", &settings, "");
        let mut child = spawn(&task, 0);
        wait_streaming(&task, 0, &mut child);
        conn.query_drop(rows(100)).await.unwrap();
        conn.query_drop("INSERT INTO fence VALUES (1, 0)")
            .await
            .unwrap();
        wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
            fs.iter()
                .any(|f| f.starts_with(&format!("{db}/fence/")) && !f.contains("LOAD"))
        });
        terminate(&task, 0, child);
        let (load, cdc) = table_files(&task.lake(), &format!("{db}/edge"));
        let read = |paths: &[PathBuf]| match format {
            "csv" => csv_rows(paths),
            _ => python_rows(paths),
        };
        // Parquet's DECIMAL(38,10) reads back as Python's Decimal; zero has an exponent there.
        let (zero38, dt6_1, dt6_2, dt_3) = match format {
            "csv" => (
                "0.0000000000",
                "9999-12-31 23:59:59.999999",
                "1000-01-01 00:00:00.000000",
                "0001-01-01 00:00:00.000000",
            ),
            _ => (
                "0E-10",
                "9999-12-31 23:59:59.999999+00:00",
                "1000-01-01 00:00:00+00:00",
                "0001-01-01 00:00:00+00:00",
            ),
        };
        let expected = |base: i32| {
            rows_of(
                &cols,
                &[
                    (
                        base + 1,
                        vec![
                            Some("838:59:59.000000"),
                            None,
                            None,
                            Some("99999999999999999999999999999999999.999999999999999999999999999999"),
                            Some("9999999999999999999999999999.9999999999"),
                            Some(dt6_1),
                        ],
                    ),
                    (
                        base + 2,
                        vec![
                            Some("-25:30:00.500000"),
                            None,
                            None,
                            Some("-0.000000000000000000000000000001"),
                            Some(if format == "csv" { "-0.0000000001" } else { "-1E-10" }),
                            Some(dt6_2),
                        ],
                    ),
                    (
                        base + 3,
                        vec![
                            Some("-00:00:00.000001"),
                            Some("0001-01-01"),
                            Some(dt_3),
                            Some("0.000000000000000000000000000000"),
                            Some(zero38),
                            None,
                        ],
                    ),
                ],
            )
        };
        assert_eq!(read(&load), expected(0), "{format} LOAD files");
        assert_eq!(
            read(&cdc),
            expected(100),
            "{format} CDC files\n{}",
            log(&task, 0)
        );
    }

    // 2023-02-31: text in CSV, a data error in Parquet when the row enters the writer.
    conn.query_drop(
        "DELETE FROM edge; DELETE FROM fence; SET sql_mode = 'ALLOW_INVALID_DATES';
         INSERT INTO edge (id, d) VALUES (1, '2023-02-31')",
    )
    .await
    .unwrap();
    let task = my_task_at(&my_url(db), db, "full-load", "", "");
    run_ok(&task, &[]);
    let (load, _) = table_files(&task.lake(), &format!("{db}/edge"));
    assert_eq!(csv_rows(&load)[0]["d"].as_deref(), Some("2023-02-31"));
    let task = my_task_at(&my_url(db), db, "full-load", "DataFormat = \"parquet\"", "");
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The default DataErrorPolicy suspends the table: the run ends with exit code 3.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "table {db}.edge: column d (date): cannot write value \"2023-02-31\" as Parquet DATE: it is not a date"
        )) && stderr.contains("change-data-type rule with data-type string for column d"),
        "{stderr}"
    );
    conn.query_drop("DELETE FROM edge").await.unwrap();
    let task = my_task_at(
        &my_url(db),
        db,
        "full-load-and-cdc",
        "DataFormat = \"parquet\"\nCdcMaxBatchInterval = 3600",
        "",
    );
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replace(
        "[source]",
        &format!("[task.settings]\n{STOP_TASK}\n[source]"),
    );
    std::fs::write(&task.path, text).unwrap();
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop(
        "SET sql_mode = 'ALLOW_INVALID_DATES'; INSERT INTO edge (id, d) VALUES (2, '2023-02-31')",
    )
    .await
    .unwrap();
    let (code, line) = failure(&task, &mut child);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains(&format!(
            "table {db}.edge: column d (date): cannot write value \"2023-02-31\" as Parquet DATE"
        )),
        "{line}"
    );
}
