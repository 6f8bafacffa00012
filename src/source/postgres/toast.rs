//! `validate`'s TOAST check: which selected tables hold values stored out of line, and what an
//! UPDATE that leaves such a value unchanged will write — with the fix that fits the task's
//! file format. Without `REPLICA IDENTITY FULL` PostgreSQL does not send the value; what
//! `UnchangedToastValues` then writes is harmless in a CSV file a consumer reads as text, but a
//! string in a typed Parquet column (`jsonb`, `bytea`) is taken for the value by readers.

use crate::config::source::UnchangedToast;
use crate::error::Error;
use crate::layout::FileFormat;

/// A selected table with values stored out of line.
#[derive(Debug)]
pub(super) struct ToastTable {
    /// `schema.table`.
    pub(super) name: String,
    /// `REPLICA IDENTITY FULL`: the old row, with the value, comes with every UPDATE.
    pub(super) full_identity: bool,
    /// Its TOASTable columns with their types (`doc jsonb, body text`).
    pub(super) columns: String,
}

/// What the task writes, as far as the check's advice depends on it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    /// `DataFormat`.
    pub(super) format: FileFormat,
    /// `UseCsvNoSupValue`/`CsvNoSupValue` chose the marker.
    pub(super) marker_chosen: bool,
}

/// The check's verdict on one table.
#[derive(Debug)]
pub(super) enum Finding {
    /// Nothing to fix: the line for the report.
    Ok(String),
    /// The task runs, but writes markers a consumer must know about.
    Warning(Error),
    /// The first such UPDATE would be a data error (suspending the table by default).
    Problem(Error),
}

/// The finding for `t` under `toast` when the task writes `out`.
pub(super) fn check(t: &ToastTable, toast: &UnchangedToast, out: Output) -> Finding {
    let name = &t.name;
    if t.full_identity {
        return Finding::Ok(format!(
            "{name}: values stored out of line ({}) come with every UPDATE (REPLICA IDENTITY FULL)",
            t.columns
        ));
    }
    let what = format!(
        "{name} holds values stored out of line (TOAST) in {} and REPLICA IDENTITY is not FULL: an UPDATE that leaves such a value unchanged",
        t.columns
    );
    let full = format!(
        "ALTER TABLE {name} REPLICA IDENTITY FULL (the old row is then logged with each UPDATE and DELETE)"
    );
    match (toast, out.format) {
        (UnchangedToast::Lookup(_), _) => Finding::Ok(format!(
            "{name}: unchanged large values in updates are read from the table by key"
        )),
        (UnchangedToast::Marker(m), FileFormat::Csv) => {
            let choose = if out.marker_chosen {
                "it is your CsvNoSupValue".to_string()
            } else {
                "or set UseCsvNoSupValue = true and CsvNoSupValue to the marker it expects".to_string()
            };
            Finding::Warning(Error::config(
                format!("{what} is written as the marker {m:?} in the CSV files"),
                format!(
                    "have the consumer keep the column's previous value when it reads {m:?} ({choose}); for complete rows instead: {full}, or UnchangedToastValues = \"lookup\""
                ),
            ))
        }
        (UnchangedToast::Marker(m), FileFormat::Parquet) => Finding::Warning(Error::config(
            format!(
                "{what} is written as the string {m:?} in its typed Parquet column (the marker's bytes in a bytea column), which readers take for the value"
            ),
            format!(
                "{full} so the files hold the value, or set UnchangedToastValues = \"lookup\" to read it from the table by key"
            ),
        )),
        (UnchangedToast::Fail, format) => Finding::Problem(Error::config(
            format!("{what} is a data error of the table (UnchangedToastValues = \"fail\"): it suspends the table, or stops the task with DataErrorPolicy = STOP_TASK"),
            match format {
                FileFormat::Csv => format!(
                    "{full}, or set UnchangedToastValues = \"marker\" (the CSV files get a marker the consumer skips; CsvNoSupValue chooses it) or \"lookup\""
                ),
                FileFormat::Parquet => format!(
                    "{full}, or set UnchangedToastValues = \"lookup\" (a \"marker\" would be a string in typed Parquet columns)"
                ),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(full: bool) -> ToastTable {
        ToastTable {
            name: "s.docs".into(),
            full_identity: full,
            columns: "doc jsonb".into(),
        }
    }

    fn out(format: FileFormat) -> Output {
        Output {
            format,
            marker_chosen: false,
        }
    }

    #[test]
    fn the_fix_follows_the_format() {
        let marker = UnchangedToast::Marker("unchanged-toast-datum".into());
        let Finding::Warning(csv) = check(&table(false), &marker, out(FileFormat::Csv)) else {
            panic!("a warning")
        };
        assert!(csv.fix.contains("CsvNoSupValue"), "{csv}");
        let Finding::Warning(pq) = check(&table(false), &marker, out(FileFormat::Parquet)) else {
            panic!("a warning")
        };
        assert!(pq.message.contains("Parquet column"), "{pq}");
        assert!(pq.fix.contains("REPLICA IDENTITY FULL"), "{pq}");
        assert!(!pq.fix.contains("CsvNoSupValue"), "{pq}");
        let Finding::Problem(fail) = check(
            &table(false),
            &UnchangedToast::Fail,
            out(FileFormat::Parquet),
        ) else {
            panic!("a problem")
        };
        assert!(!fail.fix.contains("\"marker\" ("), "{fail}");
        assert!(matches!(
            check(
                &table(true),
                &UnchangedToast::Fail,
                out(FileFormat::Parquet)
            ),
            Finding::Ok(_)
        ));
    }
}
