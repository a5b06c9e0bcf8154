//! Reads a Markdown file into its fenced code blocks, the `readme-test:` markers before
//! them, and the inline code spans of its prose. See the crate doc (main.rs) for the
//! conventions.

use std::path::Path;

/// What a fenced block is, by the first word of its info string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sh`, `bash`, `shell`: a script, run as a whole.
    Script,
    /// `console`: `$ command` lines, each followed by the output it must print.
    Console,
    /// Anything else (`toml`, `text`, `json`, none, …): not a command, not run.
    Other,
}

/// A `<!-- readme-test: … -->` marker before a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `skip: REASON`: the block is not run.
    Skip { reason: String },
    /// ``skip `COMMAND`: REASON``: the block's commands that start with COMMAND are not run.
    SkipCommand { command: String, reason: String },
    /// `each in a new directory` [``after `SETUP` ``]: the block's commands are
    /// alternatives; each runs in a new directory of its own (after SETUP, when given).
    Each { after: Option<String> },
}

#[derive(Debug, Clone)]
pub struct Block {
    /// Line of the opening fence (1-based).
    pub line: usize,
    pub info: String,
    pub kind: Kind,
    /// The lines between the fences, with their line numbers.
    pub body: Vec<(usize, String)>,
    pub directives: Vec<Directive>,
}

impl Block {
    pub fn skip_reason(&self) -> Option<&str> {
        self.directives.iter().find_map(|d| match d {
            Directive::Skip { reason } => Some(reason.as_str()),
            _ => None,
        })
    }

    pub fn each(&self) -> Option<Option<&str>> {
        self.directives.iter().find_map(|d| match d {
            Directive::Each { after } => Some(after.as_deref()),
            _ => None,
        })
    }

    /// The `skip `COMMAND`` markers: (command prefix, reason).
    pub fn skipped_commands(&self) -> Vec<(&str, &str)> {
        self.directives
            .iter()
            .filter_map(|d| match d {
                Directive::SkipCommand { command, reason } => {
                    Some((command.as_str(), reason.as_str()))
                }
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug)]
pub struct Doc {
    /// The path as shown in messages (relative to the repository).
    pub name: String,
    pub blocks: Vec<Block>,
    /// `<!-- readme-test: not a guide: REASON -->`: a report (benchmarks), whose commands
    /// are not run or checked.
    pub not_a_guide: Option<String>,
    /// Inline code spans of the prose, with the line they start on.
    pub spans: Vec<(usize, String)>,
}

const MARKER: &str = "readme-test:";

/// The marker text of a line `<!-- readme-test: TEXT -->`, if it is one.
fn marker(line: &str) -> Option<&str> {
    let t = line.trim();
    let inner = t.strip_prefix("<!--")?.strip_suffix("-->")?.trim();
    inner.strip_prefix(MARKER).map(str::trim)
}

/// `` `X` rest `` → (X, rest).
fn backticked(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('`')?;
    let end = s.find('`')?;
    Some((&s[..end], &s[end + 1..]))
}

fn parse_directive(text: &str) -> Result<Directive, String> {
    if let Some(reason) = text.strip_prefix("skip:") {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err("`skip:` needs a reason".into());
        }
        return Ok(Directive::Skip {
            reason: reason.into(),
        });
    }
    if let Some(rest) = text.strip_prefix("skip ") {
        let (command, rest) = backticked(rest.trim_start())
            .ok_or("expected ``skip `COMMAND`: REASON`` or `skip: REASON`")?;
        let reason = rest
            .trim_start()
            .strip_prefix(':')
            .map(str::trim)
            .unwrap_or("");
        if command.trim().is_empty() || reason.is_empty() {
            return Err("``skip `COMMAND`: REASON`` needs a command and a reason".into());
        }
        return Ok(Directive::SkipCommand {
            command: command.trim().into(),
            reason: reason.into(),
        });
    }
    if let Some(rest) = text.strip_prefix("each in a new directory") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(Directive::Each { after: None });
        }
        let setup = rest
            .strip_prefix("after")
            .and_then(|r| backticked(r.trim_start()))
            .filter(|(cmd, tail)| !cmd.trim().is_empty() && tail.trim().is_empty())
            .ok_or("expected ``each in a new directory after `SETUP` ``")?;
        return Ok(Directive::Each {
            after: Some(setup.0.trim().into()),
        });
    }
    Err(format!("unknown marker `{text}`"))
}

/// A fence opening or closing line: (indent, fence char, fence length, info string).
fn fence(line: &str) -> Option<(usize, char, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let c = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = rest.chars().take_while(|x| *x == c).count();
    if n < 3 {
        return None;
    }
    let info = rest[n..].trim();
    if c == '`' && info.contains('`') {
        return None;
    }
    Some((indent, c, n, info))
}

fn kind(info: &str) -> Kind {
    match info.split_whitespace().next().unwrap_or("") {
        "sh" | "bash" | "shell" => Kind::Script,
        "console" => Kind::Console,
        _ => Kind::Other,
    }
}

/// Inline code spans (`` `x` ``, ``` ``x`` ```) of `prose`: the text with fenced blocks
/// and markers blanked out, so line numbers stay. A span may wrap across lines.
fn spans(prose: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let text = prose.join("\n");
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i] == b'`' {
            i += 1;
        }
        let n = i - start;
        // The closing run: exactly n backticks.
        let mut j = i;
        let mut close = None;
        while j < b.len() {
            if b[j] == b'`' {
                let s = j;
                while j < b.len() && b[j] == b'`' {
                    j += 1;
                }
                if j - s == n {
                    close = Some(s);
                    break;
                }
            } else {
                j += 1;
            }
        }
        let Some(close) = close else { continue };
        let content = text[i..close].replace('\n', " ");
        let line = text[..start].matches('\n').count() + 1;
        out.push((line, content.trim().to_string()));
        i = close + n;
    }
    out
}

pub fn parse(name: &str, text: &str) -> Result<Doc, String> {
    let mut doc = Doc {
        name: name.to_string(),
        blocks: Vec::new(),
        not_a_guide: None,
        spans: Vec::new(),
    };
    let mut pending: Vec<(usize, Directive)> = Vec::new();
    let mut prose: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, line)) = lines.next() {
        if let Some(m) = marker(line) {
            prose.push(String::new());
            if let Some(reason) = m.strip_prefix("not a guide:") {
                if reason.trim().is_empty() {
                    return Err(format!("{name}:{n}: `not a guide:` needs a reason"));
                }
                doc.not_a_guide = Some(reason.trim().into());
                continue;
            }
            let d = parse_directive(m).map_err(|e| format!("{name}:{n}: {e}"))?;
            pending.push((n, d));
            continue;
        }
        if line.contains(MARKER) {
            return Err(format!(
                "{name}:{n}: a marker is one line: <!-- readme-test: … -->"
            ));
        }
        let Some((indent, c, len, info)) = fence(line) else {
            if !line.trim().is_empty() {
                if let Some((m, _)) = pending.first() {
                    return Err(format!(
                        "{name}:{m}: a readme-test marker must come right before a code block"
                    ));
                }
            }
            prose.push(line.to_string());
            continue;
        };
        prose.push(String::new());
        let mut body = Vec::new();
        let mut closed = false;
        for (m, l) in lines.by_ref() {
            prose.push(String::new());
            if let Some((_, c2, len2, rest)) = fence(l) {
                if c2 == c && len2 >= len && rest.is_empty() {
                    closed = true;
                    break;
                }
            }
            let strip = l.len() - l.trim_start_matches(' ').len();
            body.push((m, l[strip.min(indent)..].to_string()));
        }
        if !closed {
            return Err(format!("{name}:{n}: code block is not closed"));
        }
        doc.blocks.push(Block {
            line: n,
            info: info.to_string(),
            kind: kind(info),
            body,
            directives: pending.drain(..).map(|(_, d)| d).collect(),
        });
    }
    if let Some((m, _)) = pending.first() {
        return Err(format!(
            "{name}:{m}: a readme-test marker must come right before a code block"
        ));
    }
    doc.spans = spans(&prose);
    Ok(doc)
}

pub fn read(path: &Path, name: &str) -> Doc {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(name, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// A `console` block's commands: (line, command, expected output lines).
pub fn console_commands(block: &Block) -> Result<Vec<(usize, String, Vec<String>)>, String> {
    let mut out: Vec<(usize, String, Vec<String>)> = Vec::new();
    for (n, l) in &block.body {
        if let Some(cmd) = l
            .strip_prefix("$ ")
            .or(if l == "$" { Some("") } else { None })
        {
            out.push((*n, cmd.trim().to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.2.push(l.trim_end().to_string());
        } else if !l.trim().is_empty() {
            return Err(format!(
                "line {n}: a console block starts with a `$ ` command line"
            ));
        }
    }
    for c in &mut out {
        while c.2.last().is_some_and(|l| l.is_empty()) {
            c.2.pop();
        }
    }
    Ok(out)
}

/// A script block's commands: every line that is not blank or a comment.
pub fn script_commands(block: &Block) -> Vec<(usize, String)> {
    block
        .body
        .iter()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, l)| (*n, l.trim().to_string()))
        .collect()
}

/// The exit status a console command must end with: `N` from a trailing comment that
/// ends in `(exit N)`, else 0.
pub fn expected_status(command: &str) -> Result<i32, String> {
    let t = command.trim_end();
    let Some(open) = t.rfind("(exit ") else {
        return Ok(0);
    };
    if !t.ends_with(')') || !t[..open].contains('#') {
        return Ok(0);
    }
    let n = t[open + 6..t.len() - 1].trim();
    n.parse()
        .map_err(|_| format!("`(exit {n})`: the exit status is a number"))
}
