//! Decoder for PostgreSQL's `pgoutput` logical replication messages, protocol version 1.
//!
//! Hand-written because no maintained crates.io crate decodes pgoutput: the transport
//! (`pgwire-replication`) forwards raw bytes on purpose. Tuples borrow from the message.

use std::fmt;

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DecodeError {
    /// What was wrong, naming the message kind.
    pub(crate) message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// One column value of a TupleData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    /// 'n': NULL.
    Null,
    /// 'u': an unchanged TOASTed value, not sent.
    Unchanged,
    /// 't': text format.
    Text(&'a [u8]),
    /// 'b': binary format.
    Binary(&'a [u8]),
}

/// TupleData: values in column order, borrowed from the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tuple<'a> {
    /// The values.
    pub(crate) values: Vec<Value<'a>>,
}

/// A column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RelationColumn {
    /// Part of the replica identity key.
    pub(crate) key: bool,
    /// Column name.
    pub(crate) name: String,
    /// Type OID.
    pub(crate) type_oid: u32,
    /// Type modifier (atttypmod).
    pub(crate) type_modifier: i32,
}

/// A Relation message: the shape of a table as the following changes use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Relation {
    /// Relation OID.
    pub(crate) oid: u32,
    /// Schema name ("" means pg_catalog).
    pub(crate) namespace: String,
    /// Table name.
    pub(crate) name: String,
    /// Replica identity setting: `d`, `n`, `f` or `i`.
    pub(crate) replica_identity: u8,
    /// Columns in order.
    pub(crate) columns: Vec<RelationColumn>,
}

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Message<'a> {
    /// Transaction start.
    Begin {
        /// Commit LSN.
        final_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time_us: i64,
        /// Transaction id.
        xid: u32,
    },
    /// Transaction end.
    Commit {
        /// Flags (unused).
        flags: u8,
        /// Commit LSN.
        commit_lsn: u64,
        /// End of the commit record.
        end_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time_us: i64,
    },
    /// Replication origin.
    Origin {
        /// Commit LSN on the origin.
        commit_lsn: u64,
        /// Origin name.
        name: String,
    },
    /// Table shape.
    Relation(Relation),
    /// A type's name.
    Type {
        /// Type OID.
        oid: u32,
        /// Schema.
        namespace: String,
        /// Name.
        name: String,
    },
    /// INSERT.
    Insert {
        /// Relation OID.
        relation: u32,
        /// New row.
        new: Tuple<'a>,
    },
    /// UPDATE; `old` for REPLICA IDENTITY FULL, `key` when key columns changed.
    Update {
        /// Relation OID.
        relation: u32,
        /// Old key ('K').
        key: Option<Tuple<'a>>,
        /// Old row ('O').
        old: Option<Tuple<'a>>,
        /// New row.
        new: Tuple<'a>,
    },
    /// DELETE; exactly one of `key`/`old` is set.
    Delete {
        /// Relation OID.
        relation: u32,
        /// Old key ('K').
        key: Option<Tuple<'a>>,
        /// Old row ('O').
        old: Option<Tuple<'a>>,
    },
    /// TRUNCATE.
    Truncate {
        /// 1 = CASCADE, 2 = RESTART IDENTITY.
        options: u8,
        /// Relation OIDs.
        relations: Vec<u32>,
    },
    /// Logical decoding message.
    Message {
        /// Emitted inside a transaction.
        transactional: bool,
        /// LSN.
        lsn: u64,
        /// Prefix.
        prefix: String,
        /// Payload.
        content: &'a [u8],
    },
}

/// Converts pgoutput's timestamps (µs since 2000-01-01 UTC) to µs since the Unix epoch.
pub(super) fn pg_epoch_to_unix_us(t: i64) -> i64 {
    t + 946_684_800_000_000
}

/// A cursor over one message.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn err(&self, detail: impl fmt::Display) -> DecodeError {
        DecodeError {
            message: format!("pgoutput {}: {detail}", self.what),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.err(format!(
                "truncated (needs {n} bytes, {} left)",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.i32()? as u32)
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("string without NUL terminator"))?;
        let s = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| self.err("name is not valid UTF-8"))?
            .to_string();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple<'a>, DecodeError> {
        let n = self.i16()?;
        if n < 0 {
            return Err(self.err(format!("negative column count {n}")));
        }
        let n = n as usize;
        // Each column takes at least one byte, so a hostile count cannot reserve much.
        let mut values = Vec::with_capacity(n.min(self.buf.len()));
        for i in 0..n {
            let kind = self
                .u8()
                .map_err(|_| self.err(format!("truncated tuple (column {} of {n})", i + 1)))?;
            values.push(match kind {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' | b'b' => {
                    let len = self.i32()?;
                    if len < 0 {
                        return Err(self.err(format!("negative value length {len}")));
                    }
                    let bytes = self.take(len as usize)?;
                    if kind == b't' {
                        Value::Text(bytes)
                    } else {
                        Value::Binary(bytes)
                    }
                }
                other => return Err(self.err(format!("unknown tuple value kind {other:#04x}"))),
            });
        }
        Ok(Tuple { values })
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

/// Decodes one pgoutput message (an XLogData payload). Never panics.
pub(super) fn decode(data: &[u8]) -> Result<Message<'_>, DecodeError> {
    let Some((&tag, rest)) = data.split_first() else {
        return Err(DecodeError {
            message: "pgoutput: empty message".into(),
        });
    };
    let what = match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        other => {
            return Err(DecodeError {
                message: format!("pgoutput: unknown message tag {other:#04x}"),
            })
        }
    };
    let mut r = Reader { buf: rest, what };
    let msg = match tag {
        b'B' => Message::Begin {
            final_lsn: r.i64()? as u64,
            commit_time_us: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => Message::Commit {
            flags: r.u8()?,
            commit_lsn: r.i64()? as u64,
            end_lsn: r.i64()? as u64,
            commit_time_us: r.i64()?,
        },
        b'O' => Message::Origin {
            commit_lsn: r.i64()? as u64,
            name: r.string()?,
        },
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            if n < 0 {
                return Err(r.err(format!("negative column count {n}")));
            }
            let mut columns = Vec::with_capacity((n as usize).min(r.buf.len()));
            for _ in 0..n {
                columns.push(RelationColumn {
                    key: r.u8()? & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'N' => Message::Insert {
                    relation,
                    new: r.tuple()?,
                },
                other => return Err(r.err(format!("expected 'N', got {other:#04x}"))),
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let (mut key, mut old) = (None, None);
            let mut marker = r.u8()?;
            match marker {
                b'K' => key = Some(r.tuple()?),
                b'O' => old = Some(r.tuple()?),
                _ => {}
            }
            if key.is_some() || old.is_some() {
                marker = r.u8()?;
            }
            if marker != b'N' {
                return Err(r.err(format!("expected 'N', got {marker:#04x}")));
            }
            Message::Update {
                relation,
                key,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'K' => Message::Delete {
                    relation,
                    key: Some(r.tuple()?),
                    old: None,
                },
                b'O' => Message::Delete {
                    relation,
                    key: None,
                    old: Some(r.tuple()?),
                },
                other => return Err(r.err(format!("expected 'K' or 'O', got {other:#04x}"))),
            }
        }
        b'T' => {
            let n = r.i32()?;
            if n < 0 {
                return Err(r.err(format!("negative relation count {n}")));
            }
            let options = r.u8()?;
            let mut relations = Vec::with_capacity((n as usize).min(r.buf.len() / 4));
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { options, relations }
        }
        _ => {
            let flags = r.u8()?;
            let lsn = r.i64()? as u64;
            let prefix = r.string()?;
            let len = r.i32()?;
            if len < 0 {
                return Err(r.err(format!("negative content length {len}")));
            }
            Message::Message {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
                content: r.take(len as usize)?,
            }
        }
    };
    r.end()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
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
            (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(
                |(final_lsn, commit_time_us, xid)| Message::Begin {
                    final_lsn,
                    commit_time_us,
                    xid
                }
            ),
            (any::<u8>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
                |(flags, commit_lsn, end_lsn, commit_time_us)| Message::Commit {
                    flags,
                    commit_lsn,
                    end_lsn,
                    commit_time_us
                }
            ),
            (any::<u64>(), name())
                .prop_map(|(commit_lsn, name)| Message::Origin { commit_lsn, name }),
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
}
