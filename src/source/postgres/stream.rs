//! The PostgreSQL change stream: pgoutput from the task's slot, decoded into the sink.
//!
//! A change's position is (its transaction's commit LSN, its ordinal among the transaction's
//! changes): pgoutput's Begin already carries the commit LSN, and decoding the same WAL again
//! yields the same ordinals. Starting at P, the server sends every transaction committed at or
//! after P (and after the slot's confirmed position).

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::decode::{Looked, Relations, RowOptions};
use super::pgoutput::{self, Message};
use super::replication::{PgReplication, StreamEvent};
use super::{slot, Helper, Selection};
use crate::change::{ChangePos, Lsn, Op, Position};
use crate::config::source::UnchangedToast;
use crate::error::{Error, ErrorKind, Result};
use crate::source::stream::{ChangeSink, ChangeStream, Inbox};

/// How often the running task checks the slot's retained WAL.
const LAG_CHECK: Duration = Duration::from_secs(60);

/// pgoutput from one slot, over sessions that come and go.
pub(super) struct PgStream {
    sel: Selection,
    session: Option<PgReplication>,
    /// The event `ready` received, for `apply`.
    inbox: Inbox<StreamEvent>,
    rels: Relations,
    /// Catalog reads, lookups, heartbeat and slot checks.
    helper: Helper,
    /// The open transaction's commit LSN.
    txn: Option<Lsn>,
    seq: u64,
    last_heartbeat: Instant,
    last_lag_check: Instant,
}

impl PgStream {
    pub(super) fn new(sel: Selection) -> PgStream {
        PgStream {
            rels: Relations::new(RowOptions {
                mappings: sel.mappings.clone(),
                lobs: sel.lobs,
                unchanged: sel.config.unchanged_toast.clone(),
                types: sel.config.types,
            }),
            helper: Helper::new(sel.config.clone()),
            sel,
            session: None,
            inbox: Inbox::new(),
            txn: None,
            seq: 0,
            last_heartbeat: Instant::now(),
            last_lag_check: Instant::now(),
        }
    }

    /// The next change position in the open transaction.
    fn next_pos(&mut self) -> Result<ChangePos> {
        let lsn = self
            .txn
            .ok_or_else(|| Error::internal("row change outside a transaction"))?;
        self.seq += 1;
        Ok(ChangePos {
            commit: Position::Postgres(lsn),
            seq: self.seq,
        })
    }

    /// Hands one pgoutput message to the sink.
    async fn message(&mut self, msg: Message<'_>, sink: &mut dyn ChangeSink) -> Result<()> {
        match msg {
            Message::Relation(r) => {
                let rel = self.rels.update(&r, &mut self.helper).await?;
                if let Some(e) = &rel.failed {
                    tracing::warn!(table = %rel.key, error = %e, "the table's changes cannot be decoded from here on");
                } else if rel.selected {
                    let schema = rel.schema.clone();
                    sink.shape(&schema).await?;
                }
            }
            Message::Insert { relation, new } => {
                let pos = self.next_pos()?;
                let rels = &self.rels;
                let Some(rel) = selected(rels, relation)? else {
                    return Ok(());
                };
                if let Some(e) = &rel.failed {
                    return sink.table_error(&rel.key, pos, e.duplicate()).await;
                }
                let none = Looked::new();
                let fill = &mut |out: &mut _| rels.push_row(rel, &new, None, &none, out);
                sink.change(&rel.key, Op::Insert, pos, fill).await?;
            }
            Message::Update {
                relation,
                key,
                old,
                new,
            } => {
                // The old tuple the server sent: the identity columns when they changed, the
                // whole row under REPLICA IDENTITY FULL.
                let before = key.as_ref().or(old.as_ref());
                // The key changed: the old key's row is gone, so a replay must delete it. A
                // sent key tuple always takes a position (as before keys could be defined).
                let moved = selected(&self.rels, relation)?
                    .is_some_and(|rel| self.rels.moved(rel, before, &new));
                let moved_at = (key.is_some() || moved)
                    .then(|| self.next_pos())
                    .transpose()?;
                let pos = self.next_pos()?;
                let Self { rels, helper, .. } = self;
                let Some(rel) = selected(rels, relation)? else {
                    return Ok(());
                };
                if let Some(e) = &rel.failed {
                    return sink.table_error(&rel.key, pos, e.duplicate()).await;
                }
                if let (Some(old_row), Some(at), true) = (before, moved_at, moved) {
                    let fill = &mut |out: &mut _| rels.push_before_image(rel, old_row, out);
                    sink.change(&rel.key, Op::Delete, at, fill).await?;
                }
                let missing = rels.missing(rel, &new, old.as_ref());
                let looked = match rels.unchanged() {
                    UnchangedToast::Lookup(_) if !missing.is_empty() => {
                        match rels.lookup(helper, rel, &new, &missing).await {
                            Ok(looked) => looked,
                            // The table's row could not be read back (a privilege, a changed
                            // definition): this table's change, not the stream's.
                            Err(e) if !e.retryable() && e.kind != ErrorKind::Internal => {
                                return sink.table_error(&rel.key, pos, e).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    _ => Looked::new(),
                };
                let fill = &mut |out: &mut _| rels.push_row(rel, &new, old.as_ref(), &looked, out);
                let image = &mut |out: &mut _| rels.push_update_before(rel, before, &new, out);
                sink.update(&rel.key, pos, fill, image).await?;
            }
            Message::Delete { relation, key, old } => {
                let pos = self.next_pos()?;
                let rels = &self.rels;
                let (Some(rel), Some(before)) = (selected(rels, relation)?, old.or(key)) else {
                    return Ok(());
                };
                if let Some(e) = &rel.failed {
                    return sink.table_error(&rel.key, pos, e.duplicate()).await;
                }
                let fill = &mut |out: &mut _| rels.push_before_image(rel, &before, out);
                sink.change(&rel.key, Op::Delete, pos, fill).await?;
            }
            Message::Truncate { relations, .. } => {
                for oid in relations {
                    let pos = self.next_pos()?;
                    if let Some(rel) = self.rels.get(oid).filter(|r| r.selected) {
                        sink.truncate(&rel.schema.schema, &rel.schema.table, pos)
                            .await?;
                    }
                }
            }
            Message::Begin { .. }
            | Message::Commit { .. }
            | Message::Origin { .. }
            | Message::Type { .. }
            | Message::Message { .. } => {}
        }
        Ok(())
    }

    /// Writes a heartbeat when due, so an idle database still moves the slot.
    async fn heartbeat(&mut self) {
        let Some(hb) = &self.sel.config.heartbeat else {
            return;
        };
        if self.last_heartbeat.elapsed() < hb.every {
            return;
        }
        self.last_heartbeat = Instant::now();
        let r = match self.helper.client().await {
            Ok(client) => slot::heartbeat(client, &hb.schema, &self.sel.task_id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            let _ = self.helper.reset_if_lost(&e);
            tracing::warn!(error = %e, "heartbeat failed; retrying at the next interval");
        }
    }

    /// Publishes the slot's retained WAL once a minute and warns when it is large.
    async fn check_lag(&mut self) {
        if self.last_lag_check.elapsed() < LAG_CHECK {
            return;
        }
        self.last_lag_check = Instant::now();
        let name = &self.sel.config.slot_name;
        let r = match self.helper.client().await {
            Ok(client) => slot::slot_info(client, name).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(Some(info)) => {
                let retained = info.retained_bytes.unwrap_or(0);
                metrics::gauge!("tributary_slot_retained_wal_bytes").set(retained as f64);
                if retained > slot::SLOT_LAG_WARN_BYTES {
                    tracing::warn!(slot = %name, retained_mb = retained / (1024 * 1024), "the replication slot retains a lot of WAL: the task is behind, or the database is idle without HeartbeatEnable");
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = self.helper.reset_if_lost(&e);
            }
        }
    }
}

/// The relation `oid` when the mappings select it; an unknown relation is a protocol error.
fn selected(rels: &Relations, oid: u32) -> Result<Option<&super::decode::Rel>> {
    let rel = rels
        .get(oid)
        .ok_or_else(|| Error::internal(format!("change for unknown relation {oid}")))?;
    Ok(rel.selected.then_some(rel))
}

#[async_trait]
impl ChangeStream for PgStream {
    async fn start(&mut self, from: &Position) -> Result<()> {
        self.stop().await;
        let Position::Postgres(lsn) = from else {
            return Err(Error::internal(format!(
                "{from} is not a PostgreSQL position"
            )));
        };
        let c = &self.sel.config;
        let mut session =
            PgReplication::connect(c, &c.slot_name, &c.publication, Some(*lsn)).await?;
        session.start().await?;
        self.session = Some(session);
        self.txn = None;
        Ok(())
    }

    async fn ready(&mut self) -> Result<()> {
        let session = self.session.as_mut();
        self.inbox
            .fill(session, "replication stream", |s| s.next())
            .await
    }

    async fn apply(&mut self, sink: &mut dyn ChangeSink) -> Result<()> {
        let Some(ev) = self.inbox.take() else {
            return Ok(());
        };
        match ev {
            StreamEvent::Begin {
                final_lsn,
                commit_us,
            } => {
                self.txn = Some(final_lsn);
                self.seq = 0;
                // When the sink declines, the loop stops before the next event.
                sink.begin(&Position::Postgres(final_lsn), commit_us);
            }
            StreamEvent::Commit { end_lsn, .. } => {
                self.txn = None;
                sink.commit(&Position::Postgres(end_lsn));
            }
            StreamEvent::KeepAlive { wal_end } => {
                // Between transactions, everything up to the server's WAL end has been sent
                // (transactions still open there commit later, at higher LSNs).
                if self.txn.is_none() {
                    sink.idle(&Position::Postgres(wal_end));
                }
            }
            StreamEvent::Data(bytes) => {
                let msg = pgoutput::decode(&bytes).map_err(|e| {
                    Error::new(
                        ErrorKind::Source,
                        format!("cannot decode a pgoutput message: {e}"),
                        "report this as a bug with the PostgreSQL version; a rerun resumes from the last durable position",
                    )
                })?;
                self.message(msg, sink).await?;
            }
        }
        Ok(())
    }

    fn confirm(&mut self, pos: &Position) {
        if let (Some(session), Position::Postgres(lsn)) = (&self.session, pos) {
            session.confirm(*lsn);
        }
    }

    async fn tick(&mut self) {
        self.heartbeat().await;
        self.check_lag().await;
    }

    async fn stop(&mut self) {
        self.inbox.clear();
        if let Some(mut s) = self.session.take() {
            let _ = s.stop().await;
        }
    }
}
