//! A small, strict template language for the rendered configs: a subset of Mustache.
//!
//! - `{{a.b.c}}` inserts a string value (no escaping: values come from a validated
//!   inventory and from profiles, and the context pre-quotes what needs quoting);
//! - `{{#name}}…{{/name}}` repeats its body for each item of a list (the item's keys are
//!   looked up first), or keeps it when `name` is `true`;
//! - `{{^name}}…{{/name}}` keeps its body when `name` is `false` or an empty list;
//! - `{{! comment }}` is dropped.
//!
//! A section or comment tag alone on its line takes the line with it, so templates read
//! like the files they make. Unlike Mustache, a name that is not in the context is an
//! error naming the template and line, never an empty string: a typo in a user's template
//! must not silently drop a certificate path from a config.

use std::collections::{BTreeMap, BTreeSet};

/// A value a template can name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Bool(bool),
    List(Vec<Scope>),
    Map(Scope),
}

/// Named values; keys may contain letters, digits, `_` and `-`.
pub type Scope = BTreeMap<String, Value>;

/// Why a template cannot be parsed or rendered; `line` is 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{template}:{line}: {message}")]
pub struct TemplateError {
    pub template: String,
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Var {
        name: String,
        line: usize,
    },
    Section {
        name: String,
        inverted: bool,
        line: usize,
        body: Vec<Node>,
    },
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// Drops the line of a tag that stands alone on it (Mustache's "standalone" rule).
fn strip_standalone(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        let standalone = t.starts_with("{{")
            && t.ends_with("}}")
            && t[2..].find("{{").is_none()
            && matches!(t.as_bytes().get(2), Some(b'#' | b'^' | b'/' | b'!'));
        if standalone {
            out.push_str(t);
            // Keep a marker of the dropped newline so line numbers stay right.
            if line.ends_with('\n') {
                out.push_str("{{!\n}}");
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

impl Template {
    /// Parses `text`; `name` is used in messages (the template's relative path).
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let err = |line: usize, message: String| TemplateError {
            template: name.to_owned(),
            line,
            message,
        };
        let src = strip_standalone(text);
        // Stack of open sections: (name, inverted, line, nodes so far).
        let mut stack: Vec<(String, bool, usize, Vec<Node>)> =
            vec![(String::new(), false, 0, vec![])];
        let mut rest = src.as_str();
        let mut line = 1;
        while let Some(open) = rest.find("{{") {
            let text = &rest[..open];
            if !text.is_empty() {
                stack
                    .last_mut()
                    .expect("root")
                    .3
                    .push(Node::Text(text.to_owned()));
            }
            line += text.matches('\n').count();
            let close = rest[open..]
                .find("}}")
                .ok_or_else(|| err(line, "'{{' without a closing '}}'".into()))?;
            let tag = &rest[open + 2..open + close];
            let tag_line = line;
            line += tag.matches('\n').count();
            rest = &rest[open + close + 2..];
            let (sigil, body) = match tag.chars().next() {
                Some(c @ ('#' | '^' | '/' | '!')) => (Some(c), tag[1..].trim()),
                _ => (None, tag.trim()),
            };
            if sigil == Some('!') {
                continue;
            }
            if !valid_name(body) {
                return Err(err(
                    tag_line,
                    format!("'{{{{{tag}}}}}' is not a valid tag; names are dotted words such as node.ip"),
                ));
            }
            match sigil {
                None => stack.last_mut().expect("root").3.push(Node::Var {
                    name: body.to_owned(),
                    line: tag_line,
                }),
                Some(c @ ('#' | '^')) => stack.push((body.to_owned(), c == '^', tag_line, vec![])),
                Some(_) => {
                    let (open_name, inverted, open_line, nodes) =
                        stack.pop().expect("at least the root");
                    if stack.is_empty() {
                        return Err(err(
                            tag_line,
                            format!("'{{{{/{body}}}}}' closes no open section"),
                        ));
                    }
                    if open_name != body {
                        return Err(err(
                            tag_line,
                            format!("'{{{{/{body}}}}}' closes section '{open_name}' opened on line {open_line}"),
                        ));
                    }
                    stack.last_mut().expect("root").3.push(Node::Section {
                        name: open_name,
                        inverted,
                        line: open_line,
                        body: nodes,
                    });
                }
            }
        }
        if !rest.is_empty() {
            stack
                .last_mut()
                .expect("root")
                .3
                .push(Node::Text(rest.to_owned()));
        }
        if stack.len() > 1 {
            let (n, _, l, _) = stack.pop().expect("open section");
            return Err(err(
                l,
                format!("section '{n}' is never closed with '{{{{/{n}}}}}'"),
            ));
        }
        Ok(Template {
            name: name.to_owned(),
            nodes: stack.pop().expect("root").3,
        })
    }

    /// Renders against `ctx`. Every name looked up is added to `used` (dotted, as written
    /// in the template, resolved against the outermost scope), so callers can tell which
    /// certificate paths a rendered file names.
    pub fn render(
        &self,
        ctx: &Scope,
        used: &mut BTreeSet<String>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut scopes: Vec<&Scope> = vec![ctx];
        self.walk(&self.nodes, &mut scopes, &mut out, used)?;
        Ok(out)
    }

    fn lookup<'c>(
        &self,
        scopes: &[&'c Scope],
        name: &str,
        line: usize,
    ) -> Result<&'c Value, TemplateError> {
        let mut parts = name.split('.');
        let first = parts.next().expect("valid names have a segment");
        let mut v = scopes
            .iter()
            .rev()
            .find_map(|s| s.get(first))
            .ok_or_else(|| self.unknown(name, line))?;
        for p in parts {
            v = match v {
                Value::Map(m) => m.get(p).ok_or_else(|| self.unknown(name, line))?,
                _ => return Err(self.unknown(name, line)),
            };
        }
        Ok(v)
    }

    fn unknown(&self, name: &str, line: usize) -> TemplateError {
        TemplateError {
            template: self.name.clone(),
            line,
            message: format!("unknown name '{{{{{name}}}}}'"),
        }
    }

    fn walk<'c>(
        &self,
        nodes: &[Node],
        scopes: &mut Vec<&'c Scope>,
        out: &mut String,
        used: &mut BTreeSet<String>,
    ) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Var { name, line } => {
                    used.insert(name.clone());
                    match self.lookup(scopes, name, *line)? {
                        Value::Str(s) => out.push_str(s),
                        other => {
                            return Err(TemplateError {
                                template: self.name.clone(),
                                line: *line,
                                message: format!(
                                "'{{{{{name}}}}}' is a {}, not a text value; use it as a section",
                                kind(other)
                            ),
                            })
                        }
                    }
                }
                Node::Section {
                    name,
                    inverted,
                    line,
                    body,
                } => {
                    let v: &'c Value = self.lookup(scopes, name, *line)?;
                    match (v, inverted) {
                        (Value::Bool(b), _) => {
                            if *b != *inverted {
                                self.walk(body, scopes, out, used)?;
                            }
                        }
                        (Value::List(items), false) => {
                            for item in items {
                                scopes.push(item);
                                self.walk(body, scopes, out, used)?;
                                scopes.pop();
                            }
                        }
                        (Value::List(items), true) => {
                            if items.is_empty() {
                                self.walk(body, scopes, out, used)?;
                            }
                        }
                        (Value::Map(m), false) => {
                            scopes.push(m);
                            self.walk(body, scopes, out, used)?;
                            scopes.pop();
                        }
                        (other, _) => {
                            return Err(TemplateError {
                                template: self.name.clone(),
                                line: *line,
                                message: format!(
                                    "section '{name}' needs a list or a yes/no value, not a {}",
                                    kind(other)
                                ),
                            })
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Str(_) => "text value",
        Value::Bool(_) => "yes/no value",
        Value::List(_) => "list",
        Value::Map(_) => "group of values",
    }
}

/// Builds a [`Scope`] from pairs.
pub fn scope<const N: usize>(pairs: [(&str, Value); N]) -> Scope {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A text value.
pub fn s(v: impl ToString) -> Value {
    Value::Str(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Scope {
        scope([
            (
                "node",
                Value::Map(scope([("name", s("etcd01")), ("ip", s("10.0.0.1"))])),
            ),
            ("yes", Value::Bool(true)),
            ("no", Value::Bool(false)),
            (
                "members",
                Value::List(vec![
                    scope([("name", s("a")), ("ip", s("1"))]),
                    scope([("name", s("b")), ("ip", s("2"))]),
                ]),
            ),
            ("empty", Value::List(vec![])),
        ])
    }

    fn render(t: &str) -> Result<String, TemplateError> {
        Template::parse("t", t)?.render(&ctx(), &mut BTreeSet::new())
    }

    #[test]
    fn variables_sections_and_standalone_lines() {
        assert_eq!(
            render("N={{node.name}} {{ node.ip }}\n").unwrap(),
            "N=etcd01 10.0.0.1\n"
        );
        let t = "a\n{{#members}}\n  - {{name}}={{ip}} on {{node.name}}\n{{/members}}\nb\n";
        assert_eq!(
            render(t).unwrap(),
            "a\n  - a=1 on etcd01\n  - b=2 on etcd01\nb\n"
        );
        assert_eq!(
            render("{{#yes}}Y{{/yes}}{{^no}}N{{/no}}{{#no}}X{{/no}}").unwrap(),
            "YN"
        );
        assert_eq!(render("{{^empty}}none{{/empty}}").unwrap(), "none");
        assert_eq!(render("x\n{{! a comment }}\ny").unwrap(), "x\ny");
    }

    #[test]
    fn errors_name_the_line() {
        let e = render("a\nb {{node.nmae}}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown name '{{node.nmae}}'"), "{e}");
        let e = render("a\n{{#members}}\nx\n").unwrap_err();
        assert_eq!((e.line, e.message.contains("never closed")), (2, true));
        let e = render("{{#yes}}\n{{/no}}\n").unwrap_err();
        assert!(e.message.contains("opened on line 1"), "{e}");
        assert!(render("{{members}}").unwrap_err().message.contains("list"));
        assert!(render("{{a b}}").is_err());
        assert!(render("{{node.name").is_err());
        let e = render("l1\n{{#yes}}\nl3\n{{/yes}}\n{{bad}}\n").unwrap_err();
        assert_eq!(e.line, 5, "standalone lines keep line numbers: {e}");
    }

    #[test]
    fn records_names_used() {
        let mut used = BTreeSet::new();
        Template::parse("t", "{{node.ip}}{{#members}}{{name}}{{/members}}")
            .unwrap()
            .render(&ctx(), &mut used)
            .unwrap();
        assert!(used.contains("node.ip") && used.contains("name"));
    }
}
