//! Interrupted full loads: `kill -9` mid-table, then the same command resumes; finished tables
//! are kept, the interrupted one is redone from its start, and every row appears exactly once.

use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test]
async fn kill_9_mid_load_then_resume_writes_every_row_once() {
    let client = fresh_db("resume").await;
    client
        .batch_execute(
            "CREATE SCHEMA k;
             CREATE TABLE k.small AS SELECT g AS id FROM generate_series(1, 100) g;
             CREATE TABLE k.big AS SELECT g AS id, repeat(md5(g::text), 4) AS v FROM generate_series(1, 400000) g;",
        )
        .await
        .unwrap();
    // Small files so the big table is mid-way through many LOAD files when it is killed.
    let task = new_task(
        "resume",
        "k",
        None,
        "MaxFileSize = 256",
        "FullLoadSettings.MaxFullLoadSubTasks = 1",
    );
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
    // Wait for the event "the big table has finished files" (polling the folder), then kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = files(&task.lake())
            .iter()
            .filter(|f| f.starts_with("k/big/"))
            .count();
        if done >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no big-table files appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let checkpoint = std::fs::read_to_string(
        task.dir
            .path()
            .join("tributary-state/t-resume/checkpoint.json"),
    )
    .unwrap();
    assert!(
        checkpoint.contains("\"status\": \"running\""),
        "{checkpoint}"
    );

    let out = run_ok(&task, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming"), "{stderr}");
    let big: Vec<String> = files(&task.lake())
        .into_iter()
        .filter(|f| f.starts_with("k/big/"))
        .collect();
    for (i, f) in big.iter().enumerate() {
        assert_eq!(
            f,
            &format!("k/big/LOAD{:08X}.csv", i + 1),
            "contiguous numbering after resume"
        );
    }
    for (table, total) in [("big", 400_000usize), ("small", 100)] {
        let mut ids = Vec::new();
        for f in files(&task.lake())
            .iter()
            .filter(|f| f.starts_with(&format!("k/{table}/")))
        {
            let text = std::fs::read_to_string(task.lake().join(f)).unwrap();
            ids.extend(
                parse_csv(&text, ',', "")
                    .into_iter()
                    .map(|r| r[0].clone().unwrap().parse::<usize>().unwrap()),
            );
        }
        ids.sort_unstable();
        assert_eq!(ids.len(), total, "{table}: every row exactly once");
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "{table}: no duplicates or gaps"
        );
    }
    assert!(
        !files(&task.lake()).iter().any(|f| f.contains(".tmp-")),
        "no temporary files left"
    );
}
