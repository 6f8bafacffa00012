//! Where a task keeps its state — the checkpoint, in a local folder or in S3 — and the lease
//! that lets one process at a time write it (see [`lease`]).
//!
//! A run [`StateStore::acquire`]s the lease before anything else, saves through it, and
//! [`StateStore::release`]s it at the end; [`Fenced`] wraps the target store so no data object
//! is published or deleted once the lease is lost. `status` and `drop` only read.

mod fenced;
pub(crate) mod lease;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, now, Checkpoint, CheckpointStore, LeaseHolder};
use crate::config::{StateLocation, TargetConfig, TaskConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Expect, S3Store, Store};
pub(crate) use fenced::Fenced;
use lease::{Guard, LocalLock};

/// Name of the checkpoint object or file under `<state>/<task id>/`.
const CHECKPOINT: &str = "checkpoint.json";
/// Name of the local lease (lock) file under `<state>/<task id>/`.
const LEASE_FILE: &str = "lease";

/// A task's state, and its lease once acquired.
#[derive(Clone)]
pub(crate) struct StateStore {
    inner: Arc<Inner>,
}

/// What the handles of one state share.
struct Inner {
    /// Task id.
    task: String,
    /// The state as the task file names it plus the task's folder, for messages.
    describe: String,
    /// Where it is.
    backend: Backend,
    /// This process as a holder.
    me: LeaseHolder,
    /// Checked by every write.
    guard: Arc<Guard>,
    /// The S3 lease's renewal, while held.
    renewal: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The two places state can live.
enum Backend {
    /// `<folder>/<task>/checkpoint.json`, written atomically; the lease is a lock file beside it.
    Local {
        /// The checkpoint file.
        file: CheckpointStore,
        /// The lease file.
        lease: PathBuf,
    },
    /// `s3://bucket/prefix/<task>/checkpoint.json`, written conditionally.
    S3 {
        /// The state's bucket.
        store: S3Store,
        /// The checkpoint's key.
        key: String,
        /// What the next write expects to replace, and the last checkpoint written (boxed:
        /// a checkpoint is large beside the local variant).
        cas: Box<tokio::sync::Mutex<Cas>>,
    },
}

/// The compare-and-swap state of an S3 lease.
struct Cas {
    /// The object as this process last wrote (or read) it.
    expect: Expect,
    /// The last checkpoint written, renewed as is.
    last: Option<Checkpoint>,
}

impl StateStore {
    /// The state of `task` (nothing is read or locked yet).
    pub(crate) async fn open(task: &TaskConfig) -> Result<StateStore> {
        let backend = match &task.state {
            StateLocation::Local(dir) => Backend::Local {
                file: CheckpointStore::new(dir, &task.id),
                lease: dir.join(&task.id).join(LEASE_FILE),
            },
            StateLocation::S3 { bucket, prefix } => Backend::S3 {
                store: S3Store::open(bucket, &task.target).await?,
                key: state_key(prefix, &task.id),
                cas: Box::new(tokio::sync::Mutex::new(Cas {
                    expect: Expect::Absent,
                    last: None,
                })),
            },
        };
        let describe = match &backend {
            Backend::Local { file, .. } => file
                .path()
                .parent()
                .map_or_else(|| task.state.describe(), |p| p.display().to_string()),
            Backend::S3 { store, key, .. } => format!("{}/{key}", store.describe()),
        };
        Ok(StateStore::with(
            &task.id,
            describe,
            backend,
            task.lease_ttl,
        ))
    }

    /// A local state folder without a lease (unit tests of the parts of a run).
    #[cfg(test)]
    pub(crate) fn local(dir: &std::path::Path, task: &str) -> StateStore {
        let backend = Backend::Local {
            file: CheckpointStore::new(dir, task),
            lease: dir.join(task).join(LEASE_FILE),
        };
        StateStore::with(
            task,
            dir.display().to_string(),
            backend,
            std::time::Duration::from_secs(60),
        )
    }

    fn with(
        task: &str,
        describe: String,
        backend: Backend,
        ttl: std::time::Duration,
    ) -> StateStore {
        StateStore {
            inner: Arc::new(Inner {
                task: task.to_string(),
                guard: Arc::new(Guard::new(task, &describe, ttl)),
                describe,
                backend,
                me: lease::me(),
                renewal: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Where the state is, for messages (`s3://b/p/t1/checkpoint.json`, a folder).
    pub(crate) fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// The guard a run's writes check.
    pub(crate) fn guard(&self) -> Arc<Guard> {
        self.inner.guard.clone()
    }

    /// Who holds the task's lease now (None: nobody), `cp` being the checkpoint just read: the
    /// holder written in it (S3), or the lock on the lease file (a local folder).
    pub(crate) fn lease_holder(&self, cp: &Checkpoint) -> Result<Option<lease::LeaseView>> {
        match &self.inner.backend {
            Backend::Local { lease, .. } => LocalLock::holder(lease),
            Backend::S3 { .. } => Ok(cp
                .lease
                .as_ref()
                .map(|h| lease::LeaseView::of(h, &self.inner.me, chrono::Utc::now()))),
        }
    }

    /// Reads the checkpoint without taking the lease; None when the task never ran.
    pub(crate) async fn load(&self) -> Result<Option<Checkpoint>> {
        Ok(self.read().await?.map(|(cp, _)| cp))
    }

    /// The checkpoint and (S3) its ETag.
    async fn read(&self) -> Result<Option<(Checkpoint, Option<String>)>> {
        match &self.inner.backend {
            Backend::Local { file, .. } => Ok(file.load()?.map(|cp| (cp, None))),
            Backend::S3 { store, key, .. } => match store.read_versioned(key).await? {
                None => Ok(None),
                Some((bytes, etag)) => {
                    let cp = checkpoint::decode(&bytes).map_err(|e| {
                        self.error(format!(
                            "cannot use checkpoint {}: {e}",
                            self.inner.describe
                        ))
                    })?;
                    Ok(Some((cp, Some(etag))))
                }
            },
        }
    }

    fn error(&self, message: String) -> Error {
        Error::new(
            ErrorKind::State,
            message,
            "fix or remove the task's state (tributary drop), or point [task] state elsewhere",
        )
    }

    /// Takes the task's lease and returns the checkpoint to continue (None: the task never
    /// ran). Refused, naming the holder, while another live process holds it. A lost S3 lease
    /// (found by its renewal) cancels `on_lost`, so the run stops promptly.
    pub(crate) async fn acquire(&self, on_lost: CancellationToken) -> Result<Option<Checkpoint>> {
        let inner = &self.inner;
        match &inner.backend {
            Backend::Local { file, lease } => {
                let lock = LocalLock::take(lease.clone(), &inner.me, &inner.task)?;
                inner.guard.hold_local(lock);
                file.load()
            }
            Backend::S3 { store, key, cas } => {
                let mut cas = cas.lock().await;
                let Some((mut cp, etag)) = self.read().await? else {
                    // Nothing to take: the first save creates the object if nobody else did.
                    cas.expect = Expect::Absent;
                    self.start_renewal(on_lost);
                    return Ok(None);
                };
                if let Some(h) = &cp.lease {
                    let expired = lease::expiry(h).is_none_or(|at| at < chrono::Utc::now());
                    if !expired && !lease::dead_here(h, &inner.me) {
                        return Err(lease::held(&inner.task, &inner.describe, Some(h)));
                    }
                    tracing::warn!(holder.pid = h.pid, holder.host = %h.host, holder.since = %h.since,
                        "taking over the lease of a process that is gone ({})",
                        if expired { "its lease expired" } else { "its pid no longer runs on this machine" });
                }
                cp.lease = None;
                let started = Instant::now();
                let expect = Expect::Version(etag.unwrap_or_default());
                match store.put_if(key, self.body(&cp, true)?, &expect).await? {
                    Some(etag) => {
                        cas.expect = Expect::Version(etag);
                        cas.last = Some(cp.clone());
                        inner.guard.renewed(started);
                        self.start_renewal(on_lost);
                        Ok(Some(cp))
                    }
                    None => {
                        let holder = self.read().await?.and_then(|(c, _)| c.lease);
                        Err(lease::held(&inner.task, &inner.describe, holder.as_ref()))
                    }
                }
            }
        }
    }

    /// The object's bytes: `cp` with this process as the holder (`held`) or with no holder.
    fn body(&self, cp: &Checkpoint, held: bool) -> Result<Bytes> {
        let mut cp = cp.clone();
        cp.lease = held.then(|| LeaseHolder {
            renewed: Some(now()),
            ttl_seconds: Some(self.inner.guard.ttl.as_secs()),
            ..self.inner.me.clone()
        });
        serde_json::to_vec_pretty(&cp)
            .map(Bytes::from)
            .map_err(|e| Error::internal(format!("encode checkpoint: {e}")))
    }

    /// Writes the checkpoint durably: atomically in a folder, conditionally in S3 (renewing
    /// the lease). Refused once the lease is lost.
    pub(crate) async fn save(&self, cp: &Checkpoint) -> Result<()> {
        self.write(Some(cp), true).await
    }

    /// The final save of a run: the checkpoint, then the lease goes (`cp` None: the state as
    /// this process found it, for a run that failed before it saved).
    pub(crate) async fn release(&self, cp: Option<&Checkpoint>) -> Result<()> {
        if let Some(h) = self
            .inner
            .renewal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
        let r = self.write(cp, false).await;
        self.inner.guard.release_local();
        r
    }

    async fn write(&self, cp: Option<&Checkpoint>, keep: bool) -> Result<()> {
        let inner = &self.inner;
        inner.guard.check_held()?;
        match &inner.backend {
            Backend::Local { file, .. } => cp.map_or(Ok(()), |cp| file.save(cp)),
            Backend::S3 { store, key, cas } => {
                let mut cas = cas.lock().await;
                let Some(cp) = cp.or(cas.last.as_ref()).cloned() else {
                    return Ok(()); // released before anything was written
                };
                // A renewal queued behind a loss must not try again.
                inner.guard.check_held()?;
                let started = Instant::now();
                match store
                    .put_if(key, self.body(&cp, keep)?, &cas.expect)
                    .await?
                {
                    Some(etag) => {
                        cas.expect = Expect::Version(etag);
                        cas.last = Some(cp);
                        inner.guard.renewed(started);
                        Ok(())
                    }
                    None => {
                        let now_held = self.read().await.ok().flatten().and_then(|(c, _)| c.lease);
                        if cas.expect == Expect::Absent {
                            // Never held: another process created the state first.
                            let _ = inner
                                .guard
                                .mark_lost("another process took it first".into());
                            return Err(lease::held(
                                &inner.task,
                                &inner.describe,
                                now_held.as_ref(),
                            ));
                        }
                        Err(inner.guard.mark_lost(match now_held {
                            Some(h) => format!(
                                "the state was changed by another writer (it names pid {} on host {} since {})",
                                h.pid, h.host, h.since
                            ),
                            None => "the state was changed or removed by another writer".into(),
                        }))
                    }
                }
            }
        }
    }

    /// Renews an S3 lease every sixth of its TTL until released; cancels `on_lost` when the
    /// lease turns out lost. S3 errors are retried at the next turn (the guard stops data
    /// writes meanwhile once half the TTL has passed).
    fn start_renewal(&self, on_lost: CancellationToken) {
        let every = self.inner.guard.ttl / 6;
        let state = self.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match state.write(None, true).await {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::LeaseLost => {
                        tracing::error!("{e}");
                        on_lost.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!("cannot renew the task's lease yet: {e}"),
                }
            }
        });
        *self.inner.renewal.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Removes the state (`drop`): the folder, or the S3 object; the lease goes with it.
    pub(crate) async fn remove(&self) -> Result<bool> {
        if let Some(h) = self
            .inner
            .renewal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
        match &self.inner.backend {
            Backend::Local { file, .. } => {
                let Some(dir) = file.path().parent().filter(|d| d.exists()) else {
                    return Ok(false);
                };
                std::fs::remove_dir_all(dir).map_err(|e| {
                    Error::new(
                        ErrorKind::State,
                        format!("cannot remove the task's state {}: {e}", dir.display()),
                        "make the [task] state folder writable and drop again",
                    )
                })?;
                Ok(true)
            }
            Backend::S3 { store, key, .. } => {
                if !store.exists(key).await? {
                    return Ok(false);
                }
                store.delete(std::slice::from_ref(key)).await?;
                Ok(true)
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self
            .renewal
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

/// `prefix/task/checkpoint.json` (no leading `/` when the prefix is empty).
fn state_key(prefix: &str, task: &str) -> String {
    if prefix.is_empty() {
        format!("{task}/{CHECKPOINT}")
    } else {
        format!("{prefix}/{task}/{CHECKPOINT}")
    }
}

/// Checks that the state location can be written (`validate`); returns the line to report.
pub(crate) async fn check_writable(task: &TaskConfig, target: &TargetConfig) -> Result<String> {
    match &task.state {
        StateLocation::Local(dir) => {
            // Created and written to, as a run would (a folder that exists but is read-only,
            // or full, fails only here, not at the first checkpoint an hour into the load).
            let probe = dir.join(format!(".validate-{}", std::process::id()));
            let writable = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&probe, b"probe"))
                .and_then(|()| std::fs::remove_file(&probe));
            writable.map_err(|e| {
                let _ = std::fs::remove_file(&probe);
                Error::new(
                    ErrorKind::State,
                    format!("cannot write to state folder {}: {e}", dir.display()),
                    "set [task] state to a folder the task's user may write, or fix its permissions",
                )
            })?;
            Ok(format!("state folder {} writable", dir.display()))
        }
        StateLocation::S3 { bucket, prefix } => {
            let store = S3Store::open(bucket, target).await?;
            store.check_writable(prefix).await?;
            Ok(format!("state {} writable", task.state.describe()))
        }
    }
}
