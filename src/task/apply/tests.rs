//! The apply loop's cases without servers: a scripted change stream and a fault-injecting
//! store, on tokio's paused clock (backoff waits take no time).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::change::{Lsn, RowBatch};
use crate::checkpoint::{PendingFile, SeriesState};
use crate::config::TaskConfig;
use crate::error::ErrorKind;
use crate::layout::Layout;
use crate::state::StateStore;
use crate::store::{LocalStore, ObjectWriter, Store};
use crate::writer::cdc::SystemClock;

/// One step of a script.
#[derive(Clone)]
enum Ev {
    /// A transaction at commit LSN `.0`, committed at `.1` µs.
    Begin(u64, i64),
    /// Table `s.t` has these columns from now on.
    Shape(&'static [&'static str]),
    /// A row change of `s.t` with these cell values.
    Row(Op, &'static [&'static str]),
    /// TRUNCATE of `s.t`.
    Truncate,
    /// The transaction ends; the next starts at `.0`.
    Commit(u64),
    /// The connection is lost here (once).
    Fail,
    /// The source cannot decode this change of `s.t`: an error of this kind.
    Refused(ErrorKind),
}

/// A change stream that plays a script, like a source re-reading its log after a restart:
/// `start(P)` replays from the first transaction at or after P.
struct Scripted {
    events: Vec<Ev>,
    at: usize,
    fired: HashSet<usize>,
    txn: Option<u64>,
    seq: u64,
    /// Where each session started.
    starts: Vec<Position>,
    /// Sessions that fail to start before one succeeds.
    refuse: usize,
    /// Cancelled when the script is played out (stops the task).
    done: CancellationToken,
}

impl Scripted {
    fn new(events: Vec<Ev>, done: CancellationToken) -> Scripted {
        Scripted {
            events,
            at: 0,
            fired: HashSet::new(),
            txn: None,
            seq: 0,
            starts: Vec::new(),
            refuse: 0,
            done,
        }
    }
}

fn lsn(p: &Position) -> u64 {
    match p {
        Position::Postgres(l) => l.0,
        Position::MySql(_) => unreachable!("scripts use LSNs"),
    }
}

fn lost() -> Error {
    Error::new(ErrorKind::SourceConnect, "connection lost", "it comes back")
}

fn shape(cols: &[&str]) -> Arc<TableSchema> {
    TableSchema::text_for_test(cols)
}

#[async_trait]
impl ChangeStream for Scripted {
    async fn start(&mut self, from: &Position) -> Result<()> {
        if self.refuse > 0 {
            self.refuse -= 1;
            return Err(lost());
        }
        self.starts.push(from.clone());
        let from = lsn(from);
        self.at = self
            .events
            .iter()
            .position(|e| matches!(e, Ev::Begin(l, _) if *l >= from))
            .unwrap_or(self.events.len());
        self.txn = None;
        Ok(())
    }

    async fn ready(&mut self) -> Result<()> {
        if self.at >= self.events.len() {
            self.done.cancel();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn apply(&mut self, sink: &mut dyn ChangeSink) -> Result<()> {
        let i = self.at;
        self.at += 1;
        let pos = |txn: Option<u64>, seq| ChangePos {
            commit: Position::Postgres(Lsn(txn.unwrap())),
            seq,
        };
        match self.events[i].clone() {
            Ev::Begin(l, t) => {
                self.txn = Some(l);
                self.seq = 0;
                sink.begin(&Position::Postgres(Lsn(l)), t);
            }
            Ev::Shape(cols) => sink.shape(&shape(cols)).await?,
            Ev::Row(op, values) => {
                self.seq += 1;
                let fill = &mut |out: &mut RowBatch| {
                    values.iter().for_each(|v| out.push_cell(v.as_bytes()));
                    Ok(0)
                };
                sink.change("s.t", op, pos(self.txn, self.seq), fill)
                    .await?;
            }
            Ev::Truncate => {
                self.seq += 1;
                sink.truncate("s", "t", pos(self.txn, self.seq)).await?;
            }
            Ev::Commit(next) => {
                self.txn = None;
                sink.commit(&Position::Postgres(Lsn(next)));
            }
            Ev::Refused(kind) => {
                self.seq += 1;
                let e = Error::new(kind, "column v: refused", "fix it");
                sink.table_error("s.t", pos(self.txn, self.seq), e).await?;
            }
            Ev::Fail => {
                if self.fired.insert(i) {
                    return Err(lost());
                }
            }
        }
        Ok(())
    }

    fn confirm(&mut self, _pos: &Position) {}

    async fn stop(&mut self) {}
}

/// A local store whose uploads fail to complete while `failures` is above zero.
struct Faulty {
    inner: LocalStore,
    failures: Arc<AtomicUsize>,
}

struct FaultyWriter {
    inner: Box<dyn ObjectWriter>,
    failures: Arc<AtomicUsize>,
}

#[async_trait]
impl ObjectWriter for FaultyWriter {
    async fn write(&mut self, data: bytes::Bytes) -> Result<()> {
        self.inner.write(data).await
    }
    async fn finish(self: Box<Self>) -> Result<u64> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            self.inner.abort().await?;
            return Err(Error::new(ErrorKind::TargetWrite, "S3 is down", "wait"));
        }
        self.inner.finish().await
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl Store for Faulty {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(FaultyWriter {
            inner: self.inner.create(key).await?,
            failures: self.failures.clone(),
        }))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }
    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.inner.delete(keys).await
    }
    async fn remove_abandoned(&self, prefix: &str) -> Result<usize> {
        self.inner.remove_abandoned(prefix).await
    }
    async fn check_writable(&self, folder: &str) -> Result<()> {
        self.inner.check_writable(folder).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A CDC task on a local folder, with extra `[task]` lines and `[target.settings]`.
fn task(dir: &Path, extra: &str, settings: &str) -> TaskConfig {
    let text = format!(
        r#"[task]
id = "t"
migration_type = "cdc"
{extra}
table_mappings = '''{{"rules":[{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"s","table-name":"%"}},"rule-action":"include"}}]}}'''
[source]
engine = "postgres"
url = "postgres://u@h/db"
[target]
url = "file://{}/lake"
[target.settings]
{settings}
"#,
        dir.display()
    );
    TaskConfig::parse(&text, dir, &|_| None).unwrap()
}

/// What one run of the loop left: its result, the checkpoint, and every CSV line written.
struct Outcome {
    result: Result<Stopped>,
    cp: Checkpoint,
    files: Vec<(String, Vec<String>)>,
    /// Every row written, in file order.
    rows: Vec<String>,
    starts: Vec<Position>,
}

/// Runs the loop over `script` from `cp` until the script is played out (or, when
/// `cancel_after` is set, until a signal then); the first `refuse` sessions fail to start.
async fn play(
    dir: &Path,
    task: &TaskConfig,
    cp: Checkpoint,
    script: Vec<Ev>,
    store: &dyn Store,
    refuse: usize,
    cancel_after: Option<Duration>,
) -> Outcome {
    let layout = Layout {
        bucket_folder: String::new(),
        format: task.target.settings.data_format,
        compression: task.target.settings.compression,
        date_partition: None,
        names: Default::default(),
        tags: Default::default(),
    };
    let checkpoints = StateStore::local(&dir.join("state"), "t");
    let cancel = CancellationToken::new();
    let ctx = Context {
        task,
        store,
        layout: &layout,
        checkpoints: &checkpoints,
        progress: false,
        cancel: cancel.clone(),
    };
    if let Some(after) = cancel_after {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        });
    }
    let mut stream = Scripted::new(script, cancel);
    stream.refuse = refuse;
    let mut cp = cp;
    let result = Apply::new(&ctx, &mut cp, Arc::new(SystemClock))
        .run(&mut stream)
        .await;
    let mut files = Vec::new();
    for key in store.list("").await.unwrap() {
        let text = std::fs::read_to_string(dir.join("lake").join(&key)).unwrap();
        files.push((key, text.lines().map(str::to_string).collect::<Vec<_>>()));
    }
    assert_eq!(
        checkpoints.load().await.unwrap().as_ref(),
        Some(&cp),
        "saved state"
    );
    Outcome {
        result,
        cp,
        rows: files.iter().flat_map(|(_, l)| l.clone()).collect(),
        files,
        starts: stream.starts,
    }
}

/// A checkpoint streaming from LSN `from`.
fn streaming_from(from: u64) -> Checkpoint {
    let mut cp = Checkpoint::new("t", String::new(), chrono::Utc::now());
    cp.cdc_mut().resume_from = Some(Position::Postgres(Lsn(from)));
    cp
}

fn written_through(cp: &Checkpoint) -> Option<ChangePos> {
    cp.cdc.as_ref()?.tables[&StreamKey::Table("s.t".into())]
        .written_through
        .clone()
}

/// Two transactions of three and one rows.
fn two_transactions(fail_in_first: bool) -> Vec<Ev> {
    let mut s = vec![
        Ev::Begin(10, 1),
        Ev::Shape(&["v"]),
        Ev::Row(Op::Insert, &["a"]),
        Ev::Row(Op::Insert, &["b"]),
    ];
    if fail_in_first {
        s.push(Ev::Fail);
    }
    s.extend([
        Ev::Row(Op::Update, &["c"]),
        Ev::Commit(11),
        Ev::Begin(20, 2),
        Ev::Shape(&["v"]),
        Ev::Row(Op::Delete, &["a"]),
        Ev::Commit(21),
    ]);
    s
}

#[tokio::test(start_paused = true)]
async fn reconnect_mid_transaction_writes_every_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    let out = play(
        dir.path(),
        &t,
        streaming_from(5),
        two_transactions(true),
        &store,
        0,
        None,
    )
    .await;
    assert_eq!(out.result.unwrap(), Stopped::Signal);
    assert_eq!(out.rows, ["I,a", "I,b", "U,c", "D,a"]);
    // The second session re-read the interrupted transaction from its start.
    assert_eq!(
        out.starts,
        [Position::Postgres(Lsn(5)), Position::Postgres(Lsn(10))]
    );
    assert_eq!(
        out.cp.cdc.as_ref().unwrap().resume_from,
        Some(Position::Postgres(Lsn(21)))
    );
    let stats = &out.cp.tables["s.t"];
    assert_eq!((stats.inserts, stats.updates, stats.deletes), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn target_outage_is_ridden_out_and_nothing_is_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    // Every transaction closes its file (1 KB files), so completions fail mid-stream.
    let t = task(dir.path(), "", "CdcMinFileSize = 1");
    let failures = Arc::new(AtomicUsize::new(3));
    let store = Faulty {
        inner: LocalStore::new(dir.path().join("lake")),
        failures: failures.clone(),
    };
    let mut script = two_transactions(false);
    let big: &'static str = Box::leak("x".repeat(1100).into_boxed_str());
    let rows: &'static [&'static str] = Box::leak(vec![big].into_boxed_slice());
    script.insert(4, Ev::Row(Op::Insert, rows));
    let out = play(dir.path(), &t, streaming_from(5), script, &store, 0, None).await;
    assert_eq!(out.result.unwrap(), Stopped::Signal);
    assert_eq!(failures.load(Ordering::SeqCst), 0, "the outage happened");
    let rows = &out.rows;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.starts_with("I,x")).count(), 1);
    assert_eq!(
        out.starts.len(),
        4,
        "three failed completions, three reconnects"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_during_backoff_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    // The source never comes back; a signal arrives ten minutes into the retries.
    let stop = Some(Duration::from_secs(600));
    let script = two_transactions(false);
    let out = play(
        dir.path(),
        &t,
        streaming_from(5),
        script,
        &store,
        usize::MAX,
        stop,
    )
    .await;
    assert_eq!(out.result.unwrap(), Stopped::Signal);
    assert!(out.files.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_source_that_never_returns_exhausts_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    let out = play(
        dir.path(),
        &t,
        streaming_from(5),
        vec![],
        &store,
        usize::MAX,
        None,
    )
    .await;
    let e = out.result.unwrap_err();
    assert_eq!(e.kind, ErrorKind::SourceConnect);
    assert!(e.message.contains("30 min"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_shape_change_closes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "AddColumnName = true");
    let store = LocalStore::new(dir.path().join("lake"));
    let mut cp = streaming_from(5);
    cp.tables.insert("s.t".into(), Default::default());
    let script = vec![
        Ev::Begin(10, 1),
        Ev::Shape(&["v"]),
        Ev::Row(Op::Insert, &["a"]),
        Ev::Shape(&["v", "w"]),
        Ev::Row(Op::Insert, &["b", "c"]),
        Ev::Commit(11),
    ];
    let out = play(dir.path(), &t, cp, script, &store, 0, None).await;
    out.result.unwrap();
    let contents: Vec<Vec<String>> = out.files.iter().map(|(_, l)| l.clone()).collect();
    assert_eq!(contents, [vec!["Op,v", "I,a"], vec!["Op,v,w", "I,b,c"]]);
    assert_eq!(out.cp.tables["s.t"].ddls, 1);
}

/// A shape change is counted once whether the connection is lost after it was applied (the
/// next session meets it again) or before (the next session meets it first).
#[tokio::test(start_paused = true)]
async fn a_shape_change_met_again_after_a_reconnect_counts_once() {
    for fail_after_shape in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path(), "", "");
        let store = LocalStore::new(dir.path().join("lake"));
        let mut cp = streaming_from(5);
        cp.tables.insert("s.t".into(), Default::default());
        let mut script = vec![
            Ev::Begin(10, 1),
            Ev::Shape(&["v"]),
            Ev::Row(Op::Insert, &["a"]),
            Ev::Commit(11),
            Ev::Begin(12, 2),
            Ev::Shape(&["v", "w"]),
            Ev::Row(Op::Insert, &["b", "c"]),
            Ev::Commit(13),
        ];
        script.insert(if fail_after_shape { 6 } else { 5 }, Ev::Fail);
        let out = play(dir.path(), &t, cp, script, &store, 0, None).await;
        out.result.unwrap();
        assert_eq!(
            out.cp.tables["s.t"].ddls, 1,
            "fail after shape: {fail_after_shape}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn truncate_deletes_the_tables_objects_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    let mut w = store.create("s/t/LOAD00000001.csv").await.unwrap();
    w.write(bytes::Bytes::from_static(b"old\n")).await.unwrap();
    w.finish().await.unwrap();
    let script = vec![
        Ev::Begin(10, 1),
        Ev::Shape(&["v"]),
        Ev::Row(Op::Insert, &["gone"]),
        Ev::Truncate,
        Ev::Row(Op::Insert, &["kept"]),
        Ev::Commit(11),
    ];
    let out = play(
        dir.path(),
        &t,
        streaming_from(5),
        script.clone(),
        &store,
        0,
        None,
    )
    .await;
    out.result.unwrap();
    assert_eq!(out.rows, ["I,kept"]);
    // A rerun from before the truncate (a crash before the position moved) repeats nothing.
    let mut cp = out.cp.clone();
    cp.cdc_mut().resume_from = Some(Position::Postgres(Lsn(5)));
    let again = play(dir.path(), &t, cp, script, &store, 0, None).await;
    again.result.unwrap();
    assert_eq!(again.rows, ["I,kept"]);
}

#[tokio::test(start_paused = true)]
async fn the_commit_time_stop_writes_the_transactions_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(
        dir.path(),
        "cdc_stop_position = \"commit_time:1970-01-01T00:00:00.000001\"",
        "",
    );
    let store = LocalStore::new(dir.path().join("lake"));
    let out = play(
        dir.path(),
        &t,
        streaming_from(5),
        two_transactions(false),
        &store,
        0,
        None,
    )
    .await;
    assert_eq!(out.result.unwrap(), Stopped::CommitTime);
    assert_eq!(out.rows, ["I,a", "I,b", "U,c"]);
    assert_eq!(
        out.cp.cdc.as_ref().unwrap().resume_from,
        Some(Position::Postgres(Lsn(11)))
    );
}

/// A crash left a pending file: when its object exists it counts (its changes are not written
/// again), when it does not its changes are written again.
#[tokio::test(start_paused = true)]
async fn pending_files_are_resolved_by_asking_the_store() {
    for uploaded in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path(), "", "");
        let store = LocalStore::new(dir.path().join("lake"));
        let key = "s/t/20220101-000000000.csv";
        if uploaded {
            let mut w = store.create(key).await.unwrap();
            w.write(bytes::Bytes::from_static(b"I,a\nI,b\n"))
                .await
                .unwrap();
            w.finish().await.unwrap();
        }
        let mut cp = streaming_from(5);
        let through = ChangePos {
            commit: Position::Postgres(Lsn(10)),
            seq: 2,
        };
        let mut counts = crate::checkpoint::FileCounts::default();
        counts.ops.inserts = 2;
        cp.cdc_mut().tables.insert(
            StreamKey::Table("s.t".into()),
            SeriesState {
                last_stamp: Some("20220101000000000".into()),
                pending: Some(PendingFile {
                    key: key.into(),
                    through: through.clone(),
                    counts,
                    per_table: Default::default(),
                }),
                ..SeriesState::default()
            },
        );
        let out = play(dir.path(), &t, cp, two_transactions(false), &store, 0, None).await;
        out.result.unwrap();
        assert_eq!(
            out.rows,
            ["I,a", "I,b", "U,c", "D,a"],
            "uploaded: {uploaded}"
        );
        assert_eq!(out.cp.tables["s.t"].inserts, 2);
        assert!(written_through(&out.cp) > Some(through));
    }
}

/// The per-table `loaded_at` hides changes of transactions before the table's snapshot.
#[tokio::test(start_paused = true)]
async fn changes_before_a_tables_snapshot_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    let mut cp = streaming_from(5);
    cp.cdc_mut()
        .series(&StreamKey::Table("s.t".into()))
        .loaded_at = Some(Position::Postgres(Lsn(15)));
    let out = play(dir.path(), &t, cp, two_transactions(false), &store, 0, None).await;
    out.result.unwrap();
    assert_eq!(out.rows, ["D,a"]);
}

#[test]
fn flush_policy_size_and_age() {
    let p = FlushPolicy {
        min_file_bytes: 1000,
        max_interval: Duration::from_secs(60),
        memory_budget: 1,
    };
    let f = |raw_bytes, opened_ms| FileStats {
        raw_bytes,
        opened_ms,
    };
    assert_eq!(p.due(&f(10, 0), 59_999), None);
    assert_eq!(p.due(&f(10, 0), 60_000), Some(SealReason::Interval));
    assert_eq!(p.due(&f(1000, 0), 1), Some(SealReason::Size));
    assert_eq!(p.due_in(1_000, 31_000), Duration::from_secs(30));
    assert_eq!(p.due_in(0, 90_000), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_stops_without_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    // A row whose cells do not match the shape: an internal error, not retryable.
    let script = vec![
        Ev::Begin(10, 1),
        Ev::Shape(&["v"]),
        Ev::Row(Op::Insert, &["a"]),
        Ev::Row(Op::Insert, &["b", "extra"]),
        Ev::Commit(11),
    ];
    let out = play(dir.path(), &t, streaming_from(5), script, &store, 0, None).await;
    assert_eq!(out.result.unwrap_err().kind, ErrorKind::Internal);
    assert!(out.files.is_empty(), "{:?}", out.files);
}

/// Two transactions where the source refuses the second change of the first.
fn refused_in_first(kind: ErrorKind) -> Vec<Ev> {
    let mut s = two_transactions(false);
    s.insert(3, Ev::Refused(kind));
    s
}

/// A change the source cannot decode suspends its table (`TableErrorPolicy` SUSPEND_TABLE):
/// what came before is written, nothing after; the stream goes on past it, the table's
/// position is kept and the error names the table, the change and its LSN.
#[tokio::test(start_paused = true)]
async fn a_change_the_source_refuses_suspends_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    let script = refused_in_first(ErrorKind::SourceSchema);
    let out = play(dir.path(), &t, streaming_from(5), script, &store, 0, None).await;
    out.result.unwrap();
    assert_eq!(out.rows, ["I,a"]);
    let cdc = out.cp.cdc.as_ref().unwrap();
    let series = &cdc.tables[&StreamKey::Table("s.t".into())];
    assert_eq!(series.suspended_at, Some(Position::Postgres(Lsn(10))));
    assert_eq!(cdc.resume_from, Some(Position::Postgres(Lsn(21))));
    let stats = &out.cp.tables["s.t"];
    assert_eq!(stats.table_state, TableState::Error);
    let error = stats.error.as_deref().unwrap();
    assert!(
        error == "table s.t: column v: refused (at change #2 of the transaction committed at LSN 0/A); fix it",
        "{error}"
    );
}

/// `TableErrorPolicy` STOP_TASK: the refused change stops the task with its error.
#[tokio::test(start_paused = true)]
async fn a_refused_change_stops_the_task_under_stop_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = task(dir.path(), "", "");
    t.settings.errors.table = crate::config::errors::Policy::StopTask;
    let store = LocalStore::new(dir.path().join("lake"));
    let script = refused_in_first(ErrorKind::SourceSchema);
    let out = play(dir.path(), &t, streaming_from(5), script, &store, 0, None).await;
    let e = out.result.unwrap_err();
    assert_eq!(e.kind, ErrorKind::SourceSchema);
    assert!(
        e.message
            .starts_with("table s.t: column v: refused (at change #2 "),
        "{e}"
    );
    assert!(out.files.is_empty(), "{:?}", out.files);
}

/// A refused value follows `DataErrorPolicy`: under LOG_ERROR the change is skipped and
/// counted, and the table goes on.
#[tokio::test(start_paused = true)]
async fn a_refused_value_follows_the_data_error_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = task(dir.path(), "", "");
    t.settings.errors.data = crate::config::errors::Policy::LogError;
    let store = LocalStore::new(dir.path().join("lake"));
    let script = refused_in_first(ErrorKind::Data);
    let out = play(dir.path(), &t, streaming_from(5), script, &store, 0, None).await;
    out.result.unwrap();
    assert_eq!(out.rows, ["I,a", "I,b", "U,c", "D,a"]);
    assert_eq!(out.cp.tables["s.t"].data_errors, 1);
    assert!(out.cp.suspended().is_empty());
}

/// A refused change older than the table's snapshot (a reload after the fix reads the log
/// from before it again) is not needed: the table is not suspended by it.
#[tokio::test(start_paused = true)]
async fn a_refused_change_before_the_tables_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "", "");
    let store = LocalStore::new(dir.path().join("lake"));
    let mut cp = streaming_from(5);
    cp.cdc_mut()
        .series(&StreamKey::Table("s.t".into()))
        .loaded_at = Some(Position::Postgres(Lsn(15)));
    let script = refused_in_first(ErrorKind::SourceSchema);
    let out = play(dir.path(), &t, cp, script, &store, 0, None).await;
    out.result.unwrap();
    assert_eq!(out.rows, ["D,a"]);
    assert!(out.cp.suspended().is_empty());
}

/// A new shape the table's rules cannot map (an `add-column` expression reads a column that is
/// gone) suspends the table at that transaction; the stream goes on.
#[tokio::test(start_paused = true)]
async fn a_shape_the_rules_cannot_map_suspends_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = task(dir.path(), "", "");
    t.mappings = crate::mapping::TableMappings::parse(
        r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"s","table-name":"%"},"rule-action":"include"},
        {"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"add-column","value":"v2","expression":"$v || 'x'","data-type":{"type":"string","length":10}}]}"#,
    )
    .unwrap();
    let store = LocalStore::new(dir.path().join("lake"));
    let mut script = two_transactions(false);
    script[7] = Ev::Shape(&["w"]);
    let out = play(dir.path(), &t, streaming_from(5), script, &store, 0, None).await;
    out.result.unwrap();
    assert_eq!(out.rows, ["I,a,ax", "I,b,bx", "U,c,cx"]);
    let series = &out.cp.cdc.as_ref().unwrap().tables[&StreamKey::Table("s.t".into())];
    assert_eq!(series.suspended_at, Some(Position::Postgres(Lsn(20))));
    let error = out.cp.tables["s.t"].error.as_deref().unwrap();
    assert!(
        error.starts_with("table s.t: table mapping rule 2")
            && error.contains("(at the new columns of the transaction committed at LSN 0/14)"),
        "{error}"
    );
    // Under STOP_TASK it stops the task as the table's schema error: exit 1, not the invalid
    // task file's 2 (the rules were valid when the task started).
    t.settings.errors.table = crate::config::errors::Policy::StopTask;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("lake"));
    let mut script = two_transactions(false);
    script[7] = Ev::Shape(&["w"]);
    let out = play(dir.path(), &t, streaming_from(5), script, &store, 0, None).await;
    let e = out.result.unwrap_err();
    assert_eq!((e.kind, e.exit_code()), (ErrorKind::SourceSchema, 1), "{e}");
}
