//! What an operator meets around a run: `status` of a failed task exits 1, output into a closed
//! pipe (`status --json | head -c1`) is not a panic, a TOML mistake is reported at its line and
//! column, and a missing AWS region or credential is one line with the fix (aws-config's
//! per-provider warnings stay quiet). The Prometheus conventions of the metrics are checked in
//! `cdc::source_truncate_deletes_the_tables_objects_then_streams_on`.

use std::process::{Command, Output, Stdio};

use crate::common::*;

/// `tributary ARGS` with stdout into a pipe whose reader is already gone.
fn into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// stderr of `out`.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn status_of_a_failed_task_exits_1_and_no_command_panics_on_a_closed_pipe() {
    fresh_db("op_failed").await;
    let task = new_task("op_failed", "public", None, "", "");
    // A database that does not exist fails the run after its state was written.
    let text = std::fs::read_to_string(&task.path)
        .unwrap()
        .replace("/op_failed\"", "/op_no_such_db\"");
    std::fs::write(&task.path, text).unwrap();
    let path = task.path.to_str().unwrap();
    let run = tributary(&["run", "--config", path, "--no-progress"]);
    assert!(!run.status.success(), "{}", stderr(&run));
    for json in [false, true] {
        let mut args = vec!["status", "--config", path];
        if json {
            args.push("--json");
        }
        let out = tributary(&args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("failed"));
    }
    for args in [
        vec!["status", "--config", path, "--json"],
        vec!["status", "--config", path],
        vec!["validate", "--config", path],
        vec!["drop", "--config", path],
        vec!["--help"],
    ] {
        let out = into_closed_pipe(&args);
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
}

#[test]
fn a_toml_mistake_is_reported_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task.toml");
    std::fs::write(&path, "[task]\nid = \"t\"\nmigration_type = full-load\n").unwrap();
    let out = tributary(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid task file at line 3, column 18: "),
        "{}",
        stderr(&out)
    );
}

/// A task into `s3://bucket` with `target` lines, run with no AWS settings at all; instance
/// metadata is pointed at a closed loopback port, so its lookups fail as they do off EC2.
fn run_without_aws(target: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let task = new_task("op_aws", "public", Some(target), "", "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.args([
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", dir.path())
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
        .env_remove("TRIBUTARY_LOG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_missing_aws_region_or_credential_is_one_line_with_the_fix() {
    fresh_db("op_aws").await;
    let out = run_without_aws("url = \"s3://some-bucket\"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("error: no AWS region for s3://some-bucket"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("export AWS_REGION="), "{}", lines[0]);

    // A region (here: any, for an S3-compatible endpoint) but no credentials.
    let out = run_without_aws("url = \"s3://some-bucket\"\nendpoint = \"http://127.0.0.1:1\"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("error: no AWS credentials for s3://some-bucket"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("AWS_PROFILE"), "{}", lines[0]);
}
