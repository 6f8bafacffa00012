//! Unit tests of `expr`: SQLite-judged tables (`sqlite_ops`, `sqlite_funcs`, `sqlite_format`), the DMS-specific
//! functions, compile and runtime errors, and a micro-benchmark.

use super::*;
use crate::change::DmsType;

mod sqlite_format;
mod sqlite_funcs;
mod sqlite_ops;

/// An expression, SQLite's `typeof()` of its value, and its text (None = NULL; hex for a BLOB).
type Case = (&'static str, &'static str, Option<&'static str>);

/// The test row: column name, DMS type, canonical cell text. The SQLite-judged tables were
/// produced with the same values bound as the types DMS would bind.
fn row() -> Vec<(&'static str, DmsType, Option<&'static str>)> {
    let s = DmsType::String { lob: false };
    let n = |precision, scale| DmsType::Numeric { precision, scale };
    vec![
        ("id", DmsType::Int4, Some("42")),
        ("big", DmsType::Int8, Some("9223372036854775807")),
        ("neg", DmsType::Int8, Some("-7")),
        ("u8", DmsType::UInt8, Some("18446744073709551615")),
        ("name", s, Some("Alice")),
        ("last", s, Some("O'Brien")),
        ("code", s, Some("abc-123")),
        ("uni", s, Some("héllo wörld")),
        ("numtext", s, Some("150")),
        ("empty", s, Some("")),
        ("amount", n(10, 2), Some("150.50")),
        ("qty", n(10, 0), Some("7")),
        ("bignum", n(38, 0), Some("123456789012345678901234567890")),
        ("price", DmsType::Real8, Some("19.99")),
        ("ratio", DmsType::Real4, Some("0.25")),
        ("inf", DmsType::Real8, Some("Infinity")),
        ("nan", DmsType::Real8, Some("NaN")),
        ("flag", DmsType::Boolean, Some("t")),
        ("off", DmsType::Boolean, Some("f")),
        ("d", DmsType::Date, Some("2021-03-04")),
        (
            "ts",
            DmsType::DateTime,
            Some("2021-03-04 05:06:07.891234+00"),
        ),
        ("tm", DmsType::Time, Some("12:34:56")),
        ("data", DmsType::Bytes { lob: false }, Some("\\x0aff41")),
        ("nul", s, None),
        ("nulint", DmsType::Int4, None),
    ]
}

/// The test row's columns.
fn columns() -> Vec<Column> {
    row()
        .into_iter()
        .map(|(name, dms_type, _)| Column {
            name: name.into(),
            dms_type,
            source_type: "test".into(),
        })
        .collect()
}

/// Header variables of an UPDATE at 2021-03-04 05:06:07.891234 UTC, committed a moment later.
fn vars(operation: &str) -> Vars<'_> {
    Vars {
        operation,
        stream_position: "0/16B3748",
        change_seq: "20210304050607891234000000000000001",
        timestamp_us: 1_614_834_367_891_234,
        commit_timestamp_us: 1_614_834_368_000_000,
        user: "bob",
        schema: "public",
        table: "orders",
    }
}

/// Compiles and evaluates `text` on the test row as `operation`: Ok(None) for NULL. Checks that
/// the result is appended after what `out` held and that NULL leaves it untouched.
fn eval_op(text: &str, operation: &str) -> Result<Option<Vec<u8>>, String> {
    let expr = Expr::compile(text, &columns())?;
    let cells: Vec<Option<&str>> = row().into_iter().map(|(_, _, v)| v).collect();
    let cell = |i: usize| cells[i].map(str::as_bytes);
    let mut out = b"prefix".to_vec();
    let got = expr.eval(&cell, &vars(operation), &mut out)?;
    assert!(
        out.starts_with(b"prefix"),
        "{text}: output prefix overwritten"
    );
    if got {
        Ok(Some(out.split_off(6)))
    } else {
        assert_eq!(out, b"prefix", "{text}: NULL result wrote output");
        Ok(None)
    }
}

/// [`eval_op`] for an UPDATE.
fn eval(text: &str) -> Result<Option<Vec<u8>>, String> {
    eval_op(text, "UPDATE")
}

/// The text result of `text`, panicking on NULL or an error.
fn text(text: &str) -> String {
    match eval(text) {
        Ok(Some(v)) => String::from_utf8(v).unwrap(),
        other => panic!("{text}: {other:?}"),
    }
}

/// Upper-case hex.
fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02X}")).collect()
}

/// Checks every case of `table`: the value's text (hex for a BLOB) and its `typeof()`.
fn check(table: &[Case]) {
    let mut failures = Vec::new();
    for &(expr, ty, want) in table {
        let got = match eval(expr) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{expr}: error {e}"));
                continue;
            }
        };
        let got = got.map(|v| {
            if ty == "blob" {
                return hex(&v);
            }
            match String::from_utf8(v) {
                Ok(s) if !want.is_some_and(|w| w.starts_with("hex:")) => s,
                Ok(s) => format!("hex:{}", hex(s.as_bytes())),
                Err(e) => format!("hex:{}", hex(e.as_bytes())),
            }
        });
        if got.as_deref() != want {
            failures.push(format!("{expr}: got {got:?}, SQLite gives {want:?}"));
        }
        // Type check through typeof(); the newline ends a trailing `--` comment.
        let typed = eval(&format!("typeof({expr}\n)"));
        if typed != Ok(Some(ty.as_bytes().to_vec())) {
            let typed = typed.map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()));
            failures.push(format!("{expr}: typeof {typed:?}, SQLite gives {ty}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Literals and REAL rendering match SQLite.
#[test]
fn sqlite_literals() {
    check(sqlite_ops::LITERALS);
}

/// Arithmetic, overflow, division by zero and bitwise operators match SQLite.
#[test]
fn sqlite_arithmetic() {
    check(sqlite_ops::ARITH);
}

/// Comparisons, IS/IN/BETWEEN and three-valued logic match SQLite.
#[test]
fn sqlite_comparisons() {
    check(sqlite_ops::COMPARE);
}

/// CASE and CAST match SQLite.
#[test]
fn sqlite_case_cast() {
    check(sqlite_ops::CASE_CAST);
}

/// Column values of every DMS type and the header variables match SQLite's bound values.
#[test]
fn sqlite_columns() {
    check(sqlite_ops::COLUMNS);
}

/// String functions match SQLite.
#[test]
fn sqlite_strings() {
    check(sqlite_funcs::STRINGS);
}

/// Numeric and other scalar functions match SQLite.
#[test]
fn sqlite_misc() {
    check(sqlite_funcs::MISC);
}

/// printf() matches SQLite.
#[test]
fn sqlite_printf() {
    check(sqlite_format::PRINTF);
}

/// LIKE and GLOB match SQLite.
#[test]
fn sqlite_like_glob() {
    check(sqlite_funcs::LIKE_GLOB);
}

/// Date and time functions match SQLite.
#[test]
fn sqlite_dates() {
    check(sqlite_format::DATES);
}

/// `operation_indicator` picks its argument from the operation, keeping the argument's type.
#[test]
fn operation_indicator() {
    let e = "operation_indicator('D', 'U', 'I')";
    for (op, want) in [("DELETE", "D"), ("UPDATE", "U"), ("INSERT", "I")] {
        assert_eq!(eval_op(e, op), Ok(Some(want.as_bytes().to_vec())), "{op}");
    }
    assert_eq!(
        eval_op("operation_indicator(NULL, 2, 3)", "DELETE"),
        Ok(None)
    );
    assert_eq!(
        eval_op("typeof(operation_indicator(1, 2.5, 'x'))", "UPDATE"),
        Ok(Some(b"real".to_vec()))
    );
    // Only the chosen argument is evaluated.
    assert_eq!(
        eval_op(
            "operation_indicator(abs(-9223372036854775808), 2, 3)",
            "INSERT"
        ),
        Ok(Some(b"3".to_vec()))
    );
}

/// `replaceChars` maps characters position by position and drops those without a counterpart.
#[test]
fn replace_chars() {
    assert_eq!(
        text("replaceChars('hello world', 'lo', 'L0')"),
        "heLL0 w0rLd"
    );
    assert_eq!(text("replaceChars('a-b_c', '-_', '')"), "abc");
    assert_eq!(text("replaceChars('a-b_c', '-_', ' ')"), "a bc");
    assert_eq!(text("REPLACECHARS('héllo', 'éo', 'eö')"), "hellö");
    assert_eq!(text("replaceChars($code, 'abc', 'ABC')"), "ABC-123");
    assert_eq!(text("replaceChars(12.5, '.', ',')"), "12,5");
    assert_eq!(text("replaceChars('aaa', 'aa', 'xy')"), "xxx");
    assert_eq!(eval("replaceChars(NULL, 'a', 'b')"), Ok(None));
    assert_eq!(eval("replaceChars('a', NULL, 'b')"), Ok(None));
    assert_eq!(eval("replaceChars('a', 'a', NULL)"), Ok(None));
}

/// `hash_sha256` is the lower-case hex SHA-256 of the value's text (FIPS 180-4 test vectors).
#[test]
fn hash_sha256() {
    let h = |s: &str| text(&format!("hash_sha256({s})"));
    assert_eq!(
        h("''"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        h("'abc'"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        h("'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    // 1000 bytes: several blocks and a padding block of its own.
    assert_eq!(
        h("zeroblob(1000)"),
        "541b3e9daa09b20bf85fa273e5cbd3e80185aa4ec298e765db87742b70138a53"
    );
    assert_eq!(h("123"), h("'123'"));
    assert_eq!(h("$name"), h("'Alice'"));
    assert_eq!(eval("hash_sha256(NULL)"), Ok(None));
}

/// `random()`, `randomblob()` and 'now' are not deterministic; check their shape.
#[test]
fn nondeterministic() {
    let a = text("random()");
    let b = text("random()");
    assert!(a.parse::<i64>().is_ok() && b.parse::<i64>().is_ok());
    assert_ne!(a, b);
    assert_eq!(eval("length(randomblob(16))"), Ok(Some(b"16".to_vec())));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let mut today = Vec::new();
    date::push_timestamp(now.as_micros() as i64, &mut today);
    let today = String::from_utf8(today[..10].to_vec()).unwrap();
    assert_eq!(text("date('now')"), today);
    assert_eq!(text("date()"), today);
    assert_eq!(text("CURRENT_DATE"), today);
    let ts = text("CURRENT_TIMESTAMP");
    assert_eq!((ts.len(), &ts[..10]), (19, today.as_str()));
    assert_eq!(text("length(CURRENT_TIME)"), "8");
    let secs: i64 = text("unixepoch()").parse().unwrap();
    assert!((secs - now.as_secs() as i64).abs() <= 2);
}

/// The header timestamps render as UTC text with microseconds, before 1970 too.
#[test]
fn timestamps() {
    let render = |us: i64| {
        let mut out = Vec::new();
        date::push_timestamp(us, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(render(0), "1970-01-01 00:00:00.000000");
    assert_eq!(render(-1), "1969-12-31 23:59:59.999999");
    assert_eq!(render(951_782_400_000_001), "2000-02-29 00:00:00.000001");
    assert_eq!(render(1_614_834_367_891_234), "2021-03-04 05:06:07.891234");
    assert_eq!(text("$AR_H_TIMESTAMP || ''"), "2021-03-04 05:06:07.891234");
}

/// Compile errors name the problem and where it is.
#[test]
fn compile_errors() {
    let err = |t: &str| match Expr::compile(t, &columns()) {
        Err(e) => e,
        Ok(_) => panic!("{t} compiled"),
    };
    let e = err("$foo || 'x'");
    assert!(
        e.starts_with("unknown column $foo at offset 0; the table has id, big, neg,"),
        "{e}"
    );
    assert_eq!(
        Expr::compile("$x", &[]).err().unwrap(),
        "unknown column $x at offset 0; the table has no columns"
    );
    assert!(err("$AR_H_NOPE")
        .starts_with("unknown variable $AR_H_NOPE at offset 0; supported: $AR_H_OPERATION,"));
    assert_eq!(err("nosuch(1)"), "unknown function nosuch() at offset 0");
    assert_eq!(
        err("upper($name, 1)"),
        "wrong number of arguments to function upper() at offset 0: takes 1, given 2"
    );
    assert_eq!(
        err("1 + substr('a')"),
        "wrong number of arguments to function substr() at offset 4: takes 2 or 3, given 1"
    );
    assert_eq!(
        err("max($id)"),
        "wrong number of arguments to function max() at offset 0: takes 2 or more, given 1"
    );
    assert_eq!(err("(1 + 2))"), "unexpected ')' at offset 7");
    assert_eq!(
        err("(1 + 2"),
        "expected ')' at offset 6, found end of expression"
    );
    assert_eq!(
        err("upper($name"),
        "expected ')' at offset 11, found end of expression"
    );
    assert_eq!(err("1 +"), "unexpected end of expression at offset 3");
    assert_eq!(err(""), "empty expression");
    assert_eq!(err("  -- only a comment"), "empty expression");
    assert_eq!(err("1 2"), "unexpected '2' at offset 2");
    assert_eq!(
        err("name || 'x'"),
        "unexpected 'name' at offset 0 (a column reference needs a leading $)"
    );
    assert_eq!(err("'abc"), "unterminated string at offset 0");
    assert_eq!(
        err("x'abc'"),
        "malformed blob literal at offset 0: X'..' needs an even number of hex digits"
    );
    assert_eq!(err("12abc"), "malformed number \"12a\" at offset 0");
    assert_eq!(
        err(":name"),
        "parameter ':' at offset 0: DMS expressions refer to columns as $name"
    );
    assert_eq!(err("1 ; 2"), "unrecognized character ';' at offset 2");
    assert_eq!(err("$"), "'$' without a name at offset 0");
    assert_eq!(err("CASE END"), "expected WHEN at offset 5, found 'END'");
    assert_eq!(
        err("CASE WHEN 1 THEN 2"),
        "expected END at offset 18, found end of expression"
    );
    assert_eq!(
        err("CAST(1 AS)"),
        "expected a type name at offset 9, found ')'"
    );
    assert_eq!(
        err("1 IN (SELECT 1)"),
        "subquery at offset 6 is not supported"
    );
    assert_eq!(
        err("1 BETWEEN 0 OR 2"),
        "expected AND at offset 12, found 'OR'"
    );
    assert_eq!(
        err("'a' COLLATE NOCASE"),
        "COLLATE at offset 4 is not supported"
    );
    assert_eq!(
        err("0x11112222333344445"),
        "hex literal too big: 0x11112222333344445"
    );
    assert_eq!(
        err("-0x8000000000000000"),
        "hex literal too big: -0x8000000000000000"
    );
    assert_eq!(err("12é"), "malformed number \"12é\" at offset 0");
    let parens = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(
        err(&parens),
        "expression nested too deeply (more than 200 levels)"
    );
    assert_eq!(
        err(&format!("{}1", "~".repeat(100_000))),
        "expression nested too deeply (more than 200 levels)"
    );
    assert_eq!(
        err("'a' GLOB 'b' ESCAPE 'c'"),
        "ESCAPE at offset 4: GLOB takes no escape character"
    );
    assert_eq!(err("count(*)"), "unknown function count() at offset 0");
    let deep = format!("{}1{}", "(-".repeat(300), ")".repeat(300));
    assert_eq!(
        err(&deep),
        "expression nested too deeply (more than 200 levels)"
    );
    // Long flat chains are fine.
    let chain = vec!["'a'"; 500].join(" || ");
    assert_eq!(text(&format!("length({chain})")), "500");
}

/// Errors SQLite raises while evaluating.
#[test]
fn runtime_errors() {
    assert_eq!(
        eval("abs(-9223372036854775808)"),
        Err("integer overflow".into())
    );
    assert_eq!(
        eval("abs($big + 0)"),
        Ok(Some(b"9223372036854775807".to_vec()))
    );
    let esc = Err("ESCAPE expression must be a single character".into());
    assert_eq!(eval("'abc' LIKE 'ab' ESCAPE 'xy'"), esc);
    assert_eq!(eval("'a' LIKE 'a' ESCAPE ''"), esc);
    assert_eq!(
        eval("zeroblob(2000000000)"),
        Err("string or blob too big".into())
    );
    assert_eq!(
        eval("printf('%2000000000d', 1)"),
        Err("string or blob too big".into())
    );
    let complex = Err("LIKE or GLOB pattern too complex".into());
    assert_eq!(eval(&format!("'a' LIKE '{}'", "%a".repeat(1001))), complex);
    assert_eq!(eval(&format!("'a' GLOB '{}'", "*a".repeat(1001))), complex);
    assert_eq!(eval(&format!("'a' LIKE '{}'", "a".repeat(50_001))), complex);
    // Many wildcards against a long text stay fast (SQLite's no-wildcard-match shortcut).
    let long = "a".repeat(5000);
    let pat = format!("{}b", "%a".repeat(500));
    assert_eq!(
        eval(&format!("'{long}' LIKE '{pat}'")),
        Ok(Some(b"0".to_vec()))
    );
}

/// The column indexes an expression reads, ascending and distinct.
#[test]
fn columns_used() {
    let used = |t: &str| Expr::compile(t, &columns()).unwrap().columns_used();
    assert_eq!(used("$name || $id || $name"), vec![0, 4]);
    assert_eq!(used("CASE WHEN $flag THEN $ts END"), vec![17, 20]);
    assert_eq!(used("$AR_H_OPERATION || 1"), Vec::<usize>::new());
}

/// A variable name wins over a column of the same name; `$` names are case-sensitive.
#[test]
fn name_resolution() {
    let cols = vec![
        Column {
            name: "AR_H_USER".into(),
            dms_type: DmsType::Int4,
            source_type: "int".into(),
        },
        Column {
            name: "Name".into(),
            dms_type: DmsType::String { lob: false },
            source_type: "text".into(),
        },
    ];
    let e = Expr::compile("$AR_H_USER || $Name", &cols).unwrap();
    assert_eq!(e.columns_used(), vec![1]);
    let mut out = Vec::new();
    let cell = |i: usize| [Some(&b"7"[..]), Some(&b"x"[..])][i];
    assert!(e.eval(&cell, &vars("INSERT"), &mut out).unwrap());
    assert_eq!(out, b"bobx");
    assert!(Expr::compile("$name", &cols).is_err());
}

/// Micro-benchmark of the evaluation hot path: 1 M rows per expression, ns/row printed.
/// Run with `cargo test --release --lib expr -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_eval() {
    let s = DmsType::String { lob: false };
    let cols: Vec<Column> = [
        ("a", s),
        ("b", s),
        ("n", DmsType::Int4),
        (
            "price",
            DmsType::Numeric {
                precision: 10,
                scale: 2,
            },
        ),
        ("ts", DmsType::DateTime),
    ]
    .into_iter()
    .map(|(name, dms_type)| Column {
        name: name.into(),
        dms_type,
        source_type: "x".into(),
    })
    .collect();
    let rows: Vec<[String; 5]> = (0..1024)
        .map(|i| {
            [
                format!("first{i}"),
                format!("last name {i}"),
                format!("{}", i * 7 % 250),
                format!("{}.{:02}", i, i % 100),
                format!("2021-03-{:02} 05:06:07.{:06}+00", i % 28 + 1, i),
            ]
        })
        .collect();
    let v = vars("INSERT");
    for text in [
        "$a || ' ' || upper($b)",
        "CASE WHEN $n > 100 THEN 'big' ELSE 'small' END",
        "$n",
        "upper(substr($a, 1, 3))",
        "ifnull($n, 0) + 1",
        "round($price * 1.2, 2)",
        "$price * 1.2",
        "$price",
        "round(19.99, 2) > 0",
        "round(19.99) > 0",
        "$AR_H_OPERATION || ':' || $AR_H_TIMESTAMP",
        "datetime($ts, '+1 day')",
    ] {
        let e = Expr::compile(text, &cols).unwrap();
        let mut out = Vec::with_capacity(64);
        let n = 1_000_000;
        let start = std::time::Instant::now();
        for i in 0..n {
            let r = &rows[i % rows.len()];
            let cell = |c: usize| Some(r[c].as_bytes());
            out.clear();
            std::hint::black_box(e.eval(&cell, &v, &mut out).unwrap());
            std::hint::black_box(&out);
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!("{ns:8.1} ns/row  {text}");
    }
}
