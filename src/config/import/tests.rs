//! Unit tests of `import-dms`: every field mapping, on fixtures written from the DMS API's
//! `describe-replication-tasks` / `describe-endpoints` shapes (tests/fixtures/dms/).

use std::path::Path;

use serde_json::Value;

use super::*;
use crate::config::source::{accepted_settings, SourceConfig};
use crate::config::target::{Encryption, ParquetVersion};
use crate::config::{MigrationType, PrepMode, TargetLocation};
use crate::layout::{Compression, FileFormat};

/// A fixture document.
fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dms")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Imports with default options.
fn run(task: Value, source: Value, target: Value) -> Result<String> {
    import(
        &Documents {
            task,
            source,
            target,
        },
        &ImportOptions::default(),
    )
}

/// Parses an imported file with only the password variable set, as a user would run it.
fn parse(text: &str) -> TaskConfig {
    let env = |name: &str| (name == DEFAULT_PASSWORD_ENV).then(|| "p%40ss".to_string());
    TaskConfig::parse(text, Path::new("/tmp"), &env)
        .unwrap_or_else(|e| panic!("the imported file does not parse: {e}\n{text}"))
}

/// The MySQL walkthrough, all endpoints in one describe-endpoints document.
fn mysql_walkthrough() -> String {
    let endpoints = fixture("mysql-walkthrough-endpoints.json");
    run(
        fixture("mysql-walkthrough-task.json"),
        endpoints.clone(),
        endpoints,
    )
    .unwrap()
}

/// True when `text` has the line `line` exactly (not commented out).
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn mysql_walkthrough_maps_every_field() {
    let text = mysql_walkthrough();
    assert!(has_line(&text, "id = \"mysql-dms-s3-task-1\""), "{text}");
    assert!(has_line(&text, "migration_type = \"full-load-and-cdc\""));
    assert!(has_line(&text, "engine = \"mysql\""));
    // The source the task names (by ARN) out of the two in the document.
    assert!(has_line(
        &text,
        "url = \"mysql://dms_user:${TRIBUTARY_SOURCE_PASSWORD}@datalake-source-db1.cqiw4tcs0mg7.us-east-1.rds.amazonaws.com:3306/?ssl-mode=DISABLED\""
    ), "{text}");
    assert!(has_line(&text, "url = \"s3://mysql2s3walkthrough\""));
    assert!(has_line(&text, "region = \"us-east-1\""));
    for line in [
        "BucketFolder = \"endpoint1\"",
        "IncludeOpForFullLoad = true",
        "DatePartitionEnabled = true",
        "CdcMaxBatchInterval = 3600",
        "CdcMinFileSize = 64000",
        "MaxFileSize = 64000",
    ] {
        assert!(has_line(&text, line), "{line} missing:\n{text}");
    }
    // The ECA string repeats S3Settings: each value is written once.
    assert_eq!(text.matches("BucketFolder = ").count(), 1, "{text}");
    assert!(!text.contains("bucketFolder"), "{text}");
    // Not carried over, each with why.
    for needle in [
        "not carried over: ServiceAccessRoleArn arn:aws:iam::123456789012:role/mysql2s3-walkthrough-dms-s3-target-access-role: the IAM role DMS assumes",
        "not carried over: KmsKeyId",
        "not carried over: DmsTransferSettings",
        "# not carried over: applies to S3 as a DMS source only\n# IgnoreHeaderRows = 0",
        "export TRIBUTARY_SOURCE_PASSWORD='...'   the password of dms_user",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let t = parse(&text);
    assert_eq!(t.id, "mysql-dms-s3-task-1");
    assert_eq!(t.migration_type, MigrationType::FullLoadAndCdc);
    assert_eq!(t.settings.prep_mode, PrepMode::TruncateBeforeLoad);
    assert_eq!(t.settings.max_sub_tasks, 49);
    assert_eq!(t.settings.lob_max_bytes, Some(1024 * 1024));
    let s = &t.target.settings;
    assert_eq!(s.bucket_folder, "endpoint1");
    assert!(s.include_op_for_full_load);
    assert!(s.cdc.date_partition.is_some());
    assert_eq!(s.max_file_bytes, 64_000 * 1024);
    assert_eq!(s.csv.row_delimiter, "\n");
    assert_eq!(
        t.target.location,
        TargetLocation::S3 {
            bucket: "mysql2s3walkthrough".into()
        }
    );
    let SourceConfig::MySql(my) = &t.source else {
        panic!("not MySQL")
    };
    assert!(my.url.contains("dms_user:p%40ss@datalake-source-db1"));
}

#[test]
fn picks_endpoints_and_tasks_from_lists() {
    let endpoints = fixture("mysql-walkthrough-endpoints.json");
    let docs = Documents {
        task: fixture("mysql-walkthrough-task.json"),
        source: endpoints.clone(),
        target: endpoints.clone(),
    };
    let opts = ImportOptions {
        source_id: Some("mysql-dms-s3-source-2".into()),
        password_env: Some("SHARD2_PASSWORD".into()),
        ..ImportOptions::default()
    };
    let text = import(&docs, &opts).unwrap();
    assert!(
        text.contains("dms_user:${SHARD2_PASSWORD}@datalake-source-db2."),
        "{text}"
    );
    assert!(
        text.contains("CHECK: the task's SourceEndpointArn is"),
        "{text}"
    );

    // No ARN to go by and several endpoints: refused, listing them and how to pick.
    let mut task = fixture("mysql-walkthrough-task.json");
    task["ReplicationTasks"][0]
        .as_object_mut()
        .unwrap()
        .remove("SourceEndpointArn");
    let e = run(task.clone(), endpoints.clone(), endpoints.clone()).unwrap_err();
    assert!(e.message.contains("holds 3 Endpoints"), "{e}");
    assert!(e.message.contains("\"mysql-dms-s3-source-2\""), "{e}");
    assert!(e.fix.contains("--source-id") && e.fix.contains("jq"), "{e}");

    // Two tasks: refused the same way; --task-id picks one.
    let one = task["ReplicationTasks"][0].clone();
    let mut two = one.clone();
    two["ReplicationTaskIdentifier"] = "mysql-dms-s3-task-2".into();
    let tasks = serde_json::json!({ "ReplicationTasks": [one, two] });
    let e = run(tasks.clone(), endpoints.clone(), endpoints.clone()).unwrap_err();
    assert!(e.message.contains("\"mysql-dms-s3-task-2\""), "{e}");
    assert!(e.fix.contains("--task-id"), "{e}");
    let opts = ImportOptions {
        task_id: Some("mysql-dms-s3-task-2".into()),
        source_id: Some("mysql-dms-s3-source-1".into()),
        ..ImportOptions::default()
    };
    let docs = Documents {
        task: tasks,
        source: endpoints.clone(),
        target: endpoints,
    };
    assert!(import(&docs, &opts)
        .unwrap()
        .contains("id = \"mysql-dms-s3-task-2\""));
    let e = run(Value::Null, Value::Null, Value::Null).unwrap_err();
    assert!(e.message.contains("--task is neither"), "{e}");
}

#[test]
fn pg_walkthrough_single_objects() {
    let text = run(
        fixture("pg-walkthrough-task.json"),
        fixture("pg-walkthrough-source.json"),
        fixture("pg-walkthrough-target.json"),
    )
    .unwrap();
    assert!(has_line(
        &text,
        "url = \"postgres://dms_user:${TRIBUTARY_SOURCE_PASSWORD}@datalake-source-db-rds.cqiw4tcs0mg7.us-east-1.rds.amazonaws.com:5432/insurancedb?sslmode=disable\""
    ), "{text}");
    assert!(has_line(&text, "DatePartitionSequence = \"yyyymmdd\""));
    // The ECA's NONE/YYYYMMDD spellings of the same values are not written twice.
    assert!(!text.contains("datePartitionSequence"), "{text}");
    let t = parse(&text);
    assert_eq!(t.settings.prep_mode, PrepMode::DoNothing);
    assert_eq!(t.settings.max_sub_tasks, 20);
    assert_eq!(t.target.settings.bucket_folder, "US-WEST-DATA");
    assert!(matches!(t.source, SourceConfig::Postgres(_)));
}

#[test]
fn every_s3_setting_is_carried_or_commented() {
    let target = fixture("s3-target-every-setting.json");
    let text = run(
        fixture("pg-walkthrough-task.json"),
        fixture("pg-walkthrough-source.json"),
        target.clone(),
    )
    .unwrap();
    let s3 = target["Endpoints"][0]["S3Settings"].as_object().unwrap();
    for (name, value) in s3 {
        let active = text.lines().any(|l| l.starts_with(&format!("{name} = ")));
        let commented = text.contains(&format!("# {name} = "));
        let elsewhere = matches!(name.as_str(), "BucketName" | "ServiceAccessRoleArn")
            || (value.as_str() == Some("") && name == "CdcPath");
        assert!(
            active || commented || elsewhere,
            "{name} neither carried over nor commented:\n{text}"
        );
        assert_eq!(
            active,
            crate::config::target::ACCEPTED.contains(&name.as_str())
                && !elsewhere
                && name != "IgnoreHeaderRows",
            "{name}"
        );
    }
    assert!(text.contains("# ExternalTableDefinition = \"\""), "{text}");
    let t = parse(&text);
    let s = &t.target.settings;
    assert_eq!(s.data_format, FileFormat::Parquet);
    assert_eq!(s.compression, Compression::Gzip);
    assert_eq!(s.csv.delimiter, "|");
    assert_eq!(s.csv.null_value, "NULL");
    assert!(!s.csv.rfc4180 && s.csv.add_column_name);
    assert!(matches!(&s.encryption, Encryption::SseKms(k) if k.ends_with("1a2b3c4d5e6f")));
    assert_eq!(s.canned_acl.as_deref(), Some("bucket-owner-full-control"));
    assert_eq!(s.expected_bucket_owner.as_deref(), Some("123456789012"));
    assert_eq!(s.timestamp_column_name.as_deref(), Some("dms_commit_ts"));
    assert!(s.use_task_start_time_for_full_load_timestamp);
    assert_eq!(s.parquet.version, ParquetVersion::V2);
    assert_eq!(s.parquet.row_group_length, 20_000);
    assert_eq!(s.parquet.data_page_size, 524_288);
    assert!(!s.parquet.enable_statistics && s.parquet.timestamp_in_millisecond);
    assert!(s.cdc.inserts_and_updates);
    assert_eq!(s.cdc.max_batch_interval.as_secs(), 120);
    assert_eq!(s.cdc.min_file_bytes, 16_000 * 1024);
    assert_eq!(s.max_file_bytes, 512_000 * 1024);
    assert_eq!(s.unchanged_marker.as_deref(), Some("#unsent#"));
    assert_eq!(s.bucket_folder, "raw/shop");
    assert_eq!(
        t.target.location,
        TargetLocation::S3 {
            bucket: "shop-lake".into()
        }
    );
}

#[test]
fn aurora_postgresql_settings_tls_and_secrets() {
    let text = run(
        fixture("pg-walkthrough-task.json"),
        fixture("aurora-postgresql-source.json"),
        fixture("pg-walkthrough-target.json"),
    )
    .unwrap();
    // PostgreSQLSettings win over the endpoint's top-level connection fields.
    assert!(has_line(
        &text,
        "url = \"postgres://dms_reader@orders.cluster-ro-cqiw4tcs0mg7.us-east-1.rds.amazonaws.com:5433/orders?sslmode=verify-full\""
    ), "{text}");
    assert!(text.contains("SslMode verify-full → sslmode=verify-full"));
    assert!(text.contains(
        "aws dms describe-certificates --filters Name=certificate-arn,Values=arn:aws:dms:us-east-1:123456789012:cert:RDSGLOBALBUNDLEX9C8V7B6N5M4"
    ));
    assert!(text.contains("&sslrootcert=/path/to/dms-ca.pem"));
    assert!(has_line(&text, "SlotName = \"dms_orders\""), "{text}");
    assert!(has_line(&text, "HeartbeatEnable = true"));
    assert!(has_line(&text, "HeartbeatSchema = \"dms\""));
    // Only pgoutput is offered: the parser's refusal is the comment.
    assert!(text.contains("# PluginName = \"pglogical\""), "{text}");
    assert!(text.contains("pgoutput"), "{text}");
    assert!(text.contains("# MaxFileSize = 32768"));
    assert!(text.contains("applies when this engine is a DMS target"));
    assert!(text.contains("password authentication, which the url uses"));
    // Each setting is written iff the parser takes its name, so the import follows the parser.
    let accepted = accepted_settings("postgres");
    let settings = fixture("aurora-postgresql-source.json")["Endpoints"][0]["PostgreSQLSettings"]
        .as_object()
        .unwrap()
        .clone();
    for name in settings.keys() {
        if ["ServerName", "Port", "DatabaseName", "Username"].contains(&name.as_str()) {
            assert!(!text.contains(&format!("{name} = ")), "{name} in settings");
            continue;
        }
        let active = text.lines().any(|l| l.starts_with(&format!("{name} = ")));
        if !accepted.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            assert!(!active, "{name} written but not accepted");
            assert!(
                text.contains(&format!("# {name} = ")),
                "{name} not commented"
            );
        } else if name != "PluginName" {
            assert!(active, "{name} accepted but not written:\n{text}");
        }
    }
    if !accepted.contains(&"SecretsManagerSecretId") {
        assert!(text.contains("Tributary does not read AWS Secrets Manager"));
    }
    // The ECA repeats HeartbeatFrequency and ExecuteTimeout: not written twice.
    assert!(!text.contains("heartbeatFrequency"), "{text}");
    let t = parse(&text);
    let SourceConfig::Postgres(pg) = &t.source else {
        panic!("not PostgreSQL")
    };
    assert_eq!(pg.slot_name, "dms_orders");
    assert!(pg.heartbeat.is_some());
}

#[test]
fn refuses_other_engines_and_swapped_endpoints() {
    let e = run(
        fixture("pg-walkthrough-task.json"),
        fixture("oracle-source.json"),
        fixture("pg-walkthrough-target.json"),
    )
    .unwrap_err();
    assert_eq!(e.kind, crate::error::ErrorKind::Config);
    assert!(e.message.contains("EngineName \"oracle\""), "{e}");
    assert!(
        e.fix.contains("aurora-postgresql") && e.fix.contains("mariadb"),
        "{e}"
    );
    let e = run(
        fixture("pg-walkthrough-task.json"),
        fixture("pg-walkthrough-target.json"),
        fixture("pg-walkthrough-source.json"),
    )
    .unwrap_err();
    assert!(e.message.contains("is a target endpoint"), "{e}");
    let mut target = fixture("pg-walkthrough-target.json");
    target["Endpoints"][0]["EngineName"] = "kinesis".into();
    target["Endpoints"][0]["EndpointType"] = "TARGET".into();
    let e = run(
        fixture("pg-walkthrough-task.json"),
        fixture("pg-walkthrough-source.json"),
        target,
    )
    .unwrap_err();
    assert!(e.message.contains("not s3"), "{e}");
}

#[test]
fn refused_values_are_commented_with_the_parsers_reason() {
    let mut task = fixture("pg-walkthrough-task.json");
    let mut settings: Value =
        serde_json::from_str(task["ReplicationTaskSettings"].as_str().unwrap()).unwrap();
    settings["TargetMetadata"]["BatchApplyEnabled"] = true.into();
    task["ReplicationTaskSettings"] = settings.to_string().into();
    task["CdcStartPosition"] = "4AF/B00000D0".into();
    task["CdcStopPosition"] = "server_time:2026-12-01T00:00:00".into();
    task["CdcStartTime"] = "2026-11-30T00:00:00".into();
    let text = run(
        task.clone(),
        fixture("pg-walkthrough-source.json"),
        fixture("pg-walkthrough-target.json"),
    )
    .unwrap();
    assert!(
        text.contains("# not carried over (taken out of the document below): TargetMetadata.BatchApplyEnabled = true: task setting TargetMetadata.BatchApplyEnabled = true is not supported"),
        "{text}"
    );
    assert!(!text.contains("\"BatchApplyEnabled\": true"), "{text}");
    // A start position needs a cdc task: the parser's reason, then the line commented out.
    assert!(
        text.contains("cdc_start_position needs migration_type = \\\"cdc\\\"")
            || text.contains("cdc_start_position needs migration_type = \"cdc\""),
        "{text}"
    );
    assert!(
        text.contains("# cdc_start_position = \"4AF/B00000D0\""),
        "{text}"
    );
    assert!(has_line(
        &text,
        "cdc_stop_position = \"server_time:2026-12-01T00:00:00\""
    ));
    assert!(text.contains("PostgreSQL keeps no map from a time to a WAL position"));
    let t = parse(&text);
    assert!(t.cdc_stop.is_some());
    assert!(!t.settings.unapplied.is_empty());

    // A cdc task from an LSN needs SlotName on the endpoint: with it, the position is kept.
    task["MigrationType"] = "cdc".into();
    let mut source = fixture("pg-walkthrough-source.json");
    source["Endpoints"][0]["PostgreSQLSettings"]["SlotName"] = "dms_slot".into();
    source["Endpoints"][0]["PostgreSQLSettings"]["Password"] = "hunter2".into();
    let text = run(task, source, fixture("pg-walkthrough-target.json")).unwrap();
    assert!(
        has_line(&text, "cdc_start_position = \"4AF/B00000D0\""),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "a password was copied:\n{text}");
    let t = parse(&text);
    let SourceConfig::Postgres(pg) = &t.source else {
        panic!("not PostgreSQL")
    };
    assert_eq!(pg.start, Some(crate::change::Lsn(0x4AF_B000_00D0)));
}

#[test]
fn output_file_is_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task.toml");
    write_output("a = 1\n", Some(&path), false).unwrap();
    let e = write_output("a = 2\n", Some(&path), false).unwrap_err();
    assert!(
        e.message.contains("exists already") && e.fix.contains("--force"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 1\n");
    write_output("a = 2\n", Some(&path), true).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 2\n");
    let e = import(
        &Documents {
            task: fixture("pg-walkthrough-task.json"),
            source: fixture("pg-walkthrough-source.json"),
            target: fixture("pg-walkthrough-target.json"),
        },
        &ImportOptions {
            password_env: Some("BAD NAME".into()),
            ..ImportOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.message.contains("--password-env"), "{e}");
}
