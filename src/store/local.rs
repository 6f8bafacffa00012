//! A local folder as the target: write to a hidden temporary file beside the final name, fsync,
//! rename, fsync the folder. Readers never see a partial file; a crash leaves at most a hidden
//! `.<name>.tmp-<uuid>` file, which `list` ignores.
//!
//! Hand-written rather than object_store's `LocalFileSystem` because that one does not fsync the
//! file or the folder before reporting success, and our checkpoints rely on "finished = durable".

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{ObjectWriter, Store};
use crate::error::{Error, ErrorKind, Result};

/// Prefix of temporary files; `list` skips names starting with it.
const TMP_PREFIX: char = '.';
/// Start background writeback (`fdatasync` on a cloned handle) every this many bytes, so the
/// final fsync of a large file finds little left to flush.
const WRITEBACK_EVERY: u64 = 64 * 1024 * 1024;

/// A folder on the local file system.
pub(crate) struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    pub(crate) fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

/// Maps an I/O error to our error, naming disk-full and permission problems with their fixes.
fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    let (kind, fix) = match e.kind() {
        IoKind::StorageFull => (
            ErrorKind::TargetWrite,
            "free disk space or point [target] url at a larger volume".to_string(),
        ),
        IoKind::PermissionDenied | IoKind::ReadOnlyFilesystem => (
            ErrorKind::TargetAccess,
            format!("make {} writable for this user", path.display()),
        ),
        _ => (
            ErrorKind::TargetWrite,
            "check the target folder".to_string(),
        ),
    };
    Error::new(kind, format!("cannot {what} {}: {e}", path.display()), fix).with_source(e)
}

#[async_trait]
impl Store for LocalStore {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let final_path = self.path(key);
        let dir = final_path
            .parent()
            .ok_or_else(|| Error::internal(format!("object key {key:?} has no folder")))?
            .to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error("create folder", &dir, e))?;
        let name = final_path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::internal(format!("object key {key:?} has no file name")))?;
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{name}.tmp-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_error("create", &tmp, e))?;
        Ok(Box::new(LocalWriter {
            file: Some(file),
            tmp,
            final_path,
            dir,
            written: 0,
            synced_at: 0,
            writeback: None,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            // Walk from the deepest existing folder the prefix names.
            let start = match prefix.rfind('/') {
                Some(i) => root.join(&prefix[..i]),
                None => root.clone(),
            };
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == IoKind::NotFound => continue,
                    Err(e) => return Err(io_error("list", &dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_error("list", &dir, e))?;
                    let path = entry.path();
                    let hidden = entry.file_name().to_string_lossy().starts_with(TMP_PREFIX);
                    let file_type = entry.file_type().map_err(|e| io_error("stat", &path, e))?;
                    if file_type.is_dir() {
                        stack.push(path);
                    } else if !hidden {
                        let rel = path.strip_prefix(&root).unwrap_or(&path);
                        let key = rel
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| Error::internal(format!("listing task failed: {e}")))?
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(false),
            Err(e) => Err(io_error("check", &path, e)),
        }
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let path = self.path(key);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(io_error("delete", &path, e)),
            }
        }
        Ok(())
    }

    async fn remove_abandoned(&self, prefix: &str) -> Result<usize> {
        let mut stack = vec![self.path(prefix.trim_end_matches('/'))];
        let mut removed = 0;
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == IoKind::NotFound => continue,
                Err(e) => return Err(io_error("list", &dir, e)),
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                } else if name.starts_with(TMP_PREFIX) && name.contains(".tmp-") {
                    std::fs::remove_file(entry.path())
                        .map_err(|e| io_error("remove", &entry.path(), e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    async fn check_writable(&self, folder: &str) -> Result<()> {
        let key = format!(
            "{}{TMP_PREFIX}tributary-probe-{}",
            if folder.is_empty() {
                String::new()
            } else {
                format!("{folder}/")
            },
            uuid::Uuid::new_v4().simple()
        );
        let mut w = self.create(&key).await?;
        w.write(Bytes::from_static(b"probe")).await?;
        w.abort().await
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// A file being written under a temporary name.
struct LocalWriter {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    written: u64,
    /// `written` when the last background writeback started.
    synced_at: u64,
    /// The background writeback in flight, if any.
    writeback: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl LocalWriter {
    /// Starts a background `fdatasync` when enough bytes were written since the last one and
    /// none is running; its errors surface at `finish`, whose fsync repeats the work anyway.
    async fn maybe_writeback(&mut self) {
        if self.written - self.synced_at < WRITEBACK_EVERY
            || self.writeback.as_ref().is_some_and(|h| !h.is_finished())
        {
            return;
        }
        let Some(file) = self.file.as_ref() else {
            return;
        };
        if let Ok(clone) = file.try_clone().await {
            let std_file = clone.into_std().await;
            self.synced_at = self.written;
            self.writeback = Some(tokio::task::spawn_blocking(move || std_file.sync_data()));
        }
    }
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::internal("write after finish"))?;
        file.write_all(&data)
            .await
            .map_err(|e| io_error("write", &self.tmp, e))?;
        self.written += data.len() as u64;
        self.maybe_writeback().await;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        if let Some(h) = self.writeback.take() {
            let _ = h.await;
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::internal("finish twice"))?;
        file.flush()
            .await
            .map_err(|e| io_error("flush", &self.tmp, e))?;
        file.sync_all()
            .await
            .map_err(|e| io_error("fsync", &self.tmp, e))?;
        drop(file);
        tokio::fs::rename(&self.tmp, &self.final_path)
            .await
            .map_err(|e| io_error("rename into place", &self.final_path, e))?;
        let dir = self.dir.clone();
        // The rename is durable only once the folder entry is on disk.
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
            .await
            .map_err(|e| Error::internal(format!("fsync task failed: {e}")))?
            .map_err(|e| io_error("fsync folder", &self.dir, e))?;
        self.tmp = PathBuf::new();
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.file.take();
        let tmp = std::mem::take(&mut self.tmp);
        match tokio::fs::remove_file(&tmp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &tmp, e)),
        }
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Dropped without finish/abort (cancelled task, panic): leave no temporary file behind.
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finish_makes_visible_abort_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        let mut w = store.create("a/b/LOAD00000001.csv").await.unwrap();
        w.write(Bytes::from_static(b"1,x\n")).await.unwrap();
        assert!(
            store.list("a/").await.unwrap().is_empty(),
            "visible before finish"
        );
        assert_eq!(w.finish().await.unwrap(), 4);
        assert_eq!(
            store.list("a/b/").await.unwrap(),
            vec!["a/b/LOAD00000001.csv"]
        );

        let mut w = store.create("a/b/LOAD00000002.csv").await.unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        w.abort().await.unwrap();
        let w = store.create("a/b/LOAD00000003.csv").await.unwrap();
        drop(w);
        let all: Vec<_> = std::fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(all.len(), 1, "temporary files left behind");

        std::fs::write(dir.path().join("a/b/.LOAD00000009.csv.tmp-dead"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("a/b/2022/05")).unwrap();
        std::fs::write(dir.path().join("a/b/2022/05/.x.csv.tmp-dead"), "x").unwrap();
        assert_eq!(store.remove_abandoned("a/b/").await.unwrap(), 2);
        store.check_writable("a").await.unwrap();
        assert_eq!(
            crate::store::delete_prefix(&store, "a/b/").await.unwrap(),
            1
        );
        assert!(store.list("").await.unwrap().is_empty());
    }
}
