//! Change data capture tasks (`full-load-and-cdc`, `cdc`) on PostgreSQL: slot and publication
//! set-up, the snapshot→stream handoff, and the streaming loop with exactly-once files.
//!
//! Handoff: the slot is created with an exported snapshot; every table is loaded from that
//! snapshot, and streaming starts at the slot's consistent point, so each committed change is in
//! the LOAD files or in the CDC files, never both and never neither. A load interrupted by a
//! crash resumes on a *temporary* slot's fresh snapshot at point C2: the remaining tables are
//! loaded from it and skip changes of transactions committed before C2 (`loaded_at`), while the
//! tables loaded earlier take every change from the main slot's point.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::change::{ChangePos, Lsn, Op, Position};
use crate::checkpoint::{cdc_phase, task_status, CdcState, Checkpoint, CheckpointStore};
use crate::config::{CdcStop, MigrationType, TaskConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Layout;
use crate::progress::Progress;
use crate::source::postgres::cdc::{Relations, RowOptions};
use crate::source::postgres::pgoutput::{self, Message};
use crate::source::postgres::replication::{LogicalStream, PgReplication, StreamEvent};
use crate::source::postgres::{self as pg, slot, PgSnapshot};
use crate::source::Snapshot;
use crate::store::{self, Store};
use crate::writer::cdc::{cdc_table, resolve_pending, CdcWriter, SystemClock};

use super::full_load::FullLoad;

/// How long a restart keeps retrying a replication session that is not available yet.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// How often the loop wakes without events: timed flushes, heartbeat, stop-time checks.
const TICK: Duration = Duration::from_millis(250);

/// Why streaming ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT/SIGTERM.
    Signal,
    /// `CdcStopPosition` server_time reached.
    ServerTime,
    /// `CdcStopPosition` commit_time reached.
    CommitTime,
}

impl Stopped {
    /// DMS stop reason.
    pub fn reason(self) -> &'static str {
        match self {
            Stopped::Signal => "NORMAL",
            Stopped::ServerTime => "STOPPED_AT_SERVER_TIME",
            Stopped::CommitTime => "STOPPED_AT_COMMIT_TIME",
        }
    }
}

/// Everything a CDC run shares.
pub struct CdcRun<'a> {
    /// The task.
    pub task: &'a TaskConfig,
    /// Target store.
    pub store: &'a dyn Store,
    /// Key naming.
    pub layout: &'a Layout,
    /// Checkpoint file.
    pub checkpoints: &'a CheckpointStore,
    /// Show progress bars.
    pub progress: bool,
    /// Cancelled on SIGINT/SIGTERM.
    pub cancel: CancellationToken,
}

impl CdcRun<'_> {
    /// Runs the task until a signal or the stop position; returns the final checkpoint state.
    pub async fn run(&self, mut cp: Checkpoint) -> (Checkpoint, Result<Stopped>) {
        let r = self.run_inner(&mut cp).await;
        (cp, r)
    }

    async fn run_inner(&self, cp: &mut Checkpoint) -> Result<Stopped> {
        let task = self.task;
        let admin = pg::connect(&task.source).await?;
        let problems = slot::check_prerequisites(&admin).await?;
        if let Some(first) = problems.into_iter().next() {
            return Err(first);
        }
        let default = slot::default_name(&task.id);
        let slot_name = task.source.cdc.slot_name.clone().unwrap_or(default.clone());
        let publication = task
            .source
            .cdc
            .publication_name
            .clone()
            .unwrap_or(default.clone());
        let tables: Vec<String> =
            pg::catalog::selected_tables(&admin, &task.mappings, task.settings.support_lobs)
                .await?
                .iter()
                .filter(|t| t.source.kind == crate::mapping::RelationKind::Table)
                .map(|t| t.source.schema.qualified())
                .collect();
        if tables.is_empty() {
            return Err(Error::config(
                "table_mappings select no table in the source",
                "check schema-name/table-name patterns (case-sensitive; % and _ are wildcards)",
            ));
        }
        let no_identity = slot::tables_without_identity(&admin, &tables).await?;
        if !no_identity.is_empty() {
            return Err(Error::config(
                format!(
                    "{} ha{} no primary key or replica identity: once published, UPDATE and DELETE on {} would fail in your application",
                    no_identity.join(", "),
                    if no_identity.len() == 1 { "s" } else { "ve" },
                    if no_identity.len() == 1 { "it" } else { "them" },
                ),
                format!(
                    "ALTER TABLE {} REPLICA IDENTITY FULL (or add a primary key), or exclude the table in table_mappings",
                    no_identity[0]
                ),
            ));
        }
        slot::ensure_publication(&admin, &publication, &tables).await?;
        if task.source.cdc.heartbeat {
            slot::ensure_heartbeat(&admin, &task.source.cdc.heartbeat_schema).await?;
        }

        let fresh = cp.cdc.as_ref().is_none_or(|c| c.resume_from.is_none());
        let state = cp.cdc.get_or_insert_with(CdcState::default);
        state.slot = slot_name.clone();
        state.publication = publication.clone();
        let mut stream: Option<PgReplication> = None;
        if fresh {
            let mut existing = slot::slot_info(&admin, &slot_name).await?;
            let ours = cp.cdc.as_ref().is_some_and(|c| c.created_slot);
            if existing.is_some() && ours {
                // A previous attempt created the slot and died before recording where it starts:
                // nothing was written from it, so start over with a fresh one.
                slot::drop_slot(&admin, &slot_name).await?;
                existing = None;
            }
            match (task.migration_type, existing) {
                (MigrationType::Cdc, Some(info)) if task.source.cdc.slot_name.is_some() => {
                    // DMS's native start: an existing slot, optionally at CdcStartPosition.
                    let start = task
                        .cdc_start
                        .or(info.confirmed_flush)
                        .ok_or_else(|| Error::internal("slot without a confirmed position"))?;
                    let state = cp.cdc.as_mut().expect("set above");
                    state.resume_from = Some(Position::Postgres(start));
                    state.phase = cdc_phase::CDC.into();
                }
                (_, Some(_)) => {
                    return Err(Error::config(
                        format!("replication slot {slot_name} already exists but this task's checkpoint does not know it"),
                        format!("drop it (SELECT pg_drop_replication_slot('{slot_name}')) or, for a cdc task, set SlotName = \"{slot_name}\" to read from it"),
                    ));
                }
                (MigrationType::Cdc, None)
                    if task.source.cdc.slot_name.is_some() && task.cdc_start.is_some() =>
                {
                    return Err(Error::config(
                        format!("replication slot {slot_name} does not exist"),
                        "create it first (cdc_start_position needs an existing slot), or remove cdc_start_position",
                    ));
                }
                (migration, None) => {
                    // Recorded first, so a crash right after creation is recognised as ours.
                    cp.cdc.as_mut().expect("set above").created_slot = true;
                    self.checkpoints.save(cp)?;
                    let mut repl =
                        PgReplication::connect(&task.source, &slot_name, &publication, None)
                            .await?;
                    let export = migration == MigrationType::FullLoadAndCdc;
                    let created = repl.create_slot(&slot_name, export, false).await?;
                    tracing::info!(slot = %slot_name, consistent_point = %created.consistent_point, "replication slot created");
                    let state = cp.cdc.as_mut().expect("set above");
                    state.created_slot = true;
                    state.resume_from = Some(Position::Postgres(created.consistent_point));
                    state.phase = if export {
                        cdc_phase::FULL_LOAD.into()
                    } else {
                        cdc_phase::CDC.into()
                    };
                    self.checkpoints.save(cp)?;
                    if let Some(snapshot) = created.snapshot {
                        self.full_load(cp, &snapshot, created.consistent_point)
                            .await?;
                    }
                    stream = Some(repl);
                }
            }
        } else if cp
            .cdc
            .as_ref()
            .is_some_and(|c| c.phase == cdc_phase::FULL_LOAD)
        {
            // Resume an interrupted load from a temporary slot's fresh snapshot.
            // Unique per process: a killed predecessor's temporary slot may linger until the
            // server notices its connection is gone.
            let tmp = format!(
                "{}_load_{}",
                &slot_name[..slot_name.len().min(45)],
                std::process::id()
            );
            let mut repl = PgReplication::connect(&task.source, &tmp, &publication, None).await?;
            let created = repl.create_slot(&tmp, true, true).await?;
            let snapshot = created
                .snapshot
                .ok_or_else(|| Error::internal("temporary slot exported no snapshot"))?;
            self.full_load(cp, &snapshot, created.consistent_point)
                .await?;
            drop(repl);
        }
        self.checkpoints.save(cp)?;

        let store = self.store;
        resolve_pending(store, cp, self.checkpoints).await?;
        let mut stream = match stream {
            Some(mut s) => {
                s.start().await?;
                s
            }
            None => {
                let start = match cp.cdc.as_ref().and_then(|c| c.resume_from.clone()) {
                    Some(Position::Postgres(l)) => l,
                    _ => return Err(Error::internal("no position to resume streaming from")),
                };
                self.reconnect(&slot_name, &publication, start).await?
            }
        };
        tracing::info!(slot = %slot_name, "streaming changes");
        let rel_client = pg::connect(&task.source).await?;
        let rels = Relations::new(
            rel_client,
            RowOptions {
                mappings: task.mappings.clone(),
                support_lobs: task.settings.support_lobs,
                lob_max_bytes: task.settings.lob_max_size_kb.map(|kb| kb as usize * 1024),
                no_sup_value: task.target.settings.csv.no_sup_value.clone(),
            },
        );
        let writer = CdcWriter::new(
            store,
            self.layout,
            &task.target.settings,
            Arc::new(SystemClock),
        );
        let mut s = Streamer {
            task,
            store,
            layout: self.layout,
            checkpoints: self.checkpoints,
            rels,
            writer,
            txn: None,
            seq: 0,
            last_end: None,
            confirmed: None,
            dirty: false,
            last_heartbeat: std::time::Instant::now(),
            last_lag_check: std::time::Instant::now(),
            admin,
        };
        let result = s.stream(&mut stream, cp, &self.cancel).await;
        let _ = stream.stop().await;
        result
    }

    /// Opens and starts a replication session at `start`, retrying transient failures (a slot
    /// still held by a crashed predecessor's walsender) for up to [`RECONNECT_FOR`].
    async fn reconnect(&self, slot: &str, publication: &str, start: Lsn) -> Result<PgReplication> {
        let deadline = std::time::Instant::now() + RECONNECT_FOR;
        loop {
            let attempt = async {
                let mut s =
                    PgReplication::connect(&self.task.source, slot, publication, Some(start))
                        .await?;
                s.start().await?;
                Ok::<_, Error>(s)
            };
            match attempt.await {
                Ok(s) => return Ok(s),
                Err(e) if e.retryable() && std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "replication not available yet; retrying");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Err(e),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Loads every unfinished table from `snapshot` (taken at `point`).
    async fn full_load(&self, cp: &mut Checkpoint, snapshot: &str, point: Lsn) -> Result<()> {
        let task = self.task;
        let snap = PgSnapshot::import(
            &task.source,
            snapshot,
            &task.mappings,
            task.settings.support_lobs,
        )
        .await?;
        let r = self.load_from(cp, &snap, Position::Postgres(point)).await;
        let _ = snap.close().await;
        r
    }

    /// Loads every unfinished table from `snap`, whose changes end at `point` (the tables
    /// skip changes of transactions before it), then enters the replication phase.
    pub(super) async fn load_from(
        &self,
        cp: &mut Checkpoint,
        snap: &dyn Snapshot,
        point: Position,
    ) -> Result<()> {
        let task = self.task;
        let tables = snap.tables().await?;
        if tables.is_empty() {
            return Err(Error::config(
                "table_mappings select no table in the source",
                "check schema-name/table-name patterns (% and _ are wildcards)",
            ));
        }
        for t in &tables {
            crate::layout::check_segment("schema", &t.schema.schema)?;
            crate::layout::check_segment("table", &t.schema.table)?;
            let name = t.schema.qualified();
            let done = cp
                .tables
                .get(&name)
                .is_some_and(|s| s.table_state == crate::checkpoint::table_state::COMPLETED);
            if !done {
                cdc_table(cp, &name).loaded_at = Some(point.clone());
            }
        }
        self.checkpoints.save(cp)?;
        let load = FullLoad {
            task,
            store: self.store,
            layout: self.layout,
            checkpoints: self.checkpoints,
            checkpoint: tokio::sync::Mutex::new(cp.clone()),
            progress: Progress::new(self.progress),
            cancel: self.cancel.clone(),
        };
        let r = load.run(snap, tables).await;
        *cp = load.checkpoint.into_inner();
        r?;
        cp.cdc.as_mut().expect("cdc state").phase = cdc_phase::REPLICATION.into();
        self.checkpoints.save(cp)?;
        tracing::info!("load complete, replication ongoing");
        Ok(())
    }
}

/// The streaming loop's state.
struct Streamer<'a> {
    task: &'a TaskConfig,
    store: &'a dyn Store,
    layout: &'a Layout,
    checkpoints: &'a CheckpointStore,
    rels: Relations,
    writer: CdcWriter<'a>,
    /// The open transaction: commit LSN and commit time.
    txn: Option<(Lsn, i64)>,
    seq: u64,
    /// End of the last complete transaction.
    last_end: Option<Lsn>,
    confirmed: Option<Lsn>,
    /// The checkpoint has unsaved position changes.
    dirty: bool,
    last_heartbeat: std::time::Instant,
    /// Last time the slot's retained WAL was checked.
    last_lag_check: std::time::Instant,
    admin: tokio_postgres::Client,
}

/// How often the running task checks the slot's retained WAL.
const LAG_CHECK: Duration = Duration::from_secs(60);

impl Streamer<'_> {
    async fn stream(
        &mut self,
        stream: &mut dyn LogicalStream,
        cp: &mut Checkpoint,
        cancel: &CancellationToken,
    ) -> Result<Stopped> {
        let stop = self.task.cdc_stop;
        let stopped = loop {
            let wait = self
                .writer
                .next_due_in_ms()
                .map_or(TICK, |ms| Duration::from_millis(ms as u64).min(TICK));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break Stopped::Signal,
                ev = stream.next() => {
                    let Some(ev) = ev? else {
                        return Err(Error::new(ErrorKind::Source, "the replication stream ended unexpectedly", "check the PostgreSQL server log; rerun the task to resume"));
                    };
                    if let Some(s) = self.event(ev, cp, stop).await? {
                        break s;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    if let Some(CdcStop::ServerTime(t)) = stop {
                        if chrono::Utc::now().timestamp_micros() >= t {
                            break Stopped::ServerTime;
                        }
                    }
                    self.tick(cp).await?;
                }
            }
            self.advance(stream, cp)?;
        };
        // A clean stop writes what is buffered and confirms it.
        self.writer.flush_all(cp, self.checkpoints).await?;
        self.dirty = true;
        self.advance(stream, cp)?;
        if self.dirty {
            self.checkpoints.save(cp)?;
        }
        Ok(stopped)
    }

    /// Timed work: flush tables whose batch interval passed; heartbeat; periodic checkpoint.
    async fn tick(&mut self, cp: &mut Checkpoint) -> Result<()> {
        for table in self.writer.due_by_time() {
            self.writer.flush(&table, cp, self.checkpoints).await?;
        }
        let cdc = &self.task.source.cdc;
        if cdc.heartbeat
            && self.last_heartbeat.elapsed()
                >= Duration::from_secs(cdc.heartbeat_frequency_min * 60)
        {
            self.last_heartbeat = std::time::Instant::now();
            if let Err(e) = slot::heartbeat(&self.admin, &cdc.heartbeat_schema, &self.task.id).await
            {
                tracing::warn!(error = %e, "heartbeat failed; retrying at the next interval");
            }
        }
        if self.last_lag_check.elapsed() >= LAG_CHECK {
            self.last_lag_check = std::time::Instant::now();
            let slot_name = cp.cdc.as_ref().map(|c| c.slot.clone()).unwrap_or_default();
            if let Ok(Some(info)) = slot::slot_info(&self.admin, &slot_name).await {
                let retained = info.retained_bytes.unwrap_or(0);
                metrics::gauge!("tributary_slot_retained_wal_bytes").set(retained as f64);
                if retained > slot::SLOT_LAG_WARN_BYTES {
                    tracing::warn!(slot = %slot_name, retained_mb = retained / (1024 * 1024), "the replication slot retains a lot of WAL: the task is behind, or the database is idle without HeartbeatEnable");
                }
            }
        }
        if self.dirty {
            self.checkpoints.save(cp)?;
            self.dirty = false;
        }
        let oldest = self.writer.oldest_buffered_commit_us();
        super::metrics::publish(cp, oldest);
        Ok(())
    }

    /// Confirms the furthest position whose changes are all durably written.
    fn advance(&mut self, stream: &mut dyn LogicalStream, cp: &mut Checkpoint) -> Result<()> {
        let buffered = self.writer.oldest_buffered().map(|p| match &p.commit {
            Position::Postgres(l) => *l,
            Position::MySql(_) => Lsn(0),
        });
        let open = self.txn.map(|(l, _)| l);
        let safe = match (buffered, open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => self.last_end,
        };
        let Some(safe) = safe else { return Ok(()) };
        if self.confirmed.is_some_and(|c| c >= safe) {
            return Ok(());
        }
        let state = cp.cdc.as_mut().expect("cdc state");
        if matches!(&state.resume_from, Some(Position::Postgres(l)) if *l >= safe) {
            self.confirmed = Some(safe);
            return Ok(());
        }
        state.resume_from = Some(Position::Postgres(safe));
        self.dirty = true;
        // Everything before `safe` is durable in files; the checkpoint records per-table
        // positions already, so confirming before the next save loses nothing.
        stream.confirm(safe);
        self.confirmed = Some(safe);
        Ok(())
    }

    /// Handles one stream event; Some when the task must stop.
    async fn event(
        &mut self,
        ev: StreamEvent,
        cp: &mut Checkpoint,
        stop: Option<CdcStop>,
    ) -> Result<Option<Stopped>> {
        match ev {
            StreamEvent::Begin {
                final_lsn,
                commit_us,
            } => {
                if let Some(CdcStop::CommitTime(t)) = stop {
                    if commit_us > t {
                        return Ok(Some(Stopped::CommitTime));
                    }
                }
                self.txn = Some((final_lsn, commit_us));
                self.seq = 0;
                cp.cdc.as_mut().expect("cdc state").last_commit_us = Some(commit_us);
            }
            StreamEvent::Commit { end_lsn, .. } => {
                self.txn = None;
                self.last_end = Some(end_lsn);
            }
            StreamEvent::KeepAlive { wal_end } => {
                // Idle: nothing open, nothing buffered; the server's WAL end is safe to confirm
                // (transactions still open there commit later, at higher LSNs).
                if self.txn.is_none() && self.writer.oldest_buffered().is_none() {
                    self.last_end = Some(self.last_end.map_or(wal_end, |l| l.max(wal_end)));
                }
            }
            StreamEvent::Data(bytes) => {
                let msg = pgoutput::decode(&bytes).map_err(|e| {
                    Error::new(
                        ErrorKind::Source,
                        format!("cannot decode a pgoutput message: {e}"),
                        "report this as a bug with the PostgreSQL version; rerun resumes from the last durable position",
                    )
                })?;
                self.message(msg, cp).await?;
            }
        }
        Ok(None)
    }

    /// The next change position in the open transaction.
    fn next_pos(&mut self) -> Result<(ChangePos, i64)> {
        let (lsn, commit_us) = self
            .txn
            .ok_or_else(|| Error::internal("row change outside a transaction"))?;
        self.seq += 1;
        Ok((
            ChangePos {
                commit: Position::Postgres(lsn),
                seq: self.seq,
            },
            commit_us,
        ))
    }

    async fn message(&mut self, msg: Message<'_>, cp: &mut Checkpoint) -> Result<()> {
        match msg {
            Message::Relation(r) => {
                let rel = self.rels.update(&r).await?.clone();
                if !rel.selected {
                    return Ok(());
                }
                let changed = self
                    .writer
                    .schema(&rel.key)
                    .is_some_and(|s| **s != *rel.schema);
                if self.writer.needs_flush_for_schema(&rel.key, &rel.schema) {
                    self.writer.flush(&rel.key, cp, self.checkpoints).await?;
                }
                self.writer.set_schema(&rel.key, rel.schema.clone());
                if changed {
                    tracing::info!(table = %rel.key, "table shape changed: the next file has the new columns");
                    if let Some(stats) = cp.tables.get_mut(&rel.key) {
                        stats.ddls += 1;
                    }
                    self.dirty = true;
                }
            }
            Message::Insert { relation, new } => {
                let (pos, at) = self.next_pos()?;
                self.row(cp, relation, Op::Insert, pos, at, |rels, rel, out| {
                    rels.push_row(rel, &new, None, out)
                })
                .await?;
            }
            Message::Update {
                relation,
                key,
                old,
                new,
            } => {
                if let Some(k) = &key {
                    // The key changed: the old key's row is gone, so a replay must delete it.
                    let (pos, at) = self.next_pos()?;
                    self.row(cp, relation, Op::Delete, pos, at, |rels, rel, out| {
                        rels.push_before_image(rel, k, out)
                    })
                    .await?;
                }
                let (pos, at) = self.next_pos()?;
                self.row(cp, relation, Op::Update, pos, at, |rels, rel, out| {
                    rels.push_row(rel, &new, old.as_ref(), out)
                })
                .await?;
            }
            Message::Delete { relation, key, old } => {
                let (pos, at) = self.next_pos()?;
                let Some(before) = old.or(key) else {
                    return Ok(());
                };
                self.row(cp, relation, Op::Delete, pos, at, |rels, rel, out| {
                    rels.push_before_image(rel, &before, out)
                })
                .await?;
            }
            Message::Truncate { relations, .. } => {
                for oid in relations {
                    let (pos, _) = self.next_pos()?;
                    let Some(rel) = self.rels.get(oid).filter(|r| r.selected).cloned() else {
                        continue;
                    };
                    if already_written(cp, &rel.key, &rel.key, &pos) {
                        continue;
                    }
                    if let Some(stats) = cp.tables.get_mut(&rel.key) {
                        stats.ddls += 1;
                    }
                    if !self.task.settings.handle_truncate {
                        tracing::info!(table = %rel.key, "source TRUNCATE ignored (HandleSourceTableTruncated=false)");
                        continue;
                    }
                    tracing::warn!(table = %rel.key, "source TRUNCATE: deleting the table's objects (HandleSourceTableTruncated=true)");
                    self.writer.discard(&rel.key);
                    let prefix = self
                        .layout
                        .table_prefix(&rel.schema.schema, &rel.schema.table);
                    store::delete_prefix(self.store, &prefix).await?;
                    cdc_table(cp, &rel.key).written_through = Some(pos);
                    self.checkpoints.save(cp)?;
                }
            }
            Message::Begin { .. }
            | Message::Commit { .. }
            | Message::Origin { .. }
            | Message::Type { .. }
            | Message::Message { .. } => {}
        }
        Ok(())
    }

    /// Buffers one row change of `relation` unless it is filtered or already written.
    async fn row(
        &mut self,
        cp: &mut Checkpoint,
        relation: u32,
        op: Op,
        pos: ChangePos,
        commit_us: i64,
        fill: impl FnOnce(
            &Relations,
            &crate::source::postgres::cdc::Rel,
            &mut crate::change::RowBatch,
        ) -> Result<()>,
    ) -> Result<()> {
        let Some(rel) = self.rels.get(relation) else {
            return Err(Error::internal(format!(
                "change for unknown relation {relation}"
            )));
        };
        let stream = self.writer.stream_key(&rel.key);
        if !rel.selected || !self.writer.wants(op) || already_written(cp, stream, &rel.key, &pos) {
            return Ok(());
        }
        let out = self
            .writer
            .row_buf(&rel.key)
            .ok_or_else(|| Error::internal(format!("no schema for {}", rel.key)))?;
        fill(&self.rels, rel, out)?;
        if let Some(table) = self.writer.end_row(&rel.key, op, commit_us, pos)? {
            self.writer.flush(&table, cp, self.checkpoints).await?;
        }
        Ok(())
    }
}

/// True when `table` already has the change at `pos` (written before a restart, or in its LOAD
/// files). `stream` is the checkpoint key whose files carry the table's changes.
pub(super) fn already_written(cp: &Checkpoint, stream: &str, table: &str, pos: &ChangePos) -> bool {
    let Some(c) = cp.cdc.as_ref() else {
        return false;
    };
    let written = c
        .tables
        .get(stream)
        .and_then(|s| s.written_through.as_ref());
    let loaded = c.tables.get(table).and_then(|s| s.loaded_at.as_ref());
    written.is_some_and(|w| pos <= w) || loaded.is_some_and(|l| pos.commit < *l)
}

/// Status for a stopped or running CDC task (`tributary status`).
pub fn phase(cp: &Checkpoint) -> Option<&str> {
    cp.cdc.as_ref().map(|c| c.phase.as_str())
}

/// Maps the stream result to the checkpoint's status fields.
pub fn finish(cp: &mut Checkpoint, result: &Result<Stopped>) {
    match result {
        Ok(s) => {
            cp.status = task_status::STOPPED.into();
            cp.stop_reason = Some(s.reason().into());
        }
        Err(e) => {
            cp.status = task_status::FAILED.into();
            cp.stop_reason = Some(if e.kind == ErrorKind::Interrupted {
                "NORMAL".into()
            } else {
                "FATAL_ERROR".into()
            });
            if e.kind != ErrorKind::Interrupted {
                cp.last_error = Some(e.to_string());
            } else {
                cp.status = task_status::STOPPED.into();
            }
        }
    }
}
