//! Precedence-climbing parser: tokens → [`Node`] tree, with `$name` references resolved to
//! columns or header variables and function arity checked.

use crate::change::{Column, DmsType};

use super::func::{self, Func};
use super::lex::{tokenize, Tok, Token};
use super::tree::{compare_aff, type_affinity, Aff, BinOp, CmpOp, ColKind, Lit, Node, VarKind};

/// Deepest tree accepted. Evaluation recurses once per level, so this bounds its stack use on
/// any thread; SQLite's own limit is 1000, DMS expressions are a few levels deep.
const MAX_DEPTH: u32 = 200;

/// The variables by name.
const VARS: [(&str, VarKind); 8] = [
    ("AR_H_OPERATION", VarKind::Operation),
    ("AR_H_STREAM_POSITION", VarKind::StreamPosition),
    ("AR_H_CHANGE_SEQ", VarKind::ChangeSeq),
    ("AR_H_TIMESTAMP", VarKind::Timestamp),
    ("AR_H_COMMIT_TIMESTAMP", VarKind::CommitTimestamp),
    ("AR_H_USER", VarKind::User),
    ("AR_M_SOURCE_SCHEMA", VarKind::Schema),
    ("AR_M_SOURCE_TABLE_NAME", VarKind::Table),
];

/// The value of a numeric literal's text (`neg`: preceded by unary minus, so that
/// -9223372036854775808 is an integer as in SQLite).
fn number(text: &str, neg: bool) -> Result<Lit, String> {
    if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        let v = u64::from_str_radix(h, 16).unwrap_or(u64::MAX) as i64;
        // SQLite's limits: 16 hex digits, and no negating the one value without a positive.
        if h.len() > 16 || (neg && v == i64::MIN) {
            let sign = if neg { "-" } else { "" };
            return Err(format!("hex literal too big: {sign}{text}"));
        }
        return Ok(Lit::Int(if neg { v.wrapping_neg() } else { v }));
    }
    if text.bytes().all(|c| c.is_ascii_digit()) {
        let full = if neg {
            format!("-{text}")
        } else {
            text.to_string()
        };
        if let Ok(v) = full.parse::<i64>() {
            return Ok(Lit::Int(v));
        }
    }
    let v: f64 = text
        .parse()
        .map_err(|_| format!("malformed number {text}"))?;
    Ok(Lit::Real(if neg { -v } else { v }))
}

/// Parser state.
struct Parser<'s> {
    /// Source text.
    src: &'s str,
    /// Tokens, ending with `End`.
    toks: Vec<Token>,
    /// Index of the next token.
    pos: usize,
    /// The table's columns.
    columns: &'s [Column],
    /// What the expression references so far.
    used: &'s mut Refs,
    /// Current nesting of `prefix` calls: parentheses and prefix operators recurse before any
    /// node exists, so the tree height check alone would come too late to protect the stack.
    depth: u32,
}

/// A parsed subtree and its height (checked against [`MAX_DEPTH`]).
struct P {
    /// The subtree.
    node: Node,
    /// Levels from this node to its deepest leaf.
    h: u32,
}

/// Binding strength of operators, loosest first (SQLite's `parse.y` precedence).
const OR: u8 = 1;
/// `AND`.
const AND: u8 = 2;
/// Prefix `NOT`.
const NOT: u8 = 3;
/// `= == != <> IS IN LIKE GLOB BETWEEN ISNULL NOTNULL`.
const EQ: u8 = 4;
/// `< <= > >=`.
const CMP: u8 = 5;
/// `ESCAPE` (binds the escape operand of LIKE).
const ESCAPE: u8 = 6;
/// `& | << >>`.
const BIT: u8 = 7;
/// `+ -`.
const ADD: u8 = 8;
/// `* / %`.
const MUL: u8 = 9;
/// `||`.
const CONCAT: u8 = 10;

/// What an expression references besides literals.
#[derive(Debug, Default)]
pub(super) struct Refs {
    /// Column indexes, in the order met (repeats included).
    pub(super) columns: Vec<usize>,
    /// `$AR_H_STREAM_POSITION` or `$AR_H_CHANGE_SEQ` (text the caller builds per change).
    pub(super) log_position: bool,
}

/// Parses `src` against the table's `columns`, recording what it references in `used`.
pub(super) fn parse(src: &str, columns: &[Column], used: &mut Refs) -> Result<Node, String> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        columns,
        used,
        depth: 0,
    };
    if p.peek().tok == Tok::End {
        return Err("empty expression".into());
    }
    let e = p.expr(OR)?;
    if p.peek().tok != Tok::End {
        return Err(p.unexpected());
    }
    Ok(e.node)
}

/// Builds a node of height `1 + max(children)`, refusing trees deeper than [`MAX_DEPTH`].
fn mk(node: Node, children: &[u32]) -> Result<P, String> {
    let h = 1 + children.iter().copied().max().unwrap_or(0);
    if h > MAX_DEPTH {
        return Err(format!(
            "expression nested too deeply (more than {MAX_DEPTH} levels)"
        ));
    }
    Ok(P { node, h })
}

impl Parser<'_> {
    /// The next token.
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    /// The token after the next.
    fn peek2(&self) -> &Token {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)]
    }

    /// Source text of a token.
    fn text(&self, t: &Token) -> &str {
        &self.src[t.start..t.end]
    }

    /// True when the next token is the keyword `kw` (any case).
    fn is_kw(&self, kw: &str) -> bool {
        let t = self.peek();
        t.tok == Tok::Ident && self.text(t).eq_ignore_ascii_case(kw)
    }

    /// Consumes the keyword `kw` if it is next.
    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.pos += 1;
        }
        yes
    }

    /// Consumes the punctuation `p` if it is next.
    fn eat(&mut self, p: &str) -> bool {
        let yes = matches!(self.peek().tok, Tok::Punct(q) if q == p);
        if yes {
            self.pos += 1;
        }
        yes
    }

    /// Describes the next token for an error message.
    fn describe(&self) -> String {
        let t = self.peek();
        match t.tok {
            Tok::End => "end of expression".into(),
            _ => format!("'{}'", self.text(t)),
        }
    }

    /// "unexpected X at offset N" for the next token.
    fn unexpected(&self) -> String {
        format!(
            "unexpected {} at offset {}",
            self.describe(),
            self.peek().start
        )
    }

    /// Requires the punctuation `p` next.
    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(format!(
                "expected '{p}' at offset {}, found {}",
                self.peek().start,
                self.describe()
            ))
        }
    }

    /// Requires the keyword `kw` next.
    fn expect_kw(&mut self, kw: &str) -> Result<(), String> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(format!(
                "expected {kw} at offset {}, found {}",
                self.peek().start,
                self.describe()
            ))
        }
    }

    /// An expression whose operators bind at least as tightly as `min`.
    fn expr(&mut self, min: u8) -> Result<P, String> {
        let mut left = self.prefix()?;
        loop {
            let t = self.peek().clone();
            let (prec, op) = match &t.tok {
                Tok::Punct(p) => match *p {
                    "||" => (CONCAT, *p),
                    "*" | "/" | "%" => (MUL, *p),
                    "+" | "-" => (ADD, *p),
                    "&" | "|" | "<<" | ">>" => (BIT, *p),
                    "<" | "<=" | ">" | ">=" => (CMP, *p),
                    "=" | "==" | "!=" | "<>" => (EQ, *p),
                    _ => break,
                },
                Tok::Ident => {
                    let w = self.text(&t).to_ascii_uppercase();
                    match w.as_str() {
                        "OR" => (OR, "OR"),
                        "AND" => (AND, "AND"),
                        "IS" | "ISNULL" | "NOTNULL" | "IN" | "LIKE" | "GLOB" | "BETWEEN" => {
                            (EQ, "")
                        }
                        "NOT" if self.is_postfix_not() => (EQ, ""),
                        // ESCAPE ends a LIKE pattern; the LIKE operator reads it.
                        "ESCAPE" => break,
                        "COLLATE" | "MATCH" | "REGEXP" => {
                            return Err(format!("{w} at offset {} is not supported", t.start))
                        }
                        _ => break,
                    }
                }
                _ => break,
            };
            if prec < min {
                break;
            }
            left = if op.is_empty() {
                self.postfix(left)?
            } else {
                self.pos += 1;
                self.binary(op, left, prec)?
            };
        }
        Ok(left)
    }

    /// True when a `NOT` in operator position starts `NOT NULL/IN/LIKE/GLOB/BETWEEN`.
    fn is_postfix_not(&self) -> bool {
        let t = self.peek2();
        t.tok == Tok::Ident
            && ["NULL", "IN", "LIKE", "GLOB", "BETWEEN"]
                .iter()
                .any(|k| self.text(t).eq_ignore_ascii_case(k))
    }

    /// The right operand of the binary operator `op` and the combined node.
    fn binary(&mut self, op: &str, l: P, prec: u8) -> Result<P, String> {
        let r = self.expr(prec + 1)?;
        if op == "||" {
            // Chains flatten into one node; a flattened operand's parts keep their height.
            let mut parts = Vec::new();
            let mut h = 0;
            for side in [l, r] {
                match side.node {
                    Node::Concat(p) => {
                        parts.extend(p);
                        h = h.max(side.h - 1);
                    }
                    n => {
                        parts.push(n);
                        h = h.max(side.h);
                    }
                }
            }
            return mk(Node::Concat(parts), &[h]);
        }
        let (lb, rb) = (Box::new(l.node), Box::new(r.node));
        let hs = [l.h, r.h];
        let node = match op {
            "OR" => Node::Or(lb, rb),
            "AND" => Node::And(lb, rb),
            "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" => {
                let c = match op {
                    "=" | "==" => CmpOp::Eq,
                    "!=" | "<>" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                Node::Cmp(c, compare_aff(lb.affinity(), rb.affinity()), lb, rb)
            }
            _ => {
                let b = match op {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    "/" => BinOp::Div,
                    "%" => BinOp::Rem,
                    "&" => BinOp::BitAnd,
                    "|" => BinOp::BitOr,
                    "<<" => BinOp::Shl,
                    _ => BinOp::Shr,
                };
                Node::Bin(b, lb, rb)
            }
        };
        mk(node, &hs)
    }

    /// The keyword operators at `=` level: IS, ISNULL, NOTNULL, [NOT] NULL/IN/LIKE/GLOB/BETWEEN.
    fn postfix(&mut self, l: P) -> Result<P, String> {
        let at = self.peek().start;
        if self.eat_kw("ISNULL") {
            return mk(Node::IsNull(false, Box::new(l.node)), &[l.h]);
        }
        if self.eat_kw("NOTNULL") {
            return mk(Node::IsNull(true, Box::new(l.node)), &[l.h]);
        }
        if self.eat_kw("IS") {
            let mut not = self.eat_kw("NOT");
            if self.eat_kw("DISTINCT") {
                self.expect_kw("FROM")?;
                not = !not;
            }
            let r = self.expr(EQ + 1)?;
            let aff = compare_aff(l.node.affinity(), r.node.affinity());
            return mk(
                Node::Is(not, aff, Box::new(l.node), Box::new(r.node)),
                &[l.h, r.h],
            );
        }
        let not = self.eat_kw("NOT");
        if self.eat_kw("NULL") {
            return mk(Node::IsNull(true, Box::new(l.node)), &[l.h]);
        }
        if self.eat_kw("IN") {
            let in_at = self.peek().start;
            if !self.eat("(") {
                return Err(format!(
                    "expected '(' after IN at offset {in_at}: only IN (list) is supported"
                ));
            }
            if self.is_kw("SELECT") {
                return Err(format!(
                    "subquery at offset {} is not supported",
                    self.peek().start
                ));
            }
            let (list, h) = self.list(")")?;
            let aff = l.node.affinity();
            return mk(Node::In(not, aff, Box::new(l.node), list), &[l.h, h]);
        }
        let glob = self.is_kw("GLOB");
        if self.eat_kw("LIKE") || self.eat_kw("GLOB") {
            let pat = self.expr(EQ + 1)?;
            let mut args = vec![pat.node, l.node];
            let mut hs = vec![pat.h, l.h];
            if self.eat_kw("ESCAPE") {
                if glob {
                    return Err(format!(
                        "ESCAPE at offset {at}: GLOB takes no escape character"
                    ));
                }
                let e = self.expr(ESCAPE)?;
                args.push(e.node);
                hs.push(e.h);
            }
            let f = if glob { Func::Glob } else { Func::Like };
            let call = mk(Node::Call(f, args), &hs)?;
            return if not {
                mk(Node::Not(Box::new(call.node)), &[call.h])
            } else {
                Ok(call)
            };
        }
        if self.eat_kw("BETWEEN") {
            let lo = self.expr(CMP)?;
            self.expect_kw("AND")?;
            let hi = self.expr(CMP)?;
            let a = l.node.affinity();
            let affs = [
                compare_aff(a, lo.node.affinity()),
                compare_aff(a, hi.node.affinity()),
            ];
            let hs = [l.h, lo.h, hi.h];
            return mk(
                Node::Between(not, affs, Box::new([l.node, lo.node, hi.node])),
                &hs,
            );
        }
        Err(self.unexpected())
    }

    /// Comma-separated expressions up to the closing `close`; their maximum height.
    fn list(&mut self, close: &str) -> Result<(Vec<Node>, u32), String> {
        let mut items = Vec::new();
        let mut h = 0;
        if self.eat(close) {
            return Ok((items, h));
        }
        loop {
            let e = self.expr(OR)?;
            h = h.max(e.h);
            items.push(e.node);
            if self.eat(close) {
                return Ok((items, h));
            }
            if !self.eat(",") {
                return Err(format!(
                    "expected '{close}' at offset {}, found {}",
                    self.peek().start,
                    self.describe()
                ));
            }
        }
    }

    /// Prefix operators, then a primary expression.
    fn prefix(&mut self) -> Result<P, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "expression nested too deeply (more than {MAX_DEPTH} levels)"
            ));
        }
        let r = self.prefix_inner();
        self.depth -= 1;
        r
    }

    /// [`Self::prefix`] without the depth accounting.
    fn prefix_inner(&mut self) -> Result<P, String> {
        if self.eat_kw("NOT") {
            let e = self.expr(NOT)?;
            return mk(Node::Not(Box::new(e.node)), &[e.h]);
        }
        if self.eat("-") {
            // A negative literal is folded so that -9223372036854775808 stays an INTEGER.
            if self.peek().tok == Tok::Num {
                let t = self.peek().clone();
                self.pos += 1;
                return Ok(P {
                    node: Node::Lit(number(self.text(&t), true)?),
                    h: 1,
                });
            }
            let e = self.prefix()?;
            return mk(Node::Neg(Box::new(e.node)), &[e.h]);
        }
        if self.eat("+") {
            let e = self.prefix()?;
            return mk(Node::Plus(Box::new(e.node)), &[e.h]);
        }
        if self.eat("~") {
            let e = self.prefix()?;
            return mk(Node::BitNot(Box::new(e.node)), &[e.h]);
        }
        self.primary()
    }

    /// Literals, `$name`, parentheses, CASE, CAST and function calls.
    fn primary(&mut self) -> Result<P, String> {
        let t = self.peek().clone();
        let leaf = |node| Ok(P { node, h: 1 });
        match &t.tok {
            Tok::Num => {
                self.pos += 1;
                leaf(Node::Lit(number(self.text(&t), false)?))
            }
            Tok::Str(s) => {
                self.pos += 1;
                leaf(Node::Lit(Lit::Text(s.clone().into())))
            }
            Tok::Blob(s) => {
                self.pos += 1;
                leaf(Node::Lit(Lit::Blob(s.clone().into())))
            }
            Tok::Var => {
                self.pos += 1;
                let src = self.src;
                leaf(self.reference(&src[t.start + 1..t.end], t.start)?)
            }
            Tok::Punct("(") => {
                self.pos += 1;
                if self.is_kw("SELECT") {
                    return Err(format!(
                        "subquery at offset {} is not supported",
                        self.peek().start
                    ));
                }
                let e = self.expr(OR)?;
                if self.peek().tok == Tok::Punct(",") {
                    return Err(format!("row value at offset {} is not supported", t.start));
                }
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident => {
                let word = self.text(&t).to_ascii_uppercase();
                self.pos += 1;
                match word.as_str() {
                    "NULL" => leaf(Node::Lit(Lit::Null)),
                    "TRUE" => leaf(Node::Lit(Lit::Int(1))),
                    "FALSE" => leaf(Node::Lit(Lit::Int(0))),
                    "CURRENT_DATE" => leaf(Node::Call(Func::Date, Vec::new())),
                    "CURRENT_TIME" => leaf(Node::Call(Func::Time, Vec::new())),
                    "CURRENT_TIMESTAMP" => leaf(Node::Call(Func::DateTime, Vec::new())),
                    "CASE" => self.case(),
                    "CAST" => self.cast(),
                    "SELECT" | "EXISTS" | "RAISE" => {
                        Err(format!("{word} at offset {} is not supported", t.start))
                    }
                    _ if self.peek().tok == Tok::Punct("(") => self.call(&t),
                    _ => Err(format!(
                        "unexpected '{}' at offset {} (a column reference needs a leading $)",
                        self.text(&t),
                        t.start
                    )),
                }
            }
            _ => Err(self.unexpected()),
        }
    }

    /// Resolves `$name` (at offset `at`) to a header variable or a column.
    fn reference(&mut self, name: &str, at: usize) -> Result<Node, String> {
        if let Some((_, v)) = VARS.iter().find(|(n, _)| *n == name) {
            if matches!(v, VarKind::StreamPosition | VarKind::ChangeSeq) {
                self.used.log_position = true;
            }
            return Ok(Node::Var(*v));
        }
        if let Some(i) = self.columns.iter().position(|c| c.name == name) {
            self.used.columns.push(i);
            let kind = match self.columns[i].dms_type {
                DmsType::Boolean => ColKind::Bool,
                DmsType::Int1
                | DmsType::Int2
                | DmsType::Int4
                | DmsType::Int8
                | DmsType::UInt1
                | DmsType::UInt2
                | DmsType::UInt4
                | DmsType::UInt8 => ColKind::Int,
                DmsType::Numeric { .. } => ColKind::Numeric,
                DmsType::Real4 | DmsType::Real8 => ColKind::Real,
                DmsType::DateTime => ColKind::DateTime,
                DmsType::Date | DmsType::Time | DmsType::String { .. } => ColKind::Text,
                DmsType::Bytes { .. } => ColKind::Blob,
            };
            return Ok(Node::Col(i, kind));
        }
        if name.starts_with("AR_H_") || name.starts_with("AR_M_") {
            let known: Vec<_> = VARS.iter().map(|(n, _)| format!("${n}")).collect();
            return Err(format!(
                "unknown variable ${name} at offset {at}; supported: {}",
                known.join(", ")
            ));
        }
        let names: Vec<_> = self.columns.iter().map(|c| c.name.as_str()).collect();
        Err(format!(
            "unknown column ${name} at offset {at}; the table has {}",
            if names.is_empty() {
                "no columns".to_string()
            } else {
                names.join(", ")
            }
        ))
    }

    /// `CASE [base] WHEN .. THEN .. [ELSE ..] END` (after `CASE`).
    fn case(&mut self) -> Result<P, String> {
        let mut hs = Vec::new();
        let base = if self.is_kw("WHEN") || self.is_kw("END") {
            None
        } else {
            let b = self.expr(OR)?;
            hs.push(b.h);
            Some(Box::new(b.node))
        };
        let base_aff = base.as_ref().map(|b| b.affinity());
        let mut whens = Vec::new();
        while self.eat_kw("WHEN") {
            let w = self.expr(OR)?;
            self.expect_kw("THEN")?;
            let t = self.expr(OR)?;
            hs.extend([w.h, t.h]);
            let aff = base_aff.map_or(Aff::None, |a| compare_aff(a, w.node.affinity()));
            whens.push((w.node, t.node, aff));
        }
        if whens.is_empty() {
            return Err(format!(
                "expected WHEN at offset {}, found {}",
                self.peek().start,
                self.describe()
            ));
        }
        let els = if self.eat_kw("ELSE") {
            let e = self.expr(OR)?;
            hs.push(e.h);
            Some(Box::new(e.node))
        } else {
            None
        };
        self.expect_kw("END")?;
        mk(Node::Case(base, whens, els), &hs)
    }

    /// `CAST(x AS type-name)` (after `CAST`).
    fn cast(&mut self) -> Result<P, String> {
        self.expect("(")?;
        let e = self.expr(OR)?;
        self.expect_kw("AS")?;
        let mut name = String::new();
        while self.peek().tok == Tok::Ident {
            let t = self.peek().clone();
            self.pos += 1;
            if !name.is_empty() {
                name.push(' ');
            }
            name.push_str(self.text(&t));
        }
        if name.is_empty() {
            return Err(format!(
                "expected a type name at offset {}, found {}",
                self.peek().start,
                self.describe()
            ));
        }
        if self.eat("(") {
            // `VARCHAR(10)`, `DECIMAL(10, 2)`: the sizes do not change the affinity.
            while !self.eat(")") {
                if self.peek().tok == Tok::End {
                    return Err(self.unexpected());
                }
                self.pos += 1;
            }
        }
        self.expect(")")?;
        mk(Node::Cast(type_affinity(&name), Box::new(e.node)), &[e.h])
    }

    /// A function call; `name` is the function name token, `(` is next.
    fn call(&mut self, name: &Token) -> Result<P, String> {
        let text = self.text(name).to_string();
        let (f, min, max) = func::lookup(&text)
            .ok_or_else(|| format!("unknown function {text}() at offset {}", name.start))?;
        self.expect("(")?;
        if self.is_kw("DISTINCT") || self.peek().tok == Tok::Punct("*") {
            return Err(format!(
                "aggregate call {text}(..) at offset {} is not supported",
                name.start
            ));
        }
        let (args, h) = self.list(")")?;
        if args.len() < min || args.len() > max {
            let takes = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("{a} or more"),
                (a, b) if b == a + 1 => format!("{a} or {b}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(format!(
                "wrong number of arguments to function {text}() at offset {}: takes {takes}, given {}",
                name.start,
                args.len()
            ));
        }
        mk(Node::Call(f, args), &[h])
    }
}
