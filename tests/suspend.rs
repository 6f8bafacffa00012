//! `ErrorBehavior` end to end: one table whose data cannot be written is suspended while the
//! others load and stream; `status` names it and why; the run exits 3; once the cause is fixed,
//! the next run reloads it and the files replay to the source. Record-level policies skip just
//! the bad change.

use std::collections::BTreeMap;
use std::process::{Child, Command, ExitStatus};

use mysql_async::prelude::Queryable;

use crate::cdc::{log, spawn, wait_for, wait_streaming};
use crate::common::*;
use crate::mapping::set_mapping;

/// Sends SIGTERM and returns how the run exited.
fn stop(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap()
}

/// `tributary status` of the task: (exit success, text).
fn status(task: &Task) -> String {
    let out = tributary(&["status", "--config", task.path.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Current state of `folder`'s files by `id`: I/U upsert, D delete, as (id → v).
fn replayed(lake: &std::path::Path, folder: &str) -> BTreeMap<i64, Option<String>> {
    let mut state = BTreeMap::new();
    for (is_cdc, row) in crate::cdc::read_table_files(lake, folder) {
        let id: i64 = row["id"].as_deref().unwrap().parse().unwrap();
        let op = match is_cdc {
            true => row["Op"].clone().unwrap(),
            false => "I".into(),
        };
        if op == "D" {
            state.remove(&id);
        } else {
            state.insert(id, row["v"].clone());
        }
    }
    state
}

/// Mapping: every table of `schema`, with `bad.v` retyped to int4 (a text value such as 'x'
/// cannot be converted: a data error).
fn rules(schema: &str) -> String {
    format!(
        r#"{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{schema}","table-name":"%"}},"rule-action":"include"}},
           {{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"column","object-locator":{{"schema-name":"{schema}","table-name":"bad","column-name":"v"}},"rule-action":"change-data-type","data-type":{{"type":"int4"}}}}"#
    )
}

/// PostgreSQL, full load and CDC: `bad` fails its load on 'x' and is suspended; `good` loads
/// and streams; changes to `bad` are dropped; the run exits 3 and `status` shows the cause.
/// After the value is fixed, the next run reloads `bad` from a fresh snapshot and both tables
/// replay to the source.
#[tokio::test]
async fn postgres_a_poisoned_table_is_suspended_and_reloaded_after_the_fix() {
    let db = "susp_pg";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA s;
             CREATE TABLE s.good (id int PRIMARY KEY, v text);
             CREATE TABLE s.bad (id int PRIMARY KEY, v text);
             CREATE TABLE s.fence (id int PRIMARY KEY, v text);
             INSERT INTO s.good VALUES (1, 'a'), (2, 'b');
             INSERT INTO s.bad VALUES (1, '10'), (2, 'x'), (3, '30');",
        )
        .await
        .unwrap();
    let task = crate::cdc::cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    set_mapping(&task, &rules("s"));
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute(
            "INSERT INTO s.good VALUES (3, 'c');
             INSERT INTO s.bad VALUES (4, '40');
             INSERT INTO s.fence VALUES (1, 'f');",
        )
        .await
        .unwrap();
    let lake = task.lake();
    wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
        fs.iter()
            .any(|f| f.starts_with("s/fence/") && !f.contains("LOAD"))
    });
    let exit = stop(&mut child);
    assert_eq!(exit.code(), Some(3), "{}", log(&task, 0));
    assert!(
        files(&lake).iter().all(|f| !f.starts_with("s/bad/")),
        "nothing of the suspended table: {:?}",
        files(&lake)
    );
    let good = expect(&[(1, "a"), (2, "b"), (3, "c")]);
    assert_eq!(replayed(&lake, "s/good"), good);
    let shown = status(&task);
    assert!(
        shown.contains("s.bad: Table error") && shown.contains("\"x\""),
        "{shown}"
    );
    // Stopped as usual (not failed), and `status` exits 3 as the run did.
    let out = tributary(&["status", "--config", task.path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["Status"].as_str(), json["StopReason"].as_str()),
        (Some("stopped"), Some("NORMAL")),
        "{json}"
    );

    // The fix, then a change while the task is down, then the next run.
    client
        .batch_execute(
            "UPDATE s.bad SET v = '20' WHERE id = 2;
             INSERT INTO s.bad VALUES (5, '50');",
        )
        .await
        .unwrap();
    rerun_after_fix(
        &client,
        &task,
        "UPDATE s.bad SET v = '60' WHERE id = 1;
         INSERT INTO s.fence VALUES (2, 'f');",
        0,
    )
    .await;
    let bad = expect(&[(1, "60"), (2, "20"), (3, "30"), (4, "40"), (5, "50")]);
    assert_eq!(replayed(&lake, "s/bad"), bad, "{}", log(&task, 1));
    assert_eq!(replayed(&lake, "s/good"), good);
    assert!(!status(&task).contains("Table error"));
}

/// MariaDB, CDC: with `DataErrorPolicy = LOG_ERROR` a change that cannot be converted is
/// skipped, logged and counted, and the table goes on; with the default (`SUSPEND_TABLE`) the
/// table stops while another streams on.
#[tokio::test]
async fn mysql_data_errors_follow_the_data_error_policy() {
    for (n, policy) in ["LOG_ERROR", "SUSPEND_TABLE"].iter().enumerate() {
        let db = format!("susp_my{n}");
        let url = crate::mysql::my_url(&db);
        let mut conn = crate::mysql::my_db(&db).await;
        conn.query_drop(
            "CREATE TABLE bad (id INT PRIMARY KEY, v VARCHAR(10));
             CREATE TABLE fence (id INT PRIMARY KEY, v VARCHAR(10));",
        )
        .await
        .unwrap();
        let task = crate::mysql::my_task_at(&url, &db, "cdc", "CdcMaxBatchInterval = 1", "");
        let text = std::fs::read_to_string(&task.path).unwrap().replace(
            "[source]",
            &format!("[task.settings]\n\"ErrorBehavior.DataErrorPolicy\" = \"{policy}\"\n[source]"),
        );
        std::fs::write(&task.path, text).unwrap();
        set_mapping(&task, &rules(&db));
        let mut child = spawn(&task, 0);
        wait_streaming(&task, 0, &mut child);
        conn.query_drop(
            "INSERT INTO bad VALUES (1, '1'), (2, 'x'), (3, '3');
             INSERT INTO fence VALUES (1, 'f');",
        )
        .await
        .unwrap();
        let lake = task.lake();
        let fence = format!("{db}/fence/");
        wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
            fs.iter().any(|f| f.starts_with(&fence))
        });
        let exit = stop(&mut child);
        let got = replayed(&lake, &format!("{db}/bad"));
        let shown = status(&task);
        if *policy == "LOG_ERROR" {
            assert!(exit.success(), "{exit}\n{}", log(&task, 0));
            let want = expect(&[(1, "1"), (3, "3")]);
            assert_eq!(got, want, "{}", log(&task, 0));
            assert!(log(&task, 0).contains("DataErrorPolicy=LOG_ERROR"));
            assert!(shown.contains("1 records skipped"), "{shown}");
        } else {
            assert_eq!(exit.code(), Some(3), "{}", log(&task, 0));
            let want: BTreeMap<i64, Option<String>> = [(1, Some("1".to_string()))].into();
            assert_eq!(got, want, "rows before the bad one are kept");
            assert!(shown.contains("bad: Table error"), "{shown}");
        }
    }
}

/// The replayed state `pairs` stand for: id → value.
fn expect(pairs: &[(i64, &str)]) -> BTreeMap<i64, Option<String>> {
    pairs
        .iter()
        .map(|(i, v)| (*i, Some(v.to_string())))
        .collect()
}

/// Run 1 of a PostgreSQL task whose `s.bad` was suspended, after the fix: once it streams,
/// runs `live`, waits for a CDC file of `s.bad` and for `good_cdc` CDC files of `s.good` (the
/// stream went on past the reload), and stops it cleanly.
async fn rerun_after_fix(
    client: &tokio_postgres::Client,
    task: &Task,
    live: &str,
    good_cdc: usize,
) {
    let mut child = spawn(task, 1);
    wait_streaming(task, 1, &mut child);
    client.batch_execute(live).await.unwrap();
    let cdc = |fs: &[String], folder: &str| {
        fs.iter()
            .filter(|f| f.starts_with(folder) && !f.contains("LOAD"))
            .count()
    };
    wait_for(
        task,
        1,
        &mut child,
        60,
        "the change after the reload",
        |fs| cdc(fs, "s/bad/") > 0 && cdc(fs, "s/good/") >= good_cdc,
    );
    let exit = stop(&mut child);
    assert!(exit.success(), "{exit}\n{}", log(task, 1));
}

/// The task's checkpoint as JSON.
fn checkpoint(task: &Task, id: &str) -> serde_json::Value {
    let path = task
        .dir
        .path()
        .join(format!("tributary-state/{id}/checkpoint.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// PostgreSQL, CDC: a table whose changes the decoder refuses — its rules need before-images
/// and its REPLICA IDENTITY FULL was dropped while the task streams — is suspended at that
/// change while the others stream on; the run exits 3, `status` shows the cause and where; the
/// slot is confirmed past the refused change; once the identity is FULL again, the next run
/// reloads the table and both replay to the source.
#[tokio::test]
async fn postgres_a_table_the_decoder_refuses_is_suspended_and_the_stream_goes_on() {
    let db = "susp_pg_src";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA s;
             CREATE TABLE s.good (id int PRIMARY KEY, v text);
             CREATE TABLE s.bad (id int PRIMARY KEY, v text);
             CREATE TABLE s.fence (id int PRIMARY KEY, v text);
             ALTER TABLE s.bad REPLICA IDENTITY FULL;
             INSERT INTO s.bad VALUES (1, 'a');",
        )
        .await
        .unwrap();
    let task = crate::cdc::cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    set_mapping(
        &task,
        r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"s","table-name":"%"},"rule-action":"include"},
           {"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"column","object-locator":{"schema-name":"s","table-name":"bad"},"rule-action":"add-before-image-columns","before-image-def":{"column-prefix":"BI_","column-suffix":"","column-filter":"all"}}"#,
    );
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute(
            "ALTER TABLE s.bad REPLICA IDENTITY DEFAULT;
             INSERT INTO s.good VALUES (1, 'a');
             UPDATE s.bad SET v = 'b' WHERE id = 1;",
        )
        .await
        .unwrap();
    let past_bad: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(
            "INSERT INTO s.good VALUES (2, 'b');
             INSERT INTO s.fence VALUES (1, 'f');",
        )
        .await
        .unwrap();
    let lake = task.lake();
    wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
        fs.iter()
            .any(|f| f.starts_with("s/fence/") && !f.contains("LOAD"))
    });
    // The stream moved on: the slot is confirmed past the refused change, so a resume does
    // not meet it again (and the server releases the WAL before it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let past: bool = client
            .query_one(
                "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots WHERE database = $2",
                &[&past_bad, &db],
            )
            .await
            .unwrap()
            .get(0);
        if past {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot stayed before {past_bad}\n{}",
            log(&task, 0)
        );
        // The loop saves and confirms on its 250 ms tick: poll at that pace.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let exit = stop(&mut child);
    assert_eq!(exit.code(), Some(3), "{}", log(&task, 0));
    let good = expect(&[(1, "a"), (2, "b")]);
    assert_eq!(replayed(&lake, "s/good"), good, "{}", log(&task, 0));
    let before: BTreeMap<i64, Option<String>> = [(1, Some("a".to_string()))].into();
    assert_eq!(
        replayed(&lake, "s/bad"),
        before,
        "the refused change is not written"
    );
    let shown = status(&task);
    assert!(
        shown.contains("s.bad: Table error")
            && shown.contains("REPLICA IDENTITY FULL")
            && shown.contains("committed at LSN"),
        "{shown}"
    );
    let suspended_at =
        &checkpoint(&task, &format!("t-{db}"))["cdc"]["tables"]["s.bad"]["suspended_at"];
    assert!(suspended_at["Postgres"].is_string(), "{suspended_at}");

    // The fix, changes while the task is down, then the next run.
    client
        .batch_execute(
            "ALTER TABLE s.bad REPLICA IDENTITY FULL;
             UPDATE s.bad SET v = 'c' WHERE id = 1;
             INSERT INTO s.bad VALUES (2, 'x');",
        )
        .await
        .unwrap();
    rerun_after_fix(
        &client,
        &task,
        "INSERT INTO s.bad VALUES (3, 'y');
         INSERT INTO s.good VALUES (3, 'c');",
        2,
    )
    .await;
    let bad = expect(&[(1, "c"), (2, "x"), (3, "y")]);
    assert_eq!(replayed(&lake, "s/bad"), bad, "{}", log(&task, 1));
    let good = expect(&[(1, "a"), (2, "b"), (3, "c")]);
    assert_eq!(replayed(&lake, "s/good"), good, "{}", log(&task, 1));
    assert!(!status(&task).contains("Table error"));
}

/// MariaDB, CDC: a table altered while the task streams so that its rows no longer fit the
/// table mappings (the `define-primary-key` column renamed) is suspended at its first row of
/// the new shape while another table streams on; the run exits 3, `status` shows the cause and
/// the binlog position; the checkpoint's position is past the refused row; once the column is
/// renamed back, the next run reloads the table and both replay to the source.
#[tokio::test]
async fn mysql_a_table_whose_rows_cannot_be_mapped_is_suspended_and_the_stream_goes_on() {
    let db = "susp_my_src";
    let url = crate::mysql::my_url(db);
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(
        "CREATE TABLE bad (id INT PRIMARY KEY, code INT, v VARCHAR(10));
         CREATE TABLE good (id INT PRIMARY KEY, v VARCHAR(10));
         CREATE TABLE fence (id INT PRIMARY KEY, v INT);",
    )
    .await
    .unwrap();
    let task = crate::mysql::my_task_at(&url, db, "cdc", "CdcMaxBatchInterval = 1", "");
    set_mapping(
        &task,
        &format!(
            r#"{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{db}","table-name":"%"}},"rule-action":"include"}},
               {{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"table","object-locator":{{"schema-name":"{db}","table-name":"bad"}},"rule-action":"define-primary-key","primary-key-def":{{"name":"bad_pk","origin":"primary-key","columns":["code"]}}}}"#
        ),
    );
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop(
        "INSERT INTO bad VALUES (1, 10, 'a');
         INSERT INTO good VALUES (1, 'a');
         ALTER TABLE bad RENAME COLUMN code TO code2;
         INSERT INTO bad VALUES (2, 20, 'b');",
    )
    .await
    .unwrap();
    let (file, offset): (String, u64) = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|row: mysql_async::Row| (row.get(0).unwrap(), row.get(1).unwrap()))
        .unwrap();
    conn.query_drop("INSERT INTO good VALUES (2, 'b')")
        .await
        .unwrap();
    crate::mysql::fence(&mut conn, &task, 0, &mut child, db, 1).await;
    let exit = stop(&mut child);
    assert_eq!(exit.code(), Some(3), "{}", log(&task, 0));
    let lake = task.lake();
    let good = expect(&[(1, "a"), (2, "b")]);
    assert_eq!(
        replayed(&lake, &format!("{db}/good")),
        good,
        "{}",
        log(&task, 0)
    );
    let before: BTreeMap<i64, Option<String>> = [(1, Some("a".to_string()))].into();
    assert_eq!(
        replayed(&lake, &format!("{db}/bad")),
        before,
        "rows before the alter are kept, the refused one is not written"
    );
    let shown = status(&task);
    assert!(
        shown.contains("bad: Table error")
            && shown.contains("\"code\"")
            && shown.contains("transaction at binlog"),
        "{shown}"
    );
    // Not stuck: the position a resume starts from is past the refused row.
    let cp = checkpoint(&task, &format!("my-{db}"));
    let resume = &cp["cdc"]["resume_from"]["MySql"];
    let at = (
        resume["file"].as_str().unwrap().to_string(),
        resume["offset"].as_u64().unwrap(),
    );
    assert!(
        at >= (file, offset),
        "resume_from {resume} is before the refused row"
    );

    // The fix, a change while the task is down, then the next run.
    conn.query_drop(
        "ALTER TABLE bad RENAME COLUMN code2 TO code;
         INSERT INTO bad VALUES (3, 30, 'c');",
    )
    .await
    .unwrap();
    let mut child = spawn(&task, 1);
    wait_streaming(&task, 1, &mut child);
    conn.query_drop("INSERT INTO bad VALUES (4, 40, 'd')")
        .await
        .unwrap();
    crate::mysql::fence(&mut conn, &task, 1, &mut child, db, 2).await;
    let exit = stop(&mut child);
    assert!(exit.success(), "{exit}\n{}", log(&task, 1));
    let bad = expect(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
    assert_eq!(
        replayed(&lake, &format!("{db}/bad")),
        bad,
        "{}",
        log(&task, 1)
    );
    assert_eq!(replayed(&lake, &format!("{db}/good")), good);
    assert!(!status(&task).contains("Table error"));
}

/// PostgreSQL, CDC: under `UnchangedToastValues = "fail"` an UPDATE that leaves a TOASTed value
/// unsent is a data error of its table (the default `DataErrorPolicy` suspends it): the run
/// goes on, exits 3 on stop, and `status` names the table, the column and the change's LSN.
#[tokio::test]
async fn postgres_an_unsent_toast_value_is_a_data_error_of_its_table() {
    let settings = "AddColumnName = true\nCdcMaxBatchInterval = 1";
    let (client, task, mut child) =
        crate::cdc::toast_task("susp_pg_toast", settings, "UnchangedToastValues = \"fail\"").await;
    // The task's only table: its suspension is the event to wait for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !log(&task, 0).contains("table suspended") {
        assert!(child.try_wait().unwrap().is_none(), "{}", log(&task, 0));
        assert!(std::time::Instant::now() < deadline, "{}", log(&task, 0));
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    // Still streaming after the suspension (a stopped stream would have ended the run).
    client
        .batch_execute("UPDATE c.docs SET rev = 2")
        .await
        .unwrap();
    let exit = stop(&mut child);
    assert_eq!(exit.code(), Some(3), "{}", log(&task, 0));
    assert!(
        files(&task.lake())
            .iter()
            .all(|f| !f.starts_with("c/docs/")),
        "no file may hold a NULL for the unsent value: {:?}",
        files(&task.lake())
    );
    let shown = status(&task);
    assert!(
        shown.contains("c.docs: Table error")
            && shown.contains("(TOASTed) column body")
            && shown.contains("committed at LSN"),
        "{shown}"
    );
}

/// A table whose load fails after files were written: its files are removed, so neither its
/// progress line nor `status` reports rows as written (the line says how many were read).
#[tokio::test]
async fn a_failed_table_reports_no_row_written() {
    let db = "susp_rows";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA s;
             CREATE TABLE s.good (id int PRIMARY KEY, v text);
             CREATE TABLE s.bad (id int PRIMARY KEY, v text);
             INSERT INTO s.good VALUES (1, '1');
             INSERT INTO s.bad SELECT i, i::text FROM generate_series(1, 20000) i;
             UPDATE s.bad SET v = 'x' WHERE id = 19000;",
        )
        .await
        .unwrap();
    // Small files, so some are written (then removed) before the bad value.
    let task = new_task(db, "s", None, "MaxFileSize = 1", "");
    set_mapping(&task, &rules("s"));
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        files(&task.lake()).iter().all(|f| !f.starts_with("s/bad/")),
        "{:?}",
        files(&task.lake())
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("Table error") && l.contains("table=s.bad"))
        .unwrap_or_else(|| panic!("no Table error line for s.bad\n{stderr}"));
    assert!(line.contains(" rows=0"), "{line}");
    assert!(line.contains("none kept"), "{line}");
    let read: u64 = line
        .split("rows_read=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rows_read in {line}"));
    assert!(read > 0, "{line}");
    let shown = status(&task);
    let row = shown
        .lines()
        .find(|l| l.starts_with("s.bad "))
        .unwrap_or_else(|| panic!("{shown}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["Table", "error", "0"], "{shown}");
    let json = tributary(&["status", "--config", task.path.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let bad = json["TableStatistics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["TableName"] == "bad")
        .cloned()
        .unwrap();
    assert_eq!(bad["FullLoadRows"], 0, "{bad}");
}
