//! SASL SCRAM-SHA-256 (RFC 7677) as a portcullis mechanism plugin. No
//! configuration.
//!
//! The exchange itself is [`scram_core::exchange`] (whose docs cover
//! channel binding, unknown users and wrong proofs) and its binding to the
//! host is [`scram_core::plugin`], both shared with `mech-scram-sha-1`:
//!
//! - the user's keys come from `session.lookup-secret(user, scram-sha256)`,
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

/// SCRAM with SHA-256, looking up `scram-sha256` keys.
pub struct Sha256;

impl Variant for Sha256 {
    const ALGORITHM: Algorithm = Algorithm::Sha256;
    const KIND: CredentialKind = CredentialKind::ScramSha256;
}

portcullis_sdk::export_mechanism!(Scram<Sha256>);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::mechanism::{Mechanism as _, Step};
    use portcullis_sdk::session::LookupError;
    use portcullis_sdk::types::{Credentials, Denial, ScramKeys, StoredSecret};
    use scram_core::plugin::lookup;
    use scram_core::{Call, Env, Keys, Lookup};

    /// The RFC 7677 example's keys (user `user`, password `pencil`) and
    /// server nonce, answered as the host would.
    struct Rfc7677;

    impl Env for Rfc7677 {
        fn lookup(&mut self, username: &str) -> Lookup {
            assert_eq!(username, "user");
            let salt = [
                0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
                0xfa, 0x81,
            ];
            let keys = Keys::derive(Sha256::ALGORITHM, "pencil", &salt, 4096);
            lookup::<Sha256>(Ok(StoredSecret::Scram(ScramKeys {
                salt: keys.salt,
                iterations: keys.iterations,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
            })))
        }

        fn nonce(&mut self) -> Result<String, String> {
            Ok("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into())
        }
    }

    #[test]
    fn rfc_7677_exchange_through_the_bindings() {
        let mut scram = Scram::<Sha256>::new();
        let first = scram.drive(
            Call::Start(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec())),
            &mut Rfc7677,
        );
        let Step::Challenge(server_first) = first else {
            panic!("expected the server-first message");
        };
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = scram.drive(
            Call::Step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                    .to_vec(),
            ),
            &mut Rfc7677,
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
        assert_eq!(verified.kind, CredentialKind::ScramSha256);
        assert_eq!(
            additional_data.as_deref(),
            Some(&b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="[..])
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
                Lookup::Unavailable("no checker answers SCRAM-SHA-256 lookups".into()),
            ),
            (
                Err(LookupError::Unavailable("file unreadable".into())),
                Lookup::Unavailable("the checker failed: file unreadable".into()),
            ),
        ];
        for (answer, want) in cases {
            assert_eq!(lookup::<Sha256>(answer), want);
        }
    }

    #[test]
    fn info() {
        let info = Scram::<Sha256>::info();
        assert_eq!(info.name, "SCRAM-SHA-256");
        assert!(!info.plaintext);
        assert_eq!(info.credential_kinds, [CredentialKind::ScramSha256]);
    }
}
