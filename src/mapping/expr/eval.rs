//! Tree evaluation: operators, comparisons, CAST and the conversions between SQLite's types,
//! following the VDBE opcodes that SQLite compiles the same expressions to.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::num::{atof, atoi64, numeric_affinity, numerify, text_num};
use super::tree::{Aff, BinOp, CmpOp, ColKind, Lit, Node, VarKind};
use super::{date, func, push_int, push_text, Val, Vars};

/// What evaluation reads besides the tree: the row and the header variables. One lifetime
/// covers the tree, the row and the variables, so values can borrow from any of them.
pub(super) struct Cx<'a> {
    /// Column `i`'s canonical text, None for NULL.
    pub(super) cell: &'a dyn Fn(usize) -> Option<&'a [u8]>,
    /// Header variables.
    pub(super) vars: &'a Vars<'a>,
}

/// Evaluates `n` and appends its text to `out`: Ok(false) for NULL with `out` unchanged.
/// Concatenations, `upper`/`lower`, CASE and variables write in place instead of building a
/// value first, which keeps the common expressions free of allocation.
pub(super) fn write_text<'a>(n: &'a Node, cx: &Cx<'a>, out: &mut Vec<u8>) -> Result<bool, String> {
    match n {
        Node::Concat(parts) => {
            let start = out.len();
            for p in parts {
                if !write_text(p, cx, out)? {
                    out.truncate(start);
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Node::Call(f @ (func::Func::Upper | func::Func::Lower), args) => {
            let v = eval(&args[0], cx)?;
            if v.is_null() {
                return Ok(false);
            }
            let start = out.len();
            push_text(&v, out);
            if *f == func::Func::Upper {
                out[start..].make_ascii_uppercase();
            } else {
                out[start..].make_ascii_lowercase();
            }
            Ok(true)
        }
        Node::Case(base, whens, els) => match choose(base.as_deref(), whens, els.as_deref(), cx)? {
            Some(n) => write_text(n, cx, out),
            None => Ok(false),
        },
        Node::Var(VarKind::Timestamp) => {
            date::push_timestamp(cx.vars.timestamp_us, out);
            Ok(true)
        }
        Node::Var(VarKind::CommitTimestamp) => {
            date::push_timestamp(cx.vars.commit_timestamp_us, out);
            Ok(true)
        }
        _ => {
            let v = eval(n, cx)?;
            if v.is_null() {
                return Ok(false);
            }
            push_text(&v, out);
            Ok(true)
        }
    }
}

/// Evaluates `n` to a value.
pub(super) fn eval<'a>(n: &'a Node, cx: &Cx<'a>) -> Result<Val<'a>, String> {
    Ok(match n {
        Node::Lit(l) => match l {
            Lit::Null => Val::Null,
            Lit::Int(i) => Val::Int(*i),
            Lit::Real(r) => Val::Real(*r),
            Lit::Text(t) => Val::Text(Cow::Borrowed(t)),
            Lit::Blob(b) => Val::Blob(Cow::Borrowed(b)),
        },
        Node::Col(i, kind) => match (cx.cell)(*i) {
            Some(b) => column(b, *kind),
            None => Val::Null,
        },
        Node::Var(v) => var(*v, cx.vars),
        Node::Neg(x) => arith(BinOp::Sub, &Val::Int(0), &eval(x, cx)?),
        Node::Plus(x) => eval(x, cx)?,
        Node::BitNot(x) => match eval(x, cx)? {
            Val::Null => Val::Null,
            v => Val::Int(!int_of(&v)),
        },
        Node::Not(x) => match truth(&eval(x, cx)?) {
            None => Val::Null,
            Some(t) => Val::Int(i64::from(!t)),
        },
        Node::Bin(op, l, r) => {
            let a = eval(l, cx)?;
            arith(*op, &a, &eval(r, cx)?)
        }
        Node::Concat(parts) => {
            let mut buf = Vec::new();
            for p in parts {
                let v = eval(p, cx)?;
                if v.is_null() {
                    return Ok(Val::Null);
                }
                push_text(&v, &mut buf);
            }
            Val::Text(Cow::Owned(buf))
        }
        Node::Cmp(op, aff, l, r) => {
            let a = eval(l, cx)?;
            match compare(&a, &eval(r, cx)?, *aff) {
                None => Val::Null,
                Some(o) => Val::Int(i64::from(match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::Ne => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                })),
            }
        }
        Node::Is(not, aff, l, r) => {
            let a = eval(l, cx)?;
            let b = eval(r, cx)?;
            let same = match (a.is_null(), b.is_null()) {
                (true, true) => true,
                (false, false) => compare(&a, &b, *aff) == Some(Ordering::Equal),
                _ => false,
            };
            Val::Int(i64::from(same != *not))
        }
        Node::IsNull(not, x) => Val::Int(i64::from(eval(x, cx)?.is_null() != *not)),
        Node::And(l, r) => {
            let a = truth(&eval(l, cx)?);
            if a == Some(false) {
                return Ok(Val::Int(0));
            }
            match (a, truth(&eval(r, cx)?)) {
                (_, Some(false)) => Val::Int(0),
                (Some(true), Some(true)) => Val::Int(1),
                _ => Val::Null,
            }
        }
        Node::Or(l, r) => {
            let a = truth(&eval(l, cx)?);
            if a == Some(true) {
                return Ok(Val::Int(1));
            }
            match (a, truth(&eval(r, cx)?)) {
                (_, Some(true)) => Val::Int(1),
                (Some(false), Some(false)) => Val::Int(0),
                _ => Val::Null,
            }
        }
        Node::In(not, aff, x, list) => {
            if list.is_empty() {
                return Ok(Val::Int(i64::from(*not)));
            }
            let v = eval(x, cx)?;
            if v.is_null() {
                return Ok(Val::Null);
            }
            let mut saw_null = false;
            for item in list {
                match compare(&v, &eval(item, cx)?, *aff) {
                    Some(Ordering::Equal) => return Ok(Val::Int(i64::from(!*not))),
                    None => saw_null = true,
                    Some(_) => {}
                }
            }
            if saw_null {
                Val::Null
            } else {
                Val::Int(i64::from(*not))
            }
        }
        Node::Between(not, affs, ops) => {
            let v = eval(&ops[0], cx)?;
            let ge = compare(&v, &eval(&ops[1], cx)?, affs[0]).map(|o| o != Ordering::Less);
            let le = compare(&v, &eval(&ops[2], cx)?, affs[1]).map(|o| o != Ordering::Greater);
            let within = match (ge, le) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            match within {
                None => Val::Null,
                Some(w) => Val::Int(i64::from(w != *not)),
            }
        }
        Node::Case(base, whens, els) => match choose(base.as_deref(), whens, els.as_deref(), cx)? {
            Some(n) => eval(n, cx)?,
            None => Val::Null,
        },
        Node::Cast(aff, x) => cast(eval(x, cx)?, *aff),
        Node::Call(f, args) => func::call(*f, args, cx)?,
    })
}

/// The branch a CASE takes, None when it falls through without ELSE. A WHEN matches when it is
/// true (searched form) or equal to the base (simple form; NULL never matches).
fn choose<'a>(
    base: Option<&'a Node>,
    whens: &'a [(Node, Node, Aff)],
    els: Option<&'a Node>,
    cx: &Cx<'a>,
) -> Result<Option<&'a Node>, String> {
    let b = match base {
        Some(b) => Some(eval(b, cx)?),
        None => None,
    };
    for (w, then, aff) in whens {
        let v = eval(w, cx)?;
        let hit = match &b {
            Some(b) => compare(b, &v, *aff) == Some(Ordering::Equal),
            None => truth(&v) == Some(true),
        };
        if hit {
            return Ok(Some(then));
        }
    }
    Ok(els)
}

/// A column's canonical text as the SQLite value DMS binds (see the module documentation).
fn column(b: &[u8], kind: ColKind) -> Val<'_> {
    match kind {
        ColKind::Text => Val::Text(Cow::Borrowed(b)),
        ColKind::Int => match parse_i64(b) {
            Some(i) => Val::Int(i),
            None => float_text(b),
        },
        ColKind::Numeric => match parse_i64(b) {
            Some(i) => Val::Int(i),
            None => float_text(b),
        },
        ColKind::Real => float_text(b),
        ColKind::Bool => match b {
            b"t" => Val::Int(1),
            b"f" => Val::Int(0),
            _ => Val::Text(Cow::Borrowed(b)),
        },
        ColKind::DateTime => Val::Text(Cow::Borrowed(b.strip_suffix(b"+00").unwrap_or(b))),
        ColKind::Blob => match b.strip_prefix(b"\\x").and_then(super::lex::decode_hex) {
            Some(v) => Val::Blob(Cow::Owned(v)),
            None => Val::Blob(Cow::Borrowed(b)),
        },
    }
}

/// Decimal digits with an optional `-` that fit i64 (the canonical integer text), else None.
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

/// Float text as REAL: `Infinity` → ±Inf, `NaN` → NULL (SQLite stores no NaN), text that is no
/// number stays TEXT.
fn float_text(b: &[u8]) -> Val<'_> {
    match b {
        b"NaN" => Val::Null,
        b"Infinity" => Val::Real(f64::INFINITY),
        b"-Infinity" => Val::Real(f64::NEG_INFINITY),
        _ => match std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            Some(r) if !r.is_nan() => Val::Real(r),
            _ => Val::Text(Cow::Borrowed(b)),
        },
    }
}

/// A header variable's value (timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`).
fn var<'a>(v: VarKind, vars: &'a Vars<'a>) -> Val<'a> {
    let s = match v {
        VarKind::Operation => vars.operation,
        VarKind::StreamPosition => vars.stream_position,
        VarKind::ChangeSeq => vars.change_seq,
        VarKind::User => vars.user,
        VarKind::Schema => vars.schema,
        VarKind::Table => vars.table,
        VarKind::Timestamp | VarKind::CommitTimestamp => {
            let us = if v == VarKind::Timestamp {
                vars.timestamp_us
            } else {
                vars.commit_timestamp_us
            };
            let mut buf = Vec::with_capacity(26);
            date::push_timestamp(us, &mut buf);
            return Val::Text(Cow::Owned(buf));
        }
    };
    Val::Text(Cow::Borrowed(s.as_bytes()))
}

/// SQLite's boolean reading of a value: NULL → None, numbers → non-zero, text → its numeric
/// prefix is non-zero.
pub(super) fn truth(v: &Val) -> Option<bool> {
    match v {
        Val::Null => None,
        Val::Int(i) => Some(*i != 0),
        Val::Real(r) => Some(*r != 0.0),
        Val::Text(b) | Val::Blob(b) => Some(atof(b).1 != 0.0),
    }
}

/// `sqlite3VdbeIntValue`: reals truncate (saturating), text reads its integer prefix, NULL is 0.
pub(super) fn int_of(v: &Val) -> i64 {
    match v {
        Val::Null => 0,
        Val::Int(i) => *i,
        Val::Real(r) => *r as i64,
        Val::Text(b) | Val::Blob(b) => atoi64(b).1,
    }
}

/// `sqlite3VdbeRealValue`: text reads its numeric prefix, NULL is 0.0.
pub(super) fn real_of(v: &Val) -> f64 {
    match v {
        Val::Null => 0.0,
        Val::Int(i) => *i as f64,
        Val::Real(r) => *r,
        Val::Text(b) | Val::Blob(b) => atof(b).1,
    }
}

/// The operands of an arithmetic operator as numbers (`numericType`).
fn num_of(v: &Val) -> Val<'static> {
    match v {
        Val::Int(i) => Val::Int(*i),
        Val::Real(r) => Val::Real(*r),
        Val::Text(b) | Val::Blob(b) => text_num(b),
        Val::Null => Val::Null,
    }
}

/// An arithmetic or bitwise operator: NULL in → NULL out; integers stay integers unless they
/// overflow (then REAL, as SQLite); division or remainder by zero → NULL; a NaN result → NULL.
pub(super) fn arith(op: BinOp, a: &Val, b: &Val) -> Val<'static> {
    if a.is_null() || b.is_null() {
        return Val::Null;
    }
    match op {
        BinOp::BitAnd => return Val::Int(int_of(a) & int_of(b)),
        BinOp::BitOr => return Val::Int(int_of(a) | int_of(b)),
        BinOp::Shl | BinOp::Shr => return Val::Int(shift(op, int_of(a), int_of(b))),
        _ => {}
    }
    let (x, y) = (num_of(a), num_of(b));
    if let (Val::Int(i), Val::Int(j)) = (&x, &y) {
        let (i, j) = (*i, *j);
        let r = match op {
            BinOp::Add => i.checked_add(j),
            BinOp::Sub => i.checked_sub(j),
            BinOp::Mul => i.checked_mul(j),
            BinOp::Div if j == 0 => return Val::Null,
            BinOp::Div => i.checked_div(j),
            BinOp::Rem if j == 0 => return Val::Null,
            // SQLite turns a divisor of -1 into 1 to dodge MIN % -1; the result is 0 either way.
            _ => Some(i % if j == -1 { 1 } else { j }),
        };
        if let Some(r) = r {
            return Val::Int(r);
        }
    }
    let (rx, ry) = (real_of(&x), real_of(&y));
    let r = match op {
        BinOp::Add => rx + ry,
        BinOp::Sub => rx - ry,
        BinOp::Mul => rx * ry,
        BinOp::Div if ry == 0.0 => return Val::Null,
        BinOp::Div => rx / ry,
        _ => {
            // REAL remainder: both operands as integers, the result a REAL.
            let (ia, ib) = (int_of(a), int_of(b));
            if ib == 0 {
                return Val::Null;
            }
            (ia % if ib == -1 { 1 } else { ib }) as f64
        }
    };
    if r.is_nan() {
        Val::Null
    } else {
        Val::Real(r)
    }
}

/// `<<`/`>>` as SQLite: a negative count shifts the other way, 64 or more gives 0 (or -1 for a
/// right shift of a negative number).
fn shift(op: BinOp, a: i64, b: i64) -> i64 {
    let (left, n) = match (op == BinOp::Shl, b < 0) {
        (l, false) => (l, b),
        (l, true) => (!l, if b > -64 { -b } else { 64 }),
    };
    if n >= 64 {
        return if a >= 0 || left { 0 } else { -1 };
    }
    if left {
        ((a as u64) << n) as i64
    } else {
        a >> n
    }
}

/// Compares two values as SQLite's comparison operators do, after the conversions implied by
/// the comparison affinity `aff`. None when either is NULL.
pub(super) fn compare(a: &Val, b: &Val, aff: Aff) -> Option<Ordering> {
    if a.is_null() || b.is_null() {
        return None;
    }
    let is_text = |v: &Val| matches!(v, Val::Text(_));
    let is_num = |v: &Val| matches!(v, Val::Int(_) | Val::Real(_));
    if aff.is_numeric() && (is_text(a) || is_text(b)) {
        let conv = |v: &Val| match v {
            Val::Text(t) => numeric_affinity(t),
            _ => None,
        };
        let (ca, cb) = (conv(a), conv(b));
        return Some(order(ca.as_ref().unwrap_or(a), cb.as_ref().unwrap_or(b)));
    }
    if aff == Aff::Text && (is_text(a) || is_text(b)) && (is_num(a) || is_num(b)) {
        let conv = |v: &Val| is_num(v).then(|| Val::Text(Cow::Owned(text_bytes(v))));
        let (ca, cb) = (conv(a), conv(b));
        return Some(order(ca.as_ref().unwrap_or(a), cb.as_ref().unwrap_or(b)));
    }
    Some(order(a, b))
}

/// The text form of a value as a new buffer.
fn text_bytes(v: &Val) -> Vec<u8> {
    let mut buf = Vec::new();
    push_text(v, &mut buf);
    buf
}

/// `sqlite3MemCompare` with the BINARY collation: NULL < numbers < TEXT < BLOB; numbers by value
/// (an integer and a real compared exactly), TEXT and BLOB bytewise.
pub(super) fn order(a: &Val, b: &Val) -> Ordering {
    let class = |v: &Val| match v {
        Val::Null => 0,
        Val::Int(_) | Val::Real(_) => 1,
        Val::Text(_) => 2,
        Val::Blob(_) => 3,
    };
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Real(x), Val::Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Val::Int(x), Val::Real(y)) => int_float_cmp(*x, *y),
        (Val::Real(x), Val::Int(y)) => int_float_cmp(*y, *x).reverse(),
        (Val::Text(x), Val::Text(y)) | (Val::Blob(x), Val::Blob(y)) => x[..].cmp(&y[..]),
        _ => class(a).cmp(&class(b)),
    }
}

/// `sqlite3IntFloatCompare`: an i64 against an f64, exactly.
fn int_float_cmp(i: i64, r: f64) -> Ordering {
    if r < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    if r >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    let y = r as i64;
    match i.cmp(&y) {
        Ordering::Equal => (i as f64).partial_cmp(&r).unwrap_or(Ordering::Equal),
        o => o,
    }
}

/// `CAST(v AS type)` for the type's affinity (`sqlite3VdbeMemCast`).
pub(super) fn cast(v: Val<'_>, aff: Aff) -> Val<'_> {
    match (aff, v) {
        (_, Val::Null) => Val::Null,
        (Aff::Text, Val::Blob(b)) => Val::Text(b),
        (Aff::Text, Val::Int(i)) => {
            let mut buf = Vec::new();
            push_int(i, &mut buf);
            Val::Text(Cow::Owned(buf))
        }
        (Aff::Text, v @ Val::Real(_)) => Val::Text(Cow::Owned(text_bytes(&v))),
        (Aff::Blob | Aff::None, Val::Text(b)) => Val::Blob(b),
        (Aff::Blob | Aff::None, v @ (Val::Int(_) | Val::Real(_))) => {
            Val::Blob(Cow::Owned(text_bytes(&v)))
        }
        (Aff::Integer, v) => Val::Int(int_of(&v)),
        (Aff::Real, v) => Val::Real(real_of(&v)),
        (Aff::Numeric, Val::Text(b) | Val::Blob(b)) => numerify(&b),
        (_, v) => v,
    }
}
