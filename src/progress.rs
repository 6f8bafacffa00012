//! Full-load feedback: a progress bar per table on a terminal (rows, bytes, rate, ETA from the
//! catalog's row estimate), plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::source::ReadProgress;

/// How often log lines report a running table when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Refresh interval of the bars.
const TICK: Duration = Duration::from_millis(200);

/// Shows progress for all tables of a load.
#[derive(Clone)]
pub(crate) struct Progress {
    bars: Option<MultiProgress>,
}

/// Progress of one table; finish it with [`TableProgress::done`].
pub(crate) struct TableProgress {
    name: String,
    counters: Arc<ReadProgress>,
    bar: Option<ProgressBar>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Bars when stderr is a terminal (and not disabled), log lines otherwise.
    pub(crate) fn new(enabled: bool) -> Progress {
        let bars = (enabled && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { bars }
    }

    /// Starts showing a table.
    pub(crate) fn table(
        &self,
        name: &str,
        estimated_rows: Option<u64>,
        counters: Arc<ReadProgress>,
    ) -> TableProgress {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(estimated_rows.unwrap_or(0).max(1)));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:30!} [{bar:25}] {human_pos:>11} rows  {msg:<28} eta {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        let ticker = {
            let bar = bar.clone();
            let counters = counters.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut last_log = Instant::now();
                loop {
                    tokio::time::sleep(TICK).await;
                    let rows = counters.rows.load(Ordering::Relaxed);
                    let bytes = counters.bytes.load(Ordering::Relaxed);
                    match &bar {
                        Some(bar) => {
                            if rows > bar.length().unwrap_or(0) {
                                bar.set_length(rows);
                            }
                            bar.set_position(rows);
                            let secs = started.elapsed().as_secs_f64().max(0.001);
                            bar.set_message(format!(
                                "{}  {} rows/s",
                                indicatif::HumanBytes(bytes),
                                indicatif::HumanCount((rows as f64 / secs) as u64)
                            ));
                        }
                        None if last_log.elapsed() >= LOG_EVERY => {
                            last_log = Instant::now();
                            let secs = started.elapsed().as_secs_f64().max(0.001);
                            tracing::info!(
                                table = %name,
                                rows,
                                bytes,
                                rows_per_sec = (rows as f64 / secs) as u64,
                                estimated_rows = estimated_rows.unwrap_or(0),
                                "loading"
                            );
                        }
                        None => {}
                    }
                }
            })
        };
        TableProgress {
            name: name.to_string(),
            counters,
            bar,
            ticker,
        }
    }
}

impl TableProgress {
    /// Ends the display of this table with its outcome: the rows it wrote.
    pub(crate) fn done(&self, outcome: &str) {
        let rows = self.counters.rows.load(Ordering::Relaxed);
        self.finish(
            rows,
            outcome.to_string(),
            || tracing::info!(table = %self.name, rows, "{outcome}"),
        );
    }

    /// Ends the display of a table whose attempt failed and whose files were removed: no row
    /// was written, whatever was read before the error (`rows=0 rows_read=N`).
    pub(crate) fn failed(&self, outcome: &str) {
        let read = self.counters.rows.load(Ordering::Relaxed);
        let shown = format!("{outcome}: {read} rows read, none kept");
        self.finish(0, shown, || {
            tracing::info!(table = %self.name, rows = 0, rows_read = read, "{outcome} (rows read before the error: {read}, none kept)")
        });
    }

    /// Stops the ticker and shows `message` at `rows` on the bar, or logs with `log`.
    fn finish(&self, rows: u64, message: String, log: impl FnOnce()) {
        self.ticker.abort();
        match &self.bar {
            Some(bar) => {
                bar.set_length(rows.max(1));
                bar.set_position(rows);
                bar.finish_with_message(message);
            }
            None => log(),
        }
    }
}

impl Drop for TableProgress {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}
