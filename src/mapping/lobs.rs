//! `table-settings` rules with `lob-settings`: a table's own LOB mode over the task-wide
//! `TargetMetadata` LOB settings (`SupportLobs`, `LobMaxSize`).
//!
//! Modes as DMS documents them: `none` drops the table's LOB columns, `limited` cuts values at
//! `bulk-max-size` KB (the task's `LobMaxSize` when absent), `unlimited` writes them whole. DMS
//! rejects the `%` wildcard in table-settings locators, and so do we.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::{fail, name_like};
use crate::error::Result;

/// The `mode` of `lob-settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// LOB columns are not written.
    None,
    /// Values are cut at a size.
    Limited,
    /// Values are written whole.
    Unlimited,
}

/// `lob-settings` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Settings {
    mode: Mode,
    /// KB, a string or a number.
    #[serde(default)]
    bulk_max_size: Option<Value>,
}

/// A `table-settings` rule carrying `lob-settings` (the only kind parsed here).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "rule-type")]
    _rule_type: IgnoredAny,
    #[serde(rename = "rule-id")]
    _rule_id: IgnoredAny,
    /// Checked by `TableMappings::parse` for every rule type.
    #[serde(rename = "rule-name")]
    _rule_name: IgnoredAny,
    object_locator: Locator,
    lob_settings: Settings,
    /// Parsed by `segments`.
    #[serde(default, rename = "parallel-load")]
    _parallel_load: Option<IgnoredAny>,
}

/// The one table a table-settings rule names (lob-settings and parallel-load alike).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Locator {
    pub(super) schema_name: String,
    pub(super) table_name: String,
}

/// One table's LOB rule.
#[derive(Debug, Clone, PartialEq)]
struct LobRule {
    locator: Locator,
    mode: Mode,
    /// `bulk-max-size` in bytes.
    max_bytes: Option<usize>,
}

/// Every `lob-settings` rule of a mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LobRules {
    rules: Vec<LobRule>,
}

/// How one table's LOB columns are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lobs {
    /// LOB columns are written at all.
    pub(crate) support: bool,
    /// Values are cut at this many bytes (None: whole).
    pub(crate) max_bytes: Option<usize>,
}

/// Builds a lob-settings rule; `ctx` names it in errors.
pub(super) fn parse(rules: &mut LobRules, raw: &Value, id: &str, ctx: &str) -> Result<()> {
    let fix = format!("correct rule {id}; keys and values are case-sensitive");
    let rule = RawRule::deserialize(raw).or_else(|e| fail(ctx, e, fix))?;
    let loc = &rule.object_locator;
    if loc.schema_name.contains('%') || loc.table_name.contains('%') {
        let msg = "table-settings rules name one table: the % wildcard is not allowed (as in DMS)";
        return fail(ctx, msg, "write one rule per table");
    }
    let max_kb = match &rule.lob_settings.bulk_max_size {
        None => None,
        Some(v) => Some(
            name_like(v)
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|kb| *kb > 0)
                .ok_or_else(|| {
                    crate::error::Error::config(
                        format!("{ctx}: bulk-max-size must be a positive number of KB"),
                        "write e.g. \"bulk-max-size\": \"64\"",
                    )
                })?,
        ),
    };
    if rules.rules.iter().any(|r| r.locator == *loc) {
        return fail(
            ctx,
            "a second lob-settings rule for the same table",
            "keep one rule per table",
        );
    }
    rules.rules.push(LobRule {
        locator: rule.object_locator,
        mode: rule.lob_settings.mode,
        max_bytes: max_kb.map(|kb| kb * 1024),
    });
    Ok(())
}

impl LobRules {
    /// How `schema.table` writes LOBs, given the task-wide `task` settings.
    pub(crate) fn of(&self, schema: &str, table: &str, task: Lobs) -> Lobs {
        let rule = self
            .rules
            .iter()
            .find(|r| r.locator.schema_name == schema && r.locator.table_name == table);
        match rule.map(|r| (r.mode, r.max_bytes)) {
            None => task,
            Some((Mode::None, _)) => Lobs {
                support: false,
                max_bytes: None,
            },
            Some((Mode::Limited, max)) => Lobs {
                support: true,
                max_bytes: max.or(task.max_bytes),
            },
            Some((Mode::Unlimited, _)) => Lobs {
                support: true,
                max_bytes: None,
            },
        }
    }

    /// The tables the rules name, as `schema.table`.
    pub(super) fn tables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rules.iter().map(|r| {
            (
                r.locator.schema_name.as_str(),
                r.locator.table_name.as_str(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(table: &str, settings: &str) -> Value {
        serde_json::from_str(&format!(
            r#"{{"rule-type":"table-settings","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"s","table-name":"{table}"}},"lob-settings":{settings}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn modes_override_the_task_settings() {
        let mut r = LobRules::default();
        parse(&mut r, &rule("none", r#"{"mode":"none"}"#), "1", "rule 1").unwrap();
        parse(
            &mut r,
            &rule("lim", r#"{"mode":"limited","bulk-max-size":"2"}"#),
            "2",
            "rule 2",
        )
        .unwrap();
        parse(
            &mut r,
            &rule("lim_task", r#"{"mode":"limited"}"#),
            "3",
            "rule 3",
        )
        .unwrap();
        parse(
            &mut r,
            &rule("all", r#"{"mode":"unlimited","bulk-max-size":8}"#),
            "4",
            "rule 4",
        )
        .unwrap();
        let task = Lobs {
            support: true,
            max_bytes: Some(32 * 1024),
        };
        let of = |t: &str| r.of("s", t, task);
        assert_eq!(
            of("none"),
            Lobs {
                support: false,
                max_bytes: None
            }
        );
        assert_eq!(
            of("lim"),
            Lobs {
                support: true,
                max_bytes: Some(2048)
            }
        );
        assert_eq!(of("lim_task"), task);
        assert_eq!(
            of("all"),
            Lobs {
                support: true,
                max_bytes: None
            }
        );
        assert_eq!(of("other"), task);
    }

    #[test]
    fn wildcards_bad_sizes_and_duplicates_are_refused() {
        let mut r = LobRules::default();
        assert!(parse(&mut r, &rule("t%", r#"{"mode":"none"}"#), "1", "rule 1").is_err());
        assert!(parse(
            &mut r,
            &rule("t", r#"{"mode":"limited","bulk-max-size":"0"}"#),
            "1",
            "rule 1"
        )
        .is_err());
        assert!(parse(&mut r, &rule("t", r#"{"mode":"full"}"#), "1", "rule 1").is_err());
        parse(&mut r, &rule("t", r#"{"mode":"none"}"#), "1", "rule 1").unwrap();
        assert!(parse(&mut r, &rule("t", r#"{"mode":"unlimited"}"#), "2", "rule 2").is_err());
    }
}
