//! What the rules make of one selected table: the rows it keeps (source filters) and the columns
//! its files hold (column transformations), resolved once per table shape.
//!
//! Filters and expressions name *source* columns, as DMS's locators do; renames change only the
//! names written. Added columns follow the source columns, in rule order (reference §3.1).

use std::collections::HashSet;
use std::sync::Arc;

use super::convert::convert;
use super::expr::{Expr, Vars};
use super::filter::{Dialect, RowFilter};
use super::transform::{dms_type, Action, BeforeImageFilter, Rule, Target};
use super::{Action as Selection, Filter, TableMappings};
use crate::change::{Column, DmsType, Op, RowBatch, TableSchema};
use crate::error::{Error, ErrorKind, Result};

/// Where an output column's cells come from.
enum Output {
    /// Source column `.0`, as is.
    Source(usize),
    /// Source column `.0` (of type `.1`) converted by `change-data-type` to type `.2`.
    Converted(usize, DmsType, DmsType),
    /// An `add-column` expression.
    Computed(Box<Expr>, DmsType),
    /// `add-before-image-columns`: output `.0` (a source column) computed from the change's
    /// before-image; NULL for inserts and full-load rows.
    Before(usize),
}

/// One selected table as the rules make it.
pub(crate) struct TableMap {
    /// The table as written: the source's schema and table names (the keys of checkpoints and
    /// statistics; folders are named by [`super::Names`]) with the output columns.
    pub(crate) target: Arc<TableSchema>,
    outputs: Vec<Output>,
    filter: Option<RowFilter>,
    /// Output cells are the source cells in source order (renames change only names).
    same_cells: bool,
    /// An added column reads the change's log position.
    log_position: bool,
    /// Source indexes of the columns that identify a row: a `define-primary-key` rule's, else
    /// the source's key.
    key: Vec<usize>,
    /// Source indexes of the columns whose before-image is written (`add-before-image-columns`).
    before: Vec<usize>,
}

impl std::fmt::Debug for TableMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableMap")
            .field("target", &self.target)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl TableMappings {
    /// Resolves the rules for `source`; errors name the rule at fault.
    pub(crate) fn table_map(&self, source: &Arc<TableSchema>) -> Result<TableMap> {
        let (schema, table) = (source.schema.as_str(), source.table.as_str());
        let filter = self.filter_of(source)?;
        let column_rules: Vec<&Rule> = self
            .transforms
            .iter()
            .filter(|r| r.rule_target == Target::Column && r.covers_table(schema, table))
            .collect();
        let includes = column_rules
            .iter()
            .any(|r| r.rule_action == Action::IncludeColumn);
        let mut columns = Vec::new();
        let mut outputs = Vec::new();
        for (i, c) in source.columns.iter().enumerate() {
            let rules: Vec<&&Rule> = column_rules
                .iter()
                .filter(|r| r.covers_column(schema, table, c))
                .collect();
            let has = |a: Action| rules.iter().any(|r| r.rule_action == a);
            if has(Action::RemoveColumn) || (includes && !has(Action::IncludeColumn)) {
                continue;
            }
            let name = rules
                .iter()
                .fold(c.name.clone(), |name, r| r.edit(&name).unwrap_or(name));
            let retype = rules
                .iter()
                .rev()
                .find(|r| r.rule_action == Action::ChangeDataType);
            let new_type = match retype.and_then(|r| r.data_type.as_ref()) {
                Some(dt) => Some(dms_type(dt).map_err(|m| Error::config(m, "fix data-type"))?),
                None => None,
            };
            match new_type {
                Some(t) if t != c.dms_type => {
                    columns.push(Column {
                        name,
                        dms_type: t,
                        source_type: c.source_type.clone(),
                    });
                    outputs.push(Output::Converted(i, c.dms_type, t));
                }
                _ => {
                    columns.push(Column { name, ..c.clone() });
                    outputs.push(Output::Source(i));
                }
            }
        }
        let same_cells = outputs.len() == source.columns.len()
            && outputs.iter().all(|o| matches!(o, Output::Source(_)));
        for r in column_rules
            .iter()
            .filter(|r| r.rule_action == Action::AddColumn)
        {
            let ctx = format!("table mapping rule {} on {}", r.id(), source.qualified());
            let text = r.expression.as_deref().unwrap_or_default();
            let expr = Expr::compile(text, &source.columns).map_err(|m| {
                Error::config(
                    format!("{ctx}: expression {text:?}: {m}"),
                    "fix the expression (SQLite syntax; columns as $name)",
                )
            })?;
            let dms = r
                .data_type
                .as_ref()
                .map(dms_type)
                .transpose()
                .map_err(|m| Error::config(format!("{ctx}: {m}"), "fix data-type"))?;
            let dms = dms.unwrap_or(DmsType::String { lob: false });
            columns.push(Column {
                name: r.value.clone().unwrap_or_default(),
                dms_type: dms,
                source_type: "expression".into(),
            });
            outputs.push(Output::Computed(Box::new(expr), dms));
        }
        let key = self.key_of(source)?;
        let before = self.before_image_outputs(source, &key, &mut columns, &mut outputs)?;
        let same_cells = same_cells && outputs.len() == source.columns.len();
        if columns.is_empty() {
            return Err(Error::config(
                format!(
                    "table mapping: the column rules leave {} without columns",
                    source.qualified()
                ),
                "keep at least one column (check the include-column and remove-column rules)",
            ));
        }
        let log_position = outputs
            .iter()
            .any(|o| matches!(o, Output::Computed(e, _) if e.reads_log_position()));
        Ok(TableMap {
            log_position,
            target: Arc::new(TableSchema {
                schema: source.schema.clone(),
                table: source.table.clone(),
                columns,
                key: Vec::new(),
            }),
            outputs,
            filter,
            same_cells,
            key,
            before,
        })
    }

    /// The key of `source` (source column indexes, ascending): the last `define-primary-key`
    /// rule covering it, else the source's own.
    pub(crate) fn key_of(&self, source: &TableSchema) -> Result<Vec<usize>> {
        let Some(rule) = self.transforms.iter().rev().find(|r| {
            r.rule_action == Action::DefinePrimaryKey
                && r.covers_table(&source.schema, &source.table)
        }) else {
            return Ok(source.key.clone());
        };
        let names = rule
            .primary_key_def
            .as_ref()
            .map_or(&[][..], |d| &d.columns);
        let mut key = Vec::new();
        for n in names {
            let i = source.columns.iter().position(|c| &c.name == n).ok_or_else(|| {
                Error::config(
                    format!("table mapping rule {}: primary-key-def names column {n:?}, which {} does not have", rule.id(), source.qualified()),
                    "name the key's source columns (case-sensitive)",
                )
            })?;
            key.push(i);
        }
        key.sort_unstable();
        key.dedup();
        Ok(key)
    }

    /// Appends the before-image columns of the `add-before-image-columns` rule covering
    /// `source` (after every other column, in output order) and returns the source columns
    /// they copy.
    fn before_image_outputs(
        &self,
        source: &TableSchema,
        key: &[usize],
        columns: &mut Vec<Column>,
        outputs: &mut Vec<Output>,
    ) -> Result<Vec<usize>> {
        let mut rules = self.transforms.iter().filter(|r| {
            r.rule_action == Action::AddBeforeImageColumns
                && r.covers_table(&source.schema, &source.table)
        });
        let Some(rule) = rules.next() else {
            return Ok(Vec::new());
        };
        if let Some(other) = rules.next() {
            return Err(Error::config(
                format!(
                    "table mapping rules {} and {} both add before-image columns to {}",
                    rule.id(),
                    other.id(),
                    source.qualified()
                ),
                "keep one add-before-image-columns rule per table",
            ));
        }
        let def = rule.before_image_def.clone().unwrap_or_default();
        if def.column_filter == BeforeImageFilter::PkOnly && key.is_empty() {
            return Err(Error::config(
                format!(
                    "table mapping rule {}: column-filter pk-only, but {} has no primary key",
                    rule.id(),
                    source.qualified()
                ),
                "add a define-primary-key rule for the table, or use column-filter all",
            ));
        }
        let mut before = Vec::new();
        for o in 0..outputs.len() {
            let i = match outputs[o] {
                Output::Source(i) | Output::Converted(i, ..) => i,
                _ => continue,
            };
            let wanted = match def.column_filter {
                BeforeImageFilter::PkOnly => key.contains(&i),
                BeforeImageFilter::NonLob => !source.columns[i].dms_type.is_lob(),
                BeforeImageFilter::All => true,
            };
            if wanted {
                let c = columns[o].clone();
                let name = format!("{}{}{}", def.column_prefix, c.name, def.column_suffix);
                columns.push(Column { name, ..c });
                outputs.push(Output::Before(o));
                before.push(i);
            }
        }
        Ok(before)
    }

    /// The source filters of the include/explicit rules selecting `source`, AND-ed.
    fn filter_of(&self, source: &TableSchema) -> Result<Option<RowFilter>> {
        let mut filters: Vec<&Filter> = Vec::new();
        let mut ids = Vec::new();
        for r in &self.rules {
            if r.rule_action != Selection::Exclude
                && r.names_match(&source.schema, &source.table)
                && !r.filters.is_empty()
            {
                filters.extend(r.filters.iter());
                ids.push(r.rule_id());
            }
        }
        if filters.is_empty() {
            return Ok(None);
        }
        RowFilter::compile(&filters, &source.columns)
            .map(Some)
            .map_err(|m| {
                Error::config(
                    format!(
                        "table mapping rule {} on {}: {m}",
                        ids.join(", "),
                        source.qualified()
                    ),
                    "correct the filter's column-name or value",
                )
            })
    }

    /// Checks the rules against the selected tables: every transformation rule matches some
    /// object (a rule that matches nothing is a typo, not a no-op), no two tables share a
    /// folder, and — where files name their columns — each table's output column names are
    /// unique and apart from the reserved ones (the `Op` and timestamp columns the task adds).
    pub(crate) fn check(&self, tables: &[Arc<TableSchema>]) -> Result<()> {
        let reserved: Option<Vec<&str>> = self
            .reserved
            .as_ref()
            .map(|r| r.iter().map(String::as_str).collect());
        for r in &self.transforms {
            let hit = tables.iter().any(|t| match r.rule_target {
                Target::Schema | Target::Table => r.covers_table(&t.schema, &t.table),
                Target::Column
                    if matches!(
                        r.rule_action,
                        Action::AddColumn | Action::AddBeforeImageColumns
                    ) =>
                {
                    r.covers_table(&t.schema, &t.table)
                }
                Target::Column => t
                    .columns
                    .iter()
                    .any(|c| r.covers_column(&t.schema, &t.table, c)),
                Target::TableTablespace | Target::IndexTablespace => true,
            });
            if !hit {
                let what = match r.rule_target {
                    Target::Schema => "schema",
                    Target::Table => "table",
                    _ => "column",
                };
                return Err(Error::config(
                    format!("table mapping rule {}: its object-locator matches no selected {what}", r.id()),
                    "correct the locator's names (they are the source's, case-sensitive), or remove the rule",
                ));
            }
        }
        for (schema, table) in self.parallel.tables() {
            if !tables
                .iter()
                .any(|t| t.schema == schema && t.table == table)
            {
                return Err(Error::config(
                    format!("table mapping parallel-load for {schema}.{table}: no such selected table"),
                    "correct the rule's schema-name and table-name (the source's, case-sensitive), or remove it",
                ));
            }
        }
        for (schema, table) in self.lobs.tables() {
            if !tables
                .iter()
                .any(|t| t.schema == schema && t.table == table)
            {
                return Err(Error::config(
                    format!("table mapping lob-settings for {schema}.{table}: no such selected table"),
                    "correct the rule's schema-name and table-name (the source's, case-sensitive), or remove it",
                ));
            }
        }
        let mut folders = std::collections::HashMap::new();
        for t in tables {
            let folder = self.names.folder(&t.schema, &t.table);
            if let Some(other) = folders.insert(folder.clone(), t.qualified()) {
                return Err(Error::config(
                    format!(
                        "table mapping: {other} and {} would both be written to {}/{}",
                        t.qualified(),
                        folder.0,
                        folder.1
                    ),
                    "change the schema or table rules so each table keeps a folder of its own",
                ));
            }
            self.tags.check(&t.schema, &t.table)?;
            let map = self.table_map(t)?;
            let Some(reserved) = &reserved else {
                continue;
            };
            let mut seen: HashSet<&str> = reserved.iter().copied().collect();
            for c in &map.target.columns {
                if !seen.insert(c.name.as_str()) {
                    let clash = if reserved.contains(&c.name.as_str()) {
                        "the column the task adds"
                    } else {
                        "another column"
                    };
                    return Err(Error::config(
                        format!("{}: output column {:?} has the name of {clash}; readers such as pyarrow refuse files with two columns of one name", t.qualified(), c.name),
                        format!("rename it with a transformation rule, e.g. {{\"rule-type\": \"transformation\", \"rule-target\": \"column\", \"object-locator\": {{\"schema-name\": \"{}\", \"table-name\": \"{}\", \"column-name\": \"{}\"}}, \"rule-action\": \"rename\", \"value\": \"src_{}\"}} (or change TimestampColumnName)", t.schema, t.table, c.name, c.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl TableMap {
    /// The full load's ` WHERE …` for the table's source filter ("" without one); `quote`
    /// quotes an identifier in `dialect`.
    pub(crate) fn where_clause(&self, dialect: Dialect, quote: &dyn Fn(&str) -> String) -> String {
        self.filter
            .as_ref()
            .map(|f| format!(" WHERE {}", f.sql(dialect, quote)))
            .unwrap_or_default()
    }

    /// The table's source filter, if any.
    pub(crate) fn filter(&self) -> Option<&RowFilter> {
        self.filter.as_ref()
    }

    /// True when rows must be rebuilt by [`project`](Self::project) (columns removed or added).
    pub(crate) fn projects(&self) -> bool {
        !self.same_cells
    }

    /// True when an added column reads the change's log position (see
    /// [`Expr::reads_log_position`]).
    pub(crate) fn reads_log_position(&self) -> bool {
        self.log_position
    }

    /// True when the rules change nothing about the rows (names may still change).
    pub(crate) fn passes_rows(&self) -> bool {
        self.same_cells && self.filter.is_none()
    }

    /// Source indexes of the key columns (see [`TableMappings::table_map`]).
    pub(crate) fn key(&self) -> &[usize] {
        &self.key
    }

    /// Source indexes of the columns whose before-image the files hold (empty without an
    /// `add-before-image-columns` rule).
    pub(crate) fn before_columns(&self) -> &[usize] {
        &self.before
    }

    /// Appends one output row's cells for the source row `cell` to `out` (the caller ends the
    /// row); `before` is the change's before-image, when it has one. A value an expression or a
    /// conversion cannot compute is a data error naming the column and the value (the caller
    /// names the table, and drops the partial row: the CDC writer's fill does, a full-load
    /// batch is dropped whole).
    pub(crate) fn project<'a>(
        &self,
        cell: &dyn Fn(usize) -> Option<&'a [u8]>,
        before: Option<&dyn Fn(usize) -> Option<&'a [u8]>>,
        vars: &Vars,
        out: &mut RowBatch,
    ) -> Result<()> {
        for (o, column) in self.outputs.iter().zip(&self.target.columns) {
            match (o, before) {
                (Output::Before(of), Some(before)) => {
                    self.output(&self.outputs[*of], column, before, vars, out)?
                }
                (Output::Before(_), None) => out.push_null(),
                _ => self.output(o, column, cell, vars, out)?,
            }
        }
        Ok(())
    }

    /// Appends the cell of output `o` (named `column`) for the source row `cell`.
    fn output<'a>(
        &self,
        o: &Output,
        column: &Column,
        cell: &dyn Fn(usize) -> Option<&'a [u8]>,
        vars: &Vars,
        out: &mut RowBatch,
    ) -> Result<()> {
        match o {
            Output::Source(i) => match cell(*i) {
                Some(v) => out.push_cell(v),
                None => out.push_null(),
            },
            Output::Converted(i, from, to) => match cell(*i) {
                Some(v) => {
                    let converted = convert(*from, *to, v, out.cell_buf());
                    if let Err(m) = converted {
                        return Err(Error::new(
                            ErrorKind::Data,
                            format!(
                                "column {}: value {:?} {m} (change-data-type to {to})",
                                column.name,
                                String::from_utf8_lossy(v)
                            ),
                            "fix the value at the source, or choose a data-type that holds it",
                        ));
                    }
                    out.end_cell();
                }
                None => out.push_null(),
            },
            Output::Computed(expr, dms) => {
                let buf = out.cell_buf();
                let start = buf.len();
                match expr.eval(cell, vars, buf) {
                    Ok(true) => {
                        if *dms == DmsType::Boolean {
                            // SQLite has no booleans: 0 is false, any other number true.
                            let truth = !matches!(&buf[start..], b"0" | b"0.0" | b"f");
                            buf.truncate(start);
                            buf.push(if truth { b't' } else { b'f' });
                        }
                        out.end_cell();
                    }
                    Ok(false) => out.push_null(),
                    Err(m) => {
                        return Err(Error::new(
                            ErrorKind::Data,
                            format!("column {}: {m}", column.name),
                            "fix the add-column expression",
                        ));
                    }
                }
            }
            // A before-image of a before-image does not exist: outputs never nest.
            Output::Before(_) => out.push_null(),
        }
        Ok(())
    }

    /// The full-load rows of `src` as output rows (header variables take their full-load
    /// values: operation INSERT, empty stream position, timestamps the row's). A row whose
    /// value the rules cannot compute goes to `on_error`: Ok skips the row, an error ends.
    pub(crate) fn project_load(
        &self,
        src: &RowBatch,
        on_error: &mut dyn FnMut(Error) -> Result<()>,
    ) -> Result<RowBatch> {
        // Room for the source's bytes plus a short value per added column: one allocation per
        // batch in the common case (a batch grown by doubling holds up to twice its data).
        let added = self
            .outputs
            .iter()
            .filter(|o| matches!(o, Output::Computed(..)))
            .count();
        let mut out = RowBatch::with_capacity(
            self.target.columns.len(),
            src.len(),
            src.data_bytes() + src.len() * added * 32,
        );
        for row in 0..src.len() {
            let time = src.times[row];
            let vars = Vars {
                operation: "INSERT",
                stream_position: "",
                change_seq: "",
                timestamp_us: time,
                commit_timestamp_us: time,
                user: "",
                schema: &self.target.schema,
                table: &self.target.table,
            };
            match self.project(&|c| src.get(row, c), None, &vars, &mut out) {
                Ok(()) => out.end_row(Op::Insert, time)?,
                Err(e) => {
                    out.discard_partial_row();
                    on_error(e)?;
                }
            }
        }
        Ok(out)
    }
}
