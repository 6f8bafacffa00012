//! DMS table-mapping JSON: selection rules (with source filters) decide which source tables and
//! rows a task loads; transformation rules decide what they are called and which columns their
//! files hold.
//!
//! The input is DMS's own `TableMappings` document so an existing task's mapping works unchanged.
//! Parsing is strict: a rule Tributary does not fully honour is an error, never a no-op, because a
//! silently ignored rule changes which tables reach the bucket or where their files land.

mod convert;
pub(crate) mod expr;
pub(crate) mod filter;
mod lobs;
pub(crate) mod segments;
mod table;
mod tags;
mod transform;

pub(crate) use lobs::Lobs;
pub(crate) use table::TableMap;
pub(crate) use tags::TagRules;
pub(crate) use transform::Names;

use crate::error::{Error, Result};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;

/// Kind of relation in the source catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum RelationKind {
    /// An ordinary table.
    Table,
    /// A view, which DMS can full-load as if it were a table.
    View,
}

/// Parsed table mappings.
#[derive(Debug, Clone)]
pub(crate) struct TableMappings {
    /// Selection rules in document order; precedence does not depend on the order.
    rules: Vec<SelectionRule>,
    /// Transformation rules in rule order (ascending rule-id, numeric ids first).
    transforms: Vec<transform::Rule>,
    /// The schema and table name rules of `transforms`.
    names: Names,
    /// The `post-processing` add-tag rules.
    tags: TagRules,
    /// The `table-settings` lob-settings rules.
    lobs: lobs::LobRules,
    /// The `table-settings` parallel-load rules.
    parallel: segments::ParallelRules,
    /// Column names the task adds to files (`Op`, the timestamp column): output columns must
    /// not take them. None when files do not name their columns (CSV without a header).
    reserved: Option<Vec<String>>,
}

/// A `selection` rule as written; serde reports unknown keys together with the accepted ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SelectionRule {
    /// Checked by hand before this struct is built, so the error can name the rule.
    #[serde(rename = "rule-type")]
    _rule_type: IgnoredAny,
    /// Checked by hand before this struct is built; kept to name the rule in later errors.
    rule_id: Value,
    /// Checked by `TableMappings::parse` for every rule type.
    #[serde(rename = "rule-name")]
    _rule_name: IgnoredAny,
    /// What the rule does to the objects it matches.
    rule_action: Action,
    /// Which objects the rule matches.
    object_locator: Locator,
    /// A string or number; see [`load_order`].
    #[serde(default)]
    load_order: Option<Value>,
    /// Source filters: AND-ed, each an OR of its conditions.
    #[serde(default)]
    filters: Vec<Filter>,
}

/// The `object-locator` of a selection rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Locator {
    /// Schema pattern (a literal name for explicit rules).
    schema_name: String,
    /// Table pattern (a literal name for explicit rules).
    table_name: String,
    /// Which relation kinds the rule covers.
    #[serde(default)]
    table_type: TableType,
}

/// The `rule-action` of a selection rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    /// Select every object the patterns match.
    Include,
    /// Deselect every object the patterns match; beats include and explicit.
    Exclude,
    /// Select exactly the named object; names are literal.
    Explicit,
}

/// The `table-type` of an object-locator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TableType {
    /// Tables only, the DMS default.
    #[default]
    Table,
    /// Views only.
    View,
    /// Tables and views.
    All,
}

/// One `filters` entry: its conditions are OR-ed, several filters are AND-ed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Filter {
    /// Only `source` exists in DMS.
    #[allow(dead_code)] // Checked by serde: the only value.
    filter_type: FilterType,
    /// The column the conditions test.
    column_name: String,
    /// The conditions, in document order.
    filter_conditions: Vec<Condition>,
}

/// The `filter-type` of a filter.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FilterType {
    /// Filter on source column values.
    Source,
}

/// One `filter-conditions` entry; values stay text because DMS compares them in the column's type.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "filter-operator", rename_all = "lowercase")]
#[serde(rename_all_fields = "kebab-case", deny_unknown_fields)]
enum Condition {
    /// Column <= value (`ste` is DMS's documented alias).
    #[serde(alias = "ste")]
    Lte { value: String },
    /// Column >= value.
    Gte { value: String },
    /// Column = value.
    Eq { value: String },
    /// Column <> value.
    NotEq { value: String },
    /// Start <= column <= end.
    Between {
        start_value: String,
        end_value: String,
    },
    /// Column outside [start, end].
    NotBetween {
        start_value: String,
        end_value: String,
    },
    /// Column IS NULL.
    Null {},
    /// Column IS NOT NULL.
    NotNull {},
}

/// DMS documents load-order as a positive 32-bit integer.
const MAX_LOAD_ORDER: i64 = i32::MAX as i64;

impl TableMappings {
    /// Parses DMS table-mapping JSON (`{"rules":[...]}`), rejecting malformed rules with an error naming the rule-id and the fix.
    pub(crate) fn parse(json: &str) -> Result<TableMappings> {
        let (top_ctx, shape) = ("table mapping", "write it as {\"rules\": [ ... ]}");
        let doc: Value = serde_json::from_str(json).map_err(|e| {
            Error::config(
                format!("{top_ctx}: not valid JSON: {e}"),
                "fix the JSON syntax",
            )
        })?;
        let Value::Object(top) = doc else {
            return fail(top_ctx, "the top level must be a JSON object", shape);
        };
        if let Some(key) = top.keys().find(|k| *k != "rules") {
            return fail(top_ctx, format!("unknown top-level key \"{key}\""), shape);
        }
        let Some(raw_rules) = top
            .get("rules")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
        else {
            return fail(top_ctx, "\"rules\" must be a non-empty array", shape);
        };
        let mut ids = HashSet::new();
        let mut rules = Vec::new();
        let mut transforms = Vec::new();
        let mut tags = TagRules::default();
        let mut lob_rules = lobs::LobRules::default();
        let mut parallel = segments::ParallelRules::default();
        for (index, raw) in raw_rules.iter().enumerate() {
            let at = format!("table mapping rule #{}", index + 1);
            let fix_id = "give every rule a unique rule-id, e.g. \"rule-id\": \"1\"";
            let Some(id) = raw.get("rule-id").and_then(name_like) else {
                let msg = "must be an object with a rule-id (a non-empty string or an integer)";
                return fail(&at, msg, fix_id);
            };
            let ctx = format!("table mapping rule {id}");
            // `1` and `"1"` look like the same id to a reader, so they collide here too.
            if !ids.insert(id.clone()) {
                return fail(&ctx, "duplicate rule-id", fix_id);
            }
            let kind = raw.get("rule-type").and_then(Value::as_str);
            let known = [
                "selection",
                "transformation",
                "table-settings",
                "post-processing",
            ];
            if !kind.is_some_and(|k| known.contains(&k)) {
                let fix = "use selection, transformation, table-settings or post-processing";
                return fail(&ctx, "rule-type is missing or unknown", fix);
            }
            // DMS requires a rule-name on every rule but gives it no meaning.
            if raw.get("rule-name").and_then(name_like).is_none() {
                let msg = "rule-name is missing, empty or not a string/integer";
                return fail(&ctx, msg, format!("add \"rule-name\": \"{id}\""));
            }
            match kind {
                Some("selection") => rules.push(parse_selection(raw, &id, &ctx)?),
                Some("transformation") => transforms.push(transform::parse(raw, &id, &ctx)?),
                Some("post-processing") => tags::parse(&mut tags, raw, &id, &ctx)?,
                Some("table-settings")
                    if raw.get("parallel-load").is_some() || raw.get("lob-settings").is_some() =>
                {
                    if raw.get("parallel-load").is_some() {
                        segments::parse(&mut parallel, raw, &id, &ctx)?;
                    }
                    if raw.get("lob-settings").is_some() {
                        lobs::parse(&mut lob_rules, raw, &id, &ctx)?;
                    }
                }
                Some("table-settings") => {
                    let msg = "table-settings rule without parallel-load or lob-settings";
                    return fail(&ctx, msg, "add lob-settings, or remove the rule");
                }
                _ => unreachable!("rule-type checked above"),
            }
        }
        // A mapping that can only exclude would start a task that loads nothing, silently.
        if rules.iter().all(|r| r.rule_action == Action::Exclude) {
            let msg = "no include or explicit selection rule, so no table is selected";
            let fix = "add an include rule, e.g. schema-name \"public\" and table-name \"%\"";
            return fail(top_ctx, msg, fix);
        }
        transforms.sort_by(|a: &transform::Rule, b| a.order.cmp(&b.order));
        let names = Names::new(&transforms);
        Ok(TableMappings {
            rules,
            transforms,
            names,
            tags,
            lobs: lob_rules,
            parallel,
            reserved: None,
        })
    }

    /// `TargetMetadata.TargetSchema`: the schema folder of every table, before schema rules.
    pub(crate) fn set_target_schema(&mut self, name: &str) {
        self.names.set_target_schema(name);
    }

    /// Declares that files name their columns, and the names the task adds to every file
    /// (see [`TableMappings::check`]).
    pub(crate) fn reserve(&mut self, names: Vec<String>) {
        self.reserved = Some(names);
    }

    /// The schema and table name rules (what the bucket's folders are called).
    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    /// How `schema.table` writes LOB columns: its lob-settings rule over the task's `task`.
    pub(crate) fn lobs(&self, schema: &str, table: &str, task: Lobs) -> Lobs {
        self.lobs.of(schema, table, task)
    }

    /// The parallel-load rule of `schema.table`, with its rule id.
    pub(crate) fn parallel_load(
        &self,
        schema: &str,
        table: &str,
    ) -> Option<(&segments::ParallelLoad, &str)> {
        self.parallel.of(schema, table)
    }

    /// The add-tag rules (the S3 tags of each table's objects).
    pub(crate) fn tag_rules(&self) -> &TagRules {
        &self.tags
    }

    /// True if `schema.table` of `kind` is selected: some include/explicit rule matches and no exclude rule matches (exclude wins).
    pub(crate) fn selects(&self, schema: &str, table: &str, kind: RelationKind) -> bool {
        !self.selected_by(schema, table, kind).is_empty()
    }

    /// The load-order of the rule that selected the table (higher loads first in DMS; default 0), for ordering work.
    ///
    /// When several rules select the table the highest load-order wins; 0 if it is not selected.
    pub(crate) fn load_order(&self, schema: &str, table: &str, kind: RelationKind) -> i64 {
        let rules = self.selected_by(schema, table, kind);
        rules
            .iter()
            .filter_map(|r| load_order(r))
            .max()
            .unwrap_or(0)
    }

    /// The include/explicit rules selecting the object; empty if none does or an exclude matches.
    fn selected_by(&self, schema: &str, table: &str, kind: RelationKind) -> Vec<&SelectionRule> {
        let hits = self.rules.iter().filter(|r| r.matches(schema, table, kind));
        let (excludes, selects): (Vec<_>, Vec<_>) =
            hits.partition(|r| r.rule_action == Action::Exclude);
        if excludes.is_empty() {
            selects
        } else {
            Vec::new()
        }
    }
}

impl SelectionRule {
    /// The rule-id as written.
    fn rule_id(&self) -> String {
        name_like(&self.rule_id).unwrap_or_default()
    }

    /// True if the locator's names cover `schema.table`, whatever its kind and the action.
    fn names_match(&self, schema: &str, table: &str) -> bool {
        let loc = &self.object_locator;
        match self.rule_action {
            Action::Explicit => loc.schema_name == schema && loc.table_name == table,
            _ => wildcard_match(&loc.schema_name, schema) && wildcard_match(&loc.table_name, table),
        }
    }

    /// True if the rule's locator covers the object, whatever the rule's action.
    fn matches(&self, schema: &str, table: &str, kind: RelationKind) -> bool {
        let loc = &self.object_locator;
        let kind_ok = match loc.table_type {
            TableType::All => true,
            TableType::Table => kind == RelationKind::Table,
            TableType::View => kind == RelationKind::View,
        };
        kind_ok && self.names_match(schema, table)
    }
}

/// Builds a selection rule and checks what serde cannot express; `ctx` names the rule in errors.
fn parse_selection(raw: &Value, id: &str, ctx: &str) -> Result<SelectionRule> {
    let fix = format!("correct rule {id}; keys and values are case-sensitive");
    let rule = SelectionRule::deserialize(raw).or_else(|e| fail(ctx, e, fix))?;
    let loc = &rule.object_locator;
    if loc.schema_name.is_empty() || loc.table_name.is_empty() {
        let fix = "give a name or a pattern such as \"%\"";
        return fail(ctx, "schema-name and table-name must not be empty", fix);
    }
    if load_order(&rule).is_none() {
        let msg = format!("load-order must be an integer from 0 to {MAX_LOAD_ORDER}");
        return fail(
            ctx,
            msg,
            "use e.g. \"load-order\": \"1\"; higher loads first",
        );
    }
    let remove = format!("remove the filters array from rule {id}");
    if rule.rule_action == Action::Exclude && !rule.filters.is_empty() {
        return fail(ctx, "exclude rules cannot have filters", remove);
    }
    for conditions in rule.filters.iter().map(|f| &f.filter_conditions) {
        if conditions.is_empty() {
            let msg = "a filter needs at least one filter-conditions entry";
            return fail(ctx, msg, remove);
        }
        use Condition::{NotBetween, NotEq, NotNull};
        let negative = |c: &Condition| matches!(c, NotEq { .. } | NotBetween { .. } | NotNull {});
        // DMS allows a negative operator only alone: OR-ed with others it selects nearly every row.
        if conditions.len() > 1 && conditions.iter().any(negative) {
            let fix = "give each noteq/notbetween/notnull condition a filter of its own";
            let msg = "a filter mixes a negative operator with other conditions";
            return fail(ctx, msg, fix);
        }
    }
    Ok(rule)
}

/// An [`Error::config`] whose message starts with `ctx`, so it names the rule it is about.
fn fail<T>(ctx: &str, msg: impl std::fmt::Display, fix: impl Into<String>) -> Result<T> {
    Err(Error::config(format!("{ctx}: {msg}"), fix))
}

/// The rule's load-order (0 if absent), or `None` outside DMS's range; strings and numbers both occur.
fn load_order(rule: &SelectionRule) -> Option<i64> {
    let n = match &rule.load_order {
        None => 0,
        Some(Value::Number(n)) => n.as_i64()?,
        Some(Value::String(s)) => s.parse().ok()?,
        Some(_) => return None,
    };
    (0..=MAX_LOAD_ORDER).contains(&n).then_some(n)
}

/// Text of a rule-id or rule-name: DMS writes strings but hand-written mappings use numbers.
fn name_like(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// One unit of a DMS wildcard pattern; every kind except `Any` consumes exactly one char.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `%`: any run of chars, including none.
    Any,
    /// `_`: any single char.
    One,
    /// A char that must match exactly.
    Lit(char),
    /// `[...]`: one char within any of the inclusive ranges (a single char is a one-char range).
    Class(Vec<(char, char)>),
}

impl Token {
    /// True if this single-char token accepts `c`.
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Any | Token::One => true,
            Token::Lit(l) => *l == c,
            Token::Class(ranges) => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi),
        }
    }
}

/// Splits a pattern into tokens; a `[` with no `]` after at least one char is a literal `[`.
fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let close = match chars[i] {
            '[' => chars
                .get(i + 2..)
                .and_then(|rest| rest.iter().position(|&c| c == ']')),
            _ => None,
        };
        tokens.push(match (chars[i], close) {
            ('%', _) => Token::Any,
            ('_', _) => Token::One,
            ('[', Some(offset)) => {
                let body = &chars[i + 1..i + 2 + offset];
                i += 2 + offset;
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < body.len() {
                    // A `-` first or last in the class is literal, as in SQL Server's LIKE.
                    let step = if j + 2 < body.len() && body[j + 1] == '-' {
                        3
                    } else {
                        1
                    };
                    ranges.push((body[j], body[j + step - 1]));
                    j += step;
                }
                Token::Class(ranges)
            }
            (c, _) => Token::Lit(c),
        });
        i += 1;
    }
    tokens
}

/// DMS wildcard match: `%` any run (incl. empty), `_` exactly one char, `[_]` a literal underscore (generally `[abc]` a set and `[a-d]` a range, `[%]` literal percent); everything else literal and case-sensitive. Unicode-aware (match on chars).
pub(crate) fn wildcard_match(pattern: &str, name: &str) -> bool {
    let tokens = tokenize(pattern);
    let name: Vec<char> = name.chars().collect();
    let (mut t, mut n) = (0, 0);
    // Retrying only from the latest `%` suffices because every other token takes one char.
    let mut resume: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Any) => {
                t += 1;
                resume = Some((t, n));
            }
            Some(token) if token.accepts(name[n]) => (t, n) = (t + 1, n + 1),
            _ => match resume {
                Some((rt, rn)) => {
                    (t, n) = (rt, rn + 1);
                    resume = Some((rt, rn + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == Token::Any)
}

#[cfg(test)]
mod tests;
