//! Full loads into a real S3 API server (moto), including multipart uploads, and through a
//! fault-injecting front ([`S3Front`]): lost replies, outages, random faults, failures.

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::s3_front::{Fault, Rule, S3Front};
use crate::common::*;

/// Sends one unsigned HTTP request to the S3 server (moto accepts them) and returns the body.
pub(crate) async fn http(endpoint: &str, method: &str, path: &str) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to S3 server");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 2"), "{method} {path}: {out}");
    out
}

/// Creates a bucket named `prefix-<random>` (the S3 server outlives test runs) and returns its
/// name and a client for it.
pub(crate) async fn bucket(prefix: &str) -> (String, Arc<dyn ObjectStore>) {
    let name = format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    http(&endpoint, "PUT", &format!("/{name}")).await;
    let store = Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(&name)
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap(),
    );
    (name, store)
}

pub(crate) async fn keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut k: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    k.sort();
    k
}

pub(crate) async fn big_table(db: &str) -> tokio_postgres::Client {
    let client = fresh_db(db).await;
    // ~13 MB of CSV: three 5 MiB multipart parts.
    client
        .batch_execute(
            "CREATE SCHEMA b; CREATE TABLE b.t AS
             SELECT g AS id, md5(g::text) || ',' || md5((g + 1)::text) AS v FROM generate_series(1, 180000) g",
        )
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn s3_multipart_csv_and_parquet_read_back_equal() {
    let client = big_table("s3_mp").await;
    let (name, store) = bucket("lake-mp").await;
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    let target =
        format!("url = \"s3://{name}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"");
    let task = new_task(
        "s3_mp",
        "b",
        Some(&target),
        "BucketFolder = \"raw\"\nCannedAclForObjects = \"BUCKET_OWNER_FULL_CONTROL\"",
        "",
    );
    run_ok(&task, &[]);
    assert_eq!(keys(&store).await, vec!["raw/b/t/LOAD00000001.csv"]);
    let obj = store.get(&"raw/b/t/LOAD00000001.csv".into()).await.unwrap();
    assert!(
        obj.meta.size > 10 * 1024 * 1024,
        "object is {} bytes: too small to test multipart",
        obj.meta.size
    );
    let etag = obj.meta.e_tag.clone().unwrap_or_default();
    assert!(
        etag.contains('-'),
        "a multipart upload's ETag has a part count, got {etag}"
    );
    let text = String::from_utf8(obj.bytes().await.unwrap().to_vec()).unwrap();
    let rows = parse_csv(&text, ',', "");
    let expected = query_rows(
        &client,
        "SELECT id::text AS id_text, v FROM b.t ORDER BY id",
    )
    .await;
    assert_rows_eq(&rows, &expected, "S3 CSV");

    // Parquet with GZIP, extra connection attributes as pasted from DMS, into another folder.
    let target = format!("{target}\nextra_connection_attributes = \"dataFormat=parquet;compressionType=GZIP;bucketFolder=pq;\"");
    let task = new_task("s3_mp", "b", Some(&target), "", "");
    run_ok(&task, &[]);
    let key = "pq/b/t/LOAD00000001.parquet";
    assert!(keys(&store).await.contains(&key.to_string()));
    let bytes = store.get(&key.into()).await.unwrap().bytes().await.unwrap();
    let local = task.dir.path().join("copy.parquet");
    std::fs::write(&local, &bytes).unwrap();
    let (_, rows) = crate::full_load::read_parquet(&[local]);
    assert_rows_eq(&rows, &expected, "S3 Parquet");
}

/// Runs `tributary run` (plus `extra` arguments) on `task` off the runtime's threads (the front must keep serving
/// meanwhile); returns the output and how long the run took.
async fn run_task(task: &Task, extra: &[&str]) -> (Output, Duration) {
    let mut args: Vec<String> = [
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect();
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter_mut().map(|a| a.as_str()).collect();
        tributary(&args)
    })
    .await
    .unwrap();
    (out, start.elapsed())
}

/// Asserts a run succeeded, showing its output otherwise.
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "tributary run failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A full-load task of schema `b` of database `db` into bucket `name` through `front`, with
/// `extra` target lines and `[target.settings]` lines.
fn front_task(db: &str, name: &str, front: &S3Front, extra: &str, settings: &str) -> Task {
    new_task(
        db,
        "b",
        Some(&target(name, &front.url, extra)),
        settings,
        "",
    )
}

/// Target lines for bucket `name` through `endpoint`, plus `extra` lines.
pub(crate) fn target(name: &str, endpoint: &str, extra: &str) -> String {
    format!("url = \"s3://{name}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n{extra}")
}

/// Multipart uploads still open in bucket `name` (asked of the S3 server directly).
async fn open_uploads(name: &str) -> usize {
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    http(&endpoint, "GET", &format!("/{name}?uploads"))
        .await
        .matches("<Upload>")
        .count()
}

/// Reads every object of the bucket back (directly, not through the front) and asserts that
/// table `b.<table>` is there exactly: files LOAD00000001.. without gaps or extras, holding every
/// source row once. Returns the number of files.
async fn assert_exactly_once(
    store: &Arc<dyn ObjectStore>,
    client: &tokio_postgres::Client,
    tables: &[&str],
) -> usize {
    let all = keys(store).await;
    let mut files = 0;
    for table in tables {
        let prefix = format!("b/{table}/");
        let mine: Vec<&String> = all.iter().filter(|k| k.starts_with(&prefix)).collect();
        let expected_keys: Vec<String> = (1..=mine.len())
            .map(|i| format!("{prefix}LOAD{i:08X}.csv"))
            .collect();
        assert_eq!(
            mine,
            expected_keys.iter().collect::<Vec<_>>(),
            "files of b.{table}"
        );
        let mut rows = Vec::new();
        for key in &mine {
            let bytes = store
                .get(&key.as_str().into())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            rows.extend(parse_csv(std::str::from_utf8(&bytes).unwrap(), ',', ""));
        }
        rows.sort_by_key(|r| r[0].as_deref().unwrap().parse::<i64>().unwrap());
        let sql = format!("SELECT id::text AS id_text, v FROM b.{table} ORDER BY id");
        assert_rows_eq(
            &rows,
            &query_rows(client, &sql).await,
            &format!("b.{table}"),
        );
        files += mine.len();
    }
    assert_eq!(files, all.len(), "no other objects: {all:?}");
    files
}

/// MaxFileSize giving big_table three files: two multipart (5 MiB + ~0.9 MiB), one single PUT.
const THREE_FILES: &str = "MaxFileSize = 6000";

#[tokio::test]
async fn lost_completion_reply_is_confirmed_not_failed() {
    let client = big_table("s3_lost_complete").await;
    let (name, store) = bucket("lake-lostc").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    // The first CompleteMultipartUpload is applied by S3, but its reply never arrives; the retry
    // is answered NoSuchUpload, as S3 does once the upload was completed.
    front.add(
        Rule::new("POST", Fault::LoseReply)
            .with("uploadId=")
            .times(1),
    );
    front.add(
        Rule::new("POST", Fault::Status(404))
            .with("uploadId=")
            .times(1),
    );
    let task = front_task("s3_lost_complete", &name, &front, "", THREE_FILES);
    let (out, _) = run_task(&task, &[]).await;
    assert_ok(&out);
    assert_eq!(
        front.count("lose") + front.count("status"),
        2,
        "the faults happened"
    );
    let files = assert_exactly_once(&store, &client, &["t"]).await;
    assert_eq!(files, 3);
    assert_eq!(open_uploads(&name).await, 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the object is complete"),
        "the log tells the completion was confirmed"
    );
}

#[tokio::test]
async fn lost_create_reply_leaves_only_an_invisible_orphan() {
    let client = big_table("s3_lost_create").await;
    let (name, store) = bucket("lake-lostcr").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    // The first CreateMultipartUpload is applied by S3, but its reply never arrives.
    front.add(
        Rule::new("POST", Fault::LoseReply)
            .with("?uploads")
            .times(1),
    );
    let task = front_task("s3_lost_create", &name, &front, "", THREE_FILES);
    let (out, _) = run_task(&task, &[]).await;
    assert_ok(&out);
    assert_eq!(front.count("lose"), 1, "the fault happened");
    assert_exactly_once(&store, &client, &["t"]).await;
    // The upload whose id never reached us stays open (invisible): the bucket's
    // AbortIncompleteMultipartUpload lifecycle rule removes it.
    assert_eq!(open_uploads(&name).await, 1);
}

#[tokio::test]
async fn sixty_second_outage_mid_load_is_ridden_out() {
    let client = big_table("s3_outage").await;
    let (name, store) = bucket("lake-outage").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    // The second part upload starts a 60 s outage: every connection is dropped until it ends.
    let outage = Duration::from_secs(60);
    front.add(
        Rule::new("PUT", Fault::Outage(outage))
            .with("partNumber=")
            .skip(1)
            .times(1),
    );
    let task = front_task("s3_outage", &name, &front, "", THREE_FILES);
    let (out, took) = run_task(&task, &[]).await;
    assert_ok(&out);
    assert_eq!(front.count("outage"), 1, "the outage happened");
    assert!(
        front.count("refused") > 0,
        "requests were refused during the outage"
    );
    assert!(took >= outage, "the run waited out the outage ({took:?})");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retry budget used"),
        "the log shows the waits"
    );
    assert_exactly_once(&store, &client, &["t"]).await;
    eprintln!("outage run took {took:?}");
}

#[tokio::test]
async fn random_faults_still_load_every_row_once() {
    let client = big_table("s3_random").await;
    client
        .batch_execute("CREATE TABLE b.u AS SELECT * FROM b.t WHERE id % 3 = 0")
        .await
        .unwrap();
    let (name, store) = bucket("lake-random").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("S3 fault seed {seed}");
    front.seed(seed);
    // Faults sure to happen once each, then ~10 % of all requests at random.
    front.add(Rule::new("GET", Fault::CutReply).with("list-type").times(1));
    front.add(
        Rule::new("POST", Fault::CutReply)
            .with("uploadId=")
            .times(1),
    );
    front.add(
        Rule::new("PUT", Fault::Status(503))
            .with("partNumber=")
            .times(1),
    );
    front.add(Rule::new("", Fault::Status(500)).percent(3));
    front.add(Rule::new("", Fault::CutReply).percent(3));
    front.add(Rule::new("", Fault::Delay(Duration::from_millis(700))).percent(3));
    front.add(Rule::new("", Fault::LoseReply).percent(1));
    let task = front_task("s3_random", &name, &front, "", THREE_FILES);
    // Four runs (the later ones reload everything with --restart, deleting the earlier files
    // first), each checked, for a few dozen requests under random faults.
    for run in 0..4 {
        let restart: &[&str] = if run == 0 { &[] } else { &["--restart"] };
        let (out, took) = run_task(&task, restart).await;
        assert_ok(&out);
        assert_exactly_once(&store, &client, &["t", "u"]).await;
        eprintln!("run {run} took {took:?}");
    }
    assert!(
        front.count("cut") >= 2 && front.count("status") >= 1,
        "the faults happened"
    );
    eprintln!(
        "{} requests: {} errors, {} cut, {} delayed, {} lost",
        front.count("requests"),
        front.count("status"),
        front.count("cut"),
        front.count("delay"),
        front.count("lose")
    );
}

#[tokio::test]
async fn failing_s3_leaves_no_partial_object() {
    big_table("s3_fail").await;
    let (name, store) = bucket("lake-fail").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    // Every part after the first is cut off before it reaches S3.
    front.add(
        Rule::new("PUT", Fault::Drop)
            .with("partNumber=")
            .unless("partNumber=1&"),
    );
    let small_budget = "max_retries = 1\nretry_timeout_seconds = 10";
    let task = front_task("s3_fail", &name, &front, small_budget, "");
    let (out, _) = run_task(&task, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must fail when S3 fails");
    assert!(front.count("drop") > 0);
    assert!(
        stderr.contains("error:") && stderr.contains("b.t"),
        "error names the table: {stderr}"
    );
    assert!(
        keys(&store).await.is_empty(),
        "nothing may be visible under a data key: {:?}",
        keys(&store).await
    );
    assert_eq!(
        open_uploads(&name).await,
        0,
        "the failed multipart upload is aborted"
    );
    let checkpoint = std::fs::read_to_string(
        task.dir
            .path()
            .join("tributary-state/t-s3_fail/checkpoint.json"),
    )
    .unwrap();
    assert!(
        checkpoint.contains("\"TableState\": \"Table error\"")
            && checkpoint.contains("\"status\": \"failed\""),
        "{checkpoint}"
    );
}

/// Every completion reply lost and every HEAD refused: the completion's outcome cannot be known.
fn unknowable_completion(front: &S3Front) {
    front.add(Rule::new("POST", Fault::LoseReply).with("uploadId="));
    front.add(Rule::new("HEAD", Fault::Status(503)));
}

/// The error line of a failed run.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "the run must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    eprintln!("{line}");
    line.to_string()
}

#[tokio::test]
async fn unknown_completion_leaves_nothing_visible() {
    big_table("s3_unknown").await;
    let (name, store) = bucket("lake-unknown").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    unknowable_completion(&front);
    // The writer's own best-effort delete of the key fails (one request + object_store's 3
    // retries), so it is the full load's cleanup of the table's files that must remove it.
    front.add(
        Rule::new("POST", Fault::Status(503))
            .with("?delete")
            .with("LOAD")
            .times(4),
    );
    let budget = "retry_timeout_seconds = 5";
    let task = front_task("s3_unknown", &name, &front, budget, "");
    let (out, _) = run_task(&task, &[]).await;
    let line = error_line(&out);
    assert!(line.contains("outcome unknown"), "{line}");
    assert!(
        front.count("lose") >= 2,
        "completions were applied, replies lost"
    );
    assert_eq!(
        front.count("status:POST"),
        4,
        "the writer's delete was refused"
    );
    assert!(front.count("status:HEAD") > 0, "HEADs were refused");
    assert!(keys(&store).await.is_empty(), "{:?}", keys(&store).await);
    assert_eq!(open_uploads(&name).await, 0);
}

#[tokio::test]
async fn unknown_completion_that_stays_visible_is_reported_and_removed_next_run() {
    let client = big_table("s3_unknown_kept").await;
    let (name, store) = bucket("lake-kept").await;
    let front = S3Front::start(&env("TRIBUTARY_TEST_S3_ENDPOINT")).await;
    unknowable_completion(&front);
    front.add(
        Rule::new("POST", Fault::Status(503))
            .with("?delete")
            .with("LOAD"),
    );
    let budget = "retry_timeout_seconds = 5";
    let task = front_task("s3_unknown_kept", &name, &front, budget, "");
    let (out, _) = run_task(&task, &[]).await;
    let line = error_line(&out);
    assert!(
        line.contains("may still be visible") && line.contains("next run"),
        "the error says the truth: {line}"
    );
    assert_eq!(
        keys(&store).await,
        vec!["b/t/LOAD00000001.csv"],
        "it is indeed visible"
    );
    // S3 is healthy again: the next run removes the leftover and loads the table once.
    front.clear();
    let (out, _) = run_task(&task, &[]).await;
    assert_ok(&out);
    assert_exactly_once(&store, &client, &["t"]).await;
    assert_eq!(open_uploads(&name).await, 0);
}
