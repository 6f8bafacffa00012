//! The mapping's rules on change capture: each table's source filter and column
//! transformations, between the rows a stream fills and the rows the writer holds.
//!
//! Tables the rules leave alone take the stream's fill as is (no copy); the others fill a
//! one-row scratch batch in the source's shape, which the filter tests and the projection turns
//! into the output row.

use std::collections::HashMap;
use std::sync::Arc;

use crate::change::{ChangePos, Op, RowBatch, TableSchema};
use crate::error::Result;
use crate::mapping::expr::Vars;
use crate::mapping::{TableMap, TableMappings};
use crate::source::stream::Fill;
use crate::writer::cdc::CdcWriter;

use super::gate::Gate;

/// Each table's source shape and what the rules make of it.
#[derive(Default)]
pub(super) struct Mapper {
    tables: HashMap<String, (Arc<TableSchema>, TableMap)>,
    /// The source row of the change being mapped.
    scratch: RowBatch,
    /// Its before-image, for tables that write before-image columns.
    before: RowBatch,
    /// Tables whose load segments were read from different snapshots.
    gates: HashMap<String, Gate>,
}

impl Mapper {
    /// A mapper that also skips the changes `gates` find in their segments' LOAD files.
    pub(super) fn with_gates(gates: HashMap<String, Gate>) -> Mapper {
        Mapper {
            gates,
            ..Mapper::default()
        }
    }

    /// True when `table`'s change at `pos` precedes one of its segments' snapshots.
    pub(super) fn gated(&self, table: &str, pos: &ChangePos) -> bool {
        self.gates.get(table).is_some_and(|g| g.applies(pos))
    }

    /// Installs `source`'s shape: returns the shape the writer gets, and whether the source's
    /// shape changed from the one installed before (a DDL).
    pub(super) fn shape(
        &mut self,
        mappings: &TableMappings,
        source: &Arc<TableSchema>,
    ) -> Result<(Arc<TableSchema>, bool)> {
        let key = source.qualified();
        let changed = self.tables.get(&key).is_some_and(|(s, _)| **s != **source);
        if !changed && self.tables.contains_key(&key) {
            return Ok((self.tables[&key].1.target.clone(), false));
        }
        let map = mappings.table_map(source)?;
        let target = map.target.clone();
        if let Some(gate) = self.gates.get_mut(&key) {
            gate.shape(source);
        }
        self.tables.insert(key, (source.clone(), map));
        Ok((target, changed))
    }

    /// Pushes one change of `table` to `writer` through the table's rules (`before` fills an
    /// update's before-image). Returns the raw bytes of the file it went to, or None when the
    /// source filter drops it.
    #[allow(clippy::too_many_arguments)] // one change: its table, op, time, position and images
    pub(super) async fn push(
        &mut self,
        writer: &mut CdcWriter<'_>,
        table: &str,
        op: Op,
        commit_us: i64,
        pos: ChangePos,
        fill: &mut Fill<'_>,
        before: Option<&mut Fill<'_>>,
    ) -> Result<Option<u64>> {
        let Mapper {
            tables,
            scratch,
            before: before_row,
            gates,
        } = self;
        // Only while a change may precede a segment's snapshot: the row is needed to place it.
        let gate = match gates.is_empty() {
            true => None,
            false => gates.get(table).filter(|g| g.applies(&pos)),
        };
        let Some((source, map)) = tables
            .get(table)
            .filter(|(_, m)| gate.is_some() || !m.passes_rows())
        else {
            return writer.push(table, op, commit_us, pos, fill).await.map(Some);
        };
        let ncols = source.columns.len();
        let markers = fill_one(scratch, ncols, fill, op, commit_us)?;
        if gate.is_some_and(|g| g.loaded(scratch, &pos)) {
            return Ok(None);
        }
        // Where the before-image columns read from: an update's before-image, a delete's row.
        let has_before = match (op, before) {
            (Op::Update, Some(before)) if !map.before_columns().is_empty() => {
                fill_one(before_row, ncols, before, op, commit_us)?;
                true
            }
            (Op::Delete, _) => true,
            _ => false,
        };
        let before_row: &RowBatch = if op == Op::Delete {
            scratch
        } else {
            before_row
        };
        let row: &RowBatch = scratch;
        let cell = |c: usize| row.get(0, c);
        if map.filter().is_some_and(|f| !f.keeps(&cell, op)) {
            return Ok(None);
        }
        if !map.projects() {
            let mut copy = |out: &mut RowBatch| {
                for c in 0..ncols {
                    match row.get(0, c) {
                        Some(v) => out.push_cell(v),
                        None => out.push_null(),
                    }
                }
                Ok(markers)
            };
            return writer
                .push(table, op, commit_us, pos, &mut copy)
                .await
                .map(Some);
        }
        // Two Strings per change: built only for tables whose expressions read them.
        let (position, seq) = if map.reads_log_position() {
            (pos.stream_position(), pos.change_seq(commit_us))
        } else {
            (String::new(), String::new())
        };
        let vars = Vars {
            operation: match op {
                Op::Insert => "INSERT",
                Op::Update => "UPDATE",
                Op::Delete => "DELETE",
            },
            stream_position: &position,
            change_seq: &seq,
            timestamp_us: commit_us,
            commit_timestamp_us: commit_us,
            user: "",
            schema: &source.schema,
            table: &source.table,
        };
        let before_cell = |c: usize| before_row.get(0, c);
        let mut project = |out: &mut RowBatch| {
            match has_before {
                true => map.project(&cell, Some(&before_cell), &vars, out)?,
                false => map.project(&cell, None, &vars, out)?,
            }
            Ok(markers)
        };
        // The writer names the table in the errors of the rows it is given.
        writer
            .push(table, op, commit_us, pos, &mut project)
            .await
            .map(Some)
    }
}

/// Fills `row` (made one row of `ncols` source cells) from `fill`: the row's marker count.
fn fill_one(
    row: &mut RowBatch,
    ncols: usize,
    fill: &mut Fill<'_>,
    op: Op,
    commit_us: i64,
) -> Result<u64> {
    if row.ncols() == ncols {
        row.clear();
    } else {
        *row = RowBatch::new(ncols);
    }
    let markers = match fill(row) {
        Ok(m) => m,
        Err(e) => {
            row.discard_partial_row();
            return Err(e);
        }
    };
    row.end_row(op, commit_us)?;
    Ok(markers)
}
