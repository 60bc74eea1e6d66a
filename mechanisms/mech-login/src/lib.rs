//! The LOGIN SASL mechanism (draft-murchison-sasl-login) as a portcullis
//! mechanism plugin: `Username:` and `Password:` challenges. An initial
//! response, when given, is the user name. No configuration.

use std::sync::Mutex;

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, UsernamePassword};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mechanism-plugin",
});

enum State {
    New,
    AwaitingUsername,
    AwaitingPassword(String),
    Done,
}

static STATE: Mutex<State> = Mutex::new(State::New);

/// One transition of the exchange: a pure function of state and input.
fn advance(state: State, input: Option<Vec<u8>>) -> (State, StepResult) {
    let failure = |why: &str| (State::Done, StepResult::Failure(why.into()));
    match (state, input) {
        (State::New, None) => (
            State::AwaitingUsername,
            StepResult::Challenge(b"Username:".to_vec()),
        ),
        (State::New | State::AwaitingUsername, Some(name)) => match String::from_utf8(name) {
            Ok(name) if !name.is_empty() && !name.contains('\0') => (
                State::AwaitingPassword(name),
                StepResult::Challenge(b"Password:".to_vec()),
            ),
            Ok(_) => failure("empty or invalid user name"),
            Err(_) => failure("user name is not UTF-8"),
        },
        (State::AwaitingPassword(username), Some(password)) => match String::from_utf8(password) {
            Ok(password) if !password.is_empty() => (
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
            Ok(_) => failure("empty password"),
            Err(_) => failure("password is not UTF-8"),
        },
        _ => failure("unexpected step"),
    }
}

fn drive(input: Option<Vec<u8>>, starting: bool) -> StepResult {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let state = std::mem::replace(&mut *guard, State::Done);
    let state = match (starting, state) {
        (true, State::New) => State::New,
        (true, _) => return StepResult::Failure("start called twice".into()),
        (false, State::New) => return StepResult::Failure("step before start".into()),
        (false, s) => s,
    };
    let (next, step) = advance(state, input);
    *guard = next;
    step
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
        // An empty initial response carries no user name: ask for one.
        drive(initial_response.filter(|r| !r.is_empty()), true)
    }

    fn step(response: Vec<u8>) -> StepResult {
        drive(Some(response), false)
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

export!(Login);

#[cfg(test)]
mod tests {
    use super::*;

    fn user_pass(step: &StepResult) -> Option<(String, String)> {
        match step {
            StepResult::Success(Success {
                credentials: Credentials::UsernamePassword(up),
                ..
            }) => Some((up.username.clone(), up.password.clone())),
            _ => None,
        }
    }

    #[test]
    fn full_exchange() {
        let (s, step) = advance(State::New, None);
        assert!(matches!(step, StepResult::Challenge(ref c) if c == b"Username:"));
        let (s, step) = advance(s, Some(b"guest".to_vec()));
        assert!(matches!(step, StepResult::Challenge(ref c) if c == b"Password:"));
        let (s, step) = advance(s, Some(b"password".to_vec()));
        assert_eq!(user_pass(&step), Some(("guest".into(), "password".into())));
        assert!(matches!(s, State::Done));
    }

    #[test]
    fn initial_response_is_the_user_name() {
        let (s, step) = advance(State::New, Some(b"guest".to_vec()));
        assert!(matches!(step, StepResult::Challenge(ref c) if c == b"Password:"));
        let (_, step) = advance(s, Some(b"pw".to_vec()));
        assert_eq!(user_pass(&step), Some(("guest".into(), "pw".into())));
    }

    #[test]
    fn bad_input_fails() {
        for (state, input) in [
            (State::AwaitingUsername, b"".to_vec()),
            (State::AwaitingUsername, b"\xff".to_vec()),
            (State::AwaitingPassword("u".into()), b"".to_vec()),
            (State::AwaitingPassword("u".into()), b"\xfe".to_vec()),
            (State::Done, b"x".to_vec()),
        ] {
            let (next, step) = advance(state, Some(input));
            assert!(matches!(step, StepResult::Failure(_)));
            assert!(matches!(next, State::Done));
        }
    }
}
