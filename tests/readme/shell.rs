//! Enough of the shell's word splitting to find the `kpki …` invocations in a command
//! line and hand their words to clap: quotes, backslashes, `$(…)`, `# comments`,
//! `VAR=value` prefixes, and the operators that end a command (`|`, `||`, `&&`, `;`,
//! `&`) or redirect it (`>`, `>>`, `<`, `2>&1`, whose target is dropped).
//! Globs and `$variables` stay as written: clap sees them as plain words.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    /// A command separator: `|`, `||`, `&&`, `;`, `&`.
    Sep,
    /// A redirection: the next word is its target, not an argument.
    Redirect,
}

fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut word = String::new();
    // Whether a word is being built (an empty quoted word "" counts).
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let end_word = |toks: &mut Vec<Tok>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            toks.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => end_word(&mut toks, &mut word, &mut in_word),
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => word.push(x),
                        None => return Err("unclosed '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => word.push(x),
                            Some(x) => {
                                word.push('\\');
                                word.push(x);
                            }
                            None => return Err("unclosed \"".into()),
                        },
                        Some(x) => word.push(x),
                        None => return Err("unclosed \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    word.push(x);
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                // A command substitution stays one word, as written.
                in_word = true;
                word.push('$');
                let mut depth = 0;
                for x in chars.by_ref() {
                    word.push(x);
                    match x {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if depth != 0 {
                    return Err("unclosed $(".into());
                }
            }
            '|' | '&' | ';' => {
                if c == '&' && word.is_empty() && toks.last() == Some(&Tok::Redirect) {
                    // `>&1`: part of the redirection.
                    continue;
                }
                end_word(&mut toks, &mut word, &mut in_word);
                if (c == '|' || c == '&') && chars.peek() == Some(&c) {
                    chars.next();
                }
                toks.push(Tok::Sep);
            }
            '>' | '<' => {
                // `2>`: the digits before are the descriptor, not a word.
                if in_word && word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                end_word(&mut toks, &mut word, &mut in_word);
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                if chars.peek() == Some(&'&') {
                    // `>&1`: a descriptor, not a file.
                    chars.next();
                    while chars
                        .peek()
                        .is_some_and(|d| d.is_ascii_digit() || *d == '-')
                    {
                        chars.next();
                    }
                    continue;
                }
                toks.push(Tok::Redirect);
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut toks, &mut word, &mut in_word);
    Ok(toks)
}

/// `NAME=value`, a variable assignment before a command.
fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// The simple commands of `line`, each as its words (assignments and redirections
/// removed). `export A=1 B=2` is the command `export`, `A=1 cmd` is `cmd`.
pub fn commands(line: &str) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut redirect = false;
    for t in tokenize(line)? {
        match t {
            Tok::Sep => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            Tok::Redirect => redirect = true,
            Tok::Word(w) => {
                if std::mem::take(&mut redirect) {
                    continue;
                }
                if cur.is_empty() && is_assignment(&w) {
                    continue;
                }
                cur.push(w);
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// The `kpki …` invocations of `line`, each as the words clap gets (`kpki` first).
pub fn kpki_invocations(line: &str) -> Result<Vec<Vec<String>>, String> {
    Ok(commands(line)?
        .into_iter()
        .filter(|c| c[0] == "kpki")
        .collect())
}

/// The absolute paths `line` names (outside comments), `/dev/null` aside: words, and
/// the parts of `A=x:y` words, that start with `/`.
pub fn absolute_paths(line: &str) -> Result<Vec<String>, String> {
    Ok(tokenize(line)?
        .into_iter()
        .filter_map(|t| match t {
            Tok::Word(w) => Some(w),
            _ => None,
        })
        .flat_map(|w| {
            w.split(['=', ':'])
                .filter(|p| p.starts_with('/') && *p != "/dev/null")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(line: &str) -> Vec<Vec<String>> {
        kpki_invocations(line).unwrap()
    }

    fn w(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_like_the_shell() {
        assert_eq!(
            k("cargo build --release && export PATH=$PWD/x:$PATH A=b && kpki apply --out staged"),
            vec![w(&["kpki", "apply", "--out", "staged"])]
        );
        assert_eq!(
            k("KPKI_PASSPHRASE=… kpki init --passphrase  # a passphrase"),
            vec![w(&["kpki", "init", "--passphrase"])]
        );
        assert_eq!(
            k("kpki audit --format json | jq '.certificates[] | select(.state != \"ok\")'"),
            vec![w(&["kpki", "audit", "--format", "json"])]
        );
        assert_eq!(
            k("kpki sign --csr a.csr -p etcd-peer > etcd.crt 2>&1"),
            vec![w(&["kpki", "sign", "--csr", "a.csr", "-p", "etcd-peer"])]
        );
        assert_eq!(
            k("kpki audit --quiet || mail -s \"certificates\" ops@example.com"),
            vec![w(&["kpki", "audit", "--quiet"])]
        );
        assert_eq!(
            k("old=$(ls pki/ca/root)   # the id"),
            Vec::<Vec<String>>::new()
        );
        assert_eq!(
            k("kpki store retire --ca $old; kpki ledger --json"),
            vec![
                w(&["kpki", "store", "retire", "--ca", "$old"]),
                w(&["kpki", "ledger", "--json"])
            ]
        );
        assert_eq!(
            k("kpki inspect --json pki/issued/*/*/*/cert.pem"),
            vec![w(&[
                "kpki",
                "inspect",
                "--json",
                "pki/issued/*/*/*/cert.pem"
            ])]
        );
        assert_eq!(k("# kpki init"), Vec::<Vec<String>>::new());
        assert_eq!(
            absolute_paths("kpki audit --output /var/x.prom > /dev/null  # /etc").unwrap(),
            vec!["/var/x.prom"]
        );
        assert_eq!(
            absolute_paths("export PATH=$PWD/t:$PATH K=/etc/k; cat >/tmp/x").unwrap(),
            vec!["/etc/k", "/tmp/x"]
        );
        assert_eq!(k("echo 'kpki init'"), Vec::<Vec<String>>::new());
    }
}
