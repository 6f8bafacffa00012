//! One error type for the whole program: a kind (what failed, used to decide retry-or-stop), the
//! cause in words, and the fix the operator should apply. Secrets never enter these strings:
//! connection strings are redacted with [`redact_url`] before they are formatted in.

use std::fmt;

/// What failed; decides the exit path and whether a retry can help ([`Error::retryable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The task file, a setting or the table mappings are invalid.
    Config,
    /// The source database cannot be reached (network, DNS, server down).
    SourceConnect,
    /// The source rejected our credentials.
    SourceAuth,
    /// The source user lacks a privilege.
    SourcePrivilege,
    /// A source object changed under us (table dropped or altered during the load).
    SourceSchema,
    /// Any other error reported by the source database.
    Source,
    /// The target bucket/folder is missing or access is denied.
    TargetAccess,
    /// Writing to the target failed (network, 5xx after retries, disk full).
    TargetWrite,
    /// A value cannot be represented in the target format.
    Data,
    /// Local state (checkpoint) cannot be read or written.
    State,
    /// Another live process holds the task's lease: this one did not start.
    LeaseHeld,
    /// This process lost the task's lease (taken over, or not renewed in time) and stopped
    /// writing.
    LeaseLost,
    /// The task was interrupted (SIGINT/SIGTERM).
    Interrupted,
    /// The run ended, but some tables failed and were suspended (`TableErrorPolicy`).
    TablesFailed,
    /// A bug: an invariant did not hold.
    Internal,
}

/// A failure with its cause and the fix to apply.
#[derive(Debug)]
pub struct Error {
    /// What failed.
    pub kind: ErrorKind,
    /// The cause, in one sentence.
    pub message: String,
    /// What the operator should do about it.
    pub fix: String,
    /// The underlying error, kept for `--verbose` style chains and logs.
    pub(crate) source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error of `kind` with its cause and fix.
    pub(crate) fn new(
        kind: ErrorKind,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            fix: fix.into(),
            source: None,
        }
    }

    /// An invalid task file or setting.
    pub(crate) fn config(message: impl Into<String>, fix: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message, fix)
    }

    /// A broken invariant; the fix is to report it.
    pub(crate) fn internal(message: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::Internal,
            message,
            "this is a bug in tributary; please report it with the log",
        )
    }

    /// Attaches the underlying error.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// The same kind, cause and fix, without the underlying error: one cause reported at
    /// several places (each change of a table whose shape the source could not read).
    pub(crate) fn duplicate(&self) -> Error {
        Error::new(self.kind, self.message.clone(), self.fix.clone())
    }

    /// Prefixes the cause with context (table, object key, ...).
    pub(crate) fn context(mut self, what: impl fmt::Display) -> Error {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The single place that decides retry-or-stop: only transient conditions are retried (a
    /// lost source connection, a server restart or failover, a target outage that outlived the
    /// store's own retries). Everything else needs the operator's fix.
    pub(crate) fn retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::SourceConnect | ErrorKind::TargetWrite)
    }

    /// True when the error concerns one table — its data, its definition, its rows on the
    /// source — so `TableErrorPolicy` `SUSPEND_TABLE` can stop that table and let the others
    /// finish. Connection, credential, target and state errors concern every table.
    pub(crate) fn table_scoped(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Data
                | ErrorKind::SourceSchema
                | ErrorKind::Source
                | ErrorKind::SourcePrivilege
        )
    }

    /// Process exit code for this error (distinct codes let scripts tell config errors apart).
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Config => 2,
            ErrorKind::Interrupted => 130,
            ErrorKind::TablesFailed => 3,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message.trim_end_matches('.'))?;
        if !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Replaces the password (and any `password=` query parameter) in a connection URL with `***`,
/// so URLs can appear in logs and errors.
pub(crate) fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let secret = k.eq_ignore_ascii_case("password") || k.contains("secret");
                    (
                        k.into_owned(),
                        if secret { "***".into() } else { v.into_owned() },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Not a URL we understand: show nothing after the scheme rather than risk a secret.
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?password=x&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(redact_url("host=h password=x"), "***");
        assert!(!redact_url("mysql://root:pw@127.0.0.1:3306/").contains("pw"));
    }

    /// Exit code 2 means an invalid task file and nothing else: a value that does not fit, or
    /// any failure at run time, is 1.
    #[test]
    fn only_an_invalid_task_file_exits_2() {
        let code = |kind| Error::new(kind, "x", "y").exit_code();
        assert_eq!(code(ErrorKind::Config), 2);
        for kind in [
            ErrorKind::Data,
            ErrorKind::SourceConnect,
            ErrorKind::Source,
            ErrorKind::TargetWrite,
            ErrorKind::State,
            ErrorKind::Internal,
        ] {
            assert_eq!(code(kind), 1, "{kind:?}");
        }
        assert_eq!(code(ErrorKind::Interrupted), 130);
    }

    #[test]
    fn display_joins_cause_and_fix() {
        let e = Error::config("MaxFileSize is 0.", "set it between 1 and 1048576 (KB)");
        assert_eq!(
            e.to_string(),
            "MaxFileSize is 0; set it between 1 and 1048576 (KB)"
        );
    }
}
