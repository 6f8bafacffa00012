//! Binlog plumbing for change capture: opening a dump at a file/offset or a MariaDB GTID, the
//! names ROTATE events carry, and the statements (DDL, TRUNCATE) a QUERY event holds.
//!
//! The transport and event parsing are `mysql_async`'s (over `mysql_common`).

use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest};

use super::{connect, my_error};
use crate::change::BinlogPos;
use crate::config::source::MyConfig;
use crate::error::{Error, ErrorKind, Result};

/// Seconds between the server's heartbeat events on an idle binlog dump (DMS's
/// `EventsPollInterval` default), so a dead connection is noticed.
pub(super) const HEARTBEAT_S: u64 = 5;

/// MariaDB's GTID event type (not parsed by `mysql_common`; it only marks a transaction start).
const MARIADB_GTID_EVENT: u8 = 0xA2;

/// Opens a binlog dump at `pos` as replica `server_id`.
pub(super) async fn open(
    source: &MyConfig,
    server_id: u32,
    pos: &BinlogPos,
) -> Result<BinlogStream> {
    let mut conn = connect(source).await?;
    conn.query_drop(format!(
        "SET @master_heartbeat_period = {}",
        HEARTBEAT_S * 1_000_000_000
    ))
    .await
    .map_err(|e| my_error(e, "setting the binlog heartbeat"))?;
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(pos.file.as_bytes())
        .with_pos(pos.offset);
    conn.get_binlog_stream(request).await.map_err(|e| {
        my_error(
            e,
            &format!("starting the binlog dump at {}:{}", pos.file, pos.offset),
        )
    })
}

/// The file a ROTATE event names. The artificial ROTATE a dump starts with precedes the
/// FORMAT_DESCRIPTION that announces checksums, so `mysql_common` leaves the 4-byte CRC on its
/// name; it names the file the dump was asked for, so that name is kept when it matches.
pub(super) fn rotated_name(raw: &[u8], current: &str, artificial: bool) -> String {
    if artificial && !current.is_empty() && raw.starts_with(current.as_bytes()) {
        return current.to_string();
    }
    let clean = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let mut name = raw;
    if artificial && name.len() > 4 && !name[name.len() - 4..].iter().all(clean) {
        name = &name[..name.len() - 4];
    }
    String::from_utf8_lossy(name).into_owned()
}

/// The binlog file and offset right after MariaDB GTID position `gtid`: the server streams
/// from it (`@slave_connect_state`), and the first transaction it sends gives the position; when
/// nothing follows yet, the first heartbeat's position (the current end) does.
pub(super) async fn gtid_position(
    source: &MyConfig,
    server_id: u32,
    gtid: &str,
) -> Result<BinlogPos> {
    let mut conn = connect(source).await?;
    conn.query_drop(format!(
        "SET @mariadb_slave_capability = 4, @slave_connect_state = '{}', @master_heartbeat_period = 1000000000",
        gtid.replace('\'', "")
    ))
    .await
    .map_err(|e| my_error(e, "setting the GTID start position"))?;
    // An empty file name: the server positions by the GTID state instead.
    let mut stream = conn
        .get_binlog_stream(BinlogStreamRequest::new(server_id))
        .await
        .map_err(|e| my_error(e, &format!("starting the binlog dump at GTID {gtid}")))?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut file = String::new();
    loop {
        let next = tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut stream))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Source,
                    format!("the server sent no position for GTID {gtid} within 30 s"),
                    "check the GTID against SELECT @@gtid_binlog_pos, or use a file:offset start position",
                )
            })?;
        let event = match next {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(my_error(e, &format!("positioning at GTID {gtid}"))),
            None => {
                return Err(Error::new(
                    ErrorKind::Source,
                    format!("the server closed the dump at GTID {gtid}"),
                    "check the GTID against SELECT @@gtid_binlog_pos (it may be purged)",
                ))
            }
        };
        let h = event.header();
        let (end, size) = (u64::from(h.log_pos()), u64::from(h.event_size()));
        if is_gtid(h.event_type_raw()) && end >= size && !file.is_empty() {
            return Ok(BinlogPos {
                file,
                offset: end - size,
            });
        }
        match event.read_data() {
            Ok(Some(mysql_async::binlog::events::EventData::RotateEvent(r))) => {
                file = rotated_name(r.name_raw(), "", end == 0);
            }
            Ok(Some(mysql_async::binlog::events::EventData::HeartbeatEvent))
                if end > 0 && !file.is_empty() =>
            {
                return Ok(BinlogPos { file, offset: end });
            }
            _ => {}
        }
    }
}

/// True for an event that opens a transaction without a `BEGIN` query (MariaDB GTID).
pub(super) fn is_gtid(event_type: u8) -> bool {
    event_type == MARIADB_GTID_EVENT
}

/// The table a `TRUNCATE [TABLE] [db.]name` statement names, given the statement's default
/// database; None for other statements.
pub(super) fn truncated_table(query: &str, default_db: &str) -> Option<(String, String)> {
    let q = strip_comments(query);
    let mut words = q.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("truncate") {
        return None;
    }
    let mut name = words.next()?;
    if name.eq_ignore_ascii_case("table") {
        name = words.next()?;
    }
    let parts: Vec<String> = split_qualified(name.trim_end_matches(';'));
    match parts.as_slice() {
        [t] => Some((default_db.to_string(), t.clone())),
        [d, t] => Some((d.clone(), t.clone())),
        _ => None,
    }
}

/// True for statements that may change a table's shape (the catalog must be read again).
pub(super) fn is_ddl(query: &str) -> bool {
    let q = strip_comments(query);
    let first = q
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "ALTER" | "CREATE" | "DROP" | "RENAME" | "TRUNCATE"
    )
}

/// The statement without leading `/* ... */` and `#`/`--` comment lines.
fn strip_comments(q: &str) -> &str {
    let mut q = q.trim_start();
    loop {
        if let Some(rest) = q.strip_prefix("/*") {
            q = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else if q.starts_with('#') || q.starts_with("--") {
            q = q.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else {
            return q;
        }
    }
}

/// Splits `` `db`.`t` `` / `db.t` / `t` into unquoted parts.
fn split_qualified(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' if quoted && chars.peek() == Some(&'`') => {
                cur.push('`');
                chars.next();
            }
            '`' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_names_lose_the_checksum() {
        let mut raw = b"mysql-bin.000001".to_vec();
        raw.extend_from_slice(&[0xd1, 0xb3, 0xff, b'j']);
        assert_eq!(
            rotated_name(&raw, "mysql-bin.000001", true),
            "mysql-bin.000001"
        );
        assert_eq!(rotated_name(&raw, "other.000009", true), "mysql-bin.000001");
        assert_eq!(
            rotated_name(b"mysql-bin.000002", "mysql-bin.000001", false),
            "mysql-bin.000002"
        );
    }

    #[test]
    fn statements_are_recognised() {
        assert_eq!(
            truncated_table("TRUNCATE TABLE `db`.`t1`", "x"),
            Some(("db".into(), "t1".into()))
        );
        assert_eq!(
            truncated_table("/* c */ truncate t2", "x"),
            Some(("x".into(), "t2".into()))
        );
        assert_eq!(truncated_table("ALTER TABLE t ADD c INT", "x"), None);
        assert!(is_ddl("ALTER TABLE t ADD c INT AFTER id"));
        assert!(!is_ddl("BEGIN"));
    }
}
