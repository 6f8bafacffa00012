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
mod state;
mod store;
pub mod task;

pub use config::{import, task_settings_table, TaskConfig};
mod writer;

#[cfg(test)]
mod layering {
    /// The modules from the top of ARCHITECTURE.md's picture to its bottom.
    const LAYERS: &[&str] = &[
        "task",
        "progress",
        "source",
        "writer",
        "state",
        "store",
        "config",
        "checkpoint",
        "layout",
        "mapping",
        "retry",
        "change",
        "error",
    ];

    /// No module names one above it (`crate::x` in code or docs).
    #[test]
    fn no_module_uses_one_above_it() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut problems = Vec::new();
        for (rank, module) in LAYERS.iter().enumerate() {
            let mut stack = vec![src.join(module), src.join(format!("{module}.rs"))];
            while let Some(path) = stack.pop() {
                if path.is_dir() {
                    stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                for (above, name) in LAYERS[..rank].iter().enumerate() {
                    if text.contains(&format!("crate::{name}")) {
                        problems.push(format!(
                            "{} (layer {rank}) uses crate::{name} (layer {above})",
                            path.display()
                        ));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
