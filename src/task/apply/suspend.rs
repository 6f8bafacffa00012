//! `ErrorBehavior` in change capture: a change whose value cannot be written, or that the
//! source cannot decode, is skipped or suspends its table (`DataErrorPolicy` for one value,
//! `TableErrorPolicy` for a table whose shape or row images cannot be read), and a suspended
//! table's changes are dropped while the stream goes on for the others — so the source's log is
//! released and a resume does not meet the same bad row again and again.

use super::Apply;
use crate::change::{ChangePos, Position, StreamKey};
use crate::checkpoint::TableState;
use crate::config::errors::Policy;
use crate::error::{Error, ErrorKind, Result};

impl Apply<'_> {
    /// True when `table`'s changes are dropped (it is suspended).
    pub(super) fn is_suspended(&self, table: &str) -> bool {
        !self.suspended.is_empty() && self.suspended.contains(table)
    }

    /// Applies `ErrorBehavior` to the change of `table` at `pos` that the source could not
    /// decode (see [`crate::source::stream::ChangeSink::table_error`]).
    pub(super) async fn source_error(
        &mut self,
        table: &str,
        pos: ChangePos,
        e: Error,
    ) -> Result<()> {
        let own = StreamKey::Table(table.to_string());
        // A suspended table drops its changes; a change already written, or older than the
        // snapshot the table was (re)loaded from, is not needed — a reload after the fix
        // reads the log from before it again and must not be suspended by what it replaced.
        if self.is_suspended(table) || self.already_written(&own, &own, &pos) {
            return Ok(());
        }
        let e = self.locate(table, pos.seq, e);
        if e.kind == ErrorKind::Data {
            return self.data_error(table, e).await;
        }
        match self.ctx.task.settings.errors.table {
            Policy::StopTask => Err(e),
            _ => self.suspend(table, e).await,
        }
    }

    /// Applies `TableErrorPolicy` to `table`'s new shape, which its rules cannot map (`e`):
    /// located at the open transaction, as change #0 (before any of its rows).
    pub(super) async fn shape_error(&mut self, table: &str, e: Error) -> Result<()> {
        // The table changed under rules that were valid when the task started: a schema
        // error of that table, not an invalid task file (exit 2 is kept for those).
        let e = match e.kind {
            ErrorKind::Data | ErrorKind::Config => {
                Error::new(ErrorKind::SourceSchema, e.message, e.fix)
            }
            _ => e,
        };
        let Some((at, _)) = self.txn.clone() else {
            return Err(e);
        };
        self.source_error(table, ChangePos { commit: at, seq: 0 }, e)
            .await
    }

    /// Names `table` (unless the writer did: `table …: `) and, at the end of the cause, where
    /// its change `seq` of the open transaction is in the source's log; `seq` 0 is the
    /// table's new shape.
    pub(super) fn locate(&self, table: &str, seq: u64, e: Error) -> Error {
        let what = match seq {
            0 => "the new columns".to_string(),
            n => format!("change #{n}"),
        };
        let at = match self.txn.as_ref().map(|(at, _)| at) {
            Some(Position::Postgres(lsn)) => {
                format!("{what} of the transaction committed at LSN {lsn}")
            }
            Some(Position::MySql(b)) => format!(
                "{what} of the transaction at binlog {}:{}",
                b.file, b.offset
            ),
            None => what,
        };
        let mut e = if e.message.starts_with(&format!("table {table}: ")) {
            e
        } else {
            e.context(format!("table {table}"))
        };
        e.message = format!("{} (at {at})", e.message.trim_end_matches('.'));
        e
    }

    /// Applies `DataErrorPolicy` to a change of `table` that failed with the data error `e`.
    pub(super) async fn data_error(&mut self, table: &str, e: Error) -> Result<()> {
        let e = if e.message.starts_with("table ") {
            e
        } else {
            e.context(format!("table {table}"))
        };
        let errors = self.ctx.task.settings.errors.clone();
        match errors.data {
            Policy::StopTask => Err(e),
            Policy::SuspendTable => self.suspend(table, e).await,
            Policy::LogError | Policy::IgnoreRecord => {
                let stats = self.cp.table_mut(table);
                stats.data_errors += 1;
                let n = stats.data_errors;
                self.dirty = true;
                if errors.data == Policy::LogError {
                    tracing::warn!(table, error = %e, "change skipped (DataErrorPolicy=LOG_ERROR)");
                }
                match errors.data_escalation {
                    Some((limit, policy)) if n >= limit => {
                        let e = e.context(format!(
                            "{n} changes skipped (DataErrorEscalationCount = {limit}); the last"
                        ));
                        match policy {
                            Policy::StopTask => Err(e),
                            _ => self.suspend(table, e).await,
                        }
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// Suspends `table`: its later changes are dropped, and the checkpoint records since when
    /// and why (`status` shows it; the next run reloads it). What it buffered before the bad
    /// change is written as usual. A table that failed `TableErrorEscalationCount` times stops
    /// the task instead.
    pub(super) async fn suspend(&mut self, table: &str, e: Error) -> Result<()> {
        let at = self.txn.as_ref().map(|(at, _)| at.clone());
        let stats = self.cp.table_mut(table);
        stats.table_state = TableState::Error;
        stats.error = Some(e.to_string());
        stats.table_errors += 1;
        let failures = stats.table_errors;
        if let Some(limit) = self.ctx.task.settings.errors.table_escalation {
            if failures >= limit {
                return Err(e.context(format!(
                    "table {table} failed {failures} times (TableErrorEscalationCount = {limit})"
                )));
            }
        }
        let series = crate::change::StreamKey::Table(table.to_string());
        self.cp.cdc_mut().series(&series).suspended_at = at.or(self.last_end.clone());
        self.ctx.checkpoints.save(self.cp).await?;
        self.suspended.insert(table.to_string());
        tracing::error!(table, error = %e, "table suspended: its changes are not written, the other tables go on; fix the cause and run the task again to reload it");
        Ok(())
    }
}
