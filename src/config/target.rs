//! The S3 target endpoint settings, by their DMS names, units and defaults (reference §1).

use crate::error::{Error, Result};
use crate::layout::{Compression, DateDelimiter, DatePartition, DateSequence, FileFormat};

use super::settings::SettingsBag;

/// Default `MaxFileSize`, KB (1 GiB).
const DEFAULT_MAX_FILE_SIZE_KB: u64 = 1_048_576;
/// Default `CdcMaxBatchInterval`, seconds.
const DEFAULT_CDC_MAX_BATCH_INTERVAL_S: u64 = 60;
/// Default `CdcMinFileSize`, KB.
const DEFAULT_CDC_MIN_FILE_SIZE_KB: u64 = 32_000;
/// Default `RowGroupLength`, rows.
pub(crate) const DEFAULT_ROW_GROUP_LENGTH: u64 = 10_000;
/// Largest `RowGroupLength` DMS accepts (larger values are clamped by DMS; we reject them).
pub(crate) const MAX_ROW_GROUP_LENGTH: u64 = 64 * 1024 * 1024;
/// Default `DataPageSize`, bytes.
pub(crate) const DEFAULT_DATA_PAGE_SIZE: u64 = 1024 * 1024;
/// Default `DictPageSizeLimit`, bytes.
pub(crate) const DEFAULT_DICT_PAGE_SIZE_LIMIT: u64 = 1024 * 1024;

/// `ParquetVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParquetVersion {
    /// PARQUET_1_0 (default): data page v1.
    V1,
    /// PARQUET_2_0: data page v2.
    V2,
}

/// `EncodingType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// rle-dictionary (default).
    RleDictionary,
    /// plain-dictionary.
    PlainDictionary,
    /// plain: no dictionary.
    Plain,
}

/// Parquet writer settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParquetSettings {
    /// `ParquetVersion`.
    pub(crate) version: ParquetVersion,
    /// `EncodingType`.
    pub(crate) encoding: Encoding,
    /// `DictPageSizeLimit`, bytes.
    pub(crate) dict_page_size_limit: usize,
    /// `RowGroupLength`, rows.
    pub(crate) row_group_length: usize,
    /// `DataPageSize`, bytes.
    pub(crate) data_page_size: usize,
    /// `EnableStatistics`.
    pub(crate) enable_statistics: bool,
    /// `ParquetTimestampInMillisecond`.
    pub(crate) timestamp_in_millisecond: bool,
}

/// CSV shape settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CsvSettings {
    /// `CsvDelimiter`.
    pub(crate) delimiter: String,
    /// `CsvRowDelimiter`.
    pub(crate) row_delimiter: String,
    /// `CsvNullValue` (default: empty field; see docs/compatibility.md).
    pub(crate) null_value: String,
    /// `Rfc4180`.
    pub(crate) rfc4180: bool,
    /// `AddColumnName`.
    pub(crate) add_column_name: bool,
}

/// `EncryptionMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Encryption {
    /// SSE_S3 (default).
    SseS3,
    /// SSE_KMS with `ServerSideEncryptionKmsKeyId`.
    SseKms(String),
}

/// CDC settings (parsed and validated now; used by change data capture).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CdcSettings {
    /// `CdcInsertsOnly`.
    pub(crate) inserts_only: bool,
    /// `CdcInsertsAndUpdates`.
    pub(crate) inserts_and_updates: bool,
    /// `CdcMaxBatchInterval`.
    pub(crate) max_batch_interval: std::time::Duration,
    /// `CdcMinFileSize`, in bytes of raw row text.
    pub(crate) min_file_bytes: u64,
    /// `DatePartitionEnabled` + sequence/delimiter/timezone.
    pub(crate) date_partition: Option<DatePartition>,
    /// `CdcPath` when `PreserveTransactions` is true.
    pub(crate) preserve_transactions_path: Option<String>,
}

/// All S3 endpoint settings of a task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct S3Settings {
    /// `BucketFolder` as written (placeholders not yet expanded).
    pub(crate) bucket_folder: String,
    /// `DataFormat`.
    pub(crate) data_format: FileFormat,
    /// `CompressionType`.
    pub(crate) compression: Compression,
    /// CSV settings.
    pub(crate) csv: CsvSettings,
    /// `MaxFileSize`, in bytes.
    pub(crate) max_file_bytes: u64,
    /// `IncludeOpForFullLoad`.
    pub(crate) include_op_for_full_load: bool,
    /// `TimestampColumnName` (None when blank).
    pub(crate) timestamp_column_name: Option<String>,
    /// `UseTaskStartTimeForFullLoadTimestamp`.
    pub(crate) use_task_start_time_for_full_load_timestamp: bool,
    /// Parquet settings.
    pub(crate) parquet: ParquetSettings,
    /// `EncryptionMode`.
    pub(crate) encryption: Encryption,
    /// `CannedAclForObjects` as the S3 header value (`bucket-owner-full-control`), None for NONE.
    pub(crate) canned_acl: Option<String>,
    /// `ExpectedBucketOwner`.
    pub(crate) expected_bucket_owner: Option<String>,
    /// CDC settings.
    pub(crate) cdc: CdcSettings,
    /// `CsvNoSupValue` when `UseCsvNoSupValue` is true and it is not empty: what a value the
    /// source did not send is written as (PostgreSQL's unchanged TOAST values).
    pub(crate) unchanged_marker: Option<String>,
}

/// Every setting name `S3Settings::parse` accepts (for "unknown setting" messages).
pub(crate) const ACCEPTED: &[&str] = &[
    "BucketFolder",
    "BucketName",
    "DataFormat",
    "CompressionType",
    "CsvDelimiter",
    "CsvRowDelimiter",
    "CsvNullValue",
    "Rfc4180",
    "AddColumnName",
    "UseCsvNoSupValue",
    "CsvNoSupValue",
    "MaxFileSize",
    "IncludeOpForFullLoad",
    "TimestampColumnName",
    "UseTaskStartTimeForFullLoadTimestamp",
    "ParquetVersion",
    "EncodingType",
    "DictPageSizeLimit",
    "RowGroupLength",
    "DataPageSize",
    "EnableStatistics",
    "ParquetTimestampInMillisecond",
    "EncryptionMode",
    "ServerSideEncryptionKmsKeyId",
    "CannedAclForObjects",
    "ExpectedBucketOwner",
    "CdcInsertsOnly",
    "CdcInsertsAndUpdates",
    "CdcMaxBatchInterval",
    "CdcMinFileSize",
    "DatePartitionEnabled",
    "DatePartitionSequence",
    "DatePartitionDelimiter",
    "DatePartitionTimezone",
    "PreserveTransactions",
    "CdcPath",
    "ServiceAccessRoleArn",
    "AddTrailingPaddingCharacter",
    "GlueCatalogGeneration",
];

/// Canned ACLs DMS offers, in the API's spelling (which is also S3's header value).
const CANNED_ACLS: &[&str] = &[
    "none",
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

impl S3Settings {
    /// Parses and validates the bag; `bucket_from_url` is the bucket of `[target] url` (if S3),
    /// which a `BucketName` in the settings must agree with.
    pub(crate) fn parse(mut bag: SettingsBag, bucket_from_url: Option<&str>) -> Result<S3Settings> {
        if let Some(name) = bag.string("BucketName") {
            if bucket_from_url.is_some_and(|b| b != name) || bucket_from_url.is_none() {
                return Err(Error::config(
                    format!("BucketName {name:?} disagrees with [target] url"),
                    format!("remove BucketName and set [target] url = \"s3://{name}\""),
                ));
            }
        }
        if bag.string("ServiceAccessRoleArn").is_some() {
            tracing::info!(
                "ServiceAccessRoleArn is ignored: credentials come from the standard AWS chain (env, profile, SSO, web identity, IMDS)"
            );
        }
        if bag.bool("AddTrailingPaddingCharacter", false)? {
            return Err(Error::config(
                "AddTrailingPaddingCharacter=true is not supported (DMS does not document what it writes)",
                "remove the setting",
            ));
        }
        if bag.bool("GlueCatalogGeneration", false)? {
            return Err(Error::config(
                "GlueCatalogGeneration=true is not supported",
                "remove the setting and create the Glue tables with a crawler or DDL",
            ));
        }
        let data_format = match bag.choice("DataFormat", "csv", &["csv", "parquet"])? {
            "parquet" => FileFormat::Parquet,
            _ => FileFormat::Csv,
        };
        let compression = match bag.choice("CompressionType", "none", &["none", "gzip"])? {
            "gzip" => Compression::Gzip,
            _ => Compression::None,
        };
        let delimiter = unescape(&bag.string("CsvDelimiter").unwrap_or_else(|| ",".into()));
        let row_delimiter = unescape(
            &bag.string("CsvRowDelimiter")
                .unwrap_or_else(|| "\\n".into()),
        );
        if delimiter.is_empty() || row_delimiter.is_empty() {
            return Err(Error::config(
                "CsvDelimiter and CsvRowDelimiter must not be empty",
                "use the defaults (\",\" and \"\\n\") or another non-empty string",
            ));
        }
        if delimiter == row_delimiter || delimiter.contains('"') {
            return Err(Error::config(
                format!("CsvDelimiter {delimiter:?} cannot be parsed back (it equals the row delimiter or contains a quote)"),
                "choose a delimiter such as \",\", \"\\t\" or \"|\"",
            ));
        }
        let rfc4180 = bag.bool("Rfc4180", true)?;
        let add_column_name = bag.bool("AddColumnName", false)?;
        let null_value = bag.string("CsvNullValue").unwrap_or_default();
        let use_no_sup = bag.bool("UseCsvNoSupValue", false)?;
        let no_sup = bag.string("CsvNoSupValue");
        let csv = CsvSettings {
            delimiter,
            row_delimiter,
            null_value,
            rfc4180,
            add_column_name,
        };
        let unchanged_marker = no_sup.filter(|s| use_no_sup && !s.is_empty());
        let max_file_bytes =
            bag.int("MaxFileSize", DEFAULT_MAX_FILE_SIZE_KB, 1, 1_048_576, "KB")? * 1024;
        let include_op_for_full_load = bag.bool("IncludeOpForFullLoad", false)?;
        let timestamp_column_name = bag
            .string("TimestampColumnName")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let use_task_start = bag.bool("UseTaskStartTimeForFullLoadTimestamp", false)?;
        let parquet = ParquetSettings {
            version: match bag.choice(
                "ParquetVersion",
                "parquet-1-0",
                &["parquet-1-0", "parquet-2-0"],
            )? {
                "parquet-2-0" => ParquetVersion::V2,
                _ => ParquetVersion::V1,
            },
            encoding: match bag.choice(
                "EncodingType",
                "rle-dictionary",
                &["rle-dictionary", "plain-dictionary", "plain"],
            )? {
                "plain" => Encoding::Plain,
                "plain-dictionary" => Encoding::PlainDictionary,
                _ => Encoding::RleDictionary,
            },
            dict_page_size_limit: bag.int(
                "DictPageSizeLimit",
                DEFAULT_DICT_PAGE_SIZE_LIMIT,
                1024,
                1 << 30,
                "bytes",
            )? as usize,
            row_group_length: bag.int(
                "RowGroupLength",
                DEFAULT_ROW_GROUP_LENGTH,
                1,
                MAX_ROW_GROUP_LENGTH,
                "rows",
            )? as usize,
            data_page_size: bag.int(
                "DataPageSize",
                DEFAULT_DATA_PAGE_SIZE,
                1024,
                1 << 30,
                "bytes",
            )? as usize,
            enable_statistics: bag.bool("EnableStatistics", true)?,
            timestamp_in_millisecond: bag.bool("ParquetTimestampInMillisecond", false)?,
        };
        let encryption = match bag.choice("EncryptionMode", "sse-s3", &["sse-s3", "sse-kms"])? {
            "sse-kms" => {
                Encryption::SseKms(bag.string("ServerSideEncryptionKmsKeyId").ok_or_else(|| {
                    Error::config(
                        "EncryptionMode=SSE_KMS needs ServerSideEncryptionKmsKeyId",
                        "set ServerSideEncryptionKmsKeyId to the KMS key ARN",
                    )
                })?)
            }
            _ => {
                if bag.string("ServerSideEncryptionKmsKeyId").is_some() {
                    return Err(Error::config(
                        "ServerSideEncryptionKmsKeyId is set but EncryptionMode is SSE_S3",
                        "set EncryptionMode = \"SSE_KMS\" or remove the key id",
                    ));
                }
                Encryption::SseS3
            }
        };
        let canned_acl = match bag.choice("CannedAclForObjects", "none", CANNED_ACLS)? {
            "none" => None,
            acl => Some(acl.to_string()),
        };
        let expected_bucket_owner = bag.string("ExpectedBucketOwner");
        if let Some(owner) = &expected_bucket_owner {
            if owner.len() != 12 || !owner.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bag.invalid("ExpectedBucketOwner", owner, "a 12-digit AWS account id"));
            }
        }
        let cdc = parse_cdc(&mut bag)?;
        let bucket_folder = bag.string("BucketFolder").unwrap_or_default();
        if add_column_name && cdc.preserve_transactions_path.is_some() {
            return Err(Error::config(
                "AddColumnName cannot be combined with PreserveTransactions",
                "turn one of them off (transaction files mix tables, so they have no header)",
            ));
        }
        bag.finish(ACCEPTED)?;
        Ok(S3Settings {
            bucket_folder,
            data_format,
            compression,
            csv,
            max_file_bytes,
            include_op_for_full_load,
            timestamp_column_name,
            use_task_start_time_for_full_load_timestamp: use_task_start,
            parquet,
            encryption,
            canned_acl,
            expected_bucket_owner,
            cdc,
            unchanged_marker,
        })
    }
}

/// Parses the CDC settings, rejecting DMS's forbidden combinations.
fn parse_cdc(bag: &mut SettingsBag) -> Result<CdcSettings> {
    let inserts_only = bag.bool("CdcInsertsOnly", false)?;
    let inserts_and_updates = bag.bool("CdcInsertsAndUpdates", false)?;
    if inserts_only && inserts_and_updates {
        return Err(Error::config(
            "CdcInsertsOnly and CdcInsertsAndUpdates are both true",
            "set at most one of them (DMS treats them as mutually exclusive)",
        ));
    }
    let max_batch_interval = std::time::Duration::from_secs(bag.int(
        "CdcMaxBatchInterval",
        DEFAULT_CDC_MAX_BATCH_INTERVAL_S,
        1,
        86_400,
        "seconds",
    )?);
    let min_file_bytes = bag.int(
        "CdcMinFileSize",
        DEFAULT_CDC_MIN_FILE_SIZE_KB,
        1,
        1_048_576,
        "KB",
    )? * 1024;
    let enabled = bag.bool("DatePartitionEnabled", false)?;
    let sequence: DateSequence = bag
        .string("DatePartitionSequence")
        .unwrap_or_else(|| "YYYYMMDD".into())
        .parse()?;
    let delimiter: DateDelimiter = bag
        .string("DatePartitionDelimiter")
        .unwrap_or_else(|| "SLASH".into())
        .parse()?;
    let tz_name = bag
        .string("DatePartitionTimezone")
        .unwrap_or_else(|| "UTC".into());
    let timezone = crate::layout::parse_timezone(&tz_name)?;
    let preserve = bag.bool("PreserveTransactions", false)?;
    let cdc_path = match bag.string("CdcPath") {
        Some(p) => Some(crate::layout::normalize_folder("CdcPath", &p)?).filter(|p| !p.is_empty()),
        None => None,
    };
    if !preserve && cdc_path.is_some() {
        // What DMS writes for CdcPath alone is undocumented (reference §1.8); accepting it
        // silently would leave the user expecting files that never come.
        return Err(Error::config(
            "CdcPath is set but PreserveTransactions is not: CdcPath only names the folder of transaction-ordered files",
            "set PreserveTransactions=true for commit-ordered CDC_TXN files under CdcPath, or remove CdcPath for per-table CDC files",
        ));
    }
    if preserve && cdc_path.is_none() {
        return Err(Error::config(
            "PreserveTransactions=true needs CdcPath",
            "set CdcPath to the folder for transaction files, e.g. \"cdc-txn\"",
        ));
    }
    if preserve && enabled {
        return Err(Error::config(
            "DatePartitionEnabled cannot be combined with PreserveTransactions",
            "turn one of them off",
        ));
    }
    Ok(CdcSettings {
        inserts_only,
        inserts_and_updates,
        max_batch_interval,
        min_file_bytes,
        date_partition: enabled.then_some(DatePartition {
            sequence,
            delimiter,
            timezone,
        }),
        preserve_transactions_path: if preserve { cdc_path } else { None },
    })
}

/// Turns the escapes users write for control characters (`\n`, `\t`, `\r`, `\\`) into the
/// characters, as DMS's `CsvRowDelimiter` default `\n` means a line feed.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(eca: &str) -> Result<S3Settings> {
        let mut bag = SettingsBag::new("[target.settings]");
        bag.extend_eca(eca)?;
        S3Settings::parse(bag, Some("b"))
    }

    #[test]
    fn defaults_match_dms() {
        let s = parse("").unwrap();
        assert_eq!(s.data_format, FileFormat::Csv);
        assert_eq!(s.compression, Compression::None);
        assert_eq!(s.csv.delimiter, ",");
        assert_eq!(s.csv.row_delimiter, "\n");
        assert!(s.csv.rfc4180);
        assert!(!s.csv.add_column_name);
        assert_eq!(s.max_file_bytes, 1 << 30);
        assert_eq!(s.parquet.row_group_length, 10_000);
        assert_eq!(s.parquet.version, ParquetVersion::V1);
        assert_eq!(s.parquet.encoding, Encoding::RleDictionary);
        assert_eq!(s.cdc.min_file_bytes, 32_000 * 1024);
        assert_eq!(s.cdc.max_batch_interval, std::time::Duration::from_secs(60));
        assert_eq!(s.unchanged_marker, None);
        assert_eq!(s.encryption, Encryption::SseS3);
        assert!(s.canned_acl.is_none());
    }

    #[test]
    fn api_and_eca_spellings() {
        let s = parse("dataFormat=parquet;parquetVersion=parquet-2-0;encodingType=PLAIN;cannedAclForObjects=BUCKET_OWNER_FULL_CONTROL;compressionType=gzip;csvDelimiter=\\t").unwrap();
        assert_eq!(s.data_format, FileFormat::Parquet);
        assert_eq!(s.parquet.version, ParquetVersion::V2);
        assert_eq!(s.parquet.encoding, Encoding::Plain);
        assert_eq!(s.canned_acl.as_deref(), Some("bucket-owner-full-control"));
        assert_eq!(s.compression, Compression::Gzip);
        assert_eq!(s.csv.delimiter, "\t");
    }

    #[test]
    fn rejects_bad_combinations() {
        for eca in [
            "cdcInsertsOnly=true;cdcInsertsAndUpdates=true",
            "encryptionMode=SSE_KMS",
            "maxFileSize=0",
            "maxFileSize=1048577",
            "preserveTransactions=true",
            "preserveTransactions=true;cdcPath=x;datePartitionEnabled=true",
            "cdcPath=changes",
            "dataFormat=avro",
            "expectedBucketOwner=12",
            "csvDelimiter=\"",
            "bucketName=other",
            "datePartitionTimezone=Mars/Base",
        ] {
            let err = parse(eca).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Config, "{eca}");
            assert!(!err.fix.is_empty(), "{eca}");
        }
    }
}
