//! S3 (or any S3 API) through `object_store`: streaming multipart uploads with bounded memory,
//! retries with backoff, abort on failure. Credentials come from the full AWS chain through
//! `aws-config` (env, profile, SSO, credential_process, web identity, IMDS), bridged into
//! object_store, which on its own lacks profiles, SSO and credential_process.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ClientOptions, CredentialProvider, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;

use super::{ObjectWriter, Store};
use crate::config::target::Encryption;
use crate::config::TargetConfig;
use crate::error::{Error, ErrorKind, Result};

/// Multipart part size: S3's minimum, so memory per open file stays small.
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploaded concurrently per file (memory per file ≈ PART_SIZE × (this + 1)).
const PART_CONCURRENCY: usize = 2;
/// Refresh cached credentials this long before they expire.
const CREDENTIAL_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// An S3 bucket.
pub(crate) struct S3Store {
    store: Arc<dyn ObjectStore>,
    bucket: String,
}

/// Maps an object_store error to our kinds, naming bucket/credential problems with their fixes.
fn s3_error(bucket: &str, what: &str, e: object_store::Error) -> Error {
    let text = one_line(&e.to_string());
    let (kind, fix) = match &e {
        object_store::Error::NotFound { .. } => (
            ErrorKind::TargetAccess,
            format!("create bucket {bucket} or fix [target] url (and endpoint/region)"),
        ),
        object_store::Error::Unauthenticated { .. } => (
            ErrorKind::TargetAccess,
            "configure AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, SSO login, or an instance role)".to_string(),
        ),
        object_store::Error::PermissionDenied { .. } => (
            ErrorKind::TargetAccess,
            format!("grant s3:ListBucket on {bucket} and s3:PutObject/s3:DeleteObject on {bucket}/* to these credentials"),
        ),
        _ if text.contains("NoSuchBucket") || (what == "list" && text.contains("404 Not Found")) => (
            ErrorKind::TargetAccess,
            format!("create bucket {bucket} or fix [target] url (and endpoint/region)"),
        ),
        _ if text.contains("AccessDenied") || text.contains("InvalidAccessKeyId") || text.contains("credential") => (
            ErrorKind::TargetAccess,
            "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO login) and the bucket policy".to_string(),
        ),
        _ => (
            ErrorKind::TargetWrite,
            "check the endpoint and network; the request was retried with backoff before giving up".to_string(),
        ),
    };
    Error::new(
        kind,
        format!("S3 {what} on bucket {bucket} failed: {text}"),
        fix,
    )
    .with_source(e)
}

/// Keeps an S3 error on one line: drops the XML body but keeps its `Code` and `Message`.
fn one_line(text: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find('<')? + start;
        Some(text[start..end].to_string())
    };
    let head = text
        .split("<?xml")
        .next()
        .unwrap_or(text)
        .trim()
        .trim_end_matches(':');
    let mut out = head.split_whitespace().collect::<Vec<_>>().join(" ");
    if let (Some(code), Some(message)) = (tag("Code"), tag("Message")) {
        out.push_str(&format!(" ({code}: {message})"));
    }
    out
}

impl S3Store {
    /// Builds the client: region/endpoint from the task file, else from the AWS chain
    /// (`AWS_REGION`, `AWS_ENDPOINT_URL`, profile); path-style for custom endpoints.
    pub(crate) async fn open(bucket: &str, target: &TargetConfig) -> Result<S3Store> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &target.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_retry(RetryConfig {
                max_retries: target.max_retries,
                retry_timeout: target.retry_timeout,
                ..RetryConfig::default()
            });
        if let Some(provider) = sdk.credentials_provider() {
            builder = builder.with_credentials(Arc::new(AwsChainCredentials {
                provider,
                cache: tokio::sync::Mutex::new(None),
            }));
        }
        let endpoint = target
            .endpoint
            .clone()
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        let allow_http = endpoint.as_ref().is_some_and(|e| e.starts_with("http://"));
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let settings = &target.settings;
        builder = match &settings.encryption {
            Encryption::SseKms(key) => builder.with_sse_kms_encryption(key),
            Encryption::SseS3 => builder.with_config(
                "aws_server_side_encryption"
                    .parse()
                    .map_err(|e| Error::internal(format!("S3 encryption key: {e}")))?,
                "AES256",
            ),
        };
        // object_store has no per-request ACL or expected-owner option; both headers are valid
        // on (or ignored by) every S3 operation we issue, so they go on all requests.
        let mut headers = http::HeaderMap::new();
        if let Some(acl) = &settings.canned_acl {
            headers.insert("x-amz-acl", header_value(acl)?);
        }
        if let Some(owner) = &settings.expected_bucket_owner {
            headers.insert("x-amz-expected-bucket-owner", header_value(owner)?);
        }
        // One ClientOptions for everything: setting it replaces earlier client flags.
        builder = builder.with_client_options(
            ClientOptions::new()
                .with_default_headers(headers)
                .with_allow_http(allow_http),
        );
        let store = builder.build().map_err(|e| {
            Error::config(
                format!("cannot configure S3 client: {e}"),
                "check [target] url, endpoint and region",
            )
        })?;
        Ok(S3Store {
            store: Arc::new(store),
            bucket: bucket.to_string(),
        })
    }
}

/// A header value from a validated setting.
fn header_value(s: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(s).map_err(|_| {
        Error::config(
            format!("{s:?} is not a valid header value"),
            "fix the setting",
        )
    })
}

#[async_trait]
impl Store for S3Store {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let writer = BufWriter::with_capacity(self.store.clone(), Path::from(key), PART_SIZE)
            .with_max_concurrency(PART_CONCURRENCY);
        Ok(Box::new(S3Writer {
            writer,
            done: false,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            written: 0,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix_path = Path::from(prefix.trim_end_matches('/'));
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix_path))
            .try_collect()
            .await
            .map_err(|e| s3_error(&self.bucket, "list", e))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| m.location.to_string())
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_error(&self.bucket, "check", e)),
        }
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        let paths: Vec<object_store::Result<Path>> =
            keys.iter().map(|k| Ok(Path::from(k.as_str()))).collect();
        let paths = futures::stream::iter(paths);
        self.store
            .delete_stream(Box::pin(paths))
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(s3_error(&self.bucket, "delete", e)),
            })
    }

    async fn remove_abandoned(&self, _prefix: &str) -> Result<usize> {
        // Incomplete multipart uploads are invisible; object_store cannot list them, so they are
        // left to the bucket's AbortIncompleteMultipartUpload lifecycle rule (see README).
        Ok(0)
    }

    async fn check_writable(&self, folder: &str) -> Result<()> {
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        self.list(&prefix).await?;
        let key = format!("{prefix}.tributary-probe-{}", uuid::Uuid::new_v4().simple());
        let mut w = self.create(&key).await?;
        w.write(Bytes::from_static(b"probe")).await?;
        w.finish().await?;
        self.delete(&[key]).await
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}

/// One object: small objects go up in one PUT at `finish`, larger ones as a multipart upload
/// completed at `finish`. Either way nothing is visible under the key before then.
struct S3Writer {
    writer: BufWriter,
    /// Set once the upload was completed or aborted: BufWriter panics on a second abort.
    done: bool,
    bucket: String,
    key: String,
    written: u64,
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.written += data.len() as u64;
        if let Err(e) = self.writer.put(data).await {
            self.done = true;
            let _ = self.writer.abort().await;
            return Err(s3_error(
                &self.bucket,
                &format!("upload of {}", self.key),
                e,
            ));
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        if self.done {
            return Err(Error::internal("finish after a failed upload"));
        }
        self.done = true;
        // On failure the multipart upload has already been aborted by object_store.
        if let Err(e) = self.writer.shutdown().await {
            return Err(Error::new(
                ErrorKind::TargetWrite,
                format!("S3 upload of {} to bucket {} failed: {e}", self.key, self.bucket),
                "check the endpoint, network and permissions; the upload was aborted and nothing is visible under the key",
            )
            .with_source(e));
        }
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        self.writer
            .abort()
            .await
            .map_err(|e| s3_error(&self.bucket, &format!("abort of {}", self.key), e))
    }
}

/// object_store credentials from the aws-config chain, cached until shortly before expiry
/// (object_store asks for credentials on every request).
#[derive(Debug)]
struct AwsChainCredentials {
    provider: SharedCredentialsProvider,
    cache: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait]
impl CredentialProvider for AwsChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cache = self.cache.lock().await;
        if let Some((cred, expiry)) = cache.as_ref() {
            let fresh = expiry.is_none_or(|e| e > SystemTime::now() + CREDENTIAL_REFRESH_MARGIN);
            if fresh {
                return Ok(cred.clone());
            }
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Unauthenticated {
                path: String::new(),
                source: format!("no AWS credentials found ({e})").into(),
            }
        })?;
        let cred = Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        });
        *cache = Some((cred.clone(), creds.expiry()));
        Ok(cred)
    }
}
