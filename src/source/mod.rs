//! Source readers. Each engine gives a consistent snapshot of the selected tables; every table is
//! streamed from that one snapshot as [`RowBatch`]es.

pub mod mysql;
pub mod postgres;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::change::{RowBatch, TableSchema};
use crate::error::Result;
use crate::mapping::RelationKind;

/// A table (or view) chosen for the load.
#[derive(Debug, Clone)]
pub struct SourceTable {
    /// Output schema.
    pub schema: Arc<TableSchema>,
    /// Table or view.
    pub kind: RelationKind,
    /// Row estimate from the catalog (for progress/ETA); None when unknown.
    pub estimated_rows: Option<u64>,
    /// Selection-rule load order (higher first).
    pub load_order: i64,
}

/// Live counters of one table's read, shared with the progress display.
#[derive(Debug, Default)]
pub struct ReadProgress {
    /// Rows read.
    pub rows: AtomicU64,
    /// Source bytes read.
    pub bytes: AtomicU64,
    /// LOB values cut at LobMaxSize.
    pub truncated_lobs: AtomicU64,
}

impl ReadProgress {
    /// Adds to the counters.
    pub fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// How full-load rows are stamped for `TimestampColumnName`.
#[derive(Debug, Clone, Copy)]
pub enum RowClock {
    /// The time each batch is read (DMS's default "transfer time").
    Transfer,
    /// One fixed time (µs since epoch), e.g. the task start.
    Fixed(i64),
}

impl RowClock {
    /// The time to stamp on rows read now.
    pub fn now_us(self) -> i64 {
        match self {
            RowClock::Transfer => chrono::Utc::now().timestamp_micros(),
            RowClock::Fixed(t) => t,
        }
    }
}

/// Options every table read shares.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Row stamping.
    pub clock: RowClock,
    /// LobMaxSize in bytes; None = no truncation.
    pub lob_max_bytes: Option<usize>,
}

impl ReadOptions {
    /// The LobMaxSize cut for a column of `dms_type`: Some((bytes, is_bytes)) for LOB columns
    /// when LobMaxSize is set.
    pub fn lob_limit(&self, dms_type: crate::change::DmsType) -> Option<(usize, bool)> {
        lob_limit(self.lob_max_bytes, dms_type)
    }
}

/// The LobMaxSize cut (`max` bytes) for a column of `dms_type`: Some((bytes, is_bytes)) for LOB
/// columns when a limit is set.
pub fn lob_limit(max: Option<usize>, dms_type: crate::change::DmsType) -> Option<(usize, bool)> {
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
pub trait Snapshot: Send + Sync {
    /// Selected tables with their output schemas, in load order.
    async fn tables(&self) -> Result<Vec<SourceTable>>;
    /// A future that streams all rows of `table` into `tx` and returns the row count. It owns
    /// what it needs (`'static`), so it can run as its own task beside the writer.
    fn read_table(
        &self,
        table: &SourceTable,
        opts: ReadOptions,
        tx: mpsc::Sender<RowBatch>,
        progress: Arc<ReadProgress>,
    ) -> BoxFuture<'static, Result<u64>>;
    /// Ends the snapshot (releases the exporting transaction).
    async fn close(&self) -> Result<()>;
}

/// Shortens a LOB value (canonical text) to at most `max` bytes of content: text at a UTF-8
/// character boundary; `\x` hex at a whole byte. Returns the new length if it was cut.
pub fn lob_cut_len(value: &[u8], max: usize, is_bytes: bool) -> Option<usize> {
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
