//! Text that another party chose (a server's error message, a message
//! body) made safe to show: control characters, which a terminal would
//! obey, and bidirectional-formatting characters, which reorder what is
//! shown around them, are written out visibly instead.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character except `\n` and `\t` shown in caret
/// notation (`^[`) or as `\u{…}`, and every bidirectional-formatting
/// character as `\u{…}`. Returns `text` itself when nothing needs it.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !needs_escape(c) => shown.push(c),
            '\u{0}'..='\u{1f}' => {
                shown.push('^');
                shown.push(char::from(c as u8 ^ 0x40));
            }
            '\u{7f}' => shown.push_str("^?"),
            c => {
                let _ = write!(shown, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(shown)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_bidi_format(c)
}

/// The Unicode characters that change the display order of text: marks,
/// embeddings, overrides and isolates.
fn is_bidi_format(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(
            printable("a\x1b[2Jb\r\n\tc\x7f\u{9b}\x07"),
            "a^[[2Jb^M\n\tc^?\\u{9b}^G"
        );
    }

    #[test]
    fn bidirectional_overrides_are_shown_not_obeyed() {
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(printable("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        assert!(matches!(printable("héllo wörld"), Cow::Borrowed(_)));
        assert_eq!(printable("héllo wörld"), "héllo wörld");
    }
}
