//! TLS settings in `[source] url`, spelled the way each engine's own clients spell them:
//! libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey` for PostgreSQL, and MySQL's URI options
//! `ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key` for MySQL/MariaDB. They are taken out of the URL
//! here (the drivers know only some of them) and applied by `source::tls`.
//!
//! The default is each client's own: `prefer` / `PREFERRED`, which encrypts when the server
//! offers TLS (without checking its certificate) and connects unencrypted only when the server
//! does not offer it. Every stronger mode never falls back.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// How much TLS a connection insists on; one scale for both engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsMode {
    /// `disable` / `DISABLED`: never TLS.
    Disable,
    /// `prefer` / `PREFERRED`: TLS when the server offers it, certificate not checked.
    Prefer,
    /// `require` / `REQUIRED`: TLS or no connection, certificate not checked.
    Require,
    /// `verify-ca` / `VERIFY_CA`: TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// `verify-full` / `VERIFY_IDENTITY`: [`TlsMode::VerifyCa`], and the certificate names the
    /// host connected to.
    VerifyFull,
}

/// Whose spelling the URL uses (and error messages quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// libpq: `sslmode=verify-full&sslrootcert=...`.
    Libpq,
    /// MySQL's URI options: `ssl-mode=VERIFY_IDENTITY&ssl-ca=...`.
    MySql,
}

/// A client certificate and its key (PEM files), for servers that ask for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// `sslcert` / `ssl-cert`.
    pub(crate) cert: PathBuf,
    /// `sslkey` / `ssl-key`.
    pub(crate) key: PathBuf,
}

/// The TLS settings of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// How much TLS is required.
    pub(crate) mode: TlsMode,
    /// `sslrootcert` / `ssl-ca`: the CA bundle that signs the server's certificate; None: the
    /// system's CA certificates.
    pub(crate) ca: Option<PathBuf>,
    /// `sslcert` + `sslkey` / `ssl-cert` + `ssl-key`.
    pub(crate) client: Option<ClientCert>,
    /// The URL's spelling.
    pub(crate) dialect: Dialect,
}

/// libpq's parameters we read (and remove from the URL).
const LIBPQ_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];
/// MySQL's URI options we read (and remove from the URL).
const MYSQL_KEYS: &[&str] = &["ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"];
/// mysql_async's own TLS parameters: refused, so there is one way to say it.
const MYSQL_DRIVER_KEYS: &[&str] = &[
    "require_ssl",
    "verify_ca",
    "verify_identity",
    "built_in_roots",
    "sslmode",
    "ssl_mode",
    "sslMode",
];

impl TlsSettings {
    /// Splits the TLS parameters off `url`: the URL the driver is given (for PostgreSQL with
    /// `sslmode` reduced to what tokio-postgres knows: `disable`, `prefer` or `require`) and the
    /// settings.
    pub(crate) fn split_url(url: &str, dialect: Dialect) -> Result<(String, TlsSettings)> {
        if dialect == Dialect::Libpq
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(Error::config(
                "[source] url is not a postgres:// URL",
                "use postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=... (libpq's key=value form is not read)",
            ));
        }
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let ours = match dialect {
            Dialect::Libpq => LIBPQ_KEYS,
            Dialect::MySql => MYSQL_KEYS,
        };
        let mut kept: Vec<&str> = Vec::new();
        let mut mode = None;
        let (mut ca, mut cert, mut key) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k);
            if dialect == Dialect::MySql && MYSQL_DRIVER_KEYS.contains(&k.as_str()) {
                return Err(Error::config(
                    format!("[source] url parameter {k} is not one tributary reads"),
                    "use MySQL's own options: ssl-mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY and ssl-ca=/path/to/ca.pem",
                ));
            }
            if !ours.contains(&k.as_str()) {
                kept.push(pair);
                continue;
            }
            let v = decode(v);
            match k.as_str() {
                "sslmode" | "ssl-mode" => mode = Some(parse_mode(&v, dialect)?),
                "sslrootcert" | "ssl-ca" => ca = Some(v),
                "sslcert" | "ssl-cert" => cert = Some(PathBuf::from(v)),
                _ => key = Some(PathBuf::from(v)),
            }
        }
        let settings = TlsSettings::new(mode, ca, cert, key, dialect)?;
        if dialect == Dialect::Libpq {
            kept.push(match settings.mode {
                TlsMode::Disable => "sslmode=disable",
                TlsMode::Prefer => "sslmode=prefer",
                _ => "sslmode=require",
            });
        }
        let driver_url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((driver_url, settings))
    }

    /// Applies each client's rules for what was given together.
    fn new(
        mode: Option<TlsMode>,
        ca: Option<String>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        dialect: Dialect,
    ) -> Result<TlsSettings> {
        let (ca_key, mode_key) = match dialect {
            Dialect::Libpq => ("sslrootcert", "sslmode"),
            Dialect::MySql => ("ssl-ca", "ssl-mode"),
        };
        // libpq's `sslrootcert=system`: the system's CAs, with verify-full as the only mode.
        let system = dialect == Dialect::Libpq && ca.as_deref() == Some("system");
        let ca = ca.filter(|_| !system).map(PathBuf::from);
        let mode = match (mode, dialect) {
            (Some(m), _) => m,
            (None, Dialect::Libpq) if system => TlsMode::VerifyFull,
            // MySQL: --ssl-ca without --ssl-mode means VERIFY_CA.
            (None, Dialect::MySql) if ca.is_some() => TlsMode::VerifyCa,
            (None, _) => TlsMode::Prefer,
        };
        if system && mode != TlsMode::VerifyFull {
            return Err(Error::config(
                format!(
                    "sslmode={} may not be used with sslrootcert=system",
                    spell(mode, dialect)
                ),
                "use sslmode=verify-full with sslrootcert=system (as libpq requires), or name a CA file",
            ));
        }
        // libpq: with a root certificate, `require` checks the chain like verify-ca.
        let mode = if dialect == Dialect::Libpq && mode == TlsMode::Require && ca.is_some() {
            TlsMode::VerifyCa
        } else {
            mode
        };
        if let Some(path) = &ca {
            if mode >= TlsMode::VerifyCa && !path.is_file() {
                return Err(Error::config(
                    format!("{ca_key} {} is not a readable file", path.display()),
                    format!("give the path of the CA bundle (PEM) that signed the server's certificate, or remove {ca_key} to use the system's CAs"),
                ));
            }
            if mode < TlsMode::VerifyCa && mode != TlsMode::Disable {
                tracing::warn!(
                    "{ca_key} is set but {mode_key}={} does not check the server's certificate; \
                     use {mode_key}={} to check it",
                    spell(mode, dialect),
                    spell(TlsMode::VerifyFull, dialect)
                );
            }
        }
        let client = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
            _ => {
                let (c, k) = match dialect {
                    Dialect::Libpq => ("sslcert", "sslkey"),
                    Dialect::MySql => ("ssl-cert", "ssl-key"),
                };
                return Err(Error::config(
                    format!("[source] url has only one of {c} and {k}"),
                    format!("give both {c} (the client certificate) and {k} (its private key), as PEM files"),
                ));
            }
        };
        Ok(TlsSettings {
            mode,
            ca,
            client,
            dialect,
        })
    }

    /// `sslmode=verify-ca` or `ssl-mode=VERIFY_CA`: `mode` as this URL spells it.
    pub(crate) fn setting(&self, mode: TlsMode) -> String {
        let key = match self.dialect {
            Dialect::Libpq => "sslmode",
            Dialect::MySql => "ssl-mode",
        };
        format!("{key}={}", spell(mode, self.dialect))
    }

    /// The CA parameter's name (`sslrootcert` / `ssl-ca`).
    pub(crate) fn ca_key(&self) -> &'static str {
        match self.dialect {
            Dialect::Libpq => "sslrootcert",
            Dialect::MySql => "ssl-ca",
        }
    }
}

/// `mode` in `dialect`'s spelling.
fn spell(mode: TlsMode, dialect: Dialect) -> &'static str {
    let i = mode as usize;
    match dialect {
        Dialect::Libpq => ["disable", "prefer", "require", "verify-ca", "verify-full"][i],
        Dialect::MySql => [
            "DISABLED",
            "PREFERRED",
            "REQUIRED",
            "VERIFY_CA",
            "VERIFY_IDENTITY",
        ][i],
    }
}

/// Parses a mode in `dialect`'s spelling (MySQL's case-insensitively, as its clients do).
fn parse_mode(v: &str, dialect: Dialect) -> Result<TlsMode> {
    let all = [
        TlsMode::Disable,
        TlsMode::Prefer,
        TlsMode::Require,
        TlsMode::VerifyCa,
        TlsMode::VerifyFull,
    ];
    let found = all.into_iter().find(|&m| match dialect {
        Dialect::Libpq => spell(m, dialect) == v,
        Dialect::MySql => spell(m, dialect).eq_ignore_ascii_case(v),
    });
    found.ok_or_else(|| {
        let (key, names) = match dialect {
            Dialect::Libpq => (
                "sslmode",
                "disable, prefer, require, verify-ca or verify-full",
            ),
            Dialect::MySql => (
                "ssl-mode",
                "DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY",
            ),
        };
        let hint = if dialect == Dialect::Libpq && v == "allow" {
            " (allow, which tries unencrypted first, is not supported: use prefer)"
        } else {
            ""
        };
        Error::config(
            format!("[source] url {key}={v} is not a TLS mode{hint}"),
            format!("use {key}={names}"),
        )
    })
}

/// Percent-decodes one query component (`+` stays `+`, as libpq leaves it).
fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> Result<(String, TlsSettings)> {
        TlsSettings::split_url(url, Dialect::Libpq)
    }

    fn my(url: &str) -> Result<(String, TlsSettings)> {
        TlsSettings::split_url(url, Dialect::MySql)
    }

    #[test]
    fn libpq_parameters_leave_the_url_and_sslmode_is_reduced() {
        let ca = tempfile::NamedTempFile::new().unwrap();
        let url = format!(
            "postgres://u:p%40ss@db.example:5432/shop?application_name=x&sslmode=verify-full&sslrootcert={}&connect_timeout=5",
            ca.path().display()
        );
        let (driver, tls) = pg(&url).unwrap();
        assert_eq!(
            driver,
            "postgres://u:p%40ss@db.example:5432/shop?application_name=x&connect_timeout=5&sslmode=require"
        );
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.ca.as_deref(), Some(ca.path()));
        assert_eq!(tls.setting(TlsMode::VerifyCa), "sslmode=verify-ca");

        let (driver, tls) = pg("postgres://u@h/db").unwrap();
        assert_eq!(driver, "postgres://u@h/db?sslmode=prefer");
        assert_eq!(tls.mode, TlsMode::Prefer, "libpq's default");
        let (driver, tls) = pg("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(driver, "postgres://u@h/db?sslmode=disable");
        assert_eq!(tls.mode, TlsMode::Disable);
    }

    #[test]
    fn libpq_rules_for_root_certificates_and_client_certificates() {
        let ca = tempfile::NamedTempFile::new().unwrap();
        let p = ca.path().display();
        // A root certificate turns require into verify-ca, as in libpq.
        let (_, tls) = pg(&format!("postgres://h/d?sslmode=require&sslrootcert={p}")).unwrap();
        assert_eq!(tls.mode, TlsMode::VerifyCa);
        // system: verify-full only.
        let (_, tls) = pg("postgres://h/d?sslrootcert=system").unwrap();
        assert_eq!((tls.mode, tls.ca), (TlsMode::VerifyFull, None));
        let e = pg("postgres://h/d?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
        let e = pg("postgres://h/d?sslmode=verify-ca&sslrootcert=/no/such.pem").unwrap_err();
        assert!(e.to_string().contains("/no/such.pem"), "{e}");
        let e = pg("postgres://h/d?sslmode=verify-full&sslcert=/c.pem").unwrap_err();
        assert!(e.to_string().contains("sslkey"), "{e}");
        let (_, tls) = pg("postgres://h/d?sslcert=/c.pem&sslkey=/k.pem").unwrap();
        assert_eq!(tls.client.unwrap().key, PathBuf::from("/k.pem"));
        let e = pg("postgres://h/d?sslmode=allow").unwrap_err();
        assert!(e.to_string().contains("use prefer"), "{e}");
        let e = pg("postgres://h/d?sslmode=VERIFY-FULL").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
    }

    #[test]
    fn mysql_options_and_their_defaults() {
        let ca = tempfile::NamedTempFile::new().unwrap();
        let p = ca.path().display();
        let (driver, tls) = my(&format!(
            "mysql://u:p@h:3306/db?ssl-mode=verify_identity&ssl-ca={p}&prefer_socket=false"
        ))
        .unwrap();
        assert_eq!(driver, "mysql://u:p@h:3306/db?prefer_socket=false");
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.setting(TlsMode::VerifyCa), "ssl-mode=VERIFY_CA");
        let (driver, tls) = my("mysql://u@h/db").unwrap();
        assert_eq!(driver, "mysql://u@h/db");
        assert_eq!(tls.mode, TlsMode::Prefer, "MySQL's default");
        // --ssl-ca alone means VERIFY_CA; REQUIRED with a CA stays REQUIRED.
        let (_, tls) = my(&format!("mysql://u@h/db?ssl-ca={p}")).unwrap();
        assert_eq!(tls.mode, TlsMode::VerifyCa);
        let (_, tls) = my(&format!("mysql://u@h/db?ssl-mode=REQUIRED&ssl-ca={p}")).unwrap();
        assert_eq!(tls.mode, TlsMode::Require);
        let e = my("mysql://u@h/db?require_ssl=true").unwrap_err();
        assert!(e.to_string().contains("ssl-mode=DISABLED|PREFERRED"), "{e}");
        let e = my("mysql://u@h/db?ssl-mode=on").unwrap_err();
        assert!(e.to_string().contains("VERIFY_IDENTITY"), "{e}");
    }
}
