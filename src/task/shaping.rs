//! The task file's settings that shape the files — their place, format, columns and values —
//! recorded in the checkpoint when a run starts, and compared when it resumes: a resumed run
//! writes on into the files the run began, so a changed setting is refused rather than
//! silently ignored (or silently mixed into half the files).

use std::collections::BTreeMap;

use crate::checkpoint::Checkpoint;
use crate::config::source::PgTypes;
use crate::config::target::{CdcSettings, CsvSettings, ParquetSettings};
use crate::config::{S3Settings, SourceConfig, TaskConfig};
use crate::error::{Error, Result};

/// The output-shaping settings of `task` by name (DMS's names where it has one), each value
/// in a stable text form.
///
/// The destructuring lists every field, so a new setting must be sorted in or out here.
/// Left out: sizes, intervals and batching (`MaxFileSize`, `CdcMinFileSize`,
/// `CdcMaxBatchInterval`, row group and page sizes) move file boundaries but not what the files
/// hold, and encryption, ACL and bucket owner are object properties.
pub(crate) fn settings(task: &TaskConfig) -> BTreeMap<String, String> {
    let S3Settings {
        bucket_folder,
        data_format,
        compression,
        csv,
        max_file_bytes: _,
        include_op_for_full_load,
        timestamp_column_name,
        use_task_start_time_for_full_load_timestamp,
        parquet,
        encryption: _,
        canned_acl: _,
        expected_bucket_owner: _,
        cdc,
        unchanged_marker,
    } = &task.target.settings;
    let CsvSettings {
        delimiter,
        row_delimiter,
        null_value,
        rfc4180,
        add_column_name,
    } = csv;
    let ParquetSettings {
        version,
        encoding,
        dict_page_size_limit: _,
        row_group_length: _,
        data_page_size: _,
        enable_statistics,
        timestamp_in_millisecond,
    } = parquet;
    let CdcSettings {
        inserts_only,
        inserts_and_updates,
        max_batch_interval: _,
        min_file_bytes: _,
        date_partition,
        preserve_transactions_path,
    } = cdc;
    let text = |v: &dyn std::fmt::Debug| format!("{v:?}");
    [
        ("[target] url", text(&task.target.location)),
        ("BucketFolder", text(bucket_folder)),
        ("DataFormat", text(data_format)),
        ("CompressionType", text(compression)),
        ("CsvDelimiter", text(delimiter)),
        ("CsvRowDelimiter", text(row_delimiter)),
        ("CsvNullValue", text(null_value)),
        ("Rfc4180", text(rfc4180)),
        ("AddColumnName", text(add_column_name)),
        ("IncludeOpForFullLoad", text(include_op_for_full_load)),
        ("TimestampColumnName", text(timestamp_column_name)),
        (
            "UseTaskStartTimeForFullLoadTimestamp",
            text(use_task_start_time_for_full_load_timestamp),
        ),
        ("ParquetVersion", text(version)),
        ("EncodingType", text(encoding)),
        ("EnableStatistics", text(enable_statistics)),
        (
            "ParquetTimestampInMillisecond",
            text(timestamp_in_millisecond),
        ),
        ("CdcInsertsOnly", text(inserts_only)),
        ("CdcInsertsAndUpdates", text(inserts_and_updates)),
        ("DatePartitionEnabled", text(date_partition)),
        ("PreserveTransactions", text(preserve_transactions_path)),
        ("CsvNoSupValue", text(unchanged_marker)),
        (
            "TargetMetadata.SupportLobs",
            text(&task.settings.support_lobs),
        ),
        (
            "TargetMetadata.LobMaxSize",
            text(&task.settings.lob_max_bytes),
        ),
        (
            "TargetMetadata.TargetSchema",
            text(&task.settings.target_schema),
        ),
        ("migration_type", text(&task.migration_type)),
        ("table_mappings", task.mappings_canonical.clone()),
    ]
    .into_iter()
    .chain(source_settings(&task.source))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The source endpoint settings that shape values (PostgreSQL's; MySQL has none).
fn source_settings(source: &SourceConfig) -> Vec<(&'static str, String)> {
    let SourceConfig::Postgres(pg) = source else {
        return Vec::new();
    };
    let PgTypes {
        numeric_as_string,
        boolean_as_boolean,
        trim_char,
        long_varchar_as_lob,
    } = pg.types;
    vec![
        ("MapUnboundedNumericAsString", numeric_as_string.to_string()),
        ("MapBooleanAsBoolean", boolean_as_boolean.to_string()),
        ("TrimSpaceInChar", trim_char.to_string()),
        ("MapLongVarcharAs", long_varchar_as_lob.to_string()),
        ("UnchangedToastValues", format!("{:?}", pg.unchanged_toast)),
    ]
}

/// Longest value shown whole in the refusal; longer ones (table mappings) say "changed".
const SHOWN: usize = 80;

/// Refuses to resume `started` when `now` differs in a setting both know (a checkpoint of an
/// earlier release may lack some, and a later release may add some).
pub(crate) fn compare(started: &Checkpoint, now: &BTreeMap<String, String>) -> Result<()> {
    let changed: Vec<String> = started
        .settings
        .iter()
        .filter_map(|(name, old)| {
            let new = now.get(name)?;
            (new != old).then(|| {
                if old.len() > SHOWN || new.len() > SHOWN {
                    format!("{name} changed")
                } else {
                    format!("{name}: {old} → {new}")
                }
            })
        })
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::config(
        format!(
            "the task file changed since this run started at {}, and a resumed run writes on into the same files: {}",
            started.start_date,
            changed.join("; ")
        ),
        "put the setting back to resume where the run stopped, or run with --restart to start a new run with the new settings (a fresh full load; the old run's files stay where they are)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(settings: &str) -> TaskConfig {
        let text = format!(
            r#"[task]
id = "t"
migration_type = "full-load"
table_mappings = '''{{"rules":[{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"s","table-name":"%"}},"rule-action":"include"}}]}}'''
[source]
engine = "postgres"
url = "postgres://u@h/db"
[target]
url = "file:///tmp/lake"
[target.settings]
{settings}
"#
        );
        TaskConfig::parse(&text, std::path::Path::new("/tmp"), &|_: &str| None).unwrap()
    }

    #[test]
    fn a_changed_bucket_folder_is_named_with_old_and_new() {
        let mut cp = Checkpoint::new("t", "raw".into(), chrono::Utc::now());
        cp.settings = settings(&task("BucketFolder = \"raw\""));
        compare(&cp, &settings(&task("BucketFolder = \"raw\""))).unwrap();
        // The same value in another spelling is no change.
        compare(
            &cp,
            &settings(&task("bucketFolder = \"raw\"\nDataFormat = \"csv\"")),
        )
        .unwrap();
        let e = compare(&cp, &settings(&task("BucketFolder = \"raw2\""))).unwrap_err();
        assert!(
            e.message.contains("BucketFolder: \"raw\" → \"raw2\""),
            "{e}"
        );
        assert!(
            e.fix.contains("--restart") && e.fix.contains("put the setting back"),
            "{e}"
        );
        let e = compare(&cp, &settings(&task("DataFormat = \"parquet\""))).unwrap_err();
        assert!(e.message.contains("DataFormat: Csv → Parquet"), "{e}");
        // File boundaries are not the files' shape.
        compare(
            &cp,
            &settings(&task("BucketFolder = \"raw\"\nMaxFileSize = 64")),
        )
        .unwrap();
    }

    #[test]
    fn settings_a_checkpoint_does_not_know_are_not_compared() {
        let mut cp = Checkpoint::new("t", "raw".into(), chrono::Utc::now());
        compare(&cp, &settings(&task("BucketFolder = \"x\""))).unwrap();
        cp.settings.insert("SomethingNew".into(), "1".into());
        compare(&cp, &settings(&task(""))).unwrap();
    }
}
