//! SASL PLAIN (RFC 4616) as a portcullis mechanism plugin.
//!
//! The client sends `[authzid] NUL authcid NUL passwd` (as an initial
//! response, or after an empty challenge). The mechanism checks only the
//! message's shape (exactly two NULs, UTF-8, non-empty authcid and
//! password; see [`message`]) and hands the fields to the portal as
//! username-password credentials, an empty authzid as none; the checker
//! decides. A malformed message or an out-of-order call ends the exchange
//! in failure, whose text never quotes the message. No configuration.

mod message;

use portcullis_sdk::mechanism::{MechanismInfo, OneMessage, OneMessageMechanism, Step};
use portcullis_sdk::types::{CredentialKind, Credentials, UsernamePassword};

struct Plain;

impl OneMessage for Plain {
    fn info() -> MechanismInfo {
        MechanismInfo::new("PLAIN", [CredentialKind::UsernamePassword]).plaintext()
    }

    /// The outcome for a complete message. The failure text names what is
    /// wrong with the message, never its contents.
    fn finish(message: &[u8]) -> Step {
        match message::parse(message) {
            Ok(m) => Step::success(Credentials::UsernamePassword(UsernamePassword {
                authzid: m.authzid.map(str::to_owned),
                username: m.authcid.to_owned(),
                password: m.password.to_owned(),
            })),
            Err(e) => Step::failure(format!("malformed PLAIN message: {e}")),
        }
    }
}

portcullis_sdk::export_mechanism!(OneMessageMechanism<Plain>);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::mechanism::{Call, Exchange};

    /// A step's outcome in a comparable form.
    fn show(result: &Step) -> String {
        match result {
            Step::Challenge(c) => format!("challenge {c:?}"),
            Step::Success {
                credentials: Credentials::UsernamePassword(up),
                additional_data: None,
            } => format!("ok {:?} {} {}", up.authzid, up.username, up.password),
            Step::Success { .. } => "unexpected success".into(),
            Step::Failure(why) => format!("failure {why}"),
        }
    }

    /// Drives one exchange through the SDK's call-order rules.
    fn run(calls: &[Call]) -> Vec<String> {
        Exchange::<OneMessageMechanism<Plain>>::run(calls)
            .iter()
            .map(show)
            .collect()
    }

    #[test]
    fn exchanges() {
        let ok = "ok None tim tanstaaf";
        let cases: &[(&[Call], &[&str])] = &[
            (&[Call::Start(Some(b"\0tim\0tanstaaf".to_vec()))], &[ok]),
            (
                &[Call::Start(None), Call::Step(b"\0tim\0tanstaaf".to_vec())],
                &["challenge []", ok],
            ),
            (
                &[Call::Start(Some(b"Ursel\0Kurt\0xipj3plmq".to_vec()))],
                &["ok Some(\"Ursel\") Kurt xipj3plmq"],
            ),
            (
                &[Call::Start(Some(Vec::new()))],
                &["failure malformed PLAIN message: expected authzid NUL authcid NUL password"],
            ),
            (
                &[
                    Call::Start(Some(b"\0tim\0secret".to_vec())),
                    Call::Step(b"x".to_vec()),
                ],
                &["ok None tim secret", "failure no response was expected"],
            ),
            (
                &[Call::Start(None), Call::Start(None)],
                &["challenge []", "failure start called twice"],
            ),
            (
                &[Call::Step(b"\0a\0b".to_vec())],
                &["failure no response was expected"],
            ),
            (
                &[
                    Call::Start(Some(b"\0tim\0".to_vec())),
                    Call::Step(b"\0tim\0pw".to_vec()),
                ],
                &[
                    "failure malformed PLAIN message: empty password",
                    "failure no response was expected",
                ],
            ),
        ];
        for (calls, want) in cases {
            assert_eq!(&run(calls), want);
        }
    }

    #[test]
    fn failures_never_show_the_password() {
        for message in [
            &b"\0tim\0hunter2\0"[..],
            b"tim\0hunter2",
            b"\0\0hunter2",
            b"\0tim\0hunter2\xff",
        ] {
            let text = run(&[Call::Start(Some(message.to_vec()))]).remove(0);
            assert!(
                text.starts_with("failure") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }
}
