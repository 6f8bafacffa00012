//! TLS to the sources, shared by both engines: the CA certificates a mode trusts, the rustls
//! client configuration of the PostgreSQL SQL connections, and one way of reporting a failed
//! handshake (wrong host name, unknown CA, server without TLS) with the setting to change.
//!
//! Which CAs are trusted is decided here once for every connection of a task: the URL's
//! `sslrootcert`/`ssl-ca` file, else the system's CA bundle (`SSL_CERT_FILE`, else the
//! distribution's file), else Mozilla's roots compiled in. The replication connection
//! (`pgwire-replication`) and MySQL's (`mysql_async`) build their own rustls configuration from
//! the same file.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use crate::config::tls::{TlsMode, TlsSettings};
use crate::error::{Error, ErrorKind, Result};

/// Makes aws-lc-rs the process's rustls provider (several are compiled in, so rustls cannot
/// choose one itself). Idempotent; every TLS set-up calls it first.
pub(crate) fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The CA bundle `settings` trusts when its mode checks certificates: its own file, else the
/// system's; None: Mozilla's roots (or nothing to check).
pub(crate) fn ca_bundle(settings: &TlsSettings) -> Option<PathBuf> {
    if settings.mode < TlsMode::VerifyCa {
        return None;
    }
    settings
        .ca
        .clone()
        .or_else(|| openssl_probe::probe().cert_file)
}

/// The rustls configuration of a PostgreSQL SQL connection with `settings`.
pub(crate) fn client_config(settings: &TlsSettings) -> Result<ClientConfig> {
    install_provider();
    let roots = Arc::new(if settings.mode >= TlsMode::VerifyCa {
        root_store(settings)?
    } else {
        // Not consulted: the certificate is not checked in these modes.
        RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
    });
    let builder = ClientConfig::builder().with_root_certificates(roots.clone());
    let mut config = match &settings.client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let certs = CertificateDer::pem_file_iter(&c.cert)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| file_error("client certificate", &c.cert, e))?;
            let key = PrivateKeyDer::from_pem_file(&c.key)
                .map_err(|e| file_error("client key", &c.key, e))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::config(
                    format!("the client certificate and key do not fit together: {e}"),
                    "give the certificate and the private key it was issued for",
                )
            })?
        }
    };
    if settings.mode < TlsMode::VerifyFull {
        let inner = WebPkiServerVerifier::builder(roots)
            .build()
            .map_err(|e| Error::internal(format!("building the certificate verifier: {e}")))?;
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(Lenient {
                inner,
                check_chain: settings.mode == TlsMode::VerifyCa,
            }));
    }
    Ok(config)
}

/// The trusted CAs of `settings`, loaded.
fn root_store(settings: &TlsSettings) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_bundle(settings) {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| file_error("CA bundle", &path, e))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::config(
                    format!("{} holds no CA certificate", path.display()),
                    format!(
                        "point {} at a PEM file of CA certificates",
                        settings.ca_key()
                    ),
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// A certificate file that cannot be read.
fn file_error(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::config(
        format!("cannot read the {what} {}: {e}", path.display()),
        "give the path of a readable PEM file",
    )
}

/// The verifier of the modes below verify-full: `require`/`prefer` accept any certificate (as
/// libpq and MySQL's clients do), `verify-ca` checks the chain but not the name. Signatures of
/// the handshake itself are always checked.
#[derive(Debug)]
struct Lenient {
    inner: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a TLS connection failed, when it is one of the causes with a known fix.
#[derive(Debug, PartialEq)]
enum Failure {
    /// The certificate does not name the host; the names it does carry.
    WrongName(Vec<String>),
    /// The certificate is not signed by a trusted CA.
    UnknownIssuer,
    /// The server does not offer TLS.
    NoTls,
    /// Any other certificate problem (expired, not yet valid, ...), in rustls's words.
    Certificate(String),
}

/// The error for a failed TLS connection to `host`, naming the setting to change; None when
/// `err` (a driver error, searched down its causes) is not about TLS.
pub(crate) fn handshake_error(
    host: &str,
    settings: &TlsSettings,
    err: &(dyn std::error::Error + 'static),
) -> Option<Error> {
    classify(err).map(|f| describe(host, settings, f))
}

/// The names of a certificate refused for not naming the host; None for any other error.
pub(crate) fn names_of_refused_certificate(
    err: &(dyn std::error::Error + 'static),
) -> Option<Vec<String>> {
    match classify(err)? {
        Failure::WrongName(names) => Some(names),
        _ => None,
    }
}

/// What `err` (a driver error, searched down its causes) says about TLS.
fn classify(err: &(dyn std::error::Error + 'static)) -> Option<Failure> {
    Some(match find_rustls(err) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::NotValidForNameContext { presented, .. } => {
                Failure::WrongName(presented.iter().map(|n| clean_name(n)).collect())
            }
            CertificateError::NotValidForName => Failure::WrongName(Vec::new()),
            CertificateError::UnknownIssuer => Failure::UnknownIssuer,
            other => Failure::Certificate(other.to_string()),
        },
        _ => classify_text(&chain_text(err))?,
    })
}

/// [`handshake_error`] for a driver that reports TLS failures only as text.
pub(crate) fn handshake_error_text(
    host: &str,
    settings: &TlsSettings,
    text: &str,
) -> Option<Error> {
    classify_text(text).map(|f| describe(host, settings, f))
}

/// The rustls error among `err`'s causes (including inside `std::io::Error`s, whose `source`
/// skips the error they wrap).
fn find_rustls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// `err` and its causes as one line.
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}

/// The failure a driver's message describes (rustls's words, as the drivers pass them on).
fn classify_text(text: &str) -> Option<Failure> {
    if let Some((_, rest)) = text.split_once("certificate not valid for name") {
        let names = rest
            .split_once("is only valid for ")
            .map(|(_, list)| {
                list.split(", ")
                    .flat_map(|n| n.split(" or "))
                    .map(clean_name)
                    .collect()
            })
            .unwrap_or_default();
        return Some(Failure::WrongName(names));
    }
    if text.contains("UnknownIssuer") {
        return Some(Failure::UnknownIssuer);
    }
    let lower = text.to_lowercase();
    if lower.contains("does not support tls")
        || lower.contains("does not have this capability")
        || lower.contains("sslrequest rejected")
        || lower.contains("client_ssl")
    {
        return Some(Failure::NoTls);
    }
    if let Some((_, what)) = text.split_once("invalid peer certificate: ") {
        return Some(Failure::Certificate(what.to_string()));
    }
    None
}

/// `DnsName("db.example")` → `db.example`, `IpAddress(10.0.0.1)` → `10.0.0.1`.
fn clean_name(n: &str) -> String {
    let n = n.trim();
    let inner = n
        .strip_prefix("DnsName(")
        .or_else(|| n.strip_prefix("IpAddress("))
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(n);
    inner.trim_matches('"').to_string()
}

/// The error for `failure` on `host`, with the fix in the URL's own spelling.
fn describe(host: &str, s: &TlsSettings, failure: Failure) -> Error {
    let ca = match &s.ca {
        Some(p) => format!("{} {}", s.ca_key(), p.display()),
        None => "the system's CA certificates".to_string(),
    };
    let (message, fix) = match failure {
        Failure::WrongName(names) => {
            let named = if names.is_empty() {
                "it carries no subject alternative name".to_string()
            } else {
                format!("it names {}", names.join(", "))
            };
            (
                format!("the server's TLS certificate is not valid for host {host:?}: {named}"),
                format!(
                    "connect to a host name the certificate names (change the host in [source] url), or set {} to check the CA but not the name",
                    s.setting(TlsMode::VerifyCa)
                ),
            )
        }
        Failure::UnknownIssuer => (
            format!("the TLS certificate of {host:?} is not signed by a CA in {ca}"),
            format!(
                "set {}=/path/to/ca.pem in [source] url to the CA bundle that signed it (for Amazon RDS: the global bundle, global-bundle.pem), or {} to encrypt without checking the certificate",
                s.ca_key(),
                s.setting(TlsMode::Require)
            ),
        ),
        Failure::NoTls => (
            format!("{host:?} does not accept TLS connections, and {} requires TLS", s.setting(s.mode)),
            format!(
                "turn TLS on in the server, or set {} (encrypts when the server offers TLS) or {} in [source] url",
                s.setting(TlsMode::Prefer),
                s.setting(TlsMode::Disable)
            ),
        ),
        Failure::Certificate(what) => (
            format!("the TLS certificate of {host:?} was refused: {what}"),
            format!(
                "renew the server's certificate, or set {} in [source] url to encrypt without checking it",
                s.setting(TlsMode::Require)
            ),
        ),
    };
    Error::new(ErrorKind::Config, message, fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tls::Dialect;

    #[test]
    fn driver_texts_are_classified() {
        let text = r#"tls error: TLS handshake failed: invalid peer certificate: certificate not valid for name "127.0.0.2"; certificate is only valid for DnsName("localhost"), DnsName("db.example") or IpAddress(127.0.0.1)"#;
        assert_eq!(
            classify_text(text),
            Some(Failure::WrongName(vec![
                "localhost".into(),
                "db.example".into(),
                "127.0.0.1".into()
            ]))
        );
        assert_eq!(
            classify_text("invalid peer certificate: UnknownIssuer"),
            Some(Failure::UnknownIssuer)
        );
        assert_eq!(
            classify_text("tls error: server does not support TLS (SSLRequest rejected)"),
            Some(Failure::NoTls)
        );
        assert_eq!(classify_text("connection refused"), None);
    }

    #[test]
    fn a_wrong_name_names_the_host_the_certificate_and_the_setting() {
        let (_, s) = TlsSettings::split_url(
            "postgres://u@db.example/d?sslmode=verify-full",
            Dialect::Libpq,
        )
        .unwrap();
        let e = describe(
            "db.example",
            &s,
            Failure::WrongName(vec!["localhost".into(), "127.0.0.1".into()]),
        );
        let text = e.to_string();
        assert!(text.contains("\"db.example\""), "{text}");
        assert!(text.contains("it names localhost, 127.0.0.1"), "{text}");
        assert!(text.contains("sslmode=verify-ca"), "{text}");
        assert_eq!(e.kind, ErrorKind::Config, "not retried");
    }
}
