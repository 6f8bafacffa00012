//! Bad input: one clear line naming the cause and the fix, non-zero exit, secrets redacted,
//! nothing written.

use crate::common::*;

fn run_err(task: &Task) -> (i32, String) {
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"))
        .to_string();
    (out.status.code().unwrap_or(-1), line)
}

/// Rewrites the task's source URL.
fn with_source_url(task: &Task, url: &str) {
    let text = std::fs::read_to_string(&task.path).unwrap();
    let start = text.find("url = \"postgres").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    std::fs::write(
        &task.path,
        format!("{}url = \"{url}\"{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

#[tokio::test]
async fn wrong_password_is_named_and_redacted() {
    fresh_db("err_pw").await;
    let task = new_task("err_pw", "public", None, "", "");
    let url = env("TRIBUTARY_TEST_PG_USER_URL")
        .replace("tributary:tributary@", "tributary:not-the-Secret@");
    with_source_url(&task, &url);
    let (code, line) = run_err(&task);
    assert_eq!(code, 1);
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(line.contains("fix the user/password"), "{line}");
    assert!(!line.contains("not-the-Secret"), "password leaked: {line}");
    assert!(files(&task.lake()).is_empty());
}

/// A port nothing listens on: `run` and `validate` say so, name host and port, and do not
/// blame TLS.
#[tokio::test]
async fn unreachable_source_names_the_fix() {
    let task = new_task("err_unreach", "public", None, "", "");
    let port = free_port();
    with_source_url(
        &task,
        &format!("postgres://u:pw-secret@127.0.0.1:{port}/db"),
    );
    let (_, line) = run_err(&task);
    assert!(
        line.contains(&format!(
            "nothing listens on 127.0.0.1:{port} (connection refused)"
        )) && line.contains("start the PostgreSQL server, or fix the port"),
        "{line}"
    );
    assert!(
        !line.contains("pw-secret") && !line.contains("sslmode"),
        "{line}"
    );
    let problems = validate_problems(&task);
    assert!(
        problems.contains(&format!("nothing listens on 127.0.0.1:{port}")),
        "{problems}"
    );
}

/// A host name that does not resolve (`.invalid` never does): named as a DNS failure, with the
/// host, for `run` and `validate`.
#[tokio::test]
async fn a_host_name_that_does_not_resolve_is_named() {
    let task = new_task("err_dns", "public", None, "", "");
    with_source_url(
        &task,
        "postgres://u:pw-secret@db.tributary-test.invalid:5432/db",
    );
    let (code, line) = run_err(&task);
    assert_eq!(code, 1);
    assert!(
        line.contains("the host name \"db.tributary-test.invalid\" does not resolve")
            && line.contains("check the host name"),
        "{line}"
    );
    assert!(
        !line.contains("pw-secret") && !line.contains("sslmode"),
        "{line}"
    );
    let problems = validate_problems(&task);
    assert!(problems.contains("does not resolve"), "{problems}");
}

/// The same two causes for MySQL/MariaDB.
#[tokio::test]
async fn mysql_refused_and_unresolved_hosts_are_named() {
    let port = free_port();
    for (url, expect) in [
        (
            format!("mysql://u:pw-secret@127.0.0.1:{port}/db"),
            format!("nothing listens on 127.0.0.1:{port} (connection refused)"),
        ),
        (
            "mysql://u:pw-secret@db.tributary-test.invalid:3306/db".to_string(),
            "the host name \"db.tributary-test.invalid\" does not resolve".to_string(),
        ),
    ] {
        let task = crate::mysql::my_task_at(&url, "db", "full-load", "", "");
        let (code, line) = run_err(&task);
        assert_eq!(code, 1, "{line}");
        assert!(line.contains(&expect), "{line}");
        assert!(!line.contains("pw-secret"), "{line}");
        let problems = validate_problems(&task);
        assert!(problems.contains(&expect), "{problems}");
    }
}

/// A local port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tributary validate` of a task that must fail: its whole output.
fn validate_problems(task: &Task) -> String {
    let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    text
}

#[tokio::test]
async fn invalid_setting_exits_2_with_accepted_values() {
    let task = new_task("err_cfg", "public", None, "DataFormat = \"avro\"", "");
    let (code, line) = run_err(&task);
    assert_eq!(code, 2);
    assert!(
        line.contains("DataFormat") && line.contains("csv, parquet"),
        "{line}"
    );
    let task = new_task("err_cfg", "public", None, "MaxFileSiz = 10", "");
    let (code, line) = run_err(&task);
    assert_eq!(code, 2);
    assert!(line.contains("did you mean MaxFileSize"), "{line}");
}

#[tokio::test]
async fn missing_privilege_names_the_grant() {
    let client = fresh_db("err_priv").await;
    client
        .batch_execute(
            "CREATE SCHEMA x; CREATE TABLE x.secret AS SELECT 1 AS id;
             DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nopriv') THEN
               CREATE ROLE nopriv LOGIN PASSWORD 'nopriv'; END IF; END $$;
             GRANT USAGE ON SCHEMA x TO nopriv;",
        )
        .await
        .unwrap();
    let task = new_task("err_priv", "x", None, "", "");
    let url = pg_url("err_priv").replace("postgres@", "nopriv:nopriv@");
    with_source_url(&task, &url);
    let (_, line) = run_err(&task);
    assert!(
        line.contains("may not SELECT from x.secret") && line.contains("GRANT SELECT"),
        "{line}"
    );
    assert!(files(&task.lake()).is_empty());
}

#[tokio::test]
async fn missing_bucket_and_no_tables_are_explained() {
    let client = fresh_db("err_bucket").await;
    client
        .batch_execute("CREATE SCHEMA m; CREATE TABLE m.t AS SELECT 1 AS id")
        .await
        .unwrap();
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    let target =
        format!("url = \"s3://no-such-bucket-here\"\nendpoint = \"{endpoint}\"\nmax_retries = 0");
    let task = new_task("err_bucket", "m", Some(&target), "", "");
    let (_, line) = run_err(&task);
    assert!(line.contains("create bucket no-such-bucket-here"), "{line}");

    let task = new_task("err_bucket", "nothing_here", None, "", "");
    let (code, line) = run_err(&task);
    assert_eq!(code, 2);
    assert!(line.contains("select no table"), "{line}");
}

#[tokio::test]
async fn validate_reports_ok_and_problems() {
    let client = fresh_db("val").await;
    client
        .batch_execute("CREATE SCHEMA v; CREATE TABLE v.t AS SELECT 1 AS id")
        .await
        .unwrap();
    let task = new_task("val", "v", None, "", "");
    let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("table v.t: 1 columns") && stdout.contains("writable"),
        "{stdout}"
    );
    assert!(
        files(&task.lake()).is_empty(),
        "validate leaves no object behind"
    );

    with_source_url(
        &task,
        &env("TRIBUTARY_TEST_PG_USER_URL").replace(":tributary@", ":wrong@"),
    );
    let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stdout.contains("problem: ") && stdout.contains("password"),
        "{stdout}"
    );
}

/// Mounts a 256 KiB tmpfs (the tests run as root, as scripts/test.sh does in CI) and unmounts it
/// on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn new(dir: &std::path::Path) -> TinyDisk {
        let path = dir.join("tiny");
        std::fs::create_dir_all(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            ok.success(),
            "mounting a tmpfs needs root (scripts/test.sh runs as root)"
        );
        TinyDisk(path)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn disk_full_is_named_and_leaves_no_file() {
    let client = fresh_db("err_disk").await;
    client
        .batch_execute("CREATE SCHEMA d; CREATE TABLE d.t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let disk = TinyDisk::new(dir.path());
    let target = format!("url = \"file://{}\"", disk.0.display());
    let task = new_task("err_disk", "d", Some(&target), "", "");
    let (code, line) = run_err(&task);
    assert_eq!(code, 1);
    assert!(
        line.contains("No space left") && line.contains("free disk space"),
        "{line}"
    );
    assert!(
        files(&disk.0).is_empty(),
        "nothing may be left behind: {:?}",
        files(&disk.0)
    );
}
