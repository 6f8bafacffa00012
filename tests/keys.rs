//! Row keys and before-images end to end: `define-primary-key` decides when an UPDATE moved a
//! row (a D of the old key before the U), `add-before-image-columns` adds the old values to
//! CDC rows, on both engines — and the replayed files equal the source.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;

use crate::cdc::{log, spawn, terminate, wait_for, wait_streaming};
use crate::common::*;
use crate::mapping::set_mapping;

/// One file row: (is_cdc, column → value).
type Row = (bool, BTreeMap<String, Option<String>>);

/// The rows of `folder`'s files, LOAD first, then CDC in file order.
fn rows(lake: &std::path::Path, folder: &str) -> Vec<Row> {
    crate::cdc::read_table_files(lake, folder)
}

/// `columns` of each CDC row, with its Op first ("" for NULL).
fn cdc(rows: &[Row], columns: &[&str]) -> Vec<Vec<String>> {
    rows.iter()
        .filter(|(c, _)| *c)
        .map(|(_, r)| {
            std::iter::once("Op")
                .chain(columns.iter().copied())
                .map(|c| r.get(c).cloned().flatten().unwrap_or_default())
                .collect()
        })
        .collect()
}

/// Replays rows into state keyed by `key`, keeping only the `columns` (I/U upsert, D delete).
fn replay(rows: &[Row], key: &str, columns: &[&str]) -> BTreeMap<String, Vec<Option<String>>> {
    let mut state = BTreeMap::new();
    for (is_cdc, row) in rows {
        let k = row[key].clone().unwrap();
        let op = match is_cdc {
            true => row["Op"].clone().unwrap(),
            false => "I".into(),
        };
        if op == "D" {
            state.remove(&k);
        } else {
            state.insert(k, columns.iter().map(|c| row[*c].clone()).collect());
        }
    }
    state
}

/// Owned strings, for comparing with [`cdc`].
fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

const PG_RULES: &str = r#"
 {"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"k","table-name":"%"},"rule-action":"include"},
 {"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"column","object-locator":{"schema-name":"k","table-name":"keyed"},"rule-action":"add-before-image-columns","before-image-def":{"column-prefix":"BI_","column-suffix":"","column-filter":"pk-only"}},
 {"rule-type":"transformation","rule-id":"3","rule-name":"3","rule-target":"table","object-locator":{"schema-name":"k","table-name":"nokey"},"rule-action":"define-primary-key","primary-key-def":{"name":"nokey_pk","origin":"primary-key","columns":["code"]}},
 {"rule-type":"transformation","rule-id":"4","rule-name":"4","rule-target":"column","object-locator":{"schema-name":"k","table-name":"nokey"},"rule-action":"add-before-image-columns","before-image-def":{"column-prefix":"old_","column-filter":"all"}}
"#;

/// PostgreSQL: before-image columns of the key under the default replica identity and of every
/// column under FULL; a defined key on a table without one turns a key change into D + U; a
/// key change under FULL on a table's own primary key does too; every table replays to the
/// source. A defined key outside the replica identity is refused by `validate` with the fix.
#[tokio::test]
async fn postgres_keys_and_before_images() {
    let db = "keys_pg";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA k;
             CREATE TABLE k.keyed (id int PRIMARY KEY, name text, v int);
             CREATE TABLE k.full_pk (id int PRIMARY KEY, v int);
             ALTER TABLE k.full_pk REPLICA IDENTITY FULL;
             CREATE TABLE k.nokey (code text NOT NULL, name text, v int);
             ALTER TABLE k.nokey REPLICA IDENTITY FULL;
             CREATE TABLE k.fence (id int PRIMARY KEY);
             INSERT INTO k.keyed VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0);
             INSERT INTO k.full_pk VALUES (1, 0), (2, 0);
             INSERT INTO k.nokey VALUES ('a', 'x', 0), ('b', 'y', 0), ('c', 'z', 0);",
        )
        .await
        .unwrap();
    let task = crate::cdc::cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    set_mapping(&task, PG_RULES);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute(
            "INSERT INTO k.keyed VALUES (4, 'd', 0);
             UPDATE k.keyed SET v = 1 WHERE id = 1;
             UPDATE k.keyed SET id = 10, v = 2 WHERE id = 2;
             DELETE FROM k.keyed WHERE id = 3;
             UPDATE k.full_pk SET id = 20 WHERE id = 2;
             UPDATE k.full_pk SET v = 5 WHERE id = 1;
             UPDATE k.nokey SET v = 7 WHERE code = 'a';
             UPDATE k.nokey SET code = 'q', v = 8 WHERE code = 'b';
             DELETE FROM k.nokey WHERE code = 'c';
             INSERT INTO k.fence VALUES (1);",
        )
        .await
        .unwrap();
    let lake = task.lake();
    wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
        fs.iter()
            .any(|f| f.starts_with("k/fence/") && !f.contains("LOAD"))
    });
    terminate(&task, 0, child);

    let keyed = rows(&lake, "k/keyed");
    assert!(
        keyed
            .iter()
            .filter(|(c, _)| !c)
            .all(|(_, r)| r["BI_id"].is_none()),
        "the full load has no before-image: {keyed:?}"
    );
    assert_eq!(
        cdc(&keyed, &["id", "v", "BI_id"]),
        strs(&[
            &["I", "4", "0", ""],
            &["U", "1", "1", "1"],
            // Under the default identity a moved row's delete carries the old key only.
            &["D", "2", "", "2"],
            &["U", "10", "2", "2"],
            &["D", "3", "", "3"],
        ]),
        "{}",
        log(&task, 0)
    );
    let full_pk = rows(&lake, "k/full_pk");
    assert_eq!(
        cdc(&full_pk, &["id", "v"]),
        strs(&[&["D", "2", "0"], &["U", "20", "0"], &["U", "1", "5"]]),
        "a primary-key change under REPLICA IDENTITY FULL deletes the old key"
    );
    let nokey = rows(&lake, "k/nokey");
    assert_eq!(
        cdc(&nokey, &["code", "v", "old_code", "old_name", "old_v"]),
        strs(&[
            &["U", "a", "7", "a", "x", "0"],
            &["D", "b", "0", "b", "y", "0"],
            &["U", "q", "8", "b", "y", "0"],
            &["D", "c", "0", "c", "z", "0"],
        ])
    );
    for (folder, key, table, cols) in [
        ("k/keyed", "id", "k.keyed", &["id", "name", "v"][..]),
        ("k/full_pk", "id", "k.full_pk", &["id", "v"][..]),
        ("k/nokey", "code", "k.nokey", &["code", "name", "v"][..]),
    ] {
        let select = format!(
            "SELECT {}::text, {} FROM {table}",
            key,
            cols.iter()
                .map(|c| format!("{c}::text"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let source: BTreeMap<String, Vec<Option<String>>> = client
            .query(&select, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (1..=cols.len()).map(|i| r.get(i)).collect()))
            .collect();
        assert_eq!(replay(&rows(&lake, folder), key, cols), source, "{table}");
    }

    // A defined key the replica identity does not carry cannot be known in updates.
    let outside = r#"{"rule-type":"transformation","rule-id":"5","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"k","table-name":"keyed"},"rule-action":"define-primary-key","primary-key-def":{"columns":["name"]}}"#;
    set_mapping(&task, &format!("{PG_RULES},{outside}"));
    let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success()
            && text.contains("k.keyed")
            && text.contains("ALTER TABLE k.keyed REPLICA IDENTITY FULL"),
        "{text}"
    );
}

/// MariaDB: a defined key on a table without one turns a key change into D + U, and
/// before-image columns carry every old value (binlog_row_image=FULL); the replay equals the
/// source.
#[tokio::test]
async fn mysql_keys_and_before_images() {
    let db = "keys_my";
    let url = crate::mysql::my_url(db);
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(
        "CREATE TABLE nokey (code VARCHAR(10) NOT NULL, v INT);
         CREATE TABLE keyed (id INT PRIMARY KEY, v INT);
         CREATE TABLE fence (id INT PRIMARY KEY);
         INSERT INTO nokey VALUES ('a', 0), ('b', 0);
         INSERT INTO keyed VALUES (1, 0), (2, 0);",
    )
    .await
    .unwrap();
    let task =
        crate::mysql::my_task_at(&url, db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let rules = format!(
        r#"{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{db}","table-name":"%"}},"rule-action":"include"}},
           {{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"table","object-locator":{{"schema-name":"{db}","table-name":"nokey"}},"rule-action":"define-primary-key","primary-key-def":{{"name":"pk","columns":["code"]}}}},
           {{"rule-type":"transformation","rule-id":"3","rule-name":"3","rule-target":"column","object-locator":{{"schema-name":"{db}","table-name":"%key%"}},"rule-action":"add-before-image-columns","before-image-def":{{"column-prefix":"","column-suffix":"_before","column-filter":"non-lob"}}}}"#
    );
    set_mapping(&task, &rules);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop(
        "UPDATE nokey SET v = 1 WHERE code = 'a';
         UPDATE nokey SET code = 'z' WHERE code = 'b';
         UPDATE keyed SET id = 3, v = 9 WHERE id = 2;
         INSERT INTO fence VALUES (1);",
    )
    .await
    .unwrap();
    let lake = task.lake();
    let folder = |t: &str| format!("{db}/{t}");
    wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
        fs.iter()
            .any(|f| f.starts_with(&format!("{db}/fence/")) && !f.contains("LOAD"))
    });
    terminate(&task, 0, child);
    let nokey = rows(&lake, &folder("nokey"));
    assert_eq!(
        cdc(&nokey, &["code", "v", "code_before", "v_before"]),
        strs(&[
            &["U", "a", "1", "a", "0"],
            &["D", "b", "0", "b", "0"],
            &["U", "z", "0", "b", "0"],
        ]),
        "{}",
        log(&task, 0)
    );
    let keyed = rows(&lake, &folder("keyed"));
    assert_eq!(
        cdc(&keyed, &["id", "v", "id_before", "v_before"]),
        strs(&[&["D", "2", "0", "2", "0"], &["U", "3", "9", "2", "0"]])
    );
    for (t, key) in [("nokey", "code"), ("keyed", "id")] {
        let other = "v";
        let source: Vec<(String, Option<String>)> = conn
            .query(format!(
                "SELECT CAST({key} AS CHAR), CAST({other} AS CHAR) FROM {t}"
            ))
            .await
            .unwrap();
        let source: BTreeMap<String, Vec<Option<String>>> = source
            .into_iter()
            .map(|(k, v)| (k.clone(), vec![Some(k), v]))
            .collect();
        assert_eq!(
            replay(&rows(&lake, &folder(t)), key, &[key, other]),
            source,
            "{t}"
        );
    }
}
