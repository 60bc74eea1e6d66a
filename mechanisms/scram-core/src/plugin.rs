//! The SCRAM mechanism plugin over the SDK (feature `sdk`): one generic
//! [`Scram`] serves every variant, so each mechanism crate only names its
//! [`Variant`] and exports `Scram<ItsVariant>`.
//!
//! - the user's keys come from `session.lookup-secret(user, kind)`, so the
//!   mechanism never sees a password or the checker's data;
//! - the server nonce comes from the system's random source (`wasi:random`);
//! - a good proof becomes `verified-secret` credentials, with the
//!   server-final `v=…` message as additional data (the host sends it as a
//!   last challenge where the protocol has no other way);
//! - a checker's denial of the lookup is not told to the client: the
//!   exchange goes on with invented keys and fails after the proof, with
//!   the denial as the failure text for the log.

use std::marker::PhantomData;

use portcullis_sdk::mechanism::{Mechanism, MechanismInfo, Step};
use portcullis_sdk::session::{self, LookupError};
use portcullis_sdk::types::{CredentialKind, Credentials, Denial, StoredSecret, VerifiedSecret};

use crate::{Algorithm, Call, Env, Keys, Lookup, Outcome, State, advance, random_nonce};

/// One SCRAM variant: its hash and the credential kind it looks up.
pub trait Variant: Send + 'static {
    const ALGORITHM: Algorithm;
    const KIND: CredentialKind;
}

/// The mechanism for variant `V`; a fresh value serves each exchange.
pub struct Scram<V> {
    state: State,
    variant: PhantomData<V>,
}

impl<V: Variant> Mechanism for Scram<V> {
    fn info() -> MechanismInfo {
        MechanismInfo::new(V::ALGORITHM.mechanism_name(), [V::KIND])
    }

    fn new() -> Self {
        Scram {
            state: State::New,
            variant: PhantomData,
        }
    }

    fn start(&mut self, initial_response: Option<Vec<u8>>) -> Step {
        self.drive(Call::Start(initial_response), &mut Host::<V>(PhantomData))
    }

    fn step(&mut self, response: Vec<u8>) -> Step {
        self.drive(Call::Step(response), &mut Host::<V>(PhantomData))
    }
}

impl<V: Variant> Scram<V> {
    /// One transition with `env` answering lookups and nonces: the host in
    /// the plugin, the RFC vectors in tests.
    pub fn drive(&mut self, call: Call, env: &mut impl Env) -> Step {
        let state = std::mem::replace(&mut self.state, State::Done);
        let (next, outcome) = advance(V::ALGORITHM, state, call, env);
        self.state = next;
        step::<V>(outcome)
    }
}

/// The exchange's view of the host.
struct Host<V>(PhantomData<V>);

impl<V: Variant> Env for Host<V> {
    fn lookup(&mut self, username: &str) -> Lookup {
        lookup::<V>(session::lookup_secret(username, V::KIND))
    }

    fn nonce(&mut self) -> Result<String, String> {
        random_nonce()
    }
}

/// The host's answer to a lookup, as the exchange needs it.
pub fn lookup<V: Variant>(answer: Result<StoredSecret, LookupError>) -> Lookup {
    let name = V::ALGORITHM.mechanism_name();
    match answer {
        Ok(StoredSecret::Scram(keys)) => Lookup::Found(Keys {
            salt: keys.salt,
            iterations: keys.iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }),
        Err(LookupError::Denied(denial)) => Lookup::Denied(describe(&denial, name)),
        Err(LookupError::Unsupported) => {
            Lookup::Unavailable(format!("no checker answers {name} lookups"))
        }
        Err(LookupError::Unavailable(why)) => {
            Lookup::Unavailable(format!("the checker failed: {why}"))
        }
    }
}

/// A denial as a line for the operator's log.
fn describe(denial: &Denial, name: &str) -> String {
    match denial {
        Denial::UnknownUser => "no such user".into(),
        Denial::BadCredentials => "the checker refused the lookup".into(),
        Denial::AccountDisabled => "the account is disabled".into(),
        Denial::NotAuthorized => "the user is not authorized".into(),
        Denial::Unsupported => format!("the checker has no {name} keys"),
        Denial::Other(why) => why.clone(),
    }
}

/// The exchange's outcome as the SDK's step.
pub fn step<V: Variant>(outcome: Outcome) -> Step {
    match outcome {
        Outcome::Challenge(data) => Step::Challenge(data),
        Outcome::Success(verified) => Step::Success {
            credentials: Credentials::VerifiedSecret(VerifiedSecret {
                authzid: verified.authzid,
                username: verified.username,
                kind: V::KIND,
            }),
            additional_data: Some(verified.server_final),
        },
        Outcome::Failure(why) => Step::Failure(why),
    }
}
