//! Segmented full loads (`parallel-load`): each segment of a table is a unit of reading,
//! writing and resuming. A table is prepared once per run (per `TargetTablePrepMode`, unless a
//! resume keeps its finished segments), each segment then writes its own file series, and the
//! table is complete when every segment is.
//!
//! Names are never reused for different content: a segment loaded again after an interruption
//! removes what its attempt wrote and numbers its files after the highest it ever used.

use super::{interrupted, FullLoad};
use crate::checkpoint::{now, SegmentStats, TableState, TableStats};
use crate::error::Result;
use crate::layout::Layout;
use crate::mapping::segments::{self, SegmentPart, SegmentPlace};
use crate::mapping::RelationKind;
use crate::source::{ReadOptions, Snapshot, SourceTable};

impl FullLoad<'_> {
    /// Gives each big table without a `parallel-load` rule its automatic chunks
    /// (`source::chunks`): the chunks its interrupted attempt recorded when it resumes, else
    /// the snapshot's split of it when it is above the chunk size. A table whose interrupted
    /// attempt read it whole resumes whole.
    pub(super) async fn plan_chunks(
        &self,
        snapshot: &dyn Snapshot,
        tables: &mut [SourceTable],
    ) -> Result<()> {
        let chunk_bytes = crate::source::chunks::chunk_bytes()?;
        for t in tables
            .iter_mut()
            .filter(|t| t.segments.is_empty() && t.kind == RelationKind::Table)
        {
            let key = t.schema.qualified();
            let previous = self.checkpoint.lock().await.tables.get(&key).cloned();
            match previous {
                Some(p) if p.table_state == TableState::Completed => {}
                Some(p) if !p.chunks.is_empty() => {
                    t.segments = segments::chunks(&p.chunks);
                    t.key_ranges = p.key_ranges;
                }
                Some(p) if p.first_load_file.is_some() => {}
                _ => {
                    let Some(bytes) = chunk_bytes else { continue };
                    match snapshot.split(t, bytes).await {
                        Ok((chunks, keys)) => {
                            t.segments = chunks;
                            t.key_ranges = keys;
                        }
                        // Chunks are an optimisation: the table is still loaded, whole.
                        Err(e) => {
                            tracing::warn!(table = %key, error = %e, "could not split the table into chunks; loading it whole")
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Loads segment `index` of `table`, unless an earlier attempt finished it.
    pub(super) async fn load_segment(
        &self,
        snapshot: &dyn Snapshot,
        table: &SourceTable,
        index: usize,
        opts: ReadOptions,
    ) -> Result<()> {
        let key = table.schema.qualified();
        let segment = &table.segments[index];
        let name = segment.place.key();
        if !self.start_segmented(table).await? {
            return Ok(());
        }
        let previous = self.checkpoint.lock().await.tables[&key]
            .segments
            .get(&name)
            .cloned();
        if previous
            .as_ref()
            .is_some_and(|s| s.state == TableState::Completed)
        {
            tracing::info!(table = %key, segment = %name, "segment already loaded; skipping");
            return self.complete_if_done(table).await;
        }
        if self.cancel.is_cancelled() {
            return Err(interrupted());
        }
        let first = self
            .prepare_segment(table, &segment.place, previous.as_ref())
            .await?;
        self.update(&key, |s| {
            s.segments.insert(
                name.clone(),
                SegmentStats {
                    state: TableState::FullLoad,
                    first_load_file: Some(first),
                    loaded_at: self.handoff.clone(),
                    ..SegmentStats::default()
                },
            );
        })
        .await?;
        tracing::info!(table = %key, segment = %name, "loading segment");
        match self.pump(snapshot, table, Some(segment), first, opts).await {
            Ok(done) => {
                self.update(&key, |s| {
                    s.segments.insert(
                        name.clone(),
                        SegmentStats {
                            state: TableState::Completed,
                            rows: done.rows,
                            files: done.files.len() as u64,
                            bytes: done.bytes,
                            first_load_file: Some(first),
                            next_load_file: None,
                            loaded_at: self.handoff.clone(),
                        },
                    );
                    s.truncated_lobs += done.truncated;
                    s.data_errors += done.data_errors;
                })
                .await?;
                done.shown.done(TableState::Completed.as_str());
                self.complete_if_done(table).await
            }
            Err((err, unused)) => {
                // Its files are gone, but their names were visible: never reused.
                let _ = self
                    .update(&key, |s| {
                        if let Some(g) = s.segments.get_mut(&name) {
                            g.next_load_file = Some(unused);
                        }
                    })
                    .await;
                let err = err.context(format!("segment {name}"));
                if err.kind == crate::error::ErrorKind::SourceConnect {
                    // The caller loads it again.
                    return Err(err);
                }
                self.failed(&key, err).await
            }
        }
    }

    /// Starts `table`'s segmented load once per run: clears its folder as the prep mode says,
    /// unless a previous attempt left finished segments to keep. False when the table is
    /// already complete.
    async fn start_segmented(&self, table: &SourceTable) -> Result<bool> {
        let key = table.schema.qualified();
        let mut started = self.started.lock().await;
        let previous = self.checkpoint.lock().await.tables.get(&key).cloned();
        if previous
            .as_ref()
            .is_some_and(|p| p.table_state == TableState::Completed)
        {
            if started.insert(key.clone()) {
                tracing::info!(table = %key, "already loaded; skipping");
            }
            return Ok(false);
        }
        if !started.insert(key.clone()) {
            return Ok(true);
        }
        let resume = previous.as_ref().filter(|p| !p.segments.is_empty());
        match resume {
            Some(_) => {
                tracing::info!(table = %key, "resuming the segmented load: finished segments are kept");
                // The file a killed attempt was writing is hidden; it goes before anything else.
                let prefix = self
                    .ctx
                    .layout
                    .table_prefix(&table.schema.schema, &table.schema.table);
                self.ctx.store.remove_abandoned(&prefix).await?;
            }
            None => {
                self.prepare(table, None).await?;
            }
        }
        self.update(&key, |s| {
            let segments = resume.map(|p| p.segments.clone()).unwrap_or_default();
            *s = TableStats {
                schema_name: table.schema.schema.clone(),
                table_name: table.schema.table.clone(),
                table_state: TableState::FullLoad,
                full_load_start_time: Some(now()),
                table_errors: previous.as_ref().map_or(0, |p| p.table_errors),
                segments,
                // Recorded before any chunk writes a file: a resume reads the same chunks.
                chunks: auto_chunks(table),
                key_ranges: table.key_ranges.clone(),
                ..TableStats::default()
            };
        })
        .await?;
        Ok(true)
    }

    /// Removes what an interrupted attempt of segment `place` wrote and returns the counter
    /// its files start at: after the highest the segment ever used.
    async fn prepare_segment(
        &self,
        table: &SourceTable,
        place: &SegmentPlace,
        previous: Option<&SegmentStats>,
    ) -> Result<u64> {
        let store = self.ctx.store;
        let prefix = self
            .ctx
            .layout
            .table_prefix(&table.schema.schema, &table.schema.table);
        let mine: Vec<(String, u64)> = store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|k| {
                let counter = Layout::segment_counter(place, &k[prefix.len()..])?;
                Some((k, u64::from(counter)))
            })
            .collect();
        let next = mine
            .iter()
            .map(|(_, c)| c + 1)
            .chain(previous.and_then(|p| p.next_load_file))
            .chain([*place.counters().start()])
            .max()
            .expect("one counter at least");
        if let Some(first) = previous.and_then(|p| p.first_load_file) {
            let partial: Vec<String> = mine
                .into_iter()
                .filter(|(_, c)| *c >= first)
                .map(|(k, _)| k)
                .collect();
            if !partial.is_empty() {
                tracing::info!(table = %table.schema.qualified(), segment = %place.key(), files = partial.len(), "removing files of the interrupted segment");
            }
            store.delete(&partial).await?;
        }
        Ok(next)
    }

    /// Marks `table` complete once every segment is (and none failed in this run).
    async fn complete_if_done(&self, table: &SourceTable) -> Result<()> {
        let key = table.schema.qualified();
        if self.failed.lock().await.contains(&key) {
            return Ok(());
        }
        let names: Vec<String> = table.segments.iter().map(|s| s.place.key()).collect();
        self.update(&key, |s| {
            let done = names.iter().all(|n| {
                s.segments
                    .get(n)
                    .is_some_and(|g| g.state == TableState::Completed)
            });
            if done && s.table_state != TableState::Completed {
                s.table_state = TableState::Completed;
                s.full_load_end_time = Some(now());
                s.full_load_rows = s.segments.values().map(|g| g.rows).sum();
                s.full_load_files = s.segments.values().map(|g| g.files).sum();
                s.full_load_bytes = s.segments.values().map(|g| g.bytes).sum();
            }
        })
        .await
    }
}

/// The predicates of `table`'s automatic chunks, in order (empty when it has none).
fn auto_chunks(table: &SourceTable) -> Vec<String> {
    table
        .segments
        .iter()
        .filter(|s| matches!(s.place, SegmentPlace::Chunk(_)))
        .filter_map(|s| match &s.part {
            SegmentPart::Where(p) => Some(p.clone()),
            SegmentPart::Partition(_) => None,
        })
        .collect()
}
