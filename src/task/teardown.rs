//! `tributary drop`: removes what a task created — on the source (PostgreSQL: its replication
//! slot, publication and heartbeat table; MySQL keeps nothing of a task), its state (the
//! checkpoint folder or S3 object, after taking the task's lease) and, when asked, its objects on the target — after listing what will go.
//!
//! The plan is read first and shown; [`Plan::apply`] then removes it in an order that can be
//! repeated after any failure: target objects (found through the checkpoint's tables), then the
//! source's objects, then the state. A second `drop` finds nothing left.

use std::fmt::Write as _;

use tokio_util::sync::CancellationToken;

use crate::config::TaskConfig;
use crate::error::Result;
use crate::source::{self, SourceObjects};
use crate::state::StateStore;
use crate::store::{self, Store};

/// What `drop` would remove for one task.
pub struct Plan<'a> {
    task: &'a TaskConfig,
    /// The task's objects on the source, and those it keeps.
    source: SourceObjects,
    /// The task's state, when it exists.
    state: Option<StateStore>,
    /// With `--files`: the store and each folder of the task's objects with its object count.
    files: Option<TargetFiles>,
    /// The checkpoint says the task was last seen running (or was killed).
    running: bool,
    /// `--files` was asked but there is no checkpoint to find the task's tables in.
    files_unknown: bool,
}

/// The target's store and each folder of the task's objects with its object count.
type TargetFiles = (Box<dyn Store>, Vec<(String, usize)>);

/// Reads what `drop` would remove for `task` (`files`: its objects on the target too).
pub async fn plan(task: &TaskConfig, files: bool) -> Result<Plan<'_>> {
    let checkpoints = StateStore::open(task).await?;
    let cp = checkpoints.load().await?;
    let source = source::open(task)
        .drop_objects(cp.as_ref().and_then(|c| c.cdc.as_ref()), false)
        .await?;
    let mut plan = Plan {
        task,
        source,
        state: cp.is_some().then_some(checkpoints),
        files: None,
        running: cp
            .as_ref()
            .is_some_and(|c| c.status == crate::checkpoint::TaskStatus::Running),
        files_unknown: files && cp.is_none(),
    };
    if let (true, Some(cp)) = (files, &cp) {
        let layout = super::layout(task, cp.bucket_folder.clone());
        let mut folders: Vec<String> = cp
            .tables
            .values()
            .map(|t| layout.table_prefix(&t.schema_name, &t.table_name))
            .collect();
        if let Some(path) = &task.target.settings.cdc.preserve_transactions_path {
            folders.push(layout.cdc_txn_folder(path));
        }
        folders.sort();
        folders.dedup();
        let store = store::open(&task.target).await?;
        let mut counted = Vec::new();
        for f in folders {
            let n = store.list(&f).await?.len();
            if n > 0 {
                counted.push((f, n));
            }
        }
        plan.files = Some((store, counted));
    }
    Ok(plan)
}

impl Plan<'_> {
    /// True when nothing of the task is left to remove.
    pub fn is_empty(&self) -> bool {
        self.source.owned.is_empty()
            && self.state.is_none()
            && self.files.as_ref().is_none_or(|(_, f)| f.is_empty())
    }

    /// What will be removed and what is kept, one item a line.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let t = self.task;
        if self.is_empty() {
            let _ = writeln!(out, "nothing left to drop for task {}", t.id);
        } else {
            let _ = writeln!(out, "drop removes, for task {}:", t.id);
        }
        let source = t.source.redacted();
        for o in &self.source.owned {
            let _ = writeln!(out, "  - {o} on {source}");
        }
        if let Some((store, folders)) = &self.files {
            for (f, n) in folders {
                let _ = writeln!(out, "  - {n} object(s) under {}/{f}", store.describe());
            }
        }
        if let Some(state) = &self.state {
            let _ = writeln!(out, "  - the task's state {}", state.describe());
        }
        for k in &self.source.kept {
            let _ = writeln!(out, "  kept: {k}");
        }
        if self.files.is_none() && !self.is_empty() {
            let _ = writeln!(
                out,
                "  kept: the files on the target (add --files to delete them too)"
            );
        }
        if self.files_unknown {
            let _ = writeln!(
                out,
                "  kept: any files on the target: without the task's state there is no list of its tables"
            );
        }
        if self.running && !self.is_empty() {
            let _ = writeln!(
                out,
                "  note: the state says the task is running (or was killed): stop it first"
            );
        }
        out
    }

    /// Removes everything in the plan; returns what was done, one line each.
    pub async fn apply(self) -> Result<String> {
        let mut out = String::new();
        if let Some((store, folders)) = &self.files {
            for (f, _) in folders {
                let n = store::delete_prefix(store.as_ref(), f).await?;
                let _ = writeln!(out, "deleted {n} object(s) under {}/{f}", store.describe());
            }
        }
        // The lease first: a task that is running is not dropped under it. Without state
        // there is nothing to lock (and locking would create the folder).
        let checkpoints = StateStore::open(self.task).await?;
        let cdc = match &self.state {
            Some(_) => checkpoints
                .acquire(CancellationToken::new())
                .await?
                .and_then(|c| c.cdc),
            None => None,
        };
        let done = source::open(self.task)
            .drop_objects(cdc.as_ref(), true)
            .await?;
        for o in done.owned {
            let _ = writeln!(out, "dropped {o}");
        }
        if self.state.is_some() && checkpoints.remove().await? {
            let _ = writeln!(out, "removed {}", checkpoints.describe());
        }
        let _ = writeln!(out, "task {} dropped", self.task.id);
        Ok(out)
    }
}
