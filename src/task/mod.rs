//! Orchestration: `run`, `validate` and `status` of a task, wiring config → source → writer →
//! store → checkpoint. The engine is the source's business ([`crate::source::open`]).

mod apply;
mod cdc;
mod commit;
mod full_load;
mod metrics;
mod shaping;
pub mod status;
pub mod teardown;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{now, Checkpoint, StopReason, TableState, TableStats, TaskStatus};
use crate::config::{MigrationType, TaskConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, Layout};
pub use crate::source::Report;
use crate::source::{self, Source};
use crate::state::{self, Fenced, StateStore};
use crate::store::{self, Store};
use full_load::FullLoad;

/// Options of `tributary run` beyond the task file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--bucket-folder`: overrides BucketFolder (placeholders expanded) and starts a fresh run.
    pub bucket_folder: Option<String>,
    /// `--restart`: ignore an unfinished checkpoint and start over.
    pub restart: bool,
    /// Show progress bars when stderr is a terminal.
    pub progress: bool,
    /// `--metrics-addr`: serve Prometheus metrics there while running.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// What a run's parts share.
pub(crate) struct Context<'a> {
    /// The task.
    pub(crate) task: &'a TaskConfig,
    /// Where files go.
    pub(crate) store: &'a dyn Store,
    /// Key naming of this run.
    pub(crate) layout: &'a Layout,
    /// The task's state (checkpoint), written under the task's lease.
    pub(crate) checkpoints: &'a StateStore,
    /// Show progress bars.
    pub(crate) progress: bool,
    /// Cancelled on SIGINT/SIGTERM.
    pub(crate) cancel: CancellationToken,
}

/// Runs a task: a full load to completion, or change capture until a signal or its stop
/// position. Returns the summary of its table statistics.
pub async fn run(
    task: &TaskConfig,
    opts: &RunOptions,
    cancel: CancellationToken,
) -> Result<String> {
    if let Some(addr) = opts.metrics_addr {
        metrics::install(addr)?;
    }
    let source = source::open(task);
    // Before the checkpoint: a target that cannot be opened (no region, no credentials) leaves
    // no "running" state behind.
    let store = store::open(&task.target).await?;
    // The lease before anything else: a second process of the task stops here, having
    // touched neither the source nor the target.
    let checkpoints = StateStore::open(task).await?;
    let previous = checkpoints.acquire(cancel.clone()).await?;
    let mut checkpoint = match begin(task, opts, source.as_ref(), &checkpoints, previous).await {
        Ok(cp) => cp,
        Err(e) => {
            if let Err(r) = checkpoints.release(None).await {
                tracing::warn!("{r}");
            }
            return Err(e);
        }
    };
    let store = Fenced::new(store, checkpoints.guard());
    let layout = layout(task, checkpoint.bucket_folder.clone());
    tracing::info!(
        task = %task.id,
        source = %task.source.redacted(),
        target = %format!("{}/{}", store.describe(), layout.bucket_folder),
        "starting {}",
        match task.migration_type {
            MigrationType::FullLoad => "full load",
            MigrationType::FullLoadAndCdc => "full load and change capture",
            MigrationType::Cdc => "change capture",
        }
    );
    let ctx = Context {
        task,
        store: &store,
        layout: &layout,
        checkpoints: &checkpoints,
        progress: opts.progress,
        cancel,
    };
    let result = match task.migration_type {
        MigrationType::FullLoad => full_load(&ctx, source.as_ref(), &mut checkpoint)
            .await
            .map(|()| StopReason::FullLoadOnlyFinished),
        _ => cdc::run(&ctx, source.as_ref(), &mut checkpoint)
            .await
            .map(|s| s.reason()),
    };
    // Tables in error end a run that otherwise finished: it stopped as usual (DMS keeps such a
    // task running with the tables suspended), with the tables named, and exits 3.
    let tables = result
        .as_ref()
        .ok()
        .and_then(|_| tables_failed(&checkpoint));
    checkpoint.stop_date = Some(now());
    match &result {
        Ok(reason) => {
            checkpoint.status = TaskStatus::Stopped;
            checkpoint.stop_reason = Some(*reason);
            checkpoint.last_error = tables.as_ref().map(Error::to_string);
        }
        Err(e) if e.kind == ErrorKind::Interrupted => {
            checkpoint.status = TaskStatus::Stopped;
            checkpoint.stop_reason = Some(StopReason::Normal);
        }
        Err(e) => {
            checkpoint.status = TaskStatus::Failed;
            checkpoint.stop_reason = Some(StopReason::FatalError);
            checkpoint.last_error = Some(e.to_string());
        }
    }
    checkpoints.release(Some(&checkpoint)).await?;
    result?;
    if let Some(e) = tables {
        return Err(e);
    }
    // The summary shows the WAL the slot still holds, as `status` does.
    let retained = match &checkpoint.cdc {
        Some(c) if !c.slot.is_empty() => source.retained_log_bytes(c).await,
        _ => None,
    };
    Ok(summary(&checkpoint, retained))
}

/// The key naming of `task`'s objects under `bucket_folder` (expanded).
pub(crate) fn layout(task: &TaskConfig, bucket_folder: String) -> Layout {
    let settings = &task.target.settings;
    Layout {
        bucket_folder,
        format: settings.data_format,
        compression: settings.compression,
        date_partition: settings.cdc.date_partition.clone(),
        names: task.mappings.names().clone(),
        tags: task.mappings.tag_rules().clone(),
    }
}

/// The checkpoint this run continues: the previous run's when it did not finish (a resume,
/// refused when the task file's output-shaping settings changed since), else a fresh one
/// (releasing what the previous run held on the source).
async fn begin(
    task: &TaskConfig,
    opts: &RunOptions,
    source: &dyn Source,
    checkpoints: &StateStore,
    previous: Option<Checkpoint>,
) -> Result<Checkpoint> {
    let start = chrono::Utc::now();
    let settings = shaping::settings(task);
    let mut checkpoint = match (previous, &opts.bucket_folder) {
        (Some(prev), None) if !opts.restart && !prev.finished() => {
            shaping::compare(&prev, &settings)?;
            tracing::info!(folder = %prev.bucket_folder, "resuming the unfinished run: completed tables are kept");
            prev
        }
        (prev, override_folder) => {
            if let Some(old) = prev.as_ref().and_then(|p| p.cdc.as_ref()) {
                source.retire(old).await?;
            }
            let template = override_folder
                .as_deref()
                .unwrap_or(&task.target.settings.bucket_folder);
            Checkpoint::new(
                &task.id,
                layout::expand_bucket_folder(template, start)?,
                start,
            )
        }
    };
    // Settings a checkpoint of an earlier release did not record are recorded from now on.
    for (name, value) in settings {
        checkpoint.settings.entry(name).or_insert(value);
    }
    checkpoint.status = TaskStatus::Running;
    checkpoint.stop_reason = None;
    checkpoint.last_error = None;
    checkpoints.save(&checkpoint).await?;
    Ok(checkpoint)
}

/// A `full-load` task: every selected table from one snapshot.
async fn full_load(ctx: &Context<'_>, source: &dyn Source, cp: &mut Checkpoint) -> Result<()> {
    let snapshot = source.snapshot().await?;
    let result = async {
        let tables = snapshot.tables().await?;
        if tables.is_empty() {
            return no_tables(ctx.task);
        }
        let schemas: Vec<_> = tables.iter().map(|t| t.schema.clone()).collect();
        layout::check_tables(&ctx.task.mappings, &schemas)?;
        let load = FullLoad::new(ctx, cp.clone());
        let r = load.run(snapshot.as_ref(), tables).await;
        *cp = load.into_checkpoint();
        r
    }
    .await;
    let _ = snapshot.close().await;
    result
}

/// The error of a run that ended with tables in error (suspended by `ErrorBehavior`), naming
/// each with its cause; None when every table is fine.
fn tables_failed(cp: &Checkpoint) -> Option<Error> {
    let failed: Vec<String> = cp
        .tables
        .iter()
        .filter(|(_, s)| s.table_state == TableState::Error)
        .map(|(t, s)| {
            format!(
                "{t} ({})",
                s.error.as_deref().unwrap_or("no cause recorded")
            )
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(Error::new(
        ErrorKind::TablesFailed,
        format!(
            "{} table{} failed and {} suspended while the others went on: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            if failed.len() == 1 { "was" } else { "were" },
            failed.join("; ")
        ),
        "fix each cause, then run the same command again: finished tables are kept and the failed ones are loaded again",
    ))
}

/// What a task whose mappings select no table does: fail (`FailOnNoTablesCaptured`, default)
/// or finish with nothing to do.
pub(crate) fn no_tables(task: &TaskConfig) -> Result<()> {
    if task.settings.errors.fail_on_no_tables {
        return Err(Error::config(
            "table_mappings select no table in the source",
            "check schema-name/table-name patterns (case-sensitive; % and _ are wildcards), or set ErrorBehavior.FailOnNoTablesCaptured = false",
        ));
    }
    tracing::warn!("table_mappings select no table in the source; nothing to load (ErrorBehavior.FailOnNoTablesCaptured = false)");
    Ok(())
}

/// Renders the table-statistics summary printed at the end of a run.
fn summary(cp: &Checkpoint, retained_log_bytes: Option<u64>) -> String {
    if cp.cdc.is_some() {
        // CDC tasks: the status view (state, phase, Inserts/Updates/Deletes/Ddls).
        let mut status = status::Status::from_checkpoint(cp);
        status.slot_lag_bytes = retained_log_bytes;
        return status::render(&status);
    }
    let mut out = format!(
        "{:<40} {:<16} {:>12} {:>6} {:>12}  {:<24} {:<24}\n",
        "Table",
        "TableState",
        "FullLoadRows",
        "Files",
        "Bytes",
        "FullLoadStartTime",
        "FullLoadEndTime"
    );
    for (name, s) in &cp.tables {
        let TableStats {
            table_state,
            full_load_rows,
            full_load_files,
            full_load_bytes,
            full_load_start_time,
            full_load_end_time,
            ..
        } = s;
        out.push_str(&format!(
            "{:<40} {:<16} {:>12} {:>6} {:>12}  {:<24} {:<24}\n",
            name,
            table_state.as_str(),
            full_load_rows,
            full_load_files,
            full_load_bytes,
            full_load_start_time.as_deref().unwrap_or("-"),
            full_load_end_time.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// Checks what a run would need — source reachable, privileges, tables matched, target
/// writable, state folder usable — and reports what is fine and every problem with its fix.
pub async fn validate(task: &TaskConfig) -> Report {
    let mut report = Report::default();
    // Each reason once, with the keys it covers: an exported task sets dozens of them.
    let mut unapplied: Vec<(&str, Vec<&str>)> = Vec::new();
    for u in &task.settings.unapplied {
        match unapplied.iter_mut().find(|(r, _)| *r == u.reason) {
            Some((_, keys)) => keys.push(&u.name),
            None => unapplied.push((u.reason, vec![&u.name])),
        }
    }
    for (reason, keys) in unapplied {
        report.ok.push(format!(
            "task settings accepted, not applied ({reason}): {}",
            keys.join(", ")
        ));
    }
    source::open(task).validate(&mut report).await;
    let target = async {
        let folder =
            layout::expand_bucket_folder(&task.target.settings.bucket_folder, chrono::Utc::now())?;
        let store = store::open(&task.target).await?;
        store.check_writable(&folder).await?;
        Ok::<_, Error>(format!("target {}/{folder} writable", store.describe()))
    };
    match target.await {
        Ok(line) => report.ok.push(line),
        Err(e) => report.problems.push(e),
    }
    match state::check_writable(task, &task.target).await {
        Ok(line) => report.ok.push(line),
        Err(e) => report.problems.push(e),
    }
    report
}
