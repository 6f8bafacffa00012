//! Unit tests of `change`.
use super::*;

#[test]
fn lsn_round_trip() {
    let l: Lsn = "4AF/B00000D0".parse().unwrap();
    assert_eq!(l.0, 0x4AF_B000_00D0);
    assert_eq!(l.to_string(), "4AF/B00000D0");
    assert!("4AF".parse::<Lsn>().is_err());
}

#[test]
fn binlog_positions_order_by_file_number() {
    let p = |s: &str| s.parse::<BinlogPos>().unwrap();
    assert!(p("mysql-bin.999999:900") < p("mysql-bin.1000000:4"));
    assert!(p("mysql-bin.000024:373") < p("mysql-bin.000024:374"));
    assert_eq!(p("mysql-bin.000024:373").offset, 373);
    assert!("mysql-bin.000024".parse::<BinlogPos>().is_err());
}

#[test]
fn counts_and_stream_keys_read_release_0_1_0_forms() {
    let old: OpCounts = serde_json::from_str("[1, 2, 3]").unwrap();
    let new: OpCounts = serde_json::from_str(r#"{"inserts":1,"updates":2,"deletes":3}"#).unwrap();
    assert_eq!(old, new);
    assert_eq!(
        serde_json::to_string(&new).unwrap(),
        r#"{"inserts":1,"updates":2,"deletes":3}"#
    );
    let key: StreamKey = serde_json::from_str(r#"" CDC_TXN""#).unwrap();
    assert_eq!(key, StreamKey::Transactions);
    assert_eq!(serde_json::to_string(&key).unwrap(), r#"" CDC_TXN""#);
    let key: StreamKey = serde_json::from_str(r#""s.t""#).unwrap();
    assert_eq!(key, StreamKey::Table("s.t".into()));
}

#[test]
fn batch_cells() {
    let mut b = RowBatch::new(2);
    b.push_cell(b"a");
    b.push_null();
    b.end_row(Op::Insert, 1).unwrap();
    b.push_cell(b"");
    b.push_cell(b"xyz");
    b.end_row(Op::Insert, 2).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b.get(0, 0), Some(&b"a"[..]));
    assert_eq!(b.get(0, 1), None);
    assert_eq!(b.get(1, 0), Some(&b""[..]));
    assert_eq!(b.get(1, 1), Some(&b"xyz"[..]));
    assert!(b.all_utf8());
    assert_eq!(b.rows_data_bytes(0..2), 4);
    assert_eq!(b.rows_data_bytes(1..2), 3);
    b.push_cell(b"only one");
    assert!(b.end_row(Op::Insert, 3).is_err());
    b.discard_partial_row();
    assert_eq!(b.data_bytes(), 4);
    b.push_cell(b"q");
    b.push_null();
    b.end_row(Op::Delete, 4).unwrap();
    assert_eq!(b.get(2, 0), Some(&b"q"[..]));
    b.clear();
    assert!(b.is_empty() && b.data_bytes() == 0);
    let mut split = RowBatch::new(2);
    let e_acute = "é".as_bytes();
    split.push_cell(&e_acute[..1]);
    split.push_cell(&e_acute[1..]);
    split.end_row(Op::Insert, 0).unwrap();
    assert!(
        !split.all_utf8(),
        "a character split across cells is not valid per cell"
    );
}
