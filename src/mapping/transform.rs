//! DMS `transformation` rules: what a selected table is called in the bucket and which columns
//! its files hold.
//!
//! Locators always name *source* objects (as DMS documents), so every rule is matched against the
//! source schema, table and column names; the rules that match one object apply in ascending
//! rule-id order, each to the name the previous one produced. Name rules are pure functions of
//! names ([`Names`]), which is what lets object-key naming apply them without the catalog.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::{fail, name_like, wildcard_match};
use crate::change::{Column, DmsType};
use crate::error::Result;

/// What a transformation rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Target {
    /// Schema (PostgreSQL) or database (MySQL): the first folder.
    Schema,
    /// Table: the second folder.
    Table,
    /// A column.
    Column,
    /// Oracle tablespaces: nothing on an S3 target depends on them.
    TableTablespace,
    /// As `TableTablespace`.
    IndexTablespace,
}

/// The `rule-action` of a transformation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Action {
    Rename,
    ConvertLowercase,
    ConvertUppercase,
    AddPrefix,
    RemovePrefix,
    ReplacePrefix,
    AddSuffix,
    RemoveSuffix,
    ReplaceSuffix,
    RemoveColumn,
    IncludeColumn,
    AddColumn,
    ChangeDataType,
    DefinePrimaryKey,
    AddBeforeImageColumns,
}

/// The `object-locator` of a transformation rule (source names, DMS wildcards).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Locator {
    /// Schema pattern.
    pub(super) schema_name: String,
    /// Table pattern (absent for schema rules).
    #[serde(default)]
    pub(super) table_name: Option<String>,
    /// Column pattern (column rules).
    #[serde(default)]
    pub(super) column_name: Option<String>,
    /// Columns of one DMS type only (`int8`, `string`, `numeric`, …; case-insensitive).
    #[serde(default)]
    data_type: Option<String>,
    /// Oracle tablespace locators, accepted for tablespace rules.
    #[serde(default)]
    table_tablespace_name: Option<IgnoredAny>,
    /// As `table_tablespace_name`.
    #[serde(default)]
    index_tablespace_name: Option<IgnoredAny>,
}

/// `data-type` of an `add-column` or `change-data-type` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct DataType {
    /// DMS type name (`string`, `int4`, `numeric`, ...).
    #[serde(rename = "type")]
    pub(super) name: String,
    /// Characters or bytes, for strings.
    #[serde(default)]
    pub(super) length: Option<Value>,
    /// Digits, for numeric.
    #[serde(default)]
    pub(super) precision: Option<Value>,
    /// Digits after the point, for numeric.
    #[serde(default)]
    pub(super) scale: Option<Value>,
}

/// `primary-key-def` of a `define-primary-key` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct PrimaryKeyDef {
    /// The key's name on a database target; nothing on S3 depends on it.
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
    /// `primary-key` or `unique-index`: the same to a file target.
    #[serde(default)]
    origin: Option<String>,
    /// The key's source columns, in key order.
    pub(super) columns: Vec<String>,
}

/// Which columns `add-before-image-columns` copies (DMS `column-filter`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BeforeImageFilter {
    /// The key columns (the default).
    #[default]
    PkOnly,
    /// Every column that is not a LOB.
    NonLob,
    /// Every column.
    All,
}

/// `before-image-def` of an `add-before-image-columns` rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct BeforeImageDef {
    /// Put before the column's name (DMS default `BI_`).
    #[serde(default = "default_bi_prefix")]
    pub(super) column_prefix: String,
    /// Put after the column's name (default empty).
    #[serde(default)]
    pub(super) column_suffix: String,
    /// Which columns get a before-image column.
    #[serde(default)]
    pub(super) column_filter: BeforeImageFilter,
}

/// DMS's default before-image column prefix.
pub(super) const DEFAULT_BI_PREFIX: &str = "BI_";

/// Serde default of [`BeforeImageDef::column_prefix`].
fn default_bi_prefix() -> String {
    DEFAULT_BI_PREFIX.to_owned()
}

/// A transformation rule as written (validated by [`parse`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Rule {
    /// Checked by hand before this struct is built, so the error can name the rule.
    #[serde(rename = "rule-type")]
    _rule_type: IgnoredAny,
    /// Kept as text; see [`Rule::id`].
    #[serde(rename = "rule-id")]
    raw_id: Value,
    /// Checked by `TableMappings::parse` for every rule type.
    #[serde(rename = "rule-name")]
    _rule_name: IgnoredAny,
    /// What the rule applies to.
    pub(super) rule_target: Target,
    /// Which objects.
    pub(super) object_locator: Locator,
    /// What it does.
    pub(super) rule_action: Action,
    /// New name, prefix, suffix or added column name.
    #[serde(default)]
    pub(super) value: Option<String>,
    /// The prefix or suffix a replace rule replaces.
    #[serde(default)]
    pub(super) old_value: Option<String>,
    /// Type of an added or retyped column.
    #[serde(default)]
    pub(super) data_type: Option<DataType>,
    /// SQLite expression of an added column.
    #[serde(default)]
    pub(super) expression: Option<String>,
    /// `add-before-image-columns` settings.
    #[serde(default)]
    pub(super) before_image_def: Option<BeforeImageDef>,
    /// `define-primary-key` settings.
    #[serde(default)]
    pub(super) primary_key_def: Option<PrimaryKeyDef>,
    /// Rule order: parsed rule-id, numeric ids before text ones.
    #[serde(skip)]
    pub(super) order: (u64, String),
}

impl Rule {
    /// The rule-id as written.
    pub(super) fn id(&self) -> &str {
        &self.order.1
    }

    /// True if the locator's schema and table patterns cover `schema.table`.
    pub(super) fn covers_table(&self, schema: &str, table: &str) -> bool {
        let loc = &self.object_locator;
        wildcard_match(&loc.schema_name, schema)
            && loc
                .table_name
                .as_deref()
                .is_none_or(|p| wildcard_match(p, table))
    }

    /// True if the locator covers `column` of `schema.table`: its name, and its DMS type when
    /// the locator names one.
    pub(super) fn covers_column(&self, schema: &str, table: &str, column: &Column) -> bool {
        let loc = &self.object_locator;
        self.covers_table(schema, table)
            && loc
                .column_name
                .as_deref()
                .is_none_or(|p| wildcard_match(p, &column.name))
            && loc
                .data_type
                .as_deref()
                .is_none_or(|t| type_name(column.dms_type).eq_ignore_ascii_case(t))
    }

    /// The rule's edit applied to `name`; `None` for actions that are not name edits.
    pub(super) fn edit(&self, name: &str) -> Option<String> {
        apply_edit(
            self.rule_action,
            self.value.as_deref(),
            self.old_value.as_deref(),
            name,
        )
    }
}

/// Builds a transformation rule and checks what serde cannot express; `ctx` names the rule.
pub(super) fn parse(raw: &Value, id: &str, ctx: &str) -> Result<Rule> {
    let fix = format!("correct rule {id}; keys and values are case-sensitive");
    let mut rule = Rule::deserialize(raw).or_else(|e| fail(ctx, e, fix))?;
    rule.order = (
        name_like(&rule.raw_id)
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX),
        id.to_owned(),
    );
    let loc = &rule.object_locator;
    let (target, action) = (rule.rule_target, rule.rule_action);
    use Action::*;
    if matches!(target, Target::TableTablespace | Target::IndexTablespace) {
        return Ok(rule);
    }
    if loc.table_tablespace_name.is_some() || loc.index_tablespace_name.is_some() {
        let msg = "tablespace locators belong to table-tablespace and index-tablespace rules";
        return fail(ctx, msg, "remove them, or set the matching rule-target");
    }
    if let Some(t) = &loc.data_type {
        let probe = DataType {
            name: t.clone(),
            length: None,
            precision: None,
            scale: None,
        };
        if target != Target::Column || dms_type(&probe).is_err() {
            let msg =
                format!("object-locator data-type {t:?} must be a DMS type name, on a column rule");
            return fail(
                ctx,
                msg,
                "use e.g. \"data-type\": \"int8\" with rule-target column",
            );
        }
    }
    let needs_table = target != Target::Schema;
    if needs_table != loc.table_name.is_some() {
        let msg = if needs_table {
            "needs object-locator table-name"
        } else {
            "a schema rule's object-locator has no table-name"
        };
        return fail(
            ctx,
            msg,
            "write the locator DMS documents for this rule-target",
        );
    }
    let column_action = matches!(
        action,
        RemoveColumn | IncludeColumn | AddColumn | ChangeDataType
    );
    let table_action = matches!(action, DefinePrimaryKey | AddBeforeImageColumns);
    let wanted = match (column_action, table_action) {
        (true, _) => Target::Column,
        (_, true) => Target::Table,
        _ => target,
    };
    // add-column is written with rule-target column (or table, in older examples);
    // add-before-image-columns with rule-target column (DMS's example) or table.
    let ok = target == wanted
        || (matches!(action, AddColumn | AddBeforeImageColumns)
            && matches!(target, Target::Table | Target::Column));
    if !ok {
        return fail(
            ctx,
            format!("{action:?} does not apply to rule-target {target:?}"),
            "see the DMS transformation-rule reference for the allowed pairs",
        );
    }
    let whole_table = matches!(action, AddColumn | AddBeforeImageColumns);
    if (target == Target::Column && !whole_table) != loc.column_name.is_some() {
        let msg = if action == AddColumn {
            "add-column names its column in value, not in object-locator column-name"
        } else if action == AddBeforeImageColumns {
            "add-before-image-columns picks its columns by before-image-def column-filter, not by object-locator column-name"
        } else {
            "needs object-locator column-name"
        };
        return fail(ctx, msg, "fix the object-locator");
    }
    match action {
        Rename | AddPrefix | AddSuffix | RemovePrefix | RemoveSuffix
            if rule.value.as_deref().is_none_or(str::is_empty) =>
        {
            fail(ctx, "needs a non-empty value", "add \"value\": \"...\"")
        }
        ReplacePrefix | ReplaceSuffix
            if rule.old_value.as_deref().is_none_or(str::is_empty) || rule.value.is_none() =>
        {
            fail(
                ctx,
                "needs old-value (what to replace) and value (the replacement)",
                "add both",
            )
        }
        AddColumn => {
            if rule.value.as_deref().is_none_or(str::is_empty) {
                return fail(
                    ctx,
                    "add-column needs value: the new column's name",
                    "add \"value\": \"new_column\"",
                );
            }
            if rule
                .expression
                .as_deref()
                .is_none_or(|e| e.trim().is_empty())
            {
                return fail(
                    ctx,
                    "add-column needs an expression",
                    "add e.g. \"expression\": \"$AR_H_STREAM_POSITION\"",
                );
            }
            let Some(dt) = &rule.data_type else {
                return fail(
                    ctx,
                    "add-column needs data-type",
                    "add e.g. \"data-type\": {\"type\": \"string\", \"length\": 50}",
                );
            };
            dms_type(dt).map_err(|m| crate::error::Error::config(format!("{ctx}: {m}"), "use a DMS type name: string, int4, int8, numeric, real8, date, datetime, boolean, ..."))?;
            Ok(rule)
        }
        ChangeDataType => {
            let Some(dt) = &rule.data_type else {
                return fail(
                    ctx,
                    "change-data-type needs data-type",
                    "add e.g. \"data-type\": {\"type\": \"int8\"}",
                );
            };
            dms_type(dt).map_err(|m| crate::error::Error::config(format!("{ctx}: {m}"), "use a DMS type name: string, int4, int8, numeric, real8, date, datetime, boolean, ..."))?;
            Ok(rule)
        }
        DefinePrimaryKey => {
            let Some(def) = &rule.primary_key_def else {
                return fail(
                    ctx,
                    "define-primary-key needs primary-key-def",
                    "add \"primary-key-def\": {\"name\": \"pk\", \"columns\": [\"id\"]}",
                );
            };
            if def.columns.is_empty() || def.columns.iter().any(String::is_empty) {
                return fail(
                    ctx,
                    "primary-key-def.columns must name at least one column",
                    "list the key's source columns",
                );
            }
            if let Some(o) = def
                .origin
                .as_deref()
                .filter(|o| !matches!(*o, "primary-key" | "unique-index"))
            {
                return fail(
                    ctx,
                    format!("primary-key-def.origin {o:?} is neither primary-key nor unique-index"),
                    "use one of them (or leave origin out)",
                );
            }
            Ok(rule)
        }
        AddBeforeImageColumns => {
            let def = rule.before_image_def.get_or_insert_with(|| BeforeImageDef {
                column_prefix: default_bi_prefix(),
                ..BeforeImageDef::default()
            });
            if def.column_prefix.is_empty() && def.column_suffix.is_empty() {
                return fail(ctx, "column-prefix and column-suffix are both empty: the before-image columns would have the names of the columns they copy", "keep DMS's default prefix BI_, or set one");
            }
            Ok(rule)
        }
        _ => Ok(rule),
    }
}

/// DMS's name of a type, as `data-type` locators write it (`int8`, `numeric`, `wstring`, …).
fn type_name(t: DmsType) -> &'static str {
    match t {
        DmsType::Boolean => "boolean",
        DmsType::Int1 => "int1",
        DmsType::Int2 => "int2",
        DmsType::Int4 => "int4",
        DmsType::Int8 => "int8",
        DmsType::UInt1 => "uint1",
        DmsType::UInt2 => "uint2",
        DmsType::UInt4 => "uint4",
        DmsType::UInt8 => "uint8",
        DmsType::Numeric { .. } => "numeric",
        DmsType::Real4 => "real4",
        DmsType::Real8 => "real8",
        DmsType::Date => "date",
        DmsType::Time => "time",
        DmsType::DateTime => "datetime",
        DmsType::String { lob: false } => "wstring",
        DmsType::String { lob: true } => "nclob",
        DmsType::Bytes { lob: false } => "bytes",
        DmsType::Bytes { lob: true } => "blob",
    }
}

/// The DMS type of an added column, from its `data-type`.
pub(super) fn dms_type(dt: &DataType) -> std::result::Result<DmsType, String> {
    let int = |v: &Option<Value>, what: &str, default: u64| -> std::result::Result<u64, String> {
        match v {
            None => Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or(format!("{what} must be a non-negative integer")),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| format!("{what} must be a non-negative integer")),
            Some(_) => Err(format!("{what} must be a non-negative integer")),
        }
    };
    // Only checked: DMS uses the length to size target columns, which files do not have.
    int(&dt.length, "length", 0)?;
    Ok(match dt.name.to_ascii_lowercase().as_str() {
        "string" | "wstring" => DmsType::String { lob: false },
        "clob" | "nclob" => DmsType::String { lob: true },
        "bytes" => DmsType::Bytes { lob: false },
        "blob" => DmsType::Bytes { lob: true },
        "boolean" => DmsType::Boolean,
        "int1" => DmsType::Int1,
        "int2" => DmsType::Int2,
        "int4" => DmsType::Int4,
        "int8" => DmsType::Int8,
        "uint1" => DmsType::UInt1,
        "uint2" => DmsType::UInt2,
        "uint4" => DmsType::UInt4,
        "uint8" => DmsType::UInt8,
        "real4" => DmsType::Real4,
        "real8" => DmsType::Real8,
        "date" => DmsType::Date,
        "time" => DmsType::Time,
        "datetime" => DmsType::DateTime,
        "numeric" => {
            let precision = int(&dt.precision, "precision", 38)?;
            let scale = int(&dt.scale, "scale", 0)?;
            if !(1..=38).contains(&precision) || scale > precision {
                return Err(format!("numeric({precision},{scale}) needs 1 <= precision <= 38 and scale <= precision"));
            }
            DmsType::Numeric {
                precision: precision as u8,
                scale: scale as i8,
            }
        }
        other => return Err(format!("unknown data-type {other:?}")),
    })
}

/// The schema and table name rules, compiled: how a source table's folders are named.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Names {
    /// Schema-target name rules in rule order.
    schema: Vec<NameRule>,
    /// Table-target name rules in rule order.
    table: Vec<NameRule>,
    /// `TargetMetadata.TargetSchema`: the schema folder every table starts from.
    target_schema: Option<String>,
}

/// One name rule, reduced to what naming needs.
#[derive(Debug, Clone, PartialEq)]
struct NameRule {
    schema: String,
    table: Option<String>,
    action: Action,
    value: Option<String>,
    old_value: Option<String>,
}

impl Names {
    /// The name rules among `rules` (already in rule order).
    pub(super) fn new(rules: &[Rule]) -> Names {
        let mut names = Names::default();
        for r in rules {
            if r.edit("").is_none() {
                continue;
            }
            let compact = NameRule {
                schema: r.object_locator.schema_name.clone(),
                table: r.object_locator.table_name.clone(),
                action: r.rule_action,
                value: r.value.clone(),
                old_value: r.old_value.clone(),
            };
            match r.rule_target {
                Target::Schema => names.schema.push(compact),
                Target::Table => names.table.push(compact),
                _ => {}
            }
        }
        names
    }

    /// The folder names of source table `schema.table`: (schema folder, table folder).
    pub(crate) fn folder(&self, schema: &str, table: &str) -> (String, String) {
        let apply = |rules: &[NameRule], start: &str| {
            rules
                .iter()
                .filter(|r| {
                    wildcard_match(&r.schema, schema)
                        && r.table.as_deref().is_none_or(|p| wildcard_match(p, table))
                })
                .fold(start.to_owned(), |name, r| {
                    apply_edit(r.action, r.value.as_deref(), r.old_value.as_deref(), &name)
                        .unwrap_or(name)
                })
        };
        let start = self.target_schema.as_deref().unwrap_or(schema);
        (apply(&self.schema, start), apply(&self.table, table))
    }

    /// Sets `TargetMetadata.TargetSchema`: every table's schema folder starts from `name`
    /// instead of its source schema; schema rules (matched by source names) still apply.
    pub(super) fn set_target_schema(&mut self, name: &str) {
        self.target_schema = Some(name.to_string());
    }

    /// True when no rule renames anything.
    pub(crate) fn is_identity(&self) -> bool {
        self.schema.is_empty() && self.table.is_empty()
    }
}

/// A name edit: `action` with its `value` and `old-value` applied to `name`; `None` for actions
/// that do not edit names.
fn apply_edit(
    action: Action,
    value: Option<&str>,
    old: Option<&str>,
    name: &str,
) -> Option<String> {
    let (value, old) = (value.unwrap_or(""), old.unwrap_or(""));
    Some(match action {
        Action::Rename => value.to_owned(),
        Action::ConvertLowercase => name.to_lowercase(),
        Action::ConvertUppercase => name.to_uppercase(),
        Action::AddPrefix => format!("{value}{name}"),
        Action::AddSuffix => format!("{name}{value}"),
        Action::RemovePrefix => name.strip_prefix(value).unwrap_or(name).to_owned(),
        Action::RemoveSuffix => name.strip_suffix(value).unwrap_or(name).to_owned(),
        Action::ReplacePrefix => match name.strip_prefix(old) {
            Some(rest) => format!("{value}{rest}"),
            None => name.to_owned(),
        },
        Action::ReplaceSuffix => match name.strip_suffix(old) {
            Some(rest) => format!("{rest}{value}"),
            None => name.to_owned(),
        },
        _ => return None,
    })
}
