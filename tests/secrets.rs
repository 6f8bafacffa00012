//! Source logins from AWS Secrets Manager (the S3 server of the test set-up, moto, serves its
//! API): full load and change capture with the login in an RDS-shaped secret on both engines,
//! a rotated password picked up when the task reconnects, the secret read through an assumed
//! role, and a missing or malformed secret stopping the task with the fix and without its value.

use std::process::Child;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use mysql_async::prelude::Queryable;

use crate::cdc::{cdc_task, fence_stop_and_compare, log, run_command, wait_streaming, workload};
use crate::common::*;
use crate::mysql::{fence, my_db, my_rows, my_task_at};

/// A Secrets Manager client on the test server.
async fn secrets() -> Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env("TRIBUTARY_TEST_S3_ENDPOINT"))
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    Client::new(&sdk)
}

/// Creates secret `name` holding `value`, or gives it that value when it exists (a rerun).
async fn put_secret(name: &str, value: &str) {
    let client = secrets().await;
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await;
    if created.is_err() {
        client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
}

/// Host and port of a test server URL.
fn host_port(url: &str) -> (String, u16) {
    let u = url::Url::parse(url).unwrap();
    (u.host_str().unwrap().to_string(), u.port().unwrap())
}

/// An RDS-shaped secret for `user`/`password` on `url`'s server, database `db`.
fn rds_secret(url: &str, engine: &str, user: &str, password: &str, db: &str) -> String {
    let (host, port) = host_port(url);
    serde_json::json!({
        "username": user, "password": password, "engine": engine,
        "host": host, "port": port, "dbname": db,
    })
    .to_string()
}

/// Points `task`'s source at `url` (no login) and adds `settings` to `[source.settings]`.
fn use_secret(task: &Task, url: &str, settings: &str) {
    let text = std::fs::read_to_string(&task.path).unwrap();
    let start = text
        .find("url = \"postgres://")
        .or(text.find("url = \"mysql://"));
    let start = start.expect("a source URL");
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}url = \"{url}\"\n[source.settings]\n{settings}{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&task.path, text).unwrap();
}

/// Starts the task with Secrets Manager (and STS) on the test server.
fn spawn_on_aws(task: &Task, n: usize) -> Child {
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    run_command(task, n, &[])
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint)
        .env("AWS_ENDPOINT_URL_STS", &endpoint)
        .spawn()
        .unwrap()
}

/// Asserts the task is still running.
fn alive(task: &Task, child: &mut Child) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the task exited ({status})\n{}", log(task, 0));
    }
}

#[tokio::test]
async fn postgres_full_load_and_cdc_with_a_rotated_secret() {
    let db = "sm_pg";
    let user = "sm_pg_user";
    let client = fresh_db(db).await;
    client
        .batch_execute(&crate::cdc::SCHEMA.replace("20000", "300"))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {user} LOGIN REPLICATION SUPERUSER PASSWORD 'first-pw';
             EXCEPTION WHEN duplicate_object THEN ALTER ROLE {user} PASSWORD 'first-pw'; END $$"
        ))
        .await
        .unwrap();
    let server = env("TRIBUTARY_TEST_PG_URL");
    let secret = "tributary-test/sm_pg";
    put_secret(
        secret,
        &rds_secret(&server, "postgres", user, "first-pw", db),
    )
    .await;
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    // No host, user or database in the URL: all of it comes from the secret.
    use_secret(
        &task,
        "postgres:///",
        &format!("SecretsManagerSecretId = \"{secret}\"\n"),
    );
    let mut child = spawn_on_aws(&task, 0);
    wait_streaming(&task, 0, &mut child);
    workload(&client, 0).await;

    // Rotation: the old password stops working, the secret has the new one; the task's
    // sessions are ended, so it must log in again with what the secret holds now.
    client
        .batch_execute(&format!("ALTER ROLE {user} PASSWORD 'second-pw'"))
        .await
        .unwrap();
    put_secret(
        secret,
        &rds_secret(&server, "postgres", user, "second-pw", db),
    )
    .await;
    let killed: Vec<i32> = client
        .query(
            // In the select list, so only the filtered sessions are ended.
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!killed.is_empty(), "the task had sessions to end");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE usename = $1
                 AND state = 'streaming' AND NOT pid = ANY($2)",
                &[&user, &killed],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            break;
        }
        alive(&task, &mut child);
        assert!(
            Instant::now() < deadline,
            "never streamed again\n{}",
            log(&task, 0)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workload(&client, 1).await;
    fence_stop_and_compare(&client, &task, 0, child).await;
    let text = log(&task, 0);
    assert!(
        !text.contains("first-pw") && !text.contains("second-pw"),
        "{text}"
    );
}

#[tokio::test]
async fn mysql_full_load_and_binlog_with_a_secret_read_through_a_role() {
    let db = "sm_my";
    let user = "sm_my_user";
    let mut conn = my_db(db).await;
    conn.query_drop(crate::mysql::SCHEMA.replace("20000", "300"))
        .await
        .unwrap();
    conn.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'first-pw';
         ALTER USER '{user}'@'%' IDENTIFIED BY 'first-pw';
         GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let server = env("TRIBUTARY_TEST_MYSQL_URL");
    let secret = "tributary-test/sm_my";
    put_secret(
        secret,
        &rds_secret(&server, "mariadb", user, "first-pw", ""),
    )
    .await;
    let task = my_task_at(
        &crate::mysql::my_url(db),
        db,
        "full-load-and-cdc",
        "CdcMaxBatchInterval = 1",
        "",
    );
    use_secret(
        &task,
        &format!("mysql:///{db}"),
        &format!(
            "SecretsManagerSecretId = \"{secret}\"\n\
             SecretsManagerAccessRoleArn = \"arn:aws:iam::123456789012:role/dms-secrets\"\n"
        ),
    );
    let mut child = spawn_on_aws(&task, 0);
    wait_streaming(&task, 0, &mut child);
    crate::mysql::workload(&mut conn, 0).await;
    fence(&mut conn, &task, 0, &mut child, db, 1).await;

    // Rotation, then every session of the task's user is killed (the binlog dump included).
    conn.query_drop(format!("ALTER USER '{user}'@'%' IDENTIFIED BY 'second-pw'"))
        .await
        .unwrap();
    put_secret(
        secret,
        &rds_secret(&server, "mariadb", user, "second-pw", ""),
    )
    .await;
    let sessions = my_rows(
        &mut conn,
        &format!(
            "SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ),
    )
    .await;
    assert!(!sessions.is_empty(), "the task had sessions to kill");
    for s in sessions.into_iter().filter_map(|r| r[0].clone()) {
        let _ = conn.query_drop(format!("KILL CONNECTION {s}")).await;
    }
    crate::mysql::workload(&mut conn, 1).await;
    fence(&mut conn, &task, 0, &mut child, db, 2).await;
    crate::cdc::terminate(&task, 0, child);
    for (table, cols) in [
        ("items", &["id", "rev", "name", "amount", "big"][..]),
        ("plain", &["id", "rev", "v"][..]),
    ] {
        crate::mysql::assert_matches_source(&mut conn, &task, db, table, cols).await;
    }
    let text = log(&task, 0);
    assert!(
        !text.contains("first-pw") && !text.contains("second-pw"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_or_malformed_secret_stops_with_the_fix_and_never_shows_it() {
    let db = "sm_bad";
    fresh_db(db)
        .await
        .batch_execute("CREATE SCHEMA c; CREATE TABLE c.t (id int PRIMARY KEY)")
        .await
        .unwrap();
    put_secret(
        "tributary-test/sm_bad_shape",
        r#"{"user": "postgres", "password": "hunter2-sekrit"}"#,
    )
    .await;
    let cases = [
        ("tributary-test/sm_missing", "ResourceNotFound"),
        ("tributary-test/sm_bad_shape", "has no \"username\""),
    ];
    for (secret, want) in cases {
        let task = cdc_task(db, "full-load", "", "");
        use_secret(
            &task,
            "postgres:///sm_bad",
            &format!("SecretsManagerSecretId = \"{secret}\"\n"),
        );
        let mut child = spawn_on_aws(&task, 0);
        let status = child.wait().unwrap();
        let text = log(&task, 0);
        assert_eq!(status.code(), Some(1), "{text}");
        for part in [secret, want, "secret"] {
            assert!(text.contains(part), "{part:?} missing in\n{text}");
        }
        assert!(!text.contains("hunter2"), "{text}");
    }
}

/// Issue 13's acceptance line in one test: full load and change capture over TLS that checks
/// the certificate and the host name (`sslmode=verify-full`, `ssl-mode=VERIFY_IDENTITY`), the
/// login (user, password, host, port, database) from Secrets Manager, on both engines. The
/// TLS users of the test servers are refused without TLS, so every connection (the replication
/// and binlog ones included) is encrypted; the replayed files equal the source.
#[tokio::test]
async fn full_load_and_cdc_over_verify_full_with_the_login_from_secrets_manager() {
    let ca = env("TRIBUTARY_TEST_TLS_CA");

    let db = "sm_tls_pg";
    let client = fresh_db(db).await;
    client
        .batch_execute(&crate::cdc::SCHEMA.replace("20000", "300"))
        .await
        .unwrap();
    let secret = "tributary-test/sm_tls_pg";
    let server = env("TRIBUTARY_TEST_PG_TLS_URL");
    put_secret(
        secret,
        &rds_secret(&server, "postgres", "tributary_tls", "tributary", db),
    )
    .await;
    let task = cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    use_secret(
        &task,
        &format!("postgres:///?sslmode=verify-full&sslrootcert={ca}"),
        &format!("SecretsManagerSecretId = \"{secret}\"\n"),
    );
    let mut child = spawn_on_aws(&task, 0);
    wait_streaming(&task, 0, &mut child);
    let ssl = query_rows(
        &client,
        "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.usename = 'tributary_tls' AND a.backend_type = 'walsender'
           AND a.datname = 'sm_tls_pg'",
    )
    .await;
    assert_eq!(
        ssl,
        vec![vec![Some("true".to_string())]],
        "{}",
        log(&task, 0)
    );
    workload(&client, 0).await;
    workload(&client, 1).await;
    fence_stop_and_compare(&client, &task, 0, child).await;
    assert!(!log(&task, 0).contains("tributary_tls:tributary"));

    let db = "sm_tls_my";
    let mut conn = my_db(db).await;
    conn.query_drop(crate::mysql::SCHEMA.replace("20000", "300"))
        .await
        .unwrap();
    let secret = "tributary-test/sm_tls_my";
    let server = env("TRIBUTARY_TEST_MYSQL_TLS_URL");
    put_secret(
        secret,
        &rds_secret(&server, "mariadb", "tributary_tls", "tributary", ""),
    )
    .await;
    let task = my_task_at(
        &crate::mysql::my_url(db),
        db,
        "full-load-and-cdc",
        "CdcMaxBatchInterval = 1",
        "",
    );
    use_secret(
        &task,
        &format!("mysql:///{db}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
        &format!("SecretsManagerSecretId = \"{secret}\"\n"),
    );
    let mut child = spawn_on_aws(&task, 0);
    wait_streaming(&task, 0, &mut child);
    crate::mysql::workload(&mut conn, 0).await;
    crate::mysql::workload(&mut conn, 1).await;
    fence(&mut conn, &task, 0, &mut child, db, 1).await;
    let tls: Vec<_> = my_rows(
        &mut conn,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'tributary_tls' AND COMMAND LIKE 'Binlog Dump%'",
    )
    .await;
    assert_ne!(
        tls[0][0].as_deref(),
        Some("0"),
        "the binlog reader is the TLS user"
    );
    crate::cdc::terminate(&task, 0, child);
    for (table, cols) in [
        ("items", &["id", "rev", "name", "amount", "big"][..]),
        ("plain", &["id", "rev", "v"][..]),
    ] {
        crate::mysql::assert_matches_source(&mut conn, &task, db, table, cols).await;
    }
}
