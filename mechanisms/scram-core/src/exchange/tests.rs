//! The exchange replayed: the RFCs' examples byte for byte, unknown users,
//! protocol violations.

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
    let mut env =
        TestEnv::new(RFC7677_NONCE).user("user", keys(Algorithm::Sha256, "pencil2", RFC7677_SALT));
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
