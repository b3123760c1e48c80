//! The Dockerfile frontend: text to instructions ([`parse`]), the shell
//! word rules for expansion ([`expand`]), and the split into the global
//! ARGs and the stages.

pub mod expand;
pub mod parse;

pub use parse::{Dockerfile, Flag, Heredoc, Instruction, ParseError};

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lower case (stage names are case-insensitive).
    pub name: Option<String>,
    /// The FROM instruction itself.
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

/// The ARGs before the first FROM, and the stages.
pub fn stages(df: &Dockerfile) -> Result<(Vec<Instruction>, Vec<Stage>), ParseError> {
    let mut globals = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            let words = expand::split_raw(&ins.args, df.escape);
            let name = match words.as_slice() {
                [_] => None,
                [_, kw, name] if kw.eq_ignore_ascii_case("as") => {
                    let n = name.to_ascii_lowercase();
                    if !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                        || !n.starts_with(|c: char| c.is_ascii_alphabetic())
                    {
                        return Err(ParseError {
                            line: ins.line,
                            msg: format!(
                                "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                            ),
                        });
                    }
                    if stages.iter().any(|s| s.name.as_deref() == Some(&n)) {
                        return Err(ParseError {
                            line: ins.line,
                            msg: format!("duplicate stage name {name:?}"),
                        });
                    }
                    Some(n)
                }
                _ => {
                    return Err(ParseError {
                        line: ins.line,
                        msg: "FROM requires either one or three arguments (IMAGE [AS name])".into(),
                    });
                }
            };
            stages.push(Stage {
                index: stages.len(),
                name,
                from: ins.clone(),
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(s) => s.instructions.push(ins.clone()),
            None if ins.keyword == "ARG" => globals.push(ins.clone()),
            None => {
                return Err(ParseError {
                    line: ins.line,
                    msg: format!(
                        "{} before the first FROM: only ARG may come first",
                        ins.keyword
                    ),
                });
            }
        }
    }
    if stages.is_empty() {
        return Err(ParseError {
            line: df.instructions.last().map(|i| i.line).unwrap_or(1),
            msg: "the Dockerfile has no FROM instruction".into(),
        });
    }
    Ok((globals, stages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_globals() {
        let df = parse::parse(
            "ARG V=1\nFROM busybox:$V AS Build\nRUN x\nFROM scratch\nCOPY --from=build /a /a\n",
        )
        .unwrap();
        let (g, s) = stages(&df).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name.as_deref(), Some("build"));
        assert_eq!(s[1].instructions[0].keyword, "COPY");
        let bad = parse::parse("RUN x\nFROM y\n").unwrap();
        assert!(
            stages(&bad)
                .unwrap_err()
                .msg
                .contains("before the first FROM")
        );
        let dup = parse::parse("FROM a AS x\nFROM b AS X\n").unwrap();
        assert!(
            stages(&dup)
                .unwrap_err()
                .msg
                .contains("duplicate stage name")
        );
        let empty = parse::parse("# nothing\n").unwrap();
        assert!(stages(&empty).unwrap_err().msg.contains("no FROM"));
    }
}
