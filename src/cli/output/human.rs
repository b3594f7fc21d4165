//! The human form of output: optional colour (decided by `anstream` from
//! the terminal, `NO_COLOR`, `CLICOLOR` and `CLICOLOR_FORCE`) and text from
//! other people (message bodies, server messages) made harmless on a
//! terminal, where control characters could rewrite the screen.

use std::io::{self, Write};

use anstyle::Style;

use crate::wire::protocol::printable;

/// Whether colour escapes may be written to `stream`.
pub fn color_enabled<S: anstream::stream::RawStream>(stream: &S) -> bool {
    !matches!(
        anstream::AutoStream::choice(stream),
        anstream::ColorChoice::Never
    )
}

/// A writer for the human form of results and diagnostics.
pub struct Human<'a> {
    out: &'a mut dyn Write,
    /// Colour escapes are wanted.
    color: bool,
    /// The stream is a terminal, so untrusted text is neutralised.
    terminal: bool,
}

impl<'a> Human<'a> {
    /// Wrap `out`, writing colour only if `color` and neutralising control
    /// characters in untrusted text if `terminal`.
    pub fn new(out: &'a mut dyn Write, color: bool, terminal: bool) -> Self {
        Self {
            out,
            color,
            terminal,
        }
    }

    /// Write `text` (trusted) in `style` when colour is on.
    pub fn styled(&mut self, style: Style, text: &str) -> io::Result<()> {
        if self.color {
            write!(self.out, "{style}{text}{style:#}")
        } else {
            self.out.write_all(text.as_bytes())
        }
    }

    /// Write a bold label such as `From:`.
    pub fn label(&mut self, text: &str) -> io::Result<()> {
        self.styled(Style::new().bold(), text)
    }

    /// Write text that someone else chose. On a terminal, control and
    /// bidirectional-formatting characters are shown instead of being
    /// obeyed ([`printable`]).
    pub fn untrusted(&mut self, text: &str) -> io::Result<()> {
        if !self.terminal {
            return self.out.write_all(text.as_bytes());
        }
        self.out.write_all(printable(text).as_bytes())
    }
}

impl Write for Human<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_and_neutralising_follow_the_flags() {
        let mut buffer = Vec::new();
        let mut out = Human::new(&mut buffer, false, false);
        out.label("From:").unwrap();
        out.untrusted("\x1b").unwrap();
        assert_eq!(buffer, b"From:\x1b");

        let mut buffer = Vec::new();
        let mut out = Human::new(&mut buffer, true, true);
        out.label("From:").unwrap();
        out.untrusted("\x1b").unwrap();
        let text = String::from_utf8(buffer).unwrap();
        assert!(text.starts_with("\x1b[1mFrom:"), "{text:?}");
        assert!(text.ends_with("^["), "{text:?}");
    }
}
