//! The build context: a directory (or a tar from stdin, unpacked through
//! the image store's safe unpacker first), `.dockerignore` with Docker's
//! pattern rules, and the content digests that COPY/ADD cache keys use
//! (bytes and metadata, never mtimes). Every read goes through the
//! context's own directory fd without following symlinks out of it: a
//! symlink in the context is copied as a symlink, and a source path that
//! crosses one is resolved inside the context (`RESOLVE_IN_ROOT`).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use nix::fcntl::OFlag;
use sha2::{Digest as _, Sha256};

use super::fsops;

/// One `.dockerignore` line.
#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<String>,
    exception: bool,
}

/// `.dockerignore` rules: the last matching pattern decides; a pattern
/// matches a path or any of its parents; `**` spans directories; `!`
/// makes an exception.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exception, p) = match l.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, l),
            };
            let segments: Vec<String> = clean(p)
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(String::from)
                .collect();
            if segments.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                segments,
                exception,
            });
        }
        Ignore { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Is `rel` (a path below the context root) left out?
    pub fn excluded(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = false;
        for p in &self.patterns {
            // The path itself or one of its parents.
            let hit = (1..=parts.len()).any(|n| match_segments(&p.segments, &parts[..n]));
            if hit {
                out = !p.exception;
            }
        }
        out
    }

    /// Could an exception re-include something below the excluded `dir`?
    fn may_include_below(&self, dir: &str) -> bool {
        let parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
        self.patterns.iter().any(|p| {
            p.exception
                && (p.segments.iter().any(|s| s == "**")
                    || (p.segments.len() > parts.len()
                        && match_segments(&p.segments[..parts.len()], &parts)))
        })
    }
}

/// `path.Clean` of a slash path, without a leading `/`.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn match_segments(pat: &[String], parts: &[&str]) -> bool {
    match pat.first() {
        None => parts.is_empty(),
        Some(s) if s == "**" => (0..=parts.len()).any(|i| match_segments(&pat[1..], &parts[i..])),
        Some(s) => {
            !parts.is_empty() && glob_match(s, parts[0]) && match_segments(&pat[1..], &parts[1..])
        }
    }
}

/// Go's `filepath.Match` within one path segment: `*`, `?`, `[...]`
/// (with ranges and `^`/`!` negation) and `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| glob_at(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(c) = n.first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(1), Some('^') | Some('!'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (p[i] != ']' || first) {
                first = false;
                let lo = if p[i] == '\\' && i + 1 < p.len() {
                    i += 1;
                    p[i]
                } else {
                    p[i]
                };
                if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                    let hi = p[i + 2];
                    if lo <= *c && *c <= hi {
                        matched = true;
                    }
                    i += 3;
                } else {
                    if lo == *c {
                        matched = true;
                    }
                    i += 1;
                }
            }
            if i >= p.len() {
                return false; // unterminated class matches nothing
            }
            matched != negate && glob_at(&p[i + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

/// Does a COPY source contain glob characters?
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The build context as the steps read it.
pub struct BuildContext {
    pub root: PathBuf,
    pub fd: OwnedFd,
    pub ignore: Ignore,
    /// Every path kept (not ignored), sorted; directories too.
    pub paths: Vec<String>,
    /// A context unpacked from a tar, removed with us.
    _tmp: Option<tempfile::TempDir>,
}

impl BuildContext {
    /// A context directory; `ignore_file` names the `.dockerignore` to
    /// use (a `<Dockerfile>.dockerignore` beside the Dockerfile wins over
    /// the context's own).
    pub fn open(
        root: &Path,
        ignore_file: Option<&Path>,
        tmp: Option<tempfile::TempDir>,
    ) -> Result<BuildContext> {
        let meta = std::fs::metadata(root).with_context(|| {
            format!(
                "unable to prepare context: path {:?} not found",
                root.display().to_string()
            )
        })?;
        if !meta.is_dir() {
            bail!(
                "unable to prepare context: {} is not a directory",
                root.display()
            );
        }
        let fd = fsops::open_dir(root)
            .with_context(|| format!("open build context {}", root.display()))?;
        let ignore_text = match ignore_file {
            Some(p) => {
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?
            }
            None => {
                let mut s = String::new();
                if let Ok(f) = fsops::open_in(&fd, Path::new(".dockerignore"), OFlag::O_RDONLY) {
                    std::fs::File::from(f)
                        .take(1 << 20)
                        .read_to_string(&mut s)
                        .ok();
                }
                s
            }
        };
        let ignore = Ignore::parse(&ignore_text);
        let mut ctx = BuildContext {
            root: root.to_path_buf(),
            fd,
            ignore,
            paths: Vec::new(),
            _tmp: tmp,
        };
        let mut paths = Vec::new();
        ctx.walk("", &mut paths)?;
        paths.sort();
        ctx.paths = paths;
        Ok(ctx)
    }

    fn walk(&self, rel: &str, out: &mut Vec<String>) -> Result<()> {
        let dir = if rel.is_empty() {
            fsops::reopen_dir(&self.fd)?
        } else {
            fsops::open_in(
                &self.fd,
                Path::new(rel),
                OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            )
            .map_err(|e| anyhow::anyhow!("open {rel} in the context: {e}"))?
        };
        for (name, kind) in fsops::list(&dir)? {
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let excluded = self.ignore.excluded(&child);
            let is_dir = kind == fsops::Kind::Dir;
            if !excluded {
                out.push(child.clone());
            }
            if is_dir && (!excluded || self.ignore.may_include_below(&child)) {
                self.walk(&child, out)?;
            }
        }
        Ok(())
    }

    pub fn contains(&self, rel: &str) -> bool {
        rel.is_empty() || self.paths.binary_search_by(|p| p.as_str().cmp(rel)).is_ok()
    }

    /// The kept paths under `rel` (a directory), itself excluded.
    pub fn below<'a>(&'a self, rel: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let start = self.paths.partition_point(|p| p.as_str() < prefix.as_str());
        self.paths[start..]
            .iter()
            .take_while(move |p| p.starts_with(&prefix))
    }

    /// COPY sources matching `pattern` (a path or a glob, relative to the
    /// context root).
    pub fn matches(&self, pattern: &str) -> Vec<String> {
        let pat: Vec<String> = clean(pattern)
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if pat.is_empty() {
            return vec![String::new()];
        }
        self.paths
            .iter()
            .filter(|p| {
                let parts: Vec<&str> = p.split('/').collect();
                parts.len() == pat.len() && pat.iter().zip(&parts).all(|(a, b)| glob_match(a, b))
            })
            .cloned()
            .collect()
    }
}

/// The digest of what a COPY would take from a source tree: for every
/// path (sorted) its name, type, mode, size, link target and content
/// hash. Owners and times do not count.
pub fn digest_tree(
    root: &OwnedFd,
    rels: &[String],
    visible: &dyn Fn(&str) -> bool,
) -> Result<String> {
    let mut h = Sha256::new();
    for rel in rels {
        digest_path(root, rel, visible, &mut h)?;
    }
    Ok(hex::encode(h.finalize()))
}

fn digest_path(
    root: &OwnedFd,
    rel: &str,
    visible: &dyn Fn(&str) -> bool,
    h: &mut Sha256,
) -> Result<()> {
    let st =
        fsops::stat_in(root, Path::new(rel), true).with_context(|| format!("{rel:?} not found"))?;
    h.update(rel.as_bytes());
    h.update([0]);
    h.update(format!("{:o} {}", st.mode, st.size).as_bytes());
    match st.kind {
        fsops::Kind::Symlink => {
            let t = fsops::read_link_in(root, Path::new(rel))?;
            h.update(t.as_os_str().as_encoded_bytes());
        }
        fsops::Kind::File => {
            let f = fsops::open_in(root, Path::new(rel), OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
                .map_err(|e| anyhow::anyhow!("open {rel}: {e}"))?;
            let mut f = std::fs::File::from(f);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf).with_context(|| format!("read {rel}"))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        fsops::Kind::Dir => {
            let dir = fsops::open_in(root, Path::new(rel), OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW)
                .map_err(|e| anyhow::anyhow!("open {rel}: {e}"))?;
            for (name, _) in fsops::list(&dir)? {
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if visible(&child) {
                    digest_path(root, &child, visible, h)?;
                }
            }
        }
        fsops::Kind::Other => {}
    }
    h.update([1]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse(
            "# comment\n*.log\n!keep.log\nbuild/\n**/*.tmp\n/secret\ndocs/**/draft*\n",
        );
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(!ig.excluded("dir/a.log")); // *.log is top level only
        assert!(ig.excluded("build"));
        assert!(ig.excluded("build/out/x"));
        assert!(ig.excluded("x/y/z.tmp"));
        assert!(ig.excluded("z.tmp"));
        assert!(ig.excluded("secret"));
        assert!(ig.excluded("docs/a/b/draft1.md"));
        assert!(ig.excluded("docs/draft.md"));
        assert!(!ig.excluded("src/main.rs"));
        let ex = Ignore::parse("vendor\n!vendor/keep\n");
        assert!(ex.excluded("vendor/x"));
        assert!(!ex.excluded("vendor/keep"));
        assert!(ex.may_include_below("vendor"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("file?.c", "file1.c"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
        assert!(has_glob("src/*.rs") && !has_glob("src/main.rs"));
    }

    #[test]
    fn context_index_and_matches() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src/sub")).unwrap();
        std::fs::write(d.path().join("src/a.rs"), "a").unwrap();
        std::fs::write(d.path().join("src/b.rs"), "b").unwrap();
        std::fs::write(d.path().join("src/sub/c.rs"), "c").unwrap();
        std::fs::write(d.path().join("x.log"), "l").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "*.log\nsrc/b.rs\n").unwrap();
        let ctx = BuildContext::open(d.path(), None, None).unwrap();
        assert!(!ctx.contains("x.log"));
        assert!(!ctx.contains("src/b.rs"));
        assert_eq!(ctx.matches("src/*.rs"), ["src/a.rs"]);
        assert_eq!(
            ctx.below("src").cloned().collect::<Vec<_>>(),
            ["src/a.rs", "src/sub", "src/sub/c.rs"]
        );
        let vis = |p: &str| ctx.contains(p);
        let a = digest_tree(&ctx.fd, &["src".into()], &vis).unwrap();
        std::fs::write(d.path().join("src/b.rs"), "changed, but ignored").unwrap();
        assert_eq!(a, digest_tree(&ctx.fd, &["src".into()], &vis).unwrap());
        std::fs::write(d.path().join("src/a.rs"), "changed").unwrap();
        assert_ne!(a, digest_tree(&ctx.fd, &["src".into()], &vis).unwrap());
    }
}
