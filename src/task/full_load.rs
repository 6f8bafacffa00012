//! The full load: every selected table from one snapshot, `MaxFullLoadSubTasks` at a time, each
//! streamed source → writer → store, with the checkpoint updated when a table is durable.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::change::RowBatch;
use crate::checkpoint::{now, Checkpoint, TableState, TableStats};
use crate::config::PrepMode;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Layout;
use crate::mapping::{Lobs, TableMap};
use crate::progress::Progress;
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
    /// Cancelled on SIGINT/SIGTERM or on the first table error.
    cancel: CancellationToken,
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
        }
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
        tables: Vec<SourceTable>,
    ) -> Result<()> {
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
        let opts = ReadOptions {
            clock,
            lob_max_bytes: self.ctx.task.settings.lob_max_bytes,
        };
        let results: Vec<Result<()>> = futures::stream::iter(tables)
            .map(|t| async move {
                let r = self.load_table(snapshot, &t, opts).await;
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

    async fn update(&self, key: &str, f: impl FnOnce(&mut TableStats)) -> Result<()> {
        let mut cp = self.checkpoint.lock().await;
        let stats = cp.tables.entry(key.to_string()).or_default();
        f(stats);
        stats.last_update_time = Some(now());
        self.ctx.checkpoints.save(&cp)
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
                ..TableStats::default()
            };
        })
        .await?;

        let counters = Arc::new(ReadProgress::default());
        let shown = self
            .progress
            .table(&key, table.estimated_rows, counters.clone());
        let settings = &self.ctx.task.target.settings;
        let mappings = &self.ctx.task.mappings;
        let map = mappings.table_map(&table.schema)?;
        let spec = Arc::new(EncodeSpec::full_load(settings, &map.target));
        let map = map.projects().then_some(map);
        let mut writer = LoadWriter::new(
            self.ctx.store,
            self.ctx.layout,
            &table.schema,
            spec.clone(),
            settings.max_file_bytes,
            first,
        );
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
        let read = tokio::spawn(snapshot.read_table(table, opts, tx, counters.clone()));
        let convert =
            tokio::task::spawn_blocking(move || convert_all(&spec, map.as_ref(), rx, prepared_tx));
        let write = self.write_all(&mut writer, prepared_rx);
        let (read, write, _) = tokio::join!(read, write, convert);
        let read =
            read.unwrap_or_else(|e| Err(Error::internal(format!("reader task failed: {e}"))));
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
                self.update(&key, |s| {
                    s.table_state = TableState::Completed;
                    s.full_load_rows = rows;
                    s.full_load_end_time = Some(now());
                    s.full_load_files = files.len() as u64;
                    s.full_load_bytes = bytes;
                    s.truncated_lobs = truncated;
                })
                .await?;
                shown.done(TableState::Completed.as_str());
                Ok(())
            }
            Err((err, written)) => {
                // Never leave part of a table under its data keys.
                if let Err(e) = self.ctx.store.delete(&written).await {
                    tracing::error!(table = %key, error = %e, files = ?written, "could not remove the table's files of this attempt; the next run removes them");
                }
                let state = if err.kind == ErrorKind::Interrupted {
                    TableState::Cancelled
                } else {
                    TableState::Error
                };
                let _ = self.update(&key, |s| s.table_state = state).await;
                shown.done(state.as_str());
                Err(err.context(format!("table {key}")))
            }
        }
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
/// writer stops listening; a conversion error is passed on and ends the stage.
fn convert_all(
    spec: &EncodeSpec,
    map: Option<&TableMap>,
    mut rx: mpsc::Receiver<RowBatch>,
    tx: mpsc::Sender<Result<Prepared>>,
) {
    while let Some(batch) = rx.blocking_recv() {
        let batch = match map {
            Some(map) => map.project_load(&batch),
            None => Ok(batch),
        };
        let prepared = batch.and_then(|b| spec.prepare(b));
        let failed = prepared.is_err();
        if tx.blocking_send(prepared).is_err() || failed {
            return;
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
