//! YAML from files kpki did not write, parsed by yaml-rust2 within a budget.
//!
//! yaml-rust2 expands an alias by copying the anchored node, so a few hundred bytes of
//! nested aliases (a "billion laughs") become gigabytes. Before a document is built, its
//! events are counted: every alias adds the size of the node it names, and once the
//! added nodes pass [`ALIAS_BUDGET`] the document is refused, before anything is copied.
//! Real configs rarely use aliases at all. Nesting is bounded by yaml-rust2 itself.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{ScanError, Yaml, YamlLoader};

/// How many nodes alias expansion may add to a document. A scalar counts one node per
/// 64 bytes of text (at least one), so a long string aliased many times is counted too.
pub const ALIAS_BUDGET: u64 = 10_000;

/// Why YAML text was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("not valid YAML: {0}")]
    Syntax(#[from] ScanError),
    #[error(
        "YAML aliases would expand it past {budget} nodes (an alias bomb?); not read: write it out without aliases"
    )]
    Aliases { budget: u64 },
    #[error("empty document")]
    Empty,
}

/// The weight of one node: one, plus one per 64 bytes of scalar text.
fn scalar_weight(text: &str) -> u64 {
    1 + text.len() as u64 / 64
}

/// Walks the events of `text` and fails once alias expansion passes `budget`.
fn check_aliases(text: &str, budget: u64) -> Result<(), YamlError> {
    let mut parser = Parser::new_from_str(text);
    // Open collections: (weight so far, anchor id).
    let mut open: Vec<(u64, usize)> = Vec::new();
    let mut anchors: HashMap<usize, u64> = HashMap::new();
    let mut added: u64 = 0;
    loop {
        let (event, _) = parser.next_token()?;
        let (weight, anchor) = match event {
            Event::StreamEnd => return Ok(()),
            Event::DocumentStart => {
                // Anchors are per document.
                anchors.clear();
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((1, anchor));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => open.pop().unwrap_or((1, 0)),
            Event::Scalar(ref text, _, anchor, _) => (scalar_weight(text), anchor),
            Event::Alias(id) => {
                let w = anchors.get(&id).copied().unwrap_or(1);
                added = added.saturating_add(w);
                if added > budget {
                    return Err(YamlError::Aliases { budget });
                }
                (w, 0)
            }
            _ => continue,
        };
        if anchor > 0 {
            anchors.insert(anchor, weight);
        }
        if let Some(parent) = open.last_mut() {
            parent.0 = parent.0.saturating_add(weight);
        }
    }
}

/// Every document of `text`, refused when its aliases would expand past [`ALIAS_BUDGET`].
pub fn load(text: &str) -> Result<Vec<Yaml>, YamlError> {
    load_with_budget(text, ALIAS_BUDGET)
}

fn load_with_budget(text: &str, budget: u64) -> Result<Vec<Yaml>, YamlError> {
    check_aliases(text, budget)?;
    Ok(YamlLoader::load_from_str(text)?)
}

/// The first document of `text` ([`load`]).
pub fn load_first(text: &str) -> Result<Yaml, YamlError> {
    let mut docs = load(text)?;
    if docs.is_empty() {
        return Err(YamlError::Empty);
    }
    Ok(docs.swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nine levels of nine aliases each: 9^9 strings once expanded, from 342 bytes.
    fn laughs() -> String {
        let mut s = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let mut prev = 'a';
        for c in 'b'..='i' {
            let refs = vec![format!("*{prev}"); 9].join(",");
            s.push_str(&format!("{c}: &{c} [{refs}]\n"));
            prev = c;
        }
        s
    }

    #[test]
    fn an_alias_bomb_is_refused_before_it_is_expanded() {
        let e = load(&laughs()).unwrap_err();
        assert!(
            matches!(
                e,
                YamlError::Aliases {
                    budget: ALIAS_BUDGET
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("aliases would expand"), "{e}");
    }

    #[test]
    fn a_long_string_aliased_often_counts_its_length() {
        let long = "x".repeat(64 * 1000);
        let refs = vec!["*s"; 20].join(", ");
        let text = format!("a: &s \"{long}\"\nb: [{refs}]\n");
        assert!(load_with_budget(&text, 100_000).is_ok());
        assert!(matches!(
            load_with_budget(&text, 10_000),
            Err(YamlError::Aliases { .. })
        ));
    }

    #[test]
    fn ordinary_aliases_and_documents_load() {
        let text = "base: &b {user: admin, cluster: c}\nctx: *b\n---\nsecond: 2\n";
        let docs = load(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["ctx"]["user"].as_str(), Some("admin"));
        assert_eq!(
            load_first("kind: Config").unwrap()["kind"].as_str(),
            Some("Config")
        );
        assert!(matches!(load_first(""), Err(YamlError::Empty)));
        assert!(matches!(load_first("a: ["), Err(YamlError::Syntax(_))));
    }
}
