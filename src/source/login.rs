//! A source connection's login when AWS provides it: the user, password (and host, port,
//! database) from a Secrets Manager secret in the RDS JSON shape, and RDS IAM database
//! authentication tokens as the password. Both are obtained again for every connection, so a
//! rotated secret or an expired token (they live 15 minutes) never stops a reconnect.
//!
//! AWS is reached through the same aws-config chain as the S3 target (credentials, profile,
//! region; endpoints from `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`). Neither the
//! secret's value nor the token ever enters an error or a log line.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::sync::OnceCell;

use crate::config::source::Auth;
use crate::error::{Error, ErrorKind, Result};

/// How long an IAM authentication token is valid (RDS accepts at most 15 minutes).
const IAM_TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The session name the assumed `SecretsManagerAccessRoleArn` role shows in CloudTrail.
const ROLE_SESSION_NAME: &str = "tributary";

/// The source engine, for its default port and the secret's `engine` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Engine {
    /// The server's default port.
    fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::MySql => 3306,
        }
    }

    /// True when an RDS secret's `engine` names this engine.
    fn accepts(self, engine: &str) -> bool {
        let e = engine.to_ascii_lowercase();
        match self {
            Engine::Postgres => e.contains("postgres"),
            Engine::MySql => e.contains("mysql") || e.contains("mariadb") || e == "aurora",
        }
    }
}

/// A refused login while the login comes from Secrets Manager: a rotation may be half done (the
/// database has the new password, the secret's current version still the old one, until the
/// rotation finishes), so it is retried under the reconnect policy, reading the secret again
/// each time, instead of stopping the task. Other errors pass through.
pub(crate) fn during_rotation(auth: &Auth, mut e: Error) -> Error {
    if auth.secret.is_some() && e.kind == ErrorKind::SourceAuth {
        e.kind = ErrorKind::SourceConnect;
        e.fix = "check the user and password in the Secrets Manager secret (a rotation in progress is retried, reading the secret again)".into();
    }
    e
}

/// The driver URL `driver_url` with the login `auth` asks for filled in (unchanged when the
/// URL holds it all). Called for every connection.
pub(crate) async fn driver_url(driver_url: &str, auth: &Auth, engine: Engine) -> Result<String> {
    if !auth.uses_aws() {
        return Ok(driver_url.to_string());
    }
    let mut url = url::Url::parse(driver_url).map_err(|e| {
        Error::config(
            format!("[source] url is not a URL: {e}"),
            "use postgres://HOST/DATABASE or mysql://HOST/ with the login in the secret",
        )
    })?;
    let sdk = sdk_config().await;
    if let Some(id) = &auth.secret {
        let text = secret_string(sdk, id, auth.secret_role.as_deref()).await?;
        RdsSecret::parse(&text, id, engine)?.apply(&mut url, engine)?;
    }
    if auth.iam {
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
            Error::config(
                "IamDatabaseAuthentication needs the server's host name in [source] url (or the secret)",
                "put the RDS endpoint in [source] url, such as postgres://USER@mydb.abc.us-east-1.rds.amazonaws.com/DB",
            )
        })?;
        let port = url.port().unwrap_or(engine.default_port());
        let user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8_lossy()
            .into_owned();
        if user.is_empty() {
            return Err(Error::config(
                "IamDatabaseAuthentication needs the database user in [source] url (or the secret)",
                "put the user granted rds_iam (PostgreSQL) or AWSAuthenticationPlugin (MySQL) in [source] url: postgres://USER@HOST/DB",
            ));
        }
        let region = rds_region(host)
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .ok_or_else(|| {
                Error::config(
                    format!("no AWS region for the IAM token of {host}: the host is not an RDS endpoint and none is in AWS_REGION, AWS_DEFAULT_REGION or the AWS profile"),
                    "export AWS_REGION=<the database's region>",
                )
            })?;
        let creds = credentials(sdk.credentials_provider(), "an IAM database token").await?;
        let token = iam_token(host, port, &user, &region, &creds, SystemTime::now())?;
        set_password(&mut url, &token)?;
    }
    Ok(url.to_string())
}

/// The process's AWS configuration, loaded once (the region chain may ask the instance
/// metadata, which is slow); its credentials provider caches and refreshes by itself.
async fn sdk_config() -> &'static SdkConfig {
    static SDK: OnceCell<SdkConfig> = OnceCell::const_new();
    SDK.get_or_init(|| aws_config::defaults(aws_config::BehaviorVersion::latest()).load())
        .await
}

/// Credentials from `provider`, for `what`, or the error with the fix.
async fn credentials(
    provider: Option<SharedCredentialsProvider>,
    what: &str,
) -> Result<Credentials> {
    let no_credentials = |cause: String| {
        Error::new(
            ErrorKind::SourceAuth,
            format!("no AWS credentials for {what}: {cause}"),
            "export AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), run aws sso login, or run with an instance or task role",
        )
    };
    let provider = provider.ok_or_else(|| no_credentials("no credential provider".into()))?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| no_credentials(causes(&e)))
}

/// The secret's `SecretString`, read with the task's AWS credentials or, with `role`, those of
/// the role they assume. Its region is the ARN's, else the chain's.
async fn secret_string(sdk: &SdkConfig, id: &str, role: Option<&str>) -> Result<String> {
    let region = arn_region(id)
        .map(aws_config::Region::new)
        .or_else(|| sdk.region().cloned())
        .ok_or_else(|| {
            Error::config(
                format!("no AWS region for Secrets Manager secret {id:?}: none in AWS_REGION, AWS_DEFAULT_REGION or the AWS profile"),
                "give SecretsManagerSecretId as the secret's full ARN, or export AWS_REGION=<the secret's region>",
            )
        })?;
    let mut config = aws_sdk_secretsmanager::config::Builder::from(sdk).region(region.clone());
    if let Some(role) = role {
        let assumed = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name(ROLE_SESSION_NAME)
            .region(region)
            .configure(sdk)
            .build()
            .await;
        config = config.credentials_provider(SharedCredentialsProvider::new(assumed));
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(config.build());
    let reply = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| secret_error(e, id, role))?;
    reply.secret_string().map(str::to_string).ok_or_else(|| {
        Error::new(
            ErrorKind::SourceAuth,
            format!("Secrets Manager secret {id:?} holds binary data, not the JSON of a database login"),
            "store the login as a secret string in the RDS shape: {\"username\": …, \"password\": …, \"host\": …, \"port\": …}",
        )
    })
}

/// A failed `GetSecretValue`, in one line with its fix. A lost network is a connection error
/// (retried like a lost database); a refusal needs the operator.
fn secret_error<E, R>(e: SdkError<E, R>, id: &str, role: Option<&str>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    let text = match e.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        _ => causes(&e),
    };
    let (kind, fix) = match code.as_str() {
        "ResourceNotFoundException" => (
            ErrorKind::SourceAuth,
            "check SecretsManagerSecretId (name or ARN) and the region: the secret must exist in the region of its ARN, else in AWS_REGION".to_string(),
        ),
        "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" => (
            ErrorKind::SourceAuth,
            match role {
                Some(r) => format!("allow secretsmanager:GetSecretValue on the secret (and kms:Decrypt on its key) to role {r}, and sts:AssumeRole on it to the task's credentials"),
                None => "allow secretsmanager:GetSecretValue on the secret (and kms:Decrypt on its key) to the task's AWS credentials, or set SecretsManagerAccessRoleArn to a role that may".to_string(),
            },
        ),
        "" => (
            ErrorKind::SourceConnect,
            "check the network to Secrets Manager (and AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL, if set)".to_string(),
        ),
        _ => (
            ErrorKind::SourceAuth,
            "check the secret in the Secrets Manager console".to_string(),
        ),
    };
    Error::new(
        kind,
        format!("cannot read Secrets Manager secret {id:?}: {text}"),
        fix,
    )
}

/// An AWS error and its causes on one line, without the SDK's debug dump of the response.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        parts.push(cause.to_string());
        next = cause.source();
    }
    parts.dedup();
    parts
        .join(": ")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The region of an ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`).
fn arn_region(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.split(':').collect();
    (parts.len() >= 6 && parts[0] == "arn" && !parts[3].is_empty()).then(|| parts[3].to_string())
}

/// The region of an RDS endpoint (`NAME.ID.REGION.rds.amazonaws.com`, `….rds.amazonaws.com.cn`).
fn rds_region(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    let rds = labels
        .windows(2)
        .position(|w| w[0].eq_ignore_ascii_case("rds") && w[1].eq_ignore_ascii_case("amazonaws"))?;
    (rds >= 2).then(|| labels[rds - 1].to_ascii_lowercase())
}

/// The login in an RDS secret (the shape Secrets Manager's RDS rotation writes and DMS reads).
#[derive(serde::Deserialize)]
struct RdsSecret {
    username: Option<String>,
    password: Option<String>,
    host: Option<String>,
    /// A number, or a number in a string (both are seen in practice).
    port: Option<serde_json::Value>,
    dbname: Option<String>,
    engine: Option<String>,
}

impl RdsSecret {
    /// Reads the secret `id`'s text. Errors say what is missing, never what is there.
    fn parse(text: &str, id: &str, engine: Engine) -> Result<RdsSecret> {
        let wrong = |what: &str| {
            Error::new(
                ErrorKind::SourceAuth,
                format!("Secrets Manager secret {id:?} {what}"),
                "store the login in the RDS shape: {\"username\": \"…\", \"password\": \"…\", \"host\": \"…\", \"port\": 5432, \"dbname\": \"…\", \"engine\": \"postgres\"} (host, port, dbname and engine may be left out)",
            )
        };
        // serde's own message can quote the value, so it is not passed on.
        let secret: RdsSecret = serde_json::from_str(text)
            .map_err(|_| wrong("is not a JSON object of strings (and a port)"))?;
        if secret.username.as_deref().is_none_or(str::is_empty) {
            return Err(wrong("has no \"username\""));
        }
        if secret.password.is_none() {
            return Err(wrong("has no \"password\""));
        }
        if let Some(e) = secret.engine.as_deref().filter(|e| !engine.accepts(e)) {
            let want = match engine {
                Engine::Postgres => "postgres",
                Engine::MySql => "mysql",
            };
            return Err(Error::new(
                ErrorKind::SourceAuth,
                format!("Secrets Manager secret {id:?} is for engine {e:?}, but [source] engine is {want}"),
                "name the secret of this database in SecretsManagerSecretId",
            ));
        }
        if secret.port().is_err() {
            return Err(wrong("has a \"port\" that is not a port number"));
        }
        Ok(secret)
    }

    /// The port, when the secret gives one.
    fn port(&self) -> std::result::Result<Option<u16>, ()> {
        match &self.port {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .map(Some)
                .ok_or(()),
            Some(serde_json::Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        }
    }

    /// Puts the login into `url`: the secret's user, password, host and port win; its
    /// database is used only when the URL names none.
    fn apply(&self, url: &mut url::Url, engine: Engine) -> Result<()> {
        let cannot = || Error::internal("the source URL cannot take a login");
        if let Some(host) = self.host.as_deref().filter(|h| !h.is_empty()) {
            url.set_host(Some(host)).map_err(|_| {
                Error::new(
                    ErrorKind::SourceAuth,
                    "the Secrets Manager secret's \"host\" is not a host name",
                    "fix \"host\" in the secret",
                )
            })?;
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::config(
                "neither the Secrets Manager secret nor [source] url names the server's host",
                "add \"host\" to the secret, or put the host in [source] url",
            ));
        }
        if let Ok(Some(port)) = self.port() {
            url.set_port(Some(port)).map_err(|_| cannot())?;
        } else if url.port().is_none() {
            url.set_port(Some(engine.default_port()))
                .map_err(|_| cannot())?;
        }
        let user = self.username.as_deref().unwrap_or_default();
        url.set_username(&utf8_percent_encode(user, NON_ALPHANUMERIC).to_string())
            .map_err(|_| cannot())?;
        set_password(url, self.password.as_deref().unwrap_or_default())?;
        let path_empty = url.path().trim_matches('/').is_empty();
        if let (true, Some(db)) = (path_empty, self.dbname.as_deref()) {
            url.set_path(&format!("/{}", utf8_percent_encode(db, NON_ALPHANUMERIC)));
        }
        Ok(())
    }
}

/// Sets `url`'s password, percent-encoded whole (the url crate leaves `%` and `&` as they are,
/// and both drivers decode the password).
fn set_password(url: &mut url::Url, password: &str) -> Result<()> {
    url.set_password(Some(
        &utf8_percent_encode(password, NON_ALPHANUMERIC).to_string(),
    ))
    .map_err(|_| Error::internal("the source URL cannot take a password"))
}

/// An RDS IAM authentication token: the SigV4-presigned URL of the `rds-db` `connect` action
/// for `user` on `host:port`, valid 15 minutes from `now`, without its scheme.
fn iam_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    creds: &Credentials,
    now: SystemTime,
) -> Result<String> {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    let failed = |e: &dyn std::fmt::Display| Error::internal(format!("signing the IAM token: {e}"));
    let url = format!("https://{host}:{port}/?Action=connect&DBUser={user}");
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(IAM_TOKEN_LIFETIME);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let mut request = http::Request::builder()
        .uri(&url)
        .body(())
        .map_err(|e| failed(&e))?;
    instructions.apply_to_request_http1x(&mut request);
    let signed = request.uri().to_string();
    Ok(signed
        .strip_prefix("https://")
        .unwrap_or(&signed)
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// The AWS SDK for Rust's own vector (its RDS auth token generator's `signing_works`).
    #[test]
    fn iam_token_matches_the_aws_sdk_example() {
        let creds = Credentials::new("akid", "secret", None, None, "test");
        let token = iam_token(
            "prod-instance.us-east-1.rds.amazonaws.com",
            3306,
            "peccy",
            "us-east-1",
            &creds,
            at(1_724_709_600),
        )
        .unwrap();
        assert_eq!(
            token,
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
        );
    }

    /// botocore's `generate_db_auth_token` test vector (2016-11-07T17:39:33Z).
    #[test]
    fn iam_token_matches_botocore_example() {
        let creds = Credentials::new("akid", "skid", None, None, "test");
        let token = iam_token(
            "prod-instance.us-east-1.rds.amazonaws.com",
            3306,
            "someusername",
            "us-east-1",
            &creds,
            at(1_478_540_373),
        )
        .unwrap();
        assert!(token.contains("X-Amz-Date=20161107T173933Z"), "{token}");
        assert!(
            token.ends_with(
                "X-Amz-Signature=d1138cdbc0ca63eec012ec0fc6c2267e03642168f5884a7795320d4c18374c61"
            ),
            "{token}"
        );
        // A session token is part of what is signed.
        let session = Credentials::new("akid", "skid", Some("tok".into()), None, "test");
        let with = iam_token("h", 5432, "u", "us-east-1", &session, at(0)).unwrap();
        assert!(with.contains("X-Amz-Security-Token=tok"), "{with}");
    }

    #[test]
    fn regions_from_arns_and_rds_hosts() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"),
            Some("eu-west-1".into())
        );
        assert_eq!(arn_region("prod/db"), None);
        assert_eq!(
            rds_region("mydb.c9akciq32.eu-central-1.rds.amazonaws.com"),
            Some("eu-central-1".into())
        );
        assert_eq!(
            rds_region("c.cluster-x.cn-north-1.rds.amazonaws.com.cn"),
            Some("cn-north-1".into())
        );
        assert_eq!(rds_region("db.example.com"), None);
    }

    #[test]
    fn secrets_fill_the_url_and_wrong_shapes_never_show_the_value() {
        let secret = r#"{"username":"app","password":"p@ss/w%rd&x","host":"db.internal","port":"6543","dbname":"shop","engine":"postgres"}"#;
        let s = RdsSecret::parse(secret, "prod/db", Engine::Postgres).unwrap();
        let mut url = url::Url::parse("postgres:///?sslmode=require").unwrap();
        s.apply(&mut url, Engine::Postgres).unwrap();
        assert_eq!(
            url.as_str(),
            "postgres://app:p%40ss%2Fw%25rd%26x@db.internal:6543/shop?sslmode=require"
        );
        let parsed: tokio_postgres::Config = url.as_str().parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"p@ss/w%rd&x"[..]));
        // The URL's database wins over the secret's.
        let mut url = url::Url::parse("postgres://placeholder/other").unwrap();
        s.apply(&mut url, Engine::Postgres).unwrap();
        assert!(url.as_str().ends_with("@db.internal:6543/other"), "{url}");

        for (text, want) in [
            ("hunter2", "is not a JSON object"),
            (r#"{"password":"hunter2"}"#, "has no \"username\""),
            (r#"{"username":"u"}"#, "has no \"password\""),
            (
                r#"{"username":"u","password":"hunter2","port":"x"}"#,
                "\"port\"",
            ),
            (
                r#"{"username":"u","password":"hunter2","engine":"mysql"}"#,
                "engine \"mysql\"",
            ),
        ] {
            let e = RdsSecret::parse(text, "prod/db", Engine::Postgres)
                .err()
                .unwrap();
            let shown = e.to_string();
            assert!(shown.contains(want), "{shown}");
            assert!(shown.contains("prod/db"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(RdsSecret::parse(
            r#"{"username":"u","password":"p","engine":"aurora-mysql"}"#,
            "x",
            Engine::MySql
        )
        .is_ok());
    }
}
