//! Segmented full loads (`parallel-load`) on the private servers: each rule type writes DMS's
//! layout (partition and named-range folders, `SEGMENT<n>_` files), every source row lands in
//! exactly one segment (NULL range columns included), and a rerun keeps the segments an earlier
//! run finished.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::common::*;
use crate::mapping::set_mapping;

/// Every row of the LOAD files under `folder/` (recursively), as id → the other cells, failing
/// on a row seen twice.
pub(crate) fn loaded(
    lake: &std::path::Path,
    folder: &str,
) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out = BTreeMap::new();
    for f in files(lake) {
        if !f.starts_with(&format!("{folder}/")) {
            continue;
        }
        let text = std::fs::read_to_string(lake.join(&f)).unwrap();
        for row in parse_csv(&text, ',', "") {
            let id = row[0].clone().unwrap();
            if id == "id" {
                continue; // the header (AddColumnName)
            }
            let again = out.insert(id.clone(), row[1..].to_vec());
            assert!(again.is_none(), "row {id} twice (again in {f})");
        }
    }
    out
}

/// The rows of `select` (id first, as text) keyed like [`loaded`].
pub(crate) async fn source_rows(
    client: &tokio_postgres::Client,
    select: &str,
) -> BTreeMap<String, Vec<Option<String>>> {
    client
        .query(select, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            (id, (1..r.len()).map(|i| r.get(i)).collect())
        })
        .collect()
}

/// The LOAD file names under `folder/`, relative to it, sorted.
fn names(lake: &std::path::Path, folder: &str) -> Vec<String> {
    let mut n: Vec<String> = files(lake)
        .into_iter()
        .filter_map(|f| f.strip_prefix(&format!("{folder}/")).map(str::to_owned))
        .collect();
    n.sort();
    n
}

/// PostgreSQL: unnamed ranges (with NULLs in the range column), named two-column ranges and a
/// declaratively partitioned table with partitions-auto; then a rerun after one segment failed
/// loads only that segment.
#[tokio::test]
async fn postgres_parallel_load_rules_split_tables_into_resumable_segments() {
    let db = "seg_pg";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA g;
             CREATE TABLE g.r (id int PRIMARY KEY, k int, v varchar(20));
             INSERT INTO g.r SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE i END, 'v' || i
               FROM generate_series(1, 1000) i;
             CREATE TABLE g.named (id int PRIMARY KEY, a varchar(5) NOT NULL, b int NOT NULL);
             INSERT INTO g.named SELECT i, chr(97 + i % 3), i FROM generate_series(1, 300) i;
             CREATE TABLE g.p (id int NOT NULL, v varchar(20)) PARTITION BY RANGE (id);
             CREATE TABLE g.p_low PARTITION OF g.p FOR VALUES FROM (MINVALUE) TO (100);
             CREATE TABLE g.p_high PARTITION OF g.p FOR VALUES FROM (100) TO (MAXVALUE);
             INSERT INTO g.p SELECT i, 'p' || i FROM generate_series(1, 250) i;",
        )
        .await
        .unwrap();
    let task = new_task(db, "g", None, "", "");
    let select = r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"g","table-name":"%"},"rule-action":"include"}"#;
    let ranges = r#"{"rule-type":"table-settings","rule-id":"2","rule-name":"2","object-locator":{"schema-name":"g","table-name":"r"},"parallel-load":{"type":"ranges","columns":["k"],"boundaries":[["100"],["500"]]}}"#;
    let named = r#"{"rule-type":"table-settings","rule-id":"3","rule-name":"3","object-locator":{"schema-name":"g","table-name":"named"},"parallel-load":{"type":"ranges","columns":["a","b"],"boundaries":[["a","150"],["b","0"]],"segment-names":["first","second","third"]}}"#;
    let parts = r#"{"rule-type":"table-settings","rule-id":"4","rule-name":"4","object-locator":{"schema-name":"g","table-name":"p"},"parallel-load":{"type":"partitions-auto"}}"#;
    // A poison for the first run: segment 2 of g.r (k in [100, 500)) holds 'bad'.
    let poison = r#"{"rule-type":"transformation","rule-id":"5","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"g","table-name":"r","column-name":"v"},"rule-action":"change-data-type","data-type":{"type":"int4"}}"#;
    client
        .batch_execute("UPDATE g.r SET v = '0' || id; UPDATE g.r SET v = 'bad' WHERE id = 201;")
        .await
        .unwrap();
    set_mapping(
        &task,
        &format!("{select},{ranges},{named},{parts},{poison}"),
    );
    let path = task.path.to_str().unwrap();
    let out = tributary(&["run", "--config", path, "--no-progress"]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(
        log.contains("segment SEGMENT2") && log.contains("\"bad\""),
        "{log}"
    );
    let lake = task.lake();
    assert_eq!(
        names(&lake, "g/r"),
        ["SEGMENT1_LOAD00000001.csv", "SEGMENT3_LOAD00000001.csv"],
        "the failed segment leaves nothing"
    );

    // The fix; the rerun loads segment 2 only.
    client
        .batch_execute("UPDATE g.r SET v = '0201' WHERE id = 201;")
        .await
        .unwrap();
    let out = run_ok(&task, &[]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    for kept in ["SEGMENT1", "SEGMENT3"] {
        assert!(
            log.contains(&format!("segment=\"{kept}\""))
                || log.contains(&format!("segment={kept}")),
            "{log}"
        );
    }
    assert_eq!(
        log.matches("segment already loaded; skipping").count(),
        2,
        "{log}"
    );
    assert_eq!(
        names(&lake, "g/r"),
        [
            "SEGMENT1_LOAD00000001.csv",
            "SEGMENT2_LOAD00000001.csv",
            "SEGMENT3_LOAD00000001.csv"
        ]
    );
    assert_eq!(
        names(&lake, "g/named"),
        [
            "first/LOAD00000001.csv",
            "second/LOAD00000001.csv",
            "third/LOAD00000001.csv"
        ]
    );
    assert_eq!(
        names(&lake, "g/p"),
        ["p_high/LOAD00000001.csv", "p_low/LOAD00000001.csv"]
    );
    let want = source_rows(&client, "SELECT id::text, k::text, (v::int)::text FROM g.r").await;
    assert_eq!(loaded(&lake, "g/r"), want);
    // NULL range values go to the last segment.
    let last = std::fs::read_to_string(lake.join("g/r/SEGMENT3_LOAD00000001.csv")).unwrap();
    assert!(last.lines().any(|l| l.starts_with("10,,")), "{last}");
    let want = source_rows(&client, "SELECT id::text, a, b::text FROM g.named").await;
    assert_eq!(loaded(&lake, "g/named"), want);
    // (a, b) < ('a', 150): a = 'a' rows with b < 150 only.
    let first = loaded(&lake, "g/named/first");
    assert!(first
        .values()
        .all(|r| r[0].as_deref() == Some("a")
            && r[1].as_deref().unwrap().parse::<i32>().unwrap() < 150));
    let want = source_rows(&client, "SELECT id::text, v FROM g.p").await;
    assert_eq!(loaded(&lake, "g/p"), want);
    let low = loaded(&lake, "g/p/p_low");
    assert_eq!(low.len(), 99);
}

/// MariaDB: a RANGE-partitioned table with partitions-auto and partitions-list, and ranges on
/// a text column compared byte by byte; the files equal the source.
#[tokio::test]
async fn mysql_parallel_load_rules_write_partition_folders_and_ranges() {
    let db = "seg_my";
    let url = crate::mysql::my_url(db);
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(
        "CREATE TABLE p (id INT NOT NULL, v VARCHAR(20), PRIMARY KEY (id))
           PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100),
                                    PARTITION p1 VALUES LESS THAN (200),
                                    PARTITION p2 VALUES LESS THAN MAXVALUE);
         CREATE TABLE l LIKE p;
         CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL);
         INSERT INTO p SELECT seq, CONCAT('p', seq) FROM seq_1_to_300;
         INSERT INTO l SELECT * FROM p;
         INSERT INTO t SELECT seq, CONCAT(CHAR(65 + seq % 26), seq) FROM seq_1_to_200;
         INSERT INTO t VALUES (1000, 'a-lower');",
    )
    .await
    .unwrap();
    let task = crate::mysql::my_task_at(&url, db, "full-load", "", "");
    let rules = format!(
        r#"{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{db}","table-name":"%"}},"rule-action":"include"}},
           {{"rule-type":"table-settings","rule-id":"2","rule-name":"2","object-locator":{{"schema-name":"{db}","table-name":"p"}},"parallel-load":{{"type":"partitions-auto"}}}},
           {{"rule-type":"table-settings","rule-id":"3","rule-name":"3","object-locator":{{"schema-name":"{db}","table-name":"l"}},"parallel-load":{{"type":"partitions-list","partitions":["p0","p2","p1"]}}}},
           {{"rule-type":"table-settings","rule-id":"4","rule-name":"4","object-locator":{{"schema-name":"{db}","table-name":"t"}},"parallel-load":{{"type":"ranges","columns":["name"],"boundaries":[["M"],["a"]]}}}}"#
    );
    set_mapping(&task, &rules);
    run_ok(&task, &[]);
    let lake = task.lake();
    let folder = |t: &str| format!("{db}/{t}");
    for t in ["p", "l"] {
        assert_eq!(
            names(&lake, &folder(t)),
            [
                "p0/LOAD00000001.csv",
                "p1/LOAD00000001.csv",
                "p2/LOAD00000001.csv"
            ]
        );
        let got = loaded(&lake, &folder(t));
        assert_eq!(got.len(), 300);
        assert!(got
            .iter()
            .all(|(id, r)| r[0].as_deref() == Some(&format!("p{id}"))));
        assert_eq!(loaded(&lake, &format!("{}/p1", folder(t))).len(), 100);
    }
    assert_eq!(
        names(&lake, &folder("t")),
        [
            "SEGMENT1_LOAD00000001.csv",
            "SEGMENT2_LOAD00000001.csv",
            "SEGMENT3_LOAD00000001.csv"
        ]
    );
    let source: Vec<(i64, String)> = conn.query("SELECT id, name FROM t").await.unwrap();
    let want: BTreeMap<String, Vec<Option<String>>> = source
        .into_iter()
        .map(|(id, n)| (id.to_string(), vec![Some(n)]))
        .collect();
    assert_eq!(loaded(&lake, &folder("t")), want);
    // Byte order: 'a-lower' sorts after 'Z…' and 'a', so it is in the last segment.
    let last =
        std::fs::read_to_string(lake.join(format!("{db}/t/SEGMENT3_LOAD00000001.csv"))).unwrap();
    assert!(last.contains("a-lower"), "{last}");
}

/// `kill -9` while a segmented table loads, several times: each rerun keeps the segments that
/// finished (the log says so; their files are untouched), removes what unfinished ones wrote,
/// and in the end every row is in exactly one file.
#[tokio::test]
async fn kill_9_during_a_segmented_load_keeps_finished_segments() {
    let db = "seg_kill";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA q;
             CREATE TABLE q.big (id int PRIMARY KEY, v text);
             INSERT INTO q.big SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, 400000) i;",
        )
        .await
        .unwrap();
    // One unit at a time and small files, so a kill lands between and inside segments.
    let task = new_task(
        db,
        "q",
        None,
        "MaxFileSize = 256",
        "FullLoadSettings.MaxFullLoadSubTasks = 1",
    );
    let select = r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"q","table-name":"%"},"rule-action":"include"}"#;
    let ranges = r#"{"rule-type":"table-settings","rule-id":"2","rule-name":"2","object-locator":{"schema-name":"q","table-name":"big"},"parallel-load":{"type":"ranges","columns":["id"],"boundaries":[["100000"],["200000"],["300000"]]}}"#;
    set_mapping(&task, &format!("{select},{ranges}"));
    let lake = task.lake();
    let segment_files = |n: u32| -> Vec<(String, std::time::SystemTime)> {
        files(&lake)
            .into_iter()
            .filter(|f| f.starts_with(&format!("q/big/SEGMENT{n}_")))
            .map(|f| {
                let t = std::fs::metadata(lake.join(&f))
                    .unwrap()
                    .modified()
                    .unwrap();
                (f, t)
            })
            .collect()
    };
    let checkpoint = task
        .dir
        .path()
        .join(format!("tributary-state/t-{db}/checkpoint.json"));
    let mut kept: Vec<(String, std::time::SystemTime)> = Vec::new();
    for round in 1..=2u32 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args([
                "run",
                "--config",
                task.path.to_str().unwrap(),
                "--no-progress",
            ])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The event: segment `round` is complete in the checkpoint and the next has files.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cp = std::fs::read_to_string(&checkpoint).unwrap_or_default();
            let done = cp.matches("\"State\": \"Table completed\"").count() as u32;
            if done >= round && !segment_files(round + 1).is_empty() {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before the kill"
            );
            assert!(
                Instant::now() < deadline,
                "segment {round} never finished\n{cp}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kept.extend(segment_files(round));
    }
    let out = run_ok(&task, &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.matches("segment already loaded; skipping").count(),
        2,
        "{log}"
    );
    for (f, modified) in &kept {
        let now = std::fs::metadata(lake.join(f)).unwrap().modified().unwrap();
        assert_eq!(&now, modified, "{f} of a finished segment was rewritten");
    }
    let all = loaded(&lake, "q/big");
    assert_eq!(all.len(), 400_000);
    let want = source_rows(&client, "SELECT id::text, v FROM q.big").await;
    assert_eq!(all, want);
}

/// A declaratively partitioned PostgreSQL table in `full-load-and-cdc` with `partitions-auto`:
/// its changes — in each partition, and rows an UPDATE moves from one partition to the other —
/// are written under the table's own name (the publication publishes via the partition root)
/// and replay to the source. A publication that publishes it through its partitions, whose
/// changes the task would never see, is refused by `validate` and `run` with the fix.
#[tokio::test]
async fn postgres_partitioned_table_streams_its_changes_under_its_own_name() {
    use crate::cdc::{assert_matches_source, cdc_task, spawn, terminate, wait_for};
    let db = "seg_part_cdc";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA c;
             CREATE TABLE c.p (id bigint PRIMARY KEY, rev int NOT NULL, v text) PARTITION BY RANGE (id);
             CREATE TABLE c.p_low PARTITION OF c.p FOR VALUES FROM (MINVALUE) TO (1000);
             CREATE TABLE c.p_high PARTITION OF c.p FOR VALUES FROM (1000) TO (MAXVALUE);
             INSERT INTO c.p SELECT g, 0, 'v' || g FROM generate_series(1, 2000) g;
             CREATE PUBLICATION by_leaf FOR TABLE c.p;",
        )
        .await
        .unwrap();
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1\nCdcMinFileSize = 8",
        "",
    );
    let select = r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"c","table-name":"%"},"rule-action":"include"}"#;
    let parts = r#"{"rule-type":"table-settings","rule-id":"2","rule-name":"2","object-locator":{"schema-name":"c","table-name":"p"},"parallel-load":{"type":"partitions-auto"}}"#;
    set_mapping(&task, &format!("{select},{parts}"));
    let text = std::fs::read_to_string(&task.path).unwrap();
    let by_leaf = text.replace(
        "[target]",
        "[source.settings]\nPublicationName = \"by_leaf\"\n[target]",
    );
    let leaf_task = task.dir.path().join("by-leaf.toml");
    std::fs::write(&leaf_task, by_leaf).unwrap();
    for command in ["validate", "run"] {
        let out = tributary(&[command, "--config", leaf_task.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {text}");
        assert!(
            text.contains("through its partitions")
                && text.contains(
                    "ALTER PUBLICATION \"by_leaf\" SET (publish_via_partition_root = true)"
                ),
            "{command}: {text}"
        );
    }

    let mut child = spawn(&task, 0);
    wait_for(&task, 0, &mut child, 60, "the load", |fs| {
        fs.iter().filter(|f| f.contains("/LOAD")).count() >= 2
    });
    client
        .batch_execute(
            "INSERT INTO c.p VALUES (5000, 0, 'new high'), (-5, 0, 'new low');
             UPDATE c.p SET rev = rev + 1, v = 'upd' WHERE id IN (10, 1500);
             UPDATE c.p SET id = id + 3000, rev = rev + 1 WHERE id BETWEEN 20 AND 24;
             UPDATE c.p SET id = id - 2000, rev = rev + 1 WHERE id BETWEEN 1700 AND 1704;
             DELETE FROM c.p WHERE id IN (30, 1800);
             INSERT INTO c.p VALUES (999999, 0, 'last');",
        )
        .await
        .unwrap();
    let lake = task.lake();
    wait_for(&task, 0, &mut child, 60, "the last change", |fs| {
        fs.iter()
            .filter(|f| f.starts_with("c/p/") && !f.contains("LOAD"))
            .any(|f| std::fs::read_to_string(lake.join(f)).is_ok_and(|t| t.contains("999999")))
    });
    terminate(&task, 0, child);
    assert!(
        files(&lake)
            .iter()
            .all(|f| !f.contains("p_low/2") && !f.contains("p_high/2")),
        "changes written under a partition's name: {:?}",
        files(&lake)
    );
    assert_matches_source(&client, &lake, "c.p", &["id", "rev", "v"]).await;
}
