//! The integration test binary: every module shares the servers `scripts/test.sh` started
//! (PostgreSQL with wal_level=logical, MariaDB, an S3 API server); each test makes its own
//! database, bucket and folders, so tests run in parallel.

#![allow(unreachable_pub)] // helper modules of one test binary

mod cdc;
mod chunks;
mod common;
mod deploy;
mod drop;
mod errors;
mod full_load;
mod import_dms;
mod keys;
mod load_retry;
mod mapping;
mod mysql;
mod operator;
mod resilience;
mod resume;
mod s3;
mod secrets;
mod segments;
mod source_settings;
mod state;
mod suspend;
mod tls;
mod validate;
mod values;
