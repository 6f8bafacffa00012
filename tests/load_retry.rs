//! A source connection lost in the middle of a full load (the reading backend terminated, the
//! reading MariaDB session killed) is ridden out: that table is read again from the same
//! snapshot, and every row is written once.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::common::*;

/// Rows in the test tables: enough that a read is still running when the test kills it.
const ROWS: i64 = 600_000;

/// Counts the data rows of every LOAD file under `folder/` (`header`: files start with one).
fn rows_in(lake: &std::path::Path, folder: &str, header: bool) -> usize {
    files(lake)
        .iter()
        .filter(|f| f.starts_with(&format!("{folder}/")))
        .map(|f| {
            let text = std::fs::read_to_string(lake.join(f)).unwrap();
            text.lines().count() - usize::from(header)
        })
        .sum()
}

/// PostgreSQL: the backend running the table's COPY is terminated once it is streaming.
#[tokio::test]
async fn postgres_full_load_survives_a_terminated_reader() {
    let db = "retry_pg";
    let client = fresh_db(db).await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA r;
             CREATE TABLE r.big (id int PRIMARY KEY, v text);
             INSERT INTO r.big SELECT i, repeat('x', 40) || i FROM generate_series(1, {ROWS}) i;"
        ))
        .await
        .unwrap();
    let task = new_task(db, "r", None, "", "");
    let path = task.path.to_str().unwrap().to_owned();
    let run = tokio::task::spawn_blocking(move || {
        tributary(&["run", "--config", &path, "--no-progress"])
    });
    let admin = connect(&pg_url(db)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        let n: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE query LIKE 'COPY (SELECT%r%big%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 || run.is_finished() || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let out = run.await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(killed, 1, "the COPY was never seen running\n{log}");
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("terminated by an administrator (pg_terminate_backend"),
        "the termination is named\n{log}"
    );
    assert!(
        log.contains("loading it again from the same snapshot"),
        "{log}"
    );
    assert_eq!(rows_in(&task.lake(), "r/big", false), ROWS as usize);
}

/// MariaDB: the session reading the table is killed; another snapshot session reads it again.
#[tokio::test]
async fn mysql_full_load_survives_a_killed_reader() {
    let db = "retry_my";
    let url = crate::mysql::my_url(db);
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(format!(
        "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(60));
         INSERT INTO big SELECT seq, CONCAT(REPEAT('x', 40), seq) FROM seq_1_to_{ROWS};"
    ))
    .await
    .unwrap();
    let task = crate::mysql::my_task_at(&url, db, "full-load", "", "");
    let path = task.path.to_str().unwrap().to_owned();
    let run = tokio::task::spawn_blocking(move || {
        tributary(&["run", "--config", &path, "--no-progress"])
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        let ids: Vec<u64> = conn
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST
                 WHERE INFO LIKE 'SELECT %big%' AND ID <> CONNECTION_ID()",
                (),
            )
            .await
            .unwrap();
        if let Some(id) = ids.first() {
            conn.query_drop(format!("KILL {id}")).await.unwrap();
            break true;
        }
        if run.is_finished() || Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let out = run.await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(killed, "the read was never seen running\n{log}");
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("by an administrator"),
        "the KILL is named\n{log}"
    );
    assert!(
        log.contains("loading it again from the same snapshot"),
        "{log}"
    );
    assert_eq!(
        rows_in(&task.lake(), &format!("{db}/big"), true),
        ROWS as usize
    );
}
