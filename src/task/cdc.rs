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
use crate::config::MigrationType;
use crate::error::{Error, Result};
use crate::layout;
use crate::source::{Handoff, Source};
use crate::writer::cdc::SystemClock;

/// Runs a CDC task until a signal or its stop position.
pub(crate) async fn run(
    ctx: &Context<'_>,
    source: &dyn Source,
    cp: &mut Checkpoint,
) -> Result<Stopped> {
    let mut capture = source.capture().await?;
    let mut state = cp.cdc.take().unwrap_or_default();
    if state.resume_from.is_none() {
        let load = ctx.task.migration_type == MigrationType::FullLoadAndCdc;
        let snapshot_cp = cp.clone();
        let mut save = |s: &CdcState| {
            let mut with = snapshot_cp.clone();
            with.cdc = Some(s.clone());
            ctx.checkpoints.save(&with)
        };
        let started = capture.start(&mut state, load, &mut save).await;
        state.phase = if load {
            CdcPhase::FullLoad
        } else {
            CdcPhase::Cdc
        };
        cp.cdc = Some(state);
        let handoff = started?;
        ctx.checkpoints.save(cp)?;
        if let Some(h) = handoff {
            load_from(ctx, cp, h).await?;
        }
    } else {
        let loading = state.phase == CdcPhase::FullLoad;
        cp.cdc = Some(state);
        if loading {
            let h = capture.reload().await?;
            load_from(ctx, cp, h).await?;
        }
    }
    let mut stream = capture.stream().await?;
    Apply::new(ctx, cp, Arc::new(SystemClock))
        .run(stream.as_mut())
        .await
}

/// Loads every unfinished table from the hand-off's snapshot (its changes end at the
/// hand-off's position, so those tables skip changes before it), then enters the replication
/// phase.
async fn load_from(ctx: &Context<'_>, cp: &mut Checkpoint, handoff: Handoff) -> Result<()> {
    let Handoff { position, snapshot } = handoff;
    let r = async {
        let tables = snapshot.tables().await?;
        if tables.is_empty() {
            return Err(Error::config(
                "table_mappings select no table in the source",
                "check schema-name/table-name patterns (% and _ are wildcards)",
            ));
        }
        let schemas: Vec<_> = tables.iter().map(|t| t.schema.clone()).collect();
        layout::check_tables(&ctx.task.mappings, &schemas)?;
        for t in &tables {
            let name = t.schema.qualified();
            let done = cp
                .tables
                .get(&name)
                .is_some_and(|s| s.table_state == TableState::Completed);
            if !done {
                cp.cdc_mut().series(&StreamKey::Table(name)).loaded_at = Some(position.clone());
            }
        }
        ctx.checkpoints.save(cp)?;
        let load = FullLoad::new(ctx, cp.clone());
        let r = load.run(snapshot.as_ref(), tables).await;
        *cp = load.into_checkpoint();
        r
    }
    .await;
    let _ = snapshot.close().await;
    r?;
    cp.cdc_mut().phase = CdcPhase::Replication;
    ctx.checkpoints.save(cp)?;
    tracing::info!("load complete, replication ongoing");
    Ok(())
}
