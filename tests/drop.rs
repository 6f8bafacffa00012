//! `tributary drop`: after a CDC task ran, `drop --yes --files` leaves no slot, publication,
//! heartbeat table, state or files behind; without `--yes` and without a terminal it removes
//! nothing; a second `drop` finds nothing left. MySQL keeps nothing on the server.

use std::process::{Command, Output, Stdio};

use mysql_async::prelude::Queryable;

use crate::cdc::{cdc_task, spawn, terminate, wait_for, wait_streaming};
use crate::common::*;
use crate::mysql::{my_db, my_task_at, my_url};

/// `tributary drop --config TASK extra...` with stdin closed (no terminal).
fn drop_task(task: &Task, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["drop", "--config", task.path.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// stdout and stderr of `out`.
fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Counts of the task's slot, publication and heartbeat table on the server.
async fn source_objects(client: &tokio_postgres::Client, db: &str) -> Vec<Row> {
    let name = format!("tributary_t_{db}");
    query_rows(
        client,
        &format!(
            "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{name}')::text,
                    (SELECT count(*) FROM pg_publication WHERE pubname = '{name}')::text,
                    (SELECT count(*) FROM pg_tables WHERE tablename = 'awsdms_heartbeat')::text"
        ),
    )
    .await
}

#[tokio::test]
async fn drop_removes_the_slot_publication_heartbeat_state_and_files() {
    let db = "drop_pg";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA c; CREATE TABLE c.t (id int PRIMARY KEY, v text);
             INSERT INTO c.t VALUES (1, 'a'), (2, 'b');",
        )
        .await
        .unwrap();
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    let toml = std::fs::read_to_string(&task.path).unwrap().replace(
        "[target]",
        "[source.settings]\nHeartbeatEnable = true\n[target]",
    );
    std::fs::write(&task.path, toml).unwrap();
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute("INSERT INTO c.t VALUES (3, 'c')")
        .await
        .unwrap();
    wait_for(&task, 0, &mut child, 60, "a CDC file", |fs| {
        fs.iter()
            .any(|f| f.starts_with("c/t/") && !f.contains("LOAD"))
    });
    // While the task streams, its slot is in use: drop refuses and removes nothing.
    let busy = drop_task(&task, &["--yes"]);
    assert_eq!(busy.status.code(), Some(2), "{}", text(&busy));
    assert!(text(&busy).contains("is in use"), "{}", text(&busy));
    terminate(&task, 0, child);
    let state = task.dir.path().join("tributary-state");
    assert!(state.join(format!("t-{db}")).exists());
    assert_eq!(
        source_objects(&client, db).await,
        vec![vec![Some("1".into()), Some("1".into()), Some("1".into())]]
    );

    // No terminal and no --yes: the plan is shown, nothing is removed.
    let asked = drop_task(&task, &["--files"]);
    assert_eq!(asked.status.code(), Some(1), "{}", text(&asked));
    for part in [
        "replication slot tributary_t_drop_pg",
        "publication tributary_t_drop_pg",
        "heartbeat table public.awsdms_heartbeat",
        "object(s) under",
        "--yes",
    ] {
        assert!(text(&asked).contains(part), "{part:?} in\n{}", text(&asked));
    }
    assert!(state.join(format!("t-{db}")).exists());

    let out = drop_task(&task, &["--yes", "--files"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("task t-drop_pg dropped"),
        "{}",
        text(&out)
    );
    assert_eq!(
        source_objects(&client, db).await,
        vec![vec![Some("0".into()), Some("0".into()), Some("0".into())]]
    );
    assert!(!state.join(format!("t-{db}")).exists());
    assert_eq!(files(&task.lake()), Vec::<String>::new());

    let again = drop_task(&task, &["--yes", "--files"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("nothing left to drop for task t-drop_pg"),
        "{}",
        text(&again)
    );
}

#[tokio::test]
async fn drop_on_mysql_removes_the_state_and_keeps_the_files_unless_asked() {
    let db = "drop_my";
    my_db(db)
        .await
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let task = my_task_at(&my_url(db), db, "full-load", "", "");
    run_ok(&task, &[]);
    let out = drop_task(&task, &["--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("kept: the files on the target"),
        "{}",
        text(&out)
    );
    assert!(files(&task.lake()).iter().any(|f| f.contains("LOAD")));
    let again = drop_task(&task, &["--yes"]);
    assert!(
        text(&again).contains("nothing left to drop"),
        "{}",
        text(&again)
    );
}
