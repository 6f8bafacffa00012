//! Change-capture administration over an ordinary connection: server prerequisites, the
//! publication, replica identities, slot facts, and the heartbeat.

use tokio_postgres::Client;

use super::catalog::quote_ident;
use super::pg_error;
use crate::change::Lsn;
use crate::error::{Error, ErrorKind, Result};

/// Retained WAL above which `validate` warns about a slot (bytes).
pub(super) const SLOT_LAG_WARN_BYTES: u64 = 1024 * 1024 * 1024;

/// Name of DMS's heartbeat table.
pub(super) const HEARTBEAT_TABLE: &str = "awsdms_heartbeat";

/// A problem with the server's change-capture prerequisites, with its fix.
fn prereq(message: String, fix: &str) -> Error {
    Error::new(ErrorKind::SourcePrivilege, message, fix)
}

/// Checks `wal_level`, `max_replication_slots`, `max_wal_senders` and the REPLICATION privilege;
/// returns every problem found.
pub(super) async fn check_prerequisites(client: &Client) -> Result<Vec<Error>> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int,
                    current_setting('max_wal_senders')::int,
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
                    (SELECT count(*)::int FROM pg_replication_slots)",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "reading replication settings"))?;
    let (wal_level, slots, senders): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
    let can_replicate: bool = row.get::<_, Option<bool>>(3).unwrap_or(false);
    let used: i32 = row.get(4);
    let mut problems = Vec::new();
    if wal_level != "logical" {
        problems.push(prereq(
            format!("wal_level is {wal_level}"),
            "set wal_level=logical in postgresql.conf and restart PostgreSQL",
        ));
    }
    if slots < 1 || used >= slots {
        problems.push(prereq(
            format!("max_replication_slots is {slots} and {used} slot(s) exist"),
            "raise max_replication_slots in postgresql.conf (one per task) and restart PostgreSQL, or drop unused slots",
        ));
    }
    if senders < 1 {
        problems.push(prereq(
            format!("max_wal_senders is {senders}"),
            "set max_wal_senders to at least 1 per task in postgresql.conf and restart PostgreSQL",
        ));
    }
    if !can_replicate {
        problems.push(prereq(
            "the source user has no REPLICATION attribute".to_string(),
            "ALTER ROLE <user> REPLICATION (and allow 'replication' connections in pg_hba.conf)",
        ));
    }
    Ok(problems)
}

/// Selected tables that have no replica identity: once published, UPDATE and DELETE on them
/// would fail in the application, so they are refused up front.
pub(super) async fn tables_without_identity(
    client: &Client,
    tables: &[String],
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname || '.' || c.relname = ANY($1) AND c.relkind IN ('r', 'p')
               AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS
                    (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))",
            &[&tables],
        )
        .await
        .map_err(|e| pg_error(e, "reading replica identities"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Tables whose mapping rules (define-primary-key, add-before-image-columns) read columns of
/// the before-image that PostgreSQL sends only under REPLICA IDENTITY FULL, which they lack.
pub(super) async fn identity_problems(
    client: &Client,
    tables: &[std::sync::Arc<crate::change::TableSchema>],
    mappings: &crate::mapping::TableMappings,
) -> Result<Vec<crate::error::Error>> {
    let mut wanting = Vec::new();
    for t in tables {
        let map = mappings.table_map(t)?;
        let unsent: Vec<String> = map
            .key()
            .iter()
            .chain(map.before_columns())
            .filter(|k| !t.key.contains(k))
            .map(|&k| t.columns[k].name.clone())
            .collect();
        if !unsent.is_empty() {
            wanting.push((t.qualified(), unsent));
        }
    }
    if wanting.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&String> = wanting.iter().map(|(t, _)| t).collect();
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname || '.' || c.relname = ANY($1) AND c.relreplident = 'f'",
            &[&names],
        )
        .await
        .map_err(|e| pg_error(e, "reading replica identities"))?;
    let full: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(wanting
        .iter()
        .filter(|(t, _)| !full.contains(t))
        .map(|(t, cols)| {
            let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            super::decode::needs_full_identity(t, &cols)
        })
        .collect())
}

/// Selected tables holding values stored out of line now (a non-empty TOAST table: only those
/// are left out of an UPDATE that does not change them; a text column holding short values is
/// no concern), with their replica identity and TOASTable columns.
pub(super) async fn tables_with_toast(
    client: &Client,
    tables: &[String],
) -> Result<Vec<super::toast::ToastTable>> {
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname, c.relreplident = 'f',
                    string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                               ORDER BY a.attnum)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname || '.' || c.relname = ANY($1)
               AND a.attstorage IN ('x', 'e')
               AND c.reltoastrelid <> 0 AND pg_relation_size(c.reltoastrelid) > 0
             GROUP BY 1, 2 ORDER BY 1",
            &[&tables],
        )
        .await
        .map_err(|e| pg_error(e, "reading column storage"))?;
    Ok(rows
        .iter()
        .map(|r| super::toast::ToastTable {
            name: r.get(0),
            full_identity: r.get(1),
            columns: r.get(2),
        })
        .collect())
}

/// Splits `schema.table` at the first dot (schema names with dots are not supported here).
fn split(qualified: &str) -> (&str, &str) {
    qualified.split_once('.').unwrap_or(("public", qualified))
}

/// Makes sure publication `name` exists and publishes `tables`: creates it if missing, else
/// fails naming the tables it lacks ([`publication_lacks`]). True when it was created.
pub(super) async fn ensure_publication(
    client: &Client,
    name: &str,
    tables: &[String],
) -> Result<bool> {
    match publication_lacks(client, name, tables).await? {
        None => {
            // A partitioned table's changes are then published under its own name, which the
            // task selected and loaded, not under its partitions' (PostgreSQL 13+).
            let via_root = match server_version(client).await? >= 130_000 {
                true => " WITH (publish_via_partition_root = true)",
                false => "",
            };
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR TABLE {}{via_root}",
                    quote_ident(name),
                    quoted_list(tables)
                ))
                .await
                .map_err(|e| pg_error(e, &format!("creating publication {name}")))?;
            Ok(true)
        }
        Some(None) => Ok(false),
        Some(Some(e)) => Err(e),
    }
}

/// `tables` as a quoted SQL list.
fn quoted_list(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| {
            let (s, n) = split(t);
            format!("{}.{}", quote_ident(s), quote_ident(n))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What publication `name` lacks of `tables`: None when there is no such publication,
/// Some(None) when it publishes them all, else the problem naming the missing ones with the fix.
pub(super) async fn publication_lacks(
    client: &Client,
    name: &str,
    tables: &[String],
) -> Result<Option<Option<Error>>> {
    let exists = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, "reading publications"))?;
    let Some(row) = exists else {
        return Ok(None);
    };
    if let Some(problem) = published_through_partitions(client, name, tables).await? {
        return Ok(Some(Some(problem)));
    }
    if row.get::<_, bool>(0) {
        return Ok(Some(None));
    }
    let published: Vec<String> = client
        .query(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, "reading publication tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<String> = tables
        .iter()
        .filter(|t| !published.contains(t))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(Some(None));
    }
    Ok(Some(Some(Error::config(
        format!(
            "publication {name} does not publish {} (selected by table_mappings)",
            missing.join(", ")
        ),
        format!(
            "ALTER PUBLICATION {} ADD TABLE {}; or set PublicationName to a publication that has them",
            quote_ident(name),
            quoted_list(&missing)
        ),
    ))))
}

/// `server_version_num`.
async fn server_version(client: &Client) -> Result<i32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|e| pg_error(e, "reading the server version"))?;
    Ok(row.get(0))
}

/// The problem when publication `name` publishes selected partitioned tables through their
/// partitions (`publish_via_partition_root` off): their changes would arrive under the
/// partitions' names, which the task does not select, and be lost.
async fn published_through_partitions(
    client: &Client,
    name: &str,
    tables: &[String],
) -> Result<Option<Error>> {
    if server_version(client).await? < 130_000 {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'p' AND n.nspname || '.' || c.relname = ANY($2)
               AND NOT (SELECT pubviaroot FROM pg_publication WHERE pubname = $1)
             ORDER BY 1",
            &[&name, &tables],
        )
        .await
        .map_err(|e| pg_error(e, "reading the publication's options"))?;
    let partitioned: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if partitioned.is_empty() {
        return Ok(None);
    }
    Ok(Some(Error::config(
        format!(
            "publication {name} publishes the partitioned table{} {} through {} partitions (publish_via_partition_root is off): {} changes would arrive under the partitions' names and not be written",
            if partitioned.len() == 1 { "" } else { "s" },
            partitioned.join(", "),
            if partitioned.len() == 1 { "its" } else { "their" },
            if partitioned.len() == 1 { "its" } else { "their" },
        ),
        format!(
            "ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
            quote_ident(name)
        ),
    )))
}

/// Facts about a replication slot.
#[derive(Debug, Clone)]
pub(super) struct SlotInfo {
    /// The position the slot confirmed.
    pub(crate) confirmed_flush: Option<Lsn>,
    /// WAL retained for the slot, bytes.
    pub(crate) retained_bytes: Option<u64>,
}

/// Reads slot `name`; None when it does not exist.
pub(super) async fn slot_info(client: &Client, name: &str) -> Result<Option<SlotInfo>> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, "reading replication slots"))?;
    Ok(row.map(|r| SlotInfo {
        confirmed_flush: r.get::<_, Option<String>>(0).and_then(|s| s.parse().ok()),
        retained_bytes: r.get::<_, Option<i64>>(1).map(|b| b.max(0) as u64),
    }))
}

/// Drops slot `name` if it exists and is idle.
pub(super) async fn drop_slot(client: &Client, name: &str) -> Result<()> {
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
             WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, &format!("dropping replication slot {name}")))?;
    Ok(())
}

/// Whether slot `name` exists, and the server process streaming from it: None when there is
/// no such slot, Some(None) when it is idle.
pub(super) async fn slot_owner(client: &Client, name: &str) -> Result<Option<Option<i32>>> {
    let row = client
        .query_opt(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, "reading replication slots"))?;
    Ok(row.map(|r| r.get::<_, Option<i32>>(0)))
}

/// True when publication `name` exists.
pub(super) async fn publication_exists(client: &Client, name: &str) -> Result<bool> {
    let row = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(|e| pg_error(e, "reading publications"))?;
    Ok(row.is_some())
}

/// Drops publication `name` if it exists.
pub(super) async fn drop_publication(client: &Client, name: &str) -> Result<()> {
    client
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)))
        .await
        .map_err(|e| pg_error(e, &format!("dropping publication {name}")))
}

/// How many heartbeat rows in `schema` another writer than `task` created or last wrote; None
/// when there is no heartbeat table.
pub(super) async fn heartbeat_writers(
    client: &Client,
    schema: &str,
    task: &str,
) -> Result<Option<i64>> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
            &[&schema, &HEARTBEAT_TABLE],
        )
        .await
        .map_err(|e| pg_error(e, "reading tables"))?;
    if exists.is_none() {
        return Ok(None);
    }
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.{HEARTBEAT_TABLE}
                 WHERE hb_created_by IS DISTINCT FROM $1 OR hb_last_heartbeat_by IS DISTINCT FROM $1",
                quote_ident(schema)
            ),
            &[&task],
        )
        .await
        .map_err(|e| pg_error(e, "reading the heartbeat table"))?;
    Ok(Some(row.get(0)))
}

/// Drops the heartbeat table in `schema`.
pub(super) async fn drop_heartbeat(client: &Client, schema: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {}.{HEARTBEAT_TABLE}",
            quote_ident(schema)
        ))
        .await
        .map_err(|e| pg_error(e, "dropping the heartbeat table"))
}

/// Creates the heartbeat table in `schema` if needed (DMS's `awsdms_heartbeat` shape).
pub(super) async fn ensure_heartbeat(client: &Client, schema: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {}.{HEARTBEAT_TABLE} (
                hb_key int PRIMARY KEY, hb_created_at timestamp, hb_created_by varchar(64),
                hb_last_heartbeat_at timestamp, hb_last_heartbeat_by varchar(64))",
            quote_ident(schema)
        ))
        .await
        .map_err(|e| pg_error(e, "creating the heartbeat table"))
}

/// Writes one heartbeat transaction, so an idle database still moves the slot forward.
pub(super) async fn heartbeat(client: &Client, schema: &str, task: &str) -> Result<()> {
    client
        .execute(
            &format!(
                "INSERT INTO {}.{HEARTBEAT_TABLE} VALUES (1, now(), $1, now(), $1)
                 ON CONFLICT (hb_key) DO UPDATE
                 SET hb_last_heartbeat_at = now(), hb_last_heartbeat_by = $1",
                quote_ident(schema)
            ),
            &[&task],
        )
        .await
        .map_err(|e| pg_error(e, "writing the heartbeat"))?;
    Ok(())
}
