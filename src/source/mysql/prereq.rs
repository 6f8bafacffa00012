//! What a MySQL/MariaDB source needs, checked before a run and by `validate`: binary log
//! settings (reference §7.1) and privileges, each problem with its fix.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::my_error;
use crate::config::MigrationType;
use crate::error::{Error, ErrorKind, Result};

/// Binlog retention below this many seconds is reported (DMS asks for at least one day).
pub(super) const MIN_RETENTION_S: u64 = 86_400;

/// A server variable's value, None when the server does not have it.
async fn variable(conn: &mut Conn, name: &str) -> Result<Option<String>> {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await
        .map_err(|e| my_error(e, &format!("reading {name}")))?;
    Ok(row.map(|(_, v)| v))
}

/// The current user's grants, upper-cased, joined.
async fn grants(conn: &mut Conn) -> Result<String> {
    let rows: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(|e| my_error(e, "reading the user's grants"))?;
    Ok(rows.join("\n").to_uppercase())
}

/// True when the grants include `privilege` globally (`ON *.*`), directly or through ALL.
fn has_global(grants: &str, privilege: &str) -> bool {
    grants
        .lines()
        .any(|g| g.contains(" ON *.* ") && (g.contains("ALL PRIVILEGES") || g.contains(privilege)))
}

/// Checks the `RELOAD` privilege the consistent snapshot uses: without it the load takes a
/// lock-free snapshot, which costs a full-load-only task only the single instant, and a CDC task
/// also the exact handoff.
pub(super) async fn check_reload(
    conn: &mut Conn,
    migration: MigrationType,
) -> Result<Option<Error>> {
    let g = grants(conn).await?;
    let cost = if migration == MigrationType::FullLoad {
        "the full load takes a lock-free snapshot, so tables may come from slightly different instants"
    } else {
        "the full load takes a lock-free snapshot, so tables may come from slightly different instants and changes during the load can appear in both LOAD and CDC files"
    };
    Ok((!has_global(&g, "RELOAD")).then(|| {
        Error::new(
            ErrorKind::SourcePrivilege,
            format!("the source user lacks RELOAD: {cost}"),
            "GRANT RELOAD ON *.* TO the task's user for one consistent snapshot (held for milliseconds under FLUSH TABLES WITH READ LOCK)",
        )
    }))
}

/// `binlog_row_metadata` other than FULL, on servers that have it (MySQL ≥ 8.0.1, MariaDB ≥
/// 10.5): the binlog then carries no column names, so rows are matched to columns by position
/// with today's catalog.
pub(super) async fn check_row_metadata(conn: &mut Conn) -> Result<Option<Error>> {
    let Some(value) = variable(conn, "binlog_row_metadata").await? else {
        return Ok(None);
    };
    Ok((!value.eq_ignore_ascii_case("FULL")).then(|| {
        Error::new(
            ErrorKind::Source,
            format!("binlog_row_metadata is {value}: the binlog carries no column names, so changes are matched to columns by position with the table's current definition; changes written before an ALTER TABLE that adds or drops a column stop the task when they are read after it (a restart then needs --restart), and a renamed column's old rows are written under its new name"),
            "set binlog_row_metadata=FULL (server config or parameter group; no restart needed: SET GLOBAL binlog_row_metadata=FULL)",
        )
    }))
}

/// Checks what change capture needs; returns every problem found.
pub(super) async fn check_cdc(conn: &mut Conn) -> Result<Vec<Error>> {
    let mut problems = Vec::new();
    let cfg = |what: String, fix: &str| Error::new(ErrorKind::Source, what, fix.to_string());
    let log_bin = variable(conn, "log_bin").await?.unwrap_or_default();
    if !log_bin.eq_ignore_ascii_case("ON") && log_bin != "1" {
        problems.push(cfg(
            format!("the binary log is off (log_bin={log_bin})"),
            "start the server with log-bin (and server-id ≥ 1); on RDS enable automated backups",
        ));
    }
    let format = variable(conn, "binlog_format").await?.unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        problems.push(cfg(
            format!("binlog_format is {format}; change capture needs ROW"),
            "set binlog_format=ROW (server config or parameter group) and restart the applications' sessions",
        ));
    }
    if let Some(image) = variable(conn, "binlog_row_image").await? {
        if !image.eq_ignore_ascii_case("FULL") {
            problems.push(cfg(
                format!("binlog_row_image is {image}; updates and deletes would lack columns"),
                "set binlog_row_image=FULL",
            ));
        }
    }
    let server_id: u64 = variable(conn, "server_id")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if server_id == 0 {
        problems.push(cfg(
            "server_id is 0: the server does not serve binlog readers".into(),
            "set server-id to a unique value ≥ 1 and restart",
        ));
    }
    let seconds = variable(conn, "binlog_expire_logs_seconds")
        .await?
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0);
    let days = variable(conn, "expire_logs_days")
        .await?
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|&d| d > 0.0);
    let retention = seconds.or(days.map(|d| (d * 86_400.0) as u64));
    if let Some(r) = retention.filter(|&r| r < MIN_RETENTION_S) {
        problems.push(cfg(
            format!("binary logs are kept only {r} s: a stopped task may not be able to resume"),
            "set binlog_expire_logs_seconds ≥ 86400 (MySQL 8) or expire_logs_days ≥ 1",
        ));
    }
    let g = grants(conn).await?;
    if !has_global(&g, "REPLICATION SLAVE") && !has_global(&g, "REPLICATION REPLICA") {
        problems.push(Error::new(
            ErrorKind::SourcePrivilege,
            "the source user lacks REPLICATION SLAVE",
            "GRANT REPLICATION SLAVE ON *.* TO the task's user",
        ));
    }
    if !has_global(&g, "REPLICATION CLIENT")
        && !has_global(&g, "BINLOG MONITOR")
        && !has_global(&g, "SUPER")
    {
        problems.push(Error::new(
            ErrorKind::SourcePrivilege,
            "the source user lacks REPLICATION CLIENT (MariaDB ≥ 10.5: BINLOG MONITOR)",
            "GRANT REPLICATION CLIENT ON *.* (MariaDB: GRANT BINLOG MONITOR ON *.*) TO the task's user",
        ));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_grants_are_recognised() {
        let g =
            "GRANT RELOAD, REPLICATION SLAVE ON *.* TO `t`@`%`\nGRANT SELECT ON `db`.* TO `t`@`%`";
        assert!(has_global(g, "RELOAD"));
        assert!(has_global(g, "REPLICATION SLAVE"));
        assert!(!has_global(g, "REPLICATION CLIENT"));
        assert!(has_global(
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`",
            "RELOAD"
        ));
        assert!(!has_global("GRANT RELOAD ON `db`.* TO `x`", "RELOAD"));
    }
}
