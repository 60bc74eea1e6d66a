//! SASL PLAIN (RFC 4616) as a portcullis mechanism plugin.
//!
//! The client sends `[authzid] NUL authcid NUL passwd` (as an initial
//! response, or after an empty challenge). The mechanism checks only the
//! message's shape and hands user name and password to the portal; the
//! checker decides. No configuration.

mod message;

use std::sync::Mutex;

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, UsernamePassword};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mechanism-plugin",
});

/// Where the exchange stands. A fresh instance serves each exchange.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    AwaitingMessage,
    Done,
}

static STATE: Mutex<State> = Mutex::new(State::New);

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
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if *state != State::New {
            *state = State::Done;
            return StepResult::Failure("start called twice".into());
        }
        match initial_response {
            None => {
                *state = State::AwaitingMessage;
                StepResult::Challenge(Vec::new())
            }
            Some(message) => {
                *state = State::Done;
                finish(&message)
            }
        }
    }

    fn step(response: Vec<u8>) -> StepResult {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if *state != State::AwaitingMessage {
            *state = State::Done;
            return StepResult::Failure("no response was expected".into());
        }
        *state = State::Done;
        finish(&response)
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

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
