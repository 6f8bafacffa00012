//! Change capture set-up on MySQL/MariaDB: prerequisites, where streaming starts, and the
//! snapshot→binlog hand-off.
//!
//! Hand-off: the full load's snapshot is taken under `FLUSH TABLES WITH READ LOCK` together with
//! the binlog position P it corresponds to; streaming starts at P, so each committed change is
//! in the LOAD files or in the CDC files. There is no server-side slot: the checkpoint alone
//! holds the position.

use async_trait::async_trait;

use super::stream::MyStream;
use super::{binlog, binlog_position, connect, prereq, Selection};
use crate::change::{BinlogPos, Position};
use crate::checkpoint::CdcState;
use crate::config::source::BinlogStart;
use crate::error::{Error, ErrorKind, Result};
use crate::source::stream::ChangeStream;
use crate::source::{Capture, Handoff};

/// Change capture on a checked MySQL/MariaDB source.
pub(super) struct MyCapture {
    sel: Selection,
}

impl MyCapture {
    /// Checks the binlog settings and replication privileges.
    pub(super) async fn prepare(sel: Selection) -> Result<MyCapture> {
        let mut admin = connect(&sel.config).await?;
        if let Some(first) = prereq::check_cdc(&mut admin).await?.into_iter().next() {
            return Err(first);
        }
        Ok(MyCapture { sel })
    }

    /// A snapshot with the binlog position it ends at.
    async fn handoff(&self) -> Result<Handoff> {
        let snapshot = self.sel.export(true).await?;
        let position = snapshot.position.clone().ok_or_else(binlog_off)?;
        Ok(Handoff {
            position: Position::MySql(position),
            snapshot: Box::new(snapshot),
        })
    }
}

#[async_trait]
impl Capture for MyCapture {
    async fn start(
        &mut self,
        state: &mut CdcState,
        load: bool,
        _save: &mut (dyn for<'s> FnMut(&'s CdcState) -> Result<()> + Send),
    ) -> Result<Option<Handoff>> {
        if load {
            let handoff = self.handoff().await?;
            state.resume_from = Some(handoff.position.clone());
            return Ok(Some(handoff));
        }
        let c = &self.sel.config;
        let start: BinlogPos = match &c.start {
            Some(BinlogStart::Position(p)) => p.clone(),
            Some(BinlogStart::MariaDbGtid(g)) => {
                let p = binlog::gtid_position(c, c.server_id, g).await?;
                tracing::info!(gtid = %g, position = %Position::MySql(p.clone()), "GTID start position resolved");
                p
            }
            None => {
                let mut admin = connect(c).await?;
                binlog_position(&mut admin).await?.ok_or_else(binlog_off)?
            }
        };
        tracing::info!(position = %Position::MySql(start.clone()), "starting change capture");
        state.resume_from = Some(Position::MySql(start));
        Ok(None)
    }

    async fn reload(&mut self) -> Result<Handoff> {
        self.handoff().await
    }

    async fn stream(&mut self) -> Result<Box<dyn ChangeStream>> {
        Ok(Box::new(MyStream::new(self.sel.clone())))
    }
}

/// The error for a server without a binary log.
fn binlog_off() -> Error {
    Error::new(
        ErrorKind::Source,
        "the binary log is off: there is no position to capture changes from",
        "start the server with log-bin, binlog_format=ROW and server-id ≥ 1",
    )
}
