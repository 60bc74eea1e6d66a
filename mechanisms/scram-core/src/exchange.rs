//! The server side of one SCRAM exchange (RFC 5802 §5) as a state machine.
//!
//! ```text
//! C: n,,n=user,r=CNONCE                          (client-first)
//! S: r=CNONCE SNONCE,s=SALT,i=4096               (server-first: a challenge)
//! C: c=biws,r=CNONCE SNONCE,p=PROOF              (client-final)
//! S: v=SIGNATURE                                 (server-final: success data)
//! ```
//!
//! [`advance`] is a pure function of the state and the host's call; the
//! [`Env`] it is given looks up the user's keys and makes the nonce, so
//! tests replay the RFCs' exchanges byte for byte.
//!
//! - Channel binding: `n` and `y` are accepted; `p=` is refused, since no
//!   `-PLUS` variant is offered. The client-final `c=` must repeat the GS2
//!   header exactly.
//! - The authzid (`a=`) is passed on; the host allows only the user itself
//!   (or the avatar id its checker vouched for).
//! - User names are taken as sent (after `=2C`/`=3D` decoding), without
//!   SASLprep; passwords are SASLprepped where keys are derived
//!   ([`crate::Keys::derive`]).
//! - A user the checker does not know or refuses gets a server-first
//!   message with [`crate::derived_salt`] and [`crate::DEFAULT_ITERATIONS`]
//!   (what a derived-key checker would send for a real user) and the
//!   exchange fails after the client's proof, with the checker's reason as
//!   the failure text for the log. A checker failure or a missing checker
//!   ends the exchange at once.
//! - A wrong proof is a `failure`: the host then sends its normal failure
//!   reply. A server-final `e=invalid-proof` cannot be sent, as the
//!   mechanism contract carries data to the client only with a success.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use crate::algorithm::{Algorithm, DEFAULT_ITERATIONS, Keys, derived_salt};
use crate::gs2::ChannelBinding;
use crate::message::{self, parse_client_final, parse_client_first};

/// What the exchange needs from outside.
pub trait Env {
    /// The stored keys of `username`, from the checker.
    fn lookup(&mut self, username: &str) -> Lookup;
    /// A fresh, unpredictable server nonce: printable ASCII without `,`.
    fn nonce(&mut self) -> Result<String, String>;
}

/// The answer to a key lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Keys),
    /// No such user, or the checker refused; the text says why, for the
    /// log. The exchange goes on with invented keys and fails at the end.
    Denied(String),
    /// The exchange cannot go on (the checker failed, or there is none).
    Unavailable(String),
}

/// What the host called.
#[derive(Clone, Debug)]
pub enum Call {
    Start(Option<Vec<u8>>),
    Step(Vec<u8>),
}

/// Where the exchange stands.
#[derive(Debug, Default)]
pub enum State {
    #[default]
    New,
    /// An empty challenge was sent; the client-first message is next.
    AwaitingFirst,
    /// The server-first message was sent; the client-final is next.
    AwaitingFinal(Box<Pending>),
    Done,
}

/// What the server remembers between its first message and the client's
/// final one.
#[derive(Debug)]
pub struct Pending {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    username: String,
    authzid: Option<String>,
    keys: Keys,
    /// Why the exchange must fail even with a good proof (the user is
    /// unknown or refused), or `None` for a genuine user.
    refusal: Option<String>,
}

/// A successful exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub authzid: Option<String>,
    /// The user name as the client sent it and as it was looked up.
    pub username: String,
    /// The server-final message (`v=…`), for the client.
    pub server_final: Vec<u8>,
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Challenge(Vec<u8>),
    Success(Verified),
    /// The text is for the operator's log; it never quotes the client's
    /// messages.
    Failure(String),
}

/// One transition of the exchange.
pub fn advance(
    algorithm: Algorithm,
    state: State,
    call: Call,
    env: &mut impl Env,
) -> (State, Outcome) {
    match (state, call) {
        (State::New, Call::Start(None)) => (State::AwaitingFirst, Outcome::Challenge(Vec::new())),
        (State::New, Call::Start(Some(message))) | (State::AwaitingFirst, Call::Step(message)) => {
            match client_first(algorithm, &message, env) {
                Ok((pending, server_first)) => (
                    State::AwaitingFinal(pending),
                    Outcome::Challenge(server_first),
                ),
                Err(why) => (State::Done, Outcome::Failure(why)),
            }
        }
        (State::AwaitingFinal(pending), Call::Step(message)) => {
            let outcome = match client_final(algorithm, &pending, &message) {
                Ok(verified) => Outcome::Success(verified),
                Err(why) => Outcome::Failure(why),
            };
            (State::Done, outcome)
        }
        (_, Call::Start(_)) => (State::Done, Outcome::Failure("start called twice".into())),
        (_, Call::Step(_)) => (
            State::Done,
            Outcome::Failure("no response was expected".into()),
        ),
    }
}

fn client_first(
    algorithm: Algorithm,
    message: &[u8],
    env: &mut impl Env,
) -> Result<(Box<Pending>, Vec<u8>), String> {
    let text = std::str::from_utf8(message).map_err(|_| "client-first message is not UTF-8")?;
    let first =
        parse_client_first(text).map_err(|e| format!("malformed client-first message: {e}"))?;
    if let ChannelBinding::Required(name) = &first.header.channel_binding {
        return Err(format!(
            "the client asked for channel binding ({name}), which {} does not offer",
            algorithm.mechanism_name()
        ));
    }
    let (keys, refusal) = match env.lookup(&first.username) {
        Lookup::Found(keys) if keys.fit(algorithm) => (keys, None),
        Lookup::Found(_) => {
            return Err(format!(
                "the checker's keys do not fit {}",
                algorithm.mechanism_name()
            ));
        }
        Lookup::Denied(why) => (invented_keys(algorithm, &first.username), Some(why)),
        Lookup::Unavailable(why) => return Err(why),
    };
    let server_nonce = env.nonce()?;
    if !message::valid_nonce(&server_nonce) {
        return Err("the server nonce has characters SCRAM does not allow".into());
    }
    let nonce = format!("{}{server_nonce}", first.client_nonce);
    let server_first = format!(
        "r={nonce},s={},i={}",
        STANDARD.encode(&keys.salt),
        keys.iterations
    );
    let pending = Box::new(Pending {
        gs2_header: first.gs2_header.to_owned(),
        client_first_bare: first.bare.to_owned(),
        server_first: server_first.clone(),
        nonce,
        username: first.username,
        authzid: first.header.authzid,
        keys,
        refusal,
    });
    Ok((pending, server_first.into_bytes()))
}

/// Keys for a user who does not exist: the salt and iteration count a
/// derived-key checker would use, and keys no proof can match.
fn invented_keys(algorithm: Algorithm, username: &str) -> Keys {
    Keys {
        salt: derived_salt(username).to_vec(),
        iterations: DEFAULT_ITERATIONS,
        stored_key: vec![0; algorithm.output_len()],
        server_key: vec![0; algorithm.output_len()],
    }
}

fn client_final(
    algorithm: Algorithm,
    pending: &Pending,
    message: &[u8],
) -> Result<Verified, String> {
    let text = std::str::from_utf8(message).map_err(|_| "client-final message is not UTF-8")?;
    let last =
        parse_client_final(text).map_err(|e| format!("malformed client-final message: {e}"))?;
    if last.channel_binding != pending.gs2_header.as_bytes() {
        return Err("the channel binding does not repeat the GS2 header".into());
    }
    if last.nonce != pending.nonce {
        return Err("the nonce does not match the server's".into());
    }
    if last.proof.len() != algorithm.output_len() {
        return Err("the proof has the wrong length".into());
    }
    let auth_message = [
        pending.client_first_bare.as_bytes(),
        b",",
        pending.server_first.as_bytes(),
        b",",
        last.without_proof.as_bytes(),
    ];
    let keys = &pending.keys;
    let client_signature = algorithm.hmac(&keys.stored_key, &auth_message);
    let client_key: Vec<u8> = last
        .proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    let proven: bool = algorithm.hash(&client_key).ct_eq(&keys.stored_key).into();
    if let Some(why) = &pending.refusal {
        return Err(why.clone());
    }
    if !proven {
        return Err("the client's proof is wrong (bad password)".into());
    }
    let server_signature = algorithm.hmac(&keys.server_key, &auth_message);
    Ok(Verified {
        authzid: pending.authzid.clone(),
        username: pending.username.clone(),
        server_final: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
    })
}

/// A server nonce for a real exchange: 24 bytes from the system's random
/// source, base64 (32 characters, all allowed in a nonce).
pub fn random_nonce() -> Result<String, String> {
    let mut bytes = [0; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the nonce: {e}"))?;
    Ok(STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests;
