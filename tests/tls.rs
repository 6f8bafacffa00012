//! TLS to the sources, against the test servers' own CA (`scripts/lib.sh` start_tls): full load
//! and change capture with verify-full / VERIFY_IDENTITY as users the servers refuse without
//! TLS (so every connection, the replication and binlog ones included, is proven encrypted), a
//! certificate that does not name the host, `require` without a CA, and a client certificate.

use std::process::Output;

use mysql_async::prelude::Queryable;

use crate::cdc::{cdc_task, fence_stop_and_compare, spawn, terminate, wait_streaming, workload};
use crate::common::*;
use crate::mysql::{fence, my_db, my_task_at};

/// The test CA bundle.
fn ca() -> String {
    env("TRIBUTARY_TEST_TLS_CA")
}

/// `base` (a server URL ending in `/postgres` or `/`) for database `db`, with `query`.
fn url_for(base: &str, db: &str, query: &str) -> String {
    let server = base.strip_suffix("postgres").unwrap_or(base);
    let server = server.strip_suffix('/').unwrap_or(server);
    format!("{server}/{db}?{query}")
}

/// A PostgreSQL task on database `db` (schema `c`) whose source URL is `url`.
fn pg_task(db: &str, migration: &str, url: &str) -> Task {
    let task = cdc_task(
        db,
        migration,
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    let text = std::fs::read_to_string(&task.path).unwrap();
    let text = text.replace(
        &format!("url = \"{}\"", pg_url(db)),
        &format!("url = \"{url}\""),
    );
    assert!(text.contains(url), "source URL replaced");
    std::fs::write(&task.path, text).unwrap();
    task
}

/// The schema of [`crate::cdc`]'s workload, smaller.
fn small_schema() -> String {
    crate::cdc::SCHEMA.replace("20000", "300")
}

/// `tributary validate` on `task`.
fn validate(task: &Task) -> Output {
    tributary(&["validate", "--config", task.path.to_str().unwrap()])
}

#[tokio::test]
async fn postgres_full_load_and_cdc_over_verify_full() {
    let db = "tls_pg_flow";
    let client = fresh_db(db).await;
    client.batch_execute(&small_schema()).await.unwrap();
    let url = url_for(
        &env("TRIBUTARY_TEST_PG_TLS_URL"),
        db,
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    );
    let task = pg_task(db, "full-load-and-cdc", &url);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    // The walsender of the task's slot is encrypted too (and its user is refused without TLS).
    let ssl = query_rows(
        &client,
        "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.usename = 'tributary_tls' AND a.backend_type = 'walsender'
           AND a.datname = 'tls_pg_flow'",
    )
    .await;
    assert_eq!(ssl, vec![vec![Some("true".to_string())]]);
    workload(&client, 0).await;
    fence_stop_and_compare(&client, &task, 0, child).await;
}

#[tokio::test]
async fn mysql_full_load_and_binlog_over_verify_identity() {
    let db = "tls_my_flow";
    let mut conn = my_db(db).await;
    conn.query_drop(crate::mysql::SCHEMA.replace("20000", "300"))
        .await
        .unwrap();
    let url = url_for(
        &env("TRIBUTARY_TEST_MYSQL_TLS_URL"),
        db,
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca()),
    );
    let task = my_task_at(&url, db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    crate::mysql::workload(&mut conn, 0).await;
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    terminate(&task, 0, child);
    for (table, cols) in [
        ("items", &["id", "rev", "name", "amount", "big"][..]),
        ("plain", &["id", "rev", "v"][..]),
    ] {
        crate::mysql::assert_matches_source(&mut conn, &task, db, table, cols).await;
    }
}

/// 127.0.0.2 reaches the same servers, but their certificate names only localhost and
/// 127.0.0.1: verify-full refuses it, naming the host, the certificate's names and the setting;
/// verify-ca (chain only) accepts it.
#[tokio::test]
async fn a_certificate_for_another_name_is_refused_with_the_fix() {
    let db = "tls_wrong_name";
    fresh_db(db)
        .await
        .batch_execute(&small_schema())
        .await
        .unwrap();
    let base = env("TRIBUTARY_TEST_PG_TLS_URL").replace("@localhost:", "@127.0.0.2:");
    let cases = [
        // The SQL connections (full load) and the replication connection (cdc) alike.
        ("full-load", "sslmode=verify-full"),
        ("cdc", "sslmode=verify-full"),
    ];
    for (migration, mode) in cases {
        let url = url_for(&base, db, &format!("{mode}&sslrootcert={}", ca()));
        let task = pg_task(db, migration, &url);
        let path = task.path.to_str().unwrap();
        let out = tributary(&["run", "--config", path, "--no-progress"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{migration}: {err}");
        eprintln!("{migration}: {err}");
        for part in [
            "\"127.0.0.2\"",
            "it names localhost, 127.0.0.1",
            "sslmode=verify-ca",
        ] {
            assert!(
                err.contains(part),
                "{migration}: {part:?} missing in\n{err}"
            );
        }
    }
    let url = url_for(
        &base,
        db,
        &format!("sslmode=verify-ca&sslrootcert={}", ca()),
    );
    let out = validate(&pg_task(db, "full-load-and-cdc", &url));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let db = "tls_my_wrong_name";
    my_db(db)
        .await
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let base = env("TRIBUTARY_TEST_MYSQL_TLS_URL").replace("@127.0.0.1:", "@127.0.0.2:");
    let url = url_for(
        &base,
        db,
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca()),
    );
    let out = validate(&my_task_at(&url, db, "full-load-and-cdc", "", ""));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    eprintln!("{text}");
    for part in [
        "\"127.0.0.2\"",
        "it names localhost, 127.0.0.1",
        "ssl-mode=VERIFY_CA",
    ] {
        assert!(text.contains(part), "{part:?} missing in\n{text}");
    }
    let url = url_for(&base, db, &format!("ssl-mode=VERIFY_CA&ssl-ca={}", ca()));
    let out = validate(&my_task_at(&url, db, "full-load-and-cdc", "", ""));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `require` / `REQUIRED` encrypt without a CA; verify-full with the system's CAs (which do not
/// hold the test CA) names the setting that points at the right one.
#[tokio::test]
async fn require_works_without_a_ca_and_an_unknown_ca_names_sslrootcert() {
    let db = "tls_require";
    fresh_db(db)
        .await
        .batch_execute(&small_schema())
        .await
        .unwrap();
    let base = env("TRIBUTARY_TEST_PG_TLS_URL");
    let task = pg_task(db, "full-load", &url_for(&base, db, "sslmode=require"));
    run_ok(&task, &[]);
    assert!(files(&task.lake())
        .iter()
        .any(|f| f.starts_with("c/items/LOAD")));

    let out = validate(&pg_task(
        db,
        "full-load",
        &url_for(&base, db, "sslmode=verify-full"),
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("not signed by a CA in the system's CA certificates"),
        "{text}"
    );
    assert!(text.contains("sslrootcert="), "{text}");

    let db = "tls_my_require";
    let mut conn = my_db(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    let url = url_for(
        &env("TRIBUTARY_TEST_MYSQL_TLS_URL"),
        db,
        "ssl-mode=REQUIRED",
    );
    let task = my_task_at(&url, db, "full-load", "", "");
    run_ok(&task, &[]);
    assert!(files(&task.lake())
        .iter()
        .any(|f| f.starts_with(&format!("{db}/t/LOAD"))));
}

/// A client certificate instead of a password (pg_hba `cert`), for SQL and replication.
#[tokio::test]
async fn a_client_certificate_authenticates() {
    let db = "tls_client_cert";
    fresh_db(db)
        .await
        .batch_execute(&small_schema())
        .await
        .unwrap();
    let url = url_for(
        &env("TRIBUTARY_TEST_PG_CERT_URL"),
        db,
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            ca(),
            env("TRIBUTARY_TEST_TLS_CLIENT_CERT"),
            env("TRIBUTARY_TEST_TLS_CLIENT_KEY")
        ),
    );
    let out = validate(&pg_task(db, "full-load-and-cdc", &url));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
