//! The change-stream seam: a source's committed changes, in commit order, handed to a sink.
//!
//! One trait per direction. [`ChangeStream`] is implemented by each engine (pgoutput in
//! `source::postgres`, the binlog in `source::mysql`); [`ChangeSink`] by the apply loop
//! (`task::apply`), the one place that turns changes into durable files. Nothing outside
//! `source/` sees a driver type.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

pub(crate) use crate::change::Fill;
use crate::change::{ChangePos, Op, Position, TableSchema};
use crate::error::{Error, ErrorKind, Result};

/// Receives one source's changes.
///
/// What a [`ChangeStream`] promises its sink:
/// - Transactions arrive whole and in commit order: [`begin`](Self::begin), the transaction's
///   shape changes, row changes and truncates, then [`commit`](Self::commit).
/// - Every change carries its [`ChangePos`]. Within one session positions strictly increase,
///   and reading the same log again yields the same position for the same change.
/// - [`shape`](Self::shape) comes before a table's first change in a session and again whenever
///   its columns change; every row matches the last shape given for its table.
/// - A stream (re)started at position P delivers every transaction at or after P again; the
///   sink drops what it already has.
#[async_trait]
pub(crate) trait ChangeSink: Send {
    /// A transaction starts. `at` is where streaming restarts to see it again, `commit_us` its
    /// commit time (µs since the epoch). Returns false when the task must stop before this
    /// transaction (`CdcStopPosition` commit time): the stream then delivers nothing more.
    fn begin(&mut self, at: &Position, commit_us: i64) -> bool;
    /// Rows of `schema.table` have these columns from now on.
    async fn shape(&mut self, schema: &Arc<TableSchema>) -> Result<()>;
    /// One row change of `table` (`schema.table`). `fill` is called only when the sink keeps
    /// the change; it never sees a row the sink already wrote.
    async fn change(
        &mut self,
        table: &str,
        op: Op,
        pos: ChangePos,
        fill: &mut Fill<'_>,
    ) -> Result<()>;
    /// An UPDATE of `table`: as [`change`](Self::change) with [`Op::Update`], and `before`
    /// fills the row's before-image (columns the source did not send are NULL). `before` is
    /// called after `fill`, and only when the table's rules write before-image columns.
    async fn update(
        &mut self,
        table: &str,
        pos: ChangePos,
        fill: &mut Fill<'_>,
        before: &mut Fill<'_>,
    ) -> Result<()>;
    /// The source truncated `schema.table` at `pos`.
    async fn truncate(&mut self, schema: &str, table: &str, pos: ChangePos) -> Result<()>;
    /// The source cannot decode the change of `table` at `pos`, and `e` (whose message names
    /// the table and the column when there is one) concerns that table alone: a value
    /// ([`ErrorKind::Data`]) or the table's shape or row image (any other kind). The sink
    /// applies `ErrorBehavior`: `Ok` means the change is skipped (or the table suspended) and
    /// the stream goes on with the rest of the transaction; `Err` ends the stream. Sources
    /// report every change they cannot decode, each with its own position (the sink drops
    /// those of a suspended table, or those a later snapshot of the table holds), and number the
    /// changes after it as a read without the error would.
    async fn table_error(&mut self, table: &str, pos: ChangePos, e: Error) -> Result<()>;
    /// The open transaction is complete; `next` is where the following one can start.
    fn commit(&mut self, next: &Position);
    /// Nothing before `at` remains to be delivered (an idle keepalive, a log rotation between
    /// transactions). Only sent between transactions.
    fn idle(&mut self, at: &Position);
}

/// A source's log of committed changes, read in sessions.
///
/// Contract: after [`start`](Self::start) at P, [`ready`](Self::ready) and
/// [`apply`](Self::apply) deliver every transaction at or after P, whole and in commit order,
/// as [`ChangeSink`] describes. [`confirm`](Self::confirm) is only called with positions whose
/// changes are durably written; the source may then discard the log before it. Errors are
/// classified by [`crate::error::Error::retryable`]: a retryable one means "start again".
#[async_trait]
pub(crate) trait ChangeStream: Send {
    /// Opens a session that starts at `from`, closing any previous one.
    async fn start(&mut self, from: &Position) -> Result<()>;
    /// Waits for the next event. Cancel-safe: if the future is dropped, nothing is lost.
    async fn ready(&mut self) -> Result<()>;
    /// Decodes the event [`ready`](Self::ready) received and hands its changes to `sink`.
    /// Not cancel-safe: always run it to completion.
    async fn apply(&mut self, sink: &mut dyn ChangeSink) -> Result<()>;
    /// Everything before `pos` is durable (monotonic).
    fn confirm(&mut self, pos: &Position);
    /// Periodic source-side work while streaming (heartbeat, lag checks); never fails the task.
    async fn tick(&mut self) {}
    /// Ends the session cleanly.
    async fn stop(&mut self);
}

/// The event a stream's [`ChangeStream::ready`] received, held until
/// [`ChangeStream::apply`] takes it: what makes `ready` cancel-safe, since the receive is the
/// only await and its result is stored before `ready` returns.
pub(crate) struct Inbox<E>(Option<E>);

impl<E> Inbox<E> {
    /// An empty inbox.
    pub(crate) fn new() -> Inbox<E> {
        Inbox(None)
    }

    /// Receives the next event from `session` (the source's `stream`, for messages) with
    /// `recv` unless one is waiting; `Ok(None)` from it means the server ended the stream.
    pub(crate) async fn fill<'s, S: 's, F: Future<Output = Result<Option<E>>> + 's>(
        &mut self,
        session: Option<&'s mut S>,
        stream: &str,
        recv: impl FnOnce(&'s mut S) -> F,
    ) -> Result<()> {
        if self.0.is_none() {
            let session = session.ok_or_else(|| Error::internal("stream read before start"))?;
            let ended = || {
                Error::new(
                    ErrorKind::SourceConnect,
                    format!("the server ended the {stream}"),
                    "check the server log; the task reconnects by itself",
                )
            };
            self.0 = Some(recv(session).await?.ok_or_else(ended)?);
        }
        Ok(())
    }

    /// The waiting event.
    pub(crate) fn take(&mut self) -> Option<E> {
        self.0.take()
    }

    /// Drops a waiting event (the session it came from ended).
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
}
