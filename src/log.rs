//! Log lines the library hands to its caller's sink (it never prints itself).

use std::borrow::Cow;
use std::fmt::Write;

/// The most of a peer's own text (QEMU's `errmsg`) the library passes on, in bytes.
pub const MAX_PEER_TEXT: usize = 64 * 1024;

/// Severity of a log line, as vzdump's `debugmsg` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `INFO:`.
    Info,
    /// `WARN:` (today's qemu-server warns where the seed had no line, e.g. an ignored
    /// setting; the backup job also reports a failed power-state restore this way, which
    /// qemu-server prints with Perl's `warn`).
    Warn,
    /// `ERROR:`.
    Err,
}

/// One line for the task log, without prefix or newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its severity.
    pub level: Level,
    /// Its text.
    pub text: String,
}

impl LogLine {
    /// An `INFO:` line.
    pub fn info(text: impl Into<String>) -> Self {
        LogLine {
            level: Level::Info,
            text: text.into(),
        }
    }
}

/// A text as one line of a task log: every control character (a newline, a carriage
/// return, an escape sequence's ESC, ...) written as `\n`, `\r`, `\t` or `\xNN`, so that
/// a message a guest may have influenced can neither end the line early nor add a line of
/// its own, nor drive the terminal that shows the log.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A peer's own text (QEMU's `errmsg`) as the library passes it on: trailing newlines off
/// (the error gets its own, as qemu-server adds one), at most [`MAX_PEER_TEXT`] bytes (cut
/// at a character, `...` appended), and [`one_line`].
pub fn peer_text(text: &str) -> String {
    let text = text.trim_end_matches(['\n', '\r']);
    if text.len() <= MAX_PEER_TEXT {
        return one_line(text).into_owned();
    }
    let mut end = MAX_PEER_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", one_line(&text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept_as_it_is() {
        assert!(matches!(
            one_line("job failed - ok: 100%"),
            Cow::Borrowed(_)
        ));
        assert_eq!(peer_text("Input/output error"), "Input/output error");
    }

    #[test]
    fn control_characters_cannot_make_lines() {
        assert_eq!(
            one_line("a\nINFO: fake\r\t\u{1b}[2J\u{7f}"),
            "a\\nINFO: fake\\r\\t\\x1b[2J\\x7f"
        );
        assert_eq!(peer_text("disk full\n"), "disk full");
        assert_eq!(peer_text("disk full\r\n\n"), "disk full");
    }

    #[test]
    fn long_texts_are_cut_at_a_character() {
        let long = "é".repeat(MAX_PEER_TEXT);
        let cut = peer_text(&long);
        assert!(cut.ends_with("..."));
        assert!(cut.len() <= MAX_PEER_TEXT + 3, "{}", cut.len());
        assert!(cut.trim_end_matches("...").chars().all(|c| c == 'é'));
        assert_eq!(peer_text(&"x".repeat(MAX_PEER_TEXT)).len(), MAX_PEER_TEXT);
    }
}
