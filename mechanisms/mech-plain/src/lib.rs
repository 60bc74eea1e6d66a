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

use std::sync::Mutex;

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, UsernamePassword};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mechanism-plugin",
});

/// Where the exchange stands. A fresh instance serves each exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    New,
    AwaitingMessage,
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
fn advance(state: State, call: Call) -> (State, StepResult) {
    match (state, call) {
        (State::New, Call::Start(None)) => {
            (State::AwaitingMessage, StepResult::Challenge(Vec::new()))
        }
        (State::New, Call::Start(Some(message)))
        | (State::AwaitingMessage, Call::Step(message)) => (State::Done, finish(&message)),
        (_, Call::Start(_)) => (
            State::Done,
            StepResult::Failure("start called twice".into()),
        ),
        (_, Call::Step(_)) => (
            State::Done,
            StepResult::Failure("no response was expected".into()),
        ),
    }
}

fn drive(call: Call) -> StepResult {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let (next, result) = advance(*state, call);
    *state = next;
    result
}

struct Plain;

impl Guest for Plain {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "PLAIN".into(),
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

/// The outcome for a complete message. The failure text names what is
/// wrong with the message, never its contents.
fn finish(message: &[u8]) -> StepResult {
    match message::parse(message) {
        Ok(m) => StepResult::Success(Success {
            credentials: Credentials::UsernamePassword(UsernamePassword {
                authzid: m.authzid.map(str::to_owned),
                username: m.authcid.to_owned(),
                password: m.password.to_owned(),
            }),
            additional_data: None,
        }),
        Err(e) => StepResult::Failure(format!("malformed PLAIN message: {e}")),
    }
}

export!(Plain);

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's outcome in a comparable form.
    fn show(result: &StepResult) -> String {
        match result {
            StepResult::Challenge(c) => format!("challenge {c:?}"),
            StepResult::Success(Success {
                credentials: Credentials::UsernamePassword(up),
                additional_data: None,
            }) => format!("ok {:?} {} {}", up.authzid, up.username, up.password),
            StepResult::Success(_) => "unexpected success".into(),
            StepResult::Failure(why) => format!("failure {why}"),
        }
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
            let mut state = State::New;
            let mut got = Vec::new();
            for call in calls.iter() {
                let (next, result) = advance(state, call.clone());
                state = next;
                got.push(show(&result));
            }
            assert_eq!(&got, want);
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
            let (_, result) = advance(State::New, Call::Start(Some(message.to_vec())));
            let text = show(&result);
            assert!(
                text.starts_with("failure") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }
}
