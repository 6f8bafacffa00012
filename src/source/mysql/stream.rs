//! The MySQL/MariaDB change stream: binlog events decoded into the sink.
//!
//! A change's position is (the binlog file and offset of its transaction's *first* event, its
//! ordinal): the binlog is written in commit order, so transaction starts order transactions
//! like commits do, and reading again from a start yields the same ordinals.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::{BinlogStream, Conn};
use mysql_common::io::ParseBuf;

use super::catalog::{self, MyTable};
use super::rows::{self, TableVersion};
use super::{binlog, connect, my_error, Selection};
use crate::change::{BinlogPos, ChangePos, Op, Position, RowBatch};
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::RelationKind;
use crate::source::stream::{ChangeSink, ChangeStream, Inbox};
use crate::source::{lob_cut_len, lob_limit};

/// A selected table as the current TABLE_MAP describes it.
struct Mapped {
    /// `schema.table`.
    key: String,
    /// How to read its row images (None: the TABLE_MAP has a column type no reader knows).
    codecs: Option<Arc<[rows::ColumnCodec]>>,
    /// The version its rows are decoded with, or why there is none: an error that concerns
    /// this table alone (its definition cannot be read, its row images do not match it, the
    /// table mappings cannot map it), reported to the sink for each of its changes.
    version: std::result::Result<Arc<TableVersion>, Error>,
}

/// The binlog of one server, read over dump connections that come and go.
pub(super) struct MyStream {
    sel: Selection,
    dump: Option<BinlogStream>,
    /// The event `ready` received, for `apply`.
    inbox: Inbox<Event>,
    /// Catalog reads (table shapes after DDL), opened when first needed and after a loss.
    admin: Option<Conn>,
    /// Current binlog file (from ROTATE events).
    file: String,
    /// TABLE_MAP ids → the selected table they map (None: not selected).
    maps: HashMap<u64, Option<Mapped>>,
    /// Catalog by (database, table), read once per shape.
    catalog: HashMap<(String, String), Arc<MyTable>>,
    /// Start of the open transaction.
    txn: Option<BinlogPos>,
    seq: u64,
}

impl MyStream {
    pub(super) fn new(sel: Selection) -> MyStream {
        MyStream {
            sel,
            dump: None,
            inbox: Inbox::new(),
            admin: None,
            file: String::new(),
            maps: HashMap::new(),
            catalog: HashMap::new(),
            txn: None,
            seq: 0,
        }
    }

    /// Opens a transaction at `at` unless one is open; false when the sink stops before it.
    fn begin(&mut self, at: Option<BinlogPos>, time_s: u32, sink: &mut dyn ChangeSink) -> bool {
        if self.txn.is_some() {
            return true;
        }
        let at = at.unwrap_or_else(|| BinlogPos {
            file: self.file.clone(),
            offset: 4,
        });
        self.seq = 0;
        let go = sink.begin(&Position::MySql(at.clone()), i64::from(time_s) * 1_000_000);
        self.txn = Some(at);
        go
    }

    /// Closes the open transaction; `next` is where the following one starts.
    fn commit(&mut self, next: Option<BinlogPos>, sink: &mut dyn ChangeSink) {
        if let Some(start) = self.txn.take() {
            // Events always carry their end; the transaction's start is a safe stand-in.
            sink.commit(&Position::MySql(next.unwrap_or(start)));
        }
    }

    /// The position of the open transaction's current change.
    fn change_pos(&self) -> Result<ChangePos> {
        let at = self
            .txn
            .as_ref()
            .ok_or_else(|| Error::internal("row change outside a transaction"))?;
        Ok(ChangePos {
            commit: Position::MySql(at.clone()),
            seq: self.seq,
        })
    }

    /// A statement outside row events: DDL re-reads table shapes; a TRUNCATE of a selected table
    /// goes to the sink.
    async fn statement(
        &mut self,
        schema: &str,
        text: &str,
        sink: &mut dyn ChangeSink,
    ) -> Result<()> {
        if !binlog::is_ddl(text) {
            return Ok(());
        }
        // Shapes may have changed: the next TABLE_MAP of each table reads the catalog again.
        self.catalog.clear();
        let Some((db, table)) = binlog::truncated_table(text, schema) else {
            return Ok(());
        };
        if !self.sel.mappings.selects(&db, &table, RelationKind::Table) {
            return Ok(());
        }
        self.seq += 1;
        let pos = self.change_pos()?;
        sink.truncate(&db, &table, pos).await
    }

    /// The catalog's description of `db.table`, read once per shape.
    async fn describe(&mut self, db: &str, table: &str) -> Result<Arc<MyTable>> {
        let name = (db.to_string(), table.to_string());
        if let Some(t) = self.catalog.get(&name) {
            return Ok(t.clone());
        }
        let admin = match &mut self.admin {
            Some(c) => c,
            slot => slot.insert(connect(&self.sel.config).await?),
        };
        let support = self.sel.mappings.lobs(db, table, self.sel.lobs).support;
        let described = catalog::describe(admin, db, table, support).await;
        let t = Arc::new(described.inspect_err(|e| {
            if e.kind == ErrorKind::SourceConnect {
                self.admin = None;
            }
        })?);
        self.catalog.insert(name, t.clone());
        Ok(t)
    }

    /// Maps a TABLE_MAP to its selected table's current version and tells the sink its shape.
    async fn table_map(
        &mut self,
        tme: TableMapEvent<'static>,
        sink: &mut dyn ChangeSink,
    ) -> Result<()> {
        let id = tme.table_id();
        let (db, table) = (
            tme.database_name().into_owned(),
            tme.table_name().into_owned(),
        );
        if !self.sel.mappings.selects(&db, &table, RelationKind::Table) {
            self.maps.insert(id, None);
            return Ok(());
        }
        let key = format!("{db}.{table}");
        let (codecs, version) = match rows::codecs(&tme) {
            Ok(codecs) => (Some(codecs.into()), self.version(&db, &table, &tme).await),
            Err(e) => (None, Err(e)),
        };
        let version = match version {
            Ok(v) => {
                sink.shape(&v.schema).await?;
                Ok(v)
            }
            Err(e) if e.retryable() || e.kind == ErrorKind::Internal => return Err(e),
            Err(e) => {
                tracing::warn!(table = %key, error = %e, "the table's changes cannot be decoded from here on");
                Err(e)
            }
        };
        let mapped = Mapped {
            key,
            codecs,
            version,
        };
        self.maps.insert(id, Some(mapped));
        Ok(())
    }

    /// The version of `db.table` that rows of the TABLE_MAP `tme` have.
    async fn version(
        &mut self,
        db: &str,
        table: &str,
        tme: &TableMapEvent<'_>,
    ) -> Result<Arc<TableVersion>> {
        let described = self.describe(db, table).await?;
        let support = self.sel.mappings.lobs(db, table, self.sel.lobs).support;
        let mut version = TableVersion::new(&described, tme, support)?;
        // The row's key as the mappings define it (define-primary-key), else the table's.
        version.key_cols = self.sel.mappings.key_of(&version.schema)?;
        Ok(Arc::new(version))
    }

    /// Reports each row of a rows event of `mapped`'s table as a table error (the table's rows
    /// cannot be decoded: `e`), numbering them as a decodable event's rows are numbered
    /// (without its moved-key deletes, which need the table's key).
    async fn failed_rows(
        &mut self,
        r: &RowsEventData<'_>,
        mapped: (&str, Option<&[rows::ColumnCodec]>),
        e: &Error,
        sink: &mut dyn ChangeSink,
    ) -> Result<()> {
        let (table, codecs) = mapped;
        let mut count = 0;
        if let Some(codecs) = codecs {
            let images: Vec<Vec<bool>> = [r.columns_before_image(), r.columns_after_image()]
                .into_iter()
                .flatten()
                .map(|b| b.iter().map(|x| *x).collect())
                .collect();
            let mut buf = ParseBuf(r.rows_data());
            let mut scratch = Vec::new();
            'rows: while !buf.0.is_empty() && !images.is_empty() {
                for present in &images {
                    if rows::read_image(&mut buf, present, codecs, &mut scratch).is_err() {
                        break 'rows;
                    }
                }
                count += 1;
            }
        }
        for _ in 0..count.max(1) {
            self.seq += 1;
            let pos = self.change_pos()?;
            sink.table_error(table, pos, e.duplicate()).await?;
        }
        Ok(())
    }

    /// Hands the rows of one rows event to the sink, in order, straight from the event's bytes.
    async fn rows(&mut self, r: &RowsEventData<'_>, sink: &mut dyn ChangeSink) -> Result<()> {
        let Some(Some(mapped)) = self.maps.get(&r.table_id()) else {
            return Ok(());
        };
        let (version, codecs) = match (&mapped.version, &mapped.codecs) {
            (Ok(v), Some(c)) => (v.clone(), c.clone()),
            (Err(e), codecs) => {
                let (table, e) = (mapped.key.clone(), e.duplicate());
                let codecs = codecs.clone();
                return self
                    .failed_rows(r, (&table, codecs.as_deref()), &e, sink)
                    .await;
            }
            (Ok(_), None) => return Err(Error::internal("a table version without readers")),
        };
        let (kind, before, after) = match r {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                (Op::Insert, false, true)
            }
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => {
                (Op::Update, true, true)
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                (Op::Delete, true, false)
            }
            RowsEventData::PartialUpdateRowsEvent(_) => {
                // This table's update, which cannot be read whole: its table's error.
                let e = Error::new(
                    ErrorKind::SourceSchema,
                    "the binlog holds partial JSON updates, which carry no full after-image",
                    "SET GLOBAL binlog_row_value_options = '' on the server; the next run reloads the table",
                );
                let table = version.key.clone();
                return self.failed_rows(r, (&table, None), &e, sink).await;
            }
        };
        let before_cols: Vec<bool> = r
            .columns_before_image()
            .map(|b| b.iter().map(|x| *x).collect())
            .unwrap_or_default();
        let after_cols: Vec<bool> = r
            .columns_after_image()
            .map(|b| b.iter().map(|x| *x).collect())
            .unwrap_or_default();
        let s = &version.schema;
        let lob_max = self
            .sel
            .mappings
            .lobs(&s.schema, &s.table, self.sel.lobs)
            .max_bytes;
        let mut buf = ParseBuf(r.rows_data());
        let (mut b, mut a) = (Vec::new(), Vec::new());
        while !buf.0.is_empty() {
            let mut read = Ok(());
            if before {
                read = rows::read_image(&mut buf, &before_cols, &codecs, &mut b);
            }
            if after && read.is_ok() {
                read = rows::read_image(&mut buf, &after_cols, &codecs, &mut a);
            }
            if let Err(e) = read {
                // The rest of this event cannot be found; the next event can.
                let e = Error::new(
                    ErrorKind::SourceSchema,
                    format!("cannot decode a row image: {e}"),
                    "report this as a bug with the server version; the next run reloads the table",
                );
                self.seq += 1;
                let pos = self.change_pos()?;
                return sink.table_error(&version.key, pos, e).await;
            }
            if kind == Op::Update {
                let key_moved = version
                    .key_cols
                    .iter()
                    .any(|&k| version.from_binlog[k].is_some_and(|i| b.get(i) != a.get(i)));
                if key_moved {
                    // The old key's row is gone: a replay must delete it.
                    self.seq += 1;
                    let pos = self.change_pos()?;
                    let fill = &mut |out: &mut RowBatch| fill_row(&version, &b, lob_max, out);
                    sink.change(&version.key, Op::Delete, pos, fill).await?;
                }
            }
            self.seq += 1;
            let pos = self.change_pos()?;
            let table = &version.key;
            match kind {
                Op::Update => {
                    let fill = &mut |out: &mut RowBatch| fill_row(&version, &a, lob_max, out);
                    let image = &mut |out: &mut RowBatch| fill_row(&version, &b, lob_max, out);
                    sink.update(table, pos, fill, image).await?;
                }
                Op::Insert => {
                    let fill = &mut |out: &mut RowBatch| fill_row(&version, &a, lob_max, out);
                    sink.change(table, kind, pos, fill).await?;
                }
                Op::Delete => {
                    let fill = &mut |out: &mut RowBatch| fill_row(&version, &b, lob_max, out);
                    sink.change(table, kind, pos, fill).await?;
                }
            }
        }
        Ok(())
    }
}

/// Pushes one row image of `version` into `out` (cells in output order, LOBs cut to
/// `lob_max`). Values are borrowed from the event's bytes; an image may be read twice (a moved
/// row's delete, then the update's before-image).
fn fill_row(
    version: &TableVersion,
    row: &[Option<BinlogValue<'_>>],
    lob_max: Option<usize>,
    out: &mut RowBatch,
) -> Result<u64> {
    for (c, col) in version.columns.iter().enumerate() {
        let v = version.from_binlog[c]
            .and_then(|i| row.get(i))
            .and_then(Option::as_ref);
        rows::push_binlog_value(col, v, out)?;
        if let Some((max, is_bytes)) = lob_limit(lob_max, col.column.dms_type) {
            if let Some(len) = lob_cut_len(out.last_cell(), max, is_bytes) {
                out.truncate_last_cell(len);
            }
        }
    }
    Ok(0)
}

#[async_trait]
impl ChangeStream for MyStream {
    async fn start(&mut self, from: &Position) -> Result<()> {
        self.stop().await;
        let Position::MySql(pos) = from else {
            return Err(Error::internal(format!("{from} is not a binlog position")));
        };
        let c = &self.sel.config;
        self.dump = Some(binlog::open(c, c.server_id, pos).await?);
        tracing::info!(position = %from, server_id = c.server_id, "streaming changes from the binlog");
        self.file = pos.file.clone();
        self.maps.clear();
        // The server may have changed while we were away.
        self.catalog.clear();
        self.txn = None;
        Ok(())
    }

    async fn ready(&mut self) -> Result<()> {
        let dump = self.dump.as_mut();
        let recv = |d| async move { next_event(d).await };
        self.inbox.fill(dump, "binlog stream", recv).await
    }

    // Opening a transaction has effects; a match guard would hide them.
    #[allow(clippy::collapsible_match)]
    async fn apply(&mut self, sink: &mut dyn ChangeSink) -> Result<()> {
        let Some(event) = self.inbox.take() else {
            return Ok(());
        };
        let h = event.header();
        let (end, size) = (u64::from(h.log_pos()), u64::from(h.event_size()));
        let at = (end >= size && end > 0).then(|| BinlogPos {
            file: self.file.clone(),
            offset: end - size,
        });
        let next = (end > 0).then(|| BinlogPos {
            file: self.file.clone(),
            offset: end,
        });
        let time = h.timestamp();
        tracing::trace!(event_type = h.event_type_raw(), end, size, file = %self.file, open = self.txn.is_some(), "binlog event");
        if binlog::is_gtid(h.event_type_raw()) {
            self.begin(at, time, sink);
            return Ok(());
        }
        let data = event.read_data().map_err(|e| decode_error(&e))?;
        match data {
            Some(EventData::RotateEvent(r)) => {
                self.file = binlog::rotated_name(r.name_raw(), &self.file, end == 0);
                // Between transactions the next one starts in the new file.
                if self.txn.is_none() {
                    sink.idle(&Position::MySql(BinlogPos {
                        file: self.file.clone(),
                        offset: r.position(),
                    }));
                }
            }
            Some(EventData::GtidEvent(_)) | Some(EventData::AnonymousGtidEvent(_)) => {
                self.begin(at, time, sink);
            }
            Some(EventData::QueryEvent(q)) => {
                let text = q.query();
                let trimmed = text.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") || trimmed.starts_with("# Dummy") {
                    // "# Dummy": MariaDB's stand-in for a GTID event other readers cannot parse.
                    self.begin(at, time, sink);
                } else if trimmed.eq_ignore_ascii_case("COMMIT") {
                    self.commit(next, sink);
                } else if self.begin(at, time, sink) {
                    let schema = q.schema().into_owned();
                    let text = text.into_owned();
                    self.statement(&schema, &text, sink).await?;
                    self.commit(next, sink);
                }
            }
            Some(EventData::XidEvent(_)) => self.commit(next, sink),
            Some(EventData::TableMapEvent(t)) => {
                if self.begin(at, time, sink) {
                    self.table_map(t.into_owned(), sink).await?;
                }
            }
            Some(EventData::RowsEvent(r)) => {
                if self.begin(at, time, sink) {
                    self.rows(&r, sink).await?;
                }
            }
            Some(EventData::TransactionPayloadEvent(_)) => {
                return Err(Error::new(
                    ErrorKind::Source,
                    "the binlog holds compressed transactions, which tributary cannot read yet",
                    "SET GLOBAL binlog_transaction_compression = OFF on the server",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn confirm(&mut self, _pos: &Position) {
        // No server-side position: the checkpoint alone holds it.
    }

    async fn stop(&mut self) {
        self.inbox.clear();
        // Dropping the dump closes its connection; the server forgets the replica.
        self.dump = None;
    }
}

/// The dump's next event; None when the server ended it.
async fn next_event(dump: &mut BinlogStream) -> Result<Option<Event>> {
    dump.next()
        .await
        .transpose()
        .map_err(|e| my_error(e, "reading the binlog"))
}

/// An event that cannot be decoded: which table it concerns is unknown, so it ends the stream.
fn decode_error(e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Source,
        format!("cannot decode a binlog event: {e}"),
        "report this as a bug with the server version; a rerun resumes from the last durable position",
    )
}
