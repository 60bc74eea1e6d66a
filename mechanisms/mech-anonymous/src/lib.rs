//! SASL ANONYMOUS (RFC 4505) as a portcullis mechanism plugin.
//!
//! The client may send a trace (an email address or an opaque string of
//! at most 255 characters); the mechanism hands it to the portal as
//! anonymous credentials, and the host offers the mechanism only when an
//! anonymous checker is registered (`--auth anonymous`). No configuration.

use portcullis_sdk::mechanism::{MechanismInfo, OneMessage, OneMessageMechanism, Step};
use portcullis_sdk::types::{CredentialKind, Credentials};

/// RFC 4505 §3: the trace is 1 to 255 UTF-8 characters; an empty message
/// is also accepted, as most clients send one.
fn parse_trace(message: &[u8]) -> Result<String, &'static str> {
    let trace = std::str::from_utf8(message).map_err(|_| "trace is not UTF-8")?;
    if trace.chars().count() > 255 {
        return Err("trace longer than 255 characters");
    }
    if trace.contains('\0') {
        return Err("trace contains NUL");
    }
    Ok(trace.to_owned())
}

struct Anonymous;

impl OneMessage for Anonymous {
    fn info() -> MechanismInfo {
        MechanismInfo::new("ANONYMOUS", [CredentialKind::Anonymous])
    }

    fn finish(message: &[u8]) -> Step {
        match parse_trace(message) {
            Ok(trace) => Step::success(Credentials::Anonymous(trace)),
            Err(why) => Step::failure(format!("malformed ANONYMOUS message: {why}")),
        }
    }
}

portcullis_sdk::export_mechanism!(OneMessageMechanism<Anonymous>);

#[cfg(test)]
mod tests {
    use super::parse_trace;

    #[test]
    fn traces() {
        assert_eq!(parse_trace(b"sirhc"), Ok("sirhc".into()));
        assert_eq!(parse_trace(b""), Ok(String::new()));
        assert_eq!(
            parse_trace("é".repeat(255).as_bytes()).map(|t| t.chars().count()),
            Ok(255)
        );
        assert!(parse_trace("é".repeat(256).as_bytes()).is_err());
        assert!(parse_trace(b"\xff").is_err());
        assert!(parse_trace(b"a\0b").is_err());
    }
}
