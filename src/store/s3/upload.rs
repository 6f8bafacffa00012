//! One object upload with bounded memory: a single PUT for an object smaller than one part, else
//! a multipart upload driven through object_store's low-level [`MultipartStore`] API, with the
//! part list kept here so that the completion can be retried and checked (object_store's
//! high-level `MultipartUpload::complete` drains its part list and cannot be retried).
//!
//! Keys we write are always fresh: a table's LOAD files are deleted before the table is (re)loaded
//! and CDC file names strictly increase. So after a completion whose outcome is uncertain (reply
//! lost, `NoSuchUpload` for a retried completion that had in fact been applied, a cut reply), an
//! object under the key with exactly the size we wrote is ours, and the upload counts as done.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    MultipartId, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, TagSet,
};
use tokio::task::JoinSet;

use super::retry::{retry, transient, RetryPolicy};
use super::{one_line, s3_error};
use crate::error::{Error, ErrorKind, Result};
use crate::store::ObjectWriter;

/// Multipart part size: S3's minimum, so memory per open file stays small.
pub(super) const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploaded concurrently per file: memory per file ≤ PART_SIZE × (this + 1).
const PART_CONCURRENCY: usize = 2;

/// What every writer of one store shares.
pub(super) struct Shared {
    /// The client (concrete type: the multipart calls need [`MultipartStore`]).
    pub(crate) store: Arc<AmazonS3>,
    /// Bucket name, for messages.
    pub(crate) bucket: String,
    /// Our retry layer's policy.
    pub(crate) policy: RetryPolicy,
}

/// A multipart upload in progress.
struct Upload {
    id: MultipartId,
    /// One entry per part sent, filled in as each part is acknowledged.
    parts: Vec<Option<PartId>>,
    /// Part uploads running (at most [`PART_CONCURRENCY`]); dropping the set cancels them.
    in_flight: JoinSet<(usize, object_store::Result<PartId>)>,
}

/// One object being written to S3 (see the module comment).
pub(super) struct S3Writer {
    shared: Arc<Shared>,
    /// Object tags, sent with the PUT or the multipart upload's creation.
    tags: TagSet,
    key: String,
    path: Path,
    /// Bytes not yet sent: less than one part between calls.
    pending: VecDeque<Bytes>,
    pending_len: usize,
    upload: Option<Upload>,
    /// Bytes written so far: the object's size once finished.
    written: u64,
    /// Set once the object was finished or given up: later calls do nothing and drop aborts
    /// nothing.
    done: bool,
}

impl S3Writer {
    /// A writer for `key`; nothing is sent before a full part or `finish`.
    pub(super) fn new(shared: Arc<Shared>, key: &str, tags: &[(String, String)]) -> S3Writer {
        let mut set = TagSet::default();
        for (k, v) in tags {
            set.push(k, v);
        }
        S3Writer {
            tags: set,
            shared,
            key: key.to_string(),
            path: Path::from(key),
            pending: VecDeque::new(),
            pending_len: 0,
            upload: None,
            written: 0,
            done: false,
        }
    }

    /// Takes the first `n` pending bytes as one payload (no copy: the chunks are shared).
    fn take(&mut self, mut n: usize) -> PutPayload {
        let mut chunks = Vec::new();
        while n > 0 {
            let mut chunk = self.pending.pop_front().expect("n ≤ pending_len");
            if chunk.len() > n {
                self.pending.push_front(chunk.split_off(n));
            }
            n -= chunk.len();
            self.pending_len -= chunk.len();
            chunks.push(chunk);
        }
        chunks.into_iter().collect()
    }

    /// Sends one part, starting the multipart upload first if needed; waits while
    /// [`PART_CONCURRENCY`] parts are in flight.
    async fn send_part(&mut self, payload: PutPayload) -> Result<()> {
        let shared = self.shared.clone();
        if self.upload.is_none() {
            // A lost reply to a create is retried as a new upload; the orphan is invisible and
            // left to the bucket's AbortIncompleteMultipartUpload lifecycle rule (see README).
            let what = format!("start of the upload of {}", self.key);
            let opts = PutMultipartOptions {
                tags: self.tags.clone(),
                ..Default::default()
            };
            let id = retry(&shared.policy, &what, || {
                shared.store.create_multipart_opts(&self.path, opts.clone())
            })
            .await
            .map_err(|e| self.failed("start of the upload", e, false))?;
            self.upload = Some(Upload {
                id,
                parts: Vec::new(),
                in_flight: JoinSet::new(),
            });
        }
        while self.upload.as_ref().expect("started").in_flight.len() >= PART_CONCURRENCY {
            self.join_one().await?;
        }
        let upload = self.upload.as_mut().expect("started");
        let index = upload.parts.len();
        upload.parts.push(None);
        let (path, id) = (self.path.clone(), upload.id.clone());
        let what = format!("upload of part {} of {}", index + 1, self.key);
        upload.in_flight.spawn(async move {
            let part = retry(&shared.policy, &what, || {
                shared.store.put_part(&path, &id, index, payload.clone())
            })
            .await;
            (index, part)
        });
        Ok(())
    }

    /// Waits for one in-flight part and records it.
    async fn join_one(&mut self) -> Result<()> {
        let upload = self.upload.as_mut().expect("started");
        match upload.in_flight.join_next().await {
            None => Ok(()),
            Some(Ok((index, Ok(part)))) => {
                upload.parts[index] = Some(part);
                Ok(())
            }
            Some(Ok((index, Err(e)))) => {
                Err(self.failed(&format!("upload of part {}", index + 1), e, false))
            }
            Some(Err(e)) => Err(Error::internal(format!("S3 part upload task failed: {e}"))),
        }
    }

    /// Gives up on the upload: cancels the parts in flight and aborts the multipart upload so
    /// nothing becomes visible and no parts are billed. One request (with object_store's own
    /// retries), not a whole budget more: an upload left open is invisible, and the bucket's
    /// AbortIncompleteMultipartUpload lifecycle rule removes it.
    async fn give_up(&mut self) {
        self.done = true;
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        upload.in_flight.abort_all();
        while upload.in_flight.join_next().await.is_some() {}
        match self
            .shared
            .store
            .abort_multipart(&self.path, &upload.id)
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(key = %self.key, "S3 multipart upload not aborted ({}); the bucket's AbortIncompleteMultipartUpload lifecycle rule removes it", one_line(&e.to_string()))
            }
        }
    }

    /// The error for a failed step that made nothing visible (`visible` false), or whose object
    /// may be visible.
    fn failed(&self, step: &str, e: object_store::Error, visible: bool) -> Error {
        let fix = if visible {
            "an object may still be visible under the key; the next run of the task deletes it (full load) or counts it as written (CDC); check the endpoint and network, or raise [target] retry_timeout_seconds"
        } else {
            "the upload was aborted and nothing is visible under the key; check the endpoint, network and permissions, or raise [target] retry_timeout_seconds"
        };
        // A vanished upload is a 404 like a missing bucket, but the fix is not to create one.
        let gone = e.to_string().contains("NoSuchUpload");
        let mut err = s3_error(&self.shared.bucket, &format!("{step} of {}", self.key), e);
        if gone {
            err.kind = ErrorKind::TargetWrite;
            err.fix = "the multipart upload was removed by something else (a lifecycle rule or another process) and nothing is visible under the key; rerun the task".to_string();
        } else if err.kind == ErrorKind::TargetWrite {
            err.fix = fix.to_string();
        }
        err
    }

    /// The object's size, or None when no object exists under the key (one request, with
    /// object_store's own retries).
    async fn head_size(&self) -> object_store::Result<Option<u64>> {
        match self.shared.store.head(&self.path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Completes the multipart upload, idempotently: after any failure the object is looked at,
    /// and an object of our size under our fresh key means an earlier attempt was applied.
    async fn complete(&mut self, parts: Vec<PartId>) -> Result<u64> {
        let shared = self.shared.clone();
        let id = self.upload.as_ref().expect("started").id.clone();
        let what = format!("completion of the upload of {}", self.key);
        let mut retry = shared.policy.start();
        // Why the last check of the object failed, if it did.
        let mut unchecked: Option<String>;
        let last = loop {
            let e = match shared
                .store
                .complete_multipart(&self.path, &id, parts.clone())
                .await
            {
                Ok(_) => {
                    self.done = true;
                    return Ok(self.written);
                }
                Err(e) => e,
            };
            let mut cause = one_line(&e.to_string());
            unchecked = None;
            match self.head_size().await {
                Ok(Some(size)) if size == self.written => {
                    tracing::info!(key = %self.key, "S3 completion failed ({cause}) but the object is complete: an earlier attempt was applied");
                    self.done = true;
                    return Ok(self.written);
                }
                Ok(Some(size)) => {
                    self.give_up().await;
                    return Err(Error::new(
                        ErrorKind::TargetWrite,
                        format!("S3 completion of {} on bucket {} failed ({cause}) and an object of {size} bytes, not the {} written, is under the key", self.key, shared.bucket, self.written),
                        "another process writes to the same folder: give each task its own bucket folder, then rerun",
                    ));
                }
                // Refused for good (no such upload any more, invalid part) and nothing visible.
                Ok(None) if !transient(&e) => {
                    self.give_up().await;
                    return Err(self.failed("completion of the upload", e, false));
                }
                Ok(None) => {}
                Err(head) => {
                    let head = one_line(&head.to_string());
                    cause = format!("{cause}; checking the object failed too: {head}");
                    unchecked = Some(head);
                }
            }
            if !retry.wait(&what, &cause).await {
                break e;
            }
        };
        // The outcome stays unknown: remove whatever may be visible, then say what is true.
        self.give_up().await;
        let deleted = shared.store.delete(&self.path).await.or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(e),
        });
        let secs = retry.elapsed().as_secs();
        let mut err = self.failed("completion of the upload", last, deleted.is_err());
        err.message = format!(
            "{} (outcome unknown after {secs} s of retries{}; {})",
            err.message,
            unchecked.map_or(String::new(), |h| format!(
                ", and checking the object failed: {h}"
            )),
            if deleted.is_ok() {
                "the key was deleted"
            } else {
                "deleting the key failed too"
            }
        );
        Err(err)
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    fn buffered(&self) -> usize {
        // Bytes waiting for a part, and the parts in flight (each at most one part).
        let in_flight = self.upload.as_ref().map_or(0, |u| u.in_flight.len());
        self.pending_len + in_flight * PART_SIZE
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        if self.done {
            return Err(Error::internal("write after the S3 upload ended"));
        }
        self.written += data.len() as u64;
        self.pending_len += data.len();
        self.pending.push_back(data);
        while self.pending_len >= PART_SIZE {
            let part = self.take(PART_SIZE);
            if let Err(e) = self.send_part(part).await {
                self.give_up().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        if self.done {
            return Err(Error::internal("finish after the S3 upload ended"));
        }
        if self.upload.is_none() {
            // Smaller than one part: one PUT, idempotent (it replaces the object whole).
            self.done = true;
            let payload = self.take(self.pending_len);
            let shared = self.shared.clone();
            let what = format!("upload of {}", self.key);
            let opts = PutOptions {
                tags: self.tags.clone(),
                ..Default::default()
            };
            return match retry(&shared.policy, &what, || {
                shared
                    .store
                    .put_opts(&self.path, payload.clone(), opts.clone())
            })
            .await
            {
                Ok(_) => Ok(self.written),
                // A PUT refused for good was not applied; one that kept failing may have been.
                Err(e) => {
                    let visible = transient(&e) && shared.store.delete(&self.path).await.is_err();
                    Err(self.failed("upload", e, visible))
                }
            };
        }
        if self.pending_len > 0 {
            let part = self.take(self.pending_len);
            if let Err(e) = self.send_part(part).await {
                self.give_up().await;
                return Err(e);
            }
        }
        while !self.upload.as_ref().expect("started").in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                self.give_up().await;
                return Err(e);
            }
        }
        let parts = self.upload.as_ref().expect("started").parts.iter();
        let parts: Vec<PartId> = parts.map(|p| p.clone().expect("joined")).collect();
        self.complete(parts).await
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if !self.done {
            self.give_up().await;
        }
        Ok(())
    }
}

impl Drop for S3Writer {
    /// A writer dropped mid-upload (task cancelled, panic): abort the upload in the background,
    /// best effort (dropping `in_flight` cancels the parts).
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (Some(upload), Ok(runtime)) =
            (self.upload.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (store, path) = (self.shared.store.clone(), self.path.clone());
        drop(upload.in_flight);
        runtime.spawn(async move {
            let _ = store.abort_multipart(&path, &upload.id).await;
        });
    }
}
