//! SASL ANONYMOUS (RFC 4505) as a portcullis mechanism plugin.
//!
//! The client may send a trace (an email address or an opaque string of
//! at most 255 characters); the mechanism hands it to the portal as
//! anonymous credentials, and the host offers the mechanism only when an
//! anonymous checker is registered (`--auth anonymous`). No configuration.

use std::sync::Mutex;

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mechanism-plugin",
});

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

fn finish(message: &[u8]) -> StepResult {
    match parse_trace(message) {
        Ok(trace) => StepResult::Success(Success {
            credentials: Credentials::Anonymous(trace),
            additional_data: None,
        }),
        Err(why) => StepResult::Failure(format!("malformed ANONYMOUS message: {why}")),
    }
}

static STARTED: Mutex<Option<bool>> = Mutex::new(None);

struct Anonymous;

impl Guest for Anonymous {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "ANONYMOUS".into(),
            plaintext: false,
            credential_kinds: vec![CredentialKind::Anonymous],
        }
    }

    fn start(initial_response: Option<Vec<u8>>) -> StepResult {
        let mut awaiting = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        if awaiting.is_some() {
            return StepResult::Failure("start called twice".into());
        }
        match initial_response {
            Some(message) => {
                *awaiting = Some(false);
                finish(&message)
            }
            None => {
                *awaiting = Some(true);
                StepResult::Challenge(Vec::new())
            }
        }
    }

    fn step(response: Vec<u8>) -> StepResult {
        let mut awaiting = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        if *awaiting != Some(true) {
            return StepResult::Failure("no response was expected".into());
        }
        *awaiting = Some(false);
        finish(&response)
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

export!(Anonymous);

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
