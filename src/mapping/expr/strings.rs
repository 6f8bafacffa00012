//! The string functions of SQLite's `func.c` that work on characters and bytes (`substr`,
//! `instr`, `trim`, `replace`, case mapping) and DMS's `replaceChars`.

use std::borrow::Cow;

use super::eval::int_of;
use super::pattern::skip_char;
use super::printf::MAX_LENGTH;
use super::{slice_cow, until_nul, Val};

/// ASCII case mapping (SQLite's `upper`/`lower` without ICU), borrowing when nothing changes.
pub(super) fn change_case(t: Cow<'_, [u8]>, up: bool) -> Cow<'_, [u8]> {
    let changes = |c: &u8| {
        if up {
            c.is_ascii_lowercase()
        } else {
            c.is_ascii_uppercase()
        }
    };
    if !t.iter().any(changes) {
        return t;
    }
    let mut v = t.into_owned();
    if up {
        v.make_ascii_uppercase();
    } else {
        v.make_ascii_lowercase();
    }
    Cow::Owned(v)
}

/// Characters in `t` as SQLite counts them: lead bytes (a stray continuation byte counts as one).
pub(super) fn char_count(t: &[u8]) -> usize {
    let mut i = 0;
    let mut n = 0;
    while i < t.len() {
        skip_char(t, &mut i);
        n += 1;
    }
    n
}

/// `trim` family: removes characters of `set` from the start (`front`) and/or end (`back`).
pub(super) fn trim<'a>(x: Cow<'a, [u8]>, set: &[u8], front: bool, back: bool) -> Val<'a> {
    let set = until_nul(set);
    let mut chars: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < set.len() {
        let s = i;
        skip_char(set, &mut i);
        chars.push(&set[s..i]);
    }
    let (mut a, mut b) = (0, x.len());
    if !chars.is_empty() {
        if front {
            while let Some(c) = chars.iter().find(|c| x[a..b].starts_with(c)) {
                a += c.len();
            }
        }
        if back {
            while let Some(c) = chars.iter().find(|c| x[a..b].ends_with(c)) {
                b -= c.len();
            }
        }
    }
    Val::Text(slice_cow(x, a, b))
}

/// Every non-overlapping `pat` in `x` (left to right) replaced by `rep`.
pub(super) fn replace(x: &[u8], pat: &[u8], rep: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len());
    let mut i = 0;
    while i < x.len() {
        if x[i..].starts_with(pat) {
            out.extend_from_slice(rep);
            i += pat.len();
        } else {
            out.push(x[i]);
            i += 1;
        }
    }
    out
}

/// `substr(X, Y, Z)`: 1-based, negative Y counts from the end, negative Z takes the characters
/// before Y; characters for text, bytes for blobs. Y and Z are read as C ints, as SQLite does.
pub(super) fn substr<'a>(x: Val<'a>, y: &Val, z: Option<Val>) -> Val<'a> {
    if y.is_null() || z.as_ref().is_some_and(Val::is_null) {
        return Val::Null;
    }
    let mut p1 = i64::from(int_of(y) as i32);
    let (mut p2, neg2) = match &z {
        Some(z) => {
            let v = i64::from(int_of(z) as i32);
            (v.abs(), v < 0)
        }
        None => (MAX_LENGTH as i64, false),
    };
    let blob = matches!(x, Val::Blob(_));
    let Some(t) = x.into_text() else {
        return Val::Null;
    };
    let len = if blob {
        t.len() as i64
    } else if p1 < 0 {
        char_count(until_nul(&t)) as i64
    } else {
        0
    };
    if p1 < 0 {
        p1 += len;
        if p1 < 0 {
            p2 = (p2 + p1).max(0);
            p1 = 0;
        }
    } else if p1 > 0 {
        p1 -= 1;
    } else if p2 > 0 {
        p2 -= 1;
    }
    if neg2 {
        p1 -= p2;
        if p1 < 0 {
            p2 += p1;
            p1 = 0;
        }
    }
    if blob {
        let start = (p1 as usize).min(t.len());
        let end = start + (p2 as usize).min(t.len() - start);
        return Val::Blob(slice_cow(t, start, end));
    }
    let s = until_nul(&t);
    let mut a = 0;
    while a < s.len() && p1 > 0 {
        skip_char(s, &mut a);
        p1 -= 1;
    }
    let mut b = a;
    while b < s.len() && p2 > 0 {
        skip_char(s, &mut b);
        p2 -= 1;
    }
    Val::Text(slice_cow(t, a, b))
}

/// `instr(X, Y)`: 1-based character (or byte, for two blobs) position of Y in X, 0 if absent.
pub(super) fn instr(x: &Val, y: &Val) -> Val<'static> {
    if x.is_null() || y.is_null() {
        return Val::Null;
    }
    let both_blob = matches!((x, y), (Val::Blob(_), Val::Blob(_)));
    let (h, n) = (
        x.as_text().unwrap_or_default(),
        y.as_text().unwrap_or_default(),
    );
    if n.is_empty() {
        return Val::Int(1);
    }
    let mut pos = 1;
    let mut i = 0;
    while i + n.len() <= h.len() {
        if h[i..].starts_with(&n) {
            return Val::Int(pos);
        }
        pos += 1;
        i += 1;
        while !both_blob && i < h.len() && h[i] & 0xc0 == 0x80 {
            i += 1;
        }
    }
    Val::Int(0)
}

/// DMS `replaceChars(X, Y, Z)`: each character of X found in Y becomes the character at the same
/// position in Z, or is dropped when Z is shorter.
pub(super) fn replace_chars(x: &[u8], y: &[u8], z: &[u8]) -> Vec<u8> {
    let split = |t: &[u8]| {
        let mut v = Vec::new();
        let mut i = 0;
        while i < t.len() {
            let s = i;
            skip_char(t, &mut i);
            v.push((s, i));
        }
        v
    };
    let (ys, zs) = (split(y), split(z));
    let mut out = Vec::with_capacity(x.len());
    for (a, b) in split(x) {
        let c = &x[a..b];
        match ys.iter().position(|&(s, e)| &y[s..e] == c) {
            None => out.extend_from_slice(c),
            Some(k) => {
                if let Some(&(s, e)) = zs.get(k) {
                    out.extend_from_slice(&z[s..e]);
                }
            }
        }
    }
    out
}
