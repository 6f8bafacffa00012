//! `tributary import-dms`: a Tributary task file from what `aws dms describe-replication-tasks`
//! and `aws dms describe-endpoints` export.
//!
//! A pure function of the three JSON documents ([`import`]). Every DMS value is carried over by
//! its DMS name where the task-file parser takes that name, and otherwise written as a comment
//! saying why it is not. Which names are taken is asked of the parser's own lists
//! (`source::accepted_settings`, `target::ACCEPTED`), and the finished text is parsed with
//! [`TaskConfig::parse`]: a value the parser refuses (a task setting Tributary does not
//! implement, a start position it cannot read) is commented out with the parser's own cause and
//! fix, and the text is parsed again. So the file written always parses, and the import follows
//! the parser as settings are added, without a second list to keep in step.

mod endpoints;
mod render;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde_json::Value;

use super::TaskConfig;
use crate::error::{Error, Result};
use render::{Draft, Line, Section};

/// Default name of the environment variable the source password is read from.
pub const DEFAULT_PASSWORD_ENV: &str = "TRIBUTARY_SOURCE_PASSWORD";

/// What the user chose on the command line besides the three documents.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `--task-id`: which task of a list.
    pub task_id: Option<String>,
    /// `--source-id`: which endpoint of the source document's list.
    pub source_id: Option<String>,
    /// `--target-id`: which endpoint of the target document's list.
    pub target_id: Option<String>,
    /// `--password-env`: the variable holding the source password (default
    /// [`DEFAULT_PASSWORD_ENV`]).
    pub password_env: Option<String>,
}

/// The three documents, read from files and parsed as JSON.
pub struct Documents {
    /// `describe-replication-tasks` output or one task.
    pub task: Value,
    /// `describe-endpoints` output or one endpoint: the source.
    pub source: Value,
    /// `describe-endpoints` output or one endpoint: the target.
    pub target: Value,
}

impl Documents {
    /// Reads the three files (`--task`, `--source-endpoint`, `--target-endpoint`).
    pub fn read(task: &Path, source: &Path, target: &Path) -> Result<Documents> {
        Ok(Documents {
            task: read_json(task, "--task", "aws dms describe-replication-tasks")?,
            source: read_json(source, "--source-endpoint", "aws dms describe-endpoints")?,
            target: read_json(target, "--target-endpoint", "aws dms describe-endpoints")?,
        })
    }
}

/// Reads one JSON file, naming the flag and the command that makes it in errors.
fn read_json(path: &Path, flag: &str, command: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(
            format!("cannot read {flag} {}: {e}", path.display()),
            format!("save the output of `{command} --output json` to a file and pass its path"),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::config(
            format!(
                "{flag} {} is not JSON (line {}, column {}: {e})",
                path.display(),
                e.line(),
                e.column()
            ),
            format!("pass the JSON that `{command} --output json` prints, unchanged"),
        )
    })
}

/// Writes the task file: to stdout when `out` is None, else to a new file (an existing one only
/// with `force`).
pub fn write_output(text: &str, out: Option<&Path>, force: bool) -> Result<()> {
    use std::io::Write;
    let Some(path) = out else {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        return Ok(());
    };
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut file = open.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::config(
                format!("{} exists already", path.display()),
                "choose another -o file, or pass --force to overwrite it",
            )
        } else {
            Error::config(
                format!("cannot write {}: {e}", path.display()),
                "choose a writable -o path",
            )
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            Error::config(
                format!("cannot write {}: {e}", path.display()),
                "choose a writable -o path",
            )
        })
}

/// The task file for the documents: a complete, commented TOML text that [`TaskConfig::parse`]
/// accepts once the password variable is set.
pub fn import(docs: &Documents, opts: &ImportOptions) -> Result<String> {
    let task = pick(
        &docs.task,
        &PickSpec {
            list: "ReplicationTasks",
            id: "ReplicationTaskIdentifier",
            flag_doc: "--task",
            flag_id: "--task-id",
            command: "aws dms describe-replication-tasks",
        },
        opts.task_id.as_deref(),
        None,
    )?;
    let endpoint_spec = |flag_doc, flag_id| PickSpec {
        list: "Endpoints",
        id: "EndpointIdentifier",
        flag_doc,
        flag_id,
        command: "aws dms describe-endpoints",
    };
    let source = pick(
        &docs.source,
        &endpoint_spec("--source-endpoint", "--source-id"),
        opts.source_id.as_deref(),
        str_field(task, "SourceEndpointArn"),
    )?;
    let target = pick(
        &docs.target,
        &endpoint_spec("--target-endpoint", "--target-id"),
        opts.target_id.as_deref(),
        str_field(task, "TargetEndpointArn"),
    )?;
    let password_env = opts
        .password_env
        .clone()
        .unwrap_or_else(|| DEFAULT_PASSWORD_ENV.to_string());
    if password_env.is_empty()
        || !password_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::config(
            format!("--password-env {password_env:?} is not an environment variable name"),
            "use letters, digits and '_', e.g. --password-env SHOP_DB_PASSWORD",
        ));
    }
    let mut draft = Draft::default();
    let src = endpoints::source(source, &password_env)?;
    let tgt = endpoints::target(target)?;
    let password_env = if src.from_secret {
        String::new()
    } else {
        password_env
    };
    draft.header = header(task, source, target, &src.user, &password_env);
    let task_section = task_section(task, &src.engine, &mut draft)?;
    draft.sections.push(task_section);
    draft.sections.extend(src.sections);
    draft.sections.extend(tgt);
    settle(&mut draft)
}

/// Parses the draft, comments out what the parser refuses with its reason, and repeats until
/// it parses; an error that names nothing that can be left out is returned as it is.
fn settle(draft: &mut Draft) -> Result<String> {
    // Each round comments out one value, so this ends; the bound is a guard against a parser
    // error that keeps naming a value already out.
    for _ in 0..=draft.len() {
        let text = draft.render();
        // Any value does for the check (the password variable, placeholders for connection
        // facts the export lacks); the user sets the real ones.
        let placeholder = |name: &str| -> Option<String> {
            Some(format!("import-check-{}", name.to_ascii_lowercase()))
        };
        let err = match TaskConfig::parse(&text, Path::new("."), &placeholder) {
            Ok(_) => return Ok(text),
            Err(e) => e,
        };
        if !draft.leave_out(&err) {
            return Err(Error::config(
                format!("the imported task would not be valid: {}", err.message),
                format!(
                    "{} (in the DMS documents; then import again)",
                    err.fix.trim_end_matches('.')
                ),
            ));
        }
    }
    Err(Error::internal(
        "import-dms: the task file still does not parse after leaving every refused value out",
    ))
}

/// Which list a document may hold and how its entries are named.
struct PickSpec {
    /// `ReplicationTasks` / `Endpoints`.
    list: &'static str,
    /// The identifier field.
    id: &'static str,
    /// The flag the document came from.
    flag_doc: &'static str,
    /// The flag that picks one entry.
    flag_id: &'static str,
    /// The aws CLI command that exports it.
    command: &'static str,
}

/// One object of a `describe-*` document: the only one, the one named `want_id`, or the one
/// whose ARN the task names (`want_arn`) when the list holds several.
fn pick<'a>(
    doc: &'a Value,
    spec: &PickSpec,
    want_id: Option<&str>,
    want_arn: Option<&str>,
) -> Result<&'a Value> {
    let items: Vec<&Value> = match doc.get(spec.list) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(_) => {
            return Err(Error::config(
                format!("{} has a {} that is not a list", spec.flag_doc, spec.list),
                format!("pass the output of `{} --output json`", spec.command),
            ))
        }
        None if doc.get(spec.id).is_some() => vec![doc],
        None => {
            return Err(Error::config(
                format!(
                    "{} is neither {{\"{}\": [...]}} nor one object with {}",
                    spec.flag_doc, spec.list, spec.id
                ),
                format!(
                    "pass the output of `{} --output json` (or one object of its {} list)",
                    spec.command, spec.list
                ),
            ))
        }
    };
    let ids: Vec<&str> = items.iter().filter_map(|i| str_field(i, spec.id)).collect();
    let listed = || {
        ids.iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(want) = want_id {
        return items
            .iter()
            .copied()
            .find(|i| str_field(i, spec.id) == Some(want))
            .ok_or_else(|| {
                Error::config(
                    format!(
                        "{} holds no {} {want:?} (it holds {})",
                        spec.flag_doc,
                        spec.id,
                        listed()
                    ),
                    format!("pass one of those to {}", spec.flag_id),
                )
            });
    }
    if let [one] = items.as_slice() {
        return Ok(one);
    }
    if let Some(arn) = want_arn {
        let by_arn: Vec<&Value> = items
            .iter()
            .copied()
            .filter(|i| str_field(i, "EndpointArn") == Some(arn))
            .collect();
        if let [one] = by_arn.as_slice() {
            return Ok(one);
        }
    }
    if items.is_empty() {
        return Err(Error::config(
            format!("{} holds no {}", spec.flag_doc, spec.list),
            format!(
                "export it again with `{}` (check the region and the filters)",
                spec.command
            ),
        ));
    }
    Err(Error::config(
        format!(
            "{} holds {} {}: {}",
            spec.flag_doc,
            items.len(),
            spec.list,
            listed()
        ),
        format!(
            "pick one with {} ID, or keep one with jq: jq '.{}[] | select(.{} == \"ID\")'",
            spec.flag_id, spec.list, spec.id
        ),
    ))
}

/// A string field of a JSON object.
fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// The header: where the file came from and what to check before running it.
fn header(
    task: &Value,
    source: &Value,
    target: &Value,
    user: &str,
    password_env: &str,
) -> Vec<String> {
    let describe = |v: &Value, id: &str, arn: &str| {
        let mut s = str_field(v, id).unwrap_or("(no identifier)").to_string();
        if let Some(engine) = str_field(v, "EngineName") {
            s.push_str(&format!(" (EngineName {engine})"));
        }
        if let Some(arn) = str_field(v, arn) {
            s.push_str(&format!(", {arn}"));
        }
        s
    };
    let mut h = vec![
        "Tributary task file written by `tributary import-dms` from AWS DMS's exports of".into(),
        format!(
            "  task             {}",
            describe(task, "ReplicationTaskIdentifier", "ReplicationTaskArn")
        ),
        format!(
            "  source endpoint  {}",
            describe(source, "EndpointIdentifier", "EndpointArn")
        ),
        format!(
            "  target endpoint  {}",
            describe(target, "EndpointIdentifier", "EndpointArn")
        ),
    ];
    for (field, endpoint, what) in [
        ("SourceEndpointArn", source, "source"),
        ("TargetEndpointArn", target, "target"),
    ] {
        if let (Some(want), Some(got)) =
            (str_field(task, field), str_field(endpoint, "EndpointArn"))
        {
            if want != got {
                h.push(format!(
                    "CHECK: the task's {field} is {want}, not the {what} endpoint imported here."
                ));
            }
        }
    }
    let login = if password_env.is_empty() {
        [
            format!("  1. give the task read access to the Secrets Manager secret of {user}"),
            "     (the login is read from it on every connection);".into(),
        ]
    } else {
        [
            format!(
                "  1. export {password_env}='...'   the password of {user} (DMS never exports passwords;"
            ),
            "     percent-encode @ : / ? # [ ] % in it, as it goes into the url);".into(),
        ]
    };
    h.push("Before running it:".into());
    h.extend(login);
    h.extend([
        "  2. read the \"not carried over\" comments below: those DMS values have no effect here;"
            .into(),
        "  3. stop the DMS task first, or change BucketFolder: both would write the same objects;"
            .into(),
        "  4. tributary validate --config THIS_FILE   (checks the file, the source and the target)"
            .into(),
        "  5. tributary run --config THIS_FILE        (checkpoints go to ./tributary-state beside"
            .into(),
        "     this file unless [task] state says otherwise)".into(),
    ]);
    h
}

/// `[task]`: id, migration type, table mappings, task settings, CDC positions.
fn task_section(task: &Value, engine: &str, draft: &mut Draft) -> Result<Section> {
    let mut s = Section::new("[task]");
    let raw_id = str_field(task, "ReplicationTaskIdentifier").unwrap_or("dms-task");
    let id: String = raw_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut line = Line::string("id", &id);
    if id != raw_id {
        line.note(format!(
            "ReplicationTaskIdentifier {raw_id:?} with every character other than letters, digits, '-' and '_' made '-'"
        ));
    }
    line.note("it names the checkpoint folder and the default slot/publication names");
    s.push(line.fixed());
    let migration = str_field(task, "MigrationType").ok_or_else(|| {
        Error::config(
            "the task has no MigrationType",
            "export the task with `aws dms describe-replication-tasks --output json`",
        )
    })?;
    s.push(Line::string("migration_type", migration).fixed());
    let mappings = str_field(task, "TableMappings").ok_or_else(|| {
        Error::config(
            "the task has no TableMappings",
            "export the task with `aws dms describe-replication-tasks --output json` (without --without-settings)",
        )
    })?;
    // Checked here so the re-indenting below only ever sees JSON.
    serde_json::from_str::<Value>(mappings).map_err(|e| {
        Error::config(
            format!("the task's TableMappings is not JSON: {e}"),
            "export the task again; TableMappings holds the table-mapping JSON as a string",
        )
    })?;
    s.push(Line::json_text("table_mappings", mappings).fixed());
    match str_field(task, "ReplicationTaskSettings") {
        Some(text) => {
            let settings: Value = serde_json::from_str(text).map_err(|e| {
                Error::config(
                    format!("the task's ReplicationTaskSettings is not JSON: {e}"),
                    "export the task again; ReplicationTaskSettings holds the task-settings JSON as a string",
                )
            })?;
            draft.task_settings = Some(settings);
            draft.task_settings_text = Some(text.to_string());
        }
        None => s.push_comment(
            "no ReplicationTaskSettings in the export (--without-settings?): Tributary's defaults apply",
        ),
    }
    if let Some(pos) = str_field(task, "CdcStartPosition") {
        let mut line = Line::string("cdc_start_position", pos);
        if pos.starts_with("checkpoint:") {
            line.note("a DMS checkpoint string: its format is undocumented; if it is refused below, give the native position it holds (PostgreSQL LSN, MySQL binlog file:offset)");
        }
        s.push(line);
    }
    if let Some(time) = task.get("CdcStartTime").filter(|v| !v.is_null()) {
        let why = if engine == "postgres" {
            "PostgreSQL keeps no map from a time to a WAL position (DMS refuses CdcStartTime for PostgreSQL too); create a slot, set SlotName and give its LSN as cdc_start_position"
        } else {
            "Tributary starts MySQL/MariaDB change capture at a binlog file:offset or a MariaDB GTID, not a time; find the position with mysqlbinlog --start-datetime and give it as cdc_start_position"
        };
        s.push(Line::raw("cdc_start_time", &time.to_string()).dropped(why));
    }
    if let Some(pos) = str_field(task, "CdcStopPosition") {
        s.push(Line::string("cdc_stop_position", pos));
    }
    if let Some(cp) = str_field(task, "RecoveryCheckpoint") {
        s.push_comment(format!(
            "RecoveryCheckpoint {cp}: where DMS last stopped. To go on from there without a new full load, use migration_type = \"cdc\" with the native position it holds as cdc_start_position."
        ));
    }
    Ok(s)
}
