//! DMS source-endpoint settings that shape values, and the task settings that stop a
//! full-load-and-cdc task after its load, each tested by its effect on the files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cdc::{cdc_task, log, spawn, terminate, wait_for, wait_streaming};
use crate::common::*;
use crate::full_load::read_parquet;

/// The table of these tests: a boolean, a padded `char(5)`, an unbounded `varchar`, a `jsonb`.
const TABLES: &str = "CREATE SCHEMA c;
    CREATE TABLE c.v (id int PRIMARY KEY, b boolean, ch char(5), vc varchar, j jsonb);
    CREATE TABLE public.after_connect_log (at timestamptz DEFAULT now());";

/// Rows `base + 1` and `base + 2` of `c.v`.
fn rows(base: i32) -> String {
    format!(
        "INSERT INTO c.v VALUES ({}, true, 'ab', 'long text', '{{\"k\": 1}}'), ({}, false, 'abcde', NULL, NULL)",
        base + 1,
        base + 2
    )
}

/// A fresh database `db` with [`TABLES`], and its replication slots dropped.
async fn db(db: &str) -> tokio_postgres::Client {
    drop_slots(db).await;
    let client = fresh_db(db).await;
    client.batch_execute(TABLES).await.unwrap();
    client
}

/// Adds `lines` under `[source.settings]` of the task file.
fn source_settings(task: &Task, lines: &str) {
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replace("[target]", &format!("[source.settings]\n{lines}\n[target]"));
    std::fs::write(&task.path, text).unwrap();
}

/// Adds `lines` under `[task.settings]` of the task file.
fn task_settings(task: &Task, lines: &str) {
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replacen("[task.settings]", &format!("[task.settings]\n{lines}"), 1);
    std::fs::write(&task.path, text).unwrap();
}

/// Loads `c.v` (rows 1–2), streams rows 101–102, stops; returns the Parquet schema's fields as
/// (name, Arrow type) and every row of the LOAD and CDC files as `Op|id|…` text (NULL as `∅`).
async fn load_and_stream(
    name: &str,
    source: &str,
    task_lines: &str,
) -> (Vec<(String, String)>, Vec<String>) {
    let client = db(name).await;
    client.batch_execute(&rows(0)).await.unwrap();
    let task = cdc_task(
        name,
        "full-load-and-cdc",
        "DataFormat = \"parquet\"\nIncludeOpForFullLoad = true\nCdcMaxBatchInterval = 1",
        "",
    );
    source_settings(&task, source);
    task_settings(&task, task_lines);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client.batch_execute(&rows(100)).await.unwrap();
    wait_for(&task, 0, &mut child, 60, "the CDC file", |fs| {
        fs.iter()
            .any(|f| f.starts_with("c/v/") && !f.contains("LOAD"))
    });
    terminate(&task, 0, child);
    let paths: Vec<PathBuf> = files(&task.lake())
        .into_iter()
        .filter(|f| f.starts_with("c/v/"))
        .map(|f| task.lake().join(f))
        .collect();
    // With IncludeOpForFullLoad, LOAD and CDC files have the same columns.
    let (schema, rows) = read_parquet(&paths);
    let fields = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let rows = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| c.clone().unwrap_or_else(|| "∅".into()))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    (fields, rows)
}

/// DMS's defaults: a PostgreSQL boolean is the string `true`/`false` (Parquet UTF8, not
/// BOOLEAN), `char(n)` loses its padding, an unbounded varchar is a string — in the LOAD file
/// and in the CDC file alike. AfterConnectScript runs on the task's connections.
#[tokio::test]
async fn postgres_defaults_write_booleans_as_strings_and_trim_char() {
    let (fields, rows) = load_and_stream(
        "srcset_pg_default",
        "AfterConnectScript = \"INSERT INTO public.after_connect_log DEFAULT VALUES\"",
        "",
    )
    .await;
    let ty = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no column {name} in {fields:?}"))
    };
    assert_eq!(ty("b"), "Utf8", "{fields:?}");
    for id in [1, 101] {
        let first = format!("I|{id}|true|ab|long text|{{\"k\": 1}}");
        let second = format!("I|{}|false|abcde|∅|∅", id + 1);
        assert!(rows.contains(&first), "{first}: {rows:#?}");
        assert!(rows.contains(&second), "{second}: {rows:#?}");
    }
    let client = connect(&pg_url("srcset_pg_default")).await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM public.after_connect_log", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n >= 2, "AfterConnectScript ran {n} times");
}

/// The switches: MapBooleanAsBoolean writes Parquet BOOLEAN, TrimSpaceInChar=false keeps the
/// padding, MapLongVarcharAs=CLOB makes an unbounded varchar a LOB (so SupportLobs=false drops
/// it with the jsonb column).
#[tokio::test]
async fn postgres_switches_keep_booleans_padding_and_drop_long_varchar() {
    let (fields, rows) = load_and_stream(
        "srcset_pg_switch",
        "MapBooleanAsBoolean = true\nTrimSpaceInChar = false\nMapLongVarcharAs = \"CLOB\"",
        "\"TargetMetadata.SupportLobs\" = false",
    )
    .await;
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        !names.contains(&"vc") && !names.contains(&"j"),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|(n, t)| n == "b" && t == "Boolean"),
        "{fields:?}"
    );
    for id in [1, 101] {
        let first = format!("I|{id}|true|ab   ");
        let second = format!("I|{}|false|abcde", id + 1);
        assert!(rows.contains(&first), "{first}: {rows:#?}");
        assert!(rows.contains(&second), "{second}: {rows:#?}");
    }
}

/// A script that fails stops the task with the setting named.
#[tokio::test]
async fn a_failing_after_connect_script_is_named() {
    let client = db("srcset_pg_badscript").await;
    client.batch_execute(&rows(0)).await.unwrap();
    let task = new_task("srcset_pg_badscript", "c", None, "", "");
    source_settings(&task, "AfterConnectScript = \"SELEC 1\"");
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("AfterConnectScript"), "{stderr}");
    assert!(files(&task.lake()).iter().all(|f| !f.contains("LOAD")));
}

/// Waits for `child` to exit by itself (at most `secs`), returning whether it succeeded.
fn exits_by_itself(task: &Task, child: &mut std::process::Child, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.success();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the task did not stop by itself\n{}", log(task, 0));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `StopTaskCachedChangesNotApplied` stops after the load (no CDC file, STOPPED_AFTER_FULL_LOAD)
/// and the next run streams from where the load left off: a change made between the runs is
/// written once. `StopTaskCachedChangesApplied` stops by itself once caught up
/// (STOPPED_AFTER_CACHED_EVENTS).
#[tokio::test]
async fn stop_task_cached_changes_stop_after_the_load() {
    for (name, key, reason) in [
        (
            "srcset_stop_na",
            "StopTaskCachedChangesNotApplied",
            "STOPPED_AFTER_FULL_LOAD",
        ),
        (
            "srcset_stop_a",
            "StopTaskCachedChangesApplied",
            "STOPPED_AFTER_CACHED_EVENTS",
        ),
    ] {
        let client = db(name).await;
        client.batch_execute(&rows(0)).await.unwrap();
        let task = cdc_task(
            name,
            "full-load-and-cdc",
            "AddColumnName = true\nCdcMaxBatchInterval = 1",
            "",
        );
        task_settings(&task, &format!("\"FullLoadSettings.{key}\" = true"));
        let mut child = spawn(&task, 0);
        assert!(exits_by_itself(&task, &mut child, 60), "{}", log(&task, 0));
        let status = tributary(&["status", "--config", task.path.to_str().unwrap(), "--json"]);
        let status = String::from_utf8_lossy(&status.stdout);
        assert!(status.contains(reason), "{key}: {status}");
        let after_first: Vec<String> = files(&task.lake());
        assert!(
            after_first.iter().all(|f| f.contains("LOAD")),
            "{key}: {after_first:?}"
        );
        // The change made while the task is stopped is written by the next run.
        client.batch_execute(&rows(100)).await.unwrap();
        let mut child = spawn(&task, 1);
        wait_streaming(&task, 1, &mut child);
        wait_for(&task, 1, &mut child, 60, "the CDC file", |fs| {
            fs.iter()
                .any(|f| f.starts_with("c/v/") && !f.contains("LOAD"))
        });
        terminate(&task, 1, child);
        let rows_written = crate::cdc::read_table_files(&task.lake(), "c/v");
        let ids: Vec<String> = rows_written
            .iter()
            .filter_map(|(_, r)| r.get("id").cloned().flatten())
            .collect();
        assert_eq!(ids, ["1", "2", "101", "102"], "{key}");
    }
}

/// MySQL's AfterConnectScript runs on the task's sessions (here: the full load's), and
/// `[source] extra_connection_attributes` carries endpoint settings as DMS's ECA string.
#[tokio::test]
async fn mysql_after_connect_script_runs_from_the_eca_string() {
    use mysql_async::prelude::Queryable;
    let db = "srcset_my_script";
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {db}_log; CREATE TABLE IF NOT EXISTS {db}_log.l (n int);
         DELETE FROM {db}_log.l;
         CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (1, 'a'), (2, 'b')"
    ))
    .await
    .unwrap();
    let task = crate::mysql::my_task_at(&crate::mysql::my_url(db), db, "full-load", "", "");
    let text = std::fs::read_to_string(&task.path).unwrap().replace(
        "engine = \"mysql\"",
        &format!(
            "engine = \"mysql\"\nextra_connection_attributes = \"afterConnectScript=INSERT INTO {db}_log.l VALUES (1);eventsPollInterval=5;\""
        ),
    );
    std::fs::write(&task.path, text).unwrap();
    run_ok(&task, &[]);
    let rows = crate::cdc::read_table_files(&task.lake(), &format!("{db}/t"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let n: Option<i64> = conn
        .query_first(format!("SELECT count(*) FROM {db}_log.l"))
        .await
        .unwrap();
    assert!(n.unwrap_or(0) >= 1, "AfterConnectScript ran {n:?} times");
}

/// `validate` accepts an exported task-settings document with every section and lists the keys
/// that are accepted and not applied, once per reason.
#[tokio::test]
async fn validate_lists_the_task_settings_it_does_not_apply() {
    let client = db("srcset_validate").await;
    client.batch_execute(&rows(0)).await.unwrap();
    let task = new_task("srcset_validate", "c", None, "", "");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dms/task-settings-full.json");
    let text = std::fs::read_to_string(&task.path).unwrap().replacen(
        "[task.settings]",
        &format!(
            "task_settings_file = \"{}\"\n[task.settings]",
            fixture.display()
        ),
        1,
    );
    std::fs::write(&task.path, text).unwrap();
    let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ok: task settings accepted, not applied"))
        .collect();
    assert!(listed.len() >= 5, "{stdout}");
    for key in [
        "Logging.EnableLogging",
        "ControlTablesSettings.StatusTableEnabled",
        "ChangeProcessingTuning.MemoryLimitTotal",
    ] {
        assert_eq!(
            listed.iter().filter(|l| l.contains(key)).count(),
            1,
            "{key} listed once: {stdout}"
        );
    }
}

/// A MySQL AfterConnectScript the server refuses is named in the error too.
#[tokio::test]
async fn a_failing_mysql_after_connect_script_is_named() {
    use mysql_async::prelude::Queryable;
    let db = "srcset_my_badscript";
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let task = crate::mysql::my_task_at(&crate::mysql::my_url(db), db, "full-load", "", "");
    let text = std::fs::read_to_string(&task.path).unwrap().replace(
        "[target]",
        "[source.settings]\nAfterConnectScript = \"SELEC 1\"\n[target]",
    );
    std::fs::write(&task.path, text).unwrap();
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("AfterConnectScript"), "{stderr}");
    assert!(files(&task.lake()).iter().all(|f| !f.contains("LOAD")));
}
