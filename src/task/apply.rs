//! The apply loop: the one place where change capture, on every engine, turns a source's
//! change stream into durable CDC files.
//!
//! It owns the open transaction, the restart filter (per-series `written_through`, per-table
//! `loaded_at`), the flush policy, shape changes, TRUNCATE, the stop positions, the position the
//! source may discard up to, and the reconnect policy: a retryable error (a lost source
//! connection, a server restart or failover, a target outage that outlived the store's own
//! retries) drops what is not durable and starts a new session at the last durable position,
//! with exponential backoff ([`crate::retry::RECONNECT`]). Cancellation always ends with a
//! clean stop.

mod gate;
mod mapped;
mod suspend;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use mapped::Mapper;

use super::{commit, metrics, Context};
use crate::change::{ChangePos, Op, Position, StreamKey, TableSchema};
use crate::checkpoint::{Checkpoint, StopReason, TableState, TableStats};
use crate::config::{CdcStop, S3Settings};
use crate::error::{Error, ErrorKind, Result};
use crate::retry::{self, Backoff};
use crate::source::stream::{ChangeSink, ChangeStream, Fill};
use crate::store;
use crate::writer::cdc::{CdcWriter, Clock, FileStats, SealReason};

/// How often the loop wakes without events: timed flushes, stop-time checks, checkpoint saves.
const TICK: Duration = Duration::from_millis(250);

/// Bytes all open CDC files together may hold in memory before the largest is written early.
/// Each file holds at most one chunk of rows, its encoder's open row group and its upload's
/// parts, so this caps memory whatever `CdcMinFileSize` and the number of busy tables.
const MEMORY_BUDGET_BYTES: usize = 96 * 1024 * 1024;

/// When an open file is sealed: `CdcMinFileSize`, `CdcMaxBatchInterval` and the memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlushPolicy {
    /// `CdcMinFileSize`, raw row bytes.
    pub(crate) min_file_bytes: u64,
    /// `CdcMaxBatchInterval`, counted from a file's first change.
    pub(crate) max_interval: Duration,
    /// All open files together.
    pub(crate) memory_budget: usize,
}

impl FlushPolicy {
    /// The task's policy.
    pub(super) fn new(s: &S3Settings) -> FlushPolicy {
        FlushPolicy {
            min_file_bytes: s.cdc.min_file_bytes,
            max_interval: s.cdc.max_batch_interval,
            memory_budget: MEMORY_BUDGET_BYTES,
        }
    }

    /// Why a file with `stats` is due at `now_ms`, if it is.
    fn due(&self, stats: &FileStats, now_ms: i64) -> Option<SealReason> {
        if stats.raw_bytes >= self.min_file_bytes {
            Some(SealReason::Size)
        } else if now_ms - stats.opened_ms >= self.max_interval.as_millis() as i64 {
            Some(SealReason::Interval)
        } else {
            None
        }
    }

    /// How long until a file opened at `opened_ms` is due by time.
    fn due_in(&self, opened_ms: i64, now_ms: i64) -> Duration {
        let due = opened_ms + self.max_interval.as_millis() as i64;
        Duration::from_millis((due - now_ms).max(0) as u64)
    }
}

/// Why streaming ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// SIGINT/SIGTERM.
    Signal,
    /// `CdcStopPosition` server_time reached.
    ServerTime,
    /// `CdcStopPosition` commit_time reached.
    CommitTime,
    /// `StopTaskCachedChangesNotApplied`: the full load is done; no change written yet.
    AfterFullLoad,
    /// `StopTaskCachedChangesApplied`: the changes committed during the full load are written.
    AfterCachedEvents,
}

impl Stopped {
    /// DMS stop reason.
    pub(super) fn reason(self) -> StopReason {
        match self {
            Stopped::Signal => StopReason::Normal,
            Stopped::ServerTime => StopReason::StoppedAtServerTime,
            Stopped::CommitTime => StopReason::StoppedAtCommitTime,
            Stopped::AfterFullLoad => StopReason::StoppedAfterFullLoad,
            Stopped::AfterCachedEvents => StopReason::StoppedAfterCachedEvents,
        }
    }
}

/// The apply loop's state; it is the [`ChangeSink`] the stream hands changes to.
pub(crate) struct Apply<'a> {
    ctx: &'a Context<'a>,
    cp: &'a mut Checkpoint,
    writer: CdcWriter<'a>,
    policy: FlushPolicy,
    /// The open transaction: where it is read again from, and its commit time.
    txn: Option<(Position, i64)>,
    /// Where the transaction after the last complete one starts.
    last_end: Option<Position>,
    /// The checkpoint has unsaved position changes.
    dirty: bool,
    /// Set when the commit-time stop position is reached.
    stop: Option<Stopped>,
    /// Events applied in the current session (progress resets the reconnect budget).
    events: u64,
    /// The mapping's filters and column rules per table.
    mapper: Mapper,
    /// Tables whose changes are dropped (`ErrorBehavior` suspended them), by `schema.table`.
    suspended: HashSet<String>,
    /// `StopTaskCachedChangesApplied`: when the full load ended (µs); the loop stops before the
    /// first transaction committed after it, or when the stream is idle past it.
    cached_until: Option<i64>,
}

impl<'a> Apply<'a> {
    /// A loop writing through `ctx` and recording in `cp`; `clock` names files and times them.
    pub(super) fn new(
        ctx: &'a Context<'a>,
        cp: &'a mut Checkpoint,
        clock: Arc<dyn Clock>,
    ) -> Apply<'a> {
        let stamps: Vec<(StreamKey, String)> = cp
            .cdc
            .iter()
            .flat_map(|c| c.tables.iter())
            .filter_map(|(k, s)| s.last_stamp.clone().map(|st| (k.clone(), st)))
            .collect();
        let settings = &ctx.task.target.settings;
        let suspended = cp.suspended().into_iter().collect();
        let gates = gate::Gate::all(cp);
        Apply {
            writer: CdcWriter::new(ctx.store, ctx.layout, settings, clock, stamps),
            policy: FlushPolicy::new(settings),
            ctx,
            cp,
            txn: None,
            last_end: None,
            dirty: false,
            stop: None,
            events: 0,
            mapper: Mapper::with_gates(gates),
            suspended,
            cached_until: None,
        }
    }

    /// Stops once the changes committed before `load_end_us` are written
    /// (`StopTaskCachedChangesApplied`).
    pub(super) fn stop_after_cached_changes(mut self, load_end_us: i64) -> Self {
        self.cached_until = Some(load_end_us);
        self
    }

    /// Streams until a signal or the stop position, riding out retryable errors.
    pub(super) async fn run(&mut self, stream: &mut dyn ChangeStream) -> Result<Stopped> {
        let mut backoff = Backoff::new(retry::RECONNECT);
        loop {
            let result = self.session(stream).await;
            if result.is_err() {
                // What is not durable is read again by the next session.
                self.writer.discard_all().await;
                stream.stop().await;
                self.ctx.checkpoints.save(self.cp).await?;
            }
            let e = match result {
                Ok(stopped) => return Ok(stopped),
                Err(e) if e.retryable() && self.ctx.cancel.is_cancelled() => {
                    return Ok(Stopped::Signal)
                }
                Err(e) if e.retryable() => e,
                Err(e) => return Err(e),
            };
            if self.events > 0 {
                backoff.reset();
            }
            let Some(wait) = backoff.failed() else {
                return Err(e.context(format!(
                    "no progress for {} min of retries",
                    backoff.budget().as_secs() / 60
                )));
            };
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "streaming interrupted; resuming from the last durable position");
            metrics::reconnected();
            tokio::select! {
                _ = self.ctx.cancel.cancelled() => return Ok(Stopped::Signal),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One session: settle pending files, start at the durable position, stream.
    async fn session(&mut self, stream: &mut dyn ChangeStream) -> Result<Stopped> {
        self.events = 0;
        self.txn = None;
        self.last_end = None;
        let txn_path = self
            .ctx
            .task
            .target
            .settings
            .cdc
            .preserve_transactions_path
            .as_deref();
        commit::recover(
            self.ctx.store,
            self.ctx.layout,
            txn_path,
            self.cp,
            self.ctx.checkpoints,
        )
        .await?;
        let from = self
            .cp
            .cdc
            .as_ref()
            .and_then(|c| c.resume_from.clone())
            .ok_or_else(|| Error::internal("no position to resume streaming from"))?;
        stream.start(&from).await?;
        tracing::info!(position = %from, "streaming changes");
        let cancel = self.ctx.cancel.clone();
        let stopped = loop {
            let wait = self.next_wake();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break Stopped::Signal,
                ready = stream.ready() => {
                    ready?;
                    stream.apply(self).await?;
                    self.events += 1;
                    if let Some(s) = self.stop.take() {
                        break s;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    if let Some(CdcStop::ServerTime(t)) = self.ctx.task.cdc_stop {
                        if chrono::Utc::now().timestamp_micros() >= t {
                            break Stopped::ServerTime;
                        }
                    }
                    // Nothing was ready for a whole wait: the stream has caught up with the
                    // source, so every change committed before the load ended is read.
                    if let Some(t) = self.cached_until {
                        if self.txn.is_none() && chrono::Utc::now().timestamp_micros() >= t {
                            break Stopped::AfterCachedEvents;
                        }
                    }
                    self.tick(stream).await?;
                }
            }
            self.advance();
        };
        // A clean stop writes what is buffered. If that fails the changes are read again by
        // the next run (the position did not move past them), so a signal still stops cleanly.
        if let Err(e) = self.flush_all().await {
            if stopped != Stopped::Signal {
                return Err(e);
            }
            tracing::warn!(error = %e, "buffered changes could not be written; the next run reads them again");
            self.writer.discard_all().await;
        }
        self.advance();
        self.save(stream).await?;
        stream.stop().await;
        Ok(stopped)
    }

    /// Time until the next timed work: a tick, or an open file's batch interval.
    fn next_wake(&self) -> Duration {
        match self.writer.oldest_opened_ms() {
            Some(opened) => TICK.min(self.policy.due_in(opened, self.writer.now_ms())),
            None => TICK,
        }
    }

    /// Timed work: seal files whose batch interval passed; source-side chores; save and
    /// confirm the durable position; metrics.
    async fn tick(&mut self, stream: &mut dyn ChangeStream) -> Result<()> {
        let now = self.writer.now_ms();
        for series in self.writer.open_series() {
            let due = self
                .writer
                .stats(&series)
                .and_then(|f| self.policy.due(&f, now));
            if let Some(reason) = due {
                self.seal(&series, reason).await?;
            }
        }
        stream.tick().await;
        self.advance();
        if self.dirty {
            self.save(stream).await?;
        }
        metrics::publish(self.cp, self.writer.oldest_commit_us());
        Ok(())
    }

    /// Saves the checkpoint, then tells the source what it may discard.
    async fn save(&mut self, stream: &mut dyn ChangeStream) -> Result<()> {
        self.ctx.checkpoints.save(self.cp).await?;
        self.dirty = false;
        if let Some(p) = self.cp.cdc.as_ref().and_then(|c| c.resume_from.as_ref()) {
            stream.confirm(p);
        }
        Ok(())
    }

    /// Moves `resume_from` to the furthest position before which every change is durable: the
    /// oldest change still in an open file, the open transaction, or else the end of the last
    /// complete transaction.
    fn advance(&mut self) {
        let buffered = self.writer.oldest().map(|p| p.commit.clone());
        let open = self.txn.as_ref().map(|(p, _)| p.clone());
        let safe = match (buffered, open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => self.last_end.clone(),
        };
        let Some(safe) = safe else { return };
        let state = self.cp.cdc_mut();
        if state.resume_from.as_ref().is_some_and(|r| *r >= safe) {
            return;
        }
        state.resume_from = Some(safe);
        self.dirty = true;
    }

    /// Seals `series`' open file and makes it durable.
    async fn seal(&mut self, series: &StreamKey, reason: SealReason) -> Result<()> {
        if let Some(file) = self.writer.seal(series, reason).await? {
            commit::publish(file, self.cp, self.ctx.checkpoints).await?;
        }
        Ok(())
    }

    /// Seals every open file (a clean stop).
    async fn flush_all(&mut self) -> Result<()> {
        for series in self.writer.open_series() {
            self.seal(&series, SealReason::Stop).await?;
        }
        Ok(())
    }

    /// Writes one row change (see [`ChangeSink::change`]); `before` fills an update's
    /// before-image.
    async fn push(
        &mut self,
        table: &str,
        op: Op,
        pos: ChangePos,
        fill: &mut Fill<'_>,
        before: Option<&mut Fill<'_>>,
    ) -> Result<()> {
        if !self.writer.wants(op) || self.is_suspended(table) {
            return Ok(());
        }
        let (series, own) = self
            .writer
            .keys(table)
            .ok_or_else(|| Error::internal(format!("no shape for {table}")))?;
        if self.already_written(series, own, &pos) {
            return Ok(());
        }
        let commit_us = match &self.txn {
            Some((_, t)) => *t,
            None => return Err(Error::internal("row change outside a transaction")),
        };
        let seq = pos.seq;
        let pushed = match self
            .mapper
            .push(&mut self.writer, table, op, commit_us, pos, fill, before)
            .await
        {
            Err(e) if e.kind == ErrorKind::Data => {
                let e = self.locate(table, seq, e);
                return self.data_error(table, e).await;
            }
            r => r?,
        };
        let Some(raw) = pushed else {
            return Ok(());
        };
        if raw >= self.policy.min_file_bytes {
            let series = self.writer.keys(table).expect("pushed above").0.clone();
            self.seal(&series, SealReason::Size).await?;
        }
        if self.writer.memory() > self.policy.memory_budget {
            if let Some(largest) = self.writer.largest() {
                self.seal(&largest, SealReason::Memory).await?;
            }
        }
        Ok(())
    }

    /// True when the change at `pos` is already written: in `series` before a restart, or in
    /// the LOAD files of a snapshot of its table (series `own`) taken after its transaction.
    fn already_written(&self, series: &StreamKey, own: &StreamKey, pos: &ChangePos) -> bool {
        let Some(c) = self.cp.cdc.as_ref() else {
            return false;
        };
        let written = c
            .tables
            .get(series)
            .and_then(|s| s.written_through.as_ref());
        if written.is_some_and(|w| pos <= w) {
            return true;
        }
        c.tables
            .get(own)
            .and_then(|s| s.loaded_at.as_ref())
            .is_some_and(|l| pos.commit < *l)
    }

    /// Counts a DDL of the transaction at `at` on `table`'s statistics, once: a session that
    /// re-reads the log from an earlier durable position meets the same DDL again.
    fn count_ddl(&mut self, table: &str, at: Option<&Position>) {
        if let Some(at) = at {
            let series = self
                .cp
                .cdc_mut()
                .series(&StreamKey::Table(table.to_owned()));
            if series.ddl_counted_at.as_ref().is_some_and(|c| at <= c) {
                return;
            }
            series.ddl_counted_at = Some(at.clone());
        }
        if let Some(stats) = self.cp.tables.get_mut(table) {
            stats.ddls += 1;
            self.dirty = true;
        }
    }
}

#[async_trait]
impl ChangeSink for Apply<'_> {
    fn begin(&mut self, at: &Position, commit_us: i64) -> bool {
        if let Some(CdcStop::CommitTime(t)) = self.ctx.task.cdc_stop {
            if commit_us > t {
                self.stop = Some(Stopped::CommitTime);
                return false;
            }
        }
        if self.cached_until.is_some_and(|t| commit_us > t) {
            self.stop = Some(Stopped::AfterCachedEvents);
            return false;
        }
        self.txn = Some((at.clone(), commit_us));
        self.cp.cdc_mut().last_commit_us = Some(commit_us);
        true
    }

    async fn shape(&mut self, schema: &Arc<TableSchema>) -> Result<()> {
        let key = schema.qualified();
        if !self.cp.tables.contains_key(&key) {
            // Known before its first file opens, so a crash's leftovers in its folder are
            // found (and its statistics show) from now on.
            self.cp.tables.insert(
                key.clone(),
                TableStats {
                    schema_name: schema.schema.clone(),
                    table_name: schema.table.clone(),
                    table_state: TableState::Completed,
                    ..TableStats::default()
                },
            );
            self.ctx.checkpoints.save(self.cp).await?;
        }
        if self.is_suspended(&key) {
            return Ok(());
        }
        let (target, changed) = match self.mapper.shape(&self.ctx.task.mappings, schema) {
            Ok(shaped) => shaped,
            // The table's new columns do not fit its rules (an expression reads a column
            // that was dropped, say): that table's error, as the sources' own.
            Err(e) if e.kind != ErrorKind::Internal => return self.shape_error(&key, e).await,
            Err(e) => return Err(e),
        };
        if self.writer.must_seal_for(&target) {
            self.seal(&StreamKey::Table(key.clone()), SealReason::Shape)
                .await?;
        }
        self.writer.set_shape(&target);
        if changed {
            tracing::info!(table = %key, "table shape changed: the next file has the new columns");
            let at = self.txn.as_ref().map(|(at, _)| at.clone());
            self.count_ddl(&key, at.as_ref());
        }
        Ok(())
    }

    async fn change(
        &mut self,
        table: &str,
        op: Op,
        pos: ChangePos,
        fill: &mut Fill<'_>,
    ) -> Result<()> {
        self.push(table, op, pos, fill, None).await
    }

    async fn update(
        &mut self,
        table: &str,
        pos: ChangePos,
        fill: &mut Fill<'_>,
        before: &mut Fill<'_>,
    ) -> Result<()> {
        self.push(table, Op::Update, pos, fill, Some(before)).await
    }

    async fn truncate(&mut self, schema: &str, table: &str, pos: ChangePos) -> Result<()> {
        let key = format!("{schema}.{table}");
        let own = StreamKey::Table(key.clone());
        if self.already_written(&own, &own, &pos) || self.is_suspended(&key) {
            return Ok(());
        }
        self.count_ddl(&key, Some(&pos.commit));
        if !self.ctx.task.settings.handle_truncate {
            tracing::info!(table = %key, "source TRUNCATE ignored (HandleSourceTableTruncated=false)");
            return Ok(());
        }
        if self.mapper.gated(&key, &pos) {
            // Some segments' LOAD files hold rows from before the TRUNCATE, others from after
            // it: deleting the folder would lose the latter, keeping it the former's removal.
            let e = Error::new(
                ErrorKind::Source,
                format!("TRUNCATE of {key} at {} fell between the snapshots its load segments were read from (a resumed full-load-and-cdc load kept its finished segments)", pos.stream_position()),
                "run the task again: it reloads the table from a fresh snapshot",
            );
            return self.suspend(&key, e).await;
        }
        tracing::warn!(table = %key, "source TRUNCATE: deleting the table's objects (HandleSourceTableTruncated=true)");
        // Transaction files hold every table's changes and are kept; the table's own are not.
        self.writer.discard(&own).await;
        let prefix = self.ctx.layout.table_prefix(schema, table);
        store::delete_prefix(self.ctx.store, &prefix).await?;
        self.cp.cdc_mut().series(&own).written_through = Some(pos);
        self.ctx.checkpoints.save(self.cp).await
    }

    async fn table_error(&mut self, table: &str, pos: ChangePos, e: Error) -> Result<()> {
        self.source_error(table, pos, e).await
    }

    fn commit(&mut self, next: &Position) {
        self.txn = None;
        if self.last_end.as_ref().is_none_or(|l| next > l) {
            self.last_end = Some(next.clone());
        }
    }

    fn idle(&mut self, at: &Position) {
        if self.txn.is_none() && self.last_end.as_ref().is_none_or(|l| at > l) {
            self.last_end = Some(at.clone());
        }
    }
}

#[cfg(test)]
mod tests;
