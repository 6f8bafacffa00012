//! The full load: every selected table from one snapshot, `MaxFullLoadSubTasks` at a time, each
//! streamed source → writer → store, with the checkpoint updated when a table is durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
mod segment;

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::change::Position;
use crate::change::RowBatch;
use crate::checkpoint::{now, Checkpoint, TableState, TableStats};
use crate::config::errors::Policy;
use crate::config::PrepMode;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Layout;
use crate::mapping::segments::Segment;
use crate::mapping::{Lobs, TableMap};
use crate::progress::Progress;
use crate::retry::{self, Backoff};
use crate::source::{ReadOptions, ReadProgress, RowClock, Snapshot, SourceTable};
use crate::writer::load::LoadWriter;
use crate::writer::{EncodeSpec, Prepared};

/// Batches in flight between one table's reader and its writer (keeps both cores busy while
/// bounding memory to a few batches per table).
const CHANNEL_BATCHES: usize = 2;

/// Shared state of one full-load run.
pub(crate) struct FullLoad<'a> {
    ctx: &'a Context<'a>,
    /// The run's checkpoint, updated as tables progress.
    checkpoint: Mutex<Checkpoint>,
    progress: Progress,
    /// Cancelled on SIGINT/SIGTERM or on the first error that stops the task.
    cancel: CancellationToken,
    /// Set when `DataErrorEscalationPolicy` `STOP_TASK` escalated a table's data errors.
    stop_task: Arc<AtomicBool>,
    /// Tables that failed in this run (a segmented table counts one failure).
    failed: Mutex<HashSet<String>>,
    /// Segmented tables whose load this run has started (cleared per `TargetTablePrepMode`).
    started: Mutex<HashSet<String>>,
    /// `full-load-and-cdc`: the position the snapshot ends at (recorded per segment).
    handoff: Option<Position>,
}

/// What one table (or segment) load wrote.
struct Pumped {
    rows: u64,
    files: Vec<String>,
    bytes: u64,
    truncated: u64,
    data_errors: u64,
    /// Its progress line.
    shown: crate::progress::TableProgress,
}

impl<'a> FullLoad<'a> {
    /// A load recording its progress in `checkpoint`.
    pub(super) fn new(ctx: &'a Context<'a>, checkpoint: Checkpoint) -> FullLoad<'a> {
        FullLoad {
            ctx,
            checkpoint: Mutex::new(checkpoint),
            progress: Progress::new(ctx.progress),
            // A child: one table's error stops the others, and a signal stops them all.
            cancel: ctx.cancel.child_token(),
            stop_task: Arc::default(),
            failed: Mutex::default(),
            started: Mutex::default(),
            handoff: None,
        }
    }

    /// A load of the snapshot a change stream continues from `at`.
    pub(super) fn continued_at(mut self, at: Position) -> Self {
        self.handoff = Some(at);
        self
    }

    /// The checkpoint as the load left it.
    pub(super) fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint.into_inner()
    }

    /// Loads every table not yet completed in the checkpoint. Returns the first error after all
    /// running tables have stopped cleanly.
    pub(super) async fn run(
        &self,
        snapshot: &dyn Snapshot,
        mut tables: Vec<SourceTable>,
    ) -> Result<()> {
        self.plan_chunks(snapshot, &mut tables).await?;
        let clock = {
            let cp = self.checkpoint.lock().await;
            if self
                .ctx
                .task
                .target
                .settings
                .use_task_start_time_for_full_load_timestamp
            {
                RowClock::Fixed(cp.task_start_us)
            } else {
                RowClock::Transfer
            }
        };
        // The units of work: whole tables, and each segment of a segmented table; all share
        // the snapshot and the MaxFullLoadSubTasks readers.
        let units: Vec<(Arc<SourceTable>, Option<usize>)> = tables
            .into_iter()
            .map(Arc::new)
            .flat_map(|t| {
                let n = t.segments.len();
                let parts: Vec<Option<usize>> = match n {
                    0 => vec![None],
                    _ => (0..n).map(Some).collect(),
                };
                parts.into_iter().map(move |p| (t.clone(), p))
            })
            .collect();
        let concurrent = units.len().min(self.ctx.task.settings.max_sub_tasks);
        let opts = ReadOptions {
            clock,
            lob_max_bytes: self.ctx.task.settings.lob_max_bytes,
            // Memory stays bounded however many units run at once.
            batch_bytes: crate::source::batch_bytes_for(concurrent),
        };
        let results: Vec<Result<()>> = futures::stream::iter(units)
            .map(|(t, segment)| async move {
                let loaded = self.load_unit(snapshot, &t, segment, opts).await;
                let r = match loaded {
                    Err(e) if self.suspends(&e) => self.suspend(&t, e).await,
                    r => r,
                };
                if r.is_err() {
                    self.cancel.cancel();
                }
                r
            })
            .buffer_unordered(self.ctx.task.settings.max_sub_tasks)
            .collect()
            .await;
        // Report the root cause, not the cancellations it triggered in sibling tables.
        let mut errors: Vec<Error> = results.into_iter().filter_map(|r| r.err()).collect();
        errors.sort_by_key(|e| e.kind == ErrorKind::Interrupted);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Loads one unit (a table, or a segment of one), loading it again from the same snapshot
    /// after a lost source connection, with the reconnect policy's backoff.
    async fn load_unit(
        &self,
        snapshot: &dyn Snapshot,
        table: &SourceTable,
        segment: Option<usize>,
        opts: ReadOptions,
    ) -> Result<()> {
        let mut backoff = Backoff::new(retry::RECONNECT);
        loop {
            let r = match segment {
                None => self.load_table(snapshot, table, opts).await,
                Some(i) => self.load_segment(snapshot, table, i, opts).await,
            };
            // Only the source: a target outage has had the store's own retries already.
            let e = match r {
                Err(e) if e.kind == ErrorKind::SourceConnect && !self.cancel.is_cancelled() => e,
                r => return r,
            };
            let Some(wait) = backoff.failed() else {
                let key = table.schema.qualified();
                return self.failed(&key, e).await;
            };
            tracing::warn!(table = %table.schema.qualified(), error = %e, retry_in_ms = wait.as_millis() as u64, "lost the source connection while loading; loading it again from the same snapshot");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.cancel.cancelled() => return Err(interrupted()),
            }
        }
    }

    /// True when `e`, which ended one table's load, suspends only that table (`ErrorBehavior`).
    fn suspends(&self, e: &Error) -> bool {
        let errors = &self.ctx.task.settings.errors;
        if self.stop_task.load(Ordering::Relaxed) || !e.table_scoped() {
            return false;
        }
        match e.kind {
            ErrorKind::Data => errors.data != Policy::StopTask,
            _ => errors.table == Policy::SuspendTable,
        }
    }

    /// Leaves `table` in error (its files of this attempt are already removed) while the
    /// others go on — unless it failed `TableErrorEscalationCount` times, which stops the task.
    async fn suspend(&self, table: &SourceTable, e: Error) -> Result<()> {
        let key = table.schema.qualified();
        let failures = self
            .checkpoint
            .lock()
            .await
            .tables
            .get(&key)
            .map_or(1, |s| s.table_errors);
        if let Some(limit) = self.ctx.task.settings.errors.table_escalation {
            if failures >= limit {
                return Err(e.context(format!(
                    "table {key} failed {failures} times (TableErrorEscalationCount = {limit})"
                )));
            }
        }
        tracing::error!(table = %key, error = %e, "table suspended (TableErrorPolicy=SUSPEND_TABLE): the other tables go on; rerun the task to load it again");
        Ok(())
    }

    async fn update(&self, key: &str, f: impl FnOnce(&mut TableStats)) -> Result<()> {
        let mut cp = self.checkpoint.lock().await;
        let stats = cp.tables.entry(key.to_string()).or_default();
        f(stats);
        stats.last_update_time = Some(now());
        self.ctx.checkpoints.save(&cp).await
    }

    /// Decides the first LOAD counter and clears what the prep mode (or a resume) says to clear.
    async fn prepare(&self, table: &SourceTable, previous: Option<&TableStats>) -> Result<u64> {
        let (store, layout) = (self.ctx.store, self.ctx.layout);
        let prefix = layout.table_prefix(&table.schema.schema, &table.schema.table);
        let swept = store.remove_abandoned(&prefix).await?;
        if swept > 0 {
            tracing::info!(table = %table.schema.qualified(), files = swept, "removed temporary files of an interrupted run");
        }
        let existing = store.list(&prefix).await?;
        let load_counter = |key: &str| {
            let name = key.rsplit('/').next().unwrap_or(key);
            Layout::parse_load_counter(name)
                .map(u64::from)
                .filter(|_| !key[prefix.len()..].contains('/'))
        };
        // Resuming a table that was loading: remove what that attempt wrote, reuse its numbers.
        if let Some(first) = previous.and_then(|p| p.first_load_file) {
            let partial: Vec<String> = existing
                .iter()
                .filter(|k| load_counter(k).is_some_and(|c| c >= first))
                .cloned()
                .collect();
            if !partial.is_empty() {
                tracing::info!(table = %table.schema.qualified(), files = partial.len(), "removing files of the interrupted load");
            }
            store.delete(&partial).await?;
            return Ok(first);
        }
        match self.ctx.task.settings.prep_mode {
            PrepMode::DropAndCreate | PrepMode::TruncateBeforeLoad => {
                if !existing.is_empty() {
                    tracing::info!(table = %table.schema.qualified(), objects = existing.len(), prefix = %prefix, "deleting existing objects (TargetTablePrepMode)");
                }
                store.delete(&existing).await?;
                Ok(1)
            }
            PrepMode::DoNothing => Ok(existing
                .iter()
                .filter_map(|k| load_counter(k))
                .max()
                .unwrap_or(0)
                + 1),
        }
    }

    async fn load_table(
        &self,
        snapshot: &dyn Snapshot,
        table: &SourceTable,
        opts: ReadOptions,
    ) -> Result<()> {
        let key = table.schema.qualified();
        let previous = self.checkpoint.lock().await.tables.get(&key).cloned();
        if previous
            .as_ref()
            .is_some_and(|p| p.table_state == TableState::Completed)
        {
            tracing::info!(table = %key, "already loaded; skipping");
            return Ok(());
        }
        if self.cancel.is_cancelled() {
            return Err(interrupted());
        }
        let first = self.prepare(table, previous.as_ref()).await?;
        self.update(&key, |s| {
            *s = TableStats {
                schema_name: table.schema.schema.clone(),
                table_name: table.schema.table.clone(),
                table_state: TableState::FullLoad,
                full_load_start_time: Some(now()),
                first_load_file: Some(first),
                // Failures count over runs (TableErrorEscalationCount).
                table_errors: previous.as_ref().map_or(0, |p| p.table_errors),
                ..TableStats::default()
            };
        })
        .await?;

        let outcome = self.pump(snapshot, table, None, first, opts).await;
        match outcome {
            Ok(done) => {
                self.update(&key, |s| {
                    s.table_state = TableState::Completed;
                    s.full_load_rows = done.rows;
                    s.full_load_end_time = Some(now());
                    s.full_load_files = done.files.len() as u64;
                    s.full_load_bytes = done.bytes;
                    s.truncated_lobs = done.truncated;
                    s.data_errors = done.data_errors;
                })
                .await?;
                done.shown.done(TableState::Completed.as_str());
                Ok(())
            }
            // A lost connection is retried by the caller; anything else fails the table.
            Err((err, _)) if err.kind == ErrorKind::SourceConnect => Err(err),
            Err((err, _)) => self.failed(&key, err).await,
        }
    }

    /// Streams `table` (or one `segment` of it) source → converter → writer into files
    /// numbered from `first`. On error its files are removed, and the error comes with the
    /// first counter it never used.
    async fn pump(
        &self,
        snapshot: &dyn Snapshot,
        table: &SourceTable,
        segment: Option<&Segment>,
        first: u64,
        opts: ReadOptions,
    ) -> Result<Pumped, (Error, u64)> {
        let key = table.schema.qualified();
        let counters = Arc::new(ReadProgress::default());
        let shown = match segment {
            Some(seg) => {
                let name = format!("{key}/{}", seg.place.key());
                self.progress.table(&name, None, counters.clone())
            }
            None => self
                .progress
                .table(&key, table.estimated_rows, counters.clone()),
        };
        let settings = &self.ctx.task.target.settings;
        let mappings = &self.ctx.task.mappings;
        let map = mappings.table_map(&table.schema).map_err(|e| (e, first))?;
        let spec = Arc::new(EncodeSpec::full_load(settings, &map.target));
        let map = map.projects().then_some(map);
        let mut writer = LoadWriter::new(
            self.ctx.store,
            self.ctx.layout,
            &table.schema,
            spec.clone(),
            settings.max_file_bytes,
            first,
        )
        .in_segment(segment.map(|s| s.place.clone()));
        // Three stages on three threads: reader (COPY → rows), converter (rows → Arrow arrays
        // for Parquet), writer (encode → upload); bounded channels between them.
        let (tx, rx) = mpsc::channel::<RowBatch>(CHANNEL_BATCHES);
        let (prepared_tx, prepared_rx) = mpsc::channel::<Result<Prepared>>(CHANNEL_BATCHES);
        // The table's lob-settings rule, if any, over the task's LobMaxSize.
        let task_lobs = Lobs {
            support: self.ctx.task.settings.support_lobs,
            max_bytes: opts.lob_max_bytes,
        };
        let (schema, name) = (&table.schema.schema, &table.schema.table);
        let opts = ReadOptions {
            lob_max_bytes: mappings.lobs(schema, name, task_lobs).max_bytes,
            ..opts
        };
        let errors = &self.ctx.task.settings.errors;
        let skipper = Arc::new(Skipper {
            table: key.clone(),
            policy: errors.data,
            count: AtomicU64::new(0),
            escalation: errors.data_escalation,
            stop_task: self.stop_task.clone(),
        });
        let skips = skipper.policy.skips_record().then(|| skipper.clone());
        let read = tokio::spawn(snapshot.read_table(table, segment, opts, tx, counters.clone()));
        let convert = tokio::task::spawn_blocking(move || {
            convert_all(&spec, map.as_ref(), skips.as_deref(), rx, prepared_tx)
        });
        let write = self.write_all(&mut writer, prepared_rx);
        let (read, write, _) = tokio::join!(read, write, convert);
        let read =
            read.unwrap_or_else(|e| Err(Error::internal(format!("reader task failed: {e}"))));
        let unused = writer.next_counter();
        let outcome = match (read, write) {
            (Ok(rows), Ok(())) => match writer.close().await {
                Ok(()) => Ok((rows, std::mem::take(&mut writer.finished), writer.bytes)),
                Err(e) => Err((e, std::mem::take(&mut writer.finished))),
            },
            (r, w) => {
                writer.abort().await;
                // A writer error is the cause when the reader merely saw the channel close.
                let err = w.err().or(r.err()).expect("one side failed");
                Err((err, std::mem::take(&mut writer.finished)))
            }
        };
        match outcome {
            Ok((rows, files, bytes)) => {
                let truncated = counters
                    .truncated_lobs
                    .load(std::sync::atomic::Ordering::Relaxed);
                if truncated > 0 {
                    tracing::warn!(table = %key, values = truncated, "LOB values truncated at TargetMetadata.LobMaxSize");
                }
                Ok(Pumped {
                    rows,
                    files,
                    bytes,
                    truncated,
                    data_errors: skipper.count.load(Ordering::Relaxed),
                    shown,
                })
            }
            Err((err, written)) => {
                // Never leave part of a table under its data keys.
                if let Err(e) = self.ctx.store.delete(&written).await {
                    tracing::error!(table = %key, error = %e, files = ?written, "could not remove the table's files of this attempt; the next run removes them");
                }
                // Its files are gone: the line reports no row as written.
                shown.failed(if err.kind == ErrorKind::Interrupted {
                    "Table cancelled"
                } else {
                    "Table error"
                });
                Err((err, unused))
            }
        }
    }

    /// Records that the load of `key` failed with `err` (once per run for a table whose
    /// segments fail one after another) and returns the error, named by the table.
    async fn failed(&self, key: &str, err: Error) -> Result<()> {
        let err = err.context(format!("table {key}"));
        let interrupted = err.kind == ErrorKind::Interrupted;
        let first = self.failed.lock().await.insert(key.to_string());
        let _ = self
            .update(key, |s| {
                if interrupted {
                    if s.table_state != TableState::Error {
                        s.table_state = TableState::Cancelled;
                    }
                } else if first {
                    s.table_state = TableState::Error;
                    s.error = Some(err.to_string());
                    s.table_errors += 1;
                }
            })
            .await;
        Err(err)
    }

    /// Drains the reader's batches into the writer until the reader is done, or stops on
    /// cancellation (the reader then sees a closed channel and stops too).
    async fn write_all(
        &self,
        writer: &mut LoadWriter<'_>,
        mut rx: mpsc::Receiver<Result<Prepared>>,
    ) -> Result<()> {
        loop {
            let batch = tokio::select! {
                b = rx.recv() => b,
                _ = self.cancel.cancelled() => return Err(interrupted()),
            };
            match batch {
                Some(batch) => writer.write(&batch?).await?,
                None => return Ok(()),
            }
        }
    }
}

/// The converter stage: prepares each batch for the encoder until the reader is done or the
/// writer stops listening; an error is passed on and ends the stage. `skips` drops records
/// whose values cannot be written (`DataErrorPolicy` `LOG_ERROR`/`IGNORE_RECORD`).
fn convert_all(
    spec: &EncodeSpec,
    map: Option<&TableMap>,
    skips: Option<&Skipper>,
    mut rx: mpsc::Receiver<RowBatch>,
    tx: mpsc::Sender<Result<Prepared>>,
) {
    while let Some(batch) = rx.blocking_recv() {
        let prepared = prepare(spec, map, skips, batch);
        let failed = prepared.is_err();
        if tx.blocking_send(prepared).is_err() || failed {
            return;
        }
    }
}

/// One batch through the rules and into the encoder's form.
fn prepare(
    spec: &EncodeSpec,
    map: Option<&TableMap>,
    skips: Option<&Skipper>,
    batch: RowBatch,
) -> Result<Prepared> {
    let mut on_error = |e: Error| match skips {
        Some(s) => s.skip(e),
        None => Err(e),
    };
    let batch = match map {
        Some(map) => map.project_load(&batch, &mut on_error)?,
        None => batch,
    };
    let Some(skips) = skips else {
        return spec.prepare(batch);
    };
    // Records are skipped one by one: the batch is kept so that, on the error path only, the
    // rows the format refuses can be found and the others prepared.
    match spec.prepare(batch.clone()) {
        Err(e) if e.kind == ErrorKind::Data => {
            let mut good = RowBatch::with_capacity(batch.ncols(), batch.len(), batch.data_bytes());
            for row in 0..batch.len() {
                let mut one = RowBatch::new(batch.ncols());
                one.push_row_from(&batch, row)?;
                match spec.prepare(one) {
                    Ok(_) => good.push_row_from(&batch, row)?,
                    Err(e) => skips.skip(e)?,
                }
            }
            spec.prepare(good)
        }
        r => r,
    }
}

/// Skips the records of one table whose values cannot be written, counting them, until
/// `DataErrorEscalationCount` escalates.
struct Skipper {
    /// `schema.table`, for the log.
    table: String,
    /// `DataErrorPolicy`.
    policy: Policy,
    /// Records skipped so far.
    count: AtomicU64,
    /// `DataErrorEscalationCount` and `DataErrorEscalationPolicy`.
    escalation: Option<(u64, Policy)>,
    /// Set when the escalation stops the task.
    stop_task: Arc<AtomicBool>,
}

impl Skipper {
    /// Skips the record that failed with `e` (Ok), or ends the table (Err): `e` is not a data
    /// error, or the table reached its escalation count.
    fn skip(&self, e: Error) -> Result<()> {
        if e.kind != ErrorKind::Data {
            return Err(e);
        }
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if self.policy == Policy::LogError {
            tracing::warn!(table = %self.table, error = %e, "record skipped (DataErrorPolicy=LOG_ERROR)");
        }
        match self.escalation {
            Some((limit, policy)) if n >= limit => {
                if policy == Policy::StopTask {
                    self.stop_task.store(true, Ordering::Relaxed);
                }
                Err(e.context(format!(
                    "{n} records skipped (DataErrorEscalationCount = {limit}); the last"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The error of a table stopped by a signal (or by another table's error).
fn interrupted() -> Error {
    Error::new(
        ErrorKind::Interrupted,
        "interrupted by a signal",
        "rerun the same command to resume: finished tables are kept, unfinished ones are reloaded",
    )
}
