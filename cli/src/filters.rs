//! `--filter key=value` as Docker reads it: values of one key are OR-ed,
//! different keys AND-ed; a key the verb does not know is refused.

use std::collections::BTreeMap;

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum FilterError {
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
    #[error("bad format of filter (expected name=value): {0:?}")]
    Malformed(String),
    #[error("invalid filter '{key}={value}': {why}")]
    BadValue {
        key: String,
        value: String,
        why: String,
    },
}

/// The filters of one command line, by key.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// Parse `args` (each `key=value`, or `key` for keys that take none),
    /// accepting only `known` keys.
    pub fn parse(args: &[String], known: &[&str]) -> Result<Filters, FilterError> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in args {
            let (k, v) = match a.split_once('=') {
                Some((k, v)) => (k.trim(), v),
                None if a.trim() == "dangling" => ("dangling", "true"),
                None => return Err(FilterError::Malformed(a.clone())),
            };
            if !known.contains(&k) {
                return Err(FilterError::UnknownKey(k.to_string()));
            }
            by_key.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(Filters { by_key })
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn has(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    pub fn values(&self, key: &str) -> &[String] {
        self.by_key.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `key` is not given, or when `pred` holds for one of its
    /// values.
    pub fn any<F: FnMut(&str) -> bool>(&self, key: &str, mut pred: F) -> bool {
        match self.by_key.get(key) {
            None => true,
            Some(vs) => vs.iter().any(|v| pred(v)),
        }
    }

    /// `label=key` or `label=key=value` against a label map: every label
    /// filter must match (Docker ANDs labels).
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.values("label")
            .iter()
            .all(|f| match f.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                None => labels.contains_key(f.as_str()),
            })
    }

    /// A boolean filter's value (`dangling=true`).
    pub fn bool_value(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let Some(v) = self.values(key).last() else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(FilterError::BadValue {
                key: key.into(),
                value: v.clone(),
                why: "want true or false".into(),
            }),
        }
    }
}

/// Go's `path.Match` for one segment set: `*` any run of characters but
/// `/`, `?` one such character, the rest literal (what Docker's
/// `reference=` filter matches names with).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer matcher with backtracking on the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti] || (p[pi] == '?' && t[ti] != '/')) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            if t[st] == '/' {
                return false;
            }
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(args: &[&str]) -> Result<Filters, FilterError> {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Filters::parse(&a, &["name", "label", "dangling"])
    }

    #[test]
    fn keys_values_and_errors() {
        let x = f(&["name=web", "name=db", "label=a=1"]).unwrap();
        assert!(x.any("name", |v| v == "db"));
        assert!(!x.any("name", |v| v == "cache"));
        assert!(x.any("status", |_| false), "absent key matches all");
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "1".to_string());
        assert!(x.labels_match(&labels));
        labels.insert("a".to_string(), "2".to_string());
        assert!(!x.labels_match(&labels));
        assert_eq!(
            f(&["nope=1"]).unwrap_err().to_string(),
            "invalid filter 'nope'"
        );
        assert!(matches!(f(&["name"]), Err(FilterError::Malformed(_))));
        assert_eq!(
            f(&["dangling"]).unwrap().bool_value("dangling"),
            Ok(Some(true))
        );
        assert!(
            f(&["dangling=maybe"])
                .unwrap()
                .bool_value("dangling")
                .is_err()
        );
    }

    #[test]
    fn globs_as_go_path_match() {
        assert!(glob_match("busybox*", "busybox:latest"));
        assert!(glob_match("*:1.?", "app:1.2"));
        assert!(!glob_match("*", "example.com/app"));
        assert!(glob_match("*/app*", "example.com/app:1"));
        assert!(!glob_match("app", "app:1"));
        assert!(glob_match("", ""));
    }
}
