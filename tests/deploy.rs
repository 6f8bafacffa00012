//! The deployment examples in `deploy/` stay true: every task file they embed parses with the
//! task-file parser, and every command line uses subcommands and flags the binary has.

use std::path::{Path, PathBuf};

use crate::common::tributary;

/// The Kubernetes manifests.
fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    assert!(out.len() >= 2, "{out:?}");
    out
}

/// The `task.toml: |` block of a manifest, its indentation removed.
fn embedded_task(text: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != "task.toml: |");
    lines.next().expect("a task.toml block");
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.starts_with("    "))
        .collect();
    body.iter()
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `args: [...]` lists of a manifest (written as flow sequences of quoted strings, which
/// are JSON arrays).
fn arg_lists(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("args: "))
        .map(|a| serde_json::from_str(a).expect("args as a JSON-style list"))
        .collect()
}

#[test]
fn kubernetes_examples_parse_and_use_real_flags() {
    for path in manifests() {
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("task.toml");
        std::fs::write(&task, embedded_task(&text)).unwrap();
        // Every ${VAR} is set, as the pod's environment would.
        tributary::TaskConfig::load(&task, &|_| Some("x".to_string()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));

        let lists = arg_lists(&text);
        assert!(!lists.is_empty(), "{}: no args", path.display());
        for args in lists {
            let help = tributary(&[args[0].as_str(), "--help"]);
            assert!(
                help.status.success(),
                "{}: no subcommand {}",
                path.display(),
                args[0]
            );
            let help = String::from_utf8_lossy(&help.stdout);
            for flag in args.iter().filter(|a| a.starts_with("--")) {
                assert!(
                    help.contains(flag.as_str()),
                    "{}: `tributary {}` has no {flag}",
                    path.display(),
                    args[0]
                );
            }
            assert!(
                args.windows(2)
                    .any(|w| w[0] == "--config" && w[1] == "/etc/tributary/task.toml"),
                "{}: the task file is mounted at /etc/tributary/task.toml",
                path.display()
            );
        }
    }
}

#[test]
fn the_container_runs_the_binary_alone_as_non_root() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile"))
            .unwrap();
    assert!(text.contains("--bin tributary"), "{text}");
    assert!(
        text.contains("COPY --from=build /src/target/release/tributary /usr/local/bin/tributary"),
        "{text}"
    );
    assert!(text.contains("USER nonroot"), "{text}");
    assert!(
        text.contains("ENTRYPOINT [\"/usr/local/bin/tributary\"]"),
        "{text}"
    );
    let finals: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(finals.len(), 2, "a build stage and the runtime stage");
    assert!(finals[1].contains("distroless"), "{finals:?}");
}
