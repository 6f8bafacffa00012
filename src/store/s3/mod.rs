//! S3 (or any S3 API) through `object_store`: streaming uploads with bounded memory
//! ([`upload`]), retries with backoff within a time budget ([`retry`]), abort on failure.
//! Credentials come from the full AWS chain through `aws-config` (env, profile, SSO,
//! credential_process, web identity, IMDS), bridged into object_store, which on its own lacks
//! profiles, SSO and credential_process.
//!
//! Retries happen in two layers:
//! - object_store retries one HTTP request on what it can classify (5xx, 429, refused or reset
//!   connections) for at most [`REQUEST_RETRIES`] retries within [`REQUEST_RETRY_TIMEOUT`],
//!   waiting 100 ms to 1 s: quick blips cost little, and a signed request is never replayed for
//!   long. Each request has object_store's default 30 s timeout (5 s to connect).
//! - Our layer ([`retry`]) retries each whole operation (list, HEAD, delete, PUT, one part,
//!   creating and completing a multipart upload) on every failure that is not a definite refusal,
//!   including the cut response bodies object_store never retries, with exponential backoff
//!   (0.5 s doubling to 20 s, equal jitter) until `[target] retry_timeout_seconds` (default
//!   [`DEFAULT_S3_RETRY_TIMEOUT_S`] = 300 s) has passed since the operation started, or
//!   `[target] max_retries` (default [`DEFAULT_S3_MAX_RETRIES`], more than fit in the budget).
//!
//! So an operation gives up no earlier than the budget after its start while S3 keeps failing,
//! and no later than the budget plus one last attempt (REQUEST_RETRY_TIMEOUT plus a request
//! timeout, ~40 s; a completion adds one HEAD of the same bound). A table load fails only when
//! one operation exhausts its budget: an S3 outage shorter than the budget minus the last wait
//! (≤ 20 s) is ridden out. With the defaults: 300 s, ~20–36 retries per operation.
//!
//! [`DEFAULT_S3_RETRY_TIMEOUT_S`]: crate::config::DEFAULT_S3_RETRY_TIMEOUT_S
//! [`DEFAULT_S3_MAX_RETRIES`]: crate::config::DEFAULT_S3_MAX_RETRIES

mod cas;
mod retry;
mod upload;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, CredentialProvider, ObjectStore, ObjectStoreExt, RetryConfig,
};

use super::{ObjectWriter, Store};
use crate::config::target::Encryption;
use crate::config::TargetConfig;
use crate::error::{Error, ErrorKind, Result};
pub(crate) use cas::Expect;
use retry::{retry, RetryPolicy};
use upload::{S3Writer, Shared};

/// object_store's retries of one HTTP request (fewer when `[target] max_retries` is lower).
const REQUEST_RETRIES: usize = 3;
/// object_store's time limit for retrying one HTTP request (less when the budget is lower).
const REQUEST_RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// object_store's backoff between those request retries: 100 ms doubling, at most 1 s.
const REQUEST_BACKOFF: BackoffConfig = BackoffConfig {
    init_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
    base: 2.0,
};
/// Refresh cached credentials this long before they expire.
const CREDENTIAL_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// An S3 bucket.
pub(crate) struct S3Store {
    shared: Arc<Shared>,
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
            "check the endpoint and network; the request was retried with backoff for [target] retry_timeout_seconds before giving up".to_string(),
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
        let endpoint = target
            .endpoint
            .clone()
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        let region = match (sdk.region(), &endpoint) {
            (Some(r), _) => r.to_string(),
            // S3-compatible servers (MinIO, moto, LocalStack) take any region.
            (None, Some(_)) => "us-east-1".to_string(),
            (None, None) => {
                return Err(Error::config(
                    format!("no AWS region for s3://{bucket}: none in [target] region, AWS_REGION, AWS_DEFAULT_REGION, the AWS profile or the instance metadata"),
                    "set region = \"<the bucket's region>\" in [target], or export AWS_REGION=<the bucket's region>",
                ))
            }
        };
        let policy = RetryPolicy::new(target.retry_timeout, target.max_retries);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_retry(RetryConfig {
                backoff: REQUEST_BACKOFF,
                max_retries: target.max_retries.min(REQUEST_RETRIES),
                retry_timeout: policy.backoff.budget.min(REQUEST_RETRY_TIMEOUT),
            });
        if let Some(provider) = sdk.credentials_provider() {
            // Asked once now, so a missing credential is one clear error before any request.
            let first = provider.provide_credentials().await.map_err(|e| {
                Error::new(
                    ErrorKind::TargetAccess,
                    format!("no AWS credentials for s3://{bucket}: {}", credentials_cause(&e)),
                    "export AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), run aws sso login, or run with an instance or task role",
                )
            })?;
            builder = builder.with_credentials(Arc::new(AwsChainCredentials {
                provider,
                cache: tokio::sync::Mutex::new(Some(to_object_store(&first))),
            }));
        }
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
            shared: Arc::new(Shared {
                store: Arc::new(store),
                bucket: bucket.to_string(),
                policy,
            }),
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
        Ok(Box::new(S3Writer::new(self.shared.clone(), key, &[])))
    }

    async fn create_tagged(
        &self,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3Writer::new(self.shared.clone(), key, tags)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let s = &self.shared;
        let prefix_path = Path::from(prefix.trim_end_matches('/'));
        // A listing cut off midway is retried whole (pages are not resumable here).
        let metas: Vec<_> = retry(&s.policy, &format!("list of {prefix}"), || {
            s.store.list(Some(&prefix_path)).try_collect::<Vec<_>>()
        })
        .await
        .map_err(|e| s3_error(&s.bucket, "list", e))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| m.location.to_string())
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let s = &self.shared;
        let path = Path::from(key);
        match retry(&s.policy, &format!("check of {key}"), || {
            s.store.head(&path)
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_error(&s.bucket, "check", e)),
        }
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        let s = &self.shared;
        let what = format!("delete of {} objects", keys.len());
        retry(&s.policy, &what, || {
            let paths: Vec<object_store::Result<Path>> =
                keys.iter().map(|k| Ok(Path::from(k.as_str()))).collect();
            s.store
                .delete_stream(Box::pin(futures::stream::iter(paths)))
                .try_collect::<Vec<_>>()
        })
        .await
        .map(|_| ())
        .or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(s3_error(&s.bucket, "delete", e)),
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
        format!("s3://{}", self.shared.bucket)
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
                source: format!("no AWS credentials found ({})", credentials_cause(&e)).into(),
            }
        })?;
        let cached = to_object_store(&creds);
        let cred = cached.0.clone();
        *cache = Some(cached);
        Ok(cred)
    }
}

/// object_store's form of `creds`, with their expiry.
fn to_object_store(
    creds: &aws_credential_types::Credentials,
) -> (Arc<AwsCredential>, Option<SystemTime>) {
    (
        Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        }),
        creds.expiry(),
    )
}

/// Why the credential chain found nothing, in one line (the chain's own error nests every
/// provider's failure, IMDS connection errors included).
fn credentials_cause(e: &aws_credential_types::provider::error::CredentialsError) -> String {
    use aws_credential_types::provider::error::CredentialsError;
    match e {
        CredentialsError::CredentialsNotLoaded(_) => {
            "none in the environment, the AWS profile, SSO, web identity or the instance role"
                .to_string()
        }
        CredentialsError::ProviderTimedOut(_) => {
            "the credential provider timed out (instance metadata unreachable?)".to_string()
        }
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}
