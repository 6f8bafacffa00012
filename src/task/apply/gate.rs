//! Segments of one table read from different snapshots: a `full-load-and-cdc` load interrupted by
//! a crash keeps its finished segments (read from the first snapshot, P1) and reads the others
//! from the resume's snapshot (P2). A change committed between P1 and P2 is already in the LOAD
//! files when its row is in a segment read at P2, and must be written when its row is in one read
//! at P1. The segments are ranges of integer key columns, so the change's key tells its segment;
//! a row cannot change segment without changing its key, which the sources write as a `D` of the
//! old row (placed by the old key) and an `I`/`U` of the new one (placed by the new key).

use std::collections::HashMap;

use crate::change::{ChangePos, Position, RowBatch, TableSchema};
use crate::checkpoint::Checkpoint;
use crate::mapping::segments::KeyRanges;

/// One table's segments and the snapshot each was read from.
pub(super) struct Gate {
    ranges: KeyRanges,
    /// Per segment (in `ranges` order): the position its snapshot ends at (None: the table's).
    loaded_at: Vec<Option<Position>>,
    /// The latest of them: a change at or after it is after every segment's snapshot.
    until: Position,
    /// The source columns holding `ranges.columns`, resolved against the table's shape.
    cols: Option<Vec<usize>>,
}

impl Gate {
    /// The gates of `cp`'s tables whose segments were read from more than one snapshot.
    pub(super) fn all(cp: &Checkpoint) -> HashMap<String, Gate> {
        let mut out = HashMap::new();
        for (table, stats) in &cp.tables {
            let Some(ranges) = &stats.key_ranges else {
                continue;
            };
            let loaded_at: Vec<Option<Position>> = ranges
                .segments
                .iter()
                .map(|s| stats.segments.get(s).and_then(|g| g.loaded_at.clone()))
                .collect();
            let mut points: Vec<&Position> = loaded_at.iter().flatten().collect();
            points.sort();
            points.dedup();
            let Some(until) = points.last().copied().cloned() else {
                continue;
            };
            if points.len() < 2 {
                continue;
            }
            out.insert(
                table.clone(),
                Gate {
                    ranges: ranges.clone(),
                    loaded_at,
                    until,
                    cols: None,
                },
            );
        }
        out
    }

    /// Finds the range columns in `source` (the table's shape now); a shape without them
    /// leaves every change to the table-wide check, and says so.
    pub(super) fn shape(&mut self, source: &TableSchema) {
        let cols: Option<Vec<usize>> = self
            .ranges
            .columns
            .iter()
            .map(|c| source.columns.iter().position(|x| &x.name == c))
            .collect();
        if cols.is_none() {
            tracing::warn!(table = %source.qualified(), columns = ?self.ranges.columns, "the table no longer has the columns its load segments were cut by; changes up to the latest segment's snapshot may be written twice");
        }
        self.cols = cols;
    }

    /// True when a change at `pos` may precede one of the segments' snapshots.
    pub(super) fn applies(&self, pos: &ChangePos) -> bool {
        pos.commit < self.until && self.cols.is_some()
    }

    /// True when the change at `pos` to the one-row `row` (in the source's shape) is in the
    /// LOAD files already: its segment was read from a snapshot taken after its transaction.
    pub(super) fn loaded(&self, row: &RowBatch, pos: &ChangePos) -> bool {
        let Some(cols) = &self.cols else {
            return false;
        };
        let key: Option<Vec<i128>> = cols
            .iter()
            .map(|&c| {
                let cell = row.get(0, c)?;
                std::str::from_utf8(cell).ok()?.parse::<i128>().ok()
            })
            .collect();
        // Key columns are NOT NULL integers; a key that does not read as one is not skipped.
        let Some(key) = key else {
            return false;
        };
        let segment = self.ranges.segment_of(&key);
        let i = self.ranges.segments.iter().position(|s| s == segment);
        i.and_then(|i| self.loaded_at[i].as_ref())
            .is_some_and(|at| pos.commit < *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Lsn;
    use crate::checkpoint::{SegmentStats, TableStats};

    fn at(lsn: u64) -> ChangePos {
        ChangePos {
            commit: Position::Postgres(Lsn(lsn)),
            seq: 1,
        }
    }

    fn row(id: &str) -> RowBatch {
        let mut r = RowBatch::new(2);
        r.push_cell(id.as_bytes());
        r.push_cell(b"x");
        r.end_row(crate::change::Op::Insert, 0).unwrap();
        r
    }

    /// Chunks read at 10 and 20: a change at 15 is written for the first chunk's rows only.
    #[test]
    fn a_change_is_skipped_only_where_its_segment_was_read_after_it() {
        let ranges = KeyRanges {
            columns: vec!["id".into()],
            bounds: vec![vec![100]],
            segments: vec!["CHUNK1".into(), "CHUNK2".into()],
        };
        let mut cp = Checkpoint::new("t", "f".into(), chrono::Utc::now());
        let mut stats = TableStats {
            key_ranges: Some(ranges),
            ..TableStats::default()
        };
        for (name, lsn) in [("CHUNK1", 10), ("CHUNK2", 20)] {
            stats.segments.insert(
                name.into(),
                SegmentStats {
                    loaded_at: Some(Position::Postgres(Lsn(lsn))),
                    ..SegmentStats::default()
                },
            );
        }
        cp.tables.insert("s.t".into(), stats);
        // Read back from the checkpoint's JSON, as a resumed run does.
        let cp: Checkpoint = serde_json::from_str(&serde_json::to_string(&cp).unwrap()).unwrap();
        let mut gates = Gate::all(&cp);
        let gate = gates.get_mut("s.t").expect("two snapshots make a gate");
        gate.shape(&TableSchema::text_for_test(&["id", "v"]));
        assert!(gate.applies(&at(15)));
        assert!(!gate.applies(&at(20)), "past every snapshot");
        assert!(!gate.loaded(&row("5"), &at(15)), "chunk 1 was read at 10");
        assert!(gate.loaded(&row("100"), &at(15)), "chunk 2 was read at 20");
        assert!(gate.loaded(&row("-7"), &at(5)) && gate.loaded(&row("5"), &at(5)));
        assert!(
            !gate.loaded(&row("abc"), &at(15)),
            "an unreadable key is kept"
        );
    }

    /// Bounds beyond i64 (a MySQL BIGINT UNSIGNED key) survive the checkpoint's JSON.
    #[test]
    fn wide_bounds_survive_the_checkpoint() {
        let wide = KeyRanges {
            columns: vec!["id".into()],
            bounds: vec![vec![i128::from(u64::MAX) - 1]],
            segments: vec!["CHUNK1".into(), "CHUNK2".into()],
        };
        let back: KeyRanges = serde_json::from_str(&serde_json::to_string(&wide).unwrap()).unwrap();
        assert_eq!(back, wide);
    }

    /// Segments read from one snapshot need no gate: the table's `loaded_at` decides.
    #[test]
    fn one_snapshot_makes_no_gate() {
        let mut cp = Checkpoint::new("t", "f".into(), chrono::Utc::now());
        let mut stats = TableStats {
            key_ranges: Some(KeyRanges {
                columns: vec!["id".into()],
                bounds: vec![vec![1]],
                segments: vec!["CHUNK1".into(), "CHUNK2".into()],
            }),
            ..TableStats::default()
        };
        for name in ["CHUNK1", "CHUNK2"] {
            stats.segments.insert(
                name.into(),
                SegmentStats {
                    loaded_at: Some(Position::Postgres(Lsn(3))),
                    ..SegmentStats::default()
                },
            );
        }
        cp.tables.insert("s.t".into(), stats);
        assert!(Gate::all(&cp).is_empty());
    }
}
