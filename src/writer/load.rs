//! The full load's file writer: one table's rows as `LOAD%08X` files, rolled at `MaxFileSize`.

use crate::mapping::segments::SegmentPlace;
use std::sync::Arc;

use bytes::Bytes;

use super::{EncodeSpec, Encoder, Prepared};
use crate::change::TableSchema;
use crate::error::Result;
use crate::layout::Layout;
use crate::store::{ObjectWriter, Store};

/// An open file: its encoder and the object it streams into.
struct OpenFile {
    key: String,
    encoder: Box<dyn Encoder>,
    object: Box<dyn ObjectWriter>,
}

/// Writes one table's full load as `LOAD%08X` files, rolling at `MaxFileSize`.
///
/// Files become visible one by one as they complete; on error or [`abort`](Self::abort) the
/// open file is discarded (never visible), and finished files remain for the caller to delete.
pub(crate) struct LoadWriter<'a> {
    store: &'a dyn Store,
    layout: &'a Layout,
    table: &'a TableSchema,
    spec: Arc<EncodeSpec>,
    max_bytes: u64,
    next_counter: u64,
    /// The segment whose files these are (None: the table's own).
    place: Option<SegmentPlace>,
    open: Option<OpenFile>,
    /// Keys of finished files, in order.
    pub(crate) finished: Vec<String>,
    /// Bytes of finished files.
    pub(crate) bytes: u64,
    /// S3 object tags of the table's files.
    tags: Vec<(String, String)>,
}

impl<'a> LoadWriter<'a> {
    /// A writer whose first file is `LOAD{first_counter:08X}`.
    pub(crate) fn new(
        store: &'a dyn Store,
        layout: &'a Layout,
        table: &'a TableSchema,
        spec: Arc<EncodeSpec>,
        max_file_bytes: u64,
        first_counter: u64,
    ) -> LoadWriter<'a> {
        LoadWriter {
            store,
            layout,
            table,
            spec,
            max_bytes: max_file_bytes,
            next_counter: first_counter,
            place: None,
            open: None,
            finished: Vec::new(),
            bytes: 0,
            tags: layout.tags(&table.schema, &table.table),
        }
    }

    /// The same writer, naming its files as segment `place`'s.
    pub(crate) fn in_segment(mut self, place: Option<SegmentPlace>) -> LoadWriter<'a> {
        self.place = place;
        self
    }

    /// The counter the next file would take: every counter below it has been used.
    pub(crate) fn next_counter(&self) -> u64 {
        self.next_counter
    }

    /// Appends a batch, rolling files as they reach the size limit.
    pub(crate) async fn write(&mut self, batch: &Prepared) -> Result<()> {
        let mut row = 0;
        let len = batch.rows.len();
        while row < len {
            if self.open.is_none() {
                let key = self.layout.load_key_in(
                    &self.table.schema,
                    &self.table.table,
                    self.place.as_ref(),
                    self.next_counter,
                )?;
                self.next_counter += 1;
                let object = self.store.create_tagged(&key, &self.tags).await?;
                self.open = Some(OpenFile {
                    key,
                    encoder: self.spec.encoder(batch)?,
                    object,
                });
            }
            let file = self.open.as_mut().expect("opened above");
            row += file.encoder.write(batch, row..len, self.max_bytes)?;
            let out = file.encoder.take_output();
            if !out.is_empty() {
                file.object.write(Bytes::from(out)).await?;
            }
            if file.encoder.size() >= self.max_bytes {
                self.close().await?;
            }
        }
        Ok(())
    }

    /// Completes the open file (if any) and makes it visible; call once after the last batch.
    pub(crate) async fn close(&mut self) -> Result<()> {
        let Some(file) = self.open.take() else {
            return Ok(());
        };
        let rest = match file.encoder.finish() {
            Ok(rest) => rest,
            Err(e) => {
                let _ = file.object.abort().await;
                return Err(e);
            }
        };
        let mut object = file.object;
        if !rest.is_empty() {
            object.write(Bytes::from(rest)).await?;
        }
        let finished = object.finish().await;
        // A completion whose outcome is unknown may have made the object visible: it counts as
        // written, so the caller's clean-up after an error removes it with the table's others.
        self.finished.push(file.key);
        self.bytes += finished?;
        Ok(())
    }

    /// Discards the open file; finished files stay (the caller decides about them).
    pub(crate) async fn abort(&mut self) {
        if let Some(file) = self.open.take() {
            let _ = file.object.abort().await;
        }
    }
}
