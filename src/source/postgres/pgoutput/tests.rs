//! Unit tests of `pgoutput`.
use super::*;
use proptest::prelude::*;

/// Test-only encoder: the inverse of [`decode`].
fn encode(m: &Message<'_>) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    fn tuple(out: &mut Vec<u8>, t: &Tuple<'_>) {
        out.extend_from_slice(&(t.values.len() as i16).to_be_bytes());
        for v in &t.values {
            match v {
                Value::Null => out.push(b'n'),
                Value::Unchanged => out.push(b'u'),
                Value::Text(b) | Value::Binary(b) => {
                    out.push(if matches!(v, Value::Text(_)) {
                        b't'
                    } else {
                        b'b'
                    });
                    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }
    let mut o = Vec::new();
    match m {
        Message::Begin {
            final_lsn,
            commit_time_us,
            xid,
        } => {
            o.push(b'B');
            o.extend_from_slice(&final_lsn.to_be_bytes());
            o.extend_from_slice(&commit_time_us.to_be_bytes());
            o.extend_from_slice(&xid.to_be_bytes());
        }
        Message::Commit {
            flags,
            commit_lsn,
            end_lsn,
            commit_time_us,
        } => {
            o.push(b'C');
            o.push(*flags);
            o.extend_from_slice(&commit_lsn.to_be_bytes());
            o.extend_from_slice(&end_lsn.to_be_bytes());
            o.extend_from_slice(&commit_time_us.to_be_bytes());
        }
        Message::Origin { commit_lsn, name } => {
            o.push(b'O');
            o.extend_from_slice(&commit_lsn.to_be_bytes());
            s(&mut o, name);
        }
        Message::Relation(r) => {
            o.push(b'R');
            o.extend_from_slice(&r.oid.to_be_bytes());
            s(&mut o, &r.namespace);
            s(&mut o, &r.name);
            o.push(r.replica_identity);
            o.extend_from_slice(&(r.columns.len() as i16).to_be_bytes());
            for c in &r.columns {
                o.push(u8::from(c.key));
                s(&mut o, &c.name);
                o.extend_from_slice(&c.type_oid.to_be_bytes());
                o.extend_from_slice(&c.type_modifier.to_be_bytes());
            }
        }
        Message::Type {
            oid,
            namespace,
            name,
        } => {
            o.push(b'Y');
            o.extend_from_slice(&oid.to_be_bytes());
            s(&mut o, namespace);
            s(&mut o, name);
        }
        Message::Insert { relation, new } => {
            o.push(b'I');
            o.extend_from_slice(&relation.to_be_bytes());
            o.push(b'N');
            tuple(&mut o, new);
        }
        Message::Update {
            relation,
            key,
            old,
            new,
        } => {
            o.push(b'U');
            o.extend_from_slice(&relation.to_be_bytes());
            if let Some(k) = key {
                o.push(b'K');
                tuple(&mut o, k);
            }
            if let Some(t) = old {
                o.push(b'O');
                tuple(&mut o, t);
            }
            o.push(b'N');
            tuple(&mut o, new);
        }
        Message::Delete { relation, key, old } => {
            o.push(b'D');
            o.extend_from_slice(&relation.to_be_bytes());
            let (tag, t) = match (key, old) {
                (Some(k), _) => (b'K', k),
                (None, Some(t)) => (b'O', t),
                (None, None) => unreachable!("a Delete has a key or an old row"),
            };
            o.push(tag);
            tuple(&mut o, t);
        }
        Message::Truncate { options, relations } => {
            o.push(b'T');
            o.extend_from_slice(&(relations.len() as i32).to_be_bytes());
            o.push(*options);
            for r in relations {
                o.extend_from_slice(&r.to_be_bytes());
            }
        }
        Message::Message {
            transactional,
            lsn,
            prefix,
            content,
        } => {
            o.push(b'M');
            o.push(u8::from(*transactional));
            o.extend_from_slice(&lsn.to_be_bytes());
            s(&mut o, prefix);
            o.extend_from_slice(&(content.len() as i32).to_be_bytes());
            o.extend_from_slice(content);
        }
    }
    o
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Zé_0-9 ]{0,12}"
}

fn value() -> impl Strategy<Value = Value<'static>> {
    // Leaked once per case: tuples borrow, and the test data must outlive the message.
    prop_oneof![
        Just(Value::Null),
        Just(Value::Unchanged),
        proptest::collection::vec(any::<u8>(), 0..20)
            .prop_map(|v| Value::Text(Box::leak(v.into_boxed_slice()))),
        proptest::collection::vec(any::<u8>(), 0..20)
            .prop_map(|v| Value::Binary(Box::leak(v.into_boxed_slice()))),
    ]
}

fn tuple() -> impl Strategy<Value = Tuple<'static>> {
    proptest::collection::vec(value(), 0..6).prop_map(|values| Tuple { values })
}

fn message() -> impl Strategy<Value = Message<'static>> {
    let column = (any::<bool>(), name(), any::<u32>(), any::<i32>()).prop_map(
        |(key, name, type_oid, type_modifier)| RelationColumn {
            key,
            name,
            type_oid,
            type_modifier,
        },
    );
    prop_oneof![
        (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(|(final_lsn, commit_time_us, xid)| {
            Message::Begin {
                final_lsn,
                commit_time_us,
                xid,
            }
        }),
        (any::<u8>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
            |(flags, commit_lsn, end_lsn, commit_time_us)| Message::Commit {
                flags,
                commit_lsn,
                end_lsn,
                commit_time_us
            }
        ),
        (any::<u64>(), name()).prop_map(|(commit_lsn, name)| Message::Origin { commit_lsn, name }),
        (
            any::<u32>(),
            name(),
            name(),
            prop_oneof![Just(b'd'), Just(b'n'), Just(b'f'), Just(b'i')],
            proptest::collection::vec(column, 0..5)
        )
            .prop_map(|(oid, namespace, name, replica_identity, columns)| {
                Message::Relation(Relation {
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                })
            }),
        (any::<u32>(), name(), name()).prop_map(|(oid, namespace, name)| Message::Type {
            oid,
            namespace,
            name
        }),
        (any::<u32>(), tuple()).prop_map(|(relation, new)| Message::Insert { relation, new }),
        (
            any::<u32>(),
            proptest::option::of(tuple()),
            tuple(),
            any::<bool>()
        )
            .prop_map(|(relation, first, new, as_key)| {
                let (key, old) = if as_key { (first, None) } else { (None, first) };
                Message::Update {
                    relation,
                    key,
                    old,
                    new,
                }
            }),
        (any::<u32>(), tuple(), any::<bool>()).prop_map(|(relation, t, as_key)| {
            let (key, old) = if as_key {
                (Some(t), None)
            } else {
                (None, Some(t))
            };
            Message::Delete { relation, key, old }
        }),
        (0u8..4, proptest::collection::vec(any::<u32>(), 0..5))
            .prop_map(|(options, relations)| Message::Truncate { options, relations }),
        (
            any::<bool>(),
            any::<u64>(),
            name(),
            proptest::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(transactional, lsn, prefix, content)| Message::Message {
                transactional,
                lsn,
                prefix,
                content: Box::leak(content.into_boxed_slice())
            }),
    ]
}

proptest! {
    #[test]
    fn round_trips(m in message()) {
        let bytes = encode(&m);
        prop_assert_eq!(decode(&bytes), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_handled(m in message(), flip in any::<usize>()) {
        let bytes = encode(&m);
        for len in 0..bytes.len() {
            prop_assert!(decode(&bytes[..len]).is_err(), "a prefix of {} bytes decoded", len);
        }
        let mut flipped = bytes.clone();
        let i = flip % flipped.len();
        flipped[i] ^= 0x5A;
        let _ = decode(&flipped);
        let mut longer = bytes;
        longer.push(0);
        prop_assert!(decode(&longer).is_err(), "trailing bytes accepted");
    }
}

#[test]
fn update_with_full_identity_and_unchanged_toast() {
    let m = Message::Update {
        relation: 16384,
        key: None,
        old: Some(Tuple {
            values: vec![Value::Text(b"1"), Value::Text(b"big")],
        }),
        new: Tuple {
            values: vec![Value::Text(b"1"), Value::Unchanged],
        },
    };
    assert_eq!(decode(&encode(&m)), Ok(m));
    assert_eq!(pg_epoch_to_unix_us(0), 946_684_800_000_000);
    assert!(decode(b"Z").unwrap_err().message.contains("0x5a"));
    assert!(decode(b"").is_err());
}
