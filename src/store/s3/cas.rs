//! Conditional writes for the task's state object: a PUT that only lands when the object is
//! still absent (`If-None-Match: *`) or still the version we last wrote (`If-Match: <ETag>`).
//! S3 has honoured both since 2024; moto (the test server) does too.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::retry::retry;
use super::{s3_error, S3Store};
use crate::error::{Error, Result};

/// What a conditional PUT requires of the object it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// No object under the key.
    Absent,
    /// The object with this ETag.
    Version(String),
}

impl S3Store {
    /// The object under `key` with its ETag; None when there is none.
    pub(crate) async fn read_versioned(&self, key: &str) -> Result<Option<(Bytes, String)>> {
        let s = &self.shared;
        let path = Path::from(key);
        let got = retry(&s.policy, &format!("read of {key}"), || async {
            let r = s.store.get(&path).await?;
            let etag = r.meta.e_tag.clone();
            Ok((r.bytes().await?, etag))
        })
        .await;
        match got {
            Ok((bytes, Some(etag))) => Ok(Some((bytes, etag))),
            Ok((_, None)) => Err(Error::internal(format!(
                "S3 returned {key} without an ETag: conditional writes need one"
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_error(&s.bucket, "read", e)),
        }
    }

    /// Writes `body` under `key` only if the object is as `expect` says. Returns the new ETag, or
    /// None when the condition failed: another writer got there first.
    pub(crate) async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        expect: &Expect,
    ) -> Result<Option<String>> {
        let s = &self.shared;
        let path = Path::from(key);
        let mode = match expect {
            Expect::Absent => PutMode::Create,
            Expect::Version(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.clone()),
                version: None,
            }),
        };
        let put = retry(&s.policy, &format!("conditional write of {key}"), || {
            let opts = PutOptions {
                mode: mode.clone(),
                ..PutOptions::default()
            };
            s.store
                .put_opts(&path, PutPayload::from(body.clone()), opts)
        })
        .await;
        match put {
            Ok(r) => r
                .e_tag
                .map(Some)
                .ok_or_else(|| Error::internal(format!("S3 wrote {key} but returned no ETag"))),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                // A retried write whose first attempt landed (its reply lost) fails its own
                // condition: the object then holds exactly our bytes.
                Ok(match self.read_versioned(key).await? {
                    Some((now, etag)) if now == body => Some(etag),
                    _ => None,
                })
            }
            Err(e) => Err(s3_error(&s.bucket, "conditional write", e)),
        }
    }
}
