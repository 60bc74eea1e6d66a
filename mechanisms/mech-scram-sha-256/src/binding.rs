// The host binding shared by mech-scram-sha-256 and mech-scram-sha-1,
// included textually by each crate's lib.rs after it defines `ALGORITHM`
// and `KIND` and runs `wit_bindgen::generate!`.

/// The exchange in progress. A fresh instance serves each exchange.
static STATE: Mutex<State> = Mutex::new(State::New);

/// The exchange's view of the host.
struct Host;

impl Env for Host {
    fn lookup(&mut self, username: &str) -> Lookup {
        lookup_from_wit(session::lookup_secret(username, KIND))
    }

    fn nonce(&mut self) -> Result<String, String> {
        scram_core::random_nonce()
    }
}

/// The host's answer to a lookup, as the exchange needs it.
fn lookup_from_wit(answer: Result<StoredSecret, LookupError>) -> Lookup {
    match answer {
        Ok(StoredSecret::Scram(keys)) => Lookup::Found(Keys {
            salt: keys.salt,
            iterations: keys.iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }),
        Err(LookupError::Denied(denial)) => Lookup::Denied(describe(&denial)),
        Err(LookupError::Unsupported) => {
            Lookup::Unavailable(format!(
                "no checker answers {} lookups",
                ALGORITHM.mechanism_name()
            ))
        }
        Err(LookupError::Unavailable(why)) => {
            Lookup::Unavailable(format!("the checker failed: {why}"))
        }
    }
}

/// A denial as a line for the operator's log.
fn describe(denial: &Denial) -> String {
    match denial {
        Denial::UnknownUser => "no such user".into(),
        Denial::BadCredentials => "the checker refused the lookup".into(),
        Denial::AccountDisabled => "the account is disabled".into(),
        Denial::NotAuthorized => "the user is not authorized".into(),
        Denial::Unsupported => format!("the checker has no {} keys", ALGORITHM.mechanism_name()),
        Denial::Other(why) => why.clone(),
    }
}

/// The exchange's outcome as the host's step result.
fn step_result(outcome: Outcome) -> StepResult {
    match outcome {
        Outcome::Challenge(data) => StepResult::Challenge(data),
        Outcome::Success(verified) => StepResult::Success(Success {
            credentials: Credentials::VerifiedSecret(VerifiedSecret {
                authzid: verified.authzid,
                username: verified.username,
                kind: KIND,
            }),
            additional_data: Some(verified.server_final),
        }),
        Outcome::Failure(why) => StepResult::Failure(why),
    }
}

fn drive(call: Call) -> StepResult {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let state = std::mem::replace(&mut *guard, State::Done);
    let (next, outcome) = scram_core::advance(ALGORITHM, state, call, &mut Host);
    *guard = next;
    step_result(outcome)
}

struct Scram;

impl Guest for Scram {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: ALGORITHM.mechanism_name().into(),
            plaintext: false,
            credential_kinds: vec![KIND],
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

export!(Scram);
