//! DMS table-mapping JSON: selection rules decide which source tables a task loads.
//!
//! The input is DMS's own `TableMappings` document so an existing task's mapping works unchanged.
//! Parsing is strict: a rule Tributary does not fully honour is an error, never a no-op, because a
//! silently ignored rule changes which tables reach the bucket or where their files land.

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

/// Parsed table mappings: the selection rules in rule order (other rule types are rejected until implemented).
#[derive(Debug, Clone)]
pub(crate) struct TableMappings {
    /// Selection rules in document order; precedence does not depend on the order.
    rules: Vec<SelectionRule>,
}

/// A `selection` rule as written; serde reports unknown keys together with the accepted ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SelectionRule {
    /// Checked by hand before this struct is built, so the error can name the rule.
    #[serde(rename = "rule-type")]
    _rule_type: IgnoredAny,
    /// As `_rule_type`.
    #[serde(rename = "rule-id")]
    _rule_id: IgnoredAny,
    /// A string or number; DMS requires it but gives it no meaning.
    rule_name: Value,
    /// What the rule does to the objects it matches.
    rule_action: Action,
    /// Which objects the rule matches.
    object_locator: Locator,
    /// A string or number; see [`load_order`].
    #[serde(default)]
    load_order: Option<Value>,
    /// Source filters, parsed so their shape is checked before row filtering exists.
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
#[allow(dead_code)] // Read once row filtering exists; `parse` rejects filters until then.
struct Filter {
    /// Only `source` exists in DMS.
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
#[allow(dead_code)] // See `Filter`.
enum Condition {
    /// Column <= value.
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
            match raw.get("rule-type").and_then(Value::as_str) {
                Some("selection") => rules.push(parse_selection(raw, &id, &ctx)?),
                Some(kind @ ("transformation" | "table-settings" | "post-processing")) => {
                    let fix = format!("remove rule {id}, or keep this task on AWS DMS until Tributary supports {kind} rules (ignoring the rule would write different output than DMS)");
                    return fail(&ctx, format!("{kind} rules are not supported yet"), fix);
                }
                _ => {
                    let fix = "use selection, transformation, table-settings or post-processing";
                    return fail(&ctx, "rule-type is missing or unknown", fix);
                }
            }
        }
        // A mapping that can only exclude would start a task that loads nothing, silently.
        if rules.iter().all(|r| r.rule_action == Action::Exclude) {
            let msg = "no include or explicit selection rule, so no table is selected";
            let fix = "add an include rule, e.g. schema-name \"public\" and table-name \"%\"";
            return fail(top_ctx, msg, fix);
        }
        Ok(TableMappings { rules })
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
    /// True if the rule's locator covers the object, whatever the rule's action.
    fn matches(&self, schema: &str, table: &str, kind: RelationKind) -> bool {
        let loc = &self.object_locator;
        let kind_ok = match loc.table_type {
            TableType::All => true,
            TableType::Table => kind == RelationKind::Table,
            TableType::View => kind == RelationKind::View,
        };
        let names_ok = match self.rule_action {
            Action::Explicit => loc.schema_name == schema && loc.table_name == table,
            _ => wildcard_match(&loc.schema_name, schema) && wildcard_match(&loc.table_name, table),
        };
        kind_ok && names_ok
    }
}

/// Builds a selection rule and checks what serde cannot express; `ctx` names the rule in errors.
fn parse_selection(raw: &Value, id: &str, ctx: &str) -> Result<SelectionRule> {
    let fix = format!("correct rule {id}; keys and values are case-sensitive");
    let rule = SelectionRule::deserialize(raw).or_else(|e| fail(ctx, e, fix))?;
    if name_like(&rule.rule_name).is_none() {
        let msg = "rule-name is missing, empty or not a string/integer";
        return fail(ctx, msg, format!("add \"rule-name\": \"{id}\""));
    }
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
    if rule.filters.is_empty() {
        return Ok(rule);
    } else if rule.rule_action == Action::Exclude {
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
    let msg = "source filters are not supported yet (a current Tributary limitation)";
    let fix = format!("{remove} and filter rows downstream, or keep this task on AWS DMS for now");
    fail(ctx, msg, fix)
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
mod tests {
    use super::*;
    use RelationKind::{Table, View};

    /// A selection rule on `schema.table`; `extra` adds rule members, and locator members after a `|`.
    fn sel(id: &str, action: &str, schema: &str, table: &str, extra: &str) -> String {
        let (rule_extra, loc_extra) = extra.split_once('|').unwrap_or((extra, ""));
        let head = format!(r#""rule-type":"selection","rule-id":"{id}","rule-name":"{id}""#);
        let loc = format!(r#""schema-name":"{schema}","table-name":"{table}"{loc_extra}"#);
        format!(r#"{{{head},"rule-action":"{action}","object-locator":{{{loc}}}{rule_extra}}}"#)
    }

    /// Parses a mapping made of `rules`, panicking with the error on failure.
    fn mapping(rules: &[String]) -> TableMappings {
        TableMappings::parse(&format!(r#"{{"rules":[{}]}}"#, rules.join(","))).unwrap()
    }

    /// Asserts that `pattern` matches every name in `yes` and none in `no`.
    fn check(pattern: &str, yes: &[&str], no: &[&str]) {
        for name in yes {
            assert!(
                wildcard_match(pattern, name),
                "{pattern:?} should match {name:?}"
            );
        }
        for name in no {
            assert!(
                !wildcard_match(pattern, name),
                "{pattern:?} should not match {name:?}"
            );
        }
    }

    /// Wildcards cover `%`, `_`, classes, literal fallbacks, case and non-ASCII names.
    #[test]
    fn wildcards() {
        check("%", &["", "anything"], &[]);
        check("a%c", &["ac", "abc", "a%c", "abbbc"], &["ab", "bac", "acb"]);
        check("%a%b", &["ab", "xaxxb", "aab"], &["ba", "a"]);
        check("a%%b", &["ab", "axb"], &["a"]);
        check("a_c", &["abc", "a_c", "a%c"], &["ac", "abbc"]);
        check("_", &["x", "é"], &["", "xy"]);
        check("abc%d", &["abcd"], &["abc", "abcde"]);
        check("abcd", &["abcd"], &["abc", "abcde", ""]);
        check("", &[""], &["a"]);
        check("a[_]c", &["a_c"], &["abc"]);
        check("[%]", &["%"], &["x", ""]);
        check("[ab]x", &["ax", "bx"], &["cx", "x"]);
        check("t[a-c]", &["ta", "tb", "tc"], &["td", "t"]);
        check("[-a][a-]", &["--", "aa"], &["b-"]);
        check("[d-a]", &[], &["a", "b", "d"]);
        check("[]]", &["]"], &["[]]"]);
        check("a[b", &["a[b"], &["ab"]);
        check("[]", &["[]"], &[""]);
        check("Orders", &["Orders"], &["orders", "ORDERS"]);
        check("caf_", &["café"], &["cafe\u{301}"]);
        check("ü%", &["über"], &["uber"]);
        check("[à-ä]", &["ã"], &["a", "å"]);
        check("数据_", &["数据表"], &["数据"]);
    }

    /// An exclude beats any selecting rule, wherever it sits in the list.
    #[test]
    fn exclude_wins_over_include_and_explicit_in_any_order() {
        let m = mapping(&[
            sel("1", "exclude", "public", "tmp%", ""),
            sel("2", "include", "public", "%", ""),
            sel("3", "explicit", "public", "tmp_keep", ""),
        ]);
        assert!(m.selects("public", "orders", Table));
        assert!(!m.selects("public", "tmp_x", Table));
        assert!(!m.selects("public", "tmp_keep", Table));
        assert!(!m.selects("other", "orders", Table));
    }

    /// Explicit rules name one object; `%` and `_` in them are plain characters.
    #[test]
    fn explicit_names_are_literal() {
        let m = mapping(&[sel("1", "explicit", "public", "order_%", "")]);
        assert!(m.selects("public", "order_%", Table));
        assert!(!m.selects("public", "order_1", Table));
        assert!(!m.selects("Public", "order_%", Table));
    }

    /// `table-type` limits each rule, excludes included, to tables, views or both.
    #[test]
    fn table_type_decides_tables_and_views() {
        let tables = mapping(&[sel("1", "include", "s", "%", r#"|,"table-type":"table""#)]);
        assert!(tables.selects("s", "t", Table) && !tables.selects("s", "v", View));
        let views = mapping(&[sel("1", "include", "s", "%", r#"|,"table-type":"view""#)]);
        assert!(views.selects("s", "v", View) && !views.selects("s", "t", Table));
        // An exclude keeps its own table-type: the default "table" does not hide views.
        let all = mapping(&[
            sel("1", "include", "s", "%", r#"|,"table-type":"all""#),
            sel("2", "exclude", "s", "x%", ""),
        ]);
        assert!(all.selects("s", "t", Table) && all.selects("s", "v", View));
        assert!(!all.selects("s", "x1", Table) && all.selects("s", "x1", View));
    }

    /// The highest load-order among selecting rules wins; unselected tables get 0.
    #[test]
    fn load_order_is_highest_of_selecting_rules() {
        let m = mapping(&[
            sel("1", "include", "s", "%", r#","load-order":"1""#),
            sel("2", "include", "s", "big%", r#","load-order":7"#),
            sel("3", "include", "t", "%", ""),
            sel("4", "exclude", "s", "big_skip", r#","load-order":"9""#),
        ]);
        assert_eq!(m.load_order("s", "small", Table), 1);
        assert_eq!(m.load_order("s", "big_one", Table), 7);
        assert_eq!(m.load_order("t", "x", Table), 0);
        assert_eq!(m.load_order("s", "big_skip", Table), 0);
        assert_eq!(m.load_order("nope", "x", Table), 0);
    }

    /// LIKE patterns keep wildcards, escape literals, widen classes and drop excludes.
    /// Numeric ids and names and an empty `filters` array are valid DMS.
    #[test]
    fn accepts_numeric_ids_and_empty_filters() {
        let rule = sel("1", "include", "s", "t", r#","filters":[]"#);
        let rule = rule.replace(
            r#""rule-id":"1","rule-name":"1""#,
            r#""rule-id":1,"rule-name":2"#,
        );
        assert!(mapping(&[rule]).selects("s", "t", Table));
    }

    /// Bad mappings, one per line: `kind | input | expected texts separated by ;`. Kinds: `doc` is
    /// the whole document, `rule` a second rule, `member`/`locator` extra members of rule 4
    /// (an include of s.t), `cond` the conditions of a source filter on column r of that rule.
    const BAD: &str = r#"
doc     | {                          | not valid JSON; line 1
doc     | []                         | must be a JSON object
doc     | {}                         | non-empty array
doc     | {"rules":[]}               | non-empty array
doc     | {"rules":[1]}              | rule #1; rule-id
doc     | {"rules":[{"rule-type":"selection"}]} | rule #1; rule-id
doc     | {"rules":[{"rule-id":true}]}          | rule #1; rule-id
doc     | {"rules":[{"rule-id":"2","rule-type":"selection","rule-name":"2","rule-action":"exclude","object-locator":{"schema-name":"s","table-name":"t"}}]} | no include or explicit
doc     | {"rules":[],"Rules":[]}    | unknown top-level key; Rules
rule    | {"rule-id":1}              | rule 1: duplicate rule-id
rule    | {"rule-id":"5","rule-type":"selektion"}      | rule 5: rule-type is missing or unknown
rule    | {"rule-id":"5","rule-type":"transformation"} | rule 5: transformation rules are not supported yet; remove rule 5
rule    | {"rule-id":"5","rule-type":"table-settings"} | rule 5: table-settings rules are not supported yet; remove rule 5
rule    | {"rule-id":"5","rule-type":"post-processing"} | rule 5: post-processing rules are not supported yet; remove rule 5
rule    | {"rule-id":"5","rule-type":"selection","rule-name":"5","rule-action":"include"} | rule 5; missing field `object-locator`
rule    | {"rule-id":"5","rule-type":"selection","rule-name":"","rule-action":"include","object-locator":{"schema-name":"s","table-name":"t"}} | rule 5: rule-name
rule    | {"rule-id":"5","rule-type":"selection","rule-name":"5","rule-action":"includ","object-locator":{"schema-name":"s","table-name":"t"}} | rule 5; unknown variant `includ`
rule    | {"rule-id":"5","rule-type":"selection","rule-name":"5","rule-action":"include","object-locator":{"schema-name":"s"}} | rule 5; missing field `table-name`
rule    | {"rule-id":"5","rule-type":"selection","rule-name":"5","rule-action":"include","object-locator":{"schema-name":"s","table-name":""}} | rule 5; must not be empty
rule    | {"rule-id":"5","rule-type":"selection","rule-name":"5","rule-action":"exclude","object-locator":{"schema-name":"s","table-name":"t"},"filters":[{"filter-type":"source","column-name":"r","filter-conditions":[{"filter-operator":"null"}]}]} | rule 5: exclude rules cannot have filters
member  | ,"filter":[]               | rule 4; unknown field `filter`; `filters`
locator | ,"tabel-name":"t"          | rule 4; `tabel-name`; `schema-name`, `table-name`, `table-type`
locator | ,"table-type":"Table"      | rule 4; unknown variant `Table`
member  | ,"load-order":"-1"         | rule 4: load-order
member  | ,"load-order":"x"          | rule 4: load-order
member  | ,"load-order":2147483648   | rule 4: load-order
member  | ,"load-order":1.5          | rule 4: load-order
member  | ,"filters":{}              | rule 4; invalid type
member  | ,"filters":[{"filter-type":"target","column-name":"r","filter-conditions":[]}] | rule 4; unknown variant `target`
member  | ,"filters":[{"filter-type":"source","column":"r"}]                    | rule 4; unknown field `column`
cond    |                            | rule 4: a filter needs at least one filter-conditions entry
cond    | {"filter-operator":"eq","value":"EU"},{"filter-operator":"between","start-value":"1","end-value":"9"} | rule 4: source filters are not supported yet; remove the filters array from rule 4
cond    | {"filter-operator":"like","value":"x"}              | rule 4; unknown variant `like`
cond    | {"filter-operator":"between","start-value":"1"}     | rule 4; missing field `end-value`
cond    | {"filter-operator":"null","value":"1"}              | rule 4; unknown field `value`
cond    | {"filter-operator":"eq","value":1}                  | rule 4; invalid type: integer
cond    | {"filter-operator":"noteq","value":"1"},{"filter-operator":"eq","value":"2"} | rule 4: a filter mixes a negative operator
"#;

    /// Every row of [`BAD`] fails with the expected texts in its error.
    #[test]
    fn rejects_bad_mappings_naming_the_rule() {
        let ok = sel("1", "include", "s", "%", "");
        for line in BAD.lines().filter(|l| !l.trim().is_empty()) {
            let [kind, input, wants] = line.splitn(3, '|').map(str::trim).collect::<Vec<_>>()[..]
            else {
                panic!("bad table line {line}");
            };
            let cond = format!(
                r#","filters":[{{"filter-type":"source","column-name":"r","filter-conditions":[{input}]}}]"#
            );
            let rule4 = |extra: &str| sel("4", "include", "s", "t", extra);
            let second = match kind {
                "doc" => None,
                "rule" => Some(input.to_owned()),
                "member" => Some(rule4(input)),
                "locator" => Some(rule4(&format!("|{input}"))),
                _ => Some(rule4(&cond)),
            };
            let json = second.map_or(input.to_owned(), |r| format!(r#"{{"rules":[{ok},{r}]}}"#));
            let err = TableMappings::parse(&json).expect_err(&json);
            // Debug shows cause and fix without relying on the error type's field names.
            let text = format!("{err:?}");
            for want in wants.split(';').map(str::trim) {
                assert!(text.contains(want), "{json}\nwanted {want:?} in: {text}");
            }
        }
    }
}
