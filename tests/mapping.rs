//! Table-mapping rules end to end on the private servers, full load and change capture: name
//! rules decide the folders, column rules the columns of every LOAD and CDC file, added
//! columns carry expressions and header variables, source filters pick the rows — with the
//! same results in the load and in the stream.

use std::collections::BTreeMap;
use std::path::Path;

use mysql_async::prelude::Queryable;
use object_store::ObjectStoreExt;

use crate::cdc::{log, spawn, terminate, wait_for, wait_streaming};
use crate::common::*;

/// Replaces the task file's table mapping with `rules` (a JSON array body).
pub(crate) fn set_mapping(task: &Task, rules: &str) {
    let text = std::fs::read_to_string(&task.path).unwrap();
    let open = "table_mappings = '''";
    let start = text.find(open).unwrap();
    let body = start + open.len();
    let end = body + text[body..].find("'''").unwrap() + 3;
    let text = format!(
        "{}table_mappings = '''{{\"rules\": [{rules}]}}'''{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&task.path, text).unwrap();
}

/// Every row of the files under `folder/` (LOAD first, then CDC by name) with its file's
/// header, as (is_cdc, column → value).
fn rows_of(lake: &Path, folder: &str) -> Vec<(bool, BTreeMap<String, Option<String>>)> {
    crate::cdc::read_table_files(lake, folder)
}

/// Replays rows into state by `id`: I/U upsert, D delete (a delete of a key never written is
/// allowed: a filtered table keeps deletes it cannot test).
fn replay(
    rows: &[(bool, BTreeMap<String, Option<String>>)],
) -> BTreeMap<i64, BTreeMap<String, Option<String>>> {
    let mut state = BTreeMap::new();
    for (is_cdc, row) in rows {
        let id: i64 = row["id"].as_deref().unwrap().parse().unwrap();
        let op = if *is_cdc {
            row["Op"].clone().unwrap()
        } else {
            "I".into()
        };
        if op == "D" {
            state.remove(&id);
        } else {
            state.insert(id, row.clone());
        }
    }
    state
}

/// The header of the first file of `folder` whose name starts with `prefix` (LOAD or a date).
fn header(lake: &Path, folder: &str, load: bool) -> Vec<String> {
    let f = files(lake)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{folder}/")))
        .find(|f| f.rsplit('/').next().unwrap().starts_with("LOAD") == load)
        .unwrap_or_else(|| {
            panic!(
                "no {} file under {folder}",
                if load { "LOAD" } else { "CDC" }
            )
        });
    let text = std::fs::read_to_string(lake.join(f)).unwrap();
    text.lines()
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect()
}

const PG_RULES: &str = r#"
 {"rule-type":"selection","rule-id":"1","rule-name":"orders","object-locator":{"schema-name":"Sales","table-name":"Orders"},"rule-action":"include",
  "filters":[{"filter-type":"source","column-name":"region","filter-conditions":[{"filter-operator":"eq","value":"EU"},{"filter-operator":"eq","value":"US"}]},
             {"filter-type":"source","column-name":"placed","filter-conditions":[{"filter-operator":"gte","value":"2024-01-01T09:00:00+09:00"}]}]},
 {"rule-type":"selection","rule-id":"2","rule-name":"fence","object-locator":{"schema-name":"Sales","table-name":"fence"},"rule-action":"include"},
 {"rule-type":"transformation","rule-id":"3","rule-name":"3","rule-target":"schema","object-locator":{"schema-name":"Sales"},"rule-action":"convert-lowercase"},
 {"rule-type":"transformation","rule-id":"4","rule-name":"4","rule-target":"schema","object-locator":{"schema-name":"Sales"},"rule-action":"add-prefix","value":"dw_"},
 {"rule-type":"transformation","rule-id":"5","rule-name":"5","rule-target":"table","object-locator":{"schema-name":"Sales","table-name":"Orders"},"rule-action":"rename","value":"orders_v2"},
 {"rule-type":"transformation","rule-id":"6","rule-name":"6","rule-target":"column","object-locator":{"schema-name":"Sales","table-name":"Orders","column-name":"ssn"},"rule-action":"remove-column"},
 {"rule-type":"transformation","rule-id":"7","rule-name":"7","rule-target":"column","object-locator":{"schema-name":"Sales","table-name":"Orders","column-name":"amount"},"rule-action":"rename","value":"total"},
 {"rule-type":"transformation","rule-id":"8","rule-name":"8","rule-target":"column","object-locator":{"schema-name":"Sales","table-name":"Orders"},"rule-action":"add-column","value":"transact_id","expression":"$AR_H_STREAM_POSITION","data-type":{"type":"string","length":50}},
 {"rule-type":"transformation","rule-id":"9","rule-name":"9","rule-target":"column","object-locator":{"schema-name":"Sales","table-name":"Orders"},"rule-action":"add-column","value":"tier","expression":"CASE WHEN $amount >= 100 THEN 'big' ELSE 'small' END || '-' || lower(substr($region, 1, 2)) || '-' || $AR_H_OPERATION","data-type":{"type":"string","length":30}}
"#;

/// PostgreSQL, full load then CDC through one mapping: folders renamed and lower-cased, a PII
/// column absent everywhere, a renamed column, an expression column and the stream position,
/// and a filter on text and on a timestamp written with an offset while the database's own
/// time zone is Tokyo. Rows moving across the filter follow the documented choice (the
/// after-image decides; key-only deletes are kept).
#[tokio::test]
async fn postgres_rules_shape_folders_columns_and_rows() {
    let db = "map_pg";
    let client = fresh_db(db).await;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {db} SET timezone = 'Asia/Tokyo';
             CREATE SCHEMA \"Sales\";
             CREATE TABLE \"Sales\".\"Orders\" (id bigint PRIMARY KEY, rev int NOT NULL, region text, ssn text, amount numeric(10,2), placed timestamptz);
             CREATE TABLE \"Sales\".fence (id bigint PRIMARY KEY, rev int NOT NULL);
             INSERT INTO \"Sales\".\"Orders\" VALUES
               (1, 0, 'EU', '111', 10, '2023-12-31 23:59:59+00'),
               (2, 0, 'EU', '222', 150, '2024-01-01 00:00:00+00'),
               (3, 0, 'US', '333', 99.99, '2024-06-01 12:00:00+00'),
               (4, 0, 'APAC', '444', 5, '2024-06-01 12:00:00+00'),
               (5, 0, 'eu', '555', 5, '2024-06-01 12:00:00+00'),
               (6, 0, NULL, '666', 5, '2024-06-01 12:00:00+00');"
        ))
        .await
        .unwrap();
    // A session in the database's own time zone, as a user's would be.
    let client = connect(&pg_url(db)).await;
    let task = crate::cdc::cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    set_mapping(&task, PG_RULES);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute(
            "INSERT INTO \"Sales\".\"Orders\" VALUES (7, 0, 'EU', '777', 500, '2024-07-01 10:00:00+09'), (8, 0, 'APAC', '888', 1, '2024-07-01 00:00:00+00');
             BEGIN;
             UPDATE \"Sales\".\"Orders\" SET rev = 1, amount = 120 WHERE id = 3;
             UPDATE \"Sales\".\"Orders\" SET rev = 2, amount = 130 WHERE id = 3;
             COMMIT;
             UPDATE \"Sales\".\"Orders\" SET rev = 1, region = 'APAC' WHERE id = 2;
             UPDATE \"Sales\".\"Orders\" SET rev = 1, region = 'EU' WHERE id = 4;
             DELETE FROM \"Sales\".\"Orders\" WHERE id IN (7, 8);
             INSERT INTO \"Sales\".fence VALUES (1, 0);",
        )
        .await
        .unwrap();
    let lake = task.lake();
    wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
        fs.iter()
            .any(|f| f.starts_with("dw_sales/fence/") && !f.contains("LOAD"))
    });
    terminate(&task, 0, child);

    let all = files(&lake);
    assert!(
        all.iter()
            .all(|f| f.starts_with("dw_sales/orders_v2/") || f.starts_with("dw_sales/fence/")),
        "{all:?}"
    );
    let cols = [
        "id",
        "rev",
        "region",
        "total",
        "placed",
        "transact_id",
        "tier",
    ];
    assert_eq!(header(&lake, "dw_sales/orders_v2", true), cols);
    let mut cdc_cols = vec!["Op"];
    cdc_cols.extend(cols);
    assert_eq!(header(&lake, "dw_sales/orders_v2", false), cdc_cols);

    let rows = rows_of(&lake, "dw_sales/orders_v2");
    let ids = |cdc: bool| -> Vec<String> {
        rows.iter()
            .filter(|(c, _)| *c == cdc)
            .map(|(_, r)| r["id"].clone().unwrap())
            .collect()
    };
    // The load: ids 2 and 3 pass both filters (1 is a second too early in UTC, 4 and 6 are
    // not EU/US, 5 is "eu" under binary comparison).
    assert_eq!(ids(false), ["2", "3"], "{}", log(&task, 0));
    let load2 = &rows
        .iter()
        .find(|(c, r)| !c && r["id"].as_deref() == Some("2"))
        .unwrap()
        .1;
    assert_eq!(load2["tier"].as_deref(), Some("big-eu-INSERT"));
    assert_eq!(
        load2["transact_id"].as_deref().unwrap_or(""),
        "",
        "full-load value is empty"
    );
    assert_eq!(
        load2["placed"].as_deref(),
        Some("2024-01-01 00:00:00.000000")
    );
    // CDC: 7 in, 8 out; 3 twice; 2 moved out (dropped); 4 moved in (written); both deletes
    // carry only the key, so both are written.
    let cdc: Vec<(String, String)> = rows
        .iter()
        .filter(|(c, _)| *c)
        .map(|(_, r)| (r["Op"].clone().unwrap(), r["id"].clone().unwrap()))
        .collect();
    let want: Vec<(String, String)> = [
        ("I", "7"),
        ("U", "3"),
        ("U", "3"),
        ("U", "4"),
        ("D", "7"),
        ("D", "8"),
    ]
    .iter()
    .map(|(o, i)| (o.to_string(), i.to_string()))
    .collect();
    assert_eq!(cdc, want, "{}", log(&task, 0));
    let threes: Vec<&BTreeMap<String, Option<String>>> = rows
        .iter()
        .filter(|(c, r)| *c && r["id"].as_deref() == Some("3"))
        .map(|(_, r)| r)
        .collect();
    let (a, b) = (
        threes[0]["transact_id"].clone().unwrap(),
        threes[1]["transact_id"].clone().unwrap(),
    );
    assert!(
        a < b,
        "stream positions order two changes of one commit: {a} then {b}"
    );
    assert_eq!(threes[1]["tier"].as_deref(), Some("big-us-UPDATE"));
    assert!(rows
        .iter()
        .all(|(_, r)| !r.contains_key("ssn") && !r.contains_key("amount")));

    let state = replay(&rows);
    let got: Vec<(i64, Option<String>, Option<String>)> = state
        .iter()
        .map(|(id, r)| (*id, r["rev"].clone(), r["region"].clone()))
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        [
            (2, some("0"), some("EU")),
            (3, some("2"), some("US")),
            (4, some("1"), some("EU"))
        ]
    );
    let source = query_rows(
        &client,
        "SELECT amount::text FROM \"Sales\".\"Orders\" WHERE id = 3",
    )
    .await;
    assert_eq!(state[&3]["total"], source[0][0]);
}

/// MySQL/MariaDB, full load then binlog CDC: a renamed database folder, a removed column, an
/// added expression column and stream position, a column whose type a rule changes, and a
/// filter with `between` and `noteq` —
/// the same rows and values in the LOAD and the CDC files.
#[tokio::test]
async fn mysql_rules_shape_folders_columns_and_rows() {
    let db = "map_my";
    let url = crate::mysql::my_url(db);
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(
        "CREATE TABLE orders (id INT PRIMARY KEY, rev INT NOT NULL, region VARCHAR(10), secret VARCHAR(10), amount DECIMAL(10,2));
         CREATE TABLE fence (id BIGINT PRIMARY KEY, rev INT NOT NULL);
         INSERT INTO orders VALUES (1, 0, 'EU', 's1', 5), (2, 0, 'US', 's2', 50), (3, 0, 'EU', 's3', 500), (4, 0, 'XX', 's4', 50);",
    )
    .await
    .unwrap();
    let task =
        crate::mysql::my_task_at(&url, db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let rules = format!(
        r#"{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{db}","table-name":"orders"}},"rule-action":"include",
            "filters":[{{"filter-type":"source","column-name":"amount","filter-conditions":[{{"filter-operator":"between","start-value":"10","end-value":"100"}}]}},
                       {{"filter-type":"source","column-name":"region","filter-conditions":[{{"filter-operator":"noteq","value":"XX"}}]}}]}},
           {{"rule-type":"selection","rule-id":"2","rule-name":"2","object-locator":{{"schema-name":"{db}","table-name":"fence"}},"rule-action":"include"}},
           {{"rule-type":"transformation","rule-id":"3","rule-name":"3","rule-target":"schema","object-locator":{{"schema-name":"{db}"}},"rule-action":"rename","value":"shop"}},
           {{"rule-type":"transformation","rule-id":"4","rule-name":"4","rule-target":"column","object-locator":{{"schema-name":"{db}","table-name":"orders","column-name":"secret"}},"rule-action":"remove-column"}},
           {{"rule-type":"transformation","rule-id":"5","rule-name":"5","rule-target":"column","object-locator":{{"schema-name":"{db}","table-name":"orders"}},"rule-action":"add-column","value":"label","expression":"upper($region) || ':' || ($id * 10)","data-type":{{"type":"string","length":20}}}},
           {{"rule-type":"transformation","rule-id":"6","rule-name":"6","rule-target":"column","object-locator":{{"schema-name":"{db}","table-name":"orders"}},"rule-action":"add-column","value":"pos","expression":"$AR_H_STREAM_POSITION","data-type":{{"type":"string","length":60}}}},
           {{"rule-type":"transformation","rule-id":"7","rule-name":"7","rule-target":"column","object-locator":{{"schema-name":"{db}","table-name":"orders","column-name":"amount"}},"rule-action":"change-data-type","data-type":{{"type":"int8"}}}}"#
    );
    set_mapping(&task, &rules);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop(
        "INSERT INTO orders VALUES (5, 0, 'us', 's5', 20), (6, 0, 'EU', 's6', 1000);
         START TRANSACTION;
         UPDATE orders SET rev = 1, amount = 60 WHERE id = 2;
         UPDATE orders SET rev = 2, amount = 70 WHERE id = 2;
         COMMIT;
         DELETE FROM orders WHERE id = 5;
         INSERT INTO fence VALUES (1, 0);",
    )
    .await
    .unwrap();
    let lake = task.lake();
    wait_for(&task, 0, &mut child, 60, "the fence row", |fs| {
        fs.iter()
            .any(|f| f.starts_with("shop/fence/") && !f.contains("LOAD"))
    });
    terminate(&task, 0, child);
    assert!(
        files(&lake).iter().all(|f| f.starts_with("shop/")),
        "{:?}",
        files(&lake)
    );
    let rows = rows_of(&lake, "shop/orders");
    let seen: Vec<(bool, String, String, String)> = rows
        .iter()
        .map(|(c, r)| {
            (
                *c,
                r.get("Op").cloned().flatten().unwrap_or_default(),
                r["id"].clone().unwrap(),
                r["label"].clone().unwrap(),
            )
        })
        .collect();
    let want: Vec<(bool, String, String, String)> = [
        (false, "", "2", "US:20"),
        (true, "I", "5", "US:50"),
        (true, "U", "2", "US:20"),
        (true, "U", "2", "US:20"),
        (true, "D", "5", "US:50"),
    ]
    .iter()
    .map(|(c, o, i, l)| (*c, o.to_string(), i.to_string(), l.to_string()))
    .collect();
    assert_eq!(seen, want, "{}", log(&task, 0));
    assert!(rows.iter().all(|(_, r)| !r.contains_key("secret")));
    let amounts: Vec<String> = rows
        .iter()
        .map(|(_, r)| r["amount"].clone().unwrap())
        .collect();
    assert_eq!(
        amounts,
        ["50", "20", "60", "70", "20"],
        "DECIMAL(10,2) as int8"
    );
    let pos: Vec<String> = rows
        .iter()
        .filter(|(c, _)| *c)
        .map(|(_, r)| r["pos"].clone().unwrap())
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "stream positions increase: {pos:?}"
    );
    assert!(
        pos[0].starts_with("mysql-bin.") || pos[0].contains(':'),
        "{pos:?}"
    );
}

/// What the rules make impossible is refused before anything is written: an output column that
/// clashes with `Op` (named, with the rename that resolves it), a rule matching nothing, an
/// expression that does not parse; and a table whose name cannot be a folder ("a/b") loads
/// once a rename rule gives it one.
#[tokio::test]
async fn validate_names_what_the_rules_get_wrong_and_a_rename_resolves_a_slash() {
    let db = "map_val";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA m;
             CREATE TABLE m.t (id int PRIMARY KEY, \"Op\" text);
             INSERT INTO m.t VALUES (1, 'x');
             CREATE TABLE m.\"a/b\" (id int PRIMARY KEY);
             INSERT INTO m.\"a/b\" VALUES (7);",
        )
        .await
        .unwrap();
    let task = new_task(db, "m", None, "DataFormat = \"parquet\"", "");
    let text = std::fs::read_to_string(&task.path).unwrap();
    std::fs::write(
        &task.path,
        text.replace(
            "migration_type = \"full-load\"",
            "migration_type = \"full-load-and-cdc\"",
        ),
    )
    .unwrap();
    let select = r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"m","table-name":"%"},"rule-action":"include"}"#;
    let slash = r#"{"rule-type":"transformation","rule-id":"9","rule-name":"9","rule-target":"table","object-locator":{"schema-name":"m","table-name":"a/b"},"rule-action":"rename","value":"a_b"}"#;
    let validate = |rules: &str| {
        set_mapping(&task, rules);
        let out = tributary(&["validate", "--config", task.path.to_str().unwrap()]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = validate(&format!("{select},{slash}"));
    assert!(
        !ok && out.contains("output column \"Op\"") && out.contains("\"rule-action\": \"rename\""),
        "{out}"
    );
    let rename_op = r#"{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"column","object-locator":{"schema-name":"m","table-name":"t","column-name":"Op"},"rule-action":"rename","value":"src_op"}"#;
    let (ok, out) = validate(&format!("{select},{rename_op}"));
    assert!(
        !ok && out.contains("\"a/b\" cannot be used as an S3 folder name"),
        "{out}"
    );
    let typo = r#"{"rule-type":"transformation","rule-id":"3","rule-name":"3","rule-target":"column","object-locator":{"schema-name":"m","table-name":"t","column-name":"op"},"rule-action":"remove-column"}"#;
    let (ok, out) = validate(&format!("{select},{rename_op},{slash},{typo}"));
    assert!(
        !ok && out.contains("rule 3") && out.contains("matches no selected column"),
        "{out}"
    );
    let bad_expr = r#"{"rule-type":"transformation","rule-id":"4","rule-name":"4","rule-target":"column","object-locator":{"schema-name":"m","table-name":"t"},"rule-action":"add-column","value":"x","expression":"upper($id","data-type":{"type":"string"}}"#;
    let (ok, out) = validate(&format!("{select},{rename_op},{slash},{bad_expr}"));
    assert!(
        !ok && out.contains("rule 4") && out.contains("expression"),
        "{out}"
    );
    assert!(files(&task.lake()).is_empty(), "validate writes nothing");

    set_mapping(&task, &format!("{select},{rename_op},{slash}"));
    let text = std::fs::read_to_string(&task.path).unwrap();
    std::fs::write(
        &task.path,
        text.replace(
            "migration_type = \"full-load-and-cdc\"",
            "migration_type = \"full-load\"",
        ),
    )
    .unwrap();
    run_ok(&task, &[]);
    let mut got = files(&task.lake());
    got.sort();
    assert_eq!(
        got,
        ["m/a_b/LOAD00000001.parquet", "m/t/LOAD00000001.parquet"]
    );
}

/// Post-processing add-tag rules tag every object of the matching tables on S3 — a multipart
/// LOAD file, a single-PUT LOAD file and a CDC file — with the most specific rule's tags and
/// the names substituted; read back from the S3 server.
#[tokio::test]
async fn add_tag_rules_tag_every_object_on_s3() {
    let db = "map_tags";
    let client = crate::s3::big_table(db).await;
    client
        .batch_execute("ALTER TABLE b.t REPLICA IDENTITY FULL; CREATE TABLE b.small (id int PRIMARY KEY, v text); INSERT INTO b.small VALUES (1, 'a');")
        .await
        .unwrap();
    let (name, store) = crate::s3::bucket("lake-tags").await;
    let endpoint = env("TRIBUTARY_TEST_S3_ENDPOINT");
    let task = crate::cdc::cdc_task(db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let text = std::fs::read_to_string(&task.path).unwrap();
    let local = text
        .lines()
        .find(|l| l.starts_with("url = \"file://"))
        .unwrap()
        .to_string();
    std::fs::write(
        &task.path,
        text.replace(&local, &crate::s3::target(&name, &endpoint, "")),
    )
    .unwrap();
    set_mapping(
        &task,
        r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"b","table-name":"%"},"rule-action":"include"},
           {"rule-type":"post-processing","rule-id":"2","rule-name":"2","rule-action":"add-tag","object-locator":{"schema-name":"b","table-name":"%"},
            "tag-set":[{"key":"owner","value":"${schema-name}"},{"key":"tier","value":"bronze"}]},
           {"rule-type":"post-processing","rule-id":"3","rule-name":"3","rule-action":"add-tag","object-locator":{"schema-name":"b","table-name":"small"},
            "tag-set":[{"key":"table","value":"${table-name}"}]}"#,
    );
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute("INSERT INTO b.small VALUES (2, 'b')")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let cdc_key = loop {
        let found = crate::s3::keys(&store)
            .await
            .into_iter()
            .find(|k| k.starts_with("b/small/") && !k.contains("LOAD"));
        if let Some(k) = found {
            break k;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no CDC file\n{}",
            log(&task, 0)
        );
        assert!(child.try_wait().unwrap().is_none(), "{}", log(&task, 0));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    terminate(&task, 0, child);
    // Read back with boto3 (the S3 API's own client, in the test venv), sorted by key.
    let tags = |key: String| {
        let script = "import boto3, json, os, sys\n\
            s3 = boto3.client('s3', endpoint_url=os.environ['TRIBUTARY_TEST_S3_ENDPOINT'], region_name='us-east-1')\n\
            t = s3.get_object_tagging(Bucket=sys.argv[1], Key=sys.argv[2])['TagSet']\n\
            print(json.dumps(sorted([x['Key'], x['Value']] for x in t)))";
        let out = std::process::Command::new(env("TRIBUTARY_TEST_PYTHON"))
            .args(["-c", script, &name, &key])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pairs: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
        pairs
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let big = store.head(&"b/t/LOAD00000001.csv".into()).await.unwrap();
    assert!(
        big.size > 10 * 1024 * 1024,
        "the big table's file is a multipart upload"
    );
    assert_eq!(
        tags("b/t/LOAD00000001.csv".into()),
        [pair("owner", "b"), pair("tier", "bronze")]
    );
    assert_eq!(
        tags("b/small/LOAD00000001.csv".into()),
        [pair("table", "small")]
    );
    assert_eq!(tags(cdc_key), [pair("table", "small")]);
}

/// Parquet with column rules, full load and CDC: added columns typed by their data-type
/// (int8, boolean, date, numeric) and a numeric column retyped to real8 get those Parquet
/// types and values, and pyarrow and DuckDB read every file.
#[tokio::test]
async fn parquet_types_follow_the_rules_and_readers_read_them() {
    let db = "map_pq";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA p;
             CREATE TABLE p.t (id int PRIMARY KEY, price numeric(10,2), at timestamptz, note text);
             INSERT INTO p.t VALUES (1, 10.50, '2024-05-06 07:08:09+00', 'x'), (2, 3.00, '2024-12-31 23:59:59+00', NULL);",
        )
        .await
        .unwrap();
    let task = crate::cdc::cdc_task(
        db,
        "full-load-and-cdc",
        "DataFormat = \"parquet\"\nCdcMaxBatchInterval = 1",
        "",
    );
    let col = |id: &str, action: &str, extra: &str| {
        format!(
            r#"{{"rule-type":"transformation","rule-id":"{id}","rule-name":"{id}","rule-target":"column","object-locator":{{"schema-name":"p","table-name":"t"{extra}}},"rule-action":"{action}""#
        )
    };
    let rules = [
        r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"p","table-name":"%"},"rule-action":"include"}"#.to_string(),
        format!(r#"{},"data-type":{{"type":"real8"}}}}"#, col("2", "change-data-type", r#","column-name":"price""#)),
        format!(r#"{},"value":"twice","expression":"$id * 2","data-type":{{"type":"int8"}}}}"#, col("3", "add-column", "")),
        format!(r#"{},"value":"big","expression":"$price >= 10","data-type":{{"type":"boolean"}}}}"#, col("4", "add-column", "")),
        format!(r#"{},"value":"day","expression":"date($at)","data-type":{{"type":"date"}}}}"#, col("5", "add-column", "")),
        format!(r#"{},"value":"net","expression":"round($price / 1.2, 2)","data-type":{{"type":"numeric","precision":10,"scale":2}}}}"#, col("6", "add-column", "")),
        format!("{}}}", col("7", "remove-column", r#","column-name":"note""#)),
    ];
    set_mapping(&task, &rules.join(","));
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute("INSERT INTO p.t VALUES (3, 20.00, '2025-01-01 00:00:00+00', 'y')")
        .await
        .unwrap();
    wait_for(&task, 0, &mut child, 60, "a CDC file", |fs| {
        fs.iter()
            .any(|f| f.starts_with("p/t/") && !f.contains("LOAD"))
    });
    terminate(&task, 0, child);
    let lake = task.lake();
    let mut paths: Vec<std::path::PathBuf> = files(&lake)
        .iter()
        .filter(|f| f.starts_with("p/t/"))
        .map(|f| lake.join(f))
        .collect();
    // The LOAD file first, then the CDC file.
    paths.sort_by_key(|p| !p.file_name().unwrap().to_str().unwrap().starts_with("LOAD"));
    let (schema, rows) = crate::full_load::read_parquet(&paths[..1]);
    let types: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let want = |n: &str, t: &str| (n.to_string(), t.to_string());
    assert_eq!(
        types,
        [
            want("id", "Int32"),
            want("price", "Float64"),
            want("at", "Timestamp(µs, \"UTC\")"),
            want("twice", "Int64"),
            want("big", "Boolean"),
            want("day", "Date32"),
            want("net", "Decimal128(10, 2)"),
        ],
        "{schema:?}"
    );
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        rows[0][3..],
        [some("2"), some("true"), some("2024-05-06"), some("8.75")]
    );
    assert_eq!(
        (rows[0][1].clone(), rows[1][1].clone()),
        (some("10.5"), some("3"))
    );
    let (_, cdc) = crate::full_load::read_parquet(&paths[1..]);
    assert_eq!(cdc[0].last(), Some(&some("16.67")), "{cdc:?}");
    let names: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    crate::full_load::python_reads(&names, 3);
}

/// The lob-settings rules of two tables, in full load and CDC: `none` drops the LOB column,
/// `limited` cuts values at `bulk-max-size` KB; a third table keeps the task's settings.
#[tokio::test]
async fn lob_settings_rules_set_each_tables_lob_mode() {
    let db = "map_lob";
    let client = fresh_db(db).await;
    client
        .batch_execute(
            "CREATE SCHEMA l;
             CREATE TABLE l.cut (id int PRIMARY KEY, body text);
             CREATE TABLE l.dropped (id int PRIMARY KEY, body text);
             CREATE TABLE l.whole (id int PRIMARY KEY, body text);
             INSERT INTO l.cut VALUES (1, repeat('a', 3000));
             INSERT INTO l.dropped VALUES (1, repeat('b', 3000));
             INSERT INTO l.whole VALUES (1, repeat('c', 3000));",
        )
        .await
        .unwrap();
    let task = crate::cdc::cdc_task(
        db,
        "full-load-and-cdc",
        "AddColumnName = true\nCdcMaxBatchInterval = 1",
        "",
    );
    let lob = |id: &str, table: &str, settings: &str| {
        format!(
            r#"{{"rule-type":"table-settings","rule-id":"{id}","rule-name":"{id}","object-locator":{{"schema-name":"l","table-name":"{table}"}},"lob-settings":{settings}}}"#
        )
    };
    let rules = [
        r#"{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"l","table-name":"%"},"rule-action":"include"}"#.to_string(),
        lob("2", "cut", r#"{"mode":"limited","bulk-max-size":"1"}"#),
        lob("3", "dropped", r#"{"mode":"none"}"#),
    ];
    set_mapping(&task, &rules.join(","));
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    client
        .batch_execute(
            "INSERT INTO l.cut VALUES (2, repeat('d', 3000));
             INSERT INTO l.dropped VALUES (2, repeat('e', 3000));
             INSERT INTO l.whole VALUES (2, repeat('f', 3000));",
        )
        .await
        .unwrap();
    let lake = task.lake();
    wait_for(
        &task,
        0,
        &mut child,
        60,
        "CDC files of all three tables",
        |fs| {
            ["l/cut/", "l/dropped/", "l/whole/"]
                .iter()
                .all(|t| fs.iter().any(|f| f.starts_with(t) && !f.contains("LOAD")))
        },
    );
    terminate(&task, 0, child);
    let lengths = |table: &str| -> Vec<(bool, Option<usize>)> {
        rows_of(&lake, table)
            .iter()
            .map(|(cdc, r)| {
                (
                    *cdc,
                    r.get("body").map(|b| b.as_ref().map_or(0, |s| s.len())),
                )
            })
            .collect()
    };
    assert_eq!(lengths("l/cut"), [(false, Some(1024)), (true, Some(1024))]);
    assert_eq!(lengths("l/dropped"), [(false, None), (true, None)]);
    assert_eq!(
        lengths("l/whole"),
        [(false, Some(3000)), (true, Some(3000))]
    );
}

/// The same rules on MySQL/MariaDB: a MEDIUMTEXT column (NCLOB) dropped on one table, a LONGTEXT
/// one cut on another (TEXT maps to WSTRING, not a LOB).
#[tokio::test]
async fn mysql_lob_settings_rules_set_each_tables_lob_mode() {
    let db = "map_my_lob";
    let url = crate::mysql::my_url(db);
    let mut conn = crate::mysql::my_db(db).await;
    conn.query_drop(
        "CREATE TABLE cut (id INT PRIMARY KEY, body LONGTEXT);
         CREATE TABLE dropped (id INT PRIMARY KEY, body MEDIUMTEXT);
         INSERT INTO cut VALUES (1, REPEAT('a', 3000));
         INSERT INTO dropped VALUES (1, REPEAT('b', 3000));",
    )
    .await
    .unwrap();
    let task =
        crate::mysql::my_task_at(&url, db, "full-load-and-cdc", "CdcMaxBatchInterval = 1", "");
    let rules = format!(
        r#"{{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{{"schema-name":"{db}","table-name":"%"}},"rule-action":"include"}},
           {{"rule-type":"table-settings","rule-id":"2","rule-name":"2","object-locator":{{"schema-name":"{db}","table-name":"cut"}},"lob-settings":{{"mode":"limited","bulk-max-size":"2"}}}},
           {{"rule-type":"table-settings","rule-id":"3","rule-name":"3","object-locator":{{"schema-name":"{db}","table-name":"dropped"}},"lob-settings":{{"mode":"none"}}}}"#
    );
    set_mapping(&task, &rules);
    let mut child = spawn(&task, 0);
    wait_streaming(&task, 0, &mut child);
    conn.query_drop("INSERT INTO cut VALUES (2, REPEAT('c', 3000)); INSERT INTO dropped VALUES (2, REPEAT('d', 3000));")
        .await
        .unwrap();
    let lake = task.lake();
    let (cut, dropped) = (format!("{db}/cut/"), format!("{db}/dropped/"));
    wait_for(&task, 0, &mut child, 60, "CDC files of both tables", |fs| {
        [&cut, &dropped].iter().all(|t| {
            fs.iter()
                .any(|f| f.starts_with(t.as_str()) && !f.contains("LOAD"))
        })
    });
    terminate(&task, 0, child);
    let lengths = |table: &str| -> Vec<Option<usize>> {
        rows_of(&lake, table)
            .iter()
            .map(|(_, r)| r.get("body").map(|b| b.as_ref().map_or(0, |s| s.len())))
            .collect()
    };
    assert_eq!(lengths(&format!("{db}/cut")), [Some(2048), Some(2048)]);
    assert_eq!(lengths(&format!("{db}/dropped")), [None, None]);
}
