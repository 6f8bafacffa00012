//! Unit tests of the CDC writer: names, progressive uploads, bounded memory, transaction lines.

use std::sync::Mutex;

use super::*;
use crate::change::{Lsn, Position};
use crate::config::settings::SettingsBag;
use crate::store::LocalStore;

/// A clock the test moves by hand.
struct ManualClock(Mutex<DateTime<Utc>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn schema(cols: &[&str]) -> Arc<TableSchema> {
    TableSchema::text_for_test(cols)
}

fn pos(lsn: u64, seq: u64) -> ChangePos {
    ChangePos {
        commit: Position::Postgres(Lsn(lsn)),
        seq,
    }
}

fn settings(eca: &str) -> S3Settings {
    let mut bag = SettingsBag::new("test");
    bag.extend_eca(eca).unwrap();
    S3Settings::parse(bag, None).unwrap()
}

fn layout(s: &S3Settings) -> Layout {
    Layout {
        bucket_folder: String::new(),
        format: s.data_format,
        compression: s.compression,
        date_partition: s.cdc.date_partition.clone(),
        names: Default::default(),
        tags: Default::default(),
    }
}

async fn push(w: &mut CdcWriter<'_>, table: &str, op: Op, v: &str, p: ChangePos) {
    try_push(w, table, op, v, p).await.unwrap();
}

/// Pushes a one-cell row.
async fn try_push(
    w: &mut CdcWriter<'_>,
    table: &str,
    op: Op,
    v: &str,
    p: ChangePos,
) -> Result<u64> {
    let fill = &mut |out: &mut RowBatch| {
        out.push_cell(v.as_bytes());
        Ok(0)
    };
    w.push(table, op, 7, p, fill).await
}

/// Seals `series` and completes the upload (what the commit protocol does after recording it).
async fn seal(w: &mut CdcWriter<'_>, series: &StreamKey) -> SealedFile {
    w.seal(series, SealReason::Stop).await.unwrap().unwrap()
}

#[tokio::test]
async fn names_strictly_increase_and_follow_the_open_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().to_path_buf());
    let s = settings("datePartitionEnabled=true");
    let l = layout(&s);
    // One millisecond before midnight: the second file (same clock) must sort after the first,
    // and lands in the next day's folder because folder and name share one stamp.
    let clock = Arc::new(ManualClock(Mutex::new(
        "2022-05-21T23:59:59.999Z".parse().unwrap(),
    )));
    let stamps = [(StreamKey::Table("s.t".into()), "20220521235959998".into())];
    let mut w = CdcWriter::new(&store, &l, &s, clock, stamps);
    w.set_shape(&schema(&["v"]));
    let series = w.keys("s.t").unwrap().0.clone();
    for (i, v) in ["a", "b"].iter().enumerate() {
        push(&mut w, "s.t", Op::Insert, v, pos(i as u64 + 1, 1)).await;
        let f = seal(&mut w, &series).await;
        assert_eq!(f.through, pos(i as u64 + 1, 1));
        assert_eq!(f.counts.ops.inserts, 1);
        f.object.finish().await.unwrap();
    }
    let keys = store.list("s/t/").await.unwrap();
    assert_eq!(
        keys,
        vec![
            "s/t/2022/05/21/20220521-235959999.csv".to_string(),
            "s/t/2022/05/22/20220522-000000000.csv".to_string()
        ]
    );
    let text = std::fs::read_to_string(dir.path().join(&keys[1])).unwrap();
    assert!(text.starts_with("I,b\n"), "{text}");
}

/// A file far larger than one chunk is uploaded as it fills: memory stays near one chunk,
/// nothing is visible before the seal, and the sealed file has every row.
#[tokio::test]
async fn big_files_upload_progressively_with_bounded_memory() {
    for format in ["csv", "parquet"] {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        let s = settings(&format!("dataFormat={format}"));
        let l = layout(&s);
        let mut w = CdcWriter::new(&store, &l, &s, Arc::new(SystemClock), []);
        w.set_shape(&schema(&["v"]));
        let value = "x".repeat(1000);
        let rows = 40_000u64; // 40 MB raw
        let mut peak = 0;
        for i in 0..rows {
            push(&mut w, "s.t", Op::Update, &value, pos(1, i + 1)).await;
            peak = peak.max(w.memory());
        }
        let series = w.keys("s.t").unwrap().0.clone();
        assert_eq!(w.stats(&series).unwrap().raw_bytes, rows * 1000);
        assert!(
            peak < 16 << 20,
            "{format}: {peak} bytes held for a 40 MB file"
        );
        assert!(store.list("").await.unwrap().is_empty(), "visible early");
        let f = seal(&mut w, &series).await;
        assert_eq!(f.rows, rows);
        let bytes = f.object.finish().await.unwrap();
        assert!(bytes > 0);
        let keys = store.list("s/t/").await.unwrap();
        assert_eq!(keys.len(), 1);
        if format == "csv" {
            let text = std::fs::read_to_string(dir.path().join(&keys[0])).unwrap();
            assert_eq!(text.lines().count() as u64, rows);
        } else {
            let file = std::fs::File::open(dir.path().join(&keys[0])).unwrap();
            let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
            use parquet::file::reader::FileReader;
            assert_eq!(reader.metadata().file_metadata().num_rows() as u64, rows);
        }
    }
}

#[tokio::test]
async fn shape_changes_need_a_seal_and_a_failed_fill_leaves_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().to_path_buf());
    let s = settings("");
    let l = layout(&s);
    let mut w = CdcWriter::new(&store, &l, &s, Arc::new(SystemClock), []);
    let v1 = schema(&["v"]);
    let v2 = schema(&["v", "w"]);
    w.set_shape(&v1);
    assert!(!w.must_seal_for(&v2), "nothing open yet");
    push(&mut w, "s.t", Op::Insert, "a", pos(1, 1)).await;
    let fail = &mut |out: &mut RowBatch| -> Result<u64> {
        out.push_cell(b"half");
        Err(Error::internal("bad value"))
    };
    assert!(w.push("s.t", Op::Insert, 7, pos(1, 2), fail).await.is_err());
    assert!(w.must_seal_for(&v2));
    assert!(!w.must_seal_for(&v1));
    let series = w.keys("s.t").unwrap().0.clone();
    let f = seal(&mut w, &series).await;
    assert_eq!((f.rows, f.through.clone()), (1, pos(1, 1)));
    f.object.finish().await.unwrap();
    // Discarding leaves nothing behind.
    push(&mut w, "s.t", Op::Insert, "b", pos(2, 1)).await;
    w.discard_all().await;
    assert_eq!(store.list("").await.unwrap().len(), 1);
    assert!(w.oldest().is_none());
    w.set_shape(&v2);
    assert!(!w.must_seal_for(&v2));
}

#[tokio::test]
async fn transaction_files_interleave_tables_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().to_path_buf());
    let s = settings("preserveTransactions=true;cdcPath=txn;compressionType=gzip");
    let l = layout(&s);
    let mut w = CdcWriter::new(&store, &l, &s, Arc::new(SystemClock), []);
    let other = Arc::new(TableSchema {
        table: "u".into(),
        ..(*schema(&["x", "y"])).clone()
    });
    w.set_shape(&schema(&["v"]));
    w.set_shape(&other);
    assert_eq!(w.keys("s.u").unwrap().0, &StreamKey::Transactions);
    push(&mut w, "s.t", Op::Insert, "a", pos(1, 1)).await;
    let fill = &mut |out: &mut RowBatch| {
        out.push_cell(b"1");
        out.push_null();
        Ok(1)
    };
    w.push("s.u", Op::Update, 8, pos(1, 2), fill).await.unwrap();
    push(&mut w, "s.t", Op::Delete, "a", pos(2, 1)).await;
    assert_eq!(w.oldest_commit_us(), Some(7));
    let f = seal(&mut w, &StreamKey::Transactions).await;
    assert_eq!(f.per_table["s.t"].ops.deletes, 1);
    assert_eq!(f.per_table["s.u"].markers, 1);
    f.object.finish().await.unwrap();
    let keys = store.list("txn/").await.unwrap();
    assert!(keys[0].ends_with(".csv.gz"), "{keys:?}");
    let gz = std::fs::read(dir.path().join(&keys[0])).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    assert_eq!(text, "I,t,s,a\nU,u,s,1,\nD,t,s,a\n");
}

#[test]
fn op_matrix() {
    let mut s = settings("");
    assert!(cdc_op_column(&s));
    s.cdc.inserts_only = true;
    assert!(!cdc_op_column(&s));
    s.include_op_for_full_load = true;
    assert!(cdc_op_column(&s));
    s.cdc.inserts_only = false;
    s.cdc.inserts_and_updates = true;
    s.include_op_for_full_load = false;
    assert!(cdc_op_column(&s));
}

/// A change with a value its Parquet column cannot hold is refused when it is pushed, with
/// the table, column and value named: nothing of it is buffered, a file opened for it alone
/// is dropped, and the file's other rows are written. CSV takes the same value.
#[tokio::test]
async fn a_value_parquet_cannot_hold_is_refused_when_pushed() {
    let numeric = Arc::new(TableSchema {
        columns: vec![Column {
            name: "nu".into(),
            dms_type: DmsType::Numeric {
                precision: 28,
                scale: 6,
            },
            source_type: "numeric".into(),
        }],
        ..(*schema(&["v"])).clone()
    });
    for format in ["parquet", "csv"] {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        let s = settings(&format!("dataFormat={format}"));
        let l = layout(&s);
        let mut w = CdcWriter::new(&store, &l, &s, Arc::new(SystemClock), []);
        w.set_shape(&numeric);
        let series = w.keys("s.t").unwrap().0.clone();
        let nan = try_push(&mut w, "s.t", Op::Insert, "NaN", pos(1, 1)).await;
        if format == "csv" {
            nan.unwrap();
            let f = seal(&mut w, &series).await;
            f.object.finish().await.unwrap();
            let keys = store.list("s/t/").await.unwrap();
            let text = std::fs::read_to_string(dir.path().join(&keys[0])).unwrap();
            assert_eq!(text, "I,NaN\n");
            continue;
        }
        let e = nan.unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Data);
        let shown = e.to_string();
        assert!(
            shown.starts_with(r#"table s.t: column nu (numeric): cannot write value "NaN" as Parquet NUMERIC(28,6): a DECIMAL holds no NaN or infinity; write the column as text: set MapUnboundedNumericAsString"#)
                && shown.contains("MapUnboundedNumericAsString"),
            "{shown}"
        );
        assert!(
            w.open_series().is_empty(),
            "the file opened for the row is dropped"
        );
        push(&mut w, "s.t", Op::Insert, "1.5", pos(2, 1)).await;
        let big = try_push(&mut w, "s.t", Op::Insert, "1e30", pos(2, 2)).await;
        assert!(big.unwrap_err().to_string().contains(r#"value "1e30""#));
        push(&mut w, "s.t", Op::Insert, "-2", pos(2, 3)).await;
        let f = seal(&mut w, &series).await;
        assert_eq!((f.rows, f.through.clone()), (2, pos(2, 3)));
        f.object.finish().await.unwrap();
        let keys = store.list("s/t/").await.unwrap();
        let file = std::fs::File::open(dir.path().join(&keys[0])).unwrap();
        let rows: Vec<String> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .flat_map(|b| {
                    let b = b.unwrap();
                    let a = arrow_array::cast::AsArray::as_primitive::<
                        arrow_array::types::Decimal128Type,
                    >(b.column(1))
                    .clone();
                    (0..a.len()).map(move |i| a.value_as_string(i))
                })
                .collect();
        assert_eq!(rows, ["1.500000", "-2.000000"]);
    }
}
