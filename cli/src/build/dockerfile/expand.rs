//! Variable expansion and word splitting as the Dockerfile frontend does
//! them: quotes removed (`'...'` literal, `"..."` expanding), the escape
//! character, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?msg}`, `${VAR?msg}` and the
//! prefix/suffix removals `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`,
//! `${VAR%%pat}`.

/// Looks a variable up; None when unset.
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError(pub String);

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExpandError {}

type R<T> = Result<T, ExpandError>;

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a Lookup<'a>,
    /// Names of the variables read (for the cache key's build args).
    used: Vec<String>,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        if !self.used.iter().any(|u| u == name) {
            self.used.push(name.to_string());
        }
        (self.env)(name)
    }

    /// Words (split on unquoted blanks, also inside unquoted expansions
    /// when `split`), or one word.
    fn words(&mut self, split: bool) -> R<Vec<String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                self.pos += 1;
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            in_word = true;
            match c {
                '\'' => {
                    self.pos += 1;
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(ch) => cur.push(ch),
                            None => return Err(ExpandError("unexpected end of statement while looking for matching single-quote".into())),
                        }
                    }
                }
                '"' => {
                    self.pos += 1;
                    loop {
                        match self.next() {
                            Some('"') => break,
                            Some('$') => {
                                let v = self.dollar()?;
                                cur.push_str(&v);
                            }
                            Some(ch) if ch == self.escape => match self.next() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => cur.push(n),
                                Some(n) => {
                                    cur.push(ch);
                                    cur.push(n);
                                }
                                None => cur.push(ch),
                            },
                            Some(ch) => cur.push(ch),
                            None => return Err(ExpandError("unexpected end of statement while looking for matching double-quote".into())),
                        }
                    }
                }
                '$' => {
                    self.pos += 1;
                    let v = self.dollar()?;
                    if split {
                        // Unquoted expansions split into words.
                        let mut parts = v.split(char::is_whitespace).peekable();
                        if let Some(first) = parts.next() {
                            cur.push_str(first);
                        }
                        for p in parts {
                            if !cur.is_empty() {
                                out.push(std::mem::take(&mut cur));
                            }
                            cur.push_str(p);
                        }
                    } else {
                        cur.push_str(&v);
                    }
                }
                ch if ch == self.escape => {
                    self.pos += 1;
                    match self.next() {
                        Some(n) => cur.push(n),
                        None => cur.push(ch),
                    }
                }
                ch => {
                    self.pos += 1;
                    cur.push(ch);
                }
            }
        }
        if in_word {
            out.push(cur);
        }
        Ok(out)
    }

    /// After a `$`.
    fn dollar(&mut self) -> R<String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.lookup(&name).unwrap_or_default())
            }
            Some(c) if c.is_ascii_digit() => {
                // Positional parameters are always empty here.
                self.pos += 1;
                Ok(String::new())
            }
            _ => Ok("$".into()),
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// The modifier's word up to the closing brace, expanded.
    fn modifier_word(&mut self) -> R<String> {
        let mut depth = 0;
        let start = self.pos;
        loop {
            match self.next() {
                Some('}') if depth == 0 => break,
                Some('}') => depth -= 1,
                Some('{') => depth += 1,
                Some(c) if c == self.escape => {
                    self.pos += 1;
                }
                Some(_) => {}
                None => return Err(ExpandError("missing '}' in variable substitution".into())),
            }
        }
        let raw: String = self.chars[start..self.pos - 1].iter().collect();
        let mut sub = Lexer {
            chars: raw.chars().collect(),
            pos: 0,
            escape: self.escape,
            env: self.env,
            used: Vec::new(),
        };
        let w = sub.words(false)?.join("");
        for u in sub.used {
            if !self.used.contains(&u) {
                self.used.push(u);
            }
        }
        Ok(w)
    }

    fn braced(&mut self) -> R<String> {
        let name = self.name();
        if name.is_empty() {
            return Err(ExpandError(
                "bad substitution: missing variable name".into(),
            ));
        }
        let value = self.lookup(&name);
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') => {
                let op = self.next();
                let word = self.modifier_word()?;
                let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
                match op {
                    Some('-') => Ok(if set_nonempty {
                        value.unwrap_or_default()
                    } else {
                        word
                    }),
                    Some('+') => Ok(if set_nonempty { word } else { String::new() }),
                    Some('?') => {
                        if set_nonempty {
                            Ok(value.unwrap_or_default())
                        } else {
                            Err(ExpandError(format!(
                                "{name}: {}",
                                if word.is_empty() {
                                    "is not allowed to be unset"
                                } else {
                                    &word
                                }
                            )))
                        }
                    }
                    _ => Err(ExpandError(format!(
                        "unsupported modifier in ${{{name}:...}}"
                    ))),
                }
            }
            Some('-') => {
                let word = self.modifier_word()?;
                Ok(value.unwrap_or(word))
            }
            Some('+') => {
                let word = self.modifier_word()?;
                Ok(if value.is_some() { word } else { String::new() })
            }
            Some('?') => {
                let word = self.modifier_word()?;
                value.ok_or_else(|| {
                    ExpandError(format!(
                        "{name}: {}",
                        if word.is_empty() {
                            "is not allowed to be unset"
                        } else {
                            &word
                        }
                    ))
                })
            }
            Some(c @ ('#' | '%')) => {
                let longest = self.peek() == Some(c);
                if longest {
                    self.pos += 1;
                }
                let pat = self.modifier_word()?;
                let v = value.unwrap_or_default();
                Ok(if c == '#' {
                    strip_prefix(&v, &pat, longest)
                } else {
                    strip_suffix(&v, &pat, longest)
                })
            }
            _ => Err(ExpandError(format!("bad substitution in ${{{name}...}}"))),
        }
    }
}

/// Shell glob match (`*`, `?`) of a whole string.
fn glob(pat: &[char], s: &[char]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| glob(&pat[1..], &s[i..])),
        Some('?') => !s.is_empty() && glob(&pat[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&pat[1..], &s[1..]),
    }
}

fn strip_prefix(v: &str, pat: &str, longest: bool) -> String {
    let chars: Vec<char> = v.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let mut cuts: Vec<usize> = (0..=chars.len()).collect();
    if longest {
        cuts.reverse();
    }
    for i in cuts {
        if glob(&p, &chars[..i]) {
            return chars[i..].iter().collect();
        }
    }
    v.to_string()
}

fn strip_suffix(v: &str, pat: &str, longest: bool) -> String {
    let chars: Vec<char> = v.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let mut cuts: Vec<usize> = (0..=chars.len()).rev().collect();
    if longest {
        cuts.reverse();
    }
    for i in cuts {
        if glob(&p, &chars[i..]) {
            return chars[..i].iter().collect();
        }
    }
    v.to_string()
}

fn lexer<'a>(s: &str, escape: char, env: &'a Lookup<'a>) -> Lexer<'a> {
    Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        env,
        used: Vec::new(),
    }
}

/// One word: quotes removed, variables expanded, nothing split.
pub fn word(s: &str, escape: char, env: &Lookup) -> R<String> {
    Ok(lexer(s, escape, env).words(false)?.join(""))
}

/// One word, and the names of the variables it read.
pub fn word_used(s: &str, escape: char, env: &Lookup) -> R<(String, Vec<String>)> {
    let mut l = lexer(s, escape, env);
    let w = l.words(false)?.join("");
    Ok((w, l.used))
}

/// Words split on unquoted blanks, each expanded (EXPOSE, VOLUME, ...).
pub fn words(s: &str, escape: char, env: &Lookup) -> R<Vec<String>> {
    lexer(s, escape, env).words(true)
}

/// Split on unquoted blanks without touching quotes or variables (the
/// first step of `KEY=VALUE` lists).
pub fn split_raw(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `KEY=VALUE ...` (ENV, LABEL, ARG) or the legacy `KEY VALUE` form;
/// values expanded. `allow_bare`: ARG's `NAME` without a value.
pub fn key_values(
    s: &str,
    escape: char,
    env: &Lookup,
    allow_bare: bool,
    what: &str,
) -> R<Vec<(String, Option<String>)>> {
    let parts = split_raw(s, escape);
    if parts.is_empty() {
        return Err(ExpandError(format!(
            "{what} requires at least one argument"
        )));
    }
    let mut out = Vec::new();
    if !parts[0].contains('=') && !allow_bare {
        // Legacy: `ENV KEY rest of the line`.
        let key = word(&parts[0], escape, env)?;
        let rest = s.trim_start()[parts[0].len()..].trim();
        if rest.is_empty() {
            return Err(ExpandError(format!(
                "{what} names {key} but gives no value"
            )));
        }
        out.push((key, Some(word(rest, escape, env)?)));
        return Ok(out);
    }
    for p in parts {
        match p.split_once('=') {
            Some((k, v)) => {
                let key = word(k, escape, env)?;
                if key.is_empty() {
                    return Err(ExpandError(format!("{what}: empty name in {p:?}")));
                }
                out.push((key, Some(word(v, escape, env)?)));
            }
            None if allow_bare => out.push((word(&p, escape, env)?, None)),
            None => {
                return Err(ExpandError(format!(
                    "{what}: syntax error - can't find = in {p:?}. Must be of the form: name=value"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("alpha".into()),
            "E" => Some(String::new()),
            "P" => Some("/usr/local/bin/app.tar.gz".into()),
            "S" => Some("x y".into()),
            _ => None,
        }
    }

    #[test]
    fn expansions() {
        let w = |s: &str| word(s, '\\', &env).unwrap();
        assert_eq!(w("$A"), "alpha");
        assert_eq!(w("${A}b"), "alphab");
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A x\""), "alpha x");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("${U:-def}"), "def");
        assert_eq!(w("${E:-def}"), "def");
        assert_eq!(w("${E-def}"), "");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${U:+alt}"), "");
        assert_eq!(w("${U:-${A}-z}"), "alpha-z");
        assert_eq!(w("${P##*/}"), "app.tar.gz");
        assert_eq!(w("${P%.*}"), "/usr/local/bin/app.tar");
        assert_eq!(w("${P%%.*}"), "/usr/local/bin/app");
        assert_eq!(w("${P#/usr}"), "/local/bin/app.tar.gz");
        assert_eq!(w("$"), "$");
        assert!(
            word("${U:?must be set}", '\\', &env)
                .unwrap_err()
                .0
                .contains("must be set")
        );
        assert!(word("${A", '\\', &env).is_err());
        assert!(word("'open", '\\', &env).is_err());
        // The backtick escape leaves backslashes alone.
        assert_eq!(word("C:\\dir `$A", '`', &env).unwrap(), "C:\\dir $A");
    }

    #[test]
    fn splitting_and_key_values() {
        assert_eq!(
            words("80 $S \"a b\"", '\\', &env).unwrap(),
            ["80", "x", "y", "a b"]
        );
        let kv = key_values("A=1 B=\"two words\" C=$A", '\\', &env, false, "ENV").unwrap();
        assert_eq!(
            kv,
            [
                ("A".into(), Some("1".into())),
                ("B".into(), Some("two words".into())),
                ("C".into(), Some("alpha".into()))
            ]
        );
        let legacy = key_values("KEY a value  here", '\\', &env, false, "ENV").unwrap();
        assert_eq!(legacy, [("KEY".into(), Some("a value  here".into()))]);
        let arg = key_values("NAME", '\\', &env, true, "ARG").unwrap();
        assert_eq!(arg, [("NAME".into(), None)]);
        assert!(key_values("A=1 B", '\\', &env, false, "LABEL").is_err());
        let (_, used) = word_used("${A}-$B-${C:-$D}", '\\', &env).unwrap();
        assert_eq!(used, ["A", "B", "C", "D"]);
    }
}
