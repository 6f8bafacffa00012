//! The target store as a run sees it: every publication (an object's completion) and every
//! deletion first checks that the task's lease is still this process's, so a process that lost
//! it cannot make a data object visible or remove one after the loss.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::lease::Guard;
use crate::error::Result;
use crate::store::{ObjectWriter, Store};

/// A store whose writes are fenced by the task's lease.
pub(crate) struct Fenced {
    /// The target.
    inner: Box<dyn Store>,
    /// The lease's guard.
    guard: Arc<Guard>,
}

impl Fenced {
    /// Fences `inner` with `guard`.
    pub(crate) fn new(inner: Box<dyn Store>, guard: Arc<Guard>) -> Fenced {
        Fenced { inner, guard }
    }

    fn wrap(&self, inner: Box<dyn ObjectWriter>) -> Box<dyn ObjectWriter> {
        Box::new(FencedWriter {
            inner,
            guard: self.guard.clone(),
        })
    }
}

#[async_trait]
impl Store for Fenced {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(self.wrap(self.inner.create(key).await?))
    }

    async fn create_tagged(
        &self,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<Box<dyn ObjectWriter>> {
        Ok(self.wrap(self.inner.create_tagged(key, tags).await?))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.guard.check()?;
        self.inner.delete(keys).await
    }

    async fn remove_abandoned(&self, prefix: &str) -> Result<usize> {
        self.guard.check()?;
        self.inner.remove_abandoned(prefix).await
    }

    async fn check_writable(&self, folder: &str) -> Result<()> {
        self.inner.check_writable(folder).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// An object that becomes visible only while the lease holds.
struct FencedWriter {
    inner: Box<dyn ObjectWriter>,
    guard: Arc<Guard>,
}

#[async_trait]
impl ObjectWriter for FencedWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.inner.write(data).await
    }

    async fn finish(self: Box<Self>) -> Result<u64> {
        if let Err(e) = self.guard.check() {
            let _ = self.inner.abort().await;
            return Err(e);
        }
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }

    fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}
