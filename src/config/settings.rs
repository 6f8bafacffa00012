//! A bag of DMS settings by name, filled from TOML tables or an extra-connection-attribute string,
//! and drained by typed getters. Whatever is left when a parser is done is an unknown key.
//!
//! Names match case-insensitively so that the API's PascalCase (`DataFormat`) and the ECA's
//! camelCase (`dataFormat`) are the same key, as they are in DMS.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Settings by lower-cased name: (name as the user wrote it, value as text).
#[derive(Debug, Default, Clone)]
pub(crate) struct SettingsBag {
    /// Where these settings came from, for messages (`[target.settings]`).
    origin: String,
    values: BTreeMap<String, (String, String)>,
}

impl SettingsBag {
    /// An empty bag; `origin` names the section in messages.
    pub(crate) fn new(origin: &str) -> SettingsBag {
        SettingsBag {
            origin: origin.to_string(),
            values: BTreeMap::new(),
        }
    }

    /// Adds one setting; a name given twice (in any spelling) is an error.
    pub(crate) fn insert(&mut self, name: &str, value: String) -> Result<()> {
        let key = name.to_ascii_lowercase();
        if let Some((first, _)) = self.values.get(&key) {
            return Err(Error::config(
                format!("{} sets {name} twice (also as {first})", self.origin),
                "keep one of them",
            ));
        }
        self.values.insert(key, (name.to_string(), value));
        Ok(())
    }

    /// Adds the keys of a TOML table; nested tables become dotted names
    /// (`FullLoadSettings.MaxFullLoadSubTasks`).
    pub(crate) fn extend_toml(&mut self, table: &toml::Table, prefix: &str) -> Result<()> {
        for (k, v) in table {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Table(t) => {
                    self.extend_toml(t, &name)?;
                    continue;
                }
                other => {
                    return Err(Error::config(
                        format!(
                            "{} {name} is a {}, not a string, number or boolean",
                            self.origin,
                            other.type_str()
                        ),
                        "write the value as DMS documents it, e.g. \"csv\", 64000 or true",
                    ))
                }
            };
            self.insert(&name, text)?;
        }
        Ok(())
    }

    /// Adds the settings of a DMS extra-connection-attribute string: `key=value;key=value;`.
    pub(crate) fn extend_eca(&mut self, eca: &str) -> Result<()> {
        for part in eca.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Error::config(
                    format!("extra_connection_attributes entry {part:?} has no '='"),
                    "write attributes as key=value; pairs, e.g. dataFormat=parquet;",
                )
            })?;
            self.insert(k.trim(), v.trim().to_string())?;
        }
        Ok(())
    }

    /// Adds a DMS JSON document's keys: objects become dotted names, `null` and empty arrays
    /// are absent (DMS's "default"), `Logging.LogComponents` becomes one key per component
    /// (`Logging.LogComponents.SOURCE_CAPTURE`), and other arrays are kept as JSON text. A key
    /// given twice with one value in two spellings (exports carry both
    /// `historyTimeslotInMinutes` and `HistoryTimeslotInMinutes`) counts once.
    pub(crate) fn extend_json(&mut self, value: &serde_json::Value, prefix: &str) -> Result<()> {
        use serde_json::Value;
        let Value::Object(map) = value else {
            return Err(Error::config(
                format!("{} must be a JSON object", self.origin),
                "pass the ReplicationTaskSettings document, {\"TargetMetadata\": {...}, ...}",
            ));
        };
        for (k, v) in map {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let text = match v {
                Value::Null => continue,
                Value::Object(_) => {
                    self.extend_json(v, &name)?;
                    continue;
                }
                Value::Array(items) if items.is_empty() => continue,
                Value::Array(items) if name.eq_ignore_ascii_case("Logging.LogComponents") => {
                    for item in items {
                        let field = |f: &str| item.get(f).and_then(Value::as_str);
                        let (Some(id), Some(severity)) = (field("Id"), field("Severity")) else {
                            return Err(Error::config(
                                format!("{} {name} has an entry without Id and Severity", self.origin),
                                "write each component as {\"Id\": \"SOURCE_CAPTURE\", \"Severity\": \"LOGGER_SEVERITY_DEFAULT\"}",
                            ));
                        };
                        self.insert_once(&format!("{name}.{id}"), severity.to_string())?;
                    }
                    continue;
                }
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.insert_once(&name, text)?;
        }
        Ok(())
    }

    /// [`SettingsBag::insert`], except that the same value under a second spelling is ignored.
    fn insert_once(&mut self, name: &str, value: String) -> Result<()> {
        match self.values.get(&name.to_ascii_lowercase()) {
            Some((_, v)) if *v == value => Ok(()),
            _ => self.insert(name, value),
        }
    }

    /// Every setting left, as (name as written, value).
    pub(crate) fn into_entries(self) -> Vec<(String, String)> {
        self.values.into_values().collect()
    }

    /// True when `name` is set (in any spelling).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.values.contains_key(&name.to_ascii_lowercase())
    }

    /// Removes and returns the raw text of `name`.
    pub(crate) fn take(&mut self, name: &str) -> Option<String> {
        self.values
            .remove(&name.to_ascii_lowercase())
            .map(|(_, v)| v)
    }

    /// A string setting.
    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        self.take(name)
    }

    /// A DMS boolean: `true/false/y/n/yes/no/1/0`, any case.
    pub(crate) fn bool(&mut self, name: &str, default: bool) -> Result<bool> {
        let Some(v) = self.take(name) else {
            return Ok(default);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "y" | "yes" | "1" => Ok(true),
            "false" | "n" | "no" | "0" => Ok(false),
            _ => Err(self.invalid(name, &v, "true or false")),
        }
    }

    /// An integer setting within `min..=max`, in the unit its DMS name documents.
    pub(crate) fn int(
        &mut self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
        unit: &str,
    ) -> Result<u64> {
        let Some(v) = self.take(name) else {
            return Ok(default);
        };
        match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(
                name,
                &v,
                &format!("an integer from {min} to {max} ({unit})"),
            )),
        }
    }

    /// An enumerated setting: the value's lower-cased, dash/underscore-insensitive form must be
    /// one of `accepted` (so `PARQUET_1_0` and the API's `parquet-1-0` are the same).
    pub(crate) fn choice(
        &mut self,
        name: &str,
        default: &'static str,
        accepted: &[&'static str],
    ) -> Result<&'static str> {
        let Some(v) = self.take(name) else {
            return Ok(default);
        };
        let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
        accepted
            .iter()
            .find(|a| norm(a) == norm(&v))
            .copied()
            .ok_or_else(|| self.invalid(name, &v, &format!("one of {}", accepted.join(", "))))
    }

    /// An error for a value that does not parse.
    pub(crate) fn invalid(&self, name: &str, value: &str, accepted: &str) -> Error {
        Error::config(
            format!("{} {name} = {value:?} is not valid", self.origin),
            format!("set {name} to {accepted}"),
        )
    }

    /// Fails when keys are left over: they are unknown (or misspelt) settings.
    pub(crate) fn finish(self, accepted: &[&str]) -> Result<()> {
        if let Some((name, _)) = self.values.values().next() {
            let lower = name.to_ascii_lowercase();
            let hint = accepted
                .iter()
                .find(|a| {
                    let a = a.to_ascii_lowercase();
                    a.contains(&lower) || lower.contains(&a) || edit_distance(&a, &lower) <= 2
                })
                .map(|a| format!("did you mean {a}? "))
                .unwrap_or_default();
            return Err(Error::config(
                format!("{} has an unknown setting {name}", self.origin),
                format!("{hint}accepted settings: {}", accepted.join(", ")),
            ));
        }
        Ok(())
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt setting names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eca_and_case_insensitivity() {
        let mut bag = SettingsBag::new("[target]");
        bag.extend_eca("dataFormat=parquet; parquetVersion=PARQUET_2_0;;")
            .unwrap();
        assert_eq!(
            bag.choice("DataFormat", "csv", &["csv", "parquet"])
                .unwrap(),
            "parquet"
        );
        assert_eq!(
            bag.choice(
                "ParquetVersion",
                "parquet-1-0",
                &["parquet-1-0", "parquet-2-0"]
            )
            .unwrap(),
            "parquet-2-0"
        );
        bag.finish(&[]).unwrap();
    }

    #[test]
    fn rejects_unknown_duplicate_and_bad_values() {
        let mut bag = SettingsBag::new("[target.settings]");
        bag.insert("MaxFileSze", "1".into()).unwrap();
        let err = bag.finish(&["MaxFileSize"]).unwrap_err().to_string();
        assert!(err.contains("unknown setting MaxFileSze"), "{err}");
        assert!(err.contains("did you mean MaxFileSize"), "{err}");

        let mut bag = SettingsBag::new("[target.settings]");
        bag.insert("DataFormat", "csv".into()).unwrap();
        assert!(bag.insert("dataformat", "csv".into()).is_err());

        let mut bag = SettingsBag::new("[target.settings]");
        bag.insert("MaxFileSize", "0".into()).unwrap();
        let err = bag
            .int("MaxFileSize", 5, 1, 10, "KB")
            .unwrap_err()
            .to_string();
        assert!(err.contains("from 1 to 10 (KB)"), "{err}");

        let mut bag = SettingsBag::new("x");
        bag.insert("Rfc4180", "maybe".into()).unwrap();
        assert!(bag.bool("Rfc4180", true).is_err());
    }

    #[test]
    fn toml_nesting_flattens() {
        let t: toml::Table = toml::from_str(
            "FullLoadSettings.MaxFullLoadSubTasks = 4\n[TargetMetadata]\nLobMaxSize = 32",
        )
        .unwrap();
        let mut bag = SettingsBag::new("[task.settings]");
        bag.extend_toml(&t, "").unwrap();
        assert_eq!(
            bag.int("FullLoadSettings.MaxFullLoadSubTasks", 8, 1, 49, "tables")
                .unwrap(),
            4
        );
        assert_eq!(
            bag.int("TargetMetadata.LobMaxSize", 0, 0, 1 << 20, "KB")
                .unwrap(),
            32
        );
    }
}
