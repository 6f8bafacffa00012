//! Change capture set-up on PostgreSQL: prerequisites, the publication, the slot, and the
//! snapshot→stream hand-off.
//!
//! Hand-off: the slot is created with an exported snapshot; the full load reads that snapshot,
//! and streaming starts at the slot's consistent point, so each committed change is in the LOAD
//! files or in the CDC files, never both and never neither. A load interrupted by a crash
//! resumes on a *temporary* slot's fresh snapshot at a later point C2; the task records C2 as
//! the point those tables were loaded at, and their changes before it are skipped.

use async_trait::async_trait;
use tokio_postgres::Client;

use super::replication::PgReplication;
use super::snapshot::PgSnapshot;
use super::stream::PgStream;
use super::{connect_timed, no_tables, slot, Selection};
use crate::change::{Lsn, Position};
use crate::checkpoint::CdcState;
use crate::error::{Error, Result};
use crate::source::stream::ChangeStream;
use crate::source::{Capture, Handoff, Snapshot};

/// Change capture on a prepared PostgreSQL source.
pub(super) struct PgCapture {
    sel: Selection,
    admin: Client,
}

impl PgCapture {
    /// Checks the prerequisites, refuses tables whose updates PostgreSQL would reject once
    /// published, and creates the publication (and heartbeat table).
    pub(super) async fn prepare(sel: Selection) -> Result<PgCapture> {
        let admin = connect_timed(&sel.config).await?;
        if let Some(first) = slot::check_prerequisites(&admin).await?.into_iter().next() {
            return Err(first);
        }
        let selected: Vec<_> =
            super::catalog::selected_tables(&admin, &sel.mappings, sel.lobs, sel.config.types)
                .await?
                .into_iter()
                .filter(|t| t.source.kind == crate::mapping::RelationKind::Table)
                .map(|t| t.source.schema)
                .collect();
        if let Some(first) = slot::identity_problems(&admin, &selected, &sel.mappings)
            .await?
            .into_iter()
            .next()
        {
            return Err(first);
        }
        let tables: Vec<String> = selected.iter().map(|t| t.qualified()).collect();
        if tables.is_empty() {
            return Err(no_tables());
        }
        let no_identity = slot::tables_without_identity(&admin, &tables).await?;
        if !no_identity.is_empty() {
            let one = no_identity.len() == 1;
            return Err(Error::config(
                format!(
                    "{} ha{} no primary key or replica identity: once published, UPDATE and DELETE on {} would fail in your application",
                    no_identity.join(", "),
                    if one { "s" } else { "ve" },
                    if one { "it" } else { "them" },
                ),
                format!(
                    "ALTER TABLE {} REPLICA IDENTITY FULL (or add a primary key), or exclude the table in table_mappings",
                    no_identity[0]
                ),
            ));
        }
        slot::ensure_publication(&admin, &sel.config.publication, &tables).await?;
        if let Some(hb) = &sel.config.heartbeat {
            slot::ensure_heartbeat(&admin, &hb.schema).await?;
        }
        Ok(PgCapture { sel, admin })
    }

    /// Imports the snapshot a replication session exported, keeping the session (which must
    /// stay open and idle while the snapshot is in use) until the snapshot is closed.
    async fn handoff(
        &self,
        mut session: PgReplication,
        name: &str,
        temporary: bool,
    ) -> Result<Handoff> {
        let created = session.create_slot(name, true, temporary).await?;
        let exported = created
            .snapshot
            .ok_or_else(|| Error::internal("the replication slot exported no snapshot"))?;
        let sel = &self.sel;
        let snapshot = PgSnapshot::import(&sel.config, &exported, &sel.mappings, sel.lobs).await?;
        Ok(Handoff {
            position: Position::Postgres(created.consistent_point),
            snapshot: Box::new(SlotSnapshot {
                inner: snapshot,
                session: tokio::sync::Mutex::new(Some(session)),
            }),
        })
    }
}

#[async_trait]
impl Capture for PgCapture {
    async fn start(
        &mut self,
        state: &mut CdcState,
        load: bool,
        save: &mut (dyn for<'s> FnMut(&'s CdcState) -> Result<()> + Send),
    ) -> Result<Option<Handoff>> {
        let c = &self.sel.config;
        state.slot = c.slot_name.clone();
        state.publication = c.publication.clone();
        let mut existing = slot::slot_info(&self.admin, &c.slot_name).await?;
        if existing.is_some() && state.created_slot {
            // A previous attempt created the slot and died before recording where it starts:
            // nothing was written from it, so start over with a fresh one.
            slot::drop_slot(&self.admin, &c.slot_name).await?;
            existing = None;
        }
        match existing {
            Some(info) if !load && c.slot_given => {
                // DMS's native start: an existing slot, optionally at CdcStartPosition.
                let start: Lsn = c
                    .start
                    .or(info.confirmed_flush)
                    .ok_or_else(|| Error::internal("slot without a confirmed position"))?;
                state.resume_from = Some(Position::Postgres(start));
                Ok(None)
            }
            Some(_) => Err(Error::config(
                format!("replication slot {} already exists but this task's checkpoint does not know it", c.slot_name),
                format!("drop it (SELECT pg_drop_replication_slot('{0}')) or, for a cdc task, set SlotName = \"{0}\" to read from it", c.slot_name),
            )),
            None if c.start.is_some() => Err(Error::config(
                format!("replication slot {} does not exist", c.slot_name),
                "create it first (cdc_start_position needs an existing slot), or remove cdc_start_position",
            )),
            None => {
                // Recorded first, so a crash right after creation is recognised as ours.
                state.created_slot = true;
                save(state)?;
                let mut session =
                    PgReplication::connect(c, &c.slot_name, &c.publication, None).await?;
                if load {
                    let handoff = self.handoff(session, &c.slot_name, false).await?;
                    tracing::info!(slot = %c.slot_name, consistent_point = %handoff.position, "replication slot created");
                    state.resume_from = Some(handoff.position.clone());
                    return Ok(Some(handoff));
                }
                let created = session.create_slot(&c.slot_name, false, false).await?;
                tracing::info!(slot = %c.slot_name, consistent_point = %created.consistent_point, "replication slot created");
                state.resume_from = Some(Position::Postgres(created.consistent_point));
                Ok(None)
            }
        }
    }

    async fn reload(&mut self) -> Result<Handoff> {
        let c = &self.sel.config;
        // Unique per process: a killed predecessor's temporary slot may linger until the
        // server notices its connection is gone.
        let tmp = format!(
            "{}_load_{}",
            &c.slot_name[..c.slot_name.len().min(45)],
            std::process::id()
        );
        let session = PgReplication::connect(c, &tmp, &c.publication, None).await?;
        self.handoff(session, &tmp, true).await
    }

    async fn stream(&mut self) -> Result<Box<dyn ChangeStream>> {
        Ok(Box::new(PgStream::new(self.sel.clone())))
    }
}

/// A snapshot exported by a replication session, which is kept open until the snapshot closes
/// (a temporary slot is dropped with it).
struct SlotSnapshot {
    inner: PgSnapshot,
    session: tokio::sync::Mutex<Option<PgReplication>>,
}

#[async_trait]
impl Snapshot for SlotSnapshot {
    async fn tables(&self) -> Result<Vec<crate::source::SourceTable>> {
        self.inner.tables().await
    }

    fn read_table(
        &self,
        table: &crate::source::SourceTable,
        segment: Option<&crate::mapping::segments::Segment>,
        opts: crate::source::ReadOptions,
        tx: tokio::sync::mpsc::Sender<crate::change::RowBatch>,
        progress: std::sync::Arc<crate::source::ReadProgress>,
    ) -> futures::future::BoxFuture<'static, Result<u64>> {
        self.inner.read_table(table, segment, opts, tx, progress)
    }

    async fn split(
        &self,
        table: &crate::source::SourceTable,
        chunk_bytes: u64,
    ) -> Result<crate::source::Split> {
        self.inner.split(table, chunk_bytes).await
    }

    async fn close(&self) -> Result<()> {
        let r = self.inner.close().await;
        self.session.lock().await.take();
        r
    }
}
