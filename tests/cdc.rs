//! Change data capture on the private PostgreSQL: a concurrent workload during and after the
//! full load, `kill -9` at random moments, then a replay of every LOAD and CDC file (I/U upsert,
//! D delete) compared with the source. Every update bumps a per-row revision counter, so the
//! CDC rows of one key must show consecutive revisions: a gap is a lost change, a repeat a
//! duplicate.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Writes a CDC task file for database `db`, schema `schema`.
pub(crate) fn cdc_task(db: &str, migration: &str, settings: &str, extra_task: &str) -> Task {
    let mut task = new_task(db, "c", None, settings, "");
    // TRIBUTARY_TEST_KEEP=1 keeps the task folder (logs, lake, checkpoint) for a post-mortem.
    if std::env::var_os("TRIBUTARY_TEST_KEEP").is_some() {
        task.dir.disable_cleanup(true);
        eprintln!("task folder kept: {}", task.dir.path().display());
    }
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replace(
        "migration_type = \"full-load\"",
        &format!("migration_type = \"{migration}\"\n{extra_task}"),
    );
    std::fs::write(&task.path, text).unwrap();
    task
}

/// Starts `tributary run` in the background, logging to `<dir>/run-N.log`.
pub(crate) fn spawn(task: &Task, n: usize) -> Child {
    spawn_with(task, n, &[])
}

/// [`spawn`] with extra arguments.
pub(crate) fn spawn_with(task: &Task, n: usize, extra: &[&str]) -> Child {
    run_command(task, n, extra).spawn().unwrap()
}

/// The command [`spawn_with`] starts, for a test that adds to its environment.
pub(crate) fn run_command(task: &Task, n: usize, extra: &[&str]) -> Command {
    let log = std::fs::File::create(task.dir.path().join(format!("run-{n}.log"))).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .args([
            "run",
            "--config",
            task.path.to_str().unwrap(),
            "--no-progress",
        ])
        .args(extra)
        .env("TRIBUTARY_LOG", "info,tributary=debug")
        .stdout(Stdio::null())
        .stderr(log);
    command
}

pub(crate) fn log(task: &Task, n: usize) -> String {
    std::fs::read_to_string(task.dir.path().join(format!("run-{n}.log"))).unwrap_or_default()
}

/// Waits until `cond` holds on the lake's files, failing with the run's log after `secs`.
pub(crate) fn wait_for(
    task: &Task,
    n: usize,
    child: &mut Child,
    secs: u64,
    what: &str,
    cond: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond(&files(&task.lake())) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "tributary exited ({status}) before {what}\n{}",
                log(task, n)
            );
        }
        if Instant::now() >= deadline {
            // Do not leave a running task behind a failed test (it holds its slot).
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out waiting for {what}\n{}", log(task, n));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until the task logs that it streams (its slot exists from then on).
pub(crate) fn wait_streaming(task: &Task, n: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log(task, n).contains("streaming changes") {
        assert!(child.try_wait().unwrap().is_none(), "{}", log(task, n));
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the task never started streaming\n{}", log(task, n));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Commits fence row 1, waits for it in the files, stops the task with SIGTERM, and compares
/// the replayed `c.items` and `c.plain` with the source.
pub(crate) async fn fence_stop_and_compare(
    client: &tokio_postgres::Client,
    task: &Task,
    n: usize,
    mut child: Child,
) {
    client
        .batch_execute("INSERT INTO c.fence VALUES (1, 0)")
        .await
        .unwrap();
    await_fence(task, n, &mut child, 1);
    terminate(task, n, child);
    let lake = task.lake();
    assert_matches_source(
        client,
        &lake,
        "c.items",
        &["id", "rev", "name", "amount", "big"],
    )
    .await;
    assert_matches_source(client, &lake, "c.plain", &["id", "rev", "v"]).await;
}

/// Sends SIGTERM and expects a clean exit 0.
pub(crate) fn terminate(task: &Task, n: usize, mut child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM did not exit 0: {status}\n{}",
        log(task, n)
    );
}

/// One table's files in consumer order (LOAD files, then CDC files by name), as rows keyed by
/// column name. Needs `AddColumnName=true` so every file names its columns.
pub(crate) fn read_table_files(
    lake: &Path,
    table: &str,
) -> Vec<(bool, BTreeMap<String, Option<String>>)> {
    let mut names: Vec<String> = files(lake)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{table}/")))
        .collect();
    // LOAD first, then CDC files by file name (date folders must not change the order).
    names.sort_by_key(|f| {
        let file = f.rsplit('/').next().unwrap().to_string();
        (!file.starts_with("LOAD"), file)
    });
    let mut out = Vec::new();
    for f in names {
        let is_cdc = !f.rsplit('/').next().unwrap().starts_with("LOAD");
        let text = std::fs::read_to_string(lake.join(&f)).unwrap();
        let mut rows = parse_csv(&text, ',', "").into_iter();
        let header: Vec<String> = rows
            .next()
            .unwrap()
            .into_iter()
            .map(|h| h.unwrap())
            .collect();
        for r in rows {
            out.push((is_cdc, header.iter().cloned().zip(r).collect()));
        }
    }
    out
}

/// Replays a table's files into current state by `id`, checking revision continuity per key.
pub(crate) fn replay(lake: &Path, table: &str) -> BTreeMap<i64, BTreeMap<String, Option<String>>> {
    let mut state: BTreeMap<i64, BTreeMap<String, Option<String>>> = BTreeMap::new();
    let mut last_rev: BTreeMap<i64, i64> = BTreeMap::new();
    for (is_cdc, row) in read_table_files(lake, table) {
        let id: i64 = row["id"].as_deref().unwrap().parse().unwrap();
        let op = if is_cdc {
            row.get("Op").cloned().flatten().unwrap()
        } else {
            "I".into()
        };
        match op.as_str() {
            "I" | "U" => {
                let rev: i64 = row["rev"].as_deref().unwrap().parse().unwrap();
                if let Some(prev) = last_rev.get(&id) {
                    if op == "U" {
                        assert_eq!(
                            rev,
                            prev + 1,
                            "{table} id {id}: revision {prev} then {rev} (lost or repeated change)"
                        );
                    }
                }
                if op == "I" && is_cdc {
                    assert!(!state.contains_key(&id), "{table} id {id}: inserted twice");
                }
                last_rev.insert(id, rev);
                state.insert(id, row);
            }
            "D" => {
                assert!(
                    state.remove(&id).is_some(),
                    "{table} id {id}: deleted but not present"
                );
                last_rev.remove(&id);
            }
            other => panic!("unknown Op {other}"),
        }
    }
    state
}

/// Compares replayed state with the source on `cols`.
pub(crate) async fn assert_matches_source(
    client: &tokio_postgres::Client,
    lake: &Path,
    table: &str,
    cols: &[&str],
) {
    let replayed = replay(lake, &table.replace('.', "/"));
    let sql = format!(
        "SELECT {} FROM {table} t ORDER BY t.id",
        cols.iter()
            .map(|c| format!("{c}::text"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let expected = query_rows(client, &sql).await;
    let actual: Vec<Row> = replayed
        .values()
        .map(|r| cols.iter().map(|c| r.get(*c).cloned().flatten()).collect())
        .collect();
    assert_rows_eq(&actual, &expected, table);
}

pub(crate) const SCHEMA: &str = "CREATE SCHEMA c;
     CREATE TABLE c.items (id bigint PRIMARY KEY, rev int NOT NULL, name text, amount numeric(12,2), big text);
     ALTER TABLE c.items REPLICA IDENTITY FULL;
     CREATE TABLE c.plain (id bigint PRIMARY KEY, rev int NOT NULL, v varchar(40));
     INSERT INTO c.items SELECT g, 0, 'name ' || g, g / 100.0, NULL FROM generate_series(1, 20000) g;
     INSERT INTO c.plain SELECT g, 0, 'v' || g FROM generate_series(1, 20000) g;
     CREATE TABLE c.fence (id bigint PRIMARY KEY, rev int NOT NULL);";

/// A large value PostgreSQL stores out of line (TOAST): random hex does not compress below 2 KB.
const BIG: &str =
    "(SELECT string_agg(md5(random()::text || g::text), '') FROM generate_series(1, 300) g)";

/// The concurrent workload: single-row and multi-row transactions of inserts, updates (each
/// bumping `rev`) and deletes, TOASTed values updated and left unchanged, a column added
/// mid-stream. `round` makes ids unique per call.
pub(crate) async fn workload(client: &tokio_postgres::Client, round: i64) {
    let base = 100_000 * (round + 1);
    for i in 0..40 {
        let id = base + i;
        client
            .batch_execute(&format!(
                "INSERT INTO c.items VALUES ({id}, 0, 'new {id}', 1.50, {BIG});
                 UPDATE c.items SET rev = rev + 1, name = 'upd' WHERE id = {};
                 BEGIN;
                 UPDATE c.plain SET rev = rev + 1 WHERE id BETWEEN {} AND {};
                 DELETE FROM c.plain WHERE id = {};
                 INSERT INTO c.plain VALUES ({id}, 0, 'p');
                 UPDATE c.items SET rev = rev + 1 WHERE id = {id};
                 COMMIT;",
                1 + (i * 37 + round * 11) % 20000,
                1 + i * 100,
                1 + i * 100 + 50,
                10_001 + i + round * 100,
            ))
            .await
            .unwrap();
    }
    // One bigger transaction: every fifth item updated at once.
    client
        .batch_execute("UPDATE c.items SET rev = rev + 1 WHERE id % 5 = 0 AND id <= 20000")
        .await
        .unwrap();
}

/// Inserts fence row `n` and waits until a CDC file holds it: every change committed before is
/// then in the files too (per-table order, and the fence commits last).
fn await_fence(task: &Task, n: usize, child: &mut Child, fence: i64) {
    let lake = task.lake();
    wait_for(task, n, child, 60, &format!("fence {fence}"), |fs| {
        fs.iter().filter(|f| f.starts_with("c/fence/")).any(|f| {
            std::fs::read_to_string(lake.join(f))
                .map(|t| t.lines().any(|l| l.ends_with(&format!(",{fence},0"))))
                .unwrap_or(false)
        })
    });
}

#[tokio::test]
async fn full_load_and_cdc_with_concurrent_workload_replays_to_source() {
    let client = fresh_db("cdc_flow").await;
    client.batch_execute(SCHEMA).await.unwrap();
    let task = cdc_task(
        "cdc_flow",
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1\nCdcMinFileSize = 256\nTimestampColumnName = \"ts\"\nMaxFileSize = 256",
        "",
    );
    let mut child = spawn(&task, 0);
    // Writes during the load (the slot's snapshot must split them exactly).
    workload(&client, 0).await;
    wait_for(&task, 0, &mut child, 60, "load files", |fs| {
        fs.iter().any(|f| f.contains("/LOAD"))
    });
    workload(&client, 1).await;
    client
        .batch_execute("ALTER TABLE c.items ADD COLUMN extra text")
        .await
        .unwrap();
    client
        .batch_execute("UPDATE c.items SET rev = rev + 1, extra = 'e' WHERE id <= 30")
        .await
        .unwrap();
    workload(&client, 2).await;
    fence_stop_and_compare(&client, &task, 0, child).await;
    let lake = task.lake();
    // The added column shows up in the files written after the ALTER, with its values.
    let state = replay(&lake, "c/items");
    assert_eq!(
        state[&1].get("extra").cloned().flatten().as_deref(),
        Some("e")
    );
    // TOASTed values left unchanged by an update still carry their real value.
    let toasted = query_rows(
        &client,
        "SELECT count(*)::text FROM c.items WHERE big IS NOT NULL",
    )
    .await;
    assert!(toasted[0][0].as_deref().unwrap().parse::<u32>().unwrap() >= 120);
    // CDC names strictly increase per table.
    let cdc: Vec<String> = files(&lake)
        .into_iter()
        .filter(|f| f.starts_with("c/items/") && !f.contains("LOAD"))
        .collect();
    assert!(cdc.len() >= 2, "{cdc:?}");
    let checkpoint: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            task.dir
                .path()
                .join("tributary-state/t-cdc_flow/checkpoint.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(checkpoint["status"], "stopped");
    assert_eq!(
        checkpoint["cdc"]["phase"],
        "Load complete, replication ongoing"
    );
    assert!(checkpoint["tables"]["c.items"]["Updates"].as_u64().unwrap() > 0);
    assert!(checkpoint["tables"]["c.items"]["Ddls"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn kill_9_at_random_moments_still_writes_every_change_once() {
    let (client, task) = kill_9_rounds("cdc_kill", None).await;
    let child = spawn(&task, 9);
    fence_stop_and_compare(&client, &task, 9, child).await;
}

/// The same with a mapping that removes a column, adds two (an expression and the stream
/// position) and renames one: the replay still equals the source, and every file's added
/// columns are right.
#[tokio::test]
async fn kill_9_with_column_rules_still_writes_every_change_once() {
    let items = r#""schema-name":"c","table-name":"items""#;
    let rules = format!(
        r#"{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"c","table-name":"%"}},"rule-action":"include"}},
           {{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"column","object-locator":{{{items},"column-name":"big"}},"rule-action":"remove-column"}},
           {{"rule-type":"transformation","rule-id":"3","rule-name":"3","rule-target":"column","object-locator":{{{items}}},"rule-action":"add-column","value":"shout","expression":"upper($name) || '!'","data-type":{{"type":"string","length":50}}}},
           {{"rule-type":"transformation","rule-id":"4","rule-name":"4","rule-target":"column","object-locator":{{{items}}},"rule-action":"add-column","value":"pos","expression":"$AR_H_STREAM_POSITION","data-type":{{"type":"string","length":50}}}},
           {{"rule-type":"transformation","rule-id":"5","rule-name":"5","rule-target":"column","object-locator":{{"schema-name":"c","table-name":"plain","column-name":"v"}},"rule-action":"rename","value":"value"}}"#
    );
    let (client, task) = kill_9_rounds("cdc_kill_rules", Some(&rules)).await;
    let mut child = spawn(&task, 9);
    client
        .batch_execute("INSERT INTO c.fence VALUES (1, 0)")
        .await
        .unwrap();
    await_fence(&task, 9, &mut child, 1);
    terminate(&task, 9, child);
    let lake = task.lake();
    assert_matches_source(&client, &lake, "c.items", &["id", "rev", "name", "amount"]).await;
    let plain: Vec<Row> = replay(&lake, "c/plain")
        .values()
        .map(|r| {
            ["id", "rev", "value"]
                .iter()
                .map(|c| r[*c].clone())
                .collect()
        })
        .collect();
    let source = query_rows(
        &client,
        "SELECT id::text AS key, rev::text, v FROM c.plain ORDER BY id",
    )
    .await;
    assert_rows_eq(&plain, &source, "c.plain, v renamed to value");
    for (is_cdc, row) in read_table_files(&lake, "c/items") {
        assert!(!row.contains_key("big"), "{row:?}");
        let shout = row["name"]
            .as_ref()
            .map(|n| format!("{}!", n.to_uppercase()));
        if row.get("Op").cloned().flatten().as_deref() != Some("D") {
            assert_eq!(row["shout"], shout, "{row:?}");
        }
        assert_eq!(
            row["pos"].as_deref().unwrap_or("").is_empty(),
            !is_cdc,
            "{row:?}"
        );
    }
}

/// Creates `db` with [`SCHEMA`], then runs a `full-load-and-cdc` task (with `rules` as its
/// mapping, if given) under a concurrent workload, killing it with SIGKILL once during the
/// load and three times while streaming.
async fn kill_9_rounds(db: &str, rules: Option<&str>) -> (tokio_postgres::Client, Task) {
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    // Many small files and a short interval so kills land between uploads and checkpoints.
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1\nCdcMinFileSize = 8\nMaxFileSize = 64",
        "",
    );
    if let Some(rules) = rules {
        crate::mapping::set_mapping(&task, rules);
    }
    let mut next = kill_times();
    // Kill 1: during the full load.
    let mut child = spawn(&task, 0);
    workload(&client, 0).await;
    wait_for(&task, 0, &mut child, 60, "load files", |fs| {
        fs.iter().filter(|f| f.contains("/LOAD")).count() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // Kills 2..4: while streaming, at a random moment after new files appear.
    for n in 1..4 {
        let mut child = spawn(&task, n);
        workload(&client, n as i64).await;
        let before = files(&task.lake()).len();
        wait_for(&task, n, &mut child, 60, "new files", |fs| {
            fs.len() > before
        });
        std::thread::sleep(Duration::from_millis(next(400)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    (client, task)
}

/// A table with a large (TOASTed) value and the default replica identity, streamed by a `cdc`
/// task with `settings` and `source_settings` (which may end with more sections); an UPDATE
/// then leaves the large value unchanged.
pub(crate) async fn toast_task(
    db: &str,
    settings: &str,
    source_settings: &str,
) -> (tokio_postgres::Client, Task, Child) {
    let client = fresh_db(db).await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA c; CREATE TABLE c.docs (id int PRIMARY KEY, rev int NOT NULL, body text, blob bytea);
             INSERT INTO c.docs SELECT 1, 0, {BIG}, convert_to({BIG}, 'UTF8');"
        ))
        .await
        .unwrap();
    let task = cdc_task(db, "cdc", settings, "");
    if !source_settings.is_empty() {
        // `source_settings` may end with other sections: the task's own [task.settings] (empty
        // in cdc_task) is dropped so they can name it.
        let text = std::fs::read_to_string(&task.path).unwrap();
        let text = text.replace("[task.settings]\n\n", "").replace(
            "[target]",
            &format!("[source.settings]\n{source_settings}\n[target]"),
        );
        std::fs::write(&task.path, text).unwrap();
    }
    let mut child = spawn(&task, 0);
    // The slot exists once the task logs that it streams; then the update is captured.
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute("UPDATE c.docs SET rev = 1")
        .await
        .unwrap();
    (client, task, child)
}

/// By default an unchanged TOASTed value becomes the marker (in CSV and Parquet alike), the task
/// keeps running, and every marker is counted.
#[tokio::test]
async fn unchanged_toast_writes_the_marker_and_streams_on() {
    for format in ["csv", "parquet"] {
        let db = format!("cdc_toast_{format}");
        let settings =
            format!("AddColumnName = true\nCdcMaxBatchInterval = 1\nDataFormat = \"{format}\"");
        let (client, task, mut child) = toast_task(&db, &settings, "").await;
        client
            .batch_execute("UPDATE c.docs SET rev = 2, body = 'short', blob = '\\x00'")
            .await
            .unwrap();
        let lake = task.lake();
        wait_for(&task, 0, &mut child, 60, "two updates", |fs| {
            fs.iter().filter(|f| f.starts_with("c/docs/")).count() >= 1
                && cdc_rows(&lake, format).len() >= 2
        });
        terminate(&task, 0, child);
        let rows = cdc_rows(&lake, format);
        let marker = "unchanged-toast-datum";
        // Op, id, rev, body, blob (bytea as hex in CSV; the marker is written as it is).
        assert_eq!(
            rows[0][..3],
            [Some("U".into()), Some("1".into()), Some("1".into())],
            "{format}"
        );
        assert_eq!(rows[0][3].as_deref(), Some(marker), "{format}");
        // Parquet keeps the marker's bytes in the binary column (shown here as hex).
        let blob_marker: String = match format {
            "csv" => marker.into(),
            _ => marker.bytes().map(|b| format!("{b:02x}")).collect(),
        };
        assert_eq!(
            rows[0][4].as_deref(),
            Some(blob_marker.as_str()),
            "{format}"
        );
        assert_eq!(rows[1][3].as_deref(), Some("short"), "{format}");
        assert_eq!(rows[1][4].as_deref(), Some("00"), "{format}");
        let status = tributary(&["status", "--config", task.path.to_str().unwrap(), "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let docs = json["TableStatistics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["TableName"] == "docs")
            .unwrap();
        assert_eq!(docs["UnchangedMarkers"], 2, "{json}");
        assert_eq!(docs["Updates"], 2, "{json}");
    }
}

/// The CDC rows of c.docs: CSV cells, or Parquet cells (binary shown as hex or as the marker).
fn cdc_rows(lake: &Path, format: &str) -> Vec<Row> {
    let mut paths: Vec<_> = files(lake)
        .into_iter()
        .filter(|f| f.starts_with("c/docs/") && !f.contains("/."))
        .collect();
    paths.sort();
    if format == "csv" {
        return paths
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(lake.join(f)).unwrap();
                parse_csv(&text, ',', "").into_iter().skip(1)
            })
            .collect();
    }
    let full: Vec<_> = paths.iter().map(|f| lake.join(f)).collect();
    if full.is_empty() {
        return Vec::new();
    }
    let (_, rows) = crate::full_load::read_parquet(&full);
    rows
}

/// `UnchangedToastValues = "lookup"` reads the value by key; `"fail"` makes the unsent value a
/// data error, which under `DataErrorPolicy = STOP_TASK` stops with the fix and writes nothing
/// (the default policy suspends the table: `suspend::postgres_an_unsent_toast_value_…`).
#[tokio::test]
async fn unchanged_toast_lookup_reads_the_value_and_fail_stops() {
    let settings = "AddColumnName = true\nCdcMaxBatchInterval = 1";
    let (client, task, mut child) = toast_task(
        "cdc_toast_lookup",
        settings,
        "UnchangedToastValues = \"lookup\"",
    )
    .await;
    let lake = task.lake();
    wait_for(&task, 0, &mut child, 60, "the update", |_| {
        !cdc_rows(&lake, "csv").is_empty()
    });
    terminate(&task, 0, child);
    let body: String = client
        .query_one("SELECT body FROM c.docs", &[])
        .await
        .unwrap()
        .get(0);
    let rows = cdc_rows(&lake, "csv");
    assert_eq!(rows[0][3].as_deref(), Some(body.as_str()));

    let (_client, task, mut child) = toast_task(
        "cdc_toast_fail",
        settings,
        "UnchangedToastValues = \"fail\"\n[task.settings]\n\"ErrorBehavior.DataErrorPolicy\" = \"STOP_TASK\"",
    )
    .await;
    let status = child.wait().unwrap();
    assert!(!status.success());
    let text = log(&task, 0);
    assert!(
        text.contains("REPLICA IDENTITY FULL") && text.contains("c.docs"),
        "{text}"
    );
    assert!(
        cdc_rows(&task.lake(), "csv").is_empty(),
        "no file may hold a NULL for the unchanged value"
    );
}

#[tokio::test]
async fn source_truncate_deletes_the_tables_objects_then_streams_on() {
    let client = fresh_db("cdc_trunc").await;
    client
        .batch_execute(
            "CREATE SCHEMA c; CREATE TABLE c.t (id int PRIMARY KEY, rev int NOT NULL);
             INSERT INTO c.t SELECT g, 0 FROM generate_series(1, 10) g;
             CREATE TABLE c.fence (id bigint PRIMARY KEY, rev int NOT NULL);",
        )
        .await
        .unwrap();
    let task = cdc_task(
        "cdc_trunc",
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = spawn_with(&task, 0, &["--metrics-addr", &addr]);
    wait_for(&task, 0, &mut child, 60, "load files", |fs| {
        fs.iter().any(|f| f.starts_with("c/t/LOAD"))
    });
    client
        .batch_execute("INSERT INTO c.t VALUES (11, 0)")
        .await
        .unwrap();
    wait_for(&task, 0, &mut child, 60, "a CDC file", |fs| {
        fs.iter().any(|f| f.starts_with("c/t/2"))
    });
    // The Prometheus endpoint serves the table statistics while the task runs.
    let metrics = Command::new("curl")
        .args(["-sf", &format!("http://{addr}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    // Prometheus's conventions: every metric described and typed, counters named _total.
    for line in [
        "tributary_full_load_rows_total{table=\"c.t\"} 10",
        "# HELP tributary_full_load_rows_total Rows written by the full load",
        "# TYPE tributary_full_load_rows_total counter",
        "# TYPE tributary_inserts_total counter",
        "# TYPE tributary_cdc_latency_source_seconds gauge",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = l.split(' ').nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP\n{text}"
        );
        assert!(!l.ends_with(" counter") || name.ends_with("_total"), "{l}");
    }
    // Any other path is 404.
    let other = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{addr}/"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&other.stdout), "404");
    client
        .batch_execute("BEGIN; INSERT INTO c.t VALUES (12, 0); TRUNCATE c.t; INSERT INTO c.t VALUES (13, 0); COMMIT;")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO c.fence VALUES (1, 0)")
        .await
        .unwrap();
    await_fence(&task, 0, &mut child, 1);
    terminate(&task, 0, child);
    let lake = task.lake();
    // Everything before the TRUNCATE is gone, including the LOAD files and row 12.
    let names: Vec<String> = files(&lake)
        .into_iter()
        .filter(|f| f.starts_with("c/t/"))
        .collect();
    assert!(names.iter().all(|f| !f.contains("LOAD")), "{names:?}");
    assert_matches_source(&client, &lake, "c.t", &["id", "rev"]).await;
}

#[tokio::test]
async fn cdc_from_an_existing_slot_between_start_and_stop_positions() {
    let client = fresh_db("cdc_slot").await;
    client
        .batch_execute(
            "CREATE SCHEMA c; CREATE TABLE c.t (id int PRIMARY KEY, rev int NOT NULL);
             CREATE PUBLICATION cdc_slot_pub FOR TABLE c.t;
             INSERT INTO c.t VALUES (1, 0);",
        )
        .await
        .unwrap();
    let slot = "cdc_slot_existing";
    client
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}';
             SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');"
        ))
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO c.t VALUES (2, 0)")
        .await
        .unwrap();
    let start = query_rows(&client, "SELECT pg_current_wal_insert_lsn()::text").await[0][0]
        .clone()
        .unwrap();
    client
        .batch_execute("INSERT INTO c.t VALUES (3, 0); UPDATE c.t SET rev = 1 WHERE id = 3")
        .await
        .unwrap();
    let stop = query_rows(
        &client,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
    )
    .await[0][0]
        .clone()
        .unwrap();
    client
        .batch_execute("INSERT INTO c.t VALUES (4, 0)")
        .await
        .unwrap();
    let task = cdc_task(
        "cdc_slot",
        "cdc",
        "AddColumnName = true",
        &format!("cdc_start_position = \"{start}\"\ncdc_stop_position = \"commit_time:{stop}\""),
    );
    let text = std::fs::read_to_string(&task.path)
        .unwrap()
        .replace("[target]", &format!("[source.settings]\nSlotName = \"{slot}\"\nPublicationName = \"cdc_slot_pub\"\n[target]"));
    std::fs::write(&task.path, text).unwrap();
    // It stops by itself at the first transaction committed after the stop time.
    let out = run_ok(&task, &[]);
    let lake = task.lake();
    let rows: Vec<(String, String)> = read_table_files(&lake, "c/t")
        .into_iter()
        .map(|(_, r)| (r["Op"].clone().unwrap(), r["id"].clone().unwrap()))
        .collect();
    assert_eq!(
        rows,
        vec![("I".into(), "3".into()), ("U".into(), "3".into())],
        "only changes between the start LSN and the stop time\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary of the stop measures the WAL the slot holds (the source is reachable).
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("slot {slot}: resume at"))
            && summary.contains(" bytes\n")
            && !summary.contains("unknown"),
        "{summary}"
    );
    let status = tributary(&["status", "--config", task.path.to_str().unwrap(), "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["StopReason"], "STOPPED_AT_COMMIT_TIME", "{s}");
    assert_eq!(s["SlotName"], slot);
    let stats = &s["TableStatistics"][0];
    assert_eq!(
        (stats["Inserts"].as_u64(), stats["Updates"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
}

#[tokio::test]
async fn parquet_cdc_into_s3_and_a_million_row_transaction() {
    let client = fresh_db("cdc_s3").await;
    client
        .batch_execute(
            "CREATE SCHEMA c; CREATE TABLE c.t (id bigint PRIMARY KEY, rev int NOT NULL, v text);
             CREATE TABLE c.fence (id bigint PRIMARY KEY, rev int NOT NULL);",
        )
        .await
        .unwrap();
    let bucket = format!("cdc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    let made = Command::new("curl")
        .args(["-sf", "-X", "PUT", &format!("{endpoint}/{bucket}")])
        .status()
        .unwrap();
    assert!(made.success(), "create bucket");
    let target =
        format!("url = \"s3://{bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"");
    let task = new_task(
        "cdc_s3",
        "c",
        Some(&target),
        "DataFormat = \"parquet\"\nCdcMaxBatchInterval = 1\nCdcMinFileSize = 16000",
        "",
    );
    let text = std::fs::read_to_string(&task.path)
        .unwrap()
        .replace("migration_type = \"full-load\"", "migration_type = \"cdc\"");
    std::fs::write(&task.path, text).unwrap();
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    // One transaction of a million rows: it must pass in files of bounded size, whole.
    client
        .batch_execute(
            "INSERT INTO c.t SELECT g, 0, md5(g::text) FROM generate_series(1, 1000000) g",
        )
        .await
        .unwrap();
    client
        .batch_execute("UPDATE c.t SET rev = 1 WHERE id <= 10; DELETE FROM c.t WHERE id = 5")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO c.fence VALUES (1, 0)")
        .await
        .unwrap();
    // Wait for the fence's Parquet file, then stop cleanly.
    let list = || {
        let out = Command::new(".tributary/venv/bin/python")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["-c", &format!(
                "import boto3;s=boto3.client('s3',endpoint_url='{endpoint}',aws_access_key_id='t',aws_secret_access_key='t',region_name='us-east-1');print('\\n'.join(o['Key'] for o in s.list_objects_v2(Bucket='{bucket}').get('Contents',[])))"
            )])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !list().iter().any(|k| k.starts_with("c/fence/")) {
        assert!(child.try_wait().unwrap().is_none(), "{}", log(&task, 0));
        assert!(
            Instant::now() < deadline,
            "no fence file\n{}",
            log(&task, 0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    terminate(&task, 0, child);
    // Read every c/t file with DuckDB straight from S3, replay, compare with the source.
    let keys: Vec<String> = list()
        .into_iter()
        .filter(|k| k.starts_with("c/t/"))
        .collect();
    assert!(
        keys.len() >= 2,
        "the million-row transaction is split into several files: {keys:?}"
    );
    let script = format!(
        "import boto3, io, pyarrow.parquet as pq
s=boto3.client('s3',endpoint_url='{endpoint}',aws_access_key_id='t',aws_secret_access_key='t',region_name='us-east-1')
state={{}}
for k in sorted({keys:?}):
    t=pq.read_table(io.BytesIO(s.get_object(Bucket='{bucket}',Key=k)['Body'].read()))
    assert t.column_names[0]=='Op', t.column_names
    for op,i,r,v in zip(*[t.column(c).to_pylist() for c in ['Op','id','rev','v']]):
        if op=='D': del state[i]
        else: state[i]=(r,v)
print(len(state), sum(r for r,_ in state.values()), state[1], state[11])"
    );
    let out = Command::new(".tributary/venv/bin/python")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = query_rows(
        &client,
        "SELECT count(*)::text || ' ' || sum(rev)::text || ' ' || (SELECT '(' || rev || ', ''' || v || ''')' FROM c.t WHERE id = 1) || ' ' || (SELECT '(' || rev || ', ''' || v || ''')' FROM c.t WHERE id = 11) FROM c.t",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected[0][0].as_deref().unwrap()
    );
}

#[tokio::test]
async fn preserve_transactions_writes_commit_ordered_txn_files() {
    let client = fresh_db("cdc_txn").await;
    client
        .batch_execute(
            "CREATE SCHEMA c; CREATE TABLE c.a (id int PRIMARY KEY, v text);
             CREATE TABLE c.b (id int PRIMARY KEY, w text);",
        )
        .await
        .unwrap();
    let task = cdc_task(
        "cdc_txn",
        "cdc",
        "PreserveTransactions = true\nCdcPath = \"changes\"\nCdcMaxBatchInterval = 1",
        "",
    );
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute(
            "BEGIN; INSERT INTO c.a VALUES (1, 'x'); INSERT INTO c.b VALUES (1, 'y,z'); COMMIT;
             BEGIN; UPDATE c.b SET w = 'q' WHERE id = 1; DELETE FROM c.a WHERE id = 1; COMMIT;",
        )
        .await
        .unwrap();
    wait_for(
        &task,
        0,
        &mut child,
        60,
        "four changes in CDC_TXN files",
        |fs| {
            let lines: usize = fs
                .iter()
                .filter(|f| f.starts_with("changes/CDC_TXN-"))
                .map(|f| {
                    std::fs::read_to_string(task.lake().join(f))
                        .unwrap()
                        .lines()
                        .count()
                })
                .sum();
            lines >= 4
        },
    );
    terminate(&task, 0, child);
    let names = files(&task.lake());
    assert!(
        names
            .iter()
            .all(|f| f.starts_with("changes/CDC_TXN-") && f.ends_with(".csv")),
        "{names:?}"
    );
    let text: String = names
        .iter()
        .map(|f| std::fs::read_to_string(task.lake().join(f)).unwrap())
        .collect();
    assert_eq!(text, "I,a,c,1,x\nI,b,c,1,\"y,z\"\nU,b,c,1,q\nD,a,c,1,\n");
}
