//! SASL EXTERNAL (RFC 4422 appendix A) as a portcullis mechanism plugin.
//! No configuration.
//!
//! The identity comes from outside SASL: `session.external-identity`, the
//! subject a verified TLS client certificate established. Without one the
//! exchange fails at once. The client's only message is the authorization
//! identity it wants (empty: act as the external identity itself), sent as
//! the initial response or after an empty challenge; it must be UTF-8
//! without NUL. The outcome is external credentials carrying exactly the
//! identity the host gave (the host refuses any other) and the authzid;
//! the checker for the `external` kind decides whether that identity may
//! log in and act as that authzid.

use std::sync::Mutex;

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, ExternalIdentity};

wit_bindgen::generate!({
    path: "../../wit",
    world: "mechanism-plugin",
});

/// Where the exchange stands. A fresh instance serves each exchange.
#[derive(Debug, PartialEq, Eq)]
enum State {
    New,
    /// The empty challenge was sent; the authzid is next.
    AwaitingAuthzid {
        identity: String,
    },
    Done,
}

/// What the host called. `Start` carries the transport's identity, which
/// the glue asks the host for, so `advance` stays pure.
#[derive(Clone, Debug)]
enum Call {
    Start {
        initial_response: Option<Vec<u8>>,
        identity: Option<String>,
    },
    Step(Vec<u8>),
}

static STATE: Mutex<State> = Mutex::new(State::New);

/// One transition of the exchange: a pure function of state and call.
fn advance(state: State, call: Call) -> (State, StepResult) {
    let failure = |why: &str| (State::Done, StepResult::Failure(why.into()));
    match (state, call) {
        (State::New, Call::Start { identity: None, .. }) => {
            failure("the transport established no identity (no verified client certificate)")
        }
        (
            State::New,
            Call::Start {
                initial_response: None,
                identity: Some(identity),
            },
        ) => (
            State::AwaitingAuthzid { identity },
            StepResult::Challenge(Vec::new()),
        ),
        (
            State::New,
            Call::Start {
                initial_response: Some(authzid),
                identity: Some(identity),
            },
        )
        | (State::AwaitingAuthzid { identity }, Call::Step(authzid)) => {
            (State::Done, finish(identity, authzid))
        }
        (_, Call::Start { .. }) => failure("start called twice"),
        (_, Call::Step(_)) => failure("no response was expected"),
    }
}

fn finish(identity: String, authzid: Vec<u8>) -> StepResult {
    let authzid = match String::from_utf8(authzid) {
        Ok(z) if z.contains('\0') => {
            return StepResult::Failure("malformed EXTERNAL message: NUL in the authzid".into());
        }
        Ok(z) => (!z.is_empty()).then_some(z),
        Err(_) => {
            return StepResult::Failure("malformed EXTERNAL message: not UTF-8".into());
        }
    };
    StepResult::Success(Success {
        credentials: Credentials::External(ExternalIdentity { authzid, identity }),
        additional_data: None,
    })
}

fn drive(call: Call) -> StepResult {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let state = std::mem::replace(&mut *guard, State::Done);
    let (next, result) = advance(state, call);
    *guard = next;
    result
}

struct External;

impl Guest for External {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "EXTERNAL".into(),
            plaintext: false,
            credential_kinds: vec![CredentialKind::External],
        }
    }

    fn start(initial_response: Option<Vec<u8>>) -> StepResult {
        drive(Call::Start {
            initial_response,
            identity: portcullis::auth::session::external_identity(),
        })
    }

    fn step(response: Vec<u8>) -> StepResult {
        drive(Call::Step(response))
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

export!(External);

#[cfg(test)]
mod tests {
    use super::*;

    fn show(result: &StepResult) -> String {
        match result {
            StepResult::Challenge(c) => format!("challenge {c:?}"),
            StepResult::Success(Success {
                credentials: Credentials::External(e),
                additional_data: None,
            }) => format!("ok {:?} {}", e.authzid, e.identity),
            StepResult::Success(_) => "unexpected success".into(),
            StepResult::Failure(why) => format!("failure {why}"),
        }
    }

    fn start(initial_response: Option<&[u8]>, identity: Option<&str>) -> Call {
        Call::Start {
            initial_response: initial_response.map(<[u8]>::to_vec),
            identity: identity.map(str::to_owned),
        }
    }

    fn step(response: &[u8]) -> Call {
        Call::Step(response.to_vec())
    }

    #[test]
    fn exchanges() {
        let cn = Some("CN=alice,O=Example");
        let cases: &[(&[Call], &[&str])] = &[
            (&[start(Some(b""), cn)], &["ok None CN=alice,O=Example"]),
            (
                &[start(Some(b"bob"), cn)],
                &["ok Some(\"bob\") CN=alice,O=Example"],
            ),
            (
                &[start(None, cn), step(b"")],
                &["challenge []", "ok None CN=alice,O=Example"],
            ),
            (
                &[start(None, cn), step("jürgen".as_bytes())],
                &["challenge []", "ok Some(\"jürgen\") CN=alice,O=Example"],
            ),
            (
                &[start(Some(b""), None)],
                &["failure the transport established no identity (no verified client certificate)"],
            ),
            (
                &[start(None, None), step(b"")],
                &[
                    "failure the transport established no identity (no verified client certificate)",
                    "failure no response was expected",
                ],
            ),
            (
                &[start(Some(b"a\0b"), cn)],
                &["failure malformed EXTERNAL message: NUL in the authzid"],
            ),
            (
                &[start(None, cn), step(b"\xff")],
                &[
                    "challenge []",
                    "failure malformed EXTERNAL message: not UTF-8",
                ],
            ),
            (
                &[start(Some(b""), cn), step(b"")],
                &[
                    "ok None CN=alice,O=Example",
                    "failure no response was expected",
                ],
            ),
            (
                &[start(None, cn), start(None, cn)],
                &["challenge []", "failure start called twice"],
            ),
            (&[step(b"")], &["failure no response was expected"]),
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

    #[test]
    fn info() {
        let info = External::info();
        assert_eq!(info.name, "EXTERNAL");
        assert!(!info.plaintext);
        assert_eq!(info.credential_kinds, [CredentialKind::External]);
    }
}
