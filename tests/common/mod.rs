//! Shared harness: the private servers started by `scripts/test.sh`, a fresh database per test,
//! task files, running the real binary, and independent readers for the files it writes.

pub mod s3_front;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokio_postgres::{Client, NoTls};

/// A required environment variable set by `scripts/test.sh`.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through scripts/test.sh, which starts PostgreSQL, MariaDB and an S3 server")
    })
}

/// Superuser URL of the private PostgreSQL, for database `db`.
pub fn pg_url(db: &str) -> String {
    let base = env("TRIBUTARY_TEST_PG_URL");
    let (server, _) = base.rsplit_once('/').expect("URL has a database");
    format!("{server}/{db}")
}

/// Connects to `url`.
pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to test PostgreSQL");
    tokio::spawn(conn);
    client
}

/// Drops the replication slots on database `db` (a task that failed keeps its slot, and a
/// slot keeps its database from being dropped by the next run of the test).
pub async fn drop_slots(db: &str) {
    let admin = connect(&pg_url("postgres")).await;
    admin
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{db}'"
        ))
        .await
        .unwrap();
}

/// Creates (or recreates) database `name` and returns a client on it.
pub async fn fresh_db(name: &str) -> Client {
    let admin = connect(&pg_url("postgres")).await;
    // Two statements: DROP/CREATE DATABASE refuse to run inside one implicit transaction.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    connect(&pg_url(name)).await
}

/// A task file in a temporary folder.
pub struct Task {
    /// Holds the folder (deleted on drop).
    pub dir: tempfile::TempDir,
    /// The task file.
    pub path: PathBuf,
}

impl Task {
    /// Local lake folder of this task (`<dir>/lake`).
    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }
}

/// Writes a full-load task selecting `schema.%` from database `db`, with `target` lines and
/// `[target.settings]` lines given as TOML.
pub fn new_task(
    db: &str,
    schema: &str,
    target: Option<&str>,
    settings: &str,
    task_settings: &str,
) -> Task {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let target = target
        .map(str::to_string)
        .unwrap_or_else(|| format!("url = \"file://{}\"", lake.display()));
    let text = format!(
        r#"[task]
id = "t-{db}"
migration_type = "full-load"
table_mappings = '''{{"rules":[{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{schema}","table-name":"%"}},"rule-action":"include"}}]}}'''
[task.settings]
{task_settings}
[source]
engine = "postgres"
url = "{url}"
[target]
{target}
[target.settings]
{settings}
"#,
        url = pg_url(db)
    );
    let path = dir.path().join("task.toml");
    std::fs::write(&path, text).expect("write task file");
    Task { dir, path }
}

/// Runs the tributary binary with `args`.
pub fn tributary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .env("TRIBUTARY_LOG", "info")
        .output()
        .expect("run tributary")
}

/// Runs `tributary run --config <task>` and asserts success.
pub fn run_ok(task: &Task, extra: &[&str]) -> Output {
    let path = task.path.to_str().unwrap();
    let mut args = vec!["run", "--config", path, "--no-progress"];
    args.extend_from_slice(extra);
    let out = tributary(&args);
    assert!(
        out.status.success(),
        "tributary run failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// All files under `root`, relative, sorted.
pub fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// One row as optional strings (None = NULL).
pub type Row = Vec<Option<String>>;

/// Rows of a query whose columns are all text.
pub async fn query_rows(client: &Client, sql: &str) -> Vec<Row> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

/// An independent RFC 4180 reader (it must tell a quoted empty field from an empty one, which
/// the `csv` crate does not expose): fields equal to `null` and unquoted become None.
pub fn parse_csv(text: &str, delim: char, null: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let push = |row: &mut Row, field: &mut String, quoted: &mut bool| {
        let f = std::mem::take(field);
        row.push(if !*quoted && f == null { None } else { Some(f) });
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.is_empty() {
            in_quotes = true;
            quoted = true;
        } else if c == delim {
            push(&mut row, &mut field, &mut quoted);
        } else if c == '\n' {
            push(&mut row, &mut field, &mut quoted);
            rows.push(std::mem::take(&mut row));
        } else {
            field.push(c);
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "CSV does not end with a row delimiter"
    );
    rows
}

/// Compares two row sets cell by cell (floats numerically), with a readable failure.
pub fn assert_rows_eq(actual: &[Row], expected: &[Row], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: row count");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.len(), e.len(), "{what}: row {i} width\n{a:?}\n{e:?}");
        for (j, (x, y)) in a.iter().zip(e).enumerate() {
            let same = x == y
                || matches!((x, y), (Some(x), Some(y)) if x.parse::<f64>().ok().zip(y.parse::<f64>().ok()).is_some_and(|(p, q)| p == q || (p - q).abs() <= q.abs() * 1e-6));
            assert!(
                same,
                "{what}: row {i} column {j}: {x:?} != {y:?}\nactual   {a:?}\nexpected {e:?}"
            );
        }
    }
}

/// Random delays (ms, below `max`) for `kill -9` tests, seeded from the clock; the seed is
/// printed so a failing run can be told apart.
pub fn kill_times() -> impl FnMut(u64) -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    eprintln!("kill seed {seed}");
    // xorshift64: enough spread for timing, no dependency.
    let mut rng = seed | 1;
    move |max: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % max
    }
}
