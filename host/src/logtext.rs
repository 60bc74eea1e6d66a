//! Log lines that text from clients and plugins cannot forge.
//!
//! User names, addresses, HELO names, denial and fault texts all reach the
//! log, and any of them may carry CR, LF or ESC: a raw LF writes a whole
//! fake log line, a raw ESC reaches the operator's terminal. [`escape`]
//! makes every control character visible (`\r`, `\n`, `\t`, `\x1b`, …)
//! and doubles backslashes, so the escaped form is unambiguous.
//!
//! Rather than trusting every call site to escape, the human log format
//! escapes every field of every event with [`EscapedFields`]. The JSON
//! format needs nothing: JSON strings escape control characters.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// `text` with control characters shown as escapes and `\` as `\\`.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control()
}

/// The human format's fields: `message` first as it is, then `name=value`,
/// strings quoted; every value escaped.
#[derive(Debug, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = Visitor { out: String::new() };
        fields.record(&mut visitor);
        writer.write_str(&visitor.out)
    }
}

struct Visitor {
    out: String,
}

impl Visitor {
    fn field(&mut self, field: &Field, value: &str, quoted: bool) {
        let name = field.name();
        // tracing-log's bookkeeping fields, as tracing's own format skips them.
        if name.starts_with("log.") {
            return;
        }
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        let value = escape(value);
        match (name, quoted) {
            ("message", _) => self.out.push_str(&value),
            (name, true) => {
                let _ = write!(self.out, "{name}=\"{}\"", value.replace('"', "\\\""));
            }
            (name, false) => {
                let _ = write!(self.out, "{name}={value}");
            }
        }
    }
}

impl Visit for Visitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        let cases = [
            ("plain text", "plain text"),
            ("a\r\nb", "a\\r\\nb"),
            ("\x1b[31mred", "\\x1b[31mred"),
            ("tab\there", "tab\\there"),
            ("nul\0del\x7f", "nul\\x00del\\x7f"),
            ("back\\slash", "back\\\\slash"),
            ("é ünïcode", "é ünïcode"),
            ("\u{85}next line", "\\x85next line"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
        assert!(matches!(escape("fine"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_field_of_an_event_is_escaped() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::fmt::MakeWriter;

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buffer {
            type Writer = Buffer;
            fn make_writer(&'a self) -> Buffer {
                self.clone()
            }
        }

        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let user = "eve\r\n2026-01-01T00:00:00Z  INFO forged line";
            let reason = "no\x1b[2J";
            tracing::info!(user, %reason, "denied {}", "for\nreal");
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\x1b'), "{out}");
        assert!(out.contains("\\x1b[2J"), "{out}");
        assert!(out.contains("for\\nreal"), "{out}");
    }
}
