//! The CDC writer: buffers each table's changes and writes them as `yyyyMMdd-HHmmssSSS` files
//! when `CdcMinFileSize` or `CdcMaxBatchInterval` is reached, with an exactly-once protocol
//! against the checkpoint.
//!
//! Exactly once, per file: (1) the file's key and last change are recorded in the checkpoint as
//! *pending* (fsync'd), (2) the object is uploaded (atomic: visible whole or not at all), (3) the
//! table's `written_through` moves to the file's last change and the pending entry is cleared.
//! After a crash between (1) and (3), [`resolve_pending`] asks the store whether the object
//! exists: if so the file counts as written, if not its changes are written again (under a new,
//! later name). Together with the restart filter (skip changes at or before `written_through`)
//! every change lands in exactly one file.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::change::{ChangePos, Op, RowBatch, TableSchema};
use crate::checkpoint::{
    table_state, CdcState, Checkpoint, CheckpointStore, PendingFile, TableStats,
};
use crate::config::S3Settings;
use crate::error::Result;
use crate::layout::{self, Layout};
use crate::store::Store;
use crate::writer::EncodeSpec;

/// Raw bytes all tables together may buffer before the largest buffer is written early, so many
/// busy tables cannot add up to unbounded memory (each is already capped by `CdcMinFileSize`).
pub const BUFFER_BUDGET_BYTES: usize = 96 * 1024 * 1024;

/// Checkpoint key of the transaction-file stream (`PreserveTransactions`); the leading blank keeps
/// it apart from every `schema.table`.
pub const TXN_STREAM: &str = " CDC_TXN";

/// `PreserveTransactions`: all tables' changes in commit order, rendered as
/// `<op>,<table_name>,<schema_name>,<columns…>` CSV lines, bound for `CDC_TXN-*.csv` files.
struct TxnBuffer {
    cdc_path: String,
    bytes: Vec<u8>,
    first_ms: Option<i64>,
    first: Option<ChangePos>,
    last: Option<ChangePos>,
    per_table: BTreeMap<String, [u64; 3]>,
    /// Per table: the line renderer (a CSV encoder whose first columns are table and schema).
    encoders: BTreeMap<String, super::csv::CsvEncoder>,
}

/// The time source of the flush policy and of file names; tests drive it by hand.
pub trait Clock: Send + Sync {
    /// Current UTC time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Whether CDC rows carry the `Op` column (reference §1.4). With `CdcInsertsOnly` the CDC files
/// look like the full-load files; with `CdcInsertsAndUpdates` we keep `Op` (the documented `?`
/// case), because without it a consumer cannot tell an insert from an update.
pub fn cdc_op_column(s: &S3Settings) -> bool {
    !s.cdc.inserts_only || s.include_op_for_full_load
}

impl EncodeSpec {
    /// The spec for a CDC file of `table`.
    pub fn cdc(settings: &S3Settings, table: &TableSchema) -> EncodeSpec {
        EncodeSpec {
            op_column: cdc_op_column(settings),
            ..EncodeSpec::full_load(settings, table)
        }
    }
}

/// One table's buffered changes.
struct TableBuffer {
    schema: Arc<TableSchema>,
    spec: Arc<EncodeSpec>,
    rows: RowBatch,
    /// Wall-clock ms of the first buffered change (the `CdcMaxBatchInterval` timer).
    first_ms: Option<i64>,
    last: Option<ChangePos>,
    first: Option<ChangePos>,
    counts: [u64; 3],
}

impl TableBuffer {
    fn new(schema: Arc<TableSchema>, settings: &S3Settings) -> TableBuffer {
        TableBuffer {
            spec: Arc::new(EncodeSpec::cdc(settings, &schema)),
            rows: RowBatch::new(schema.columns.len()),
            schema,
            first_ms: None,
            last: None,
            first: None,
            counts: [0; 3],
        }
    }
}

/// Buffers changes per table and writes CDC files. Rows arrive in commit order per table.
pub struct CdcWriter<'a> {
    store: &'a dyn Store,
    layout: &'a Layout,
    settings: &'a S3Settings,
    clock: Arc<dyn Clock>,
    min_file_bytes: usize,
    max_interval_ms: i64,
    budget_bytes: usize,
    tables: BTreeMap<String, TableBuffer>,
    txn: Option<TxnBuffer>,
}

impl<'a> CdcWriter<'a> {
    /// A writer with the task's `CdcMinFileSize` and `CdcMaxBatchInterval`.
    pub fn new(
        store: &'a dyn Store,
        layout: &'a Layout,
        settings: &'a S3Settings,
        clock: Arc<dyn Clock>,
    ) -> CdcWriter<'a> {
        CdcWriter {
            store,
            layout,
            settings,
            clock,
            min_file_bytes: (settings.cdc.min_file_size_kb * 1024) as usize,
            max_interval_ms: settings.cdc.max_batch_interval_s as i64 * 1000,
            budget_bytes: BUFFER_BUDGET_BYTES,
            tables: BTreeMap::new(),
            txn: settings
                .cdc
                .preserve_transactions_path
                .clone()
                .map(|cdc_path| TxnBuffer {
                    cdc_path,
                    bytes: Vec::new(),
                    first_ms: None,
                    first: None,
                    last: None,
                    per_table: BTreeMap::new(),
                    encoders: BTreeMap::new(),
                }),
        }
    }

    /// The checkpoint key whose `written_through` covers `table`'s changes: the table itself, or
    /// the transaction stream with `PreserveTransactions`.
    pub fn stream_key<'t>(&self, table: &'t str) -> &'t str {
        if self.txn.is_some() {
            TXN_STREAM
        } else {
            table
        }
    }

    /// True when changes of this kind are written (`CdcInsertsOnly`, `CdcInsertsAndUpdates`).
    pub fn wants(&self, op: Op) -> bool {
        let c = &self.settings.cdc;
        match op {
            Op::Insert => true,
            Op::Update => !c.inserts_only,
            Op::Delete => !c.inserts_only && !c.inserts_and_updates,
        }
    }

    /// The schema rows of `table` are currently buffered with.
    pub fn schema(&self, table: &str) -> Option<&Arc<TableSchema>> {
        self.tables.get(table).map(|t| &t.schema)
    }

    /// Sets the shape of `table`'s next rows. A different shape while rows are buffered returns
    /// true: the caller must [`flush`](Self::flush) first, so one file never mixes shapes.
    pub fn needs_flush_for_schema(&self, table: &str, schema: &TableSchema) -> bool {
        self.tables
            .get(table)
            .is_some_and(|t| !t.rows.is_empty() && *t.schema != *schema)
    }

    /// Installs `schema` for `table` (after any flush [`needs_flush_for_schema`](Self::needs_flush_for_schema) asked for).
    pub fn set_schema(&mut self, table: &str, schema: Arc<TableSchema>) {
        match self.tables.get_mut(table) {
            Some(t) if *t.schema == *schema => {}
            Some(t) if !t.rows.is_empty() => {
                debug_assert!(false, "set_schema with rows buffered");
            }
            _ => {
                if let Some(txn) = self.txn.as_mut() {
                    txn.encoders.remove(table);
                }
                self.tables
                    .insert(table.to_string(), TableBuffer::new(schema, self.settings));
            }
        }
    }

    /// The buffer the next row's cells of `table` are pushed into (after [`set_schema`](Self::set_schema)).
    pub fn row_buf(&mut self, table: &str) -> Option<&mut RowBatch> {
        self.tables.get_mut(table).map(|t| &mut t.rows)
    }

    /// Ends the row whose cells were pushed into [`row_buf`](Self::row_buf). Returns the table to
    /// flush now, if any: this one at `CdcMinFileSize`, or the largest when all buffers together
    /// pass the memory budget.
    pub fn end_row(
        &mut self,
        table: &str,
        op: Op,
        commit_us: i64,
        pos: ChangePos,
    ) -> Result<Option<String>> {
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| crate::error::Error::internal(format!("no schema for {table}")))?;
        t.rows.end_row(op, commit_us)?;
        if let Some(txn) = self.txn.as_mut() {
            let line = render_txn_line(txn, table, t, self.settings)?;
            t.rows = RowBatch::new(t.schema.columns.len());
            txn.bytes.extend_from_slice(&line);
            txn.per_table.entry(table.to_string()).or_default()[op as usize] += 1;
            if txn.first.is_none() {
                txn.first = Some(pos.clone());
                txn.first_ms = Some(self.clock.now().timestamp_millis());
            }
            txn.last = Some(pos);
            let full = txn.bytes.len() >= self.min_file_bytes;
            return Ok(full.then(|| TXN_STREAM.to_string()));
        }
        t.counts[op as usize] += 1;
        if t.first.is_none() {
            t.first = Some(pos.clone());
            t.first_ms = Some(self.clock.now().timestamp_millis());
        }
        t.last = Some(pos);
        if t.rows.data_bytes() >= self.min_file_bytes {
            return Ok(Some(table.to_string()));
        }
        if self.buffered_bytes() > self.budget_bytes {
            return Ok(self
                .tables
                .iter()
                .max_by_key(|(_, t)| t.rows.data_bytes())
                .map(|(k, _)| k.clone()));
        }
        Ok(None)
    }

    /// Raw bytes buffered over all tables.
    pub fn buffered_bytes(&self) -> usize {
        self.tables.values().map(|t| t.rows.data_bytes()).sum()
    }

    /// The earliest change not yet durably written, over all tables (None when nothing is buffered).
    pub fn oldest_buffered(&self) -> Option<&ChangePos> {
        let txn = self.txn.as_ref().and_then(|t| t.first.as_ref());
        self.tables
            .values()
            .filter_map(|t| t.first.as_ref())
            .chain(txn)
            .min()
    }

    /// Commit time (µs) of the oldest buffered change, for the target-latency figure.
    pub fn oldest_buffered_commit_us(&self) -> Option<i64> {
        self.tables
            .values()
            .filter(|t| !t.rows.is_empty())
            .map(|t| t.rows.times[0])
            .min()
    }

    /// Tables whose first buffered change is `CdcMaxBatchInterval` old.
    pub fn due_by_time(&self) -> Vec<String> {
        let now_ms = self.clock.now().timestamp_millis();
        let due = |first: Option<i64>| first.is_some_and(|f| now_ms - f >= self.max_interval_ms);
        let txn = self
            .txn
            .as_ref()
            .filter(|t| due(t.first_ms))
            .map(|_| TXN_STREAM.to_string());
        self.tables
            .iter()
            .filter(|(_, t)| due(t.first_ms))
            .map(|(k, _)| k.clone())
            .chain(txn)
            .collect()
    }

    /// Milliseconds until the next table becomes due by time (None when nothing is buffered).
    pub fn next_due_in_ms(&self) -> Option<i64> {
        let now_ms = self.clock.now().timestamp_millis();
        let txn = self.txn.as_ref().and_then(|t| t.first_ms);
        self.tables
            .values()
            .filter_map(|t| t.first_ms)
            .chain(txn)
            .map(|f| (f + self.max_interval_ms - now_ms).max(0))
            .min()
    }

    /// Drops `table`'s buffered rows without writing them (its objects are being deleted).
    pub fn discard(&mut self, table: &str) {
        if let Some(t) = self.tables.get_mut(table) {
            t.rows = RowBatch::new(t.schema.columns.len());
            t.first = None;
            t.first_ms = None;
            t.last = None;
            t.counts = [0; 3];
        }
    }

    /// Writes every buffered table (a clean stop, or before confirming a position).
    pub async fn flush_all(&mut self, cp: &mut Checkpoint, store: &CheckpointStore) -> Result<()> {
        let names: Vec<String> = self.tables.keys().cloned().collect();
        for name in names {
            self.flush(&name, cp, store).await?;
        }
        self.flush_txn(cp, store).await
    }

    /// Writes the buffered transaction lines as one `CDC_TXN-*.csv` file (same protocol as
    /// [`flush`](Self::flush), under the [`TXN_STREAM`] checkpoint key).
    async fn flush_txn(&mut self, cp: &mut Checkpoint, store: &CheckpointStore) -> Result<()> {
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        let Some(through) = txn.last.take() else {
            return Ok(());
        };
        let bytes = std::mem::take(&mut txn.bytes);
        let per_table = std::mem::take(&mut txn.per_table);
        txn.first = None;
        txn.first_ms = None;
        let cdc_path = txn.cdc_path.clone();
        let state = cdc_table(cp, TXN_STREAM);
        let mut stamp = self.layout.cdc_stamp(self.clock.now());
        if let Some(last) = &state.last_stamp {
            if stamp <= *last {
                stamp = layout::next_stamp(last);
            }
        }
        let key = self.layout.cdc_txn_key_at(&cdc_path, &stamp);
        state.last_stamp = Some(stamp);
        state.pending = Some(PendingFile {
            key: key.clone(),
            through,
            inserts: 0,
            updates: 0,
            deletes: 0,
            per_table,
        });
        store.save(cp)?;
        let body = match self.layout.compression {
            crate::layout::Compression::None => bytes,
            crate::layout::Compression::Gzip => tokio::task::block_in_place(|| {
                use std::io::Write;
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&bytes)
                    .and_then(|()| gz.finish())
                    .map_err(|e| crate::error::Error::internal(format!("gzip: {e}")))
            })?,
        };
        let mut object = self.store.create(&key).await?;
        object.write(Bytes::from(body)).await?;
        let bytes = object.finish().await?;
        tracing::debug!(%key, bytes, "CDC transaction file written");
        commit_pending(cp, TXN_STREAM);
        store.save(cp)
    }

    /// Writes `table`'s buffered rows as one CDC file with the exactly-once protocol (module doc).
    pub async fn flush(
        &mut self,
        table: &str,
        cp: &mut Checkpoint,
        store: &CheckpointStore,
    ) -> Result<()> {
        if table == TXN_STREAM {
            return self.flush_txn(cp, store).await;
        }
        let Some(t) = self.tables.get_mut(table) else {
            return Ok(());
        };
        let Some(through) = t.last.clone() else {
            return Ok(());
        };
        let rows = std::mem::replace(&mut t.rows, RowBatch::new(t.schema.columns.len()));
        let counts = std::mem::take(&mut t.counts);
        t.first = None;
        t.first_ms = None;
        t.last = None;
        let (schema, spec) = (t.schema.clone(), t.spec.clone());

        // (1) Decide the name and record the pending file.
        let state = cdc_table(cp, table);
        let mut stamp = self.layout.cdc_stamp(self.clock.now());
        if let Some(last) = &state.last_stamp {
            if stamp <= *last {
                stamp = layout::next_stamp(last);
            }
        }
        let key = self
            .layout
            .cdc_key_at(&schema.schema, &schema.table, &stamp);
        state.last_stamp = Some(stamp);
        state.pending = Some(PendingFile {
            key: key.clone(),
            through: through.clone(),
            inserts: counts[Op::Insert as usize],
            updates: counts[Op::Update as usize],
            deletes: counts[Op::Delete as usize],
            per_table: Default::default(),
        });
        store.save(cp)?;

        // (2) Upload: visible whole or not at all.
        let nrows = rows.len();
        let encoded = tokio::task::block_in_place(|| encode(&spec, rows))?;
        let mut object = self.store.create(&key).await?;
        for chunk in encoded {
            // A failed write drops the writer, which leaves nothing under the key.
            object.write(Bytes::from(chunk)).await?;
        }
        let bytes = object.finish().await?;
        tracing::debug!(%key, rows = nrows, bytes, "CDC file written");

        // (3) The file is durable: move the table's position and clear the pending entry.
        commit_pending(cp, table);
        store.save(cp)
    }
}

/// Renders the single row buffered in `t` as one transaction-file line.
fn render_txn_line(
    txn: &mut TxnBuffer,
    table: &str,
    t: &TableBuffer,
    settings: &S3Settings,
) -> Result<Vec<u8>> {
    use super::Encoder;
    let encoder = match txn.encoders.entry(table.to_string()) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            let text = |name: &str| crate::change::Column {
                name: name.to_string(),
                dms_type: crate::change::DmsType::String { lob: false },
                source_type: "text".to_string(),
            };
            let mut columns = vec![text("table_name"), text("schema_name")];
            columns.extend(t.schema.columns.iter().cloned());
            let mut csv = settings.csv.clone();
            csv.add_column_name = false;
            let spec = EncodeSpec {
                format: crate::layout::FileFormat::Csv,
                compression: crate::layout::Compression::None,
                csv,
                parquet: settings.parquet.clone(),
                op_column: true,
                timestamp_column: None,
                columns,
            };
            v.insert(super::csv::CsvEncoder::new(Arc::new(spec)))
        }
    };
    let n = t.schema.columns.len();
    let mut one = RowBatch::new(n + 2);
    one.push_cell(t.schema.table.as_bytes());
    one.push_cell(t.schema.schema.as_bytes());
    for c in 0..n {
        match t.rows.get(0, c) {
            Some(v) => one.push_cell(v),
            None => one.push_null(),
        }
    }
    one.end_row(t.rows.ops[0], t.rows.times[0])?;
    let prepared = super::Prepared {
        rows: one,
        arrays: None,
    };
    encoder.write(&prepared, 0..1)?;
    Ok(encoder.take_output())
}

/// Encodes a whole CDC file (CPU work; the caller runs it off the async threads).
fn encode(spec: &Arc<EncodeSpec>, rows: RowBatch) -> Result<Vec<Vec<u8>>> {
    let n = rows.len();
    let prepared = spec.prepare(rows)?;
    let mut encoder = spec.encoder(&prepared)?;
    encoder.write(&prepared, 0..n)?;
    let mut out = vec![encoder.take_output()];
    out.push(encoder.finish()?);
    Ok(out)
}

/// The CDC state of `table`, created on first use.
pub fn cdc_table<'c>(cp: &'c mut Checkpoint, table: &str) -> &'c mut crate::checkpoint::CdcTable {
    cp.cdc
        .get_or_insert_with(CdcState::default)
        .tables
        .entry(table.to_string())
        .or_default()
}

/// Marks `table`'s pending file as written: its position and statistics move forward.
fn commit_pending(cp: &mut Checkpoint, table: &str) {
    let state = cdc_table(cp, table);
    let Some(p) = state.pending.take() else {
        return;
    };
    state.written_through = Some(p.through);
    for (t, [i, u, d]) in &p.per_table {
        add_stats(cp, t, *i, *u, *d);
    }
    if table == TXN_STREAM {
        return;
    }
    add_stats(cp, table, p.inserts, p.updates, p.deletes);
}

/// Adds written changes to `table`'s statistics.
fn add_stats(cp: &mut Checkpoint, table: &str, inserts: u64, updates: u64, deletes: u64) {
    let (schema, name) = table.split_once('.').unwrap_or(("", table));
    let stats = cp
        .tables
        .entry(table.to_string())
        .or_insert_with(|| TableStats {
            schema_name: schema.to_string(),
            table_name: name.to_string(),
            table_state: table_state::COMPLETED.to_string(),
            ..TableStats::default()
        });
    stats.inserts += inserts;
    stats.updates += updates;
    stats.deletes += deletes;
    stats.last_update_time = Some(crate::task::full_load::now());
}

/// Settles files left pending by a crash: an uploaded file counts as written; a missing one is
/// forgotten, and its changes are written again. Call once before streaming resumes.
pub async fn resolve_pending(
    store: &dyn Store,
    cp: &mut Checkpoint,
    checkpoints: &CheckpointStore,
) -> Result<()> {
    let pending: Vec<(String, String)> = cp
        .cdc
        .iter()
        .flat_map(|c| c.tables.iter())
        .filter_map(|(t, s)| s.pending.as_ref().map(|p| (t.clone(), p.key.clone())))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    for (table, key) in pending {
        // A process killed mid-upload can leave a hidden temporary beside the key (local store).
        if let Some((folder, _)) = key.rsplit_once('/') {
            store.remove_abandoned(&format!("{folder}/")).await?;
        }
        if store.exists(&key).await? {
            tracing::info!(%key, "a CDC file uploaded just before the stop is kept");
            commit_pending(cp, &table);
        } else {
            tracing::info!(%key, "a CDC file cut off by the stop is written again");
            cdc_table(cp, &table).pending = None;
        }
    }
    checkpoints.save(cp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Column, DmsType, Lsn, Position};
    use crate::config::settings::SettingsBag;
    use std::sync::Mutex;

    /// A clock the test moves by hand.
    struct ManualClock(Mutex<DateTime<Utc>>);

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    impl ManualClock {
        fn advance_ms(&self, ms: i64) {
            *self.0.lock().unwrap() += chrono::Duration::milliseconds(ms);
        }
    }

    fn schema() -> Arc<TableSchema> {
        Arc::new(TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: vec![Column {
                name: "v".into(),
                dms_type: DmsType::String { lob: false },
                source_type: "text".into(),
            }],
        })
    }

    fn pos(lsn: u64, seq: u64) -> ChangePos {
        ChangePos {
            commit: Position::Postgres(Lsn(lsn)),
            seq,
        }
    }

    fn push(w: &mut CdcWriter, v: &str, p: ChangePos) -> Option<String> {
        w.row_buf("s.t").unwrap().push_cell(v.as_bytes());
        w.end_row("s.t", Op::Insert, 0, p).unwrap()
    }

    fn settings(min_kb: u64, interval_s: u64) -> S3Settings {
        let mut s = S3Settings::parse(SettingsBag::new("test"), None).unwrap();
        s.cdc.min_file_size_kb = min_kb;
        s.cdc.max_batch_interval_s = interval_s;
        s
    }

    fn layout() -> Layout {
        Layout {
            bucket_folder: String::new(),
            format: crate::layout::FileFormat::Csv,
            compression: crate::layout::Compression::None,
            date_partition: None,
        }
    }

    #[test]
    fn flush_policy_size_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::LocalStore::new(dir.path().to_path_buf());
        let s = settings(1, 60);
        let l = layout();
        let t0 = "2022-05-21T23:59:59.990Z".parse().unwrap();
        let clock = Arc::new(ManualClock(Mutex::new(t0)));
        let mut w = CdcWriter::new(&store, &l, &s, clock.clone());
        w.set_schema("s.t", schema());
        assert_eq!(push(&mut w, "a", pos(1, 1)), None);
        assert_eq!(w.next_due_in_ms(), Some(60_000));
        clock.advance_ms(59_999);
        assert!(w.due_by_time().is_empty());
        clock.advance_ms(1);
        assert_eq!(w.due_by_time(), vec!["s.t".to_string()]);
        // 1 KB of data reaches CdcMinFileSize=1 before any timer.
        let big = "x".repeat(1024);
        assert_eq!(push(&mut w, &big, pos(2, 1)), Some("s.t".into()));
        assert_eq!(w.oldest_buffered(), Some(&pos(1, 1)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn names_strictly_increase_and_pending_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::LocalStore::new(dir.path().join("lake"));
        let checkpoints = CheckpointStore::new(dir.path(), "t");
        let mut cp = Checkpoint::new("t", String::new(), Utc::now());
        let s = settings(1000, 60);
        let l = Layout {
            date_partition: Some(crate::layout::DatePartition::default()),
            ..layout()
        };
        // One millisecond before midnight: the second file (same clock) must sort after the
        // first, and lands in the next day's folder because folder and name share one stamp.
        let clock = Arc::new(ManualClock(Mutex::new(
            "2022-05-21T23:59:59.999Z".parse().unwrap(),
        )));
        let mut w = CdcWriter::new(&store, &l, &s, clock.clone());
        w.set_schema("s.t", schema());
        push(&mut w, "a", pos(1, 1));
        w.flush("s.t", &mut cp, &checkpoints).await.unwrap();
        push(&mut w, "b", pos(2, 1));
        w.flush("s.t", &mut cp, &checkpoints).await.unwrap();
        let keys = store.list("s/t/").await.unwrap();
        assert_eq!(
            keys,
            vec![
                "s/t/2022/05/21/20220521-235959999.csv".to_string(),
                "s/t/2022/05/22/20220522-000000000.csv".to_string()
            ]
        );
        let state = &cp.cdc.as_ref().unwrap().tables["s.t"];
        assert_eq!(state.written_through, Some(pos(2, 1)));
        assert_eq!(cp.tables["s.t"].inserts, 2);

        // A crash after recording a pending file: a file that exists counts, a missing one not.
        let pending = |key: &str, lsn: u64| PendingFile {
            key: key.to_string(),
            through: pos(lsn, 1),
            inserts: 1,
            updates: 0,
            deletes: 0,
            per_table: Default::default(),
        };
        cdc_table(&mut cp, "s.t").pending = Some(pending(&keys[1], 3));
        resolve_pending(&store, &mut cp, &checkpoints)
            .await
            .unwrap();
        assert_eq!(
            cp.cdc.as_ref().unwrap().tables["s.t"].written_through,
            Some(pos(3, 1))
        );
        cdc_table(&mut cp, "s.t").pending = Some(pending("s/t/never-uploaded.csv", 4));
        resolve_pending(&store, &mut cp, &checkpoints)
            .await
            .unwrap();
        let state = &cp.cdc.as_ref().unwrap().tables["s.t"];
        assert_eq!(state.written_through, Some(pos(3, 1)));
        assert_eq!(state.pending, None);
        assert_eq!(checkpoints.load().unwrap().unwrap(), cp);
    }

    #[test]
    fn op_matrix() {
        let mut s = settings(1, 1);
        assert!(cdc_op_column(&s));
        s.cdc.inserts_only = true;
        assert!(!cdc_op_column(&s));
        s.include_op_for_full_load = true;
        assert!(cdc_op_column(&s));
        s.cdc.inserts_only = false;
        s.cdc.inserts_and_updates = true;
        s.include_op_for_full_load = false;
        assert!(cdc_op_column(&s));
    }
}
