//! The LOGIN SASL mechanism (draft-murchison-sasl-login) as a portcullis
//! mechanism plugin. No configuration.
//!
//! The server challenges `Username:`, then `Password:`; the client answers
//! each with the bare value. A non-empty initial response is the user name,
//! so the exchange goes straight to `Password:` (an empty one carries
//! nothing and the server asks for the name). User name and password must
//! be non-empty UTF-8; the outcome is username-password credentials with no
//! authzid, for the portal's checker to decide.

use std::sync::Mutex;

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, UsernamePassword};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mechanism-plugin",
});

const USERNAME_CHALLENGE: &[u8] = b"Username:";
const PASSWORD_CHALLENGE: &[u8] = b"Password:";

/// Where the exchange stands. A fresh instance serves each exchange.
#[derive(Debug, PartialEq, Eq)]
enum State {
    New,
    AwaitingUsername,
    AwaitingPassword(String),
    Done,
}

/// What the host called.
#[derive(Clone, Debug)]
enum Call {
    Start(Option<Vec<u8>>),
    Step(Vec<u8>),
}

static STATE: Mutex<State> = Mutex::new(State::New);

/// One transition of the exchange: a pure function of state and call.
/// Failure texts never include what the client sent.
fn advance(state: State, call: Call) -> (State, StepResult) {
    let failure = |why: &str| (State::Done, StepResult::Failure(why.into()));
    match (state, call) {
        (State::New, Call::Start(None)) => (
            State::AwaitingUsername,
            StepResult::Challenge(USERNAME_CHALLENGE.to_vec()),
        ),
        (State::New, Call::Start(Some(name))) if name.is_empty() => (
            State::AwaitingUsername,
            StepResult::Challenge(USERNAME_CHALLENGE.to_vec()),
        ),
        (State::New, Call::Start(Some(name))) | (State::AwaitingUsername, Call::Step(name)) => {
            match String::from_utf8(name) {
                Ok(name) if name.is_empty() => failure("empty user name"),
                Ok(name) if name.contains('\0') => failure("user name contains NUL"),
                Ok(name) => (
                    State::AwaitingPassword(name),
                    StepResult::Challenge(PASSWORD_CHALLENGE.to_vec()),
                ),
                Err(_) => failure("user name is not UTF-8"),
            }
        }
        (State::AwaitingPassword(username), Call::Step(password)) => {
            match String::from_utf8(password) {
                Ok(password) if password.is_empty() => failure("empty password"),
                Ok(password) => (
                    State::Done,
                    StepResult::Success(Success {
                        credentials: Credentials::UsernamePassword(UsernamePassword {
                            authzid: None,
                            username,
                            password,
                        }),
                        additional_data: None,
                    }),
                ),
                Err(_) => failure("password is not UTF-8"),
            }
        }
        (_, Call::Start(_)) => failure("start called twice"),
        (_, Call::Step(_)) => failure("no response was expected"),
    }
}

fn drive(call: Call) -> StepResult {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let state = std::mem::replace(&mut *guard, State::Done);
    let (next, result) = advance(state, call);
    *guard = next;
    result
}

struct Login;

impl Guest for Login {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "LOGIN".into(),
            plaintext: true,
            credential_kinds: vec![CredentialKind::UsernamePassword],
        }
    }

    fn start(initial_response: Option<Vec<u8>>) -> StepResult {
        drive(Call::Start(initial_response))
    }

    fn step(response: Vec<u8>) -> StepResult {
        drive(Call::Step(response))
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

export!(Login);

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's outcome in a comparable form.
    fn show(result: &StepResult) -> String {
        match result {
            StepResult::Challenge(c) => format!("challenge {}", String::from_utf8_lossy(c)),
            StepResult::Success(Success {
                credentials: Credentials::UsernamePassword(up),
                additional_data: None,
            }) => format!("ok {:?} {} {}", up.authzid, up.username, up.password),
            StepResult::Success(_) => "unexpected success".into(),
            StepResult::Failure(why) => format!("failure {why}"),
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
            let mut state = State::New;
            let mut got = Vec::new();
            for call in calls.iter() {
                let (next, result) = advance(state, call.clone());
                state = next;
                got.push(show(&result));
            }
            assert_eq!(&got, want, "{calls:?}");
        }
    }
}
