//! The generated task file before it is text: sections of `key = value` lines, each with its
//! comments, and the values the parser refused, commented out with the parser's reason.

use serde_json::Value;

use crate::error::Error;

/// One `key = value` line.
#[derive(Debug, Clone)]
pub(super) struct Line {
    /// The key as written.
    pub(super) key: String,
    /// The value as TOML text.
    value: String,
    /// Comments above the line.
    notes: Vec<String>,
    /// Why the value is not carried over: the line is written commented out.
    dropped: Option<String>,
    /// A line the file cannot do without (id, url...): never left out.
    fixed: bool,
}

impl Line {
    /// `key = value` with `value` already TOML text.
    pub(super) fn raw(key: &str, value: &str) -> Line {
        Line {
            key: key.to_string(),
            value: value.to_string(),
            notes: Vec::new(),
            dropped: None,
            fixed: false,
        }
    }

    /// `key = "value"`, escaped as TOML needs.
    pub(super) fn string(key: &str, value: &str) -> Line {
        Line::raw(key, &toml_string(value))
    }

    /// `key = '''<pretty JSON>'''`.
    pub(super) fn json_text(key: &str, text: &str) -> Line {
        Line::raw(key, &json_text_block(text))
    }

    /// A DMS setting's JSON scalar as a TOML value; None for null, arrays and objects.
    pub(super) fn setting(key: &str, value: &Value) -> Option<Line> {
        let text = match value {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => toml_string(s),
            _ => return None,
        };
        Some(Line::raw(key, &text))
    }

    /// Adds a comment above the line.
    pub(super) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// [`Line::note`], by value.
    pub(super) fn with_note(mut self, text: impl Into<String>) -> Line {
        self.note(text);
        self
    }

    /// The line, commented out with `why`.
    pub(super) fn dropped(mut self, why: impl Into<String>) -> Line {
        self.dropped = Some(why.into());
        self
    }

    /// The line, never left out (the file needs it).
    pub(super) fn fixed(mut self) -> Line {
        self.fixed = true;
        self
    }

    /// True when the line is written as a value (not commented out).
    pub(super) fn active(&self) -> bool {
        self.dropped.is_none()
    }

    /// Appends the line's text.
    fn render(&self, out: &mut String) {
        for n in &self.notes {
            comment(out, n);
        }
        match &self.dropped {
            None => out.push_str(&format!("{} = {}\n", self.key, self.value)),
            Some(why) => {
                comment(out, &format!("not carried over: {why}"));
                comment(out, &format!("{} = {}", self.key, self.value));
            }
        }
    }
}

/// One item of a section, in order.
#[derive(Debug, Clone)]
enum Item {
    /// A value line.
    Line(Line),
    /// A comment of its own.
    Comment(String),
}

/// `[name]` and its items.
#[derive(Debug, Clone)]
pub(super) struct Section {
    /// `[task]`, `[source.settings]`...
    name: String,
    /// Lines and comments in order.
    items: Vec<Item>,
}

impl Section {
    /// An empty section.
    pub(super) fn new(name: &str) -> Section {
        Section {
            name: name.to_string(),
            items: Vec::new(),
        }
    }

    /// Adds a line.
    pub(super) fn push(&mut self, line: Line) {
        self.items.push(Item::Line(line));
    }

    /// Adds a comment of its own.
    pub(super) fn push_comment(&mut self, text: impl Into<String>) {
        self.items.push(Item::Comment(text.into()));
    }

    /// The section's lines.
    pub(super) fn lines(&self) -> impl Iterator<Item = &Line> {
        self.items.iter().filter_map(|i| match i {
            Item::Line(l) => Some(l),
            Item::Comment(_) => None,
        })
    }

    /// True when the section holds no item.
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The whole file.
#[derive(Debug, Default)]
pub(super) struct Draft {
    /// Comment lines at the top.
    pub(super) header: Vec<String>,
    /// Sections in order; `[task]` first.
    pub(super) sections: Vec<Section>,
    /// `ReplicationTaskSettings`, written as `task_settings` at the end of `[task]`.
    pub(super) task_settings: Option<Value>,
    /// The document's text as exported: written as it is while nothing is taken out.
    pub(super) task_settings_text: Option<String>,
    /// Task settings taken out of the document, each with why.
    removed_settings: Vec<String>,
}

impl Draft {
    /// How many values could be left out (bounds the parse-and-leave-out rounds).
    pub(super) fn len(&self) -> usize {
        let lines: usize = self.sections.iter().map(|s| s.lines().count()).sum();
        lines
            + self
                .task_settings
                .as_ref()
                .map_or(0, |s| leaves(s, "").len())
    }

    /// The TOML text.
    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            comment(&mut out, h);
        }
        for s in &self.sections {
            out.push_str(&format!("\n{}\n", s.name));
            for item in &s.items {
                match item {
                    Item::Line(l) => l.render(&mut out),
                    Item::Comment(c) => comment(&mut out, c),
                }
            }
            if s.name == "[task]" {
                self.render_task_settings(&mut out);
            }
        }
        out
    }

    /// `task_settings = '''...'''` with the keys taken out listed above it.
    fn render_task_settings(&self, out: &mut String) {
        let Some(settings) = &self.task_settings else {
            return;
        };
        comment(
            out,
            "ReplicationTaskSettings as exported; `tributary settings` says what each key does here \
             (keys that change nothing for an S3 target are accepted and listed by validate).",
        );
        for r in &self.removed_settings {
            comment(
                out,
                &format!("not carried over (taken out of the document below): {r}"),
            );
        }
        let block = match (&self.task_settings_text, self.removed_settings.is_empty()) {
            (Some(text), true) => json_text_block(text),
            _ => json_block(settings),
        };
        out.push_str(&format!("task_settings = {block}\n"));
    }

    /// Comments out the value `err` names (the one named first), with the error as the reason;
    /// false when it names nothing that may be left out.
    pub(super) fn leave_out(&mut self, err: &Error) -> bool {
        let message = &err.message;
        let reason = format!("{} — {}", err.message, err.fix);
        // (position in the message, name length) of the best candidate so far.
        let mut best: Option<(usize, usize)> = None;
        let mut line_at: Option<(usize, usize)> = None;
        let mut setting_at: Option<String> = None;
        let better = |best: &Option<(usize, usize)>, at: (usize, usize)| {
            best.is_none_or(|b| at.0 < b.0 || (at.0 == b.0 && at.1 > b.1))
        };
        for (si, s) in self.sections.iter().enumerate() {
            for (ii, item) in s.items.iter().enumerate() {
                let Item::Line(l) = item else { continue };
                if !l.active() {
                    continue;
                }
                if let Some(pos) = find_word(message, &l.key) {
                    let at = (pos, l.key.len());
                    if better(&best, at) {
                        best = Some(at);
                        line_at = Some((si, ii));
                        setting_at = None;
                    }
                }
            }
        }
        if let Some(settings) = &self.task_settings {
            for path in leaves(settings, "") {
                if let Some(pos) = find_word(message, &path) {
                    let at = (pos, path.len());
                    if better(&best, at) {
                        best = Some(at);
                        line_at = None;
                        setting_at = Some(path);
                    }
                }
            }
        }
        if let Some(path) = setting_at {
            let Some(settings) = self.task_settings.as_mut() else {
                return false;
            };
            let value = remove_path(settings, &path).unwrap_or(Value::Null);
            self.removed_settings
                .push(format!("{path} = {value}: {reason}"));
            return true;
        }
        let Some((si, ii)) = line_at else {
            return false;
        };
        let Item::Line(l) = &mut self.sections[si].items[ii] else {
            return false;
        };
        if l.fixed {
            return false;
        }
        l.dropped = Some(reason);
        true
    }
}

/// Appends `text` as comment lines.
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str(&format!("# {line}\n"));
        }
    }
}

/// A TOML basic string holding `s`.
pub(super) fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Pretty JSON in a TOML multi-line literal string, or in an escaped string when the JSON
/// holds `'''` (which a literal string cannot).
fn json_block(value: &Value) -> String {
    json_text_block(&value.to_string())
}

/// [`json_block`] for JSON text, keeping its key order (DMS's documents read best in theirs).
pub(super) fn json_text_block(text: &str) -> String {
    let pretty = indent_json(text);
    if pretty.contains("'''") {
        toml_string(&pretty)
    } else {
        format!("'''\n{pretty}\n'''")
    }
}

/// Re-indents valid JSON text two spaces per level, in its own key order. Hand-written because
/// serde_json's `Value` sorts object keys (its `preserve_order` feature would change the map
/// type for the whole crate); this only moves whitespace outside strings.
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if let Some(&close @ ('}' | ']')) = chars.peek() {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// The dotted paths of every non-object value in `v`.
fn leaves(v: &Value, prefix: &str) -> Vec<String> {
    let Value::Object(map) = v else {
        return vec![prefix.to_string()];
    };
    map.iter()
        .flat_map(|(k, v)| {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            leaves(v, &path)
        })
        .collect()
}

/// Removes the value at dotted `path` (exactly as [`leaves`] spells it) and returns it.
fn remove_path(v: &mut Value, path: &str) -> Option<Value> {
    let Value::Object(map) = v else {
        return None;
    };
    if let Some(value) = map.remove(path) {
        return Some(value);
    }
    // Keys may contain dots themselves, so try every split.
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if let Some(rest) = path
            .strip_prefix(k.as_str())
            .and_then(|r| r.strip_prefix('.'))
        {
            if let Some(child) = map.get_mut(&k) {
                if let Some(found) = remove_path(child, rest) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// The byte position of `word` in `text` as a whole word (case-insensitively): the characters
/// around it are not letters, digits or `_`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    let hay = text.to_ascii_lowercase();
    let needle = word.to_ascii_lowercase();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = hay[from..].find(&needle) {
        let start = from + i;
        let end = start + needle.len();
        let before = hay[..start].chars().next_back();
        let after = hay[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return Some(start);
        }
        from = start + needle.len().max(1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_paths_and_strings() {
        assert_eq!(find_word("x CdcPath y", "cdcpath"), Some(2));
        assert_eq!(find_word("UseCsvNoSupValue", "CsvNoSupValue"), None);
        assert_eq!(
            find_word(
                "setting Logging.LogComponents.X = 1",
                "Logging.LogComponents"
            ),
            Some(8)
        );
        let mut v: Value = serde_json::json!({"A": {"B": 1, "C.D": {"E": true}}, "F": [1]});
        assert_eq!(leaves(&v, ""), ["A.B", "A.C.D.E", "F"]);
        assert_eq!(remove_path(&mut v, "A.C.D.E"), Some(Value::Bool(true)));
        assert_eq!(remove_path(&mut v, "A.X"), None);
        for s in ["a\"b\\n", "it's", "x'''y", "multi\nline"] {
            let t: toml::Table = format!("k = {}", toml_string(s)).parse().unwrap();
            assert_eq!(t["k"].as_str(), Some(s));
        }
        assert!(json_block(&serde_json::json!({"a": "'''"})).starts_with('"'));
        // Key order kept, strings untouched (brackets, commas, escaped quotes inside them).
        let text = r#"{"z": [1, {"b": "x,{y}\"", "a": [ ]}], "a": {}}"#;
        let pretty = indent_json(text);
        assert_eq!(
            pretty,
            "{\n  \"z\": [\n    1,\n    {\n      \"b\": \"x,{y}\\\"\",\n      \"a\": []\n    }\n  ],\n  \"a\": {}\n}"
        );
        let back: Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }
}
