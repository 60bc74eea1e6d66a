//! Anonymous access as a portcullis checker plugin; what `--auth anonymous`
//! loads. Accepts anonymous credentials and logs their trace (RFC 4505),
//! made printable and cut to 255 characters. No configuration.

use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::host::log;
use portcullis::auth::types::{CredentialKind, Credentials, Denial, LogLevel};

wit_bindgen::generate!({
    path: "../../wit",
    world: "checker-plugin",
});

/// The trace as it may appear in a log line.
fn printable_trace(trace: &str) -> String {
    trace
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect()
}

struct Anonymous;

impl Guest for Anonymous {
    fn credential_kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::Anonymous]
    }

    fn check(credentials: Credentials) -> Verdict {
        match credentials {
            Credentials::Anonymous(trace) => {
                if !trace.is_empty() {
                    log(
                        LogLevel::Info,
                        &format!("anonymous login, trace: {}", printable_trace(&trace)),
                    );
                }
                Verdict::Accepted("anonymous".into())
            }
            _ => Verdict::Denied(Denial::Unsupported),
        }
    }

    fn lookup_secret(_username: String, _kind: CredentialKind) -> SecretAnswer {
        SecretAnswer::Denied(Denial::Unsupported)
    }
}

export!(Anonymous);

#[cfg(test)]
mod tests {
    use super::printable_trace;

    #[test]
    fn traces() {
        assert_eq!(printable_trace("sirhc"), "sirhc");
        assert_eq!(printable_trace("a\r\nb\u{7}"), "ab");
        assert_eq!(printable_trace(&"x".repeat(1000)).len(), 255);
    }
}
