//! Text from certificates and file names, made safe to print on a terminal.
//!
//! A certificate's subject, a SAN or a file name can hold escape sequences, newlines or
//! bidirectional overrides; printed raw they could rewrite the operator's terminal, forge
//! a line of the audit table, or make one name read as another. JSON output is escaped by
//! the serializer; the text outputs pass such values through [`printable`].

use std::borrow::Cow;

/// Whether a character must not reach a terminal as itself: controls (C0, DEL, C1) and
/// the invisible bidirectional formatting characters.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as an escape (`\x1b`, `\n`, `\u{202e}`);
/// borrowed, without a copy, when there is none (the usual case).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Red, for `error:`, failures and refusals.
pub const RED: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();
/// Yellow, for what warns or would change.
pub const YELLOW: anstyle::Style = anstyle::AnsiColor::Yellow.on_default();
/// Green, for what went well.
pub const GREEN: anstyle::Style = anstyle::AnsiColor::Green.on_default();
/// Cyan, for `hint:`.
pub const CYAN: anstyle::Style = anstyle::AnsiColor::Cyan.on_default().bold();

/// `text` in `style` when `on`; `text` as it is otherwise. `text` must already be
/// [`printable`].
pub fn paint(on: bool, style: anstyle::Style, text: &str) -> String {
    if on {
        format!("{style}{text}{style:#}")
    } else {
        text.to_owned()
    }
}

/// The error line (`kpki: error: …; hint: …`) with `error:` in red and `hint:` in cyan
/// when `on`; unchanged otherwise.
pub fn error_line(on: bool, line: &str) -> String {
    if !on {
        return line.to_owned();
    }
    let mut out = match line.find("error:") {
        Some(i) => format!(
            "{}{}{}",
            &line[..i],
            paint(true, RED, "error:"),
            &line[i + "error:".len()..]
        ),
        None => line.to_owned(),
    };
    if let Some(i) = out.rfind("; hint: ") {
        out = format!(
            "{}; {} {}",
            &out[..i],
            paint(true, CYAN, "hint:"),
            &out[i + "; hint: ".len()..]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_when_asked() {
        let l = "kpki: error: no kpki store at pki; hint: create one with `kpki init`";
        assert_eq!(error_line(false, l), l);
        let c = error_line(true, l);
        assert!(
            c.starts_with("kpki: \x1b[1m\x1b[31merror:\x1b[0m no kpki store"),
            "{c:?}"
        );
        assert!(
            c.contains("at pki; \x1b[1m\x1b[36mhint:\x1b[0m create"),
            "{c:?}"
        );
        assert_eq!(paint(false, RED, "failed"), "failed");
    }

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert!(matches!(printable("CN=etcd-peer"), Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(printable("x\nok  fake line"), "x\\nok  fake line");
        assert_eq!(printable("evil\u{202e}txt.crt"), "evil\\u{202e}txt.crt");
        assert_eq!(printable("caf\u{e9} \u{9b}"), "caf\u{e9} \\x9b");
    }
}
