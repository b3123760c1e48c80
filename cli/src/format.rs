//! Every verb's output in one place: Docker's aligned tables, JSON, and
//! Go templates (`--format '{{.Names}}'`, `--format 'table {{.ID}}\t...'`)
//! through the `gtmpl` crate, with Docker's template functions and Go's
//! way of printing lists and maps.

use std::collections::BTreeMap;
use std::io::Write;

use gtmpl::{Context, FuncError, Value};
use serde_json::Value as Json;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FormatError {
    #[error("template parsing error: {0}")]
    Parse(String),
    #[error("template: executing {template:?}: {message}")]
    Execute { template: String, message: String },
    #[error("write output: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// What `--format` asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// The verb's own table (`--format table` or none).
    Table,
    /// A JSON document (`--format json`).
    Json,
    /// A Go template, one rendering per row; `table` adds a header line
    /// and aligns the tab-separated cells.
    Template { table: bool, text: String },
}

impl Format {
    pub fn parse(s: &str) -> Format {
        match s.trim() {
            "" | "table" => Format::Table,
            "json" => Format::Json,
            _ => match s.strip_prefix("table") {
                Some(rest) if rest.starts_with([' ', '\t']) => Format::Template {
                    table: true,
                    text: unescape(rest.trim_start()),
                },
                _ => Format::Template {
                    table: false,
                    text: unescape(s),
                },
            },
        }
    }
}

/// Docker turns the two-character `\t` and `\n` typed in a shell into
/// the characters.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// A parsed Go template with Docker's functions.
pub struct Template {
    text: String,
    inner: gtmpl::Template,
}

impl Template {
    pub fn new(text: &str) -> Result<Template, FormatError> {
        let mut inner = gtmpl::Template::default();
        for (name, f) in FUNCS {
            inner.add_func(name, *f);
        }
        inner
            .parse(route_output(text))
            .map_err(|e| FormatError::Parse(e.to_string()))?;
        Ok(Template {
            text: text.to_string(),
            inner,
        })
    }

    pub fn render(&self, data: &Json) -> Result<String, FormatError> {
        self.inner
            .render(&Context::from(to_value(data)))
            .map_err(|e| FormatError::Execute {
                template: self.text.clone(),
                message: e.to_string(),
            })
    }
}

/// Docker's template functions, and Go's `print`/`println` printing lists
/// and maps as Go does.
const FUNCS: &[(&str, gtmpl::Func)] = &[
    ("json", json_fn),
    ("join", join_fn),
    ("split", split_fn),
    ("upper", upper_fn),
    ("lower", lower_fn),
    ("title", title_fn),
    ("truncate", truncate_fn),
    ("pad", pad_fn),
    ("print", print_fn),
    ("println", println_fn),
    (GO_PRINT, go_print_fn),
];

/// The function every output action is routed through (see
/// [`route_output`]); not a name a user would type.
const GO_PRINT: &str = "__strataPrint";

/// gtmpl prints a list or map with Rust's debug syntax. To print them as
/// Go does (`[a b]`, `map[k:v]`), every action that prints a value,
/// `{{ PIPELINE }}`, becomes `{{ PIPELINE | __strataPrint }}`. Control
/// actions (if, range, with, else, end, define, template, block, break,
/// continue), comments and assignments print nothing and stay as written.
fn route_output(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(len) = action_len(after) else {
            // Unterminated: leave it for the parser to report.
            out.push_str(&rest[start..]);
            return out;
        };
        let body = &after[..len];
        out.push_str("{{");
        out.push_str(&route_action(body));
        out.push_str("}}");
        rest = &after[len + 2..];
    }
    out.push_str(rest);
    out
}

/// Length of an action's body up to its closing `}}`, skipping quoted
/// strings and comments.
fn action_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'`' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..].find("*/")?;
                i += end + 3;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn route_action(body: &str) -> String {
    let (lead, core, trail) = split_trim_markers(body);
    let word = core
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    const CONTROL: &[&str] = &[
        "if", "range", "with", "else", "end", "define", "template", "block", "break", "continue",
    ];
    let prints = !core.is_empty()
        && !core.starts_with("/*")
        && !CONTROL.contains(&word)
        && !is_assignment(core);
    if prints {
        format!("{lead}({core}) | {GO_PRINT}{trail}")
    } else {
        body.to_string()
    }
}

/// `{{- x -}}`: the trim markers and the action between them.
fn split_trim_markers(body: &str) -> (&str, &str, &str) {
    let lead = if body.starts_with("- ") || body.starts_with("-\t") {
        &body[..2]
    } else {
        ""
    };
    let trail = if body.ends_with(" -") || body.ends_with("\t-") {
        &body[body.len() - 2..]
    } else {
        ""
    };
    let core = &body[lead.len()..body.len() - trail.len()];
    (lead, core.trim(), trail)
}

/// `$x := ...` or `$x = ...` (outside quotes).
fn is_assignment(core: &str) -> bool {
    core.starts_with('$')
        && core
            .split_whitespace()
            .nth(1)
            .is_some_and(|t| t == ":=" || t == "=")
}

/// JSON into gtmpl's values. Objects are `Object`s, so that a field that
/// does not exist is an error naming it, as in Docker.
pub fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

/// gtmpl's values back into JSON (for `{{json .}}`).
fn to_json(v: &Value) -> Json {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64().map(Json::from).unwrap_or(Json::Null)
            }
        }
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Object(o) | Value::Map(o) => {
            let sorted: BTreeMap<_, _> = o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
            Json::Object(sorted.into_iter().collect())
        }
    }
}

/// A value as Go's `fmt.Sprint` prints it.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::NoValue => "<no value>".into(),
        Value::Nil => "<nil>".into(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_string).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(o) | Value::Map(o) => {
            let sorted: BTreeMap<_, _> = o.iter().collect();
            let items: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

fn arg<'a>(args: &'a [Value], i: usize, name: &str) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::AtLeastXArgs(name.into(), i + 1))
}

fn text_arg(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match arg(args, i, name)? {
        Value::String(s) => Ok(s.clone()),
        other => Ok(go_string(other)),
    }
}

fn int_arg(args: &[Value], i: usize, name: &str) -> Result<usize, FuncError> {
    match arg(args, i, name)? {
        Value::Number(n) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| FuncError::Generic(format!("{name}: want a count, got {n}"))),
        other => Err(FuncError::Generic(format!(
            "{name}: want a count, got {}",
            go_string(other)
        ))),
    }
}

fn json_fn(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg(args, 0, "json")?;
    serde_json::to_string(&to_json(v))
        .map(Value::String)
        .map_err(|e| FuncError::Generic(format!("json: {e}")))
}

fn join_fn(args: &[Value]) -> Result<Value, FuncError> {
    let sep = text_arg(args, 1, "join")?;
    match arg(args, 0, "join")? {
        Value::Array(a) => Ok(Value::String(
            a.iter().map(go_string).collect::<Vec<_>>().join(&sep),
        )),
        Value::Nil | Value::NoValue => Ok(Value::String(String::new())),
        other => Ok(Value::String(go_string(other))),
    }
}

fn split_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text_arg(args, 0, "split")?;
    let sep = text_arg(args, 1, "split")?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_string()))
            .collect()
    };
    Ok(Value::Array(parts))
}

fn upper_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text_arg(args, 0, "upper")?.to_uppercase()))
}

fn lower_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text_arg(args, 0, "lower")?.to_lowercase()))
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text_arg(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    Ok(Value::String(out))
}

/// `truncate S N`: at most N characters.
fn truncate_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text_arg(args, 0, "truncate")?;
    let n = int_arg(args, 1, "truncate")?;
    Ok(Value::String(s.chars().take(n).collect()))
}

/// `pad S L R`: L spaces before, R after.
fn pad_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text_arg(args, 0, "pad")?;
    let l = int_arg(args, 1, "pad")?;
    let r = int_arg(args, 2, "pad")?;
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(l),
        " ".repeat(r)
    )))
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn print_fn(args: &[Value]) -> Result<Value, FuncError> {
    let mut s = String::new();
    let mut prev_string = true;
    for (i, v) in args.iter().enumerate() {
        let is_string = matches!(v, Value::String(_));
        if i > 0 && !is_string && !prev_string {
            s.push(' ');
        }
        s.push_str(&go_string(v));
        prev_string = is_string;
    }
    Ok(Value::String(s))
}

/// Go's `fmt.Sprintln`: spaces between all operands, and a newline.
fn println_fn(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args.iter().map(go_string).collect();
    Ok(Value::String(format!("{}\n", parts.join(" "))))
}

fn go_print_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        args.last().map(go_string).unwrap_or_default(),
    ))
}

/// A list of rows (one JSON object each) as `--format` asked: the verb's
/// table (`columns`: header and the row's cell for it), a JSON array, or
/// a template per row. `headers` names each template field's column in
/// a `table` template (`ID` → `CONTAINER ID`).
pub fn write_rows(
    out: &mut dyn Write,
    format: &Format,
    rows: &[Json],
    headers: &[(&str, &str)],
    table: &dyn Fn(&Json) -> Vec<String>,
) -> Result<(), FormatError> {
    match format {
        Format::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?;
        }
        Format::Table => {
            let mut lines = vec![headers.iter().map(|h| h.1.to_string()).collect()];
            lines.extend(rows.iter().map(table));
            write_aligned(out, &lines)?;
        }
        Format::Template { table: false, text } => {
            let t = Template::new(text)?;
            for row in rows {
                writeln!(out, "{}", t.render(row)?)?;
            }
        }
        Format::Template { table: true, text } => {
            let t = Template::new(text)?;
            let header: serde_json::Map<String, Json> = headers
                .iter()
                .map(|(field, name)| (field.to_string(), Json::String(name.to_string())))
                .collect();
            // A field the header row has no name for renders empty.
            let mut lines = vec![split_cells(
                &t.render(&Json::Object(header)).unwrap_or_default(),
            )];
            for row in rows {
                lines.push(split_cells(&t.render(row)?));
            }
            write_aligned(out, &lines)?;
        }
    }
    Ok(())
}

/// One document (inspect, info, version) as `--format` asked: the
/// template rendered once, or pretty JSON.
pub fn write_one(out: &mut dyn Write, format: Option<&str>, doc: &Json) -> Result<(), FormatError> {
    match format.map(Format::parse) {
        None | Some(Format::Json) | Some(Format::Table) => {
            writeln!(out, "{}", serde_json::to_string_pretty(doc)?)?
        }
        Some(Format::Template { text, .. }) => {
            writeln!(out, "{}", Template::new(&text)?.render(doc)?)?
        }
    }
    Ok(())
}

/// `X inspect`: the documents as one JSON array, or each through the
/// template.
pub fn write_docs(
    out: &mut dyn Write,
    format: Option<&str>,
    docs: &[Json],
) -> Result<(), FormatError> {
    match format.map(Format::parse) {
        Some(Format::Template { text, .. }) => {
            let t = Template::new(&text)?;
            for d in docs {
                writeln!(out, "{}", t.render(d)?)?;
            }
        }
        _ => writeln!(out, "{}", serde_json::to_string_pretty(docs)?)?,
    }
    Ok(())
}

fn split_cells(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_string).collect()
}

/// Columns as wide as their widest cell plus three spaces, and at least
/// ten, as Docker's tabwriter lays them out (minwidth 10, padding 3); the
/// last cell of a line unpadded.
pub fn write_aligned(out: &mut dyn Write, lines: &[Vec<String>]) -> Result<(), FormatError> {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                break;
            }
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(cur) => *cur = (*cur).max(w),
                None => widths.push(w),
            }
        }
    }
    for line in lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < line.len() {
                let width = (widths[i] + 3).max(10);
                text.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, data: Json) -> String {
        Template::new(t).unwrap().render(&data).unwrap()
    }

    #[test]
    fn fields_lists_and_maps_print_as_go_does() {
        let d = json!({"Names": ["web", "db"], "State": {"Status": "running"},
                        "Labels": {"b": "2", "a": "1"}, "Pid": 42, "Gone": null});
        assert_eq!(render("{{.State.Status}}", d.clone()), "running");
        assert_eq!(render("{{.Names}}", d.clone()), "[web db]");
        assert_eq!(render("{{.Labels}}", d.clone()), "map[a:1 b:2]");
        assert_eq!(render("{{.Pid}}", d.clone()), "42");
        assert_eq!(render("{{.Gone}}", d.clone()), "<nil>");
        assert_eq!(render("{{index .Names 1}}", d.clone()), "db");
        assert_eq!(render("{{index .Labels \"a\"}}", d.clone()), "1");
    }

    #[test]
    fn control_actions_variables_and_trim_markers() {
        let d = json!({"Names": ["web", "db"], "Up": true});
        assert_eq!(
            render("{{range .Names}}<{{.}}>{{end}}", d.clone()),
            "<web><db>"
        );
        assert_eq!(
            render("{{range $i, $n := .Names}}{{$i}}={{$n}} {{end}}", d.clone()),
            "0=web 1=db "
        );
        assert_eq!(render("{{if .Up}}up{{else}}down{{end}}", d.clone()), "up");
        assert_eq!(render("{{with .Names}}{{len .}}{{end}}", d.clone()), "2");
        assert_eq!(render("a {{- \" b \" -}} c", d.clone()), "a b c");
        assert_eq!(render("{{/* note */}}x", d.clone()), "x");
        assert_eq!(render("{{$n := .Names}}{{join $n \"+\"}}", d), "web+db");
    }

    #[test]
    fn docker_functions() {
        let d = json!({"Names": ["web", "db"], "Id": "abcdef123456789", "S": "a,b", "W": "hello world"});
        assert_eq!(render("{{json .Names}}", d.clone()), r#"["web","db"]"#);
        assert_eq!(
            render("{{json .}}", json!({"b": 1, "a": [true]})),
            r#"{"a":[true],"b":1}"#
        );
        assert_eq!(render("{{join .Names \",\"}}", d.clone()), "web,db");
        assert_eq!(render("{{split .S \",\"}}", d.clone()), "[a b]");
        assert_eq!(
            render("{{upper .W}}|{{lower \"AB\"}}", d.clone()),
            "HELLO WORLD|ab"
        );
        assert_eq!(render("{{title .W}}", d.clone()), "Hello World");
        assert_eq!(render("{{truncate .Id 6}}", d.clone()), "abcdef");
        assert_eq!(render("[{{pad \"x\" 1 2}}]", d.clone()), "[ x  ]");
        assert_eq!(render("{{println .Names}}", d.clone()), "[web db]\n");
        assert_eq!(render("{{printf \"%s-%d\" \"a\" 7}}", d), "a-7");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Template::new("{{.Names").err().unwrap().to_string();
        assert!(e.contains("template parsing error"), "{e}");
        let e = Template::new("{{.Nope}}")
            .unwrap()
            .render(&json!({"Names": []}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Nope"), "{e}");
        let e = Template::new("{{nosuchfunc .}}")
            .err()
            .map(|e| e.to_string());
        let rendered = Template::new("{{nosuchfunc .}}").and_then(|t| t.render(&json!({})));
        assert!(e.is_some() || rendered.is_err());
    }

    #[test]
    fn table_templates_get_headers_and_aligned_columns() {
        let rows = vec![
            json!({"ID": "aaa", "Names": ["web"]}),
            json!({"ID": "bbbbbbbb", "Names": ["db"]}),
        ];
        let headers = [("ID", "CONTAINER ID"), ("Names", "NAMES")];
        let fmt = Format::parse("table {{.ID}}\\t{{join .Names \",\"}}");
        let mut out = Vec::new();
        write_rows(&mut out, &fmt, &rows, &headers, &|_| vec![]).unwrap();
        let text = String::from_utf8(out).unwrap();
        // The header row renders the template with each field's name;
        // join of a header string is the string itself.
        assert_eq!(
            text,
            "CONTAINER ID   NAMES\naaa            web\nbbbbbbbb       db\n"
        );
        let mut out = Vec::new();
        write_rows(
            &mut out,
            &Format::parse("{{.ID}}"),
            &rows,
            &headers,
            &|_| vec![],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "aaa\nbbbbbbbb\n");
        assert_eq!(Format::parse("table"), Format::Table);
        assert_eq!(Format::parse("json"), Format::Json);
    }

    #[test]
    fn table_columns_never_run_together() {
        let rows: Vec<Vec<String>> = [
            ["ID", "STATUS", "NAMES"],
            ["abc", "Exited (137) Less than a second ago", "web"],
            ["d", "Up", "x"],
        ]
        .iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
        let mut out = Vec::new();
        write_aligned(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID        STATUS                                NAMES\n\
             abc       Exited (137) Less than a second ago   web\n\
             d         Up                                    x\n"
        );
    }
}
