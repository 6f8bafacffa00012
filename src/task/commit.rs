//! The exactly-once file protocol of change capture, run against the checkpoint.
//!
//! Per file: (1) the file's key and last change are recorded in the checkpoint as *pending*
//! (fsync'd), (2) the upload is completed (atomic: visible whole or not at all), (3) the series'
//! `written_through` moves to the file's last change and the pending entry is cleared. After a
//! crash between (1) and (3), [`recover`] asks the store whether the object exists: if
//! so the file counts as written, if not its changes are written again (under a new, later
//! name). Together with the restart filter (a series skips changes at or before its
//! `written_through`) every change lands in exactly one file.

use crate::change::StreamKey;
use crate::checkpoint::{Checkpoint, PendingFile};
use crate::error::Result;
use crate::layout::Layout;
use crate::state::StateStore;
use crate::store::Store;
use crate::writer::cdc::SealedFile;

/// Makes `file` durable and moves its series' position past it.
pub(crate) async fn publish(
    file: SealedFile,
    cp: &mut Checkpoint,
    checkpoints: &StateStore,
) -> Result<()> {
    let state = cp.cdc_mut().series(&file.series);
    state.last_stamp = Some(file.stamp);
    state.pending = Some(PendingFile {
        key: file.key.clone(),
        through: file.through,
        counts: file.counts,
        per_table: file.per_table,
    });
    checkpoints.save(cp).await?;
    let bytes = file.object.finish().await?;
    tracing::debug!(key = %file.key, rows = file.rows, bytes, reason = file.reason.as_str(), "CDC file written");
    metrics::counter!("tributary_cdc_files_total", "reason" => file.reason.as_str()).increment(1);
    commit_pending(cp, &file.series);
    checkpoints.save(cp).await
}

/// Marks `series`' pending file as written: its position and statistics move forward.
fn commit_pending(cp: &mut Checkpoint, series: &StreamKey) {
    let state = cp.cdc_mut().series(series);
    let Some(p) = state.pending.take() else {
        return;
    };
    state.written_through = Some(p.through);
    match series {
        StreamKey::Table(table) => cp.add_changes(table, &p.counts),
        StreamKey::Transactions => {
            for (table, counts) in &p.per_table {
                cp.add_changes(table, counts);
            }
        }
    }
}

/// Cleans up after a crash or a lost session, before every streaming session (no file of this
/// task is open then): removes the hidden leftovers of uploads that never completed in the
/// task's folders, and settles files left pending: an uploaded file counts as written; a
/// missing one is forgotten, and its changes are written again.
pub(crate) async fn recover(
    store: &dyn Store,
    layout: &Layout,
    cdc_path: Option<&str>,
    cp: &mut Checkpoint,
    checkpoints: &StateStore,
) -> Result<()> {
    let mut folders: Vec<String> = cp
        .tables
        .values()
        .map(|t| layout.table_prefix(&t.schema_name, &t.table_name))
        .collect();
    if let Some(path) = cdc_path {
        folders.push(layout.cdc_txn_folder(path));
    }
    let mut swept = 0;
    for folder in folders {
        swept += store.remove_abandoned(&folder).await?;
    }
    if swept > 0 {
        tracing::info!(
            files = swept,
            "removed unfinished uploads of an interrupted run"
        );
    }
    let pending: Vec<(StreamKey, String)> = cp
        .cdc
        .iter()
        .flat_map(|c| c.tables.iter())
        .filter_map(|(s, st)| st.pending.as_ref().map(|p| (s.clone(), p.key.clone())))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    for (series, key) in pending {
        if store.exists(&key).await? {
            tracing::info!(%key, "a CDC file completed just before the stop is kept");
            commit_pending(cp, &series);
        } else {
            tracing::info!(%key, "a CDC file cut off by the stop is written again");
            cp.cdc_mut().series(&series).pending = None;
        }
    }
    checkpoints.save(cp).await
}
