//! `tributary import-dms` end to end: the MySQL → S3 walkthrough's exported task and endpoints
//! (tests/fixtures/dms/) imported, validated and run against the private MariaDB, then the
//! files read back: the walkthrough's layout (`endpoint1/dms_sample/<table>/LOAD00000001.csv`,
//! `YYYY/MM/DD/` CDC folders), `Op` on full-load rows, and the replayed files equal the source.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use mysql_async::prelude::Queryable;

use crate::cdc::{log, terminate, wait_for, wait_streaming};
use crate::common::*;
use crate::mysql::{my_db, my_rows, my_url};

/// The password the test gives `dms_user`; the imported file reads it from this variable.
const PASSWORD: &str = "dms-walkthrough-pw";
const PASSWORD_ENV: &str = "TRIBUTARY_SOURCE_PASSWORD";

/// The MySQL walkthrough's tables (the three its `parallel-load` rules name, and one without a rule).
const TABLES: &[&str] = &["post_history", "posts", "votes", "users"];

/// A fixture with `edit` applied, written into `dir`.
fn fixture_into(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dms")
        .join(name);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    let out = dir.join(name);
    std::fs::write(&out, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    out.to_str().unwrap().to_string()
}

/// Runs the binary with the password variable set (or not).
fn tributary_env(args: &[&str], password: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.args(args)
        .env("TRIBUTARY_LOG", "info")
        .env_remove(PASSWORD_ENV);
    if password {
        cmd.env(PASSWORD_ENV, PASSWORD);
    }
    cmd.output().expect("run tributary")
}

/// `tributary run` in the background with the password set, logging to `run-N.log`.
fn spawn_run(task: &Task, n: usize) -> Child {
    let log = std::fs::File::create(task.dir.path().join(format!("run-{n}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "run",
            "--config",
            task.path.to_str().unwrap(),
            "--no-progress",
        ])
        .env("TRIBUTARY_LOG", "info,tributary=debug")
        .env(PASSWORD_ENV, PASSWORD)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// One table's rows replayed from its files: LOAD rows (which must carry `Op` = I), then CDC
/// files in name order (I/U upsert, D delete), keyed by the first source column.
fn replay(lake: &Path, prefix: &str) -> (usize, BTreeMap<String, Row>) {
    let mut names: Vec<String> = files(lake)
        .into_iter()
        .filter(|f| f.starts_with(prefix))
        .collect();
    names.sort_by_key(|f| {
        let file = f.rsplit('/').next().unwrap().to_string();
        // Segmented tables' files are SEGMENT<n>_LOAD…; CDC names are digits only.
        (!file.contains("LOAD"), file)
    });
    let mut state = BTreeMap::new();
    let mut load_rows = 0;
    for f in names {
        let is_load = f.rsplit('/').next().unwrap().contains("LOAD");
        let text = std::fs::read_to_string(lake.join(&f)).unwrap();
        for mut row in parse_csv(&text, ',', "") {
            let op = row.remove(0).expect("an Op field");
            if is_load {
                assert_eq!(
                    op, "I",
                    "{f}: full-load rows carry Op I (IncludeOpForFullLoad)"
                );
                load_rows += 1;
            }
            let key = row[0].clone().unwrap();
            match op.as_str() {
                "I" | "U" => {
                    state.insert(key, row);
                }
                "D" => {
                    assert!(state.remove(&key).is_some(), "{f}: D of absent {key}");
                }
                other => panic!("{f}: Op {other}"),
            }
        }
    }
    (load_rows, state)
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_walkthrough_imports_validates_and_runs() {
    // The walkthrough's source: database dms_sample and its user dms_user.
    let mut conn = my_db("dms_sample").await;
    conn.query_drop(
        "CREATE TABLE posts (id INT PRIMARY KEY, title VARCHAR(100), score DECIMAL(8,2));
         CREATE TABLE votes (id INT PRIMARY KEY, post_id INT, kind VARCHAR(10));
         CREATE TABLE post_history (id INT PRIMARY KEY, post_id INT, note TEXT);
         CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40));
         INSERT INTO posts SELECT seq, CONCAT('post, \"', seq, '\"'), seq / 4 FROM seq_1_to_300;
         INSERT INTO votes SELECT seq, seq % 300 + 1, IF(seq % 2, 'up', 'down') FROM seq_1_to_500;
         INSERT INTO post_history SELECT seq, seq, CONCAT('line 1\nline ', seq) FROM seq_1_to_200;
         INSERT INTO users SELECT seq, CONCAT('user', seq) FROM seq_1_to_50;",
    )
    .await
    .unwrap();
    let mut root = mysql_async::Conn::new(mysql_async::Opts::from_url(&my_url("")).unwrap())
        .await
        .unwrap();
    // The privileges DMS documents for a MySQL source, and RELOAD for the consistent snapshot.
    root.query_drop(format!(
        "CREATE USER IF NOT EXISTS 'dms_user'@'%' IDENTIFIED BY '{PASSWORD}';
         GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'dms_user'@'%'"
    ))
    .await
    .unwrap();
    let _ = root.disconnect().await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let d = d.as_path();
    let server = env("TRIBUTARY_TEST_MYSQL_URL");
    let hostport = server
        .trim_start_matches("mysql://")
        .rsplit_once('@')
        .unwrap()
        .1
        .trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').unwrap();
    let port: u64 = port.parse().unwrap();
    let task_json = fixture_into(d, "mysql-walkthrough-task.json", |_| {});
    // The exported endpoints, pointed at the private MariaDB; the walkthrough's hour-long CDC
    // batches are cut to one second so CDC files appear in test time. Nothing else changes.
    let endpoints = fixture_into(d, "mysql-walkthrough-endpoints.json", |v| {
        for ep in v["Endpoints"].as_array_mut().unwrap() {
            if ep["EngineName"] == "mysql" {
                ep["ServerName"] = host.into();
                ep["Port"] = port.into();
                ep["MySQLSettings"]["ServerName"] = host.into();
                ep["MySQLSettings"]["Port"] = port.into();
            } else {
                ep["S3Settings"]["CdcMaxBatchInterval"] = 1.into();
                let eca = ep["ExtraConnectionAttributes"]
                    .as_str()
                    .unwrap()
                    .replace("cdcMaxBatchInterval=3600", "cdcMaxBatchInterval=1");
                ep["ExtraConnectionAttributes"] = eca.into();
            }
        }
    });
    let toml = d.join("task.toml");
    let toml_s = toml.to_str().unwrap();
    let args = [
        "import-dms",
        "--task",
        &task_json,
        "--source-endpoint",
        &endpoints,
        "--target-endpoint",
        &endpoints,
        "-o",
        toml_s,
    ];
    let out = tributary_env(&args, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote"));
    // An existing file is kept unless --force.
    let again = tributary_env(&args, false);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(
        text.contains(&format!(
            "url = \"mysql://dms_user:${{{PASSWORD_ENV}}}@{host}:{port}/?ssl-mode=DISABLED\""
        )),
        "{text}"
    );

    // The one edit: the bucket becomes a local folder (same layout), so the test reads files.
    let lake = d.join("lake");
    let text = text.replace(
        "url = \"s3://mysql2s3walkthrough\"",
        &format!("url = \"file://{}\"", lake.display()),
    );
    assert!(text.contains("file://"));
    std::fs::write(&toml, &text).unwrap();

    // Without the password variable the file is refused, naming it; with it, valid.
    let out = tributary_env(&["validate", "--config", toml_s], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(PASSWORD_ENV));
    let out = tributary_env(&["validate", "--config", toml_s], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is ready to run"), "{stdout}");

    let task = Task {
        dir,
        path: toml.clone(),
    };
    let mut child = spawn_run(&task, 1);
    wait_streaming(&task, 1, &mut child);
    let loaded: BTreeMap<&str, Vec<Row>> = {
        let mut m = BTreeMap::new();
        for t in TABLES {
            m.insert(
                *t,
                my_rows(&mut conn, &format!("SELECT * FROM {t} ORDER BY id")).await,
            );
        }
        m
    };
    conn.query_drop(
        "INSERT INTO posts VALUES (1001, 'new, post', 1.25);
         UPDATE votes SET kind = 'flag' WHERE id <= 3;
         DELETE FROM post_history WHERE id > 190;
         UPDATE posts SET score = score + 1 WHERE id = 7;",
    )
    .await
    .unwrap();
    let lake2 = lake.clone();
    wait_for(
        &task,
        1,
        &mut child,
        60,
        "CDC files of three tables",
        move |fs| {
            ["posts", "votes", "post_history"].iter().all(|t| {
                fs.iter().any(|f| {
                    f.starts_with(&format!("endpoint1/dms_sample/{t}/"))
                        && !f.rsplit('/').next().unwrap().starts_with("LOAD")
                        && std::fs::metadata(lake2.join(f)).is_ok()
                })
            })
        },
    );
    // The CDC files hold every change once the second post update is in: wait for it.
    wait_for(&task, 1, &mut child, 60, "the last change", |fs| {
        fs.iter()
            .filter(|f| f.starts_with("endpoint1/dms_sample/posts/2"))
            .any(|f| {
                std::fs::read_to_string(lake.join(f))
                    .map(|t| t.lines().any(|l| l.starts_with("U,7,")))
                    .unwrap_or(false)
            })
    });
    terminate(&task, 1, child);

    // The walkthrough's layout and nothing else.
    let all = files(&lake);
    for f in &all {
        let parts: Vec<&str> = f.split('/').collect();
        assert_eq!(&parts[..2], ["endpoint1", "dms_sample"], "{f}");
        assert!(TABLES.contains(&parts[2]), "{f}");
        match parts.len() {
            4 => assert!(
                parts[3].starts_with("LOAD") && parts[3].ends_with(".csv"),
                "{f}"
            ),
            7 => {
                // YYYY/MM/DD/YYYYMMDD-HHMMSSsss.csv, the folder agreeing with the name.
                let name = parts[6];
                assert_eq!(name.len(), "20261130-101502123.csv".len(), "{f}");
                assert_eq!(
                    &name[..8],
                    format!("{}{}{}", parts[3], parts[4], parts[5]),
                    "{f}"
                );
            }
            _ => panic!("unexpected key {f}\n{}", log(&task, 1)),
        }
    }
    for t in TABLES {
        assert!(
            all.contains(&format!("endpoint1/dms_sample/{t}/LOAD00000001.csv")),
            "{t}: {all:?}"
        );
    }
    // Full-load rows equal the source at the load; the replayed files equal it now.
    for t in TABLES {
        let (load_rows, state) = replay(&lake, &format!("endpoint1/dms_sample/{t}/"));
        assert_eq!(load_rows, loaded[t].len(), "{t}: full-load rows");
        let now = my_rows(&mut conn, &format!("SELECT * FROM {t} ORDER BY id")).await;
        let mut replayed: Vec<Row> = state.into_values().collect();
        replayed.sort_by_key(|r| r[0].as_deref().unwrap().parse::<i64>().unwrap());
        assert_rows_eq(&replayed, &now, t);
    }
}

/// Host and port of a server URL (`scheme://user@host:port/...`).
fn host_port(url: &str) -> (String, u64) {
    let after = url.split_once("://").unwrap().1;
    let hostport = after.rsplit_once('@').map_or(after, |(_, h)| h);
    let hostport = hostport.split('/').next().unwrap();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_walkthrough_imports_validates_and_runs() {
    let db = "import_pg_walk";
    // A slot left in the database by an earlier run would keep it from being dropped.
    let admin = connect(&pg_url("postgres")).await;
    admin
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{db}';
             DO $$ BEGIN CREATE ROLE dms_user LOGIN SUPERUSER PASSWORD '{PASSWORD}';
             EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        ))
        .await
        .unwrap();
    // The walkthrough's insurance schema: claim (segmented by claim_requested_timestamp
    // ranges, 2013..2022) and policy.
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA insurance;
             CREATE TABLE insurance.claim (id int PRIMARY KEY, claim_requested_timestamp timestamp,
                 amount numeric(10,2));
             CREATE TABLE insurance.policy (id int PRIMARY KEY, holder text);
             INSERT INTO insurance.claim SELECT g, timestamp '2012-01-01' + g * interval '3 days',
                 g / 8.0 FROM generate_series(1, 1300) g;
             INSERT INTO insurance.policy SELECT g, 'holder, ' || g FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (host, port) = host_port(&env("TRIBUTARY_TEST_PG_URL"));
    let task_json = fixture_into(&d, "pg-walkthrough-task.json", |_| {});
    let source = fixture_into(&d, "pg-walkthrough-source.json", |v| {
        for path in ["/Endpoints/0", "/Endpoints/0/PostgreSQLSettings"] {
            let obj = v.pointer_mut(path).unwrap();
            obj["ServerName"] = host.clone().into();
            obj["Port"] = port.into();
            obj["DatabaseName"] = db.into();
        }
    });
    // As for MySQL: CDC batches of one second instead of an hour.
    let target = fixture_into(&d, "pg-walkthrough-target.json", |v| {
        let ep = &mut v["Endpoints"][0];
        ep["S3Settings"]["CdcMaxBatchInterval"] = 1.into();
        let eca = ep["ExtraConnectionAttributes"]
            .as_str()
            .unwrap()
            .replace("cdcMaxBatchInterval=3600", "cdcMaxBatchInterval=1");
        ep["ExtraConnectionAttributes"] = eca.into();
    });
    let out = tributary_env(
        &[
            "import-dms",
            "--task",
            &task_json,
            "--source-endpoint",
            &source,
            "--target-endpoint",
            &target,
        ],
        false,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "url = \"postgres://dms_user:${{{PASSWORD_ENV}}}@{host}:{port}/{db}?sslmode=disable\""
        )),
        "{text}"
    );
    let lake = d.join("lake");
    let text = text.replace(
        "url = \"s3://insurance-policy-datalake\"",
        &format!("url = \"file://{}\"", lake.display()),
    );
    let toml = d.join("task.toml");
    std::fs::write(&toml, &text).unwrap();
    let toml_s = toml.to_str().unwrap();
    let out = tributary_env(&["validate", "--config", toml_s], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let task = Task {
        dir,
        path: toml.clone(),
    };
    let mut child = spawn_run(&task, 1);
    wait_streaming(&task, 1, &mut child);
    client
        .batch_execute(
            "INSERT INTO insurance.claim VALUES (5000, '2024-05-01', 99.50);
             DELETE FROM insurance.claim WHERE id <= 5;
             UPDATE insurance.policy SET holder = 'changed' WHERE id = 42;",
        )
        .await
        .unwrap();
    let cdc = |fs: &[String], t: &str, needle: &str| {
        fs.iter()
            .filter(|f| {
                f.starts_with(&format!("US-WEST-DATA/insurance/{t}/"))
                    && !f.rsplit('/').next().unwrap().contains("LOAD")
            })
            .any(|f| {
                std::fs::read_to_string(lake.join(f))
                    .map(|x| x.lines().any(|l| l.starts_with(needle)))
                    .unwrap_or(false)
            })
    };
    wait_for(&task, 1, &mut child, 60, "the CDC files", |fs| {
        cdc(fs, "claim", "I,5000,") && cdc(fs, "claim", "D,5,") && cdc(fs, "policy", "U,42,")
    });
    terminate(&task, 1, child);

    // LOAD files: claim in the rule's unnamed range segments, policy whole; CDC files in one
    // YYYYMMDD folder (DatePartitionDelimiter NONE).
    let all = files(&lake);
    let claim_segments = all
        .iter()
        .filter(|f| {
            f.starts_with("US-WEST-DATA/insurance/claim/SEGMENT")
                && f.ends_with("_LOAD00000001.csv")
        })
        .count();
    assert!(claim_segments >= 10, "{all:?}");
    assert!(all.contains(&"US-WEST-DATA/insurance/policy/LOAD00000001.csv".to_string()));
    for f in &all {
        let parts: Vec<&str> = f.split('/').collect();
        assert_eq!(&parts[..2], ["US-WEST-DATA", "insurance"], "{f}");
        if parts.len() == 5 {
            assert_eq!(parts[3].len(), 8, "{f}");
            assert!(parts[4].starts_with(parts[3]), "{f}");
        } else {
            assert_eq!(parts.len(), 4, "{f}");
            assert!(parts[3].contains("LOAD"), "{f}");
        }
    }
    for (t, cols) in [
        ("claim", "id::text, amount::text"),
        ("policy", "id::text, holder"),
    ] {
        let (load_rows, state) = replay(&lake, &format!("US-WEST-DATA/insurance/{t}/"));
        assert_eq!(load_rows, if t == "claim" { 1300 } else { 100 }, "{t}");
        let now = query_rows(
            &client,
            &format!("SELECT {cols} FROM insurance.{t} t ORDER BY t.id"),
        )
        .await;
        let mut replayed: Vec<Row> = state
            .into_values()
            .map(|r| vec![r[0].clone(), r.last().cloned().flatten()])
            .collect();
        replayed.sort_by_key(|r| r[0].as_deref().unwrap().parse::<i64>().unwrap());
        assert_rows_eq(&replayed, &now, t);
    }
    // The slot this task made would keep the next run from recreating the database.
    drop_slots(db).await;
}
