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
mod tests {
    use super::*;

    /// Users with passwords, a fixed server nonce, and a record of the
    /// lookups made.
    struct TestEnv {
        users: Vec<(&'static str, Lookup)>,
        nonce: Result<String, String>,
        looked_up: Vec<String>,
    }

    impl TestEnv {
        fn new(nonce: &str) -> TestEnv {
            TestEnv {
                users: Vec::new(),
                nonce: Ok(nonce.into()),
                looked_up: Vec::new(),
            }
        }

        fn user(mut self, name: &'static str, answer: Lookup) -> TestEnv {
            self.users.push((name, answer));
            self
        }
    }

    impl Env for TestEnv {
        fn lookup(&mut self, username: &str) -> Lookup {
            self.looked_up.push(username.to_owned());
            self.users
                .iter()
                .find(|(name, _)| *name == username)
                .map(|(_, answer)| answer.clone())
                .unwrap_or_else(|| Lookup::Denied("no such user".into()))
        }

        fn nonce(&mut self) -> Result<String, String> {
            self.nonce.clone()
        }
    }

    fn keys(algorithm: Algorithm, password: &str, salt_b64: &str) -> Lookup {
        let salt = STANDARD.decode(salt_b64).unwrap();
        Lookup::Found(Keys::derive(algorithm, password, &salt, 4096))
    }

    /// Runs `messages` through a fresh exchange, the first as an initial
    /// response; the outcomes as text.
    fn run(algorithm: Algorithm, env: &mut TestEnv, messages: &[&str]) -> Vec<String> {
        let mut state = State::New;
        let mut out = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let bytes = message.as_bytes().to_vec();
            let call = if i == 0 {
                Call::Start(Some(bytes))
            } else {
                Call::Step(bytes)
            };
            let (next, outcome) = advance(algorithm, state, call, env);
            state = next;
            out.push(show(&outcome));
        }
        out
    }

    fn show(outcome: &Outcome) -> String {
        match outcome {
            Outcome::Challenge(c) => format!("challenge {}", String::from_utf8_lossy(c)),
            Outcome::Success(v) => format!(
                "ok {:?} {} {}",
                v.authzid,
                v.username,
                String::from_utf8_lossy(&v.server_final)
            ),
            Outcome::Failure(why) => format!("failure {why}"),
        }
    }

    const RFC7677_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC7677_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC7677_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                 p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";

    fn rfc7677_env() -> TestEnv {
        TestEnv::new(RFC7677_NONCE).user("user", keys(Algorithm::Sha256, "pencil", RFC7677_SALT))
    }

    #[test]
    fn rfc_7677_sha_256_exchange() {
        let mut env = rfc7677_env();
        assert_eq!(
            run(Algorithm::Sha256, &mut env, &[RFC7677_FIRST, RFC7677_FINAL]),
            [
                "challenge r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                 s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                "ok None user v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
            ]
        );
        assert_eq!(env.looked_up, ["user"]);
    }

    #[test]
    fn rfc_5802_sha_1_exchange() {
        let mut env = TestEnv::new("3rfcNHYJY1ZVvWVs7j")
            .user("user", keys(Algorithm::Sha1, "pencil", "QSXCR+Q6sek8bf92"));
        assert_eq!(
            run(
                Algorithm::Sha1,
                &mut env,
                &[
                    "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
                    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,\
                     p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                ]
            ),
            [
                "challenge r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
                "ok None user v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
            ]
        );
    }

    #[test]
    fn without_an_initial_response_the_server_asks_for_it() {
        let mut env = rfc7677_env();
        let (state, outcome) = advance(Algorithm::Sha256, State::New, Call::Start(None), &mut env);
        assert_eq!(outcome, Outcome::Challenge(Vec::new()));
        let (state, outcome) = advance(
            Algorithm::Sha256,
            state,
            Call::Step(RFC7677_FIRST.into()),
            &mut env,
        );
        assert!(
            show(&outcome).starts_with("challenge r=rOpr"),
            "{outcome:?}"
        );
        let (_, outcome) = advance(
            Algorithm::Sha256,
            state,
            Call::Step(RFC7677_FINAL.into()),
            &mut env,
        );
        assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    }

    #[test]
    fn wrong_password() {
        let mut env = TestEnv::new(RFC7677_NONCE)
            .user("user", keys(Algorithm::Sha256, "pencil2", RFC7677_SALT));
        let got = run(Algorithm::Sha256, &mut env, &[RFC7677_FIRST, RFC7677_FINAL]);
        assert_eq!(got[1], "failure the client's proof is wrong (bad password)");
    }

    #[test]
    fn the_wrong_hash_fails() {
        // SHA-1 keys offered to a SHA-256 exchange do not fit.
        let mut env =
            TestEnv::new(RFC7677_NONCE).user("user", keys(Algorithm::Sha1, "pencil", RFC7677_SALT));
        assert_eq!(
            run(Algorithm::Sha256, &mut env, &[RFC7677_FIRST]),
            ["failure the checker's keys do not fit SCRAM-SHA-256"]
        );
    }

    #[test]
    fn unknown_users_get_a_plausible_challenge_then_fail() {
        let mut env = TestEnv::new(RFC7677_NONCE);
        let got = run(
            Algorithm::Sha256,
            &mut env,
            &[
                "n,,n=nobody,r=abc",
                "c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            ],
        );
        let salt = STANDARD.encode(derived_salt("nobody"));
        assert_eq!(
            got,
            [
                format!("challenge r=abc{RFC7677_NONCE},s={salt},i=4096"),
                "failure no such user".into(),
            ]
        );
        // The same name gets the same salt every time.
        let again = run(Algorithm::Sha256, &mut env, &["n,,n=nobody,r=xyz"]);
        assert!(again[0].contains(&salt), "{again:?}");

        // A refused user looks the same, and the log learns why.
        let mut env =
            TestEnv::new(RFC7677_NONCE).user("locked", Lookup::Denied("account disabled".into()));
        let got = run(
            Algorithm::Sha256,
            &mut env,
            &[
                "n,,n=locked,r=abc",
                "c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            ],
        );
        let salt = STANDARD.encode(derived_salt("locked"));
        assert_eq!(
            got[0],
            format!("challenge r=abc{RFC7677_NONCE},s={salt},i=4096")
        );
        assert_eq!(got[1], "failure account disabled");
    }

    #[test]
    fn an_unavailable_checker_ends_the_exchange_at_once() {
        let mut env =
            TestEnv::new(RFC7677_NONCE).user("user", Lookup::Unavailable("checker failed".into()));
        assert_eq!(
            run(Algorithm::Sha256, &mut env, &[RFC7677_FIRST]),
            ["failure checker failed"]
        );
    }

    #[test]
    fn authzid_and_saslnames() {
        let salt = STANDARD.encode(b"salt");
        let mut env = TestEnv::new("S").user("a,b=c", keys(Algorithm::Sha256, "pw", &salt));
        let first = "y,a=adm=2Cin,n=a=2Cb=3Dc,r=C";
        let first_bare = "n=a=2Cb=3Dc,r=C";
        let server_first = format!("r=CS,s={salt},i=4096");
        let final_message = client_final_message(
            Algorithm::Sha256,
            "pw",
            b"salt",
            "y,a=adm=2Cin,",
            first_bare,
            &server_first,
            "CS",
        );
        let got = run(Algorithm::Sha256, &mut env, &[first, &final_message]);
        assert_eq!(got[0], format!("challenge {server_first}"));
        assert!(
            got[1].starts_with("ok Some(\"adm,in\") a,b=c v="),
            "{got:?}"
        );
        assert_eq!(env.looked_up, ["a,b=c"]);
    }

    /// A client's final message, computed the RFC 5802 way.
    fn client_final_message(
        algorithm: Algorithm,
        password: &str,
        salt: &[u8],
        gs2_header: &str,
        first_bare: &str,
        server_first: &str,
        nonce: &str,
    ) -> String {
        let salted = algorithm.salted_password(password.as_bytes(), salt, 4096);
        let client_key = algorithm.hmac(&salted, &[b"Client Key"]);
        let stored_key = algorithm.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(gs2_header));
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = algorithm.hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", STANDARD.encode(proof))
    }

    #[test]
    fn protocol_violations() {
        let proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let nonce = format!("rOprNGfwEbeRWgbNEkqO{RFC7677_NONCE}");
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                vec!["p=tls-unique,,n=user,r=abc".into()],
                "failure the client asked for channel binding (tls-unique), which \
                 SCRAM-SHA-256 does not offer",
            ),
            (
                vec!["".into()],
                "failure malformed client-first message: no GS2 header",
            ),
            (
                vec!["n,,m=x,n=user,r=abc".into()],
                "failure malformed client-first message: unsupported mandatory extension",
            ),
            (
                vec![RFC7677_FIRST.into(), format!("c=eSws,r={nonce},{proof}")],
                "failure the channel binding does not repeat the GS2 header",
            ),
            (
                vec![
                    RFC7677_FIRST.into(),
                    format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,{proof}"),
                ],
                "failure the nonce does not match the server's",
            ),
            (
                vec![RFC7677_FIRST.into(), format!("c=biws,r={nonce},p=AAAA")],
                "failure the proof has the wrong length",
            ),
            (
                vec![RFC7677_FIRST.into(), format!("c=biws,r={nonce}")],
                "failure malformed client-final message: missing or invalid proof",
            ),
        ];
        for (messages, want) in cases {
            let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
            let got = run(Algorithm::Sha256, &mut rfc7677_env(), &messages);
            assert_eq!(got.last().map(String::as_str), Some(want), "{messages:?}");
        }
    }

    #[test]
    fn not_utf8() {
        let mut env = rfc7677_env();
        let (_, outcome) = advance(
            Algorithm::Sha256,
            State::New,
            Call::Start(Some(b"n,,n=\xff,r=a".to_vec())),
            &mut env,
        );
        assert_eq!(show(&outcome), "failure client-first message is not UTF-8");
    }

    #[test]
    fn bad_server_nonces_are_refused() {
        for nonce in [
            Err("no entropy".to_owned()),
            Ok("a,b".to_owned()),
            Ok(String::new()),
        ] {
            let mut env = rfc7677_env();
            env.nonce = nonce;
            let got = run(Algorithm::Sha256, &mut env, &[RFC7677_FIRST]);
            assert!(got[0].starts_with("failure"), "{got:?}");
        }
    }

    #[test]
    fn random_nonces_are_valid_and_differ() {
        let (a, b) = (random_nonce().unwrap(), random_nonce().unwrap());
        assert!(message::valid_nonce(&a) && a.len() == 32, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn calls_out_of_order() {
        let mut env = rfc7677_env();
        let (state, _) = advance(Algorithm::Sha256, State::New, Call::Start(None), &mut env);
        let (state, outcome) = advance(Algorithm::Sha256, state, Call::Start(None), &mut env);
        assert_eq!(show(&outcome), "failure start called twice");
        let (_, outcome) = advance(Algorithm::Sha256, state, Call::Step(Vec::new()), &mut env);
        assert_eq!(show(&outcome), "failure no response was expected");
        let (_, outcome) = advance(
            Algorithm::Sha256,
            State::New,
            Call::Step(Vec::new()),
            &mut env,
        );
        assert_eq!(show(&outcome), "failure no response was expected");

        let got = run(
            Algorithm::Sha256,
            &mut rfc7677_env(),
            &[RFC7677_FIRST, RFC7677_FINAL, RFC7677_FINAL],
        );
        assert_eq!(got[2], "failure no response was expected");
    }

    #[test]
    fn failures_never_quote_the_client() {
        let secret = "hunter2";
        for messages in [
            vec![format!("n,,n={secret}=,r=a")],
            vec![format!("n,,n=user,r={secret} x")],
            vec![
                RFC7677_FIRST.to_owned(),
                format!("c=biws,r={secret},p=AAAA"),
            ],
        ] {
            let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
            let got = run(Algorithm::Sha256, &mut rfc7677_env(), &messages);
            let last = got.last().unwrap();
            assert!(
                last.starts_with("failure") && !last.contains(secret),
                "{last}"
            );
        }
    }
}
