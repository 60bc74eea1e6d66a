//! The LOGIN SASL mechanism (draft-murchison-sasl-login) as a portcullis
//! mechanism plugin. No configuration.
//!
//! The server challenges `Username:`, then `Password:`; the client answers
//! each with the bare value. A non-empty initial response is the user name,
//! so the exchange goes straight to `Password:` (an empty one carries
//! nothing and the server asks for the name). User name and password must
//! be non-empty UTF-8; the outcome is username-password credentials with no
//! authzid, for the portal's checker to decide.

use portcullis_sdk::mechanism::{Mechanism, MechanismInfo, Step};
use portcullis_sdk::types::{CredentialKind, Credentials, UsernamePassword};

const USERNAME_CHALLENGE: &[u8] = b"Username:";
const PASSWORD_CHALLENGE: &[u8] = b"Password:";

/// Where the exchange stands; the SDK handles calls out of order.
#[derive(Debug, PartialEq, Eq)]
enum Login {
    AwaitingUsername,
    AwaitingPassword(String),
}

impl Login {
    /// The user name arrived. Failure texts never include what the client
    /// sent.
    fn username(&mut self, name: Vec<u8>) -> Step {
        match String::from_utf8(name) {
            Ok(name) if name.is_empty() => Step::failure("empty user name"),
            Ok(name) if name.contains('\0') => Step::failure("user name contains NUL"),
            Ok(name) => {
                *self = Login::AwaitingPassword(name);
                Step::Challenge(PASSWORD_CHALLENGE.to_vec())
            }
            Err(_) => Step::failure("user name is not UTF-8"),
        }
    }
}

impl Mechanism for Login {
    fn info() -> MechanismInfo {
        MechanismInfo::new("LOGIN", [CredentialKind::UsernamePassword]).plaintext()
    }

    fn new() -> Self {
        Login::AwaitingUsername
    }

    fn start(&mut self, initial_response: Option<Vec<u8>>) -> Step {
        match initial_response {
            Some(name) if !name.is_empty() => self.username(name),
            _ => Step::Challenge(USERNAME_CHALLENGE.to_vec()),
        }
    }

    fn step(&mut self, response: Vec<u8>) -> Step {
        match std::mem::replace(self, Login::AwaitingUsername) {
            Login::AwaitingUsername => self.username(response),
            Login::AwaitingPassword(username) => match String::from_utf8(response) {
                Ok(password) if password.is_empty() => Step::failure("empty password"),
                Ok(password) => Step::success(Credentials::UsernamePassword(UsernamePassword {
                    authzid: None,
                    username,
                    password,
                })),
                Err(_) => Step::failure("password is not UTF-8"),
            },
        }
    }
}

portcullis_sdk::export_mechanism!(Login);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::mechanism::{Call, Exchange};

    /// A step's outcome in a comparable form.
    fn show(result: &Step) -> String {
        match result {
            Step::Challenge(c) => format!("challenge {}", String::from_utf8_lossy(c)),
            Step::Success {
                credentials: Credentials::UsernamePassword(up),
                additional_data: None,
            } => format!("ok {:?} {} {}", up.authzid, up.username, up.password),
            Step::Success { .. } => "unexpected success".into(),
            Step::Failure(why) => format!("failure {why}"),
        }
    }

    fn start(r: Option<&[u8]>) -> Call {
        Call::Start(r.map(<[u8]>::to_vec))
    }

    fn step(r: &[u8]) -> Call {
        Call::Step(r.to_vec())
    }

    #[test]
    fn exchanges() {
        let cases: &[(&[Call], &[&str])] = &[
            (
                &[start(None), step(b"guest"), step(b"password")],
                &[
                    "challenge Username:",
                    "challenge Password:",
                    "ok None guest password",
                ],
            ),
            (
                &[start(Some(b"guest")), step(b"pw")],
                &["challenge Password:", "ok None guest pw"],
            ),
            (
                &[start(Some(b"")), step(b"guest"), step(b"pw")],
                &[
                    "challenge Username:",
                    "challenge Password:",
                    "ok None guest pw",
                ],
            ),
            (
                &[start(None), step(b"")],
                &["challenge Username:", "failure empty user name"],
            ),
            (
                &[start(None), step(b"\xff")],
                &["challenge Username:", "failure user name is not UTF-8"],
            ),
            (&[start(Some(b"a\0b"))], &["failure user name contains NUL"]),
            (
                &[start(Some(b"guest")), step(b"")],
                &["challenge Password:", "failure empty password"],
            ),
            (
                &[start(Some(b"guest")), step(b"\xfe")],
                &["challenge Password:", "failure password is not UTF-8"],
            ),
            (
                &[start(Some(b"guest")), step(b"pw"), step(b"more")],
                &[
                    "challenge Password:",
                    "ok None guest pw",
                    "failure no response was expected",
                ],
            ),
            (
                &[start(None), start(None)],
                &["challenge Username:", "failure start called twice"],
            ),
            (&[step(b"guest")], &["failure no response was expected"]),
        ];
        for (calls, want) in cases {
            let got: Vec<String> = Exchange::<Login>::run(calls).iter().map(show).collect();
            assert_eq!(&got, want, "{calls:?}");
        }
    }
}
