//! Change capture that never stops for what it can survive: the task's connections killed
//! several times mid-stream, its database server restarted, its S3 endpoint gone for a minute.
//! The task must keep running throughout, and replaying its files must still equal the source,
//! every change exactly once (per-row revision counters catch a lost or repeated change).

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::cdc::{
    cdc_task, fence_stop_and_compare, log, spawn, terminate, wait_streaming, workload, SCHEMA,
};
use crate::common::s3_front::{Fault, Rule, S3Front};
use crate::common::servers::{PrivateMaria, PrivatePg};
use crate::common::*;

/// The log line of each interrupted session.
const RESUMED: &str = "resuming from the last durable position";

/// Points `task` at `url` instead of the shared server's database `db`.
fn use_source(task: &Task, db: &str, url: &str) {
    let text = std::fs::read_to_string(&task.path).unwrap();
    std::fs::write(&task.path, text.replace(&pg_url(db), url)).unwrap();
}

/// Waits until the task streams from the server again: a walsender of ours is streaming that
/// is none of the `killed` ones (a terminated backend may still be listed for a moment).
async fn await_walsender(
    client: &tokio_postgres::Client,
    task: &Task,
    child: &mut Child,
    killed: &[i32],
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication
                 WHERE application_name LIKE 'tributary%' AND state = 'streaming'
                   AND NOT pid = ANY($1)",
                &[&killed],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        still_running(task, child);
        assert!(
            Instant::now() < deadline,
            "the task never streamed again\n{}",
            log(task, 0)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Terminates every session of the task on the server (walsender and helper connections) and
/// returns their process ids.
async fn kill_tributary_sessions(client: &tokio_postgres::Client) -> Vec<i32> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity
             WHERE application_name LIKE 'tributary%' AND pid <> pg_backend_pid()
               AND pg_terminate_backend(pid)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Asserts the task is still running.
fn still_running(task: &Task, child: &mut Child) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the task exited ({status})\n{}", log(task, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cdc_survives_killed_connections_and_a_server_restart() {
    let pg = PrivatePg::start();
    let db = "res_pg";
    connect(&pg.url("postgres"))
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let mut client = connect(&pg.url(db)).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    use_source(&task, db, &pg.url(db));
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    let mut killed = Vec::new();
    for round in 0..3 {
        workload(&client, round).await;
        if round == 1 {
            // A column of a type the task has not seen: the next Relation message needs a
            // catalog read on a helper connection that was just killed.
            client
                .batch_execute(
                    "ALTER TABLE c.items ADD COLUMN note uuid;
                     UPDATE c.items SET rev = rev + 1, note = gen_random_uuid() WHERE id <= 3",
                )
                .await
                .unwrap();
        }
        await_walsender(&client, &task, &mut child, &killed).await;
        let now = kill_tributary_sessions(&client).await;
        assert!(
            !now.is_empty(),
            "round {round}: nothing to kill\n{}",
            log(&task, 0)
        );
        killed.extend(now);
        still_running(&task, &mut child);
    }
    await_walsender(&client, &task, &mut child, &killed).await;
    workload(&client, 3).await;
    pg.restart();
    client = connect(&pg.url(db)).await;
    workload(&client, 4).await;
    fence_stop_and_compare(&client, &task, 0, child).await;
    let text = log(&task, 0);
    assert!(text.matches(RESUMED).count() >= 4, "{text}");
    // pg_terminate_backend is named as such, not as a failure to connect.
    assert!(
        text.contains("terminated by an administrator (pg_terminate_backend"),
        "{text}"
    );
    assert!(!text.contains("sslmode"), "{text}");
    let status = tributary(&["status", "--config", task.path.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let items = json["TableStatistics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["TableName"] == "items")
        .cloned()
        .unwrap();
    assert_eq!(items["Ddls"], 1, "one ALTER, counted once: {items}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_cdc_survives_killed_dumps_and_a_server_restart() {
    use crate::mysql::{assert_matches_source, fence, my_task_at, workload, SCHEMA};
    let my = PrivateMaria::start();
    let db = "res_my";
    let open = |url: String| async move {
        mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
            .await
            .unwrap()
    };
    open(my.url(""))
        .await
        .query_drop(format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let mut conn = open(my.url(db)).await;
    conn.query_drop(SCHEMA).await.unwrap();
    let task = my_task_at(
        &my.url(db),
        db,
        "full-load-and-cdc",
        "CdcMaxBatchInterval = 1",
        "",
    );
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    let mut killed = Vec::new();
    for round in 0..3 {
        workload(&mut conn, round).await;
        for d in await_dumps(&mut conn, &task, &mut child, &killed).await {
            // The dump may already be gone when it is killed.
            let _ = conn.query_drop(format!("KILL CONNECTION {d}")).await;
            killed.push(d);
        }
        still_running(&task, &mut child);
    }
    await_dumps(&mut conn, &task, &mut child, &killed).await;
    workload(&mut conn, 3).await;
    drop(conn);
    my.restart();
    let mut conn = open(my.url(db)).await;
    workload(&mut conn, 4).await;
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    terminate(&task, 0, child);
    for (table, cols) in [
        ("items", &["id", "rev", "name", "amount"][..]),
        ("plain", &["id", "rev", "v"][..]),
    ] {
        assert_matches_source(&mut conn, &task, db, table, cols).await;
    }
    let text = log(&task, 0);
    assert!(text.matches(RESUMED).count() >= 4, "{text}");
    // A killed dump reads as ended on the server, not as a failure to connect.
    assert!(text.contains("by an administrator"), "{text}");
}

/// Waits until the task reads the binlog again and returns the ids of its dump sessions that are
/// none of the `killed` ones (a killed session may still be listed for a moment).
async fn await_dumps(
    conn: &mut mysql_async::Conn,
    task: &Task,
    child: &mut Child,
    killed: &[String],
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let dumps = crate::mysql::my_rows(
            conn,
            "SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .await;
        let live: Vec<String> = dumps
            .into_iter()
            .filter_map(|d| d[0].clone())
            .filter(|d| !killed.contains(d))
            .collect();
        if !live.is_empty() {
            return live;
        }
        still_running(task, child);
        assert!(
            Instant::now() < deadline,
            "the task never read the binlog again\n{}",
            log(task, 0)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Copies every object of the bucket into `dir` (the replay helpers read a folder).
async fn download(store: &Arc<dyn ObjectStore>, dir: &Path) {
    for key in crate::s3::keys(store).await {
        let bytes = store
            .get(&key.as_str().into())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let path = dir.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Waits until fence row `n` is in a CDC file in the bucket (the task keeps running).
async fn await_fence_in(store: &Arc<dyn ObjectStore>, task: &Task, child: &mut Child, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        for key in crate::s3::keys(store).await {
            if key.starts_with("c/fence/") {
                let bytes = store.get(&key.as_str().into()).await.unwrap().bytes().await;
                if String::from_utf8_lossy(&bytes.unwrap())
                    .lines()
                    .any(|l| l.ends_with(&format!(",{n},0")))
                {
                    return;
                }
            }
        }
        still_running(task, child);
        assert!(Instant::now() < deadline, "no fence {n}\n{}", log(task, 0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_into_s3_survives_a_sixty_second_outage() {
    let client = fresh_db("res_s3").await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (bucket, store) = crate::s3::bucket("lake-res").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    let task = cdc_task(
        "res_s3",
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    let text = std::fs::read_to_string(&task.path).unwrap();
    let local = format!("url = \"file://{}\"", task.lake().display());
    let s3 = crate::s3::target(&bucket, &front.url, "");
    std::fs::write(&task.path, text.replace(&local, &s3)).unwrap();
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    workload(&client, 0).await;
    // The next request starts a minute during which S3 drops every connection.
    front.add(Rule::new("", Fault::Outage(Duration::from_secs(60))).times(1));
    workload(&client, 1).await;
    client
        .batch_execute("INSERT INTO c.fence VALUES (1, 0)")
        .await
        .unwrap();
    await_fence_in(&store, &task, &mut child, 1).await;
    assert_eq!(front.count("outage"), 1, "the outage happened");
    assert!(front.count("refused") > 0, "requests met the outage");
    terminate(&task, 0, child);
    download(&store, &task.lake()).await;
    let lake = task.lake();
    for (table, cols) in [
        ("c.items", &["id", "rev", "name", "amount", "big"][..]),
        ("c.plain", &["id", "rev", "v"][..]),
    ] {
        crate::cdc::assert_matches_source(&client, &lake, table, cols).await;
    }
}
