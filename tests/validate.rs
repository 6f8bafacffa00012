//! `tributary validate`: problems (exit 1) apart from warnings (exit 0), and the checks that
//! catch at validate time what would otherwise fail a run: a state folder it cannot write, a
//! named publication without a selected table, and what a MySQL full-load-only task needs.

use std::process::Output;

use mysql_async::prelude::Queryable;

use crate::cdc::cdc_task;
use crate::common::*;
use crate::mysql::{my_db, my_task_at};

/// `tributary validate` on `task`, with its output as text.
fn validate(task: &Task) -> (Output, String) {
    let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// Adds `line` to `[task]` of `task`'s file.
fn add_task_line(task: &Task, line: &str) {
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replacen("[task]\n", &format!("[task]\n{line}\n"), 1);
    std::fs::write(&task.path, text).unwrap();
}

#[tokio::test]
async fn postgres_a_publication_without_a_table_and_an_unwritable_state_folder_are_problems() {
    let db = "val_pub";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA c; CREATE TABLE c.a (id int PRIMARY KEY); CREATE TABLE c.b (id int PRIMARY KEY);
             DROP PUBLICATION IF EXISTS val_pub_only_a; CREATE PUBLICATION val_pub_only_a FOR TABLE c.a",
        )
        .await
        .unwrap();
    let task = cdc_task(db, "cdc", "", "");
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replacen(
        "[target]",
        "[source.settings]\nPublicationName = \"val_pub_only_a\"\n[target]",
        1,
    );
    std::fs::write(&task.path, text).unwrap();
    let (out, text) = validate(&task);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("problem: publication val_pub_only_a does not publish c.b")
            && text.contains(r#"ALTER PUBLICATION "val_pub_only_a" ADD TABLE "c"."b""#),
        "{text}"
    );
    assert!(!text.contains("does not publish c.a"), "{text}");

    // A state folder under a file cannot be created, whoever runs the task.
    let full = cdc_task(db, "full-load", "", "");
    add_task_line(&full, "state = \"/dev/null/state\"");
    let (out, text) = validate(&full);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("problem: cannot write to state folder /dev/null/state"),
        "{text}"
    );
}

/// A full-load-only task needs SELECT alone: no RELOAD (a warning: the snapshot is lock-free),
/// no REPLICATION CLIENT / BINLOG MONITOR (the binlog position is not read), and it runs.
#[tokio::test]
async fn mysql_full_load_only_needs_select_and_warns_about_reload() {
    let db = "val_my_fl";
    let user = "val_my_fl_user";
    let mut conn = my_db(db).await;
    conn.query_drop(format!(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a'), (2, 'b');
         CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw';
         GRANT SELECT ON {db}.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let (host, port) = {
        let u = url::Url::parse(&env("TRIBUTARY_TEST_MYSQL_URL")).unwrap();
        (u.host_str().unwrap().to_string(), u.port().unwrap())
    };
    let url = format!("mysql://{user}:pw@{host}:{port}/{db}");
    let task = my_task_at(&url, db, "full-load", "", "");
    let (out, text) = validate(&task);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning: the source user lacks RELOAD") && !text.contains("problem:"),
        "{text}"
    );
    assert!(!text.contains("REPLICATION CLIENT"), "{text}");
    run_ok(&task, &[]);
    let loaded = files(&task.lake());
    assert!(
        loaded
            .iter()
            .any(|f| f.starts_with(&format!("{db}/t/LOAD"))),
        "{loaded:?}"
    );
    let csv = std::fs::read_to_string(
        task.lake()
            .join(loaded.iter().find(|f| f.contains("/t/LOAD")).unwrap()),
    )
    .unwrap();
    // A header (AddColumnName) and the two rows.
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        ["id,v", "1,a", "2,b"],
        "{csv}"
    );
}

/// The TOAST check looks at the data (only tables with values stored out of line), leaves out
/// a table whose REPLICA IDENTITY FULL already sends them, and suggests the fix that fits the
/// task's format: the marker a CSV consumer can skip, REPLICA IDENTITY FULL or a lookup for
/// typed Parquet columns.
#[tokio::test]
async fn postgres_the_toast_check_suggests_the_fix_for_the_tasks_format() {
    let db = "val_toast";
    let client = fresh_db(db).await;
    // Random hex does not compress below 2 KB: stored out of line.
    let big =
        "(SELECT string_agg(md5(random()::text || g::text), '') FROM generate_series(1, 300) g)";
    client
        .batch_execute(&format!(
            "CREATE SCHEMA c;
             CREATE TABLE c.docs (id int PRIMARY KEY, body text, doc jsonb);
             INSERT INTO c.docs SELECT 1, {big}, to_jsonb({big});
             CREATE TABLE c.short (id int PRIMARY KEY, body text);
             INSERT INTO c.short VALUES (1, 'small');
             CREATE TABLE c.full (id int PRIMARY KEY, body text);
             ALTER TABLE c.full REPLICA IDENTITY FULL;
             INSERT INTO c.full SELECT 1, {big};"
        ))
        .await
        .unwrap();
    let warning = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("warning: c.docs holds values stored out of line"))
            .unwrap_or_else(|| panic!("no TOAST warning for c.docs\n{text}"))
            .to_string()
    };

    let csv = cdc_task(db, "cdc", "", "");
    let (out, text) = validate(&csv);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not a problem\n{text}"
    );
    let line = warning(&text);
    assert!(line.contains("body text, doc jsonb"), "{line}");
    assert!(line.contains("CSV files"), "{line}");
    assert!(
        line.contains("UseCsvNoSupValue = true and CsvNoSupValue"),
        "{line}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.contains("c.short") && l.contains("out of line")),
        "short values are no concern\n{text}"
    );
    assert!(
        text.contains("ok: c.full: values stored out of line (body text) come with every UPDATE"),
        "{text}"
    );

    let parquet = cdc_task(db, "cdc", "DataFormat = \"parquet\"", "");
    let (out, text) = validate(&parquet);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = warning(&text);
    assert!(line.contains("typed Parquet column"), "{line}");
    assert!(
        line.contains("ALTER TABLE c.docs REPLICA IDENTITY FULL")
            && line.contains("UnchangedToastValues = \"lookup\""),
        "{line}"
    );
    assert!(!line.contains("CsvNoSupValue"), "{line}");

    // "fail" is a problem; for Parquet the fix does not offer the marker.
    let text = std::fs::read_to_string(&parquet.path).unwrap().replacen(
        "[target]",
        "[source.settings]\nUnchangedToastValues = \"fail\"\n[target]",
        1,
    );
    std::fs::write(&parquet.path, text).unwrap();
    let (out, text) = validate(&parquet);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("problem: c.docs holds values stored out of line"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("is a data error of the table"), "{line}");
    assert!(line.contains("UnchangedToastValues = \"lookup\""), "{line}");
    assert!(
        !line.contains("set UnchangedToastValues = \"marker\""),
        "{line}"
    );
}
