//! MySQL/MariaDB source on the private MariaDB (ROW binlog, FULL row image): every type rendered
//! the same by the full load (text protocol) and by the binlog, a concurrent workload during and
//! after the load replayed against the source with per-row revision counters, `kill -9`
//! restarts, an `ADD COLUMN ... AFTER` mid-stream, and two sharded databases into two folders.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use crate::cdc::{log, replay, spawn, terminate, wait_for, wait_streaming};
use crate::common::*;

/// Root URL of the private MariaDB for database `db`.
pub(crate) fn my_url(db: &str) -> String {
    format!("{}{db}", env("TRIBUTARY_TEST_MYSQL_URL"))
}

/// Recreates database `name` and returns a session on it.
pub(crate) async fn my_db(name: &str) -> Conn {
    let mut admin = Conn::new(mysql_async::Opts::from_url(&my_url("")).unwrap())
        .await
        .expect("connect to test MariaDB");
    admin
        .query_drop(format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"
        ))
        .await
        .unwrap();
    let _ = admin.disconnect().await;
    Conn::new(mysql_async::Opts::from_url(&my_url(name)).unwrap())
        .await
        .unwrap()
}

/// Rows of `sql` as optional strings (the text protocol sends every value as text).
pub(crate) async fn my_rows(conn: &mut Conn, sql: &str) -> Vec<Row> {
    let rows: Vec<mysql_async::Row> = conn
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| {
            r.unwrap_raw()
                .into_iter()
                .map(|v| match v {
                    Some(Value::Bytes(b)) => Some(String::from_utf8(b).unwrap()),
                    Some(Value::NULL) | None => None,
                    Some(other) => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

/// A MySQL task on database `db` (all its tables) into the task's local lake.
fn my_task(db: &str, migration: &str, settings: &str, extra_task: &str) -> Task {
    my_task_at(&my_url(db), db, migration, settings, extra_task)
}

/// [`my_task`] on the server at `url` (a URL of database `db`).
pub(crate) fn my_task_at(
    url: &str,
    db: &str,
    migration: &str,
    settings: &str,
    extra_task: &str,
) -> Task {
    let mut dir = tempfile::tempdir().expect("tempdir");
    // TRIBUTARY_TEST_KEEP=1 keeps the task folder (logs, lake, checkpoint) for a post-mortem.
    if std::env::var_os("TRIBUTARY_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("task folder kept: {}", dir.path().display());
    }
    let lake = dir.path().join("lake");
    let text = format!(
        r#"[task]
id = "my-{db}"
migration_type = "{migration}"
{extra_task}
table_mappings = '''{{"rules":[{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{db}","table-name":"%"}},"rule-action":"include"}}]}}'''
[source]
engine = "mysql"
url = "{url}"
[target]
url = "file://{lake}"
[target.settings]
AddColumnName = true
{settings}
"#,
        lake = lake.display()
    );
    let path = dir.path().join("task.toml");
    std::fs::write(&path, text).unwrap();
    Task { dir, path }
}

/// The CSV rows of one table's files in consumer order, keyed by column name.
fn table_rows(task: &Task, table: &str) -> Vec<(bool, BTreeMap<String, Option<String>>)> {
    crate::cdc::read_table_files(&task.lake(), table)
}

/// Inserts fence row `fence` into `db.fence` and waits until a CDC file holds it.
pub(crate) async fn fence(
    conn: &mut Conn,
    task: &Task,
    n: usize,
    child: &mut Child,
    db: &str,
    fence: i64,
) {
    conn.query_drop(format!("INSERT INTO fence VALUES ({fence}, 0)"))
        .await
        .unwrap();
    let lake = task.lake();
    let prefix = format!("{db}/fence/");
    wait_for(task, n, child, 60, &format!("fence {fence}"), |fs| {
        fs.iter().filter(|f| f.starts_with(&prefix)).any(|f| {
            std::fs::read_to_string(lake.join(f))
                .map(|t| t.lines().any(|l| l.ends_with(&format!(",{fence},0"))))
                .unwrap_or(false)
        })
    });
}

const TYPES: &str = "CREATE TABLE types (
    id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED,
    bu BIGINT UNSIGNED, bi BIGINT, d DECIMAL(12,3), dw DECIMAL(50,20), f FLOAT, db DOUBLE,
    b1 BIT(1), b8 BIT(8), bin VARBINARY(8), dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL,
    dd DATE, tm TIME(3), y YEAR, e ENUM('a','bb','c''q'), st SET('x','y','z'), j JSON,
    tx TEXT, vc VARCHAR(20), lt LONGTEXT, bl BLOB, lb LONGBLOB)";

/// The values of the three typed rows (extremes, NULLs/zero dates, ordinary).
fn type_rows(base: i64) -> String {
    format!(
        "({}, -128, 255, -32768, 16777215, 18446744073709551615, -9223372036854775808,
          -123456789.123, 123456789012345678901234567890.12345678901234567890, 1.5, 1e300,
          b'1', b'10100101', 0x00ff10, '2024-02-29 12:34:56.123456', '1999-12-31 23:59:59',
          '2024-02-29 12:34:56.654321', '2024-02-29', '-838:59:59.000', 2024, 'c''q', 'x,z',
          '{{\"a\": [1, 2.5, \"ü\"], \"b\": null}}', 'héllo, \"world\"\nline', '日本語',
          REPEAT('long ', 100), 0xdeadbeef, 0x00),
         ({}, NULL, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, b'0', NULL, '', '0000-00-00 00:00:00',
          NULL, NULL, '0000-00-00', '00:00:00', NULL, 'a', '', NULL, '', '', NULL, '', NULL),
         ({}, 127, 1, 32767, 1, 1, 9223372036854775807, 0.5, -0.00000000000000000001, -2.25,
          -1.5e-10, NULL, b'11111111', NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00',
          '1970-01-01 00:00:01', '0001-01-01', '12:00:00.5', 1901, 'bb', 'y', '[]', 'x', 'y',
          'z', 0x41, 0x42)",
        base + 1,
        base + 2,
        base + 3
    )
}

#[tokio::test]
async fn mysql_types_render_the_same_in_load_and_binlog_files() {
    let db = "my_types";
    let mut conn = my_db(db).await;
    conn.query_drop(format!(
        "SET sql_mode = ''; {TYPES}; CREATE TABLE fence (id INT PRIMARY KEY, rev INT);
         INSERT INTO types VALUES {}",
        type_rows(0)
    ))
    .await
    .unwrap();
    let task = my_task(db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop(format!(
        "SET sql_mode = ''; INSERT INTO types VALUES {}",
        type_rows(100)
    ))
    .await
    .unwrap();
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    terminate(&task, 0, child);

    let rows = table_rows(&task, &format!("{db}/types"));
    let load: BTreeMap<String, BTreeMap<String, Option<String>>> = rows
        .iter()
        .filter(|(cdc, _)| !cdc)
        .map(|(_, r)| (r["id"].clone().unwrap(), r.clone()))
        .collect();
    let cdc: BTreeMap<String, BTreeMap<String, Option<String>>> = rows
        .iter()
        .filter(|(cdc, _)| *cdc)
        .map(|(_, r)| (r["id"].clone().unwrap(), r.clone()))
        .collect();
    assert_eq!(load.len(), 3, "{}", log(&task, 0));
    assert_eq!(cdc.len(), 3, "{}", log(&task, 0));
    // The binlog decoder renders every value exactly as the full load's text protocol does.
    for i in 1..=3 {
        let (l, c) = (&load[&i.to_string()], &cdc[&(100 + i).to_string()]);
        for (col, v) in l {
            if col == "id" {
                continue;
            }
            assert_eq!(&c[col], v, "column {col} of row {i}: binlog vs full load");
        }
        assert_eq!(c["Op"].as_deref(), Some("I"));
    }
    // And the values are the documented renderings (reference §3.5, §4.4).
    let r = &load["1"];
    let expect = [
        ("ti", Some("-128")),
        ("tu", Some("255")),
        ("mi", Some("16777215")),
        ("bu", Some("18446744073709551615")),
        ("bi", Some("-9223372036854775808")),
        ("d", Some("-123456789.123")),
        (
            "dw",
            Some("123456789012345678901234567890.12345678901234567890"),
        ),
        ("db", Some("1e300")),
        ("b1", Some("true")),
        ("b8", Some("a5")),
        ("bin", Some("00ff10")),
        ("dt", Some("2024-02-29 12:34:56.123456")),
        ("dt0", Some("1999-12-31 23:59:59.000000")),
        ("ts", Some("2024-02-29 12:34:56.654321")),
        ("dd", Some("2024-02-29")),
        ("tm", Some("-838:59:59.000")),
        ("y", Some("2024")),
        ("e", Some("c'q")),
        ("st", Some("x,z")),
        ("j", Some("{\"a\": [1, 2.5, \"ü\"], \"b\": null}")),
        ("tx", Some("héllo, \"world\"\nline")),
        ("vc", Some("日本語")),
        ("bl", Some("deadbeef")),
    ];
    for (col, v) in expect {
        assert_eq!(r[col].as_deref(), v, "row 1 column {col}");
    }
    let z = &load["2"];
    for col in ["dt", "dd", "ti", "j"] {
        assert_eq!(
            z[col], None,
            "row 2 column {col}: zero dates and NULLs are NULL"
        );
    }
    assert_eq!(
        z["tx"].as_deref(),
        Some(""),
        "empty string stays distinct from NULL"
    );
    assert_eq!(z["b1"].as_deref(), Some("false"));
}

pub(crate) const SCHEMA: &str =
    "CREATE TABLE items (id BIGINT PRIMARY KEY, rev INT NOT NULL, name VARCHAR(64),
        amount DECIMAL(12,2), big LONGTEXT);
     CREATE TABLE plain (id BIGINT PRIMARY KEY, rev INT NOT NULL, v VARCHAR(40));
     CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
     INSERT INTO items SELECT seq, 0, CONCAT('name ', seq), seq / 100, NULL FROM seq_1_to_20000;
     INSERT INTO plain SELECT seq, 0, CONCAT('v', seq) FROM seq_1_to_20000;";

/// Inserts, updates (each bumping `rev`), deletes, multi-statement transactions and one bigger
/// update; `round` makes ids unique per call.
pub(crate) async fn workload(conn: &mut Conn, round: i64) {
    let base = 100_000 * (round + 1);
    for i in 0..40 {
        let id = base + i;
        conn.query_drop(format!(
            "INSERT INTO items (id, rev, name, amount, big) VALUES ({id}, 0, 'new {id}', 1.50, REPEAT('b', 3000));
             UPDATE items SET rev = rev + 1, name = 'upd' WHERE id = {};
             START TRANSACTION;
             UPDATE plain SET rev = rev + 1 WHERE id BETWEEN {} AND {};
             DELETE FROM plain WHERE id = {};
             INSERT INTO plain (id, rev, v) VALUES ({id}, 0, 'p');
             UPDATE items SET rev = rev + 1 WHERE id = {id};
             COMMIT;",
            1 + (i * 37 + round * 11) % 20000,
            1 + i * 100,
            1 + i * 100 + 50,
            10_001 + i + round * 100,
        ))
        .await
        .unwrap();
    }
    conn.query_drop("UPDATE items SET rev = rev + 1 WHERE id % 5 = 0 AND id <= 20000")
        .await
        .unwrap();
}

/// Replays `db.table` and compares it with the source on `cols`.
pub(crate) async fn assert_matches_source(
    conn: &mut Conn,
    task: &Task,
    db: &str,
    table: &str,
    cols: &[&str],
) {
    let replayed = replay(&task.lake(), &format!("{db}/{table}"));
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY id",
        cols.iter()
            .map(|c| format!("CAST({c} AS CHAR)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let expected = my_rows(conn, &sql).await;
    let actual: Vec<Row> = replayed
        .values()
        .map(|r| cols.iter().map(|c| r.get(*c).cloned().flatten()).collect())
        .collect();
    assert_rows_eq(&actual, &expected, &format!("{db}.{table}"));
}

#[tokio::test]
async fn mysql_full_load_and_binlog_cdc_replays_to_source() {
    let db = "my_flow";
    let mut conn = my_db(db).await;
    conn.query_drop(SCHEMA).await.unwrap();
    let task = my_task(
        db,
        "full-load-and-cdc",
        "CdcMaxBatchInterval = 1\nCdcMinFileSize = 256\nTimestampColumnName = \"ts\"\nMaxFileSize = 256",
        "",
    );
    let mut child = spawn(&task, 0);
    // Writes racing the snapshot: the read lock splits them exactly between LOAD and CDC files.
    workload(&mut conn, 0).await;
    wait_for(&task, 0, &mut child, 60, "load files", |fs| {
        fs.iter().any(|f| f.contains("/LOAD"))
    });
    workload(&mut conn, 1).await;
    conn.query_drop("ALTER TABLE items ADD COLUMN extra VARCHAR(10) AFTER rev")
        .await
        .unwrap();
    conn.query_drop("UPDATE items SET rev = rev + 1, extra = 'e' WHERE id <= 30")
        .await
        .unwrap();
    workload(&mut conn, 2).await;
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    terminate(&task, 0, child);
    assert_matches_source(
        &mut conn,
        &task,
        db,
        "items",
        &["id", "rev", "name", "amount", "big", "extra"],
    )
    .await;
    assert_matches_source(&mut conn, &task, db, "plain", &["id", "rev", "v"]).await;
    // The added column sits at its real position in the files written after the ALTER.
    let lake = task.lake();
    let last = files(&lake)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{db}/items/")) && !f.contains("LOAD"))
        .max()
        .unwrap();
    let header = std::fs::read_to_string(lake.join(&last)).unwrap();
    assert!(
        header.starts_with("Op,ts,id,rev,extra,name,amount,big\n"),
        "{}",
        header.lines().next().unwrap()
    );
    // Binlog times have second precision: the timestamp column says so.
    let rows = table_rows(&task, &format!("{db}/items"));
    let ts = rows.iter().rev().find(|(cdc, _)| *cdc).unwrap().1["ts"]
        .clone()
        .unwrap();
    assert!(ts.ends_with(".000000"), "{ts}");
}

#[tokio::test]
async fn mysql_kill_9_restarts_still_write_every_change_once() {
    let db = "my_kill";
    let mut conn = my_db(db).await;
    conn.query_drop(SCHEMA).await.unwrap();
    let task = my_task(
        db,
        "full-load-and-cdc",
        "CdcMaxBatchInterval = 1\nCdcMinFileSize = 8\nMaxFileSize = 64",
        "",
    );
    let mut next = kill_times();
    // Kill 1: during the full load.
    let mut child = spawn(&task, 0);
    workload(&mut conn, 0).await;
    wait_for(&task, 0, &mut child, 60, "load files", |fs| {
        fs.iter().filter(|f| f.contains("/LOAD")).count() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // Kills 2..4: while streaming, at a random moment after new files appear.
    for n in 1..4 {
        let mut child = spawn(&task, n);
        workload(&mut conn, n as i64).await;
        let before = files(&task.lake()).len();
        wait_for(&task, n, &mut child, 60, "new files", |fs| {
            fs.len() > before
        });
        std::thread::sleep(Duration::from_millis(next(400)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let child = spawn(&task, 9);
    fence_stop_and_compare(&mut conn, &task, 9, child, db).await;
}

/// Writes fence row 1, waits for it in a CDC file, stops run `n` (SIGTERM, exit 0) and
/// compares the replay of `items` and `plain` with the source.
pub(crate) async fn fence_stop_and_compare(
    conn: &mut Conn,
    task: &Task,
    n: usize,
    mut child: Child,
    db: &str,
) {
    fence(conn, task, n, &mut child, db, 1).await;
    terminate(task, n, child);
    assert_matches_source(
        conn,
        task,
        db,
        "items",
        &["id", "rev", "name", "amount", "big"],
    )
    .await;
    assert_matches_source(conn, task, db, "plain", &["id", "rev", "v"]).await;
}

#[tokio::test]
async fn two_sharded_databases_into_two_bucket_folders() {
    let mut shards = Vec::new();
    for (i, db) in ["my_shard1", "my_shard2"].into_iter().enumerate() {
        let mut conn = my_db(db).await;
        conn.query_drop(
            "CREATE TABLE posts (id BIGINT PRIMARY KEY, rev INT NOT NULL, title VARCHAR(40));
             CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
             INSERT INTO posts SELECT seq, 0, CONCAT('t', seq) FROM seq_1_to_500;",
        )
        .await
        .unwrap();
        let task = my_task(
            db,
            "full-load-and-cdc",
            &format!("CdcMaxBatchInterval = 1\nBucketFolder = \"shard{}\"", i + 1),
            "",
        );
        let child = spawn(&task, 0);
        shards.push((db, conn, task, child));
    }
    for (db, conn, task, child) in &mut shards {
        wait_streaming(task, 0, child);
        conn.query_drop(format!(
            "UPDATE posts SET rev = rev + 1, title = '{db}' WHERE id <= 10; DELETE FROM posts WHERE id = 500"
        ))
        .await
        .unwrap();
    }
    for (i, (db, mut conn, task, mut child)) in shards.into_iter().enumerate() {
        let folder = format!("shard{}", i + 1);
        conn.query_drop("INSERT INTO fence VALUES (1, 0)")
            .await
            .unwrap();
        let lake = task.lake();
        let prefix = format!("{folder}/{db}/fence/");
        wait_for(&task, 0, &mut child, 60, "fence", |fs| {
            fs.iter().any(|f| f.starts_with(&prefix))
        });
        terminate(&task, 0, child);
        let all = files(&lake);
        assert!(
            all.iter()
                .all(|f| f.starts_with(&format!("{folder}/{db}/"))),
            "{all:?}"
        );
        let replayed = replay(&lake.join(&folder), &format!("{db}/posts"));
        let expected = my_rows(
            &mut conn,
            "SELECT CAST(id AS CHAR), CAST(rev AS CHAR), title FROM posts ORDER BY id",
        )
        .await;
        let actual: Vec<Row> = replayed
            .values()
            .map(|r| {
                ["id", "rev", "title"]
                    .iter()
                    .map(|c| r.get(*c).cloned().flatten())
                    .collect()
            })
            .collect();
        assert_rows_eq(&actual, &expected, db);
    }
}

#[tokio::test]
async fn mysql_without_reload_falls_back_to_a_lock_free_snapshot() {
    let db = "my_norel";
    let mut conn = my_db(db).await;
    conn.query_drop(
        "CREATE TABLE posts (id BIGINT PRIMARY KEY, rev INT NOT NULL, title VARCHAR(40));
         CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         INSERT INTO posts SELECT seq, 0, CONCAT('t', seq) FROM seq_1_to_300;
         DROP USER IF EXISTS norel;
         CREATE USER norel IDENTIFIED BY 'norel-Secret';
         GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO norel;",
    )
    .await
    .unwrap();
    let task = my_task(db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let root = env("TRIBUTARY_TEST_MYSQL_URL");
    let text = std::fs::read_to_string(&task.path).unwrap().replace(
        &format!("url = \"{root}"),
        &format!(
            "url = \"{}",
            root.replace("mysql://root@", "mysql://norel:norel-Secret@")
        ),
    );
    std::fs::write(&task.path, &text).unwrap();
    // validate names the missing privilege and its fix as a warning (the run works, lock-free),
    // and never the password.
    let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning: the source user lacks RELOAD") && said.contains("GRANT RELOAD"),
        "{said}"
    );
    assert!(!said.contains("norel-Secret"), "password leaked: {said}");

    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    assert!(
        log(&task, 0).contains("lock-free snapshot"),
        "{}",
        log(&task, 0)
    );
    conn.query_drop("UPDATE posts SET rev = rev + 1, title = 'u' WHERE id <= 20; DELETE FROM posts WHERE id = 300")
        .await
        .unwrap();
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    terminate(&task, 0, child);
    assert_matches_source(&mut conn, &task, db, "posts", &["id", "rev", "title"]).await;

    // A wrong password is named, with the fix, and redacted.
    std::fs::write(&task.path, text.replace("norel-Secret", "not-the-Secret")).unwrap();
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
        "--restart",
    ]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("Access denied"), "{said}");
    assert!(said.contains("fix the user/password"), "{said}");
    assert!(!said.contains("not-the-Secret"), "password leaked: {said}");
}

#[tokio::test]
async fn mysql_binlog_reconnects_and_ddl_reshapes_files() {
    let db = "my_ddl";
    let mut conn = my_db(db).await;
    conn.query_drop(
        "CREATE TABLE posts (id BIGINT PRIMARY KEY, rev INT NOT NULL, title VARCHAR(40), score INT);
         CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         INSERT INTO posts SELECT seq, 0, CONCAT('t', seq), seq FROM seq_1_to_100;",
    )
    .await
    .unwrap();
    let task = my_task(db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop("UPDATE posts SET rev = rev + 1 WHERE id <= 10")
        .await
        .unwrap();
    // The server drops the binlog connection: the task reconnects from its durable position.
    let dumps = my_rows(
        &mut conn,
        "SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
    )
    .await;
    assert!(!dumps.is_empty(), "no binlog dump connection");
    for d in &dumps {
        conn.query_drop(format!("KILL CONNECTION {}", d[0].as_deref().unwrap()))
            .await
            .unwrap();
    }
    conn.query_drop(
        "UPDATE posts SET rev = rev + 1 WHERE id BETWEEN 5 AND 15;
         ALTER TABLE posts DROP COLUMN score;
         ALTER TABLE posts CHANGE COLUMN title headline VARCHAR(40);
         ALTER TABLE posts MODIFY rev BIGINT NOT NULL;
         ALTER TABLE posts ADD COLUMN tag VARCHAR(8) FIRST;
         UPDATE posts SET rev = rev + 1, tag = 'x' WHERE id <= 3;
         DELETE FROM posts WHERE id = 100;",
    )
    .await
    .unwrap();
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    terminate(&task, 0, child);
    let run_log = log(&task, 0);
    assert!(
        run_log.contains("resuming from the last durable position"),
        "{run_log}"
    );
    // The last file has the final shape, with the new first column and the renamed one.
    let lake = task.lake();
    let last = files(&lake)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{db}/posts/")) && !f.contains("LOAD"))
        .max()
        .unwrap();
    let text = std::fs::read_to_string(lake.join(&last)).unwrap();
    assert!(text.starts_with("Op,tag,id,rev,headline\n"), "{text}");
    assert!(text.contains("U,x,1,2,t1\n"), "{text}");
    assert!(text.contains("D,,100,0,t100\n"), "{text}");
    // Changes from before the ALTERs keep the shape they had, even when read after them (the
    // reconnect re-reads them once the catalog has changed).
    let old_shape = files(&lake).into_iter().any(|f| {
        f.starts_with(&format!("{db}/posts/"))
            && !f.contains("LOAD")
            && std::fs::read_to_string(lake.join(&f))
                .unwrap()
                .starts_with("Op,id,rev,title,score\n")
    });
    assert!(
        old_shape,
        "no file with the pre-ALTER shape: {:?}",
        files(&lake)
    );
    // Every change before and after the reconnect is there once: revisions replay to the source.
    let replayed = replay(&lake, &format!("{db}/posts"));
    let expected = my_rows(
        &mut conn,
        "SELECT CAST(id AS CHAR), CAST(rev AS CHAR) FROM posts ORDER BY id",
    )
    .await;
    let actual: Vec<Row> = replayed
        .values()
        .map(|r| {
            ["id", "rev"]
                .iter()
                .map(|c| r.get(*c).cloned().flatten())
                .collect()
        })
        .collect();
    assert_rows_eq(&actual, &expected, "my_ddl.posts");
}

#[tokio::test]
async fn mysql_cdc_starts_at_a_binlog_position_or_a_gtid() {
    let db = "my_start";
    let mut conn = my_db(db).await;
    conn.query_drop(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         INSERT INTO t SELECT seq, 0 FROM seq_1_to_5;",
    )
    .await
    .unwrap();
    // Both forms of the same point: after the first five rows.
    let status = my_rows(&mut conn, "SHOW MASTER STATUS").await;
    let position = format!(
        "{}:{}",
        status[0][0].as_deref().unwrap(),
        status[0][1].as_deref().unwrap()
    );
    let gtid = my_rows(&mut conn, "SELECT @@gtid_binlog_pos").await[0][0]
        .clone()
        .unwrap();
    conn.query_drop(
        "INSERT INTO t VALUES (6, 0), (7, 0); UPDATE t SET rev = 1 WHERE id = 1; DELETE FROM t WHERE id = 2",
    )
    .await
    .unwrap();
    for (n, start) in [position, gtid].into_iter().enumerate() {
        let task = my_task(
            db,
            "cdc",
            "CdcMaxBatchInterval = 1",
            &format!("cdc_start_position = \"{start}\""),
        );
        let mut child = spawn(&task, 0);
        wait_streaming(&task, 0, &mut child);
        fence(&mut conn, &task, 0, &mut child, db, 1 + n as i64).await;
        terminate(&task, 0, child);
        let ops: Vec<String> = table_rows(&task, &format!("{db}/t"))
            .into_iter()
            .map(|(_, r)| {
                format!(
                    "{}{}",
                    r["Op"].as_deref().unwrap(),
                    r["id"].as_deref().unwrap()
                )
            })
            .collect();
        assert_eq!(
            ops,
            ["I6", "I7", "U1", "D2"],
            "start {start}\n{}",
            log(&task, 0)
        );
    }
}

#[tokio::test]
async fn mysql_truncate_deletes_the_tables_objects_then_streams_on() {
    let db = "my_trunc";
    let mut conn = my_db(db).await;
    conn.query_drop(
        "CREATE TABLE posts (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         CREATE TABLE keep (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         INSERT INTO posts SELECT seq, 0 FROM seq_1_to_50;
         INSERT INTO keep SELECT seq, 0 FROM seq_1_to_5;",
    )
    .await
    .unwrap();
    let task = my_task(db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop("UPDATE posts SET rev = 1 WHERE id = 1")
        .await
        .unwrap();
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    conn.query_drop("TRUNCATE TABLE posts; INSERT INTO posts VALUES (7, 0)")
        .await
        .unwrap();
    fence(&mut conn, &task, 0, &mut child, db, 2).await;
    terminate(&task, 0, child);
    let lake = task.lake();
    // Only what came after the TRUNCATE is left of posts; other tables keep their files.
    let rows = table_rows(&task, &format!("{db}/posts"));
    let ops: Vec<String> = rows
        .iter()
        .map(|(_, r)| {
            format!(
                "{}{}",
                r.get("Op").cloned().flatten().unwrap_or("L".into()),
                r["id"].as_deref().unwrap()
            )
        })
        .collect();
    assert_eq!(ops, ["I7"], "{:?}", files(&lake));
    assert!(files(&lake)
        .iter()
        .any(|f| f.starts_with(&format!("{db}/keep/LOAD"))));
    let checkpoint = std::fs::read_to_string(
        task.dir
            .path()
            .join(format!("tributary-state/my-{db}/checkpoint.json")),
    )
    .unwrap();
    let cp: serde_json::Value = serde_json::from_str(&checkpoint).unwrap();
    assert_eq!(
        cp["tables"][format!("{db}.posts")]["Ddls"],
        1,
        "{checkpoint}"
    );
}

/// The server's binlog position as `{"file": …, "offset": …}` (release 0.1.0's JSON form).
async fn position_json(conn: &mut Conn) -> serde_json::Value {
    let row = my_rows(conn, "SHOW MASTER STATUS").await;
    serde_json::json!({
        "file": row[0][0].clone().unwrap(),
        "offset": row[0][1].as_deref().unwrap().parse::<u64>().unwrap(),
    })
}

/// Where this session's last transaction starts in the binlog (its GTID event), as checkpoint
/// JSON: the position tributary records for it. Other tests share the server, so the end of
/// the binlog read before a statement is not where that statement's transaction starts.
async fn last_txn_json(conn: &mut Conn) -> serde_json::Value {
    let gtid = my_rows(conn, "SELECT @@last_gtid").await[0][0]
        .clone()
        .unwrap();
    let file = my_rows(conn, "SHOW MASTER STATUS").await[0][0]
        .clone()
        .unwrap();
    let events = my_rows(conn, &format!("SHOW BINLOG EVENTS IN '{file}'")).await;
    // Columns: Log_name, Pos, Event_type, Server_id, End_log_pos, Info ("BEGIN GTID 0-1-7").
    let pos = events
        .iter()
        .find(|e| {
            e[2].as_deref() == Some("Gtid")
                && e[5]
                    .as_deref()
                    .is_some_and(|i| i.split_whitespace().any(|w| w == gtid))
        })
        .unwrap_or_else(|| panic!("GTID {gtid} not in {file}"))[1]
        .as_deref()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    serde_json::json!({ "file": file, "offset": pos })
}

/// A checkpoint written by release 0.1.0 (the fixture's shape: a table loaded at P0, one change
/// of T1 written, a pending file for T2 whose upload never completed) resumes: T1 is not
/// written again, T2 is, and streaming goes on.
#[tokio::test]
async fn a_release_0_1_0_checkpoint_resumes() {
    let db = "my_compat";
    let mut conn = my_db(db).await;
    conn.query_drop(
        "CREATE TABLE a (id INT PRIMARY KEY, rev INT NOT NULL, v TEXT);
         CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         INSERT INTO a VALUES (1, 0, 'x');",
    )
    .await
    .unwrap();
    let loaded_at = position_json(&mut conn).await;
    conn.query_drop("INSERT INTO a VALUES (2, 0, 'y')")
        .await
        .unwrap();
    let t1 = last_txn_json(&mut conn).await;
    conn.query_drop("UPDATE a SET rev = 1, v = 'x2' WHERE id = 1")
        .await
        .unwrap();
    let t2 = last_txn_json(&mut conn).await;
    let task = my_task(db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    // What 0.1.0 had written: the LOAD file, and T1's change in a CDC file.
    let lake = task.lake();
    std::fs::create_dir_all(lake.join("my_compat/a")).unwrap();
    std::fs::write(
        lake.join("my_compat/a/LOAD00000001.csv"),
        "id,rev,v\n1,0,x\n",
    )
    .unwrap();
    std::fs::write(
        lake.join("my_compat/a/20261129-173939953.csv"),
        "Op,id,rev,v\nI,2,0,y\n",
    )
    .unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-0.1.0-mysql.json");
    let text = std::fs::read_to_string(fixture)
        .unwrap()
        .replace("oldcp-my", "my-my_compat")
        .replace("oldcp.a", "my_compat.a")
        .replace("\"SchemaName\": \"oldcp\"", "\"SchemaName\": \"my_compat\"")
        .replace("oldcp/a/", "my_compat/a/");
    let mut cp: serde_json::Value = serde_json::from_str(&text).unwrap();
    let series = &mut cp["cdc"]["tables"]["my_compat.a"];
    series["loaded_at"]["MySql"] = loaded_at.clone();
    series["written_through"]["commit"]["MySql"] = t1;
    series["pending"]["through"]["commit"]["MySql"] = t2;
    series["pending"]["inserts"] = 0.into();
    series["pending"]["updates"] = 1.into();
    cp["cdc"]["resume_from"]["MySql"] = loaded_at;
    cp["tables"]["my_compat.a"]["Updates"] = 0.into();
    let state = task.dir.path().join("tributary-state/my-my_compat");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("checkpoint.json"), cp.to_string()).unwrap();

    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop("DELETE FROM a WHERE id = 2").await.unwrap();
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    terminate(&task, 0, child);
    assert_matches_source(&mut conn, &task, db, "a", &["id", "rev", "v"]).await;
    let rows = table_rows(&task, "my_compat/a");
    let inserts_of_2 = rows
        .iter()
        .filter(|(cdc, r)| {
            *cdc && r["Op"].as_deref() == Some("I") && r["id"].as_deref() == Some("2")
        })
        .count();
    assert_eq!(inserts_of_2, 1, "T1 written again: {rows:?}");
    let status = tributary(&["status", "--config", task.path.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let a = json["TableStatistics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["TableName"] == "a")
        .cloned()
        .unwrap();
    // 0.1.0's counts (1 insert) plus this run's (T2's update, the delete).
    assert_eq!(
        (
            a["Inserts"].as_u64(),
            a["Updates"].as_u64(),
            a["Deletes"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{a}"
    );
}
