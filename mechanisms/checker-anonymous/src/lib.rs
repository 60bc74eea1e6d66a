//! Anonymous access as a portcullis checker plugin; what `--auth anonymous`
//! loads. No configuration.
//!
//! Accepts anonymous credentials with the avatar id `anonymous`, and denies
//! every other kind as `unsupported`. A non-empty trace (RFC 4505: an email
//! address or an opaque string of at most 255 characters) is logged at info
//! level with control characters removed, cut to 255 characters when the
//! client sent more.

use portcullis_sdk::checker::{Checker, Verdict};
use portcullis_sdk::host::log;
use portcullis_sdk::types::{CredentialKind, Credentials, Denial, LogLevel};

/// The longest trace RFC 4505 allows, in characters.
const MAX_TRACE: usize = 255;

/// The trace as it may appear in a log line: no control characters (so it
/// cannot forge log lines) and at most [`MAX_TRACE`] characters, with `…`
/// marking a cut. `None` when nothing printable is left.
fn printable_trace(trace: &str) -> Option<String> {
    let mut chars = trace.chars().filter(|c| !c.is_control());
    let mut shown: String = chars.by_ref().take(MAX_TRACE).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    (!shown.is_empty()).then_some(shown)
}

struct Anonymous;

impl Checker for Anonymous {
    fn kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::Anonymous]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::Anonymous(trace) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        if let Some(trace) = printable_trace(&trace) {
            log(LogLevel::Info, &format!("anonymous login, trace: {trace}"));
        }
        Verdict::Accepted("anonymous".into())
    }
}

portcullis_sdk::export_checker!(Anonymous);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces() {
        let long = "x".repeat(1000);
        let cut = format!("{}…", "x".repeat(MAX_TRACE));
        let exact = "é".repeat(MAX_TRACE);
        let cases: [(&str, Option<&str>); 8] = [
            ("sirhc", Some("sirhc")),
            ("user@example.org", Some("user@example.org")),
            ("a\r\nb\u{7}", Some("ab")),
            ("\u{1b}[31mred", Some("[31mred")),
            ("", None),
            ("\r\n\t", None),
            (&long, Some(&cut)),
            (&exact, Some(&exact)),
        ];
        for (trace, want) in cases {
            assert_eq!(printable_trace(trace).as_deref(), want, "{trace:?}");
        }
    }
}
