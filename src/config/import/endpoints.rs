//! `[source]` and `[target]` from DMS endpoints (`describe-endpoints` objects): the connection
//! URL, the engine settings objects (`PostgreSQLSettings`, `MySQLSettings`, `S3Settings`) and
//! `ExtraConnectionAttributes`, by the names the task-file parser takes.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::render::{toml_string, Line, Section};
use super::str_field;
use crate::config::{source::accepted_settings, target::ACCEPTED};
use crate::error::{Error, Result};

/// What URL userinfo and path segments may hold unescaped: RFC 3986's unreserved characters.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Endpoint fields that describe the endpoint rather than configure it (not carried, no comment).
const METADATA: &[&str] = &[
    "EndpointIdentifier",
    "EndpointType",
    "EngineName",
    "EngineDisplayName",
    "Status",
    "EndpointArn",
    "ExternalId",
    "IsReadOnly",
    "ServerName",
    "Port",
    "DatabaseName",
    "Username",
    "SslMode",
    "CertificateArn",
    "ExtraConnectionAttributes",
    "ServiceAccessRoleArn",
];

/// Connection facts: carried into the URL, not into settings.
const CONNECTION: &[&str] = &["ServerName", "Port", "DatabaseName", "Username"];

/// S3 settings whose empty value means "unset" in an export.
const EMPTY_IS_UNSET: &[&str] = &[
    "ExpectedBucketOwner",
    "ServerSideEncryptionKmsKeyId",
    "CdcPath",
    "DatePartitionTimezone",
];

/// The source sections, with what the header needs.
pub(super) struct SourceOut {
    /// `postgres` or `mysql`.
    pub(super) engine: String,
    /// The user name in the URL (for the header's password line).
    pub(super) user: String,
    /// The login comes from Secrets Manager: no password variable to set.
    pub(super) from_secret: bool,
    /// `[source]` and `[source.settings]`.
    pub(super) sections: Vec<Section>,
}

/// How one DMS setting is carried over.
enum Disposition {
    /// Not written at all (carried elsewhere, e.g. into the URL).
    Skip,
    /// Written commented out, with why.
    Drop(String),
}

/// `[source]` and `[source.settings]` from a source endpoint.
pub(super) fn source(ep: &Value, password_env: &str) -> Result<SourceOut> {
    if str_field(ep, "EndpointType").is_some_and(|t| t.eq_ignore_ascii_case("target")) {
        return Err(Error::config(
            format!(
                "--source-endpoint is a target endpoint ({})",
                str_field(ep, "EndpointIdentifier").unwrap_or("?")
            ),
            "pass the task's source endpoint to --source-endpoint and its S3 endpoint to --target-endpoint",
        ));
    }
    let engine_name = str_field(ep, "EngineName").unwrap_or("");
    let (engine, settings_name, default_port) = match engine_name.to_ascii_lowercase().as_str() {
        "postgres" | "aurora-postgresql" => ("postgres", "PostgreSQLSettings", 5432),
        "mysql" | "mariadb" | "aurora" => ("mysql", "MySQLSettings", 3306),
        _ => {
            return Err(Error::config(
                format!("the source endpoint's EngineName {engine_name:?} is not supported"),
                "Tributary reads PostgreSQL (EngineName postgres, aurora-postgresql) and MySQL/MariaDB (mysql, mariadb, aurora); other sources need DMS",
            ))
        }
    };
    let obj = ep.get(settings_name).and_then(Value::as_object);
    // The engine's settings object wins over the endpoint's top-level field.
    let fact = |name: &str| {
        obj.and_then(|o| o.get(name))
            .filter(|v| !v.is_null())
            .or_else(|| ep.get(name).filter(|v| !v.is_null()))
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let secret = obj
        .and_then(|o| o.get("SecretsManagerSecretId"))
        .and_then(Value::as_str);
    let mut section = Section::new("[source]");
    section.push(
        Line::string("engine", engine)
            .with_note(format!(
                "EngineName {engine_name:?} ({})",
                str_field(ep, "EngineDisplayName").unwrap_or(engine_name)
            ))
            .fixed(),
    );
    let mut missing = Vec::new();
    let host = match fact("ServerName").map(text) {
        Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        Some(h) => h,
        None => {
            missing.push("ServerName → TRIBUTARY_SOURCE_HOST");
            "${TRIBUTARY_SOURCE_HOST}".to_string()
        }
    };
    let port = fact("Port").map(text).unwrap_or_else(|| {
        missing.push("Port → the engine's default");
        default_port.to_string()
    });
    let user = match fact("Username").map(text) {
        Some(u) => u,
        None => {
            missing.push("Username → TRIBUTARY_SOURCE_USER");
            "${TRIBUTARY_SOURCE_USER}".to_string()
        }
    };
    let user_in_url = if user.starts_with("${") {
        user.clone()
    } else {
        utf8_percent_encode(&user, URL_PART).to_string()
    };
    let database = fact("DatabaseName").map(text).unwrap_or_default();
    let (tls, tls_note) = tls_parameter(engine, str_field(ep, "SslMode"))?;
    // With a secret Tributary reads, the login comes from it on every connection: a password
    // in the url beside it is refused by the parser.
    let from_secret = secret.is_some()
        && crate::config::source::accepted_settings(engine)
            .iter()
            .any(|a| a.eq_ignore_ascii_case("SecretsManagerSecretId"));
    let password = if from_secret {
        String::new()
    } else {
        format!(":${{{password_env}}}")
    };
    let url = format!(
        "{engine}://{user_in_url}{password}@{host}:{port}/{}?{tls}",
        utf8_percent_encode(&database, URL_PART)
    );
    let mut url_line = Line::string("url", &url).fixed().with_note(if from_secret {
        format!("ServerName, Port, DatabaseName, Username from the endpoint ({settings_name} first); the login (user, password, host, port) is read from Secrets Manager on every connection (SecretsManagerSecretId below)")
    } else {
        format!("ServerName, Port, DatabaseName, Username from the endpoint ({settings_name} first); the password is never exported: export {password_env} before validate/run")
    });
    if !missing.is_empty() {
        url_line.note(format!(
            "not in the export (set these variables too): {}",
            missing.join(", ")
        ));
    }
    if engine == "postgres" && database.is_empty() {
        url_line.note("no DatabaseName: the driver connects to the database named like the user");
    }
    url_line.note(tls_note);
    if let Some(arn) = str_field(ep, "CertificateArn") {
        let (key, check) = match engine {
            "postgres" => ("sslrootcert", "sslmode=verify-ca or verify-full"),
            _ => ("ssl-ca", "ssl-mode=VERIFY_CA or VERIFY_IDENTITY"),
        };
        url_line.note(format!(
            "CertificateArn {arn}: the CA DMS checked the server with. Download it,\n  aws dms describe-certificates --filters Name=certificate-arn,Values={arn} --query 'Certificates[0].CertificatePem' --output text > dms-ca.pem\nand add &{key}=/path/to/dms-ca.pem to the url (the server's certificate is checked only with {check}; without {key} the system's CAs are used)."
        ));
    }
    section.push(url_line);
    if let Some(id) = secret {
        section.push_comment(format!(
            "The endpoint reads its connection from Secrets Manager secret {id}; see it with\n  aws secretsmanager get-secret-value --secret-id {id} --query SecretString --output text"
        ));
    }
    for field in ["ServiceAccessRoleArn", "KmsKeyId"] {
        if let Some(v) = str_field(ep, field) {
            section.push_comment(format!(
                "not carried over: {field} {v}: {}",
                endpoint_field_reason(field)
            ));
        }
    }
    other_fields(ep, settings_name, &mut section);

    let accepted = accepted_settings(engine);
    let classify = |name: &str, value: &Value| -> Option<Disposition> {
        if CONNECTION.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return Some(Disposition::Skip);
        }
        if name.eq_ignore_ascii_case("Password") {
            // Never copied, not even as a comment.
            return Some(Disposition::Skip);
        }
        source_reason(name, value).map(Disposition::Drop)
    };
    let settings = settings_section(
        "[source.settings]",
        obj,
        settings_name,
        str_field(ep, "ExtraConnectionAttributes"),
        accepted,
        &classify,
    );
    let mut sections = vec![section];
    if !settings.is_empty() {
        sections.push(settings);
    }
    Ok(SourceOut {
        from_secret,
        engine: engine.to_string(),
        user,
        sections,
    })
}

/// DMS's `SslMode` as the URL's TLS parameter, with a comment on the mapping.
fn tls_parameter(engine: &str, mode: Option<&str>) -> Result<(String, String)> {
    let dms = mode.unwrap_or("none");
    let i =
        match dms.to_ascii_lowercase().as_str() {
            "none" => 0,
            "require" => 1,
            "verify-ca" => 2,
            "verify-full" => 3,
            _ => return Err(Error::config(
                format!("the source endpoint's SslMode {dms:?} is not one DMS has"),
                "export the endpoint again; DMS's modes are none, require, verify-ca, verify-full",
            )),
        };
    let param = if engine == "postgres" {
        format!(
            "sslmode={}",
            ["disable", "require", "verify-ca", "verify-full"][i]
        )
    } else {
        format!(
            "ssl-mode={}",
            ["DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"][i]
        )
    };
    let absent = if mode.is_none() {
        " (absent from the export: DMS's default)"
    } else {
        ""
    };
    let note = if i == 0 {
        format!("SslMode none{absent} → {param}: no TLS, as DMS; a server that offers TLS is better used with a stronger mode")
    } else {
        format!("SslMode {dms} → {param}")
    };
    Ok((param, note))
}

/// Why an endpoint's top-level field is not carried over.
fn endpoint_field_reason(field: &str) -> &'static str {
    match field {
        "ServiceAccessRoleArn" => "the IAM role DMS assumes; Tributary takes AWS credentials from the standard chain (environment, AWS_PROFILE, SSO, web identity, instance or container role), so give that identity the role's permissions",
        "KmsKeyId" => "DMS encrypts the endpoint's stored connection details with this key; this file stores no password",
        _ => "no Tributary equivalent",
    }
}

/// A comment naming the endpoint's other fields (other engines' settings objects and fields
/// this import does not know), which are not carried over.
fn other_fields(ep: &Value, used: &str, section: &mut Section) {
    let Some(map) = ep.as_object() else {
        return;
    };
    let others: Vec<&str> = map
        .iter()
        .filter(|(k, v)| {
            !v.is_null()
                && k.as_str() != used
                && k.as_str() != "KmsKeyId"
                && !METADATA.contains(&k.as_str())
        })
        .map(|(k, _)| k.as_str())
        .collect();
    if !others.is_empty() {
        section.push_comment(format!(
            "not carried over: {} (no Tributary equivalent for this endpoint)",
            others.join(", ")
        ));
    }
}

/// Why a PostgreSQL/MySQL endpoint setting the parser does not take is left out, for the names
/// DMS documents; None for names the parser may take.
fn source_reason(name: &str, value: &Value) -> Option<String> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("SecretsManagerSecretId") || is("SecretsManagerAccessRoleArn") {
        return Some("not supported yet: Tributary does not read AWS Secrets Manager; put the secret's host, port and user in the url and its password in the password variable".into());
    }
    if is("ServiceAccessRoleArn") {
        return Some(endpoint_field_reason("ServiceAccessRoleArn").into());
    }
    if is("AuthenticationMethod") {
        return Some(
            if value
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("password"))
            {
                "password authentication, which the url uses".into()
            } else {
                "not supported: IAM database authentication; give the user a password".into()
            },
        );
    }
    if is("MaxFileSize") || is("TargetDbType") {
        return Some(
            "applies when this engine is a DMS target; it has no meaning for a source".into(),
        );
    }
    None
}

/// A settings section from an engine settings object and the ECA string: names the parser
/// takes (`accepted`) become lines by their canonical spelling, others are commented out with
/// `classify`'s reason or as unsupported.
fn settings_section(
    name: &str,
    obj: Option<&Map<String, Value>>,
    obj_name: &str,
    eca: Option<&str>,
    accepted: &[&str],
    classify: &dyn Fn(&str, &Value) -> Option<Disposition>,
) -> Section {
    let mut section = Section::new(name);
    let canonical = |key: &str| {
        accepted
            .iter()
            .find(|a| a.eq_ignore_ascii_case(key))
            .copied()
    };
    let add = |section: &mut Section, key: &str, value: &Value, origin: &str| {
        let why = match classify(key, value) {
            Some(Disposition::Skip) => return,
            Some(Disposition::Drop(why)) => Some(why),
            None => None,
        };
        // A name the parser takes is written whatever this import knows about it.
        let Some(canon) = canonical(key) else {
            let why = why.unwrap_or_else(|| {
                format!("not supported: Tributary has no {key} setting ({origin}; see docs/compatibility.md)")
            });
            section.push(Line::raw(key, &show(value)).dropped(why));
            return;
        };
        match Line::setting(canon, value) {
            Some(line) => section.push(line),
            None => section
                .push(Line::raw(key, &show(value)).dropped("not a string, number or boolean")),
        }
    };
    if let Some(obj) = obj {
        for (k, v) in obj {
            if v.is_null() {
                continue;
            }
            add(&mut section, k, v, obj_name);
        }
    }
    let mut from_eca = Vec::new();
    for piece in eca.unwrap_or("").split(';').map(str::trim) {
        if piece.is_empty() {
            continue;
        }
        let Some((k, v)) = piece.split_once('=') else {
            section.push_comment(format!(
                "not carried over: ExtraConnectionAttributes entry {piece:?} has no '='"
            ));
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if let Some(prev) = obj.and_then(|o| o.iter().find(|(ok, _)| ok.eq_ignore_ascii_case(k))) {
            // Exports repeat the settings object in the ECA string; one copy is enough.
            let same = match prev.1 {
                // Enum spellings differ between the two channels (NONE / none).
                Value::String(s) => s.eq_ignore_ascii_case(v),
                other => other.to_string().eq_ignore_ascii_case(v),
            };
            if !same {
                section.push_comment(format!(
                    "not carried over: ExtraConnectionAttributes {k}={v}: {obj_name} says {} = {}, which is kept",
                    prev.0, prev.1
                ));
            }
            continue;
        }
        from_eca.push((k.to_string(), Value::String(v.to_string())));
    }
    if !from_eca.is_empty() {
        section.push_comment("From ExtraConnectionAttributes:");
        for (k, v) in &from_eca {
            add(&mut section, k, v, "ExtraConnectionAttributes");
        }
    }
    section
}

/// A JSON value as TOML text for a commented-out line.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => toml_string(s),
        other => other.to_string(),
    }
}

/// `[target]` and `[target.settings]` from an S3 target endpoint.
pub(super) fn target(ep: &Value) -> Result<Vec<Section>> {
    let id = str_field(ep, "EndpointIdentifier").unwrap_or("?");
    if str_field(ep, "EndpointType").is_some_and(|t| t.eq_ignore_ascii_case("source")) {
        return Err(Error::config(
            format!("--target-endpoint is a source endpoint ({id})"),
            "pass the task's S3 endpoint to --target-endpoint and its source endpoint to --source-endpoint",
        ));
    }
    let engine = str_field(ep, "EngineName").unwrap_or("");
    if !engine.eq_ignore_ascii_case("s3") {
        return Err(Error::config(
            format!("the target endpoint {id} has EngineName {engine:?}, not s3"),
            "Tributary writes what DMS's S3 target writes; pass the task's S3 target endpoint",
        ));
    }
    let obj = ep.get("S3Settings").and_then(Value::as_object);
    let eca = str_field(ep, "ExtraConnectionAttributes");
    let eca_bucket = eca.and_then(|e| {
        e.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("bucketName")
                .then(|| v.trim().to_string())
        })
    });
    let bucket = obj
        .and_then(|o| o.get("BucketName"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(eca_bucket)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            Error::config(
                format!("the target endpoint {id} has no S3Settings.BucketName"),
                "export the endpoint with `aws dms describe-endpoints --output json`; its S3Settings name the bucket",
            )
        })?;
    let mut section = Section::new("[target]");
    section.push(
        Line::string("url", &format!("s3://{bucket}"))
            .fixed()
            .with_note(
                "S3Settings.BucketName (file:///path writes the same layout to a local folder)",
            ),
    );
    // arn:aws:dms:REGION:ACCOUNT:endpoint:ID — DMS keeps the bucket in the instance's region.
    if let Some(region) = str_field(ep, "EndpointArn")
        .and_then(|a| a.split(':').nth(3))
        .filter(|r| !r.is_empty())
    {
        section.push(Line::string("region", region).fixed().with_note(
            "the endpoint's region (from its ARN): DMS requires the bucket in the replication instance's region",
        ));
    }
    let role = obj
        .and_then(|o| o.get("ServiceAccessRoleArn"))
        .and_then(Value::as_str)
        .or_else(|| str_field(ep, "ServiceAccessRoleArn"));
    if let Some(role) = role {
        section.push_comment(format!(
            "not carried over: ServiceAccessRoleArn {role}: {}",
            endpoint_field_reason("ServiceAccessRoleArn")
        ));
    }
    if let Some(k) = str_field(ep, "KmsKeyId") {
        section.push_comment(format!(
            "not carried over: KmsKeyId {k}: {}",
            endpoint_field_reason("KmsKeyId")
        ));
    }
    other_fields(ep, "S3Settings", &mut section);
    let classify = |name: &str, value: &Value| -> Option<Disposition> {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("BucketName") || is("ServiceAccessRoleArn") {
            return Some(Disposition::Skip);
        }
        if value.as_str() == Some("") && EMPTY_IS_UNSET.iter().any(|n| is(n)) {
            return Some(Disposition::Skip);
        }
        if is("ExternalTableDefinition") || is("IgnoreHeaderRows") {
            return Some(Disposition::Drop(
                "applies to S3 as a DMS source only".into(),
            ));
        }
        None
    };
    let settings = settings_section(
        "[target.settings]",
        obj,
        "S3Settings",
        eca,
        ACCEPTED,
        &classify,
    );
    let mut out = vec![section];
    if !settings.is_empty() {
        out.push(settings);
    }
    Ok(out)
}
