//! One writer per task: who holds a task's lease, whether that holder is alive, and the guard
//! every write of the run consults.
//!
//! - State in a local folder: an exclusive `flock` on `<state>/<task>/lease` (the kernel drops it
//!   when the process dies, so a dead holder never blocks a restart); the file holds the
//!   holder's host, pid and start for the message a second process prints.
//! - State in S3: the holder is written into the checkpoint object itself, and every write of
//!   that object is conditional on the ETag of the holder's last write, so a process whose
//!   lease was taken over fails its next write and stops. The holder renews the lease every
//!   sixth of `lease_ttl_seconds`; a lease not renewed for the whole TTL belongs to a dead
//!   process and the next run takes it over (at once when the holder ran on this machine and
//!   its pid is gone).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::checkpoint::{now, LeaseHolder};
use crate::error::{Error, ErrorKind, Result};

/// This process as a lease holder.
pub(crate) fn me() -> LeaseHolder {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut host = read("/proc/sys/kernel/hostname");
    if host.is_empty() {
        host = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
    }
    LeaseHolder {
        host,
        boot: read("/proc/sys/kernel/random/boot_id"),
        pid: std::process::id(),
        session: uuid::Uuid::new_v4().simple().to_string(),
        since: now(),
        renewed: None,
        ttl_seconds: None,
    }
}

/// True when `holder` ran on this machine (same host name and boot) and its process is gone:
/// its pid no longer exists, or is ours (a restarted container reuses pid 1).
pub(crate) fn dead_here(holder: &LeaseHolder, me: &LeaseHolder) -> bool {
    holder.session != me.session
        && holder.host == me.host
        && !me.boot.is_empty()
        && holder.boot == me.boot
        && (holder.pid == me.pid
            || !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists())
}

/// When an S3 lease stops being live: its last renewal plus its TTL (None: not a renewed lease).
pub(crate) fn expiry(holder: &LeaseHolder) -> Option<chrono::DateTime<chrono::Utc>> {
    let renewed = chrono::DateTime::parse_from_rfc3339(holder.renewed.as_deref()?).ok()?;
    Some(renewed.to_utc() + chrono::Duration::seconds(holder.ttl_seconds? as i64))
}

/// The error of a second process: the lease is held by a live process.
pub(crate) fn held(task: &str, state: &str, holder: Option<&LeaseHolder>) -> Error {
    let who = holder.map_or("another process".to_string(), |h| {
        format!("pid {} on host {} since {}", h.pid, h.host, h.since)
    });
    let fix = match holder.and_then(expiry) {
        Some(at) => format!(
            "wait for that process to finish or stop it (SIGTERM); if it died, its lease expires at {} ({} s after its last renewal) and the next run takes over",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            holder.and_then(|h| h.ttl_seconds).unwrap_or_default()
        ),
        None => "wait for that process to finish or stop it (SIGTERM); its lock goes with it".to_string(),
    };
    Error::new(
        ErrorKind::LeaseHeld,
        format!("task {task} is already running: its state {state} is held by {who}"),
        fix,
    )
}

/// The error of a process that lost its lease.
pub(crate) fn lost(task: &str, state: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::LeaseLost,
        format!("task {task} lost its lease on {state}: {why}; it stopped writing (nothing was published or confirmed after the loss)"),
        "make sure one process runs the task, then run it again: it resumes from the last checkpoint",
    )
}

/// Who holds a task's lease, as `status` shows it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LeaseView {
    /// `held`; `expired` (not renewed within its TTL: the next run takes it over); `gone` (its
    /// process no longer runs on this machine: the next run takes it over at once).
    pub(crate) state: &'static str,
    /// The holder's host name.
    pub(crate) host: String,
    /// The holder's process id.
    pub(crate) pid: u32,
    /// When it took the lease (RFC 3339).
    pub(crate) since: String,
    /// When it last renewed it (S3 only).
    pub(crate) renewed: Option<String>,
    /// When it stops being live unless renewed (S3 only; a local lock lasts as long as its
    /// process).
    pub(crate) until: Option<String>,
}

impl LeaseView {
    /// The view of `holder` of an S3 lease, judged from this machine (`me`) at `now`.
    pub(crate) fn of(
        holder: &LeaseHolder,
        me: &LeaseHolder,
        now: chrono::DateTime<chrono::Utc>,
    ) -> LeaseView {
        let until = expiry(holder);
        let state = match until {
            Some(at) if at < now => "expired",
            _ if dead_here(holder, me) => "gone",
            _ => "held",
        };
        LeaseView {
            state,
            host: holder.host.clone(),
            pid: holder.pid,
            since: holder.since.clone(),
            renewed: holder.renewed.clone(),
            until: until.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }

    /// One line for a terminal.
    pub(crate) fn render(&self) -> String {
        let who = format!(
            "pid {} on host {} since {}",
            self.pid, self.host, self.since
        );
        let renewed = self
            .renewed
            .as_deref()
            .map_or(String::new(), |r| format!(", last renewed {r}"));
        match (self.state, &self.until) {
            ("expired", Some(until)) => format!(
                "expired at {until} (was held by {who}{renewed}); the next run takes it over"
            ),
            ("gone", _) => format!(
                "held by {who}, but that process no longer runs on this machine; the next run takes it over"
            ),
            (_, Some(until)) => format!("held by {who}{renewed}, valid until {until}"),
            (_, None) => format!("held by {who} (a lock that ends with that process)"),
        }
    }
}

/// An exclusive lock on a local state folder's lease file.
#[derive(Debug)]
pub(crate) struct LocalLock {
    /// Holds the lock while open.
    file: File,
    /// The lease file.
    path: PathBuf,
}

impl LocalLock {
    /// Takes the lock on `path` and writes `me` into it; the holder's error when it is taken.
    pub(crate) fn take(path: PathBuf, me: &LeaseHolder, task: &str) -> Result<LocalLock> {
        let io = |what: &str, e: std::io::Error| {
            Error::new(
                ErrorKind::State,
                format!("cannot {what} the lease file {}: {e}", path.display()),
                "make the [task] state folder writable (or point it elsewhere) and rerun",
            )
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create the folder of", e))?;
        }
        // Not truncated on open: the holder's details stay readable for a second process.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let folder = path.parent().unwrap_or(&path).display().to_string();
                return Err(held(task, &folder, holder.as_ref()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        let json = serde_json::to_vec_pretty(me).map_err(|e| Error::internal(e.to_string()))?;
        file.set_len(0)
            .and_then(|()| file.write_all(&json))
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", e))?;
        Ok(LocalLock { file, path })
    }

    /// The holder of the lock on `path`, if a live process holds it. Tested with a shared lock
    /// taken and dropped at once, so a run starting at that instant could be refused once.
    pub(crate) fn holder(path: &std::path::Path) -> Result<Option<LeaseView>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::State,
                    format!("cannot open the lease file {}: {e}", path.display()),
                    "make the [task] state folder readable",
                ))
            }
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(None),
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder: Option<LeaseHolder> = std::fs::read(path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                Ok(Some(match holder {
                    Some(h) => LeaseView {
                        state: "held",
                        host: h.host,
                        pid: h.pid,
                        since: h.since,
                        renewed: None,
                        until: None,
                    },
                    // Taken a moment ago, its details not yet written.
                    None => LeaseView {
                        state: "held",
                        host: "?".into(),
                        pid: 0,
                        since: "?".into(),
                        renewed: None,
                        until: None,
                    },
                }))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::new(
                ErrorKind::State,
                format!("cannot test the lock on {}: {e}", path.display()),
                "make the [task] state folder readable",
            )),
        }
    }

    /// Why the lock no longer guards the folder (its file was removed or replaced), if so.
    fn broken(&self) -> Option<String> {
        let ours = self.file.metadata().map(|m| m.ino()).ok();
        match std::fs::metadata(&self.path) {
            Ok(m) if Some(m.ino()) == ours => None,
            Ok(_) => Some(format!(
                "its lease file {} was replaced",
                self.path.display()
            )),
            Err(_) => Some(format!(
                "its lease file {} was removed",
                self.path.display()
            )),
        }
    }
}

/// What every write of a run checks first: the lease is still this process's.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Task id, for messages.
    task: String,
    /// The state location, for messages.
    state: String,
    /// The lease's TTL (S3).
    pub(crate) ttl: Duration,
    /// Mutable part.
    inner: Mutex<GuardState>,
}

/// What a guard knows.
#[derive(Debug, Default)]
struct GuardState {
    /// Why the lease was lost, once it was.
    lost: Option<String>,
    /// S3: writes are allowed until then (half the TTL after the start of the last successful
    /// renewal, so a holder stops well before another process may take over).
    valid_until: Option<Instant>,
    /// Local folder: the lock.
    local: Option<LocalLock>,
}

impl Guard {
    /// A guard for `task`'s state at `state`.
    pub(crate) fn new(task: &str, state: &str, ttl: Duration) -> Guard {
        Guard {
            task: task.to_string(),
            state: state.to_string(),
            ttl,
            inner: Mutex::new(GuardState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the local lock for the run.
    pub(crate) fn hold_local(&self, lock: LocalLock) {
        self.lock().local = Some(lock);
    }

    /// Releases the local lock (the end of a run).
    pub(crate) fn release_local(&self) {
        self.lock().local = None;
    }

    /// Records a successful S3 write that started at `started`.
    pub(crate) fn renewed(&self, started: Instant) {
        self.lock().valid_until = Some(started + self.ttl / 2);
    }

    /// Records the loss of the lease; returns its error.
    pub(crate) fn mark_lost(&self, why: String) -> Error {
        let e = lost(&self.task, &self.state, &why);
        self.lock().lost.get_or_insert(why);
        e
    }

    /// Ok while the lease is lost to nobody; for S3 also while it was renewed recently enough.
    pub(crate) fn check(&self) -> Result<()> {
        self.check_held()?;
        let state = self.lock();
        if let Some(until) = state.valid_until {
            if Instant::now() > until {
                return Err(lost(
                    &self.task,
                    &self.state,
                    &format!(
                        "it could not be renewed for {} s (half its {} s TTL)",
                        self.ttl.as_secs() / 2,
                        self.ttl.as_secs()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Ok unless the lease was lost (a write of the state itself renews an S3 lease, so it
    /// does not need a recent renewal).
    pub(crate) fn check_held(&self) -> Result<()> {
        let mut state = self.lock();
        if let Some(why) = state.local.as_ref().and_then(LocalLock::broken) {
            state.lost.get_or_insert(why);
        }
        match &state.lost {
            Some(why) => Err(lost(&self.task, &self.state, why)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_local_lock_names_the_holder_and_a_replaced_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t").join("lease");
        let first = me();
        let lock = LocalLock::take(path.clone(), &first, "t").unwrap();
        let e = LocalLock::take(path.clone(), &me(), "t").unwrap_err();
        assert_eq!(e.kind, ErrorKind::LeaseHeld);
        assert!(e.message.contains(&format!("pid {}", first.pid)), "{e}");
        assert!(e.message.contains(&first.since), "{e}");
        let guard = Guard::new("t", "here", Duration::from_secs(60));
        guard.hold_local(lock);
        guard.check().unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"{}").unwrap();
        let e = guard.check().unwrap_err();
        assert_eq!(e.kind, ErrorKind::LeaseLost);
        assert!(e.message.contains("replaced"), "{e}");
        // Lost for good, even though the file exists again.
        assert!(guard.check_held().is_err());
    }

    #[test]
    fn the_lock_goes_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lease");
        drop(LocalLock::take(path.clone(), &me(), "t").unwrap());
        LocalLock::take(path, &me(), "t").unwrap();
    }

    #[test]
    fn dead_holders_on_this_machine_and_expiry() {
        let mine = me();
        let mut other = me();
        assert!(
            dead_here(&other, &mine),
            "our pid in an earlier session: a restarted container"
        );
        other.pid = 1;
        assert!(!dead_here(&other, &mine), "a live pid on this host");
        other.pid = 0x7fff_fff0; // no such process
        assert!(dead_here(&other, &mine));
        other.host = "elsewhere".into();
        assert!(
            !dead_here(&other, &mine),
            "another host's pid cannot be checked"
        );
        other.renewed = Some("2026-01-01T00:00:00Z".into());
        other.ttl_seconds = Some(60);
        assert_eq!(
            expiry(&other).unwrap().to_rfc3339(),
            "2026-01-01T00:01:00+00:00"
        );
        let e = held("t", "s3://b/p", Some(&other));
        assert!(e.fix.contains("2026-01-01T00:01:00Z"), "{e}");
    }

    #[test]
    fn an_s3_guard_refuses_writes_once_not_renewed_for_half_the_ttl() {
        let guard = Guard::new("t", "s3://b", Duration::from_secs(2));
        guard.check().unwrap();
        guard.renewed(Instant::now() - Duration::from_secs(2));
        assert_eq!(guard.check().unwrap_err().kind, ErrorKind::LeaseLost);
        guard.check_held().unwrap();
        guard.renewed(Instant::now());
        guard.check().unwrap();
        guard.mark_lost("taken over".into());
        assert!(guard
            .check_held()
            .unwrap_err()
            .message
            .contains("taken over"));
    }
}
