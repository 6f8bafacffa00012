//! Tributary: a single-binary replacement for the AWS DMS S3 target.
//!
//! The modules follow the pipeline: `source::{postgres}` → `change` (typed rows, positions) →
//! `writer` (formats, thresholds, Op/timestamp columns) → `layout` (pure key naming) → `store`
//! (S3, local) → `checkpoint`; `task` orchestrates and `config` validates once at start.

pub mod change;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod layout;
pub mod mapping;
pub mod progress;
pub mod source;
pub mod store;
pub mod task;
pub mod writer;
