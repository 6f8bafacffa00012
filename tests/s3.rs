//! Full loads into a real S3 API server (moto), including multipart uploads and a failing S3.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// Sends one unsigned HTTP request to the S3 server (moto accepts them) and returns the body.
async fn http(endpoint: &str, method: &str, path: &str) -> String {
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
async fn bucket(prefix: &str) -> (String, Arc<dyn ObjectStore>) {
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

async fn keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut k: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    k.sort();
    k
}

async fn big_table(db: &str) -> tokio_postgres::Client {
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

/// A TCP proxy in front of the S3 server that cuts the connection of every request uploading
/// multipart part 2 or later, so uploads fail after part 1 succeeded. Other requests (create,
/// abort, list) pass. It parses just enough HTTP/1.1 to find request boundaries.
async fn failing_proxy(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect(upstream.trim_start_matches("http://"))
                    .await
                    .unwrap();
                let (cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let back = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
                let mut cr = BufReader::new(cr);
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = Vec::new();
                        if cr.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                            back.abort();
                            return;
                        }
                        let end = line == b"\r\n";
                        head.extend_from_slice(&line);
                        if end {
                            break;
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let request_line = text.lines().next().unwrap_or_default().to_string();
                    let part: u32 = request_line
                        .split("partNumber=")
                        .nth(1)
                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if part >= 2 {
                        back.abort();
                        return; // drops both connections mid-request
                    }
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if cr.read_exact(&mut body).await.is_err() {
                        back.abort();
                        return;
                    }
                    if sw.write_all(&head).await.is_err() || sw.write_all(&body).await.is_err() {
                        back.abort();
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

// Multi-threaded: the proxy's tasks must run while the test thread waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_s3_leaves_no_partial_object() {
    big_table("s3_fail").await;
    let (name, store) = bucket("lake-fail").await;
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    let proxy = failing_proxy(endpoint.clone()).await;
    let target = format!("url = \"s3://{name}\"\nendpoint = \"{proxy}\"\nregion = \"us-east-1\"\nmax_retries = 1\nretry_timeout_seconds = 10");
    let task = new_task("s3_fail", "b", Some(&target), "", "");
    let out = tributary(&[
        "run",
        "--config",
        task.path.to_str().unwrap(),
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must fail when S3 fails");
    assert!(
        stderr.contains("error:") && stderr.contains("b.t"),
        "error names the table: {stderr}"
    );
    assert!(
        keys(&store).await.is_empty(),
        "nothing may be visible under a data key: {:?}",
        keys(&store).await
    );
    let uploads = http(&endpoint, "GET", &format!("/{name}?uploads")).await;
    assert!(
        !uploads.contains("<Upload>"),
        "the failed multipart upload must be aborted: {uploads}"
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
