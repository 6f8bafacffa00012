//! Change data capture from MySQL/MariaDB (`full-load-and-cdc`, `cdc`): the snapshot→binlog
//! handoff and the binlog loop, on the same writer and exactly-once protocol as PostgreSQL.
//!
//! Handoff: the full load's snapshot is taken under `FLUSH TABLES WITH READ LOCK` together with
//! the binlog position P it corresponds to; streaming starts at P, so each committed change is in
//! the LOAD files or in the CDC files. A change's position is its transaction's *start* in the
//! binlog (the binlog is written in commit order, so starts order transactions like commits do)
//! plus its ordinal; the checkpoint's `resume_from` is the start of the oldest transaction not
//! yet durable, and a restart re-reads from there, skipping what each table already wrote.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_common::io::ParseBuf;

use super::cdc::{already_written, CdcRun, Stopped};
use crate::change::{BinlogPos, ChangePos, Op, Position};
use crate::checkpoint::{cdc_phase, CdcState, Checkpoint};
use crate::config::{CdcStop, MigrationType, MySqlStart};
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::RelationKind;
use crate::source::mysql::binlog::{self, TableVersion};
use crate::source::mysql::catalog::{self, MyTable};
use crate::source::mysql::{self as my, prereq, MySnapshot};
use crate::source::{lob_cut_len, lob_limit, Snapshot};
use crate::store;
use crate::writer::cdc::{cdc_table, resolve_pending, CdcWriter, SystemClock};

/// How long the binlog reader keeps reconnecting after losing the server before it gives up.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the loop wakes without events: timed flushes, stop-time checks.
const TICK: Duration = Duration::from_millis(250);

impl CdcRun<'_> {
    /// Runs a MySQL/MariaDB CDC task until a signal or the stop position.
    pub async fn run_mysql(&self, mut cp: Checkpoint) -> (Checkpoint, Result<Stopped>) {
        let r = self.mysql_inner(&mut cp).await;
        (cp, r)
    }

    async fn mysql_inner(&self, cp: &mut Checkpoint) -> Result<Stopped> {
        let task = self.task;
        let mut admin = my::connect(&task.source).await?;
        if let Some(first) = prereq::check_cdc(&mut admin).await?.into_iter().next() {
            return Err(first);
        }
        let server_id = task
            .source
            .cdc
            .server_id
            .unwrap_or_else(|| binlog::default_server_id(&task.id));
        let fresh = cp.cdc.as_ref().is_none_or(|c| c.resume_from.is_none());
        let loading = cp
            .cdc
            .as_ref()
            .is_some_and(|c| c.phase == cdc_phase::FULL_LOAD);
        cp.cdc.get_or_insert_with(CdcState::default);
        if fresh && task.migration_type == MigrationType::Cdc {
            let start = match task.cdc_start_binlog.clone() {
                Some(MySqlStart::Binlog(p)) => p,
                Some(MySqlStart::MariaDbGtid(g)) => {
                    let p = binlog::gtid_position(&task.source, server_id, &g).await?;
                    tracing::info!(gtid = %g, position = %Position::MySql(p.clone()), "GTID start position resolved");
                    p
                }
                None => my::binlog_position(&mut admin)
                    .await?
                    .ok_or_else(binlog_off)?,
            };
            tracing::info!(position = %Position::MySql(start.clone()), "starting change capture");
            let state = cp.cdc.as_mut().expect("set above");
            state.resume_from = Some(Position::MySql(start));
            state.phase = cdc_phase::CDC.into();
            self.checkpoints.save(cp)?;
        } else if fresh || loading {
            // A fresh load, or the rest of an interrupted one from a new snapshot: its tables
            // skip the changes before the new point, the finished ones take every change.
            let snap = MySnapshot::export(
                &task.source,
                &task.mappings,
                task.settings.support_lobs,
                task.settings.max_sub_tasks,
            )
            .await?;
            let point = snap.position.clone().ok_or_else(binlog_off)?;
            let state = cp.cdc.as_mut().expect("set above");
            if fresh {
                state.resume_from = Some(Position::MySql(point.clone()));
                state.phase = cdc_phase::FULL_LOAD.into();
            }
            self.checkpoints.save(cp)?;
            let r = self.load_from(cp, &snap, Position::MySql(point)).await;
            let _ = snap.close().await;
            r?;
        }
        drop(admin);

        let mut backoff = Duration::from_secs(1);
        let mut failing_since: Option<std::time::Instant> = None;
        loop {
            resolve_pending(self.store, cp, self.checkpoints).await?;
            let start = match cp.cdc.as_ref().and_then(|c| c.resume_from.clone()) {
                Some(Position::MySql(p)) => p,
                _ => return Err(Error::internal("no binlog position to resume from")),
            };
            // Opening the dump is retried like a lost stream: the server may still be down.
            let (r, progressed) = match Binlog::new(self, server_id, start).await {
                Ok(mut s) => (s.stream(cp).await, s.progressed),
                Err(e) => (Err(e), false),
            };
            match r {
                Err(e) if e.retryable() && !self.cancel.is_cancelled() => {
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    if progressed {
                        backoff = Duration::from_secs(1);
                        failing_since = Some(std::time::Instant::now());
                    } else if since.elapsed() > RECONNECT_FOR {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "binlog connection lost; reconnecting from the last durable position");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Ok(Stopped::Signal),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                r => return r,
            }
        }
    }
}

fn binlog_off() -> Error {
    Error::new(
        ErrorKind::Source,
        "the binary log is off: there is no position to capture changes from",
        "start the server with log-bin, binlog_format=ROW and server-id ≥ 1",
    )
}

/// A selected table as the current TABLE_MAP describes it.
struct Mapped {
    codecs: Arc<[binlog::ColumnCodec]>,
    version: Arc<TableVersion>,
}

/// The binlog loop's state for one connection.
struct Binlog<'r, 'a> {
    run: &'r CdcRun<'a>,
    stream: mysql_async::BinlogStream,
    /// Catalog reads (table shapes after DDL).
    admin: mysql_async::Conn,
    writer: CdcWriter<'a>,
    /// Current binlog file (from ROTATE events).
    file: String,
    /// TABLE_MAP ids → the selected table they map (None: not selected).
    maps: HashMap<u64, Option<Mapped>>,
    /// Catalog by (database, table), read once per shape.
    catalog: HashMap<(String, String), Arc<MyTable>>,
    /// The open transaction: its start position and time.
    txn: Option<(BinlogPos, i64)>,
    seq: u64,
    /// End of the last complete transaction.
    last_end: Option<BinlogPos>,
    dirty: bool,
    /// Something was read on this connection (resets the reconnect backoff).
    progressed: bool,
}

impl<'r, 'a> Binlog<'r, 'a> {
    async fn new(run: &'r CdcRun<'a>, server_id: u32, start: BinlogPos) -> Result<Binlog<'r, 'a>> {
        let task = run.task;
        let stream = binlog::open(&task.source, server_id, &start).await?;
        tracing::info!(position = %Position::MySql(start.clone()), server_id, "streaming changes from the binlog");
        Ok(Binlog {
            run,
            stream,
            admin: my::connect(&task.source).await?,
            writer: CdcWriter::new(
                run.store,
                run.layout,
                &task.target.settings,
                Arc::new(SystemClock),
            ),
            file: start.file,
            maps: HashMap::new(),
            catalog: HashMap::new(),
            txn: None,
            seq: 0,
            last_end: None,
            dirty: false,
            progressed: false,
        })
    }

    /// Reads events until a signal, the stop position or an error; a clean stop flushes.
    async fn stream(&mut self, cp: &mut Checkpoint) -> Result<Stopped> {
        let stop = self.run.task.cdc_stop;
        let cancel = self.run.cancel.clone();
        let stopped = loop {
            let wait = self
                .writer
                .next_due_in_ms()
                .map_or(TICK, |ms| Duration::from_millis(ms as u64).min(TICK));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break Stopped::Signal,
                ev = self.stream.next() => {
                    let event = match ev {
                        Some(Ok(e)) => e,
                        Some(Err(e)) => return Err(my::my_error(e, "reading the binlog")),
                        None => return Err(Error::new(ErrorKind::SourceConnect, "the binlog stream ended", "check the MySQL server log; the task reconnects by itself")),
                    };
                    self.progressed = true;
                    if let Some(s) = self.event(event, cp, stop).await? {
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
            self.advance(cp);
        };
        self.writer.flush_all(cp, self.run.checkpoints).await?;
        self.advance(cp);
        self.run.checkpoints.save(cp)?;
        Ok(stopped)
    }

    /// Timed work: flush tables whose batch interval passed; periodic checkpoint; metrics.
    async fn tick(&mut self, cp: &mut Checkpoint) -> Result<()> {
        for table in self.writer.due_by_time() {
            self.writer.flush(&table, cp, self.run.checkpoints).await?;
        }
        if self.dirty {
            self.run.checkpoints.save(cp)?;
            self.dirty = false;
        }
        super::metrics::publish(cp, self.writer.oldest_buffered_commit_us());
        Ok(())
    }

    /// Moves `resume_from` to the start of the oldest transaction not yet durable.
    fn advance(&mut self, cp: &mut Checkpoint) {
        let buffered = self.writer.oldest_buffered().and_then(|p| match &p.commit {
            Position::MySql(b) => Some(b.clone()),
            Position::Postgres(_) => None,
        });
        let open = self.txn.as_ref().map(|(p, _)| p.clone());
        let safe = match (buffered, open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => self.last_end.clone(),
        };
        let Some(safe) = safe else { return };
        let state = cp.cdc.as_mut().expect("cdc state");
        if matches!(&state.resume_from, Some(Position::MySql(p)) if *p >= safe) {
            return;
        }
        state.resume_from = Some(Position::MySql(safe));
        self.dirty = true;
    }

    /// Opens a transaction at `at`; Some when the commit-time stop is reached.
    fn begin(
        &mut self,
        at: Option<BinlogPos>,
        time_s: u32,
        cp: &mut Checkpoint,
        stop: Option<CdcStop>,
    ) -> Option<Stopped> {
        if self.txn.is_some() {
            return None;
        }
        let time_us = i64::from(time_s) * 1_000_000;
        if let Some(CdcStop::CommitTime(t)) = stop {
            if time_us > t {
                return Some(Stopped::CommitTime);
            }
        }
        let at = at.unwrap_or_else(|| BinlogPos {
            file: self.file.clone(),
            offset: 4,
        });
        self.txn = Some((at, time_us));
        self.seq = 0;
        cp.cdc.as_mut().expect("cdc state").last_commit_us = Some(time_us);
        None
    }

    /// Closes the open transaction; `end` is where the next one starts.
    fn commit(&mut self, end: Option<BinlogPos>) {
        self.txn = None;
        if let Some(end) = end {
            self.last_end = Some(end);
        }
    }

    /// Handles one binlog event; Some when the task must stop.
    async fn event(
        &mut self,
        event: mysql_async::binlog::events::Event,
        cp: &mut Checkpoint,
        stop: Option<CdcStop>,
    ) -> Result<Option<Stopped>> {
        let h = event.header();
        let (end, size) = (u64::from(h.log_pos()), u64::from(h.event_size()));
        let here = |file: &str| {
            (end >= size && end > 0).then(|| BinlogPos {
                file: file.to_string(),
                offset: end - size,
            })
        };
        let at = here(&self.file);
        let next = (end > 0).then(|| BinlogPos {
            file: self.file.clone(),
            offset: end,
        });
        let time = h.timestamp();
        tracing::trace!(event_type = h.event_type_raw(), end, size, file = %self.file, open = self.txn.is_some(), "binlog event");
        if binlog::is_gtid(h.event_type_raw()) {
            return Ok(self.begin(at, time, cp, stop));
        }
        let data = event.read_data().map_err(|e| decode_error(&e))?;
        match data {
            Some(EventData::RotateEvent(r)) => {
                self.file = binlog::rotated_name(r.name_raw(), &self.file, end == 0);
                // Between transactions the next one starts in the new file (`advance`
                // still prefers an older buffered change).
                if self.txn.is_none() {
                    self.last_end = Some(BinlogPos {
                        file: self.file.clone(),
                        offset: r.position(),
                    });
                }
            }
            Some(EventData::GtidEvent(_)) | Some(EventData::AnonymousGtidEvent(_)) => {
                return Ok(self.begin(at, time, cp, stop));
            }
            Some(EventData::QueryEvent(q)) => {
                let text = q.query();
                let trimmed = text.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    return Ok(self.begin(at, time, cp, stop));
                } else if trimmed.eq_ignore_ascii_case("COMMIT") {
                    self.commit(next);
                } else if trimmed.starts_with("# Dummy") {
                    // MariaDB's stand-in for a GTID event a non-MariaDB reader cannot parse.
                    return Ok(self.begin(at, time, cp, stop));
                } else {
                    if let Some(s) = self.begin(at, time, cp, stop) {
                        return Ok(Some(s));
                    }
                    let schema = q.schema().into_owned();
                    let text = text.into_owned();
                    self.statement(&schema, &text, cp).await?;
                    self.commit(next);
                }
            }
            Some(EventData::XidEvent(_)) => self.commit(next),
            Some(EventData::TableMapEvent(t)) => {
                if let Some(s) = self.begin(at, time, cp, stop) {
                    return Ok(Some(s));
                }
                self.table_map(t.into_owned(), cp).await?;
            }
            Some(EventData::RowsEvent(r)) => {
                if let Some(s) = self.begin(at, time, cp, stop) {
                    return Ok(Some(s));
                }
                self.rows(&r, cp).await?;
            }
            Some(EventData::TransactionPayloadEvent(_)) => {
                return Err(Error::new(
                    ErrorKind::Source,
                    "the binlog holds compressed transactions, which tributary cannot read yet",
                    "SET GLOBAL binlog_transaction_compression = OFF on the server",
                ));
            }
            _ => {}
        }
        Ok(None)
    }

    /// A statement outside row events: DDL re-reads table shapes; TRUNCATE follows
    /// `HandleSourceTableTruncated`.
    async fn statement(&mut self, schema: &str, text: &str, cp: &mut Checkpoint) -> Result<()> {
        if !binlog::is_ddl(text) {
            return Ok(());
        }
        // Shapes may have changed: the next TABLE_MAP of each table reads the catalog again.
        self.catalog.clear();
        let Some((db, table)) = binlog::truncated_table(text, schema) else {
            return Ok(());
        };
        let mappings = &self.run.task.mappings;
        if !mappings.selects(&db, &table, RelationKind::Table) {
            return Ok(());
        }
        let key = format!("{db}.{table}");
        self.seq += 1;
        let pos = self.change_pos()?;
        if already_written(cp, &key, &key, &pos) {
            return Ok(());
        }
        if let Some(stats) = cp.tables.get_mut(&key) {
            stats.ddls += 1;
        }
        if !self.run.task.settings.handle_truncate {
            tracing::info!(table = %key, "source TRUNCATE ignored (HandleSourceTableTruncated=false)");
            return Ok(());
        }
        tracing::warn!(table = %key, "source TRUNCATE: deleting the table's objects (HandleSourceTableTruncated=true)");
        self.writer.discard(&key);
        let prefix = self.run.layout.table_prefix(&db, &table);
        store::delete_prefix(self.run.store, &prefix).await?;
        cdc_table(cp, &key).written_through = Some(pos);
        self.run.checkpoints.save(cp)?;
        Ok(())
    }

    /// Maps a TABLE_MAP to its selected table's current version; a new shape closes the table's
    /// file so the next one has the new columns.
    async fn table_map(&mut self, tme: TableMapEvent<'static>, cp: &mut Checkpoint) -> Result<()> {
        let id = tme.table_id();
        let (db, table) = (
            tme.database_name().into_owned(),
            tme.table_name().into_owned(),
        );
        let task = self.run.task;
        if !task.mappings.selects(&db, &table, RelationKind::Table) {
            self.maps.insert(id, None);
            return Ok(());
        }
        let name = (db, table);
        let described = match self.catalog.get(&name) {
            Some(t) => t.clone(),
            None => {
                let t = Arc::new(
                    catalog::describe(
                        &mut self.admin,
                        &name.0,
                        &name.1,
                        task.settings.support_lobs,
                    )
                    .await?,
                );
                self.catalog.insert(name.clone(), t.clone());
                t
            }
        };
        let version = Arc::new(TableVersion::new(
            &described,
            &tme,
            task.settings.support_lobs,
        )?);
        let key = version.key.clone();
        let changed = self
            .writer
            .schema(&key)
            .is_some_and(|s| **s != *version.schema);
        if self.writer.needs_flush_for_schema(&key, &version.schema) {
            self.writer.flush(&key, cp, self.run.checkpoints).await?;
        }
        self.writer.set_schema(&key, version.schema.clone());
        if changed {
            tracing::info!(table = %key, "table shape changed: the next file has the new columns");
            if let Some(stats) = cp.tables.get_mut(&key) {
                stats.ddls += 1;
            }
            self.dirty = true;
        }
        let codecs = binlog::codecs(&tme)?.into();
        self.maps.insert(id, Some(Mapped { codecs, version }));
        Ok(())
    }

    /// The position of the open transaction's current change.
    fn change_pos(&self) -> Result<ChangePos> {
        let (at, _) = self
            .txn
            .as_ref()
            .ok_or_else(|| Error::internal("row change outside a transaction"))?;
        Ok(ChangePos {
            commit: Position::MySql(at.clone()),
            seq: self.seq,
        })
    }

    /// Writes the rows of one rows event, in order, straight from the event's bytes.
    async fn rows(&mut self, r: &RowsEventData<'_>, cp: &mut Checkpoint) -> Result<()> {
        let Some(Some(mapped)) = self.maps.get(&r.table_id()) else {
            return Ok(());
        };
        let (kind, before, after) = match r {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                (Op::Insert, false, true)
            }
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => {
                (Op::Update, true, true)
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                (Op::Delete, true, false)
            }
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(Error::new(
                    ErrorKind::Source,
                    "the binlog holds partial JSON updates, which carry no full after-image",
                    "SET GLOBAL binlog_row_value_options = '' on the server",
                ))
            }
        };
        let before_cols: Vec<bool> = r
            .columns_before_image()
            .map(|b| b.iter().map(|x| *x).collect())
            .unwrap_or_default();
        let after_cols: Vec<bool> = r
            .columns_after_image()
            .map(|b| b.iter().map(|x| *x).collect())
            .unwrap_or_default();
        let version = mapped.version.clone();
        let codecs = mapped.codecs.clone();
        let (_, time_us) = self
            .txn
            .clone()
            .ok_or_else(|| Error::internal("row change outside a transaction"))?;
        let lob_max = self
            .run
            .task
            .settings
            .lob_max_size_kb
            .map(|kb| kb as usize * 1024);
        let mut buf = ParseBuf(r.rows_data());
        let (mut b, mut a) = (Vec::new(), Vec::new());
        while !buf.0.is_empty() {
            if before {
                binlog::read_image(&mut buf, &before_cols, &codecs, &mut b)
                    .map_err(|e| decode_error(&e))?;
            }
            if after {
                binlog::read_image(&mut buf, &after_cols, &codecs, &mut a)
                    .map_err(|e| decode_error(&e))?;
            }
            if kind == Op::Update {
                let key_moved = version
                    .key_cols
                    .iter()
                    .any(|&k| version.from_binlog[k].is_some_and(|i| b.get(i) != a.get(i)));
                if key_moved {
                    // The old key's row is gone: a replay must delete it.
                    self.emit(cp, &version, Op::Delete, &mut b, time_us, lob_max)
                        .await?;
                }
            }
            let image = if kind == Op::Delete { &mut b } else { &mut a };
            self.emit(cp, &version, kind, image, time_us, lob_max)
                .await?;
        }
        Ok(())
    }

    /// Buffers one row change unless it is filtered or already written.
    async fn emit(
        &mut self,
        cp: &mut Checkpoint,
        version: &TableVersion,
        op: Op,
        row: &mut [Option<BinlogValue<'_>>],
        time_us: i64,
        lob_max: Option<usize>,
    ) -> Result<()> {
        self.seq += 1;
        let pos = self.change_pos()?;
        let key = &version.key;
        let stream = self.writer.stream_key(key);
        if !self.writer.wants(op) || already_written(cp, stream, key, &pos) {
            return Ok(());
        }
        let out = self
            .writer
            .row_buf(key)
            .ok_or_else(|| Error::internal(format!("no schema for {key}")))?;
        for (c, col) in version.columns.iter().enumerate() {
            let v = version.from_binlog[c]
                .and_then(|i| row.get_mut(i))
                .and_then(Option::take);
            binlog::push_binlog_value(col, v, out)?;
            if let Some((max, is_bytes)) = lob_limit(lob_max, col.column.dms_type) {
                if let Some(len) = lob_cut_len(out.last_cell(), max, is_bytes) {
                    out.truncate_last_cell(len);
                }
            }
        }
        if let Some(table) = self.writer.end_row(key, op, time_us, pos)? {
            self.writer.flush(&table, cp, self.run.checkpoints).await?;
        }
        Ok(())
    }
}

fn decode_error(e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Source,
        format!("cannot decode a binlog event: {e}"),
        "report this as a bug with the server version; a rerun resumes from the last durable position",
    )
}
