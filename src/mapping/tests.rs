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
rule    | {"rule-id":"5","rule-type":"transformation"} | rule 5: rule-name is missing
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"rename"} | rule 5: needs a non-empty value
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"schema","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"convert-lowercase"} | rule 5: a schema rule's object-locator has no table-name
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"remove-column"} | rule 5: needs object-locator column-name
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"remove-column"} | rule 5; does not apply to rule-target
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"add-column","value":"c","data-type":{"type":"string"}} | rule 5: add-column needs an expression
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"add-column","value":"c","expression":"1","data-type":{"type":"text"}} | rule 5: unknown data-type
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"add-column","value":"c","expression":"1","data-type":{"type":"numeric","precision":39}} | rule 5: numeric(39,0)
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"define-primary-key"} | rule 5: define-primary-key needs primary-key-def
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"define-primary-key","primary-key-def":{}} | rule 5; missing field `columns`
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"define-primary-key","primary-key-def":{"columns":[]}} | rule 5: primary-key-def.columns must name at least one column
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"define-primary-key","primary-key-def":{"origin":"index","columns":["a"]}} | rule 5: primary-key-def.origin; neither primary-key nor unique-index
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"define-primary-key","primary-key-def":{"columns":["a"]}} | rule 5; does not apply to rule-target
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t","column-name":"c"},"rule-action":"add-before-image-columns"} | rule 5; picks its columns by before-image-def column-filter
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"add-before-image-columns","before-image-def":{"column-prefix":""}} | rule 5: column-prefix and column-suffix are both empty
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"add-before-image-columns","before-image-def":{"column-filter":"pk"}} | rule 5; unknown variant `pk`
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t","column-name":"c"},"rule-action":"change-data-type"} | rule 5: change-data-type needs data-type
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"column","object-locator":{"schema-name":"s","table-name":"t","column-name":"c","data-type":"integer"},"rule-action":"rename","value":"x"} | rule 5: object-locator data-type; must be a DMS type name
rule    | {"rule-id":"5","rule-type":"transformation","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"s","table-name":"t"},"rule-action":"rename","value":"x","valeu":"y"} | rule 5; unknown field `valeu`
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5"} | rule 5: table-settings rule without parallel-load or lob-settings
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5","parallel-load":{"type":"partitions-auto"}} | rule 5; missing field `object-locator`
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5","object-locator":{"schema-name":"s","table-name":"t"},"parallel-load":{"type":"hash"}} | rule 5: parallel-load type; hash; is not one Tributary supports
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5","object-locator":{"schema-name":"s","table-name":"t"},"parallel-load":{"type":"ranges","columns":["a"]}} | rule 5: ranges needs at least one boundary
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5","object-locator":{"schema-name":"s","table-name":"t"},"parallel-load":{"type":"ranges","columns":["a"],"boundaries":[["1","2"]]}} | rule 5: each boundary must list 1 value
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5","object-locator":{"schema-name":"s","table-name":"t"},"parallel-load":{"type":"ranges","columns":["a"],"boundaries":[["1"]],"segment-names":["x"]}} | rule 5: segment-names must give 2 distinct folder names
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5","object-locator":{"schema-name":"s","table-name":"t"},"parallel-load":{"type":"partitions-list"}} | rule 5: partitions-list needs partitions
rule    | {"rule-id":"5","rule-type":"table-settings","rule-name":"5","object-locator":{"schema-name":"s","table-name":"%"},"lob-settings":{"mode":"none"}} | rule 5: table-settings rules name one table
rule    | {"rule-id":"5","rule-type":"post-processing","rule-name":"5","rule-action":"add-tag","object-locator":{"schema-name":"s","table-name":"t"}} | rule 5; missing field `tag-set`
rule    | {"rule-id":"5","rule-type":"post-processing","rule-name":"5","rule-action":"add-tags","object-locator":{"schema-name":"s","table-name":"t"},"tag-set":[{"key":"a","value":"b"}]} | rule 5: post-processing rule-action; add-tags; is unknown
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

/// A transformation rule; `extra` adds rule members.
fn tr(id: &str, target: &str, locator: &str, action: &str, extra: &str) -> String {
    format!(
        r#"{{"rule-type":"transformation","rule-id":"{id}","rule-name":"{id}","rule-target":"{target}","object-locator":{{{locator}}},"rule-action":"{action}"{extra}}}"#
    )
}

/// Table `Sales.Orders` with text columns `cols`.
fn orders(cols: &[&str]) -> std::sync::Arc<crate::change::TableSchema> {
    let mut t = (*crate::change::TableSchema::text_for_test(cols)).clone();
    t.schema = "Sales".into();
    t.table = "Orders".into();
    std::sync::Arc::new(t)
}

/// Schema and table rules name the folders; rules apply in rule-id order (numeric), each to
/// the name the previous one made, and match source names.
#[test]
fn name_rules_chain_in_rule_id_order() {
    let m = mapping(&[
        sel("1", "include", "%", "%", ""),
        tr(
            "10",
            "schema",
            r#""schema-name":"Sales""#,
            "add-prefix",
            r#","value":"dw_""#,
        ),
        tr(
            "9",
            "schema",
            r#""schema-name":"Sal%""#,
            "convert-lowercase",
            "",
        ),
        tr(
            "3",
            "table",
            r#""schema-name":"%","table-name":"Ord%""#,
            "replace-prefix",
            r#","old-value":"Ord","value":"Purchase""#,
        ),
        tr(
            "4",
            "table",
            r#""schema-name":"%","table-name":"%""#,
            "remove-suffix",
            r#","value":"s""#,
        ),
    ]);
    assert_eq!(
        m.names().folder("Sales", "Orders"),
        ("dw_sales".into(), "Purchaseer".into())
    );
    assert_eq!(
        m.names().folder("HR", "People"),
        ("HR".into(), "People".into())
    );
}

/// Column rules: include-column keeps only what it names, remove-column drops, renames change
/// names only, added columns go last in rule order; a clash with Op is refused with a fix.
#[test]
fn column_rules_shape_the_output() {
    let loc =
        |c: &str| format!(r#""schema-name":"Sales","table-name":"Orders","column-name":"{c}""#);
    let m = mapping(&[
        sel("1", "include", "%", "%", ""),
        tr("2", "column", &loc("ssn"), "remove-column", ""),
        tr("3", "column", &loc("Amount"), "convert-lowercase", ""),
        tr(
            "5",
            "column",
            r#""schema-name":"Sales","table-name":"Orders""#,
            "add-column",
            r#","value":"copy","expression":"$id","data-type":{"type":"string","length":20}"#,
        ),
    ]);
    let t = orders(&["id", "ssn", "Amount"]);
    let map = m.table_map(&t).unwrap();
    let names: Vec<&str> = map.target.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "amount", "copy"]);
    assert!(map.projects());
    let mut src = RowBatchFor::new(&["7", "123-45", "9.5"]);
    let out = map.project_load(&src.batch(), &mut Err).unwrap();
    assert_eq!(
        (out.get(0, 0), out.get(0, 1), out.get(0, 2)),
        (Some(&b"7"[..]), Some(&b"9.5"[..]), Some(&b"7"[..]))
    );
    m.check(std::slice::from_ref(&t)).unwrap();

    let only = mapping(&[
        sel("1", "include", "%", "%", ""),
        tr("2", "column", &loc("id"), "include-column", ""),
    ]);
    let names: Vec<String> = only
        .table_map(&t)
        .unwrap()
        .target
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["id"]);

    let mut clash = mapping(&[sel("1", "include", "%", "%", "")]);
    clash
        .check(&[orders(&["Op", "id"])])
        .expect("files without a header name no columns");
    clash.reserve(vec!["Op".into()]);
    let e = clash.check(&[orders(&["Op", "id"])]).unwrap_err();
    assert!(
        e.message.contains("\"Op\"") && e.fix.contains("rename"),
        "{e:?}"
    );
}

/// A rule whose locator matches nothing selected is an error naming it; so is a rename that
/// puts two tables in one folder.
#[test]
fn rules_that_match_nothing_or_merge_tables_are_refused() {
    let m = mapping(&[
        sel("1", "include", "%", "%", ""),
        tr(
            "7",
            "column",
            r#""schema-name":"Sales","table-name":"Orders","column-name":"nope""#,
            "remove-column",
            "",
        ),
    ]);
    let e = m.check(&[orders(&["id"])]).unwrap_err();
    assert!(
        e.message.contains("rule 7") && e.message.contains("column"),
        "{e:?}"
    );
    let m = mapping(&[
        sel("1", "include", "%", "%", ""),
        tr(
            "2",
            "table",
            r#""schema-name":"%","table-name":"%""#,
            "convert-lowercase",
            "",
        ),
    ]);
    let mut lower = (*orders(&["id"])).clone();
    lower.table = "orders".into();
    let e = m
        .check(&[orders(&["id"]), std::sync::Arc::new(lower)])
        .unwrap_err();
    assert!(
        e.message.contains("both be written to Sales/orders"),
        "{e:?}"
    );
}

/// `ste` is DMS's alias of `lte`; filters compile against the table's columns.
#[test]
fn filters_compile_for_the_selected_table() {
    let cond = r#","filters":[{"filter-type":"source","column-name":"id","filter-conditions":[{"filter-operator":"ste","value":"5"}]}]"#;
    let m = mapping(&[sel("1", "include", "Sales", "Orders", cond)]);
    let map = m.table_map(&orders(&["id"])).unwrap();
    let f = map.filter().expect("a filter");
    assert!(f.keeps(&|_| Some(&b"5"[..]), crate::change::Op::Insert));
    assert!(!f.keeps(&|_| Some(&b"6"[..]), crate::change::Op::Insert));
    let bad = mapping(&[sel(
        "1",
        "include",
        "Sales",
        "Orders",
        &cond.replace("\"id\"", "\"idd\""),
    )]);
    let e = bad.table_map(&orders(&["id"])).unwrap_err();
    assert!(
        e.message.contains("rule 1") && e.message.contains("idd"),
        "{e:?}"
    );
}

/// One source row of text cells.
struct RowBatchFor(crate::change::RowBatch);

impl RowBatchFor {
    fn new(cells: &[&str]) -> RowBatchFor {
        let mut b = crate::change::RowBatch::new(cells.len());
        for c in cells {
            b.push_cell(c.as_bytes());
        }
        b.end_row(crate::change::Op::Insert, 0).unwrap();
        RowBatchFor(b)
    }

    fn batch(&mut self) -> crate::change::RowBatch {
        self.0.clone()
    }
}

/// An object-locator `data-type` narrows a column rule to columns of that DMS type.
#[test]
fn data_type_locators_pick_columns_by_type() {
    let m = mapping(&[
        sel("1", "include", "%", "%", ""),
        tr(
            "2",
            "column",
            r#""schema-name":"%","table-name":"%","column-name":"%","data-type":"INT8""#,
            "add-suffix",
            r#","value":"_n""#,
        ),
    ]);
    let mut t = (*orders(&["id", "name"])).clone();
    t.columns[0].dms_type = crate::change::DmsType::Int8;
    let names: Vec<String> = m
        .table_map(&std::sync::Arc::new(t))
        .unwrap()
        .target
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["id_n", "name"]);
}

/// Before-image columns go after every other column, named with the prefix and suffix, for the
/// key (pk-only: the defined key over the source's), the non-LOB or all written columns; the
/// full load leaves them NULL, a change fills them from its before-image.
#[test]
fn before_image_columns_follow_the_key_and_filter() {
    let table = r#""schema-name":"Sales","table-name":"Orders""#;
    let bi = |filter: &str, extra: &str| {
        tr(
            "7",
            "column",
            table,
            "add-before-image-columns",
            &format!(r#","before-image-def":{{"column-filter":"{filter}"{extra}}}"#),
        )
    };
    let mut t = (*orders(&["id", "name", "note"])).clone();
    t.key = vec![0];
    t.columns[2].dms_type = crate::change::DmsType::String { lob: true };
    let t = std::sync::Arc::new(t);
    let names = |m: &TableMappings| -> Vec<String> {
        let map = m.table_map(&t).unwrap();
        map.target.columns.iter().map(|c| c.name.clone()).collect()
    };
    let base = sel("1", "include", "%", "%", "");
    let added = tr(
        "5",
        "column",
        table,
        "add-column",
        r#","value":"x","expression":"1","data-type":{"type":"int4"}"#,
    );
    let m = mapping(&[base.clone(), added.clone(), bi("pk-only", "")]);
    assert_eq!(names(&m), ["id", "name", "note", "x", "BI_id"]);
    let m = mapping(&[
        base.clone(),
        bi("non-lob", r#","column-prefix":"","column-suffix":"_old""#),
    ]);
    assert_eq!(names(&m), ["id", "name", "note", "id_old", "name_old"]);
    let key = tr(
        "6",
        "table",
        table,
        "define-primary-key",
        r#","primary-key-def":{"name":"k","origin":"unique-index","columns":["note","name"]}"#,
    );
    let m = mapping(&[base.clone(), key.clone(), bi("pk-only", "")]);
    assert_eq!(names(&m), ["id", "name", "note", "BI_name", "BI_note"]);
    let map = m.table_map(&t).unwrap();
    assert_eq!(map.key(), [1, 2]);
    assert_eq!(map.before_columns(), [1, 2]);

    // Full load: NULL; a change: the before-image's cells.
    let m = mapping(&[base.clone(), bi("all", "")]);
    let map = m.table_map(&t).unwrap();
    let mut src = RowBatchFor::new(&["1", "new", "n"]);
    let out = map.project_load(&src.batch(), &mut Err).unwrap();
    assert_eq!((out.get(0, 3), out.get(0, 5)), (None, None));
    let after = [&b"1"[..], b"new", b"n"];
    let before = [&b"1"[..], b"old", b"n"];
    let mut row = crate::change::RowBatch::new(6);
    let vars = crate::mapping::expr::Vars {
        operation: "UPDATE",
        stream_position: "",
        change_seq: "",
        timestamp_us: 0,
        commit_timestamp_us: 0,
        user: "",
        schema: "Sales",
        table: "Orders",
    };
    map.project(
        &|c| Some(after[c]),
        Some(&|c| Some(before[c])),
        &vars,
        &mut row,
    )
    .unwrap();
    row.end_row(crate::change::Op::Update, 0).unwrap();
    let cells: Vec<_> = (0..6).map(|c| row.get(0, c).unwrap()).collect();
    assert_eq!(cells, [&b"1"[..], b"new", b"n", b"1", b"old", b"n"]);

    // A key the table does not have, or pk-only on a table without a key, names the rule.
    let bad_key = tr(
        "6",
        "table",
        table,
        "define-primary-key",
        r#","primary-key-def":{"columns":["nope"]}"#,
    );
    let e = mapping(&[base.clone(), bad_key]).table_map(&t).unwrap_err();
    assert!(
        e.message.contains("rule 6") && e.message.contains("\"nope\""),
        "{e:?}"
    );
    let keyless = orders(&["a"]);
    let e = mapping(&[
        base,
        tr("7", "column", table, "add-before-image-columns", ""),
    ])
    .table_map(&keyless)
    .unwrap_err();
    assert!(
        e.message.contains("pk-only") && e.fix.contains("define-primary-key"),
        "{e:?}"
    );
}

#[test]
fn target_schema_names_the_folder() {
    let mut m = mapping(&[
        sel("1", "include", "%", "%", ""),
        tr(
            "2",
            "schema",
            r#""schema-name":"Sales""#,
            "convert-lowercase",
            "",
        ),
    ]);
    m.set_target_schema("Lake");
    // The rule matches the source schema and edits the target schema's name.
    assert_eq!(
        m.names().folder("Sales", "Orders"),
        ("lake".into(), "Orders".into())
    );
    assert_eq!(
        m.names().folder("hr", "People"),
        ("Lake".into(), "People".into())
    );
}
