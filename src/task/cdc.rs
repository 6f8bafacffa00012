//! Change data capture tasks (`full-load-and-cdc`, `cdc`), on every engine: where streaming
//! starts, the full load of the snapshot the stream continues, then the apply loop.
//!
//! Hand-off: a fresh task loads the snapshot the source hands over and streams from the
//! position that continues it, so each committed change is in the LOAD files or in the CDC
//! files, never both and never neither. A load interrupted by a crash resumes from a new
//! snapshot at a later point: the unfinished tables record that point (`loaded_at`) and skip
//! changes before it, while finished tables take every change from the first point.

use std::sync::Arc;

use super::apply::{Apply, Stopped};
use super::full_load::FullLoad;
use super::Context;
use crate::change::StreamKey;
use crate::checkpoint::{CdcPhase, CdcState, Checkpoint, TableState};
use crate::config::task::StopAfterLoad;
use crate::config::MigrationType;
use crate::error::Result;
use crate::layout;
use crate::source::{Capture, Handoff, Source};
use crate::writer::cdc::SystemClock;

/// Runs a CDC task until a signal or its stop position.
pub(crate) async fn run(
    ctx: &Context<'_>,
    source: &dyn Source,
    cp: &mut Checkpoint,
) -> Result<Stopped> {
    let mut capture = source.capture().await?;
    let mut state = cp.cdc.take().unwrap_or_default();
    // True when this run finishes the full load (StopTaskCachedChanges* then apply).
    let mut loaded = false;
    if state.resume_from.is_none() {
        let load = ctx.task.migration_type == MigrationType::FullLoadAndCdc;
        let snapshot_cp = cp.clone();
        let mut save = |s: &CdcState| {
            let mut with = snapshot_cp.clone();
            with.cdc = Some(s.clone());
            // The Capture seam takes a plain closure (called once, before the slot or
            // position is created); the save it runs is async, so it blocks this worker for
            // that one write (the binary's runtime is multi-threaded).
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(ctx.checkpoints.save(&with))
            })
        };
        let started = capture.start(&mut state, load, &mut save).await;
        state.phase = if load {
            CdcPhase::FullLoad
        } else {
            CdcPhase::Cdc
        };
        cp.cdc = Some(state);
        let handoff = started?;
        ctx.checkpoints.save(cp).await?;
        if let Some(h) = handoff {
            load_from(ctx, cp, h, None).await?;
            loaded = true;
        }
    } else {
        let loading = state.phase == CdcPhase::FullLoad;
        cp.cdc = Some(state);
        if loading {
            let h = capture.reload().await?;
            load_from(ctx, cp, h, None).await?;
            loaded = true;
        } else {
            reload_suspended(ctx, cp, capture.as_mut()).await?;
        }
    }
    let stop = ctx.task.settings.stop_after_load.filter(|_| loaded);
    if stop == Some(StopAfterLoad::CachedChangesNotApplied) {
        tracing::info!("full load done; stopping before the changes made during it (StopTaskCachedChangesNotApplied); the next run writes them");
        return Ok(Stopped::AfterFullLoad);
    }
    let mut stream = capture.stream().await?;
    let mut apply = Apply::new(ctx, cp, Arc::new(SystemClock));
    if stop == Some(StopAfterLoad::CachedChangesApplied) {
        apply = apply.stop_after_cached_changes(chrono::Utc::now().timestamp_micros());
    }
    apply.run(stream.as_mut()).await
}

/// Loads the suspended tables again from a fresh snapshot, so a run after the cause is fixed
/// takes them back: each is loaded as of the snapshot and takes the changes after it.
async fn reload_suspended(
    ctx: &Context<'_>,
    cp: &mut Checkpoint,
    capture: &mut dyn Capture,
) -> Result<()> {
    let suspended = cp.suspended();
    if suspended.is_empty() {
        return Ok(());
    }
    tracing::info!(tables = ?suspended, "reloading the suspended tables from a fresh snapshot");
    for t in &suspended {
        cp.cdc_mut()
            .series(&StreamKey::Table(t.clone()))
            .suspended_at = None;
        if let Some(stats) = cp.tables.get_mut(t) {
            // Loaded as the prep mode says (DROP_AND_CREATE clears its folder), with fresh numbers.
            stats.table_state = TableState::Error;
            stats.first_load_file = None;
        }
    }
    let h = capture.reload().await?;
    load_from(ctx, cp, h, Some(&suspended)).await
}

/// Loads every unfinished table (or only the tables in `only`) from the hand-off's snapshot
/// (its changes end at the hand-off's position, so those tables skip changes before it), then
/// enters the replication phase. Tables whose load fails are suspended.
async fn load_from(
    ctx: &Context<'_>,
    cp: &mut Checkpoint,
    handoff: Handoff,
    only: Option<&[String]>,
) -> Result<()> {
    let Handoff { position, snapshot } = handoff;
    let r = async {
        let mut tables = snapshot.tables().await?;
        if tables.is_empty() {
            return super::no_tables(ctx.task);
        }
        if let Some(only) = only {
            tables.retain(|t| only.contains(&t.schema.qualified()));
        }
        let schemas: Vec<_> = tables.iter().map(|t| t.schema.clone()).collect();
        layout::check_tables(&ctx.task.mappings, &schemas)?;
        for t in &tables {
            let name = t.schema.qualified();
            let done = cp
                .tables
                .get(&name)
                .is_some_and(|s| s.table_state == TableState::Completed);
            if done {
                continue;
            }
            let key = ctx.task.mappings.key_of(&t.schema)?;
            let key: Vec<&str> = key.iter().map(|&i| t.schema.columns[i].name.as_str()).collect();
            let keeps = only.is_none()
                && cp.tables.get(&name).is_some_and(|s| {
                    !s.segments.is_empty() && s.key_ranges.as_ref().is_some_and(|r| r.within(&key))
                });
            let series = cp.cdc_mut().series(&StreamKey::Table(name.clone()));
            let earliest = series.loaded_at.clone();
            if keeps && earliest.is_some() {
                // Finished segments keep the snapshot they were read from; the apply loop
                // tells each change's segment by its key (`apply::gate`). The table skips
                // only what precedes its earliest segment.
                tracing::info!(table = %name, "resuming the load: finished segments are kept, the others are read from this snapshot");
                let stats = cp.tables.get_mut(&name).expect("checked above");
                for s in stats.segments.values_mut() {
                    if s.loaded_at.is_none() {
                        s.loaded_at = earliest.clone();
                    }
                }
            } else {
                // Every segment is read again from this snapshot: segments finished from an
                // earlier one would miss the changes between the two points (see
                // docs/compatibility.md on segments that a change's key cannot place).
                if let Some(stats) = cp.tables.get_mut(&name) {
                    for s in stats.segments.values_mut() {
                        s.state = TableState::FullLoad;
                        s.loaded_at = None;
                    }
                }
                cp.cdc_mut().series(&StreamKey::Table(name)).loaded_at = Some(position.clone());
            }
        }
        ctx.checkpoints.save(cp).await?;
        let load = FullLoad::new(ctx, cp.clone()).continued_at(position.clone());
        let r = load.run(snapshot.as_ref(), tables).await;
        *cp = load.into_checkpoint();
        r
    }
    .await;
    let _ = snapshot.close().await;
    r?;
    // Tables whose load failed are suspended: the stream goes on without them.
    let failed: Vec<String> = cp
        .tables
        .iter()
        .filter(|(_, s)| s.table_state == TableState::Error)
        .map(|(t, _)| t.clone())
        .collect();
    for t in failed {
        cp.cdc_mut().series(&StreamKey::Table(t)).suspended_at = Some(position.clone());
    }
    cp.cdc_mut().phase = CdcPhase::Replication;
    ctx.checkpoints.save(cp).await?;
    tracing::info!("load complete, replication ongoing");
    Ok(())
}
