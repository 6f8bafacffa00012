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
#[allow(clippy::enum_variant_names)] // `Message` is the protocol's name for a logical message.
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
mod tests;
