//! The Dockerfile's text into instructions: parser directives (`# escape=`,
//! `# syntax=`), comments, line continuations, heredocs, flags and the JSON
//! (exec) or shell form of the arguments. Nothing is expanded here: ARG and
//! ENV scoping is the planner's (see [`super::expand`]). Every instruction
//! keeps its line number, so an error names file, line and instruction.

use std::fmt;

/// A parse error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// A `<<EOF` document attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The word after `<<` (without quotes): the file name for COPY/ADD.
    pub name: String,
    pub content: String,
    /// `<<"EOF"` or `<<'EOF'`: no variable expansion in the content.
    pub quoted: bool,
    /// `<<-EOF`: leading tabs were stripped.
    pub strip_tabs: bool,
}

/// `--name=value` (or a bare `--name`) before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper case: `RUN`, `COPY`, ...
    pub keyword: String,
    pub flags: Vec<Flag>,
    /// The arguments after the flags, continuation lines joined.
    pub args: String,
    /// The arguments as a JSON array of strings, when they are one.
    pub json: Option<Vec<String>>,
    pub heredocs: Vec<Heredoc>,
    /// 1-based line of the keyword.
    pub line: usize,
    /// `KEYWORD args` as written (continuations joined), for history.
    pub original: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().rev().find(|f| f.name == name)
    }

    pub fn flag_values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|f| f.name == name)
            .filter_map(|f| f.value.as_deref())
            .collect()
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    /// `# syntax=` as given (noted, never fetched).
    pub syntax: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// Instructions and the flags each takes.
const INSTRUCTIONS: &[(&str, &[&str])] = &[
    ("FROM", &["platform"]),
    ("RUN", &["mount", "network", "security"]),
    ("CMD", &[]),
    ("LABEL", &[]),
    ("MAINTAINER", &[]),
    ("EXPOSE", &[]),
    ("ENV", &[]),
    (
        "ADD",
        &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
        ],
    ),
    (
        "COPY",
        &["from", "chown", "chmod", "link", "parents", "exclude"],
    ),
    ("ENTRYPOINT", &[]),
    ("VOLUME", &[]),
    ("USER", &[]),
    ("WORKDIR", &[]),
    ("ARG", &[]),
    ("ONBUILD", &[]),
    ("STOPSIGNAL", &[]),
    (
        "HEALTHCHECK",
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    ),
    ("SHELL", &[]),
];

fn takes_heredoc(k: &str) -> bool {
    matches!(k, "RUN" | "COPY" | "ADD")
}

/// Parse a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    // Parser directives: only at the very top, before any comment that is
    // not one, blank line or instruction.
    let mut seen = Vec::new();
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        if seen.contains(&key) {
            return Err(ParseError {
                line: i + 1,
                msg: format!("only one {key} parser directive can be used"),
            });
        }
        match key.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(ParseError {
                            line: i + 1,
                            msg: format!("invalid escape token {other:?}: must be ` or \\"),
                        });
                    }
                }
            }
            "syntax" => syntax = Some(value.clone()),
            _ => {} // check= and unknown directives are comments to us
        }
        seen.push(key);
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        // Join continuation lines; comment lines and blank lines inside a
        // continued instruction are dropped, as Docker does.
        let mut joined = String::new();
        let mut cur = line.to_string();
        loop {
            match strip_continuation(&cur, escape) {
                Some(head) => {
                    joined.push_str(head);
                    i += 1;
                    // Next meaningful line.
                    loop {
                        if i >= lines.len() {
                            cur = String::new();
                            break;
                        }
                        let t = lines[i].trim_start();
                        if t.starts_with('#') || t.is_empty() {
                            i += 1;
                            continue;
                        }
                        cur = lines[i].to_string();
                        break;
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    joined.push_str(&cur);
                    i += 1;
                    break;
                }
            }
        }
        let mut ins = instruction(&joined, start + 1, escape)?;
        if takes_heredoc(&ins.keyword) {
            let names = heredoc_markers(&ins.args, escape);
            for (name, quoted, strip_tabs) in names {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let l = if strip_tabs {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if l == name {
                        closed = true;
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                if !closed {
                    return Err(ParseError {
                        line: start + 1,
                        msg: format!("{}: unterminated heredoc <<{name}", ins.keyword),
                    });
                }
                ins.heredocs.push(Heredoc {
                    name,
                    content,
                    quoted,
                    strip_tabs,
                });
            }
        }
        instructions.push(ins);
    }
    Ok(Dockerfile {
        escape,
        syntax,
        instructions,
    })
}

/// `# key=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

/// The line without its trailing escape char (and spaces after it), if
/// it ends with one.
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end();
    let head = t.strip_suffix(escape)?;
    // An escaped escape char at the end is not a continuation.
    if head.ends_with(escape) && !head.trim_end_matches(escape).len().is_multiple_of(2) {
        return None;
    }
    Some(head)
}

fn instruction(joined: &str, line: usize, escape: char) -> Result<Instruction, ParseError> {
    let t = joined.trim();
    let (word, rest) = match t.find(char::is_whitespace) {
        Some(p) => (&t[..p], t[p..].trim_start()),
        None => (t, ""),
    };
    let keyword = word.to_ascii_uppercase();
    let Some((_, allowed)) = INSTRUCTIONS.iter().find(|(k, _)| *k == keyword) else {
        return Err(ParseError {
            line,
            msg: format!("unknown instruction: {word}"),
        });
    };
    let mut flags = Vec::new();
    let mut args = rest;
    // Flags: leading `--name[=value]` words (ONBUILD's belong to its
    // instruction).
    if keyword != "ONBUILD" {
        while let Some(f) = args.strip_prefix("--") {
            let end = f.find(char::is_whitespace).unwrap_or(f.len());
            let word = &f[..end];
            if word.is_empty() {
                break; // a lone "--" is an argument
            }
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(unquote_flag(v))),
                None => (word.to_string(), None),
            };
            if !allowed.contains(&name.as_str()) {
                return Err(ParseError {
                    line,
                    msg: format!("{keyword}: unknown flag: --{name}"),
                });
            }
            flags.push(Flag { name, value });
            args = f[end..].trim_start();
        }
    }
    let json = if matches!(
        keyword.as_str(),
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "COPY" | "ADD" | "VOLUME" | "HEALTHCHECK"
    ) {
        json_array(args)
    } else {
        None
    };
    if keyword == "SHELL" && json.is_none() {
        return Err(ParseError {
            line,
            msg: "SHELL requires the arguments to be in JSON form".into(),
        });
    }
    let _ = escape;
    Ok(Instruction {
        keyword,
        flags,
        args: args.to_string(),
        json,
        heredocs: Vec::new(),
        line,
        original: t.to_string(),
    })
}

/// A flag value in quotes keeps what is inside (`--chown="1:1"`).
fn unquote_flag(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// `["a", "b"]` as a list of strings; anything else is shell form.
fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// The heredoc markers on an instruction line, in order: (name, quoted,
/// strip tabs). Markers inside quotes do not count.
fn heredoc_markers(args: &str, escape: char) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let chars: Vec<char> = args.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && quote != Some('\'') {
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '<'
                && chars.get(i + 1) == Some(&'<')
                && chars.get(i + 2) != Some(&'<') =>
            {
                // `<<` must start a word (or follow a digit: `3<<EOF`).
                let mut j = i + 2;
                let strip = chars.get(j) == Some(&'-');
                if strip {
                    j += 1;
                }
                let q = chars.get(j).copied().filter(|c| *c == '"' || *c == '\'');
                if q.is_some() {
                    j += 1;
                }
                let start = j;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric()
                        || chars[j] == '_'
                        || chars[j] == '.'
                        || chars[j] == '-')
                {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                if let Some(qc) = q {
                    if chars.get(j) != Some(&qc) {
                        i += 2;
                        continue;
                    }
                    j += 1;
                }
                if !name.is_empty() {
                    out.push((name, q.is_some(), strip));
                }
                i = j;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_comments_and_continuations() {
        let df = parse(
            "# syntax=docker/dockerfile:1.4\n# escape=`\n\n# a comment\nFROM busybox AS base\nRUN echo a `\n  # inside\n  && echo b\nrun echo c\n",
        )
        .unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.4"));
        assert_eq!(df.instructions.len(), 3);
        assert_eq!(df.instructions[1].args, "echo a   && echo b");
        assert_eq!(df.instructions[1].line, 6);
        assert_eq!(df.instructions[2].keyword, "RUN");
        assert_eq!(df.instructions[2].line, 9);
    }

    #[test]
    fn directive_after_a_comment_is_a_comment() {
        let df = parse("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.instructions[1].args, "a  b");
    }

    #[test]
    fn flags_json_and_unknowns() {
        let df = parse("COPY --from=build --chown=\"1:2\" [\"a b\", \"/c/\"]\nCMD [\"sh\", \"-c\", \"x\"]\nCMD not json [\n").unwrap();
        let c = &df.instructions[0];
        assert_eq!(c.flag("from").unwrap().value.as_deref(), Some("build"));
        assert_eq!(c.flag("chown").unwrap().value.as_deref(), Some("1:2"));
        assert_eq!(c.json.as_ref().unwrap(), &["a b", "/c/"]);
        assert_eq!(df.instructions[1].json.as_ref().unwrap().len(), 3);
        assert!(df.instructions[2].json.is_none());
        let e = parse("FROM x\nFROB y\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("unknown instruction: FROB"), "{e}");
        let e = parse("FROM x\nCOPY --frm=a b c\n").unwrap_err();
        assert!(e.msg.contains("unknown flag: --frm"), "{e}");
        assert!(parse("SHELL sh -c\n").is_err());
    }

    #[test]
    fn heredocs() {
        let df = parse(
            "FROM x\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-\"A\" <<B /dst/\n\tline $x\n\tA\nb\nB\nRUN echo '<<NOT'\n",
        )
        .unwrap();
        let r = &df.instructions[1];
        assert_eq!(r.heredocs.len(), 1);
        assert_eq!(r.heredocs[0].content, "echo one\necho two\n");
        let c = &df.instructions[2];
        assert_eq!(c.heredocs.len(), 2);
        assert_eq!(c.heredocs[0].name, "A");
        assert!(c.heredocs[0].quoted && c.heredocs[0].strip_tabs);
        assert_eq!(c.heredocs[0].content, "line $x\n");
        assert_eq!(c.heredocs[1].content, "b\n");
        assert!(df.instructions[3].heredocs.is_empty());
        let e = parse("FROM x\nRUN <<EOF\necho\n").unwrap_err();
        assert!(e.msg.contains("unterminated heredoc"), "{e}");
    }
}
