//! Scalar functions: SQLite's core functions as `func.c` defines them, the date functions, and
//! the DMS additions `hash_sha256`, `replaceChars` and `operation_indicator`.

use std::borrow::Cow;
use std::cell::Cell;

use super::date::{self, DateFn};
use super::eval::{eval, int_of, order, real_of, truth, Cx};
use super::num::{atof, push_float, FloatSpec};
use super::pattern::{self, read_char};
use super::printf::{printf, MAX_LENGTH};
use super::strings::{change_case, char_count, instr, replace, replace_chars, substr, trim};
use super::tree::Node;
use super::{push_text, sha256, until_nul, Val};

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    /// `lower(X)`.
    Lower,
    /// `upper(X)`.
    Upper,
    /// `length(X)`.
    Length,
    /// `ltrim(X[,Y])`.
    Ltrim,
    /// `rtrim(X[,Y])`.
    Rtrim,
    /// `trim(X[,Y])`.
    Trim,
    /// `replace(X,Y,Z)`.
    Replace,
    /// `substr(X,Y[,Z])`, `substring`.
    Substr,
    /// `instr(X,Y)`.
    Instr,
    /// `abs(X)`.
    Abs,
    /// `round(X[,Y])`.
    Round,
    /// `max(X,Y,...)`.
    Max,
    /// `min(X,Y,...)`.
    Min,
    /// `coalesce(X,Y,...)`, `ifnull(X,Y)`.
    Coalesce,
    /// `nullif(X,Y)`.
    Nullif,
    /// `iif(X,Y,Z)`.
    Iif,
    /// `typeof(X)`.
    Typeof,
    /// `hex(X)`.
    Hex,
    /// `quote(X)`.
    Quote,
    /// `char(X,...)`.
    Char,
    /// `unicode(X)`.
    Unicode,
    /// `printf(FORMAT,...)`, `format`.
    Printf,
    /// `like(P,S[,E])` and the LIKE operator.
    Like,
    /// `glob(P,S)` and the GLOB operator.
    Glob,
    /// `random()`.
    Random,
    /// `randomblob(N)`.
    RandomBlob,
    /// `zeroblob(N)`.
    ZeroBlob,
    /// `date(...)`.
    Date,
    /// `time(...)`.
    Time,
    /// `datetime(...)`.
    DateTime,
    /// `julianday(...)`.
    JulianDay,
    /// `unixepoch(...)`.
    UnixEpoch,
    /// `strftime(FORMAT,...)`.
    Strftime,
    /// DMS `hash_sha256(X)`.
    HashSha256,
    /// DMS `replaceChars(X,Y,Z)`.
    ReplaceChars,
    /// DMS `operation_indicator(D,U,I)`.
    OperationIndicator,
}

/// Any number of arguments.
const MANY: usize = usize::MAX;

/// Name (lower case), function, least and most arguments.
const FUNCS: [(&str, Func, usize, usize); 39] = [
    ("lower", Func::Lower, 1, 1),
    ("upper", Func::Upper, 1, 1),
    ("length", Func::Length, 1, 1),
    ("ltrim", Func::Ltrim, 1, 2),
    ("rtrim", Func::Rtrim, 1, 2),
    ("trim", Func::Trim, 1, 2),
    ("replace", Func::Replace, 3, 3),
    ("substr", Func::Substr, 2, 3),
    ("substring", Func::Substr, 2, 3),
    ("instr", Func::Instr, 2, 2),
    ("abs", Func::Abs, 1, 1),
    ("round", Func::Round, 1, 2),
    // One argument would be SQLite's aggregate max()/min(), which has no meaning per row.
    ("max", Func::Max, 2, MANY),
    ("min", Func::Min, 2, MANY),
    ("coalesce", Func::Coalesce, 2, MANY),
    ("ifnull", Func::Coalesce, 2, 2),
    ("nullif", Func::Nullif, 2, 2),
    ("iif", Func::Iif, 3, 3),
    ("typeof", Func::Typeof, 1, 1),
    ("hex", Func::Hex, 1, 1),
    ("quote", Func::Quote, 1, 1),
    ("char", Func::Char, 0, MANY),
    ("unicode", Func::Unicode, 1, 1),
    ("printf", Func::Printf, 0, MANY),
    ("format", Func::Printf, 0, MANY),
    ("like", Func::Like, 2, 3),
    ("glob", Func::Glob, 2, 2),
    ("random", Func::Random, 0, 0),
    ("randomblob", Func::RandomBlob, 1, 1),
    ("zeroblob", Func::ZeroBlob, 1, 1),
    ("date", Func::Date, 0, MANY),
    ("time", Func::Time, 0, MANY),
    ("datetime", Func::DateTime, 0, MANY),
    ("julianday", Func::JulianDay, 0, MANY),
    ("unixepoch", Func::UnixEpoch, 0, MANY),
    ("strftime", Func::Strftime, 0, MANY),
    ("hash_sha256", Func::HashSha256, 1, 1),
    ("replacechars", Func::ReplaceChars, 3, 3),
    ("operation_indicator", Func::OperationIndicator, 3, 3),
];

/// The function called `name` (any case) and its least and most argument counts.
pub(super) fn lookup(name: &str) -> Option<(Func, usize, usize)> {
    FUNCS
        .iter()
        .find(|(n, ..)| n.eq_ignore_ascii_case(name))
        .map(|&(_, f, min, max)| (f, min, max))
}

/// Evaluates `f(args)`. Arity was checked when compiling.
pub(super) fn call<'a>(f: Func, args: &'a [Node], cx: &Cx<'a>) -> Result<Val<'a>, String> {
    let arg = |i: usize| eval(&args[i], cx);
    // Functions that evaluate only the arguments they need.
    match f {
        Func::Coalesce => {
            for a in args {
                let v = eval(a, cx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            return Ok(Val::Null);
        }
        Func::Iif => return arg(if truth(&arg(0)?) == Some(true) { 1 } else { 2 }),
        Func::OperationIndicator => {
            return arg(match cx.vars.operation {
                "DELETE" => 0,
                "UPDATE" => 1,
                _ => 2,
            })
        }
        _ => {}
    }
    Ok(match f {
        Func::Lower | Func::Upper => match arg(0)?.into_text() {
            None => Val::Null,
            Some(t) => Val::Text(change_case(t, f == Func::Upper)),
        },
        Func::Length => match arg(0)? {
            Val::Null => Val::Null,
            Val::Text(t) => Val::Int(char_count(until_nul(&t)) as i64),
            Val::Blob(b) => Val::Int(b.len() as i64),
            v => Val::Int(v.as_text().map_or(0, |t| t.len()) as i64),
        },
        Func::Ltrim | Func::Rtrim | Func::Trim => {
            let Some(x) = arg(0)?.into_text() else {
                return Ok(Val::Null);
            };
            let set = if args.len() == 2 {
                match arg(1)?.into_text() {
                    None => return Ok(Val::Null),
                    Some(s) => s,
                }
            } else {
                Cow::Borrowed(&b" "[..])
            };
            trim(x, &set, f != Func::Rtrim, f != Func::Ltrim)
        }
        Func::Replace => {
            let x = arg(0)?;
            if x.is_null() {
                return Ok(Val::Null);
            }
            let Some(pat) = arg(1)?.into_text() else {
                return Ok(Val::Null);
            };
            if pat.is_empty() {
                return Ok(x);
            }
            let Some(rep) = arg(2)?.into_text() else {
                return Ok(Val::Null);
            };
            let x = x.into_text().unwrap_or_default();
            Val::Text(Cow::Owned(replace(&x, &pat, &rep)))
        }
        Func::Substr => substr(
            arg(0)?,
            &arg(1)?,
            if args.len() == 3 { Some(arg(2)?) } else { None },
        ),
        Func::Instr => instr(&arg(0)?, &arg(1)?),
        Func::Abs => match arg(0)? {
            Val::Null => Val::Null,
            Val::Int(i) => Val::Int(i.checked_abs().ok_or("integer overflow")?),
            v => Val::Real(real_of(&v).abs()),
        },
        Func::Round => {
            let x = arg(0)?;
            let n = if args.len() == 2 {
                match arg(1)? {
                    Val::Null => return Ok(Val::Null),
                    v => (int_of(&v) as i32).clamp(0, 30),
                }
            } else {
                0
            };
            if x.is_null() {
                return Ok(Val::Null);
            }
            Val::Real(round(real_of(&x), n as usize))
        }
        Func::Max | Func::Min => {
            let mut best = arg(0)?;
            if best.is_null() {
                return Ok(Val::Null);
            }
            for i in 1..args.len() {
                let v = arg(i)?;
                if v.is_null() {
                    return Ok(Val::Null);
                }
                let c = order(&best, &v);
                // Ties go to the later argument for min() and stay for max(), as in SQLite.
                if (f == Func::Max && c.is_lt()) || (f == Func::Min && c.is_ge()) {
                    best = v;
                }
            }
            best
        }
        Func::Nullif => {
            let x = arg(0)?;
            let y = arg(1)?;
            if x.is_null() || y.is_null() || order(&x, &y).is_ne() {
                x
            } else {
                Val::Null
            }
        }
        Func::Typeof => Val::Text(Cow::Borrowed(arg(0)?.type_name().as_bytes())),
        Func::Hex => {
            let v = arg(0)?;
            let t = v.as_text().unwrap_or_default();
            let mut out = Vec::with_capacity(t.len() * 2);
            for &c in t.iter() {
                out.extend_from_slice(&[hex_digit(c >> 4), hex_digit(c & 15)]);
            }
            Val::Text(Cow::Owned(out))
        }
        Func::Quote => Val::Text(Cow::Owned(quote(&arg(0)?))),
        Func::Char => {
            let mut out = Vec::new();
            for i in 0..args.len() {
                let c = int_of(&arg(i)?);
                push_utf8(
                    if (0..=0x10ffff).contains(&c) {
                        c as u32
                    } else {
                        0xfffd
                    },
                    &mut out,
                );
            }
            Val::Text(Cow::Owned(out))
        }
        Func::Unicode => match arg(0)?.as_text() {
            Some(t) if !t.is_empty() && t[0] != 0 => Val::Int(i64::from(read_char(&t, &mut 0))),
            _ => Val::Null,
        },
        Func::Printf => {
            let vals = args
                .iter()
                .map(|a| eval(a, cx))
                .collect::<Result<Vec<_>, _>>()?;
            let Some(fmt) = vals.first().and_then(Val::as_text) else {
                return Ok(Val::Null);
            };
            let mut out = Vec::new();
            if !printf(&fmt, &vals[1..], &mut out)? {
                return Ok(Val::Null);
            }
            Val::Text(Cow::Owned(out))
        }
        Func::Like | Func::Glob => {
            let p = arg(0)?;
            let s = arg(1)?;
            let esc = if args.len() == 3 {
                let Some(e) = arg(2)?.into_text() else {
                    return Ok(Val::Null);
                };
                let e = until_nul(&e);
                if char_count(e) != 1 {
                    return Err("ESCAPE expression must be a single character".into());
                }
                Some(read_char(e, &mut 0))
            } else {
                None
            };
            let (Some(p), Some(s)) = (p.as_text(), s.as_text()) else {
                return Ok(Val::Null);
            };
            let (p, s) = (until_nul(&p), until_nul(&s));
            // SQLite refuses patterns over 50000 bytes; matching recurses once per wildcard, so
            // a cap on wildcards also keeps the stack bounded on any thread.
            let wild: &[u8] = if f == Func::Glob { b"*[" } else { b"%" };
            let wildcards = p.iter().filter(|c| wild.contains(c)).count();
            if p.len() > 50_000 || wildcards > 1000 {
                return Err("LIKE or GLOB pattern too complex".into());
            }
            let style = if f == Func::Glob {
                pattern::GLOB
            } else {
                pattern::LIKE
            };
            Val::Int(i64::from(pattern::matches(p, s, style, esc)))
        }
        Func::Random => Val::Int(random()),
        Func::RandomBlob => {
            let n = blob_len(int_of(&arg(0)?).max(1))?;
            let mut out = Vec::with_capacity(n + 8);
            while out.len() < n {
                out.extend_from_slice(&random().to_le_bytes());
            }
            out.truncate(n);
            Val::Blob(Cow::Owned(out))
        }
        Func::ZeroBlob => Val::Blob(Cow::Owned(vec![0; blob_len(int_of(&arg(0)?).max(0))?])),
        Func::Date | Func::Time | Func::DateTime | Func::JulianDay | Func::UnixEpoch => {
            let vals = args
                .iter()
                .map(|a| eval(a, cx))
                .collect::<Result<Vec<_>, _>>()?;
            let df = match f {
                Func::Date => DateFn::Date,
                Func::Time => DateFn::Time,
                Func::DateTime => DateFn::DateTime,
                Func::JulianDay => DateFn::JulianDay,
                _ => DateFn::UnixEpoch,
            };
            date::call(df, &vals)
        }
        Func::Strftime => {
            let vals = args
                .iter()
                .map(|a| eval(a, cx))
                .collect::<Result<Vec<_>, _>>()?;
            date::strftime(&vals)
        }
        Func::HashSha256 => match arg(0)?.as_text() {
            None => Val::Null,
            Some(t) => {
                let mut out = Vec::with_capacity(64);
                for c in sha256::digest(&t) {
                    out.extend_from_slice(&[
                        hex_digit(c >> 4).to_ascii_lowercase(),
                        hex_digit(c & 15).to_ascii_lowercase(),
                    ]);
                }
                Val::Text(Cow::Owned(out))
            }
        },
        Func::ReplaceChars => {
            let (Some(x), Some(y), Some(z)) = (
                arg(0)?.into_text(),
                arg(1)?.into_text(),
                arg(2)?.into_text(),
            ) else {
                return Ok(Val::Null);
            };
            Val::Text(Cow::Owned(replace_chars(&x, &y, &z)))
        }
        Func::Coalesce | Func::Iif | Func::OperationIndicator => unreachable!("handled above"),
    })
}

/// `round(r, n)`: half away from zero, via SQLite's own `%.*f` for n > 0.
fn round(r: f64, n: usize) -> f64 {
    if !(-4_503_599_627_370_496.0..=4_503_599_627_370_496.0).contains(&r) {
        return r;
    }
    if n == 0 {
        return ((r + if r < 0.0 { -0.5 } else { 0.5 }) as i64) as f64;
    }
    let spec = FloatSpec {
        conv: b'f',
        precision: Some(n),
        alt: false,
        bang: true,
        sign: None,
    };
    let mut buf = Vec::new();
    push_float(r, spec, &mut buf);
    atof(&buf).1
}

/// An upper-case hex digit.
fn hex_digit(n: u8) -> u8 {
    b"0123456789ABCDEF"[usize::from(n)]
}

/// `quote(X)`: an SQL literal for the value.
fn quote(v: &Val) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Val::Null => out.extend_from_slice(b"NULL"),
        Val::Int(_) => push_text(v, &mut out),
        Val::Real(r) => {
            // 15 significant digits when they read back as the same value, else 20.
            let mut spec = FloatSpec {
                conv: b'g',
                precision: Some(15),
                alt: false,
                bang: true,
                sign: None,
            };
            push_float(*r, spec, &mut out);
            if atof(&out).1 != *r {
                out.clear();
                spec.conv = b'e';
                spec.precision = Some(20);
                push_float(*r, spec, &mut out);
            }
        }
        Val::Text(t) => {
            out.push(b'\'');
            for &c in until_nul(t) {
                out.push(c);
                if c == b'\'' {
                    out.push(c);
                }
            }
            out.push(b'\'');
        }
        Val::Blob(b) => {
            out.extend_from_slice(b"X'");
            for &c in b.iter() {
                out.extend_from_slice(&[hex_digit(c >> 4), hex_digit(c & 15)]);
            }
            out.push(b'\'');
        }
    }
    out
}

/// Appends code point `c` as UTF-8 the way SQLite's `char()` does (surrogates included).
fn push_utf8(c: u32, out: &mut Vec<u8>) {
    if c < 0x80 {
        out.push(c as u8);
    } else if c < 0x800 {
        out.extend_from_slice(&[0xc0 | (c >> 6) as u8, 0x80 | (c & 0x3f) as u8]);
    } else if c < 0x10000 {
        out.extend_from_slice(&[
            0xe0 | (c >> 12) as u8,
            0x80 | ((c >> 6) & 0x3f) as u8,
            0x80 | (c & 0x3f) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xf0 | (c >> 18) as u8,
            0x80 | ((c >> 12) & 0x3f) as u8,
            0x80 | ((c >> 6) & 0x3f) as u8,
            0x80 | (c & 0x3f) as u8,
        ]);
    }
}

/// A blob size within SQLite's length limit.
fn blob_len(n: i64) -> Result<usize, String> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_LENGTH)
        .ok_or_else(|| "string or blob too big".to_string())
}

thread_local! {
    /// State of the per-thread generator behind `random()`, seeded from the process's hash keys.
    static RNG: Cell<u64> = Cell::new({
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1
    });
}

/// A pseudo-random i64 (splitmix64): `random()` needs no cryptographic quality.
fn random() -> i64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as i64
    })
}
