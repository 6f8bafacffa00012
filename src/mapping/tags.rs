//! DMS `post-processing` rules with `rule-action: add-tag`: S3 object tags on every object
//! written for the matching tables.
//!
//! When several rules match a table, the most specific locator wins (a literal schema or table
//! name beats a pattern; the schema counts before the table), ties going to the lowest rule-id,
//! as DMS documents. `${schema-name}` and `${table-name}` in keys and values become the source
//! table's names.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::{fail, wildcard_match};
use crate::error::{Error, Result};

/// S3's limits on one object's tags.
const MAX_TAGS: usize = 10;
/// Longest tag key S3 accepts (characters).
const MAX_KEY_CHARS: usize = 128;
/// Longest tag value S3 accepts (characters).
const MAX_VALUE_CHARS: usize = 256;

/// An `add-tag` rule as written.
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
    rule_action: String,
    object_locator: Locator,
    tag_set: Vec<Tag>,
}

/// The tables a tag rule covers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Locator {
    schema_name: String,
    table_name: String,
}

/// One tag; `${schema-name}` and `${table-name}` are replaced per table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tag {
    key: String,
    value: String,
}

/// One compiled tag rule.
#[derive(Debug, Clone, PartialEq)]
struct TagRule {
    order: (u64, String),
    locator: Locator,
    tags: Vec<Tag>,
}

/// Every `add-tag` rule of a mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TagRules {
    rules: Vec<TagRule>,
}

/// Builds an add-tag rule; `ctx` names it in errors.
pub(super) fn parse(rules: &mut TagRules, raw: &Value, id: &str, ctx: &str) -> Result<()> {
    let fix = format!("correct rule {id}; keys and values are case-sensitive");
    let rule = RawRule::deserialize(raw).or_else(|e| fail(ctx, e, fix))?;
    if rule.rule_action != "add-tag" {
        let msg = format!(
            "post-processing rule-action {:?} is unknown",
            rule.rule_action
        );
        return fail(ctx, msg, "the only post-processing action is add-tag");
    }
    if rule.tag_set.is_empty() || rule.tag_set.len() > MAX_TAGS {
        let msg = format!("tag-set must hold 1 to {MAX_TAGS} tags (S3's limit per object)");
        return fail(ctx, msg, "remove tags or split them across tables");
    }
    let numeric = id.parse().unwrap_or(u64::MAX);
    rules.rules.push(TagRule {
        order: (numeric, id.to_owned()),
        locator: rule.object_locator,
        tags: rule.tag_set,
    });
    rules.rules.sort_by(|a, b| a.order.cmp(&b.order));
    Ok(())
}

/// True when a locator name is a literal, not a pattern.
fn literal(name: &str) -> bool {
    !name.contains(['%', '_', '['])
}

impl TagRules {
    /// The tags of every object of source table `schema.table` (empty when no rule matches).
    pub(crate) fn tags(&self, schema: &str, table: &str) -> Vec<(String, String)> {
        let best = self
            .rules
            .iter()
            .filter(|r| {
                wildcard_match(&r.locator.schema_name, schema)
                    && wildcard_match(&r.locator.table_name, table)
            })
            // max_by_key keeps the last of equals, so compare reversed over the rule order.
            .rev()
            .max_by_key(|r| {
                (
                    literal(&r.locator.schema_name),
                    literal(&r.locator.table_name),
                )
            });
        let fill = |s: &str| {
            s.replace("${schema-name}", schema)
                .replace("${table-name}", table)
        };
        best.map(|r| {
            r.tags
                .iter()
                .map(|t| (fill(&t.key), fill(&t.value)))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Checks the tags `schema.table` gets against S3's rules: keys unique once substituted,
    /// within S3's lengths.
    pub(super) fn check(&self, schema: &str, table: &str) -> Result<()> {
        let tags = self.tags(schema, table);
        let mut keys = std::collections::HashSet::new();
        for (k, v) in &tags {
            let bad = if k.is_empty() || k.chars().count() > MAX_KEY_CHARS {
                Some(format!(
                    "tag key {k:?} must have 1 to {MAX_KEY_CHARS} characters"
                ))
            } else if v.chars().count() > MAX_VALUE_CHARS {
                Some(format!(
                    "tag value of {k:?} is longer than {MAX_VALUE_CHARS} characters"
                ))
            } else if !keys.insert(k) {
                Some(format!("tag key {k:?} appears twice"))
            } else {
                None
            };
            if let Some(msg) = bad {
                return Err(Error::config(
                    format!("table mapping add-tag rules on {schema}.{table}: {msg}"),
                    "change the tag-set so every object gets valid, distinct tag keys",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &[&str]) -> TagRules {
        let mut r = TagRules::default();
        for (i, j) in json.iter().enumerate() {
            let v: Value = serde_json::from_str(j).unwrap();
            parse(&mut r, &v, &(i + 1).to_string(), "rule").unwrap();
        }
        r
    }

    fn rule(schema: &str, table: &str, tags: &str) -> String {
        format!(
            r#"{{"rule-type":"post-processing","rule-id":"x","rule-name":"x","rule-action":"add-tag","object-locator":{{"schema-name":"{schema}","table-name":"{table}"}},"tag-set":[{tags}]}}"#
        )
    }

    #[test]
    fn the_most_specific_rule_wins_and_names_are_substituted() {
        let r = rules(&[
            &rule(
                "%",
                "%",
                r#"{"key":"all","value":"${schema-name}.${table-name}"}"#,
            ),
            &rule("s", "%", r#"{"key":"schema","value":"s"}"#),
            &rule("s", "orders", r#"{"key":"${table-name}","value":"exact"}"#),
            &rule("s", "orders", r#"{"key":"second","value":"loses"}"#),
        ]);
        assert_eq!(
            r.tags("s", "orders"),
            [("orders".to_string(), "exact".to_string())]
        );
        assert_eq!(
            r.tags("s", "items"),
            [("schema".to_string(), "s".to_string())]
        );
        assert_eq!(r.tags("t", "x"), [("all".to_string(), "t.x".to_string())]);
        assert!(TagRules::default().tags("s", "t").is_empty());
    }

    #[test]
    fn invalid_tag_sets_are_refused() {
        let r = rules(&[&rule(
            "%",
            "%",
            r#"{"key":"${table-name}","value":"a"},{"key":"t","value":"b"}"#,
        )]);
        assert!(r.check("s", "u").is_ok());
        let e = r.check("s", "t").unwrap_err();
        assert!(e.message.contains("appears twice"), "{e:?}");
        let v: Value = serde_json::from_str(&rule("%", "%", "")).unwrap();
        assert!(parse(&mut TagRules::default(), &v, "1", "rule 1").is_err());
    }
}
