//! Automatic chunks: a table above the chunk size (lowered here with `TRIBUTARY_AUTO_SEGMENT_KB`)
//! with no `parallel-load` rule loads as several segments, named as DMS names a table's files,
//! every row once; `kill -9` in the middle keeps the chunks that finished.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::common::*;
use crate::segments::{loaded, source_rows};

/// The chunk size the tests load with: 1 MB.
const CHUNK_KB: &str = "1024";

/// Runs the task with the lowered chunk size; asserts success.
fn run_chunked(task: &Task) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "run",
            "--config",
            task.path.to_str().unwrap(),
            "--no-progress",
        ])
        .env("TRIBUTARY_LOG", "info")
        .env("TRIBUTARY_AUTO_SEGMENT_KB", CHUNK_KB)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

/// The checkpoint's statistics of `table`.
fn stats(task: &Task, id: &str, table: &str) -> serde_json::Value {
    let path = task
        .dir
        .path()
        .join(format!("tributary-state/{id}/checkpoint.json"));
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
            .unwrap_or_default();
    cp["tables"][table].clone()
}

/// Names of the chunks of `table` the checkpoint has as complete.
fn completed_chunks(task: &Task, id: &str, table: &str) -> Vec<String> {
    let s = stats(task, id, table);
    let Some(segments) = s["Segments"].as_object() else {
        return Vec::new();
    };
    segments
        .iter()
        .filter(|(_, g)| g["State"] == "Table completed")
        .map(|(n, _)| n.clone())
        .collect()
}

/// The chunk (from 1) a LOAD file belongs to, from its counter's block of 2^20.
fn chunk_of(file: &str) -> u64 {
    let name = file.rsplit('/').next().unwrap();
    let counter = u64::from_str_radix(&name[4..12], 16).unwrap();
    ((counter - 1) >> 20) + 1
}

/// Starts the task, kills it (SIGKILL) once `table` has `n` finished chunks, and returns the
/// files of its finished chunks with their modification times.
fn kill_after_chunks(
    task: &Task,
    id: &str,
    table: &str,
    folder: &str,
    n: usize,
) -> Vec<(String, std::time::SystemTime)> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "run",
            "--config",
            task.path.to_str().unwrap(),
            "--no-progress",
        ])
        .env("TRIBUTARY_AUTO_SEGMENT_KB", CHUNK_KB)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed_chunks(task, id, table).len() < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        assert!(Instant::now() < deadline, "{n} chunks never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    finished_files(task, id, table, folder)
}

/// The files of `table`'s finished chunks (in `folder`), with their modification times.
fn finished_files(
    task: &Task,
    id: &str,
    table: &str,
    folder: &str,
) -> Vec<(String, std::time::SystemTime)> {
    let done: Vec<u64> = completed_chunks(task, id, table)
        .iter()
        .map(|c| c.trim_start_matches("CHUNK").parse().unwrap())
        .collect();
    let lake = task.lake();
    files(&lake)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{folder}/")) && done.contains(&chunk_of(f)))
        .map(|f| {
            let t = std::fs::metadata(lake.join(&f))
                .unwrap()
                .modified()
                .unwrap();
            (f, t)
        })
        .collect()
}

/// After the rerun: the finished chunks' files are untouched, the log says they were skipped,
/// and `folder` holds plain `LOAD%08X` names (no sub-folder, no prefix) from one block per
/// chunk of the checkpoint.
fn assert_resumed(
    task: &Task,
    id: &str,
    table: &str,
    folder: &str,
    kept: &[(String, std::time::SystemTime)],
    log: &str,
) -> usize {
    let lake = task.lake();
    for (f, modified) in kept {
        let now = std::fs::metadata(lake.join(f)).unwrap().modified().unwrap();
        assert_eq!(&now, modified, "{f} of a finished chunk was rewritten");
    }
    let finished: std::collections::BTreeSet<u64> = kept.iter().map(|(f, _)| chunk_of(f)).collect();
    assert!(!finished.is_empty());
    for c in &finished {
        assert!(
            log.contains(&format!("segment=\"CHUNK{c}\""))
                || log.contains(&format!("segment=CHUNK{c}")),
            "CHUNK{c} not named in the log\n{log}"
        );
    }
    assert!(
        log.matches("segment already loaded; skipping").count() >= finished.len(),
        "{log}"
    );
    let s = stats(task, id, table);
    assert_eq!(s["TableState"], "Table completed", "{s}");
    let chunks = s["Chunks"].as_array().expect("chunks recorded").len();
    assert!(chunks >= 3, "{s}");
    let names: Vec<String> = files(&lake)
        .into_iter()
        .filter_map(|f| f.strip_prefix(&format!("{folder}/")).map(str::to_owned))
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("LOAD") && !n.contains('/')),
        "{names:?}"
    );
    let blocks: std::collections::BTreeSet<u64> = names.iter().map(|n| chunk_of(n)).collect();
    assert_eq!(blocks.len(), chunks, "{names:?}");
    chunks
}

/// PostgreSQL: an integer key (sampled boundaries), a two-column key declared in another
/// order than its columns, and a table without a key (`ctid` pages) are chunked; a small
/// table is not. Killed after two chunks of the biggest, the rerun keeps them.
#[tokio::test]
async fn postgres_big_tables_load_in_resumable_automatic_chunks() {
    let db = "chunk_pg";
    let id = format!("t-{db}");
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA c;
             CREATE TABLE c.big (id bigint PRIMARY KEY, v text);
             INSERT INTO c.big SELECT i * 3, repeat(md5(i::text), 2) FROM generate_series(1, 200000) i;
             CREATE TABLE c.pair (a int, b int, v text, PRIMARY KEY (b, a));
             INSERT INTO c.pair SELECT i % 7, i / 7, md5(i::text) FROM generate_series(1, 40000) i;
             CREATE TABLE c.heap (id int, v text);
             INSERT INTO c.heap SELECT i, md5(i::text) FROM generate_series(1, 40000) i;
             CREATE TABLE c.small (id int PRIMARY KEY, v text);
             INSERT INTO c.small VALUES (1, 'one');
             CREATE TABLE c.dec (id numeric(11,0) PRIMARY KEY, v text);
             INSERT INTO c.dec SELECT i, md5(i::text) FROM generate_series(1, 40000) i;
             CREATE TABLE c.frac (id numeric(11,2) PRIMARY KEY, v text);
             INSERT INTO c.frac SELECT i / 4.0, md5(i::text) FROM generate_series(1, 40000) i;
             ANALYZE;",
        )
        .await
        .unwrap();
    // One unit at a time and small files, so the kill lands between and inside chunks.
    let task = new_task(
        db,
        "c",
        None,
        "MaxFileSize = 256",
        "FullLoadSettings.MaxFullLoadSubTasks = 1",
    );
    let kept = kill_after_chunks(&task, &id, "c.big", "c/big", 2);
    let log = run_chunked(&task);
    let chunks = assert_resumed(&task, &id, "c.big", "c/big", &kept, &log);
    assert!(
        log.contains("big table: loading it in automatic chunks"),
        "{log}"
    );
    assert!(chunks >= 10, "{chunks} chunks");
    // Sampled boundaries: no chunk far from the mean.
    let big = stats(&task, &id, "c.big");
    let rows: Vec<u64> = big["Segments"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| g["Rows"].as_u64().unwrap())
        .collect();
    let mean = 200_000 / rows.len() as u64;
    assert!(
        rows.iter().all(|r| *r > mean / 3 && *r < mean * 3),
        "{rows:?}"
    );
    let lake = task.lake();
    let want = source_rows(&client, "SELECT id::text, v FROM c.big").await;
    assert_eq!(loaded(&lake, "c/big"), want);
    // (b, a) is the key: the sample and the ranges follow the index's order.
    let pair = stats(&task, &id, "c.pair");
    let ranges = pair["Chunks"].as_array().unwrap();
    assert!(
        ranges.len() >= 2 && ranges[0].as_str().unwrap().contains("(\"b\", \"a\")"),
        "{pair}"
    );
    let want: BTreeMap<String, Vec<Option<String>>> = client
        .query("SELECT a::text || '/' || b::text, v FROM c.pair", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), vec![r.get(1)]))
        .collect();
    let mut got = BTreeMap::new();
    for f in files(&lake).iter().filter(|f| f.starts_with("c/pair/")) {
        for row in parse_csv(&std::fs::read_to_string(lake.join(f)).unwrap(), ',', "") {
            let k = format!("{}/{}", row[0].clone().unwrap(), row[1].clone().unwrap());
            assert!(
                got.insert(k.clone(), vec![row[2].clone()]).is_none(),
                "{k} twice"
            );
        }
    }
    assert_eq!(got, want);
    // No key: ctid page ranges.
    let heap = stats(&task, &id, "c.heap");
    let ranges = heap["Chunks"].as_array().unwrap();
    assert!(
        ranges.len() >= 2 && ranges[0].as_str().unwrap().contains("ctid"),
        "{heap}"
    );
    let want = source_rows(&client, "SELECT id::text, v FROM c.heap").await;
    assert_eq!(loaded(&lake, "c/heap"), want);
    // A numeric(11,0) key (the DMS walkthrough's ids) is cut by key, with its ranges recorded
    // for the stream; numeric(11,2) is not a whole number: ctid pages.
    let dec = stats(&task, &id, "c.dec");
    let ranges = dec["Chunks"].as_array().unwrap();
    assert!(
        ranges.len() >= 2 && ranges[0].as_str().unwrap().starts_with("\"id\" <"),
        "{dec}"
    );
    assert_eq!(
        dec["KeyRanges"]["columns"],
        serde_json::json!(["id"]),
        "{dec}"
    );
    let want = source_rows(&client, "SELECT id::text, v FROM c.dec").await;
    assert_eq!(loaded(&lake, "c/dec"), want);
    let frac = stats(&task, &id, "c.frac");
    assert!(
        frac["Chunks"][0].as_str().unwrap().contains("ctid"),
        "{frac}"
    );
    assert!(frac.get("KeyRanges").is_none(), "{frac}");
    assert!(stats(&task, &id, "c.small").get("Chunks").is_none());
    assert_eq!(
        files(&lake)
            .into_iter()
            .filter(|f| f.starts_with("c/small/"))
            .collect::<Vec<_>>(),
        ["c/small/LOAD00000001.csv"]
    );
}

/// MariaDB: integer keys (one column, and two with the key's first column leading) are cut
/// into ranges; a text key is not chunked. Killed after two chunks, the rerun keeps them.
#[tokio::test]
async fn mysql_big_tables_load_in_resumable_automatic_chunks() {
    let db = "chunk_my";
    let id = format!("my-{db}");
    let url = crate::mysql::my_url(db);
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(100));
         INSERT INTO big SELECT seq * 3, REPEAT(MD5(seq), 2) FROM seq_1_to_200000;
         CREATE TABLE pair (a INT, b INT, v VARCHAR(40), PRIMARY KEY (b, a));
         INSERT INTO pair SELECT seq % 7, seq DIV 7, MD5(seq) FROM seq_1_to_40000;
         CREATE TABLE named (name VARCHAR(40) PRIMARY KEY, v VARCHAR(40));
         INSERT INTO named SELECT MD5(seq), MD5(seq) FROM seq_1_to_40000;
         ANALYZE TABLE big, pair, named;",
    )
    .await
    .unwrap();
    let task = crate::mysql::my_task_at(
        &url,
        db,
        "full-load",
        "MaxFileSize = 256",
        "settings = { FullLoadSettings = { MaxFullLoadSubTasks = 1 } }",
    );
    let table = format!("{db}.big");
    let folder = format!("{db}/big");
    let kept = kill_after_chunks(&task, &id, &table, &folder, 2);
    let log = run_chunked(&task);
    let chunks = assert_resumed(&task, &id, &table, &folder, &kept, &log);
    assert!(chunks >= 5, "{chunks} chunks");
    let lake = task.lake();
    let source: Vec<(i64, String)> = conn.query("SELECT id, v FROM big").await.unwrap();
    let want: BTreeMap<String, Vec<Option<String>>> = source
        .into_iter()
        .map(|(id, v)| (id.to_string(), vec![Some(v)]))
        .collect();
    assert_eq!(loaded(&lake, &folder), want);
    let pair = stats(&task, &id, &format!("{db}.pair"));
    let ranges = pair["Chunks"].as_array().expect("pair is chunked");
    assert!(ranges[0].as_str().unwrap().contains("`b`"), "{pair}");
    let mut got = std::collections::BTreeSet::new();
    for f in files(&lake)
        .iter()
        .filter(|f| f.starts_with(&format!("{db}/pair/")))
    {
        for row in parse_csv(&std::fs::read_to_string(lake.join(f)).unwrap(), ',', "") {
            if row[0].as_deref() == Some("a") {
                continue; // the header
            }
            let k = format!("{}/{}", row[0].clone().unwrap(), row[1].clone().unwrap());
            assert!(got.insert(k.clone()), "{k} twice");
        }
    }
    assert_eq!(got.len(), 40000);
    let named = stats(&task, &id, &format!("{db}.named"));
    assert!(named.get("Chunks").is_none(), "{named}");
    assert!(files(&lake)
        .iter()
        .filter(|f| f.starts_with(&format!("{db}/named/")))
        .all(|f| chunk_of(f) == 1));
}

/// Starts run `n` of a `full-load-and-cdc` task with 256 KB chunks (its log in `run-{n}.log`).
fn spawn_cdc(task: &Task, n: usize) -> std::process::Child {
    crate::cdc::run_command(task, n, &[])
        .env("TRIBUTARY_LOG", "info")
        .env("TRIBUTARY_AUTO_SEGMENT_KB", "256")
        .spawn()
        .unwrap()
}

/// Kills `child` (SIGKILL) once `table` has `n` finished chunks, before its load ends;
/// returns the files of its finished chunks with their modification times.
fn kill_when_chunks(
    task: &Task,
    id: &str,
    (table, folder): (&str, &str),
    mut child: std::process::Child,
    n: usize,
) -> Vec<(String, std::time::SystemTime)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed_chunks(task, id, table).len() < n {
        assert!(child.try_wait().unwrap().is_none(), "ended before the kill");
        assert!(Instant::now() < deadline, "{n} chunks never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let s = stats(task, id, table);
    assert!(s["Chunks"].as_array().is_some_and(|c| c.len() >= 6), "{s}");
    assert_ne!(s["TableState"], "Table completed", "killed after the load");
    finished_files(task, id, table, folder)
}

/// Asserts that the files of kept chunks were not rewritten and that runs `runs` kept chunks.
fn assert_kept(task: &Task, kept: &[(String, std::time::SystemTime)], runs: &[usize]) {
    for (f, modified) in kept {
        let now = std::fs::metadata(task.lake().join(f)).unwrap().modified();
        assert_eq!(
            now.ok().as_ref(),
            Some(modified),
            "{f} of a kept chunk was rewritten"
        );
    }
    for &n in runs {
        let log = crate::cdc::log(task, n);
        assert!(log.contains("finished segments are kept"), "{log}");
        assert!(log.contains("segment already loaded; skipping"), "{log}");
    }
}

/// The statements run while the task is down after kill `round`: rows move between the first
/// chunk (kept) and the last (read again), rows of both change and are deleted, so the
/// resume's snapshot is taken after changes to both kinds of chunks.
fn while_down(round: i64, negate: &str) -> String {
    format!(
        "UPDATE plain SET id = id + 2000000, rev = rev + 1 WHERE id BETWEEN {a} AND {b};
         UPDATE plain SET id = {negate}, rev = rev + 1 WHERE id BETWEEN {c} AND {d};
         UPDATE plain SET rev = rev + 1 WHERE id IN (15000, 1299000);
         DELETE FROM plain WHERE id IN ({e}, {f});",
        a = 100 + round * 10,
        b = 104 + round * 10,
        c = 1_299_900 + round * 10,
        d = 1_299_904 + round * 10,
        e = 200 + round,
        f = 1_299_800 + round,
    )
}

/// `full-load-and-cdc` with automatic chunks, a concurrent workload, and `kill -9` twice during
/// the load: each resume keeps the chunks that finished (their files untouched, the log says
/// they were skipped) and reads the others from its own snapshot. Rows whose key moves them
/// between a kept chunk and a re-read one while the task is down, changes to rows of both
/// kinds of chunks, and the rest of the workload replay to the source with every change once.
#[tokio::test]
async fn full_load_and_cdc_in_chunks_survives_kill_9_with_every_change_once() {
    use crate::cdc::{cdc_task, fence_stop_and_compare, wait_for, workload, SCHEMA};
    let db = "chunk_cdc";
    let id = format!("t-{db}");
    let client = fresh_db(db).await;
    client
        .batch_execute(&format!(
            "{SCHEMA}
             INSERT INTO c.plain SELECT g, 0, 'v' || g FROM generate_series(1000001, 1300000) g;
             ANALYZE c.items, c.plain;"
        ))
        .await
        .unwrap();
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1\nCdcMinFileSize = 8\nMaxFileSize = 64",
        "",
    );
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replace(
        "[task.settings]\n",
        "[task.settings]\nFullLoadSettings.MaxFullLoadSubTasks = 1\n",
    );
    std::fs::write(&task.path, text).unwrap();
    let down = |round| while_down(round, "-id").replace("plain", "c.plain");
    // `c.plain`, the biggest table, loads first.
    let plain = ("c.plain", "c/plain");
    let child = spawn_cdc(&task, 0);
    workload(&client, 0).await;
    let mut kept = kill_when_chunks(&task, &id, plain, child, 2);
    client.batch_execute(&down(0)).await.unwrap();
    let child = spawn_cdc(&task, 1);
    workload(&client, 1).await;
    kept.extend(kill_when_chunks(&task, &id, plain, child, 4));
    client.batch_execute(&down(1)).await.unwrap();
    let mut child = spawn_cdc(&task, 2);
    wait_for(&task, 2, &mut child, 120, "the load", |_| {
        ["c.items", "c.plain"]
            .iter()
            .all(|t| stats(&task, &id, t)["TableState"] == "Table completed")
    });
    workload(&client, 2).await;
    assert_kept(&task, &kept, &[1, 2]);
    fence_stop_and_compare(&client, &task, 2, child).await;
}

/// The same on MariaDB (key ranges of the first key column, cut evenly between its smallest
/// and largest value).
#[tokio::test]
async fn mysql_full_load_and_cdc_in_chunks_survives_kill_9_with_every_change_once() {
    use crate::cdc::wait_for;
    use crate::mysql::{fence_stop_and_compare, my_db, my_task_at, my_url, workload, SCHEMA};
    let db = "chunk_my_cdc";
    let id = format!("my-{db}");
    let mut conn = my_db(db).await;
    conn.query_drop(format!(
        "{SCHEMA}
         INSERT INTO plain SELECT seq, 0, CONCAT('v', seq) FROM seq_1000001_to_1300000;
         ANALYZE TABLE items, plain;"
    ))
    .await
    .unwrap();
    let task = my_task_at(
        &my_url(db),
        db,
        "full-load-and-cdc",
        "CdcMaxBatchInterval = 1\nCdcMinFileSize = 8\nMaxFileSize = 64",
        "settings = { FullLoadSettings = { MaxFullLoadSubTasks = 1 } }",
    );
    let table = format!("{db}.plain");
    let folder = format!("{db}/plain");
    let plain = (table.as_str(), folder.as_str());
    let child = spawn_cdc(&task, 0);
    workload(&mut conn, 0).await;
    let mut kept = kill_when_chunks(&task, &id, plain, child, 2);
    conn.query_drop(while_down(0, "-id")).await.unwrap();
    let child = spawn_cdc(&task, 1);
    workload(&mut conn, 1).await;
    kept.extend(kill_when_chunks(&task, &id, plain, child, 4));
    conn.query_drop(while_down(1, "-id")).await.unwrap();
    let mut child = spawn_cdc(&task, 2);
    wait_for(&task, 2, &mut child, 120, "the load", |_| {
        ["items", "plain"]
            .iter()
            .all(|t| stats(&task, &id, &format!("{db}.{t}"))["TableState"] == "Table completed")
    });
    workload(&mut conn, 2).await;
    assert_kept(&task, &kept, &[1, 2]);
    fence_stop_and_compare(&mut conn, &task, 2, child, db).await;
}
