//! Why a connection to a source failed, when the network or the server says so: a host name
//! that does not resolve, a port nothing listens on, no answer in time, or a session the server
//! ended. Shared by both engines, so each cause reads the same and names the same fix; TLS
//! failures are [`crate::source::tls`]'s.
//!
//! The drivers wrap the `std::io::Error` in their own types (some keep it as a source, some
//! only as text), so a cause is looked for in both: the `io::ErrorKind` first, the words of the
//! chain second.

use crate::error::{Error, ErrorKind};

/// A network-level cause of a failed or lost connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The host name does not resolve.
    Dns,
    /// Nothing listens on the port (connection refused).
    Refused,
    /// No answer in time.
    Timeout,
    /// An open connection was closed by the server (or the network between).
    Closed,
}

/// Where a connection went: the host as the URL names it, and the port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint<'a> {
    /// Host name or address.
    pub(crate) host: &'a str,
    /// TCP port.
    pub(crate) port: u16,
}

/// The cause `err` (a driver error, searched down its causes) reports; None when it names none.
pub(crate) fn find(err: &(dyn std::error::Error + 'static)) -> Option<Cause> {
    let mut text = String::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        text.push_str(&e.to_string());
        text.push_str(": ");
        // `io::Error::source` skips the error it wraps; look inside it ourselves.
        let io = e.downcast_ref::<std::io::Error>();
        if let Some(cause) = io.and_then(|io| from_kind(io.kind())) {
            // A failed lookup has no kind of its own; its words say what it was.
            return Some(
                from_text(&text)
                    .filter(|c| *c == Cause::Dns)
                    .unwrap_or(cause),
            );
        }
        cur = match io.and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    from_text(&text)
}

/// The cause an `io::ErrorKind` stands for.
fn from_kind(kind: std::io::ErrorKind) -> Option<Cause> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => Cause::Refused,
        K::TimedOut => Cause::Timeout,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Cause::Closed
        }
        _ => return None,
    })
}

/// The cause a driver's message names (glibc's and musl's resolver words, the OS's `strerror`).
pub(crate) fn from_text(text: &str) -> Option<Cause> {
    let t = text.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if any(&[
        "failed to lookup address",
        "name or service not known",
        "temporary failure in name resolution",
        "no address associated with hostname",
        "nodename nor servname",
        "name does not resolve",
    ]) {
        Some(Cause::Dns)
    } else if any(&["connection refused"]) {
        Some(Cause::Refused)
    } else if any(&["timed out", "timeout"]) {
        Some(Cause::Timeout)
    } else if any(&[
        "connection reset",
        "broken pipe",
        "unexpected eof",
        "connection closed",
        "connection to the server is closed",
    ]) {
        Some(Cause::Closed)
    } else {
        None
    }
}

/// The error for `cause` met by `engine` ("PostgreSQL", "MySQL") while `doing`, naming the host
/// and port when known. A lost connection is retryable: the task reconnects by itself.
pub(crate) fn describe(engine: &str, at: Option<Endpoint<'_>>, doing: &str, cause: Cause) -> Error {
    let (message, fix) = match (cause, at) {
        (Cause::Dns, Some(at)) => (
            format!(
                "the host name {:?} does not resolve (DNS lookup failed) while {doing}",
                at.host
            ),
            format!(
                "check the host name {:?} in [source] url: a typo, or a private name this machine's DNS cannot see",
                at.host
            ),
        ),
        (Cause::Dns, None) => (
            format!("the {engine} server's host name does not resolve (DNS lookup failed) while {doing}"),
            "check the host name in [source] url".to_string(),
        ),
        (Cause::Refused, Some(at)) => (
            format!(
                "nothing listens on {}:{} (connection refused) while {doing}",
                at.host, at.port
            ),
            format!(
                "start the {engine} server, or fix the port in [source] url to the one it listens on"
            ),
        ),
        (Cause::Refused, None) => (
            format!("the {engine} server refused the connection while {doing}"),
            format!("start the {engine} server, or fix host and port in [source] url"),
        ),
        (Cause::Timeout, at) => (
            match at {
                Some(at) => format!("{}:{} did not answer in time while {doing}", at.host, at.port),
                None => format!("the {engine} server did not answer in time while {doing}"),
            },
            "check that the server is up and that the network lets this machine reach it (firewall, security group, route); the task retries".to_string(),
        ),
        (Cause::Closed, _) => (
            format!("the {engine} server closed the connection while {doing}"),
            "the session was ended on the server (by an administrator, a restart or a failover) or by the network; the task reconnects by itself".to_string(),
        ),
    };
    Error::new(ErrorKind::SourceConnect, message, fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_and_resolver_words_are_told_apart() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(find(&refused), Some(Cause::Refused));
        let dns = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(find(&dns), Some(Cause::Dns));
        assert_eq!(
            from_text("io error: Connection refused (os error 111)"),
            Some(Cause::Refused)
        );
        assert_eq!(from_text("password authentication failed"), None);
    }

    #[test]
    fn messages_name_the_place_and_the_fix() {
        let at = Endpoint {
            host: "db.invalid",
            port: 5432,
        };
        let e = describe("PostgreSQL", Some(at), "connecting", Cause::Dns).to_string();
        assert!(e.contains("\"db.invalid\" does not resolve"), "{e}");
        assert!(!e.contains("sslmode"), "{e}");
        let e = describe("PostgreSQL", Some(at), "connecting", Cause::Refused).to_string();
        assert!(e.contains("nothing listens on db.invalid:5432"), "{e}");
        assert!(e.contains("start the PostgreSQL server"), "{e}");
    }
}
