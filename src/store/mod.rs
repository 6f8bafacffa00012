//! Object stores: where finished files land. Two implementations, a local folder and S3.

mod local;
mod s3;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::{TargetConfig, TargetLocation};
use crate::error::Result;

pub(crate) use local::LocalStore;
pub(crate) use s3::{Expect, S3Store};

/// A store of objects addressed by `/`-separated keys.
///
/// Contract: an object becomes visible under its key only when [`ObjectWriter::finish`] returns
/// `Ok`, and is then durable (fsynced, or acknowledged by S3). A writer that is aborted, dropped
/// or fails leaves nothing under the key (a local temporary file is removed; an S3 multipart
/// upload is aborted). Writing a key that exists replaces it whole.
#[async_trait]
pub(crate) trait Store: Send + Sync {
    /// Starts an object; bytes are streamed through the returned writer.
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;
    /// Starts an object that carries `tags` (S3 object tags). A store without tags (a local
    /// folder) writes the object without them.
    async fn create_tagged(
        &self,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<Box<dyn ObjectWriter>> {
        let _ = tags;
        self.create(key).await
    }
    /// Keys of all objects whose key starts with `prefix` (a folder prefix ending in `/`), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// True when a finished object exists under `key` (resolves a CDC file whose upload may have
    /// been cut off by a crash).
    async fn exists(&self, key: &str) -> Result<bool>;
    /// Deletes the given objects; missing ones are not an error.
    async fn delete(&self, keys: &[String]) -> Result<()>;
    /// Removes leftovers of writers that never finished or aborted (a process killed with
    /// SIGKILL) anywhere under `prefix`; returns how many were removed. Never touches finished
    /// objects; callers make sure no writer of theirs is open under `prefix`.
    async fn remove_abandoned(&self, prefix: &str) -> Result<usize>;
    /// Checks that the bucket or folder exists and can be listed and written (writes and removes
    /// a probe object outside any table folder).
    async fn check_writable(&self, folder: &str) -> Result<()>;
    /// Human-readable location for messages (`s3://bucket`, `file:///path`).
    fn describe(&self) -> String;
}

/// One object being written. Memory held is bounded by the implementation's part size.
#[async_trait]
pub(crate) trait ObjectWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Completes the object and makes it visible; returns its size in bytes.
    async fn finish(self: Box<Self>) -> Result<u64>;
    /// Discards the object; nothing becomes visible.
    async fn abort(self: Box<Self>) -> Result<()>;
    /// Bytes the writer holds in memory (buffered and in-flight parts).
    fn buffered(&self) -> usize {
        0
    }
}

/// Opens the store a target names.
pub(crate) async fn open(target: &TargetConfig) -> Result<Box<dyn Store>> {
    Ok(match &target.location {
        TargetLocation::Local(root) => Box::new(LocalStore::new(root.clone())),
        TargetLocation::S3 { bucket } => Box::new(S3Store::open(bucket, target).await?),
    })
}

/// Deletes everything under `prefix` and returns how many objects went.
pub(crate) async fn delete_prefix(store: &dyn Store, prefix: &str) -> Result<usize> {
    let keys = store.list(prefix).await?;
    store.delete(&keys).await?;
    Ok(keys.len())
}
