//! The human form of output: optional colour (decided by `anstream` from
//! the terminal, `NO_COLOR`, `CLICOLOR` and `CLICOLOR_FORCE`) and text from
//! other people (message bodies, server messages) made harmless — on a
//! terminal, where control characters could rewrite the screen, and in a
//! pipe, whose reader may show it on one later — and, for a message body,
//! set apart by indentation so that no line of it reads as msgr's own.
//! Scripts that want bodies byte for byte use `--json` or `--out-dir`.

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

/// How far a message body is indented.
const BODY_INDENT: &[u8] = b"    ";

/// A writer for the human form of results and diagnostics.
pub struct Human<'a> {
    out: &'a mut dyn Write,
    /// Colour escapes are wanted.
    color: bool,
}

impl<'a> Human<'a> {
    /// Wrap `out`, writing colour only if `color`.
    pub fn new(out: &'a mut dyn Write, color: bool) -> Self {
        Self { out, color }
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

    /// Write text that someone else chose, its control and
    /// bidirectional-formatting characters shown instead of obeyed
    /// ([`printable`]).
    pub fn untrusted(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(printable(text).as_bytes())
    }

    /// Write a message body as [`Human::untrusted`] does, each line
    /// indented (blank ones left blank), so that none can pass for a header
    /// msgr writes; ends with a line break.
    pub fn body(&mut self, text: &str) -> io::Result<()> {
        for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
            if !line.is_empty() {
                self.out.write_all(BODY_INDENT)?;
                self.untrusted(line)?;
            }
            self.out.write_all(b"\n")?;
        }
        Ok(())
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
    fn untrusted_text_is_neutralised_with_or_without_colour() {
        let mut buffer = Vec::new();
        let mut out = Human::new(&mut buffer, false);
        out.label("From:").unwrap();
        out.untrusted("\x1b").unwrap();
        assert_eq!(buffer, b"From:^[");

        let mut buffer = Vec::new();
        let mut out = Human::new(&mut buffer, true);
        out.label("From:").unwrap();
        out.untrusted("\x1b").unwrap();
        let text = String::from_utf8(buffer).unwrap();
        assert!(text.starts_with("\x1b[1mFrom:"), "{text:?}");
        assert!(text.ends_with("^["), "{text:?}");
    }
}
