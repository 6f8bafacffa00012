//! Source engines. The engine is chosen once ([`open`]); everything engine-specific goes through
//! [`Source`]: the consistent snapshot a full load reads ([`Snapshot`]), the change stream CDC
//! reads ([`stream::ChangeStream`]) and the hand-off between them ([`Capture`]), `validate`'s
//! checks and `status`'s figures.

pub(crate) mod cause;
pub(crate) mod chunks;
pub(crate) mod login;
pub(crate) mod mysql;
pub(crate) mod postgres;
pub(crate) mod stream;
pub(crate) mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::change::{Position, RowBatch, TableSchema};
use crate::checkpoint::CdcState;
use crate::config::{SourceConfig, TaskConfig};
use crate::error::{Error, Result};
use crate::mapping::segments::{Segment, SegmentPart};
use crate::mapping::RelationKind;
use stream::ChangeStream;

/// The source engine of a task, everything the task does that depends on it.
#[async_trait]
pub(crate) trait Source: Send + Sync {
    /// Adds what a run needs from the source, and what is wrong with it, to `report`.
    async fn validate(&self, report: &mut Report);
    /// A consistent snapshot of the selected tables (a `full-load` task).
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>>;
    /// Checks the change-capture prerequisites and prepares the source (publication, heartbeat
    /// table); fails with the cause and the fix when capture cannot work.
    async fn capture(&self) -> Result<Box<dyn Capture>>;
    /// Bytes of log the source retains for this task (PostgreSQL: the slot's WAL), when the
    /// source can be asked.
    async fn retained_log_bytes(&self, cdc: &CdcState) -> Option<u64>;
    /// Releases what a previous run left on the source that a fresh run replaces (its slot).
    async fn retire(&self, cdc: &CdcState) -> Result<()>;
    /// `tributary drop`: the objects the task created on the source (PostgreSQL: its slot,
    /// publication and heartbeat table), removed when `apply` is set, else only listed. `cdc`
    /// is the checkpoint's state, when there is one. Objects the user named in the task file
    /// but the task did not create are kept and listed as such.
    async fn drop_objects(&self, cdc: Option<&CdcState>, apply: bool) -> Result<SourceObjects>;
}

/// What [`Source::drop_objects`] found on the source.
#[derive(Debug, Default)]
pub(crate) struct SourceObjects {
    /// The task's objects (removed when applied), e.g. "replication slot tributary_x".
    pub(crate) owned: Vec<String>,
    /// Objects left alone, with the reason.
    pub(crate) kept: Vec<String>,
}

/// Opens the source `[source]` names: the one place the engine is chosen.
pub(crate) fn open(task: &TaskConfig) -> Box<dyn Source> {
    match &task.source {
        SourceConfig::Postgres(c) => Box::new(postgres::PgSource::new(c.clone(), task)),
        SourceConfig::MySql(c) => Box::new(mysql::MySource::new(c.clone(), task)),
    }
}

/// Change capture on one engine: where streaming starts, the snapshot it continues, the stream.
#[async_trait]
pub(crate) trait Capture: Send {
    /// A fresh start: records in `state` where streaming starts and returns, when `load` is
    /// set, the snapshot the stream continues exactly (every change is in one or the other).
    /// `save` persists `state` (called before a server-side object is created, so a crash is
    /// recognised on restart).
    async fn start(
        &mut self,
        state: &mut CdcState,
        load: bool,
        save: &mut (dyn for<'s> FnMut(&'s CdcState) -> Result<()> + Send),
    ) -> Result<Option<Handoff>>;
    /// A new snapshot, with the position the stream continues it from, to finish a load a
    /// crash interrupted.
    async fn reload(&mut self) -> Result<Handoff>;
    /// The change stream (not started yet).
    async fn stream(&mut self) -> Result<Box<dyn ChangeStream>>;
}

/// A snapshot and the stream position that continues it.
pub(crate) struct Handoff {
    /// Where the snapshot's data ends in the log.
    pub(crate) position: Position,
    /// The snapshot.
    pub(crate) snapshot: Box<dyn Snapshot>,
}

/// What `validate` found: lines about what is ready, every problem (the run would fail: exit
/// 1) and every warning (the run works, with a cost worth knowing: exit 0), each with its fix.
#[derive(Debug, Default)]
pub struct Report {
    /// What was checked and is fine.
    pub ok: Vec<String>,
    /// What is wrong, each with its fix.
    pub problems: Vec<Error>,
    /// What works but loses something, each with its fix.
    pub warnings: Vec<Error>,
}

impl Report {
    /// Records the outcome of a check that failed outright.
    pub(crate) fn check(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.problems.push(e);
        }
    }
}

/// A table (or view) chosen for the load.
#[derive(Debug, Clone)]
pub(crate) struct SourceTable {
    /// Output schema.
    pub(crate) schema: Arc<TableSchema>,
    /// Table or view.
    pub(crate) kind: RelationKind,
    /// Row estimate from the catalog (for progress/ETA); None when unknown.
    pub(crate) estimated_rows: Option<u64>,
    /// Selection-rule load order (higher first).
    pub(crate) load_order: i64,
    /// The units its full load is split into (`parallel-load`); empty: the whole table is one.
    pub(crate) segments: Vec<crate::mapping::segments::Segment>,
    /// How a change's key tells its segment, when the segments are integer key ranges.
    pub(crate) key_ranges: Option<crate::mapping::segments::KeyRanges>,
}

/// A table's automatic chunks: the segments, and their key ranges when they are ranges of an
/// integer key (None for `ctid` chunks).
pub(crate) type Split = (Vec<Segment>, Option<crate::mapping::segments::KeyRanges>);

/// `FROM … WHERE …` of a full-load read: `relation` (the table) or the segment's partition,
/// with the table's source filter (` WHERE …` or "") and the segment's predicate.
pub(crate) fn read_from(relation: String, filter: &str, segment: Option<&Segment>) -> String {
    let filter = filter.strip_prefix(" WHERE ").unwrap_or(filter);
    let (from, range) = match segment.map(|s| &s.part) {
        Some(SegmentPart::Partition(p)) => (p.clone(), ""),
        Some(SegmentPart::Where(w)) => (relation, w.as_str()),
        None => (relation, ""),
    };
    match (filter.is_empty(), range.is_empty()) {
        (true, true) => format!("FROM {from}"),
        (false, true) => format!("FROM {from} WHERE {filter}"),
        (true, false) => format!("FROM {from} WHERE {range}"),
        (false, false) => format!("FROM {from} WHERE ({filter}) AND ({range})"),
    }
}

/// Live counters of one table's read, shared with the progress display.
#[derive(Debug, Default)]
pub(crate) struct ReadProgress {
    /// Rows read.
    pub(crate) rows: AtomicU64,
    /// Source bytes read.
    pub(crate) bytes: AtomicU64,
    /// LOB values cut at LobMaxSize.
    pub(crate) truncated_lobs: AtomicU64,
}

impl ReadProgress {
    /// Adds to the counters.
    pub(crate) fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// How full-load rows are stamped for `TimestampColumnName`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowClock {
    /// The time each batch is read (DMS's default "transfer time").
    Transfer,
    /// One fixed time (µs since epoch), e.g. the task start.
    Fixed(i64),
}

impl RowClock {
    /// The time to stamp on rows read now.
    pub(crate) fn now_us(self) -> i64 {
        match self {
            RowClock::Transfer => chrono::Utc::now().timestamp_micros(),
            RowClock::Fixed(t) => t,
        }
    }
}

/// Options every table read shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadOptions {
    /// Row stamping.
    pub(crate) clock: RowClock,
    /// LobMaxSize in bytes; None = no truncation.
    pub(crate) lob_max_bytes: Option<usize>,
    /// A batch is handed on once it holds this many bytes of cell data (see
    /// [`batch_bytes_for`]).
    pub(crate) batch_bytes: usize,
}

/// Largest full-load batch, bytes of cell data: big enough that per-batch work is noise.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Smallest full-load batch.
const MIN_BATCH_BYTES: usize = 256 * 1024;
/// Memory all concurrent full-load readers, converters and writers may hold together.
const FULL_LOAD_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Peak memory of one load unit, in batches: the batches in its two channels and stages, their
/// Arrow copies, and the encoder's and allocator's share (measured: ~80 MB at 4 MiB batches).
const UNIT_MEMORY_IN_BATCHES: usize = 20;

/// The batch size that keeps `units` concurrent loads (tables or segments) within one memory
/// budget: 3.2 MiB for one, smaller as more run at once.
pub(crate) fn batch_bytes_for(units: usize) -> usize {
    (FULL_LOAD_MEMORY_BYTES / (UNIT_MEMORY_IN_BATCHES * units.max(1)))
        .clamp(MIN_BATCH_BYTES, MAX_BATCH_BYTES)
}

impl ReadOptions {
    /// The LobMaxSize cut for a column of `dms_type`: Some((bytes, is_bytes)) for LOB columns
    /// when LobMaxSize is set.
    pub(crate) fn lob_limit(&self, dms_type: crate::change::DmsType) -> Option<(usize, bool)> {
        lob_limit(self.lob_max_bytes, dms_type)
    }
}

/// The LobMaxSize cut (`max` bytes) for a column of `dms_type`: Some((bytes, is_bytes)) for LOB
/// columns when a limit is set.
pub(crate) fn lob_limit(
    max: Option<usize>,
    dms_type: crate::change::DmsType,
) -> Option<(usize, bool)> {
    max.filter(|_| dms_type.is_lob()).map(|max| {
        (
            max,
            matches!(dms_type, crate::change::DmsType::Bytes { .. }),
        )
    })
}

/// A consistent snapshot of the source, from which tables are read in parallel.
///
/// Contract: every `read_table` call sees the same snapshot, whatever its timing; batches are
/// sent in read order and each holds complete rows; the reader sends nothing after returning.
/// An error leaves the receiver with possibly some batches already sent (the caller discards the
/// table's output).
#[async_trait]
pub(crate) trait Snapshot: Send + Sync {
    /// Selected tables with their output schemas, in load order.
    async fn tables(&self) -> Result<Vec<SourceTable>>;
    /// A future that streams all rows of `table` (of one of its `segment`s) into `tx` and
    /// returns the row count. It owns
    /// what it needs (`'static`), so it can run as its own task beside the writer.
    fn read_table(
        &self,
        table: &SourceTable,
        segment: Option<&Segment>,
        opts: ReadOptions,
        tx: mpsc::Sender<RowBatch>,
        progress: Arc<ReadProgress>,
    ) -> BoxFuture<'static, Result<u64>>;
    /// The automatic chunks of `table` (see [`chunks`]) when the source estimates it above
    /// `chunk_bytes`: segments of about that size that cover every row once; empty when it
    /// is smaller or cannot be cut.
    async fn split(&self, table: &SourceTable, chunk_bytes: u64) -> Result<Split>;
    /// Ends the snapshot (releases the exporting transaction).
    async fn close(&self) -> Result<()>;
}

/// Shortens a LOB value (canonical text) to at most `max` bytes of content: text at a UTF-8
/// character boundary; `\x` hex at a whole byte. Returns the new length if it was cut.
pub(crate) fn lob_cut_len(value: &[u8], max: usize, is_bytes: bool) -> Option<usize> {
    if is_bytes {
        let hex_len = value.len().saturating_sub(2);
        return (hex_len > max * 2).then_some(2 + max * 2);
    }
    if value.len() <= max {
        return None;
    }
    let mut cut = max;
    // Step back over UTF-8 continuation bytes so the cut never splits a character.
    while cut > 0 && (value[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lob_cut_respects_characters_and_bytes() {
        assert_eq!(lob_cut_len(b"abcdef", 4, false), Some(4));
        assert_eq!(lob_cut_len(b"abc", 4, false), None);
        assert_eq!(lob_cut_len("aé".as_bytes(), 2, false), Some(1));
        assert_eq!(lob_cut_len(b"\\x00112233", 2, true), Some(6));
        assert_eq!(lob_cut_len(b"\\x0011", 2, true), None);
    }
}
