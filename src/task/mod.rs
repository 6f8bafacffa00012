//! Orchestration: `run` and `validate` for a task, wiring config → source → writer → store →
//! checkpoint.

pub mod cdc;
pub mod cdc_mysql;
pub mod full_load;
pub mod metrics;
pub mod status;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{task_status, Checkpoint, CheckpointStore, TableStats};
use crate::config::{Engine, MigrationType, TaskConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, Layout};
use crate::progress::Progress;
use crate::source::mysql::MySnapshot;
use crate::source::postgres::PgSnapshot;
use crate::source::Snapshot;
use crate::store;
use full_load::{now, FullLoad};

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

/// Runs a task to completion (full load) and returns its final checkpoint.
pub async fn run(
    task: &TaskConfig,
    opts: &RunOptions,
    cancel: CancellationToken,
) -> Result<Checkpoint> {
    if let Some(addr) = opts.metrics_addr {
        metrics::install(addr)?;
    }
    let checkpoints = CheckpointStore::new(&task.state_dir, &task.id);
    let previous = checkpoints.load()?;
    let start = chrono::Utc::now();
    let mut checkpoint = match (previous, &opts.bucket_folder) {
        (Some(prev), None) if !opts.restart && !prev.finished() => {
            tracing::info!(folder = %prev.bucket_folder, "resuming the unfinished run: completed tables are kept");
            prev
        }
        (prev, override_folder) => {
            if let Some(old) = prev.as_ref().and_then(|p| p.cdc.as_ref()) {
                if old.created_slot {
                    // A fresh run gets a fresh slot; the old one would pin WAL forever.
                    let admin = crate::source::postgres::connect(&task.source).await?;
                    crate::source::postgres::slot::drop_slot(&admin, &old.slot).await?;
                    tracing::info!(slot = %old.slot, "dropped the previous run's replication slot");
                }
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
    checkpoint.status = task_status::RUNNING.into();
    checkpoint.stop_reason = None;
    checkpoint.last_error = None;
    checkpoints.save(&checkpoint)?;

    let settings = &task.target.settings;
    let layout = Layout {
        bucket_folder: checkpoint.bucket_folder.clone(),
        format: settings.data_format,
        compression: settings.compression,
        date_partition: settings.cdc.date_partition.clone(),
    };
    let store = store::open(&task.target).await?;
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
    if task.migration_type != MigrationType::FullLoad {
        let run = cdc::CdcRun {
            task,
            store: store.as_ref(),
            layout: &layout,
            checkpoints: &checkpoints,
            progress: opts.progress,
            cancel,
        };
        let (mut checkpoint, result) = match task.source.engine {
            Engine::Postgres => run.run(checkpoint).await,
            Engine::MySql => run.run_mysql(checkpoint).await,
        };
        checkpoint.stop_date = Some(now());
        cdc::finish(&mut checkpoint, &result);
        checkpoints.save(&checkpoint)?;
        return result.map(|_| checkpoint);
    }
    let load = FullLoad {
        task,
        store: store.as_ref(),
        layout: &layout,
        checkpoints: &checkpoints,
        checkpoint: tokio::sync::Mutex::new(checkpoint),
        progress: Progress::new(opts.progress),
        cancel,
    };
    let result = async {
        let snapshot = open_snapshot(task).await?;
        let tables = snapshot.tables().await?;
        if tables.is_empty() {
            return Err(Error::config(
                "table_mappings select no table in the source",
                "check schema-name/table-name patterns (case-sensitive; % and _ are wildcards)",
            ));
        }
        for t in &tables {
            layout::check_segment("schema", &t.schema.schema)?;
            layout::check_segment("table", &t.schema.table)?;
        }
        let r = load.run(snapshot.as_ref(), tables).await;
        let _ = snapshot.close().await;
        r
    }
    .await;
    let mut checkpoint = load.checkpoint.into_inner();
    checkpoint.stop_date = Some(now());
    match &result {
        Ok(()) => {
            checkpoint.status = task_status::STOPPED.into();
            checkpoint.stop_reason = Some("FULL_LOAD_ONLY_FINISHED".into());
        }
        Err(e) if e.kind == ErrorKind::Interrupted => {
            checkpoint.status = task_status::STOPPED.into();
            checkpoint.stop_reason = Some("NORMAL".into());
        }
        Err(e) => {
            checkpoint.status = task_status::FAILED.into();
            checkpoint.stop_reason = Some("FATAL_ERROR".into());
            checkpoint.last_error = Some(e.to_string());
        }
    }
    checkpoints.save(&checkpoint)?;
    result.map(|()| checkpoint)
}

/// Takes the full-load snapshot of a `full-load` task on its engine.
async fn open_snapshot(task: &TaskConfig) -> Result<Box<dyn Snapshot>> {
    let lobs = task.settings.support_lobs;
    Ok(match task.source.engine {
        Engine::Postgres => Box::new(PgSnapshot::export(&task.source, &task.mappings, lobs).await?),
        Engine::MySql => Box::new(
            MySnapshot::export(
                &task.source,
                &task.mappings,
                lobs,
                task.settings.max_sub_tasks,
            )
            .await?,
        ),
    })
}

/// Renders the table-statistics summary printed at the end of a run.
pub fn summary(cp: &Checkpoint) -> String {
    if cp.cdc.is_some() {
        // CDC tasks: the status view (state, phase, Inserts/Updates/Deletes/Ddls).
        let s = status::Status::from_checkpoint(cp);
        return status::render(&s);
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
            table_state,
            full_load_rows,
            full_load_files,
            full_load_bytes,
            full_load_start_time.as_deref().unwrap_or("-"),
            full_load_end_time.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// The change-capture checks: server settings, privilege, replica identities, unchanged-TOAST
/// exposure, and the slot's retained WAL.
async fn validate_cdc(task: &TaskConfig, ok: &mut Vec<String>, problems: &mut Vec<Problem>) {
    use crate::source::postgres::{self as pg, slot};
    let client = match pg::connect(&task.source).await {
        Ok(c) => c,
        Err(e) => return problems.push(Problem(e)),
    };
    let checks = async {
        let found = slot::check_prerequisites(&client).await?;
        if found.is_empty() {
            ok.push(
                "wal_level=logical, replication slots and senders available, REPLICATION privilege"
                    .into(),
            );
        }
        problems.extend(found.into_iter().map(Problem));
        let tables: Vec<String> =
            pg::catalog::selected_tables(&client, &task.mappings, task.settings.support_lobs)
                .await?
                .iter()
                .map(|t| t.source.schema.qualified())
                .collect();
        for t in slot::tables_without_identity(&client, &tables).await? {
            problems.push(Problem(Error::config(
                format!("{t} has no primary key or replica identity; UPDATE/DELETE on it would fail once published"),
                format!("ALTER TABLE {t} REPLICA IDENTITY FULL (or add a primary key), or exclude it"),
            )));
        }
        if task.target.settings.csv.no_sup_value.is_none() {
            for t in slot::tables_with_toast_risk(&client, &tables).await? {
                problems.push(Problem(Error::config(
                    format!("{t} has large (TOASTable) columns and REPLICA IDENTITY is not FULL: an UPDATE that leaves such a value unchanged cannot be written in full and stops the task"),
                    format!("ALTER TABLE {t} REPLICA IDENTITY FULL, or set UseCsvNoSupValue=true to write CsvNoSupValue instead"),
                )));
            }
        }
        let name = task
            .source
            .cdc
            .slot_name
            .clone()
            .unwrap_or_else(|| slot::default_name(&task.id));
        if let Some(info) = slot::slot_info(&client, &name).await? {
            let retained = info.retained_bytes.unwrap_or(0);
            if retained > slot::SLOT_LAG_WARN_BYTES {
                problems.push(Problem(Error::new(
                    ErrorKind::Source,
                    format!(
                        "replication slot {name} retains {} MB of WAL",
                        retained / (1024 * 1024)
                    ),
                    "run the task so it catches up, or drop the slot if the task is retired",
                )));
            } else {
                ok.push(format!(
                    "slot {name} exists, retains {retained} bytes of WAL"
                ));
            }
        }
        Ok::<(), Error>(())
    };
    if let Err(e) = checks.await {
        problems.push(Problem(e));
    }
}

/// The MySQL/MariaDB checks: reachable, tables selected and readable, RELOAD for the consistent
/// snapshot, and for change capture the binlog settings and replication privileges.
async fn validate_mysql(task: &TaskConfig, ok: &mut Vec<String>, problems: &mut Vec<Problem>) {
    use crate::source::mysql::{self as my, catalog, prereq};
    use mysql_async::prelude::Queryable;
    let mut conn = match my::connect(&task.source).await {
        Ok(c) => c,
        Err(e) => return problems.push(Problem(e)),
    };
    ok.push(format!("source {} reachable", task.source.redacted()));
    let checks = async {
        let tables =
            catalog::selected_tables(&mut conn, &task.mappings, task.settings.support_lobs).await?;
        if tables.is_empty() {
            problems.push(Problem(Error::config(
                "table_mappings select no table in the source",
                "check schema-name (the database) and table-name patterns (% and _ are wildcards)",
            )));
        }
        for t in &tables {
            let s = &t.source.schema;
            let probe = format!(
                "SELECT 1 FROM {}.{} LIMIT 0",
                catalog::quote_ident(&s.schema),
                catalog::quote_ident(&s.table)
            );
            match conn.query_drop(probe).await {
                Ok(()) => ok.push(format!(
                    "table {}: {} columns, ~{} rows",
                    s.qualified(),
                    s.columns.len(),
                    t.source.estimated_rows.unwrap_or(0)
                )),
                Err(e) => problems.push(Problem(my::my_error(
                    e,
                    &format!("reading {}", s.qualified()),
                ))),
            }
            for seg in [("schema", &s.schema), ("table", &s.table)] {
                if let Err(e) = layout::check_segment(seg.0, seg.1) {
                    problems.push(Problem(e));
                }
            }
        }
        if let Some(p) = prereq::check_reload(&mut conn).await? {
            problems.push(Problem(p));
        }
        if task.migration_type != MigrationType::FullLoad {
            let found = prereq::check_cdc(&mut conn).await?;
            if found.is_empty() {
                ok.push("binlog on, ROW format, FULL row image, replication privileges".into());
            }
            problems.extend(found.into_iter().map(Problem));
        }
        Ok::<(), Error>(())
    };
    if let Err(e) = checks.await {
        problems.push(Problem(e));
    }
}

/// One finding of `validate`: what is wrong and how to fix it.
#[derive(Debug)]
pub struct Problem(pub Error);

/// Checks what a run would need — source reachable, privileges, tables matched, target writable —
/// and returns every problem found (empty = ready), plus lines describing what was checked.
pub async fn validate(task: &TaskConfig) -> (Vec<String>, Vec<Problem>) {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    if task.source.engine == Engine::MySql {
        validate_mysql(task, &mut ok, &mut problems).await;
    }
    if task.migration_type != MigrationType::FullLoad && task.source.engine == Engine::Postgres {
        validate_cdc(task, &mut ok, &mut problems).await;
    }
    if task.source.engine == Engine::Postgres {
        match PgSnapshot::export(&task.source, &task.mappings, task.settings.support_lobs).await {
            Ok(snapshot) => {
                ok.push(format!("source {} reachable", task.source.redacted()));
                let tables = snapshot.pg_tables();
                if tables.is_empty() {
                    problems.push(Problem(Error::config(
                        "table_mappings select no table in the source",
                        "check schema-name/table-name patterns (case-sensitive; % and _ are wildcards)",
                    )));
                }
                for t in tables {
                    let name = t.source.schema.qualified();
                    if t.can_select {
                        ok.push(format!(
                            "table {name}: {} columns, ~{} rows",
                            t.columns.len(),
                            t.source.estimated_rows.unwrap_or(0)
                        ));
                    } else {
                        problems.push(Problem(Error::new(
                            ErrorKind::SourcePrivilege,
                            format!("the source user may not SELECT from {name}"),
                            format!("GRANT SELECT ON {name} TO <task user>"),
                        )));
                    }
                    for seg in [
                        ("schema", &t.source.schema.schema),
                        ("table", &t.source.schema.table),
                    ] {
                        if let Err(e) = layout::check_segment(seg.0, seg.1) {
                            problems.push(Problem(e));
                        }
                    }
                }
                let _ = snapshot.close().await;
            }
            Err(e) => problems.push(Problem(e)),
        }
    }
    match layout::expand_bucket_folder(&task.target.settings.bucket_folder, chrono::Utc::now()) {
        Ok(folder) => match store::open(&task.target).await {
            Ok(store) => match store.check_writable(&folder).await {
                Ok(()) => ok.push(format!("target {}/{folder} writable", store.describe())),
                Err(e) => problems.push(Problem(e)),
            },
            Err(e) => problems.push(Problem(e)),
        },
        Err(e) => problems.push(Problem(e)),
    }
    if let Err(e) = std::fs::create_dir_all(&task.state_dir) {
        problems.push(Problem(Error::new(
            ErrorKind::State,
            format!(
                "cannot create state folder {}: {e}",
                task.state_dir.display()
            ),
            "set [task] state to a writable folder",
        )));
    }
    (ok, problems)
}
