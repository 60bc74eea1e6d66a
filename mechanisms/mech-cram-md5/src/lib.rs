//! SASL CRAM-MD5 (RFC 2195) as a portcullis mechanism plugin. No
//! configuration.
//!
//! The server speaks first: `<RANDOM.TIMESTAMP@SERVER>`, with 64 random
//! bits from the system's random source, the time in seconds since the
//! epoch and the host's `session.server-name`, so no two challenges repeat.
//! The client answers `USER SP DIGEST`, the digest being
//! HMAC-MD5(password, challenge) in hexadecimal. The mechanism checks only
//! the answer's shape ([`parse_response`]) and hands the user name, the
//! exact challenge and the digest to the portal as challenge-response
//! credentials with method `hmac-md5`; the checker, which holds the
//! password, recomputes the digest and compares.
//!
//! CRAM-MD5 has no initial response; an empty one is taken as none, any
//! other is refused. Not flagged plaintext, since the password does not
//! cross the wire, but an eavesdropper can test guesses against a captured
//! digest offline, and the checker must keep the password itself: prefer
//! SCRAM where the client supports it.

use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_sdk::mechanism::{Mechanism, MechanismInfo, Step};
use portcullis_sdk::types::{ChallengeResponse, CredentialKind, Credentials};

/// Where the exchange stands; the SDK handles calls out of order (a second
/// `start`, a `step` after the outcome).
#[derive(Debug, PartialEq, Eq)]
enum CramMd5 {
    New,
    /// The challenge was sent; the client's answer is next.
    AwaitingResponse(Vec<u8>),
}

/// The challenge for one exchange (RFC 2195 §2 suggests exactly this form).
fn challenge(random: u64, timestamp: u64, server_name: &str) -> Vec<u8> {
    format!("<{random}.{timestamp}@{server_name}>").into_bytes()
}

/// A well-formed answer: the user name and the digest in lower case.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    username: String,
    digest: String,
}

/// Splits `USER SP DIGEST` at its last space (a user name may contain
/// spaces). The user name must be non-empty UTF-8 without NUL; the digest
/// exactly 32 hexadecimal digits (upper case is accepted and lowered).
/// Errors never quote the answer.
fn parse_response(response: &[u8]) -> Result<Response, &'static str> {
    let text = std::str::from_utf8(response).map_err(|_| "not UTF-8")?;
    let (username, digest) = text
        .rsplit_once(' ')
        .ok_or("expected a user name, a space and a digest")?;
    if username.is_empty() {
        return Err("empty user name");
    }
    if username.contains('\0') {
        return Err("user name contains NUL");
    }
    if digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the digest is not 32 hexadecimal digits");
    }
    Ok(Response {
        username: username.to_owned(),
        digest: digest.to_ascii_lowercase(),
    })
}

/// A fresh challenge from the host's name, the clock and the random source.
fn make_challenge() -> Result<Vec<u8>, String> {
    let random = getrandom::u64().map_err(|e| format!("no randomness for the challenge: {e}"))?;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let server_name = portcullis_sdk::session::server_name();
    Ok(challenge(random, timestamp, &server_name))
}

impl CramMd5 {
    /// The exchange begins with `challenge` (made by the caller, so this
    /// stays pure and testable natively).
    fn begin(
        &mut self,
        initial_response: Option<Vec<u8>>,
        challenge: Result<Vec<u8>, String>,
    ) -> Step {
        if initial_response.is_some_and(|r| !r.is_empty()) {
            return Step::failure("CRAM-MD5 takes no initial response");
        }
        match challenge {
            Ok(c) => {
                *self = CramMd5::AwaitingResponse(c.clone());
                Step::Challenge(c)
            }
            Err(why) => Step::Failure(why),
        }
    }

    /// The client's answer to the challenge.
    fn answer(&mut self, response: &[u8]) -> Step {
        let CramMd5::AwaitingResponse(challenge) = std::mem::replace(self, CramMd5::New) else {
            return Step::failure("no response was expected");
        };
        match parse_response(response) {
            Ok(r) => Step::success(Credentials::ChallengeResponse(ChallengeResponse {
                authzid: None,
                username: r.username,
                method: "hmac-md5".into(),
                challenge,
                response: r.digest.into_bytes(),
            })),
            Err(why) => Step::failure(format!("malformed CRAM-MD5 response: {why}")),
        }
    }
}

impl Mechanism for CramMd5 {
    fn info() -> MechanismInfo {
        MechanismInfo::new("CRAM-MD5", [CredentialKind::ChallengeResponse])
    }

    fn new() -> Self {
        CramMd5::New
    }

    fn start(&mut self, initial_response: Option<Vec<u8>>) -> Step {
        self.begin(initial_response, make_challenge())
    }

    fn step(&mut self, response: Vec<u8>) -> Step {
        self.answer(&response)
    }
}

portcullis_sdk::export_mechanism!(CramMd5);

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use md5::Md5;

    const RFC_CHALLENGE: &[u8] = b"<1896.697170952@postoffice.reston.mci.net>";

    /// What the host called; `Start` carries the challenge the exchange
    /// would have made. (Calls out of order are the SDK's, tested there.)
    #[derive(Clone, Debug)]
    enum Call {
        Start {
            initial_response: Option<Vec<u8>>,
            challenge: Result<Vec<u8>, String>,
        },
        Step(Vec<u8>),
    }

    fn advance(mut state: CramMd5, call: Call) -> (CramMd5, Step) {
        let result = match call {
            Call::Start {
                initial_response,
                challenge,
            } => state.begin(initial_response, challenge),
            Call::Step(response) => state.answer(&response),
        };
        (state, result)
    }

    /// A step's outcome in a comparable form.
    fn show(result: &Step) -> String {
        match result {
            Step::Challenge(c) => format!("challenge {}", String::from_utf8_lossy(c)),
            Step::Success {
                credentials: Credentials::ChallengeResponse(cr),
                additional_data: None,
            } => format!(
                "ok {:?} {} {} {} {}",
                cr.authzid,
                cr.username,
                cr.method,
                String::from_utf8_lossy(&cr.challenge),
                String::from_utf8_lossy(&cr.response)
            ),
            Step::Success { .. } => "unexpected success".into(),
            Step::Failure(why) => format!("failure {why}"),
        }
    }

    fn start(initial_response: Option<&[u8]>) -> Call {
        Call::Start {
            initial_response: initial_response.map(<[u8]>::to_vec),
            challenge: Ok(RFC_CHALLENGE.to_vec()),
        }
    }

    fn step(response: &[u8]) -> Call {
        Call::Step(response.to_vec())
    }

    #[test]
    fn rfc_2195_example() {
        // What a client computes for user tim, password tanstaaftanstaaf.
        let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(b"tanstaaftanstaaf").unwrap();
        mac.update(RFC_CHALLENGE);
        let digest: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let response = format!("tim {digest}");
        assert_eq!(response, "tim b913a602c7eda7a495b4e6e7334d3890");

        let (state, first) = advance(CramMd5::New, start(None));
        assert_eq!(
            show(&first),
            "challenge <1896.697170952@postoffice.reston.mci.net>"
        );
        let (_, last) = advance(state, step(response.as_bytes()));
        assert_eq!(
            show(&last),
            "ok None tim hmac-md5 <1896.697170952@postoffice.reston.mci.net> \
             b913a602c7eda7a495b4e6e7334d3890"
        );
    }

    #[test]
    fn exchanges() {
        let ok = "ok None tim hmac-md5 <1896.697170952@postoffice.reston.mci.net> \
                  b913a602c7eda7a495b4e6e7334d3890";
        let challenge = "challenge <1896.697170952@postoffice.reston.mci.net>";
        let cases: &[(&[Call], &[&str])] = &[
            (
                &[
                    start(Some(b"")),
                    step(b"tim b913a602c7eda7a495b4e6e7334d3890"),
                ],
                &[challenge, ok],
            ),
            (
                &[start(None), step(b"tim B913A602C7EDA7A495B4E6E7334D3890")],
                &[challenge, ok],
            ),
            (
                &[
                    start(None),
                    step(b"tim tom b913a602c7eda7a495b4e6e7334d3890"),
                ],
                &[
                    challenge,
                    "ok None tim tom hmac-md5 <1896.697170952@postoffice.reston.mci.net> \
                     b913a602c7eda7a495b4e6e7334d3890",
                ],
            ),
            (
                &[start(Some(b"tim"))],
                &["failure CRAM-MD5 takes no initial response"],
            ),
            (
                &[start(None), step(b"timb913a602c7eda7a495b4e6e7334d3890")],
                &[
                    challenge,
                    "failure malformed CRAM-MD5 response: expected a user name, a space and a digest",
                ],
            ),
            (
                &[start(None), step(b" b913a602c7eda7a495b4e6e7334d3890")],
                &[
                    challenge,
                    "failure malformed CRAM-MD5 response: empty user name",
                ],
            ),
            (
                &[start(None), step(b"t\0m b913a602c7eda7a495b4e6e7334d3890")],
                &[
                    challenge,
                    "failure malformed CRAM-MD5 response: user name contains NUL",
                ],
            ),
            (
                &[start(None), step(b"tim b913a602c7eda7a495b4e6e7334d389")],
                &[
                    challenge,
                    "failure malformed CRAM-MD5 response: the digest is not 32 hexadecimal digits",
                ],
            ),
            (
                &[start(None), step(b"tim g913a602c7eda7a495b4e6e7334d3890")],
                &[
                    challenge,
                    "failure malformed CRAM-MD5 response: the digest is not 32 hexadecimal digits",
                ],
            ),
            (
                &[start(None), step(b"tim \xff")],
                &[challenge, "failure malformed CRAM-MD5 response: not UTF-8"],
            ),
            (
                &[start(None), step(b"")],
                &[
                    challenge,
                    "failure malformed CRAM-MD5 response: expected a user name, a space and a digest",
                ],
            ),
            (
                &[
                    start(None),
                    step(b"tim b913a602c7eda7a495b4e6e7334d3890"),
                    step(b"again"),
                ],
                &[challenge, ok, "failure no response was expected"],
            ),
            (&[step(b"tim x")], &["failure no response was expected"]),
            (
                &[Call::Start {
                    initial_response: None,
                    challenge: Err("no randomness for the challenge".into()),
                }],
                &["failure no randomness for the challenge"],
            ),
        ];
        for (calls, want) in cases {
            let mut state = CramMd5::New;
            let mut got = Vec::new();
            for call in calls.iter() {
                let (next, result) = advance(state, call.clone());
                state = next;
                got.push(show(&result));
            }
            assert_eq!(&got, want, "{calls:?}");
        }
    }

    #[test]
    fn challenges() {
        assert_eq!(
            challenge(1896, 697170952, "postoffice.reston.mci.net"),
            RFC_CHALLENGE
        );
    }

    #[test]
    fn failures_never_quote_the_response() {
        for response in [
            &b"hunter2"[..],
            b"hunter2 xyz",
            b" hunter2",
            b"hunter2\xff x",
        ] {
            let (state, _) = advance(CramMd5::New, start(None));
            let (_, result) = advance(state, step(response));
            let text = show(&result);
            assert!(
                text.starts_with("failure") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }
}
