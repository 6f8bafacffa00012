//! Tokenizer: SQLite expression text to tokens with their byte offsets.

/// A token kind; text-bearing kinds are read back from the source by offsets.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A numeric literal.
    Num,
    /// A string literal, unescaped.
    Str(Vec<u8>),
    /// A blob literal, decoded.
    Blob(Vec<u8>),
    /// `$name`.
    Var,
    /// A keyword or function name.
    Ident,
    /// An operator or punctuation.
    Punct(&'static str),
    /// End of input.
    End,
}

/// A token and its byte range in the source.
#[derive(Debug, Clone)]
pub(super) struct Token {
    /// Kind.
    pub(super) tok: Tok,
    /// Offset of the first byte.
    pub(super) start: usize,
    /// Offset past the last byte.
    pub(super) end: usize,
}

/// SQLite's identifier characters (`IdChar`): ASCII letters, digits, `_`, `$` and any non-ASCII byte.
fn id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Operators, longest first so that `<=` wins over `<`.
const PUNCT: [&str; 23] = [
    "||", "<<", ">>", "<=", ">=", "<>", "!=", "==", "->", "=", "<", ">", "+", "-", "*", "/", "%",
    "&", "|", "~", "(", ")", ",",
];

/// Splits `src` into tokens (comments and white space dropped), ending with [`Tok::End`].
pub(super) fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if super::num::is_space(c) {
            i += 1;
            continue;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if b[i..].starts_with(b"/*") {
            i = match src[i + 2..].find("*/") {
                Some(n) => i + 2 + n + 2,
                None => b.len(),
            };
            continue;
        }
        let tok = if c == b'\'' || c == b'"' {
            // A double-quoted name that is no column is a string in SQLite; with no column names
            // in scope here (columns need `$`), it is always one.
            let (text, end) =
                quoted(b, i).ok_or_else(|| format!("unterminated string at offset {start}"))?;
            i = end;
            Tok::Str(text)
        } else if (c == b'x' || c == b'X') && b.get(i + 1) == Some(&b'\'') {
            let (text, end) =
                quoted(b, i + 1).ok_or_else(|| format!("unterminated blob at offset {start}"))?;
            i = end;
            Tok::Blob(decode_hex(&text).ok_or_else(|| {
                format!("malformed blob literal at offset {start}: X'..' needs an even number of hex digits")
            })?)
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i = scan_number(b, i);
            if i < b.len() && id_char(b[i]) {
                let end = i + src[i..].chars().next().map_or(1, char::len_utf8);
                return Err(format!(
                    "malformed number {:?} at offset {start}",
                    &src[start..end]
                ));
            }
            Tok::Num
        } else if c == b'$' {
            i += 1;
            while i < b.len() && id_char(b[i]) {
                i += 1;
            }
            if i == start + 1 {
                return Err(format!("'$' without a name at offset {start}"));
            }
            Tok::Var
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < b.len() && id_char(b[i]) {
                i += 1;
            }
            Tok::Ident
        } else if let Some(p) = PUNCT.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            i += p.len();
            Tok::Punct(p)
        } else if matches!(c, b'?' | b':' | b'@' | b'#') {
            return Err(format!(
                "parameter {:?} at offset {start}: DMS expressions refer to columns as $name",
                c as char
            ));
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(format!("unrecognized character {ch:?} at offset {start}"));
        };
        toks.push(Token { tok, start, end: i });
    }
    toks.push(Token {
        tok: Tok::End,
        start: b.len(),
        end: b.len(),
    });
    Ok(toks)
}

/// The body of the quoted literal opening at `b[i]` (doubled quotes unescaped) and the offset
/// past its closing quote.
fn quoted(b: &[u8], i: usize) -> Option<(Vec<u8>, usize)> {
    let q = b[i];
    let mut out = Vec::new();
    let mut j = i + 1;
    loop {
        let c = *b.get(j)?;
        j += 1;
        if c == q {
            if b.get(j) == Some(&q) {
                j += 1;
            } else {
                return Some((out, j));
            }
        }
        out.push(c);
    }
}

/// Hex digits to bytes; None for an odd count or a non-hex digit.
pub(super) fn decode_hex(h: &[u8]) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    h.chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

/// The end of the numeric literal starting at `b[i]` (decimal, real or `0x` hex).
fn scan_number(b: &[u8], mut i: usize) -> usize {
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        let mut j = i + 2;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        if j > i + 2 {
            return j;
        }
    }
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}
