//! LIKE and GLOB matching: a transcription of SQLite's `patternCompare`, so wildcards, escapes,
//! character classes and ASCII-only case folding behave exactly as in SQLite.

/// The wildcard characters of one matching style.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    /// Matches any sequence (`%` or `*`); 0 when disabled.
    all: u32,
    /// Matches one character (`_` or `?`); 0 when disabled.
    one: u32,
    /// `[` for GLOB's character classes, 0 for LIKE.
    set: u32,
    /// ASCII case-insensitive (LIKE).
    nocase: bool,
}

/// GLOB: `*`, `?`, `[...]`, case-sensitive.
pub(super) const GLOB: Style = Style {
    all: '*' as u32,
    one: '?' as u32,
    set: '[' as u32,
    nocase: false,
};

/// LIKE: `%`, `_`, ASCII case-insensitive.
pub(super) const LIKE: Style = Style {
    all: '%' as u32,
    one: '_' as u32,
    set: 0,
    nocase: true,
};

/// Outcome of a comparison; `NoWildcard` stops the caller's search early, as in SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum M {
    /// Matched.
    Match,
    /// No match here.
    NoMatch,
    /// No match at this or any later start.
    NoWildcard,
}

/// `sqlite3Utf8Read`: the next character of `z` at `*i` (0 at the end), lenient like SQLite's.
pub(super) fn read_char(z: &[u8], i: &mut usize) -> u32 {
    let Some(&c) = z.get(*i) else {
        return 0;
    };
    *i += 1;
    if c < 0xc0 {
        return u32::from(c);
    }
    let mut v = match c {
        0xc0..=0xdf => u32::from(c & 0x1f),
        0xe0..=0xef => u32::from(c & 0x0f),
        0xf0..=0xf7 => u32::from(c & 0x07),
        0xf8..=0xfb => u32::from(c & 0x03),
        0xfc..=0xfd => u32::from(c & 0x01),
        _ => 0,
    };
    while *i < z.len() && z[*i] & 0xc0 == 0x80 {
        v = (v << 6) + u32::from(z[*i] & 0x3f);
        *i += 1;
    }
    if v < 0x80 || (v & 0xFFFF_F800) == 0xD800 || (v & 0xFFFF_FFFE) == 0xFFFE {
        0xFFFD
    } else {
        v
    }
}

/// `SQLITE_SKIP_UTF8`: past one character (a lead byte and its continuation bytes).
pub(super) fn skip_char(z: &[u8], i: &mut usize) {
    let c = z[*i];
    *i += 1;
    if c >= 0xc0 {
        while *i < z.len() && z[*i] & 0xc0 == 0x80 {
            *i += 1;
        }
    }
}

/// ASCII lower case of a character.
fn lower(c: u32) -> u32 {
    if (u32::from(b'A')..=u32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// ASCII upper case of a character.
fn upper(c: u32) -> u32 {
    if (u32::from(b'a')..=u32::from(b'z')).contains(&c) {
        c - 32
    } else {
        c
    }
}

/// True when `s` matches pattern `p` (both already cut at a NUL). `esc` is LIKE's escape
/// character; an escape equal to `%` or `_` disables that wildcard, as in SQLite.
pub(super) fn matches(p: &[u8], s: &[u8], style: Style, esc: Option<u32>) -> bool {
    let mut st = style;
    let other = match esc {
        Some(e) => {
            if e == st.all {
                st.all = 0;
            }
            if e == st.one {
                st.one = 0;
            }
            e
        }
        None => st.set,
    };
    compare(p, s, &st, other) == M::Match
}

/// `patternCompare`. `other` is the escape character (LIKE) or `[` (GLOB).
fn compare(p: &[u8], s: &[u8], st: &Style, other: u32) -> M {
    let (mut pi, mut si) = (0, 0);
    let mut escaped_at = None;
    loop {
        let mut c = read_char(p, &mut pi);
        if c == 0 {
            break;
        }
        if c == st.all {
            // Skip further wildcards; each `one` consumes a character of the input.
            loop {
                c = read_char(p, &mut pi);
                if c == st.all {
                    continue;
                }
                if c == st.one && st.one != 0 {
                    if read_char(s, &mut si) == 0 {
                        return M::NoWildcard;
                    }
                    continue;
                }
                break;
            }
            if c == 0 {
                return M::Match;
            }
            if c == other {
                if st.set == 0 {
                    c = read_char(p, &mut pi);
                    if c == 0 {
                        return M::NoWildcard;
                    }
                } else {
                    // A class right after `*`: try it at every position.
                    let rest = &p[pi - 1..];
                    while si < s.len() {
                        let r = compare(rest, &s[si..], st, other);
                        if r != M::NoMatch {
                            return r;
                        }
                        skip_char(s, &mut si);
                    }
                    return M::NoWildcard;
                }
            }
            if c < 0x80 {
                let (c1, c2) = if st.nocase {
                    (upper(c), lower(c))
                } else {
                    (c, c)
                };
                while let Some(off) = s[si..]
                    .iter()
                    .position(|&b| u32::from(b) == c1 || u32::from(b) == c2)
                {
                    si += off + 1;
                    let r = compare(&p[pi..], &s[si..], st, other);
                    if r != M::NoMatch {
                        return r;
                    }
                }
            } else {
                loop {
                    let c2 = read_char(s, &mut si);
                    if c2 == 0 {
                        break;
                    }
                    if c2 != c {
                        continue;
                    }
                    let r = compare(&p[pi..], &s[si..], st, other);
                    if r != M::NoMatch {
                        return r;
                    }
                }
            }
            return M::NoWildcard;
        }
        if c == other {
            if st.set == 0 {
                c = read_char(p, &mut pi);
                if c == 0 {
                    return M::NoMatch;
                }
                escaped_at = Some(pi);
            } else {
                if !class(p, &mut pi, read_char(s, &mut si)) {
                    return M::NoMatch;
                }
                continue;
            }
        }
        let c2 = read_char(s, &mut si);
        if c == c2 {
            continue;
        }
        if st.nocase && c < 0x80 && c2 < 0x80 && lower(c) == lower(c2) {
            continue;
        }
        if c == st.one && escaped_at != Some(pi) && c2 != 0 {
            continue;
        }
        return M::NoMatch;
    }
    if si >= s.len() {
        M::Match
    } else {
        M::NoMatch
    }
}

/// A GLOB class `[...]` (after the `[`, at `*pi`) against the character `c` (0: end of input).
fn class(p: &[u8], pi: &mut usize, c: u32) -> bool {
    if c == 0 {
        return false;
    }
    let (mut prior, mut seen, mut invert) = (0, false, false);
    let mut c2 = read_char(p, pi);
    if c2 == u32::from(b'^') {
        invert = true;
        c2 = read_char(p, pi);
    }
    if c2 == u32::from(b']') {
        seen = c == u32::from(b']');
        c2 = read_char(p, pi);
    }
    while c2 != 0 && c2 != u32::from(b']') {
        if c2 == u32::from(b'-') && *pi < p.len() && p[*pi] != b']' && prior > 0 {
            c2 = read_char(p, pi);
            if c >= prior && c <= c2 {
                seen = true;
            }
            prior = 0;
        } else {
            if c == c2 {
                seen = true;
            }
            prior = c2;
        }
        c2 = read_char(p, pi);
    }
    c2 != 0 && seen != invert
}
