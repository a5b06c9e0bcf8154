//! Certificates and keys embedded in kubeconfigs (`certificate-authority-data`,
//! `client-certificate-data`, `client-key-data`).
//!
//! The fleet-wide scan finds them with a line scanner rather than the YAML parser
//! `render --check` reads configs with: kubectl, kubeadm and kpki write these fields one
//! per line with the base64 value on the same line, inside list items of the top-level
//! `clusters:` and `users:` sequences; the scanner tracks the current item and its `name:`,
//! keeps line numbers for messages, costs nothing on files that are not kubeconfigs, and
//! never fails on the rest of the file (exec plugins, contexts, comments). With
//! `--configs`, kubeconfigs are read through the config reader as `render --check` reads
//! them. The values decode with the same base64 crate.

use super::Embedded;
use crate::pki::pem::find;

/// One embedded value found in a kubeconfig.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    /// `certificate-authority-data`, `client-certificate-data` or `client-key-data`.
    pub name: &'static str,
    pub value: &'a str,
    /// 1-based line number, for messages.
    pub line: usize,
    pub embedded: Embedded,
}

const FIELDS: [&str; 3] = [
    "certificate-authority-data",
    "client-certificate-data",
    "client-key-data",
];

/// Whether `bytes` looks like a kubeconfig with embedded certificates.
pub(crate) fn sniff(bytes: &[u8]) -> bool {
    find(bytes, b"certificate-authority-data").is_some()
        || find(bytes, b"client-certificate-data").is_some()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    let v = v.split(" #").next().unwrap_or(v).trim();
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v)
}

/// Every embedded field of a kubeconfig, with the cluster or user entry it belongs to.
pub(crate) fn fields(text: &str) -> Vec<Field<'_>> {
    struct Item<'a> {
        dash_indent: usize,
        name: Option<&'a str>,
        fields: Vec<(&'static str, &'a str, usize)>,
    }
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut section = "";
    let mut item: Option<Item<'_>> = None;
    fn flush<'a>(item: Option<Item<'a>>, out: &mut Vec<Field<'a>>, section: &str) {
        let Some(it) = item else { return };
        for (name, value, line) in it.fields {
            let kind = match (name, section) {
                ("certificate-authority-data", _) => "cluster",
                (_, "clusters") => "cluster",
                _ => "user",
            };
            out.push(Field {
                name,
                value,
                line,
                embedded: Embedded {
                    kind,
                    key: it.name.unwrap_or("").to_owned(),
                },
            });
        }
    }
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let ind = indent(line);
        if ind == 0 && !content.starts_with('-') {
            // A new top-level key ends the current item.
            flush(item.take(), &mut out, section);
            section = content.split(':').next().unwrap_or("").trim();
            continue;
        }
        // `- ` opens a list item; its keys sit two columns right of the dash.
        let (key_indent, body) = match content.strip_prefix("- ") {
            Some(rest) => {
                let dash = ind;
                if item.as_ref().is_none_or(|it| dash <= it.dash_indent) {
                    flush(item.take(), &mut out, section);
                    item = Some(Item {
                        dash_indent: dash,
                        name: None,
                        fields: Vec::new(),
                    });
                }
                (dash + 2, rest.trim_start())
            }
            None => (ind, content),
        };
        let Some((key, value)) = body.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let it = item.get_or_insert(Item {
            dash_indent: 0,
            name: None,
            fields: Vec::new(),
        });
        if key == "name" && key_indent == it.dash_indent + 2 {
            it.name = Some(unquote(value));
        } else if let Some(f) = FIELDS.iter().find(|f| **f == key) {
            it.fields.push((f, unquote(value), n + 1));
        }
    }
    flush(item.take(), &mut out, section);
    out
}

/// Decodes standard base64 (RFC 4648 §4), ignoring whitespace; `None` on anything else.
/// The base64 crate, as `render --check` reads the same fields.
pub(crate) fn base64(input: &str) -> Option<Vec<u8>> {
    use ::base64::Engine;
    let compact: String = input.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    ::base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://192.168.3.1:443
  name: example
contexts:
- context:
    cluster: example
    user: admin
  name: admin@example
current-context: admin@example
kind: Config
users:
- name: admin
  user:
    client-certificate-data: \"Q0VSVA==\"
    client-key-data: S0VZ
- name: other
  user:
    exec:
      env:
      - name: FOO
        value: bar
";

    #[test]
    fn finds_fields_with_their_entries() {
        let f = fields(KUBECONFIG);
        let got: Vec<(&str, &str, &str, &str)> = f
            .iter()
            .map(|f| (f.name, f.value, f.embedded.kind, f.embedded.key.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("certificate-authority-data", "Q0E=", "cluster", "example"),
                ("client-certificate-data", "Q0VSVA==", "user", "admin"),
                ("client-key-data", "S0VZ", "user", "admin"),
            ]
        );
        assert_eq!(f[0].line, 4);
        assert!(sniff(KUBECONFIG.as_bytes()));
        assert!(!sniff(b"apiVersion: v1\nkind: Config\n"));
    }

    #[test]
    fn base64_round_trips_and_rejects_junk() {
        assert_eq!(base64("Q0VSVA==").unwrap(), b"CERT");
        assert_eq!(base64("S0VZ").unwrap(), b"KEY");
        assert_eq!(base64("Q0\nVS VA==").unwrap(), b"CERT");
        assert!(base64("Q0VSVA=x").is_none());
        assert!(base64("!!!!").is_none());
        assert!(base64("Q0VSV").is_none());
    }
}
