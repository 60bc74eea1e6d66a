//! SASL SCRAM-SHA-1 (RFC 5802) as a portcullis mechanism plugin. No
//! configuration.
//!
//! The exchange itself is [`scram_core::exchange`] (whose docs cover
//! channel binding, unknown users and wrong proofs) and its binding to the
//! host is [`scram_core::plugin`], both shared with `mech-scram-sha-256`:
//!
//! - the user's keys come from `session.lookup-secret(user, scram-sha1)`,
//!   so the mechanism never sees a password or the checker's data;
//! - the server nonce comes from the system's random source (`wasi:random`);
//! - a good proof becomes `verified-secret` credentials, with the
//!   server-final `v=…` message as additional data (the host sends it as a
//!   last challenge where the protocol has no other way);
//! - a checker's denial of the lookup is not told to the client: the
//!   exchange goes on with invented keys and fails after the proof, with
//!   the denial as the failure text for the log.
//!
//! Not plaintext: neither the password nor anything that replays it
//! crosses the wire.

use portcullis_sdk::types::CredentialKind;
use scram_core::Algorithm;
use scram_core::plugin::{Scram, Variant};

/// SCRAM with SHA-1, looking up `scram-sha1` keys.
pub struct Sha1;

impl Variant for Sha1 {
    const ALGORITHM: Algorithm = Algorithm::Sha1;
    const KIND: CredentialKind = CredentialKind::ScramSha1;
}

portcullis_sdk::export_mechanism!(Scram<Sha1>);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::mechanism::{Mechanism as _, Step};
    use portcullis_sdk::session::LookupError;
    use portcullis_sdk::types::{Credentials, Denial, ScramKeys, StoredSecret};
    use scram_core::plugin::lookup;
    use scram_core::{Call, Env, Keys, Lookup};

    /// The RFC 5802 example's keys (user `user`, password `pencil`) and
    /// server nonce, answered as the host would.
    struct Rfc5802;

    impl Env for Rfc5802 {
        fn lookup(&mut self, username: &str) -> Lookup {
            assert_eq!(username, "user");
            let salt = [
                0x41, 0x25, 0xc2, 0x47, 0xe4, 0x3a, 0xb1, 0xe9, 0x3c, 0x6d, 0xff, 0x76,
            ];
            let keys = Keys::derive(Sha1::ALGORITHM, "pencil", &salt, 4096);
            lookup::<Sha1>(Ok(StoredSecret::Scram(ScramKeys {
                salt: keys.salt,
                iterations: keys.iterations,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
            })))
        }

        fn nonce(&mut self) -> Result<String, String> {
            Ok("3rfcNHYJY1ZVvWVs7j".into())
        }
    }

    #[test]
    fn rfc_5802_exchange_through_the_bindings() {
        let mut scram = Scram::<Sha1>::new();
        let first = scram.drive(
            Call::Start(Some(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL".to_vec())),
            &mut Rfc5802,
        );
        let Step::Challenge(server_first) = first else {
            panic!("expected the server-first message");
        };
        assert_eq!(
            server_first,
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        );
        let last = scram.drive(
            Call::Step(
                b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
                    .to_vec(),
            ),
            &mut Rfc5802,
        );
        let Step::Success {
            credentials: Credentials::VerifiedSecret(verified),
            additional_data,
        } = last
        else {
            panic!("expected verified-secret credentials");
        };
        assert_eq!(verified.username, "user");
        assert_eq!(verified.authzid, None);
        assert_eq!(verified.kind, CredentialKind::ScramSha1);
        assert_eq!(
            additional_data.as_deref(),
            Some(&b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="[..])
        );
    }

    #[test]
    fn lookup_answers() {
        let cases = [
            (
                Err(LookupError::Denied(Denial::UnknownUser)),
                Lookup::Denied("no such user".into()),
            ),
            (
                Err(LookupError::Denied(Denial::Other("no keys stored".into()))),
                Lookup::Denied("no keys stored".into()),
            ),
            (
                Err(LookupError::Unsupported),
                Lookup::Unavailable("no checker answers SCRAM-SHA-1 lookups".into()),
            ),
            (
                Err(LookupError::Unavailable("file unreadable".into())),
                Lookup::Unavailable("the checker failed: file unreadable".into()),
            ),
        ];
        for (answer, want) in cases {
            assert_eq!(lookup::<Sha1>(answer), want);
        }
    }

    #[test]
    fn info() {
        let info = Scram::<Sha1>::info();
        assert_eq!(info.name, "SCRAM-SHA-1");
        assert!(!info.plaintext);
        assert_eq!(info.credential_kinds, [CredentialKind::ScramSha1]);
    }
}
