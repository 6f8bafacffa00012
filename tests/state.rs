//! State in the object store and one writer per task: `kill -9` resumes with the checkpoint in
//! S3 (moto), two processes of one task started at once (one is fenced), a process whose lease
//! is taken behind its back (it stops without writing), the same lease on a local folder, and a
//! resumed run refusing a changed output setting.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::cdc::{
    cdc_task, fence_stop_and_compare, log, spawn, terminate, wait_for, wait_streaming, workload,
    SCHEMA,
};
use crate::common::*;

/// Settings of the CDC tasks here: many small files, a short interval.
const SMALL_FILES: &str =
    "AddColumnName = true\nCdcMaxBatchInterval = 1\nCdcMinFileSize = 8\nMaxFileSize = 64";

/// A `full-load-and-cdc` task of `db` whose state is `s3://bucket/st` (reached through the
/// test S3 server, like a target would be), with `extra` `[task]` lines.
fn s3_state_task(db: &str, bucket: &str, extra: &str) -> Task {
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        SMALL_FILES,
        &format!("state = \"s3://{bucket}/st\"\n{extra}"),
    );
    let text = std::fs::read_to_string(&task.path).unwrap().replacen(
        "[target.settings]",
        &format!(
            "endpoint = \"{}\"\nregion = \"us-east-1\"\n[target.settings]",
            env("TRIBUTARY_TEST_S3_ENDPOINT")
        ),
        1,
    );
    std::fs::write(&task.path, text).unwrap();
    task
}

/// The task's checkpoint object as JSON.
async fn state_object(store: &dyn ObjectStore, db: &str) -> serde_json::Value {
    let key = ObjPath::from(format!("st/t-{db}/checkpoint.json"));
    let bytes = store.get(&key).await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Waits for `child` to exit (failing after `secs`) and returns its status.
fn wait_exit(task: &Task, n: usize, child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the process did not exit\n{}", log(task, n));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn kill_9_with_state_in_s3_still_writes_every_change_once() {
    let db = "st_kill";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (bucket, store) = crate::s3::bucket("state-kill").await;
    let task = s3_state_task(db, &bucket, "");
    let mut next = kill_times();
    let mut child = spawn(&task, 0);
    workload(&client, 0).await;
    wait_for(&task, 0, &mut child, 60, "load files", |fs| {
        fs.iter().filter(|f| f.contains("/LOAD")).count() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    for n in 1..3 {
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
    // The killed holder ran on this machine and its pid is gone: the next run takes over at once.
    let child = spawn(&task, 3);
    fence_stop_and_compare(&client, &task, 3, child).await;
    assert!(
        log(&task, 3).contains("taking over the lease"),
        "{}",
        log(&task, 3)
    );
    assert!(
        !task.dir.path().join("tributary-state").exists(),
        "state written to a local folder"
    );
    let state = state_object(store.as_ref(), db).await;
    assert_eq!(state["status"], "stopped", "{state}");
    assert!(
        state.get("lease").is_none(),
        "lease kept after a clean stop: {state}"
    );
}

#[tokio::test]
async fn two_processes_of_one_task_started_at_once_one_is_fenced() {
    let db = "st_two";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (bucket, store) = crate::s3::bucket("state-two").await;
    let task = s3_state_task(db, &bucket, "");
    let mut a = spawn(&task, 0);
    let mut b = spawn(&task, 1);
    // Exactly one exits, refused; the other streams.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut winner, wn, loser_status, ln) = loop {
        if let Some(s) = a.try_wait().unwrap() {
            break (b, 1, s, 0);
        }
        if let Some(s) = b.try_wait().unwrap() {
            break (a, 0, s, 1);
        }
        assert!(
            Instant::now() < deadline,
            "neither process was fenced\n{}\n{}",
            log(&task, 0),
            log(&task, 1)
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    let refused = log(&task, ln);
    assert_eq!(loser_status.code(), Some(1), "{refused}");
    let holder = format!("held by pid {} on host ", winner.id());
    assert!(
        refused.contains("is already running") && refused.contains(&holder),
        "{refused}"
    );
    assert!(
        refused.contains("since ") && refused.contains("SIGTERM"),
        "{refused}"
    );
    wait_streaming(&task, wn, &mut winner);
    assert!(winner.try_wait().unwrap().is_none(), "{}", log(&task, wn));
    // A third process while the first runs (a resume of a live task) is refused the same way.
    let third = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(third.status.code(), Some(1), "{}", stderr(&third));
    assert!(stderr(&third).contains(&holder), "{}", stderr(&third));
    let state = state_object(store.as_ref(), db).await;
    assert_eq!(state["lease"]["pid"], winner.id(), "{state}");
    workload(&client, 0).await;
    fence_stop_and_compare(&client, &task, wn, winner).await;
}

#[tokio::test]
async fn a_process_whose_lease_was_taken_stops_without_writing() {
    let db = "st_lost";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (bucket, store) = crate::s3::bucket("state-lost").await;
    let task = s3_state_task(db, &bucket, "lease_ttl_seconds = 60");
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    // Another writer replaces the state object behind the process's back.
    let mut state = state_object(store.as_ref(), db).await;
    state["lease"]["pid"] = 4_000_000.into();
    state["lease"]["session"] = "intruder".into();
    let intruder = serde_json::to_vec_pretty(&state).unwrap();
    let key = ObjPath::from(format!("st/t-{db}/checkpoint.json"));
    store
        .put(&key, PutPayload::from(intruder.clone()))
        .await
        .unwrap();
    let lsn_before: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    // Changes after the loss: none may land in a file, and the slot may not move past them.
    client
        .batch_execute(
            "INSERT INTO c.fence VALUES (77, 0); INSERT INTO c.plain VALUES (990001, 0, 'after')",
        )
        .await
        .unwrap();
    let status = wait_exit(&task, 0, &mut child, 60);
    let text = log(&task, 0);
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("lost its lease") && text.contains("pid 4000000"),
        "{text}"
    );
    for f in files(&task.lake()) {
        let body = std::fs::read_to_string(task.lake().join(&f)).unwrap_or_default();
        assert!(
            !body.contains("990001") && !body.contains(",77,0"),
            "{f} written after the loss"
        );
    }
    let now = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(
        now.as_ref(),
        intruder.as_slice(),
        "the state was overwritten after the loss"
    );
    let confirmed: bool = client
        .query_one(
            "SELECT confirmed_flush_lsn <= $1::text::pg_lsn FROM pg_replication_slots WHERE database = $2",
            &[&lsn_before, &db],
        )
        .await
        .unwrap()
        .get(0);
    assert!(confirmed, "the slot was confirmed past the loss");
}

#[tokio::test]
async fn a_second_process_on_a_local_state_folder_is_refused() {
    let db = "st_local";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let task = cdc_task(db, "full-load-and-cdc", SMALL_FILES, "");
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    let second = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("held by pid {} on host ", child.id())),
        "{err}"
    );
    workload(&client, 0).await;
    fence_stop_and_compare(&client, &task, 0, child).await;
}

#[tokio::test]
async fn a_resumed_run_refuses_a_changed_bucket_folder() {
    let db = "st_folder";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        &format!("{SMALL_FILES}\nBucketFolder = \"raw\""),
        "",
    );
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    terminate(&task, 0, child);
    let text = std::fs::read_to_string(&task.path).unwrap();
    std::fs::write(
        &task.path,
        text.replace("BucketFolder = \"raw\"", "BucketFolder = \"raw2\""),
    )
    .unwrap();
    let before = files(&task.lake());
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("BucketFolder: \"raw\" → \"raw2\""), "{err}");
    assert!(
        err.contains("--restart") && err.contains("put the setting back"),
        "{err}"
    );
    assert_eq!(files(&task.lake()), before, "a refused run wrote files");
    // --restart starts a new run in the new folder.
    let mut child = crate::cdc::spawn_with(&task, 1, &["--restart"]);
    wait_streaming(&task, 1, &mut child);
    assert!(
        files(&task.lake())
            .iter()
            .any(|f| f.starts_with("raw2/c/items/LOAD")),
        "{:?}",
        files(&task.lake())
    );
    terminate(&task, 1, child);
}

/// `tributary status` of `task`: (text, JSON).
fn status_of(task: &Task) -> (String, serde_json::Value) {
    let path = task.path.to_str().unwrap();
    let text = tributary(&["status", "--config", path]);
    let json = tributary(&["status", "--config", path, "--json"]);
    let json =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&json)));
    (String::from_utf8_lossy(&text.stdout).into_owned(), json)
}

/// `status` names the lease holder while a run holds the lease and "free" after it, for state
/// in S3 (with the renewal and expiry) and in a local folder (a lock that lasts as long as its
/// process); an S3 lease not renewed in time is shown as expired.
#[tokio::test]
async fn status_shows_the_lease_holder_in_s3_and_in_a_folder() {
    let db = "st_show";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (bucket, store) = crate::s3::bucket("state-show").await;
    let in_s3 = s3_state_task(db, &bucket, "lease_ttl_seconds = 60");
    let mut child = spawn(&in_s3, 0);
    wait_streaming(&in_s3, 0, &mut child);
    let (text, json) = status_of(&in_s3);
    let held = format!("lease: held by pid {} on host ", child.id());
    assert!(
        text.contains(&held) && text.contains("valid until "),
        "{text}"
    );
    assert_eq!(json["Lease"]["State"], "held", "{json}");
    assert_eq!(json["Lease"]["Pid"], child.id(), "{json}");
    assert!(json["Lease"]["Until"].is_string(), "{json}");
    terminate(&in_s3, 0, child);
    let (text, json) = status_of(&in_s3);
    assert!(text.contains("lease: free"), "{text}");
    assert!(json["Lease"].is_null(), "{json}");
    // A holder elsewhere that stopped renewing: expired, and said so.
    let mut state = state_object(store.as_ref(), db).await;
    state["lease"] = serde_json::json!({
        "host": "elsewhere", "boot": "b", "pid": 4_000_000, "session": "s",
        "since": "2020-01-01T00:00:00Z", "renewed": "2020-01-01T00:00:30Z", "ttl_seconds": 60
    });
    let key = ObjPath::from(format!("st/t-{db}/checkpoint.json"));
    store
        .put(&key, PutPayload::from(serde_json::to_vec(&state).unwrap()))
        .await
        .unwrap();
    let (text, json) = status_of(&in_s3);
    assert!(
        text.contains("lease: expired at 2020-01-01T00:01:30Z (was held by pid 4000000 on host elsewhere since 2020-01-01T00:00:00Z"),
        "{text}"
    );
    assert_eq!(json["Lease"]["State"], "expired", "{json}");

    let db = "st_show_dir";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let in_folder = cdc_task(db, "full-load-and-cdc", SMALL_FILES, "");
    let mut child = spawn(&in_folder, 0);
    wait_streaming(&in_folder, 0, &mut child);
    let (text, json) = status_of(&in_folder);
    let held = format!("lease: held by pid {} on host ", child.id());
    assert!(
        text.contains(&held) && text.contains("a lock that ends with that process"),
        "{text}"
    );
    assert_eq!(json["Lease"]["State"], "held", "{json}");
    assert!(json["Lease"]["Until"].is_null(), "{json}");
    terminate(&in_folder, 0, child);
    let (text, _) = status_of(&in_folder);
    assert!(text.contains("lease: free"), "{text}");
}

/// S3 applies a conditional write of the state but its reply is lost, so the client retries:
/// the retry fails its own condition (If-None-Match / If-Match), finds the object holding
/// exactly its bytes, and goes on — the writer does not fence itself, and no checkpoint is lost
/// (the run resumes and every change lands once). Multi-threaded: the front serves while the
/// test thread waits on the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_to_a_conditional_state_write_neither_fences_nor_loses_the_checkpoint() {
    use crate::common::s3_front::{Fault, Rule, S3Front};
    let db = "st_reply";
    let client = fresh_db(db).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (bucket, store) = crate::s3::bucket("state-reply").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    // The creating write (If-None-Match) and two later ones (If-Match).
    front.add(
        Rule::new("PUT", Fault::LoseReply)
            .with("checkpoint.json")
            .times(1),
    );
    front.add(
        Rule::new("PUT", Fault::LoseReply)
            .with("checkpoint.json")
            .skip(3)
            .times(2),
    );
    let task = s3_state_task(db, &bucket, "");
    let text = std::fs::read_to_string(&task.path).unwrap().replace(
        &format!("endpoint = \"{}\"", env("TRIBUTARY_TEST_S3_ENDPOINT")),
        &format!("endpoint = \"{}\"", front.url),
    );
    std::fs::write(&task.path, text).unwrap();
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    workload(&client, 0).await;
    terminate(&task, 0, child);
    assert_eq!(
        front.count("lose:PUT"),
        3,
        "the faults happened\n{}",
        log(&task, 0)
    );
    let text = log(&task, 0);
    assert!(!text.contains("lost its lease"), "{text}");
    let state = state_object(store.as_ref(), db).await;
    assert_eq!(state["status"], "stopped", "{state}");
    assert!(state.get("lease").is_none(), "{state}");
    // The checkpoint is the run's: the next run resumes streaming from it.
    let child = spawn(&task, 1);
    workload(&client, 1).await;
    fence_stop_and_compare(&client, &task, 1, child).await;
    assert!(
        !log(&task, 1).contains("lost its lease"),
        "{}",
        log(&task, 1)
    );
}
