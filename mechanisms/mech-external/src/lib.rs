//! SASL EXTERNAL (RFC 4422 Appendix A) as a portcullis mechanism plugin.
//!
//! The identity comes from the transport: the subject of the client's TLS
//! certificate, verified by the host (`--tls-client-ca`). The client's only
//! message is an authorization identity, empty to act as itself; it may
//! come as the initial response or after an empty challenge. Without a
//! verified certificate the exchange fails. No configuration; offered only
//! when a checker serves `external` credentials (`--auth external`).

use std::sync::Mutex;

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::session;
use portcullis::auth::types::{CredentialKind, Credentials, ExternalIdentity};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mechanism-plugin",
});

/// The authzid in the client's message: `None` when empty.
fn parse_authzid(message: &[u8]) -> Result<Option<String>, &'static str> {
    let authzid = std::str::from_utf8(message).map_err(|_| "authzid is not UTF-8")?;
    if authzid.contains('\0') {
        return Err("authzid contains NUL");
    }
    Ok(Some(authzid.to_owned()).filter(|a| !a.is_empty()))
}

fn finish(message: &[u8], identity: Option<String>) -> StepResult {
    let Some(identity) = identity else {
        return StepResult::Failure("no verified client certificate on this connection".into());
    };
    match parse_authzid(message) {
        Ok(authzid) => StepResult::Success(Success {
            credentials: Credentials::External(ExternalIdentity { authzid, identity }),
            additional_data: None,
        }),
        Err(why) => StepResult::Failure(format!("malformed EXTERNAL message: {why}")),
    }
}

/// `Some(true)` while the client's message is awaited.
static AWAITING: Mutex<Option<bool>> = Mutex::new(None);

struct External;

impl Guest for External {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "EXTERNAL".into(),
            plaintext: false,
            credential_kinds: vec![CredentialKind::External],
        }
    }

    fn start(initial_response: Option<Vec<u8>>) -> StepResult {
        let mut awaiting = AWAITING.lock().unwrap_or_else(|e| e.into_inner());
        if awaiting.is_some() {
            return StepResult::Failure("start called twice".into());
        }
        match initial_response {
            Some(message) => {
                *awaiting = Some(false);
                finish(&message, session::external_identity())
            }
            None => {
                *awaiting = Some(true);
                StepResult::Challenge(Vec::new())
            }
        }
    }

    fn step(response: Vec<u8>) -> StepResult {
        let mut awaiting = AWAITING.lock().unwrap_or_else(|e| e.into_inner());
        if *awaiting != Some(true) {
            return StepResult::Failure("no response was expected".into());
        }
        *awaiting = Some(false);
        finish(&response, session::external_identity())
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

export!(External);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let ok = |m: &[u8], id: Option<&str>| match finish(m, id.map(Into::into)) {
            StepResult::Success(Success {
                credentials: Credentials::External(e),
                ..
            }) => Ok((e.authzid, e.identity)),
            StepResult::Failure(why) => Err(why),
            _ => Err("other".into()),
        };
        assert_eq!(ok(b"", Some("alice")), Ok((None, "alice".into())));
        assert_eq!(
            ok(b"bob", Some("alice")),
            Ok((Some("bob".into()), "alice".into()))
        );
        assert!(
            ok(b"", None)
                .unwrap_err()
                .contains("no verified client certificate")
        );
        assert!(ok(b"\xff", Some("alice")).is_err());
        assert!(ok(b"a\0b", Some("alice")).is_err());
    }
}
