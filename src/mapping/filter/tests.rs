//! Unit tests of source filters: the CDC predicate and the SQL the full load runs agree.
use super::*;
use crate::mapping::{Condition, Filter, FilterType};

fn col(name: &str, t: DmsType) -> Column {
    Column {
        name: name.into(),
        dms_type: t,
        source_type: String::new(),
    }
}

fn filter(column: &str, conds: Vec<Condition>) -> Filter {
    Filter {
        filter_type: FilterType::Source,
        column_name: column.into(),
        filter_conditions: conds,
    }
}

fn keeps(f: &RowFilter, cells: &[Option<&str>], op: Op) -> bool {
    f.keeps(&|i| cells[i].map(str::as_bytes), op)
}

#[test]
fn numbers_compare_numerically_and_exactly() {
    let cols = [col(
        "n",
        DmsType::Numeric {
            precision: 38,
            scale: 10,
        },
    )];
    let f = RowFilter::compile(
        &[&filter(
            "n",
            vec![Condition::Between {
                start_value: "9".into(),
                end_value: "10.5".into(),
            }],
        )],
        &cols,
    )
    .unwrap();
    for (v, want) in [
        ("9", true),
        ("10.50", true),
        ("10.5000000001", false),
        ("8.999", false),
        ("100", false),
        ("-10", false),
        ("09.0", true),
    ] {
        assert_eq!(keeps(&f, &[Some(v)], Op::Insert), want, "{v}");
    }
    assert!(!keeps(&f, &[None], Op::Insert), "NULL is not between");
    let big = RowFilter::compile(
        &[&filter(
            "n",
            vec![Condition::Gte {
                value: "12345678901234567890123".into(),
            }],
        )],
        &cols,
    )
    .unwrap();
    assert!(keeps(&big, &[Some("12345678901234567890123")], Op::Insert));
    assert!(!keeps(
        &big,
        &[Some("12345678901234567890122.9999")],
        Op::Insert
    ));
    assert!(RowFilter::compile(
        &[&filter(
            "n",
            vec![Condition::Eq {
                value: "1; DROP TABLE x".into()
            }]
        )],
        &cols
    )
    .is_err());
}

#[test]
fn conditions_or_and_filters_and() {
    let cols = [
        col("region", DmsType::String { lob: false }),
        col("id", DmsType::Int4),
    ];
    let f = RowFilter::compile(
        &[
            &filter(
                "region",
                vec![
                    Condition::Eq { value: "EU".into() },
                    Condition::Eq { value: "US".into() },
                ],
            ),
            &filter("id", vec![Condition::Lte { value: "10".into() }]),
        ],
        &cols,
    )
    .unwrap();
    assert!(keeps(&f, &[Some("EU"), Some("3")], Op::Insert));
    assert!(keeps(&f, &[Some("US"), Some("10")], Op::Update));
    assert!(
        !keeps(&f, &[Some("eu"), Some("3")], Op::Insert),
        "binary collation"
    );
    assert!(!keeps(&f, &[Some("EU"), Some("11")], Op::Insert));
    assert!(
        !keeps(&f, &[None, Some("11")], Op::Delete),
        "a carried id still filters"
    );
    assert!(
        keeps(&f, &[None, Some("3")], Op::Delete),
        "a key-only delete is kept"
    );
    let pg = f.sql(Dialect::Postgres, &|c| format!("\"{c}\""));
    assert_eq!(pg, "(\"region\"::text COLLATE \"C\" = $f$EU$f$ OR \"region\"::text COLLATE \"C\" = $f$US$f$) AND (\"id\" <= '10')");
    let my = f.sql(Dialect::MySql, &|c| format!("`{c}`"));
    assert_eq!(my, "(CAST(`region` AS BINARY) = X'4555' OR CAST(`region` AS BINARY) = X'5553') AND (`id` <= '10')");
}

#[test]
fn text_values_cannot_escape_their_literal() {
    let cols = [col("s", DmsType::String { lob: false })];
    let f = RowFilter::compile(
        &[&filter(
            "s",
            vec![Condition::NotEq {
                value: "a$f$'; DROP TABLE t; --".into(),
            }],
        )],
        &cols,
    )
    .unwrap();
    let pg = f.sql(Dialect::Postgres, &|c| format!("\"{c}\""));
    assert_eq!(
        pg,
        "(\"s\"::text COLLATE \"C\" <> $f1$a$f$'; DROP TABLE t; --$f1$)"
    );
}

#[test]
fn timestamps_compare_in_utc_whatever_the_offset_written() {
    let cols = [col("at", DmsType::DateTime)];
    let f = RowFilter::compile(
        &[&filter(
            "at",
            vec![Condition::Gte {
                value: "2024-03-01T02:00:00+02:00".into(),
            }],
        )],
        &cols,
    )
    .unwrap();
    assert!(keeps(&f, &[Some("2024-03-01 00:00:00+00")], Op::Insert));
    assert!(keeps(&f, &[Some("2024-03-01 00:00:00.000001")], Op::Insert));
    assert!(!keeps(
        &f,
        &[Some("2024-02-29 23:59:59.999999")],
        Op::Insert
    ));
    assert_eq!(
        f.sql(Dialect::Postgres, &|c| c.to_string()),
        "(at >= '2024-03-01 00:00:00')"
    );
    let eq = RowFilter::compile(
        &[&filter(
            "at",
            vec![Condition::Eq {
                value: "2024-03-01 00:00:00.5".into(),
            }],
        )],
        &cols,
    )
    .unwrap();
    assert!(keeps(
        &eq,
        &[Some("2024-03-01 00:00:00.500000")],
        Op::Insert
    ));
    assert!(RowFilter::compile(
        &[&filter(
            "at",
            vec![Condition::Eq {
                value: "yesterday".into()
            }]
        )],
        &cols
    )
    .is_err());
}

#[test]
fn null_tests_and_negations() {
    let cols = [col("v", DmsType::Int8)];
    let null = RowFilter::compile(&[&filter("v", vec![Condition::Null {}])], &cols).unwrap();
    assert!(keeps(&null, &[None], Op::Insert) && !keeps(&null, &[Some("1")], Op::Insert));
    let not_null = RowFilter::compile(&[&filter("v", vec![Condition::NotNull {}])], &cols).unwrap();
    assert!(!keeps(&not_null, &[None], Op::Insert) && keeps(&not_null, &[Some("1")], Op::Insert));
    let nb = RowFilter::compile(
        &[&filter(
            "v",
            vec![Condition::NotBetween {
                start_value: "1".into(),
                end_value: "5".into(),
            }],
        )],
        &cols,
    )
    .unwrap();
    assert!(
        keeps(&nb, &[Some("6")], Op::Insert)
            && !keeps(&nb, &[Some("5")], Op::Insert)
            && !keeps(&nb, &[None], Op::Insert)
    );
    assert_eq!(
        nb.sql(Dialect::MySql, &|c| c.to_string()),
        "(v NOT BETWEEN '1' AND '5')"
    );
}

#[test]
fn bytes_and_unknown_columns_are_refused() {
    let cols = [
        col("doc", DmsType::String { lob: true }),
        col("raw", DmsType::Bytes { lob: true }),
    ];
    assert!(RowFilter::compile(&[&filter("doc", vec![Condition::NotNull {}])], &cols).is_ok());
    let e = RowFilter::compile(&[&filter("raw", vec![Condition::NotNull {}])], &cols).unwrap_err();
    assert!(e.contains("bytes"), "{e}");
    let e = RowFilter::compile(&[&filter("nope", vec![Condition::NotNull {}])], &cols).unwrap_err();
    assert!(e.contains("nope") && e.contains("doc"), "{e}");
}
