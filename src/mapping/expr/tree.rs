//! The expression tree the parser builds and the evaluator walks, and SQLite's affinity rules
//! that are decided when compiling.

use super::func::Func;

/// A literal value, owned by the tree.
#[derive(Debug)]
pub(super) enum Lit {
    /// NULL.
    Null,
    /// An integer literal (or TRUE/FALSE).
    Int(i64),
    /// A real literal.
    Real(f64),
    /// A string literal.
    Text(Box<[u8]>),
    /// An `X'..'` literal.
    Blob(Box<[u8]>),
}

/// SQLite's type affinities, for `CAST` and the comparison conversions they imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aff {
    /// No affinity (every operand except a CAST).
    None,
    /// BLOB: no conversion.
    Blob,
    /// TEXT.
    Text,
    /// NUMERIC.
    Numeric,
    /// INTEGER.
    Integer,
    /// REAL.
    Real,
}

impl Aff {
    /// NUMERIC, INTEGER or REAL.
    pub(super) fn is_numeric(self) -> bool {
        matches!(self, Aff::Numeric | Aff::Integer | Aff::Real)
    }
}

/// How a column's canonical text becomes an SQLite value (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColKind {
    /// Integer types.
    Int,
    /// REAL4/REAL8.
    Real,
    /// NUMERIC.
    Numeric,
    /// BOOLEAN (`t`/`f`).
    Bool,
    /// DATE, TIME, strings.
    Text,
    /// DATETIME (`+00` suffix dropped).
    DateTime,
    /// BYTES (`\x` hex).
    Blob,
}

/// A header or metadata variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VarKind {
    /// `$AR_H_OPERATION`.
    Operation,
    /// `$AR_H_STREAM_POSITION`.
    StreamPosition,
    /// `$AR_H_CHANGE_SEQ`.
    ChangeSeq,
    /// `$AR_H_TIMESTAMP`.
    Timestamp,
    /// `$AR_H_COMMIT_TIMESTAMP`.
    CommitTimestamp,
    /// `$AR_H_USER`.
    User,
    /// `$AR_M_SOURCE_SCHEMA`.
    Schema,
    /// `$AR_M_SOURCE_TABLE_NAME`.
    Table,
}

/// Arithmetic and bitwise operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
    /// `&`.
    BitAnd,
    /// `|`.
    BitOr,
    /// `<<`.
    Shl,
    /// `>>`.
    Shr,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    /// `=`, `==`.
    Eq,
    /// `!=`, `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// The expression tree. Operands that compare carry the affinity SQLite would apply.
#[derive(Debug)]
pub(super) enum Node {
    /// A literal.
    Lit(Lit),
    /// Source column by index.
    Col(usize, ColKind),
    /// A header variable.
    Var(VarKind),
    /// Unary `-` (SQLite computes `0 - x`).
    Neg(Box<Node>),
    /// Unary `+`: the value unchanged, without affinity.
    Plus(Box<Node>),
    /// `~`.
    BitNot(Box<Node>),
    /// `NOT`.
    Not(Box<Node>),
    /// Arithmetic or bitwise operator.
    Bin(BinOp, Box<Node>, Box<Node>),
    /// A chain of `||`.
    Concat(Vec<Node>),
    /// Comparison with the comparison affinity.
    Cmp(CmpOp, Aff, Box<Node>, Box<Node>),
    /// `IS` (false) or `IS NOT` (true).
    Is(bool, Aff, Box<Node>, Box<Node>),
    /// `ISNULL` (false) or `NOTNULL` (true).
    IsNull(bool, Box<Node>),
    /// `AND`.
    And(Box<Node>, Box<Node>),
    /// `OR`.
    Or(Box<Node>, Box<Node>),
    /// `[NOT] IN (list)` with the left operand's affinity.
    In(bool, Aff, Box<Node>, Vec<Node>),
    /// `[NOT] BETWEEN`: operand, low, high and the affinities of the two comparisons.
    Between(bool, [Aff; 2], Box<[Node; 3]>),
    /// `CASE [base] WHEN .. THEN .. [ELSE ..] END`; each WHEN carries its `base = when` affinity.
    Case(Option<Box<Node>>, Vec<(Node, Node, Aff)>, Option<Box<Node>>),
    /// `CAST(x AS type)`.
    Cast(Aff, Box<Node>),
    /// A function call.
    Call(Func, Vec<Node>),
}

impl Node {
    /// The affinity SQLite gives this expression: only a CAST has one here (columns are bound
    /// parameters).
    pub(super) fn affinity(&self) -> Aff {
        match self {
            Node::Cast(a, _) => *a,
            _ => Aff::None,
        }
    }
}

/// SQLite's `sqlite3CompareAffinity`: the affinity applied when comparing `l` with `r`.
pub(super) fn compare_aff(l: Aff, r: Aff) -> Aff {
    match (l, r) {
        (Aff::None, r) => r,
        (l, Aff::None) => l,
        (l, r) if l.is_numeric() || r.is_numeric() => Aff::Numeric,
        _ => Aff::Blob,
    }
}

/// SQLite's `sqlite3AffinityType`: the affinity of a CAST type name.
pub(super) fn type_affinity(name: &str) -> Aff {
    let up = name.to_ascii_uppercase();
    if up.contains("INT") {
        Aff::Integer
    } else if up.contains("CHAR") || up.contains("CLOB") || up.contains("TEXT") {
        Aff::Text
    } else if up.contains("BLOB") {
        Aff::Blob
    } else if up.contains("REAL") || up.contains("FLOA") || up.contains("DOUB") {
        Aff::Real
    } else {
        Aff::Numeric
    }
}
