//! SASL EXTERNAL (RFC 4422 Appendix A) as a portcullis mechanism plugin.
//!
//! The identity comes from the transport: the subject of the client's TLS
//! certificate, verified by the host (`--tls-client-ca`). The client's only
//! message is an authorization identity, empty to act as itself; it may
//! come as the initial response or after an empty challenge. Without a
//! verified certificate the exchange fails. No configuration; offered only
//! when a checker serves `external` credentials (`--auth external`).

use portcullis_sdk::mechanism::{MechanismInfo, OneMessage, OneMessageMechanism, Step};
use portcullis_sdk::session;
use portcullis_sdk::types::{CredentialKind, Credentials, ExternalIdentity};

/// The authzid in the client's message: `None` when empty.
fn parse_authzid(message: &[u8]) -> Result<Option<String>, &'static str> {
    let authzid = std::str::from_utf8(message).map_err(|_| "authzid is not UTF-8")?;
    if authzid.contains('\0') {
        return Err("authzid contains NUL");
    }
    Ok(Some(authzid.to_owned()).filter(|a| !a.is_empty()))
}

fn finish(message: &[u8], identity: Option<String>) -> Step {
    let Some(identity) = identity else {
        return Step::failure("no verified client certificate on this connection");
    };
    match parse_authzid(message) {
        Ok(authzid) => Step::success(Credentials::External(ExternalIdentity {
            authzid,
            identity,
        })),
        Err(why) => Step::failure(format!("malformed EXTERNAL message: {why}")),
    }
}

struct External;

impl OneMessage for External {
    fn info() -> MechanismInfo {
        MechanismInfo::new("EXTERNAL", [CredentialKind::External])
    }

    fn finish(message: &[u8]) -> Step {
        finish(message, session::external_identity())
    }
}

portcullis_sdk::export_mechanism!(OneMessageMechanism<External>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let ok = |m: &[u8], id: Option<&str>| match finish(m, id.map(Into::into)) {
            Step::Success {
                credentials: Credentials::External(e),
                ..
            } => Ok((e.authzid, e.identity)),
            Step::Failure(why) => Err(why),
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
