//! Tributary: a single-binary replacement for the AWS DMS S3 target.
//!
//! The modules follow the pipeline (see ARCHITECTURE.md): `source::{postgres, mysql}` →
//! `change` (typed rows, positions) → `writer` (formats, thresholds, Op/timestamp columns) →
//! `layout` (pure key naming) → `store` (S3, local) → `checkpoint`; `task` orchestrates and
//! `config` validates once at start. `main.rs` uses only `config`, `error` and `task`.

mod change;
mod checkpoint;
mod config;
pub mod error;
mod layout;
mod mapping;
mod progress;
mod retry;
mod source;
mod store;
pub mod task;

pub use config::TaskConfig;
mod writer;
