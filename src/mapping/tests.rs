//! Unit tests of `mapping`.
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
