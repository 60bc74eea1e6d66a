//! SASL mechanisms: the server side of one exchange (`interface mechanism`).
//!
//! Implement [`Mechanism`] (a value created for each exchange, with
//! [`start`](Mechanism::start) and [`step`](Mechanism::step)) and export it
//! with [`export_mechanism!`](crate::export_mechanism). Most mechanisms
//! take a single client message, as the initial response or after an empty
//! challenge (PLAIN, ANONYMOUS, EXTERNAL, XOAUTH2, OAUTHBEARER): for those
//! implement [`OneMessage`] and export
//! [`OneMessageMechanism<YourType>`](OneMessageMechanism).
//!
//! The [`Exchange`] driver keeps the host-facing rules, so your code never
//! sees a call out of order:
//!
//! - `start` is called once, first: a second `start` fails the exchange
//!   (`"start called twice"`), and so does `step` before `start`;
//! - `step` is called only after a [`Step::Challenge`]; after a success or
//!   failure every call fails (`"no response was expected"`), so an
//!   exchange never succeeds twice;
//! - a client message longer than [`Mechanism::MAX_INPUT`] fails the
//!   exchange unseen;
//! - [`denied`](Mechanism::denied) reaches your value only after it
//!   succeeded.
//!
//! [`Exchange`] is also how you unit-test a mechanism natively.
//!
//! A mechanism speaks bytes: base64, `334` lines and line limits are the
//! host's. Failure texts go to the operator's log and MUST NOT quote what
//! the client sent.

use std::sync::Mutex;

use crate::bindings::mechanism::exports::portcullis::auth::mechanism as wit;
use crate::types::{CredentialKind, Credentials};

/// What a mechanism says about itself; the host asks once, at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MechanismInfo {
    /// The SASL name (RFC 4422 §3.1): upper-case letters, digits, `-` and
    /// `_`, at most 20 characters. Custom mechanisms start with `X-`.
    pub name: String,
    /// True when an eavesdropper learns the password (PLAIN, LOGIN): the
    /// host then offers it only over TLS.
    pub plaintext: bool,
    /// The kinds `success` produces and `session::lookup-secret` asks for;
    /// the host offers the mechanism only when a checker serves one.
    pub credential_kinds: Vec<CredentialKind>,
}

impl MechanismInfo {
    /// A mechanism that does not reveal the password, producing `kinds`.
    pub fn new(name: &str, kinds: impl IntoIterator<Item = CredentialKind>) -> Self {
        MechanismInfo {
            name: name.to_owned(),
            plaintext: false,
            credential_kinds: kinds.into_iter().collect(),
        }
    }

    /// Marks the mechanism as revealing the password.
    pub fn plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }
}

/// The outcome of `start` or `step`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes to the client and wait for its response.
    Challenge(Vec<u8>),
    /// The exchange is complete: the portal verifies `credentials`.
    Success {
        credentials: Credentials,
        /// Data for the client with the outcome (SCRAM's server-final
        /// message).
        additional_data: Option<Vec<u8>>,
    },
    /// The exchange failed; the text is for the operator's log and MUST
    /// NOT contain a secret or the client's message.
    Failure(String),
}

impl Step {
    /// Success with no additional data.
    pub fn success(credentials: Credentials) -> Step {
        Step::Success {
            credentials,
            additional_data: None,
        }
    }

    pub fn failure(why: impl Into<String>) -> Step {
        Step::Failure(why.into())
    }

    /// True for success and failure: the exchange is over.
    pub fn is_final(&self) -> bool {
        !matches!(self, Step::Challenge(_))
    }
}

/// A mechanism with state: a fresh value serves each exchange.
pub trait Mechanism: Sized + Send + 'static {
    /// The longest client message accepted, in bytes: a longer one fails
    /// the exchange before `start` or `step` sees it. The default is well
    /// above what SASL lines carry (RFC 4954 caps an AUTH line at 12288
    /// octets of base64) and far below what could exhaust the plugin.
    const MAX_INPUT: usize = 16 << 10;

    /// MUST return the same answer every time.
    fn info() -> MechanismInfo;

    /// A value for a new exchange, created just before `start`.
    fn new() -> Self;

    /// Begins the exchange. `None` when the client sent no initial
    /// response, `Some(vec![])` when it sent an empty one (RFC 4422 §4).
    /// Called exactly once.
    fn start(&mut self, initial_response: Option<Vec<u8>>) -> Step;

    /// The client's response to the last challenge.
    fn step(&mut self, response: Vec<u8>) -> Step;

    /// Called when the portal denied the credentials of a success: an
    /// error challenge to send before the failure (XOAUTH2's JSON status),
    /// or `None` (the default).
    fn denied(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// The common one-message shape: the client's only message comes as the
/// initial response, or after an empty challenge when it sent none.
/// Export it as [`OneMessageMechanism<Self>`](OneMessageMechanism).
pub trait OneMessage: Send + 'static {
    /// MUST return the same answer every time.
    fn info() -> MechanismInfo;

    /// The outcome for the client's message: success or failure (a
    /// challenge here would be a further round, which this shape has not).
    fn finish(message: &[u8]) -> Step;

    /// As [`Mechanism::denied`].
    fn denied() -> Option<Vec<u8>> {
        None
    }
}

/// A [`Mechanism`] made of a [`OneMessage`].
pub struct OneMessageMechanism<T> {
    awaiting: bool,
    _marker: std::marker::PhantomData<fn() -> T>,
}

impl<T: OneMessage> Mechanism for OneMessageMechanism<T> {
    fn info() -> MechanismInfo {
        T::info()
    }

    fn new() -> Self {
        OneMessageMechanism {
            awaiting: false,
            _marker: std::marker::PhantomData,
        }
    }

    fn start(&mut self, initial_response: Option<Vec<u8>>) -> Step {
        match initial_response {
            Some(message) => self.finish(&message),
            None => {
                self.awaiting = true;
                Step::Challenge(Vec::new())
            }
        }
    }

    fn step(&mut self, response: Vec<u8>) -> Step {
        if !std::mem::take(&mut self.awaiting) {
            return Step::failure(NOT_EXPECTED);
        }
        self.finish(&response)
    }

    fn denied(&mut self) -> Option<Vec<u8>> {
        T::denied()
    }
}

impl<T: OneMessage> OneMessageMechanism<T> {
    fn finish(&mut self, message: &[u8]) -> Step {
        match T::finish(message) {
            Step::Challenge(_) => Step::failure("one-message mechanism asked for another round"),
            done => done,
        }
    }
}

const NOT_EXPECTED: &str = "no response was expected";
const STARTED_TWICE: &str = "start called twice";

fn too_long<M: Mechanism>() -> Step {
    Step::failure(format!(
        "client message longer than the mechanism's limit of {} bytes",
        M::MAX_INPUT
    ))
}

/// Where an exchange stands.
enum Phase<M> {
    New,
    /// Waiting for the client's response to a challenge.
    Running(M),
    /// Succeeded; kept for `denied`.
    Succeeded(M),
    Over,
}

/// A call the host makes into a mechanism, for driving an [`Exchange`]
/// in unit tests with [`Exchange::run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Start(Option<Vec<u8>>),
    Step(Vec<u8>),
}

/// One exchange of a [`Mechanism`], keeping the call-order rules. The
/// export macro keeps one in a static (the host instantiates the plugin
/// afresh for every exchange); in unit tests, make your own.
pub struct Exchange<M> {
    phase: Phase<M>,
}

impl<M: Mechanism> Default for Exchange<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Mechanism> Exchange<M> {
    pub const fn new() -> Self {
        Exchange { phase: Phase::New }
    }

    pub fn start(&mut self, initial_response: Option<Vec<u8>>) -> Step {
        match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::New
                if initial_response
                    .as_ref()
                    .is_some_and(|r| r.len() > M::MAX_INPUT) =>
            {
                too_long::<M>()
            }
            Phase::New => {
                let mut mechanism = M::new();
                let step = mechanism.start(initial_response);
                self.after(mechanism, step)
            }
            _ => Step::failure(STARTED_TWICE),
        }
    }

    pub fn step(&mut self, response: Vec<u8>) -> Step {
        match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::Running(_) if response.len() > M::MAX_INPUT => too_long::<M>(),
            Phase::Running(mut mechanism) => {
                let step = mechanism.step(response);
                self.after(mechanism, step)
            }
            _ => Step::failure(NOT_EXPECTED),
        }
    }

    /// Runs `calls` in order through a fresh exchange: each call's step.
    pub fn run(calls: &[Call]) -> Vec<Step> {
        let mut exchange = Self::new();
        calls
            .iter()
            .map(|call| match call.clone() {
                Call::Start(r) => exchange.start(r),
                Call::Step(r) => exchange.step(r),
            })
            .collect()
    }

    pub fn denied(&mut self) -> Option<Vec<u8>> {
        match &mut self.phase {
            Phase::Succeeded(mechanism) => mechanism.denied(),
            _ => None,
        }
    }

    fn after(&mut self, mechanism: M, step: Step) -> Step {
        self.phase = match &step {
            Step::Challenge(_) => Phase::Running(mechanism),
            Step::Success { .. } => Phase::Succeeded(mechanism),
            Step::Failure(_) => Phase::Over,
        };
        step
    }
}

#[doc(hidden)]
pub fn __info<M: Mechanism>() -> wit::MechanismInfo {
    let info = M::info();
    wit::MechanismInfo {
        name: info.name,
        plaintext: info.plaintext,
        credential_kinds: info.credential_kinds,
    }
}

#[doc(hidden)]
pub fn __with<M: Mechanism, R>(
    exchange: &'static Mutex<Exchange<M>>,
    f: impl FnOnce(&mut Exchange<M>) -> R,
) -> R {
    f(&mut exchange.lock().unwrap_or_else(|e| e.into_inner()))
}

#[doc(hidden)]
pub fn __to_wit(step: Step) -> wit::StepResult {
    match step {
        Step::Challenge(c) => wit::StepResult::Challenge(c),
        Step::Success {
            credentials,
            additional_data,
        } => wit::StepResult::Success(wit::Success {
            credentials,
            additional_data,
        }),
        Step::Failure(why) => wit::StepResult::Failure(why),
    }
}

/// Exports a [`Mechanism`] as this component's `mechanism` interface. Use
/// once, at the crate root of a `cdylib`.
///
/// ```ignore
/// portcullis_sdk::export_mechanism!(MyMechanism);
/// portcullis_sdk::export_mechanism!(portcullis_sdk::OneMessageMechanism<MyMessage>);
/// ```
#[macro_export]
macro_rules! export_mechanism {
    ($ty:ty) => {
        const _: () = {
            static EXCHANGE: ::std::sync::Mutex<$crate::mechanism::Exchange<$ty>> =
                ::std::sync::Mutex::new($crate::mechanism::Exchange::new());

            struct PortcullisMechanism;

            impl $crate::__bindings::mechanism::exports::portcullis::auth::mechanism::Guest
                for PortcullisMechanism
            {
                fn info() -> $crate::__bindings::mechanism::exports::portcullis::auth::mechanism::MechanismInfo {
                    $crate::mechanism::__info::<$ty>()
                }
                fn start(
                    initial_response: Option<Vec<u8>>,
                ) -> $crate::__bindings::mechanism::exports::portcullis::auth::mechanism::StepResult {
                    $crate::mechanism::__to_wit($crate::mechanism::__with(&EXCHANGE, |e| {
                        e.start(initial_response)
                    }))
                }
                fn step(
                    response: Vec<u8>,
                ) -> $crate::__bindings::mechanism::exports::portcullis::auth::mechanism::StepResult {
                    $crate::mechanism::__to_wit($crate::mechanism::__with(&EXCHANGE, |e| {
                        e.step(response)
                    }))
                }
                fn denied() -> Option<Vec<u8>> {
                    $crate::mechanism::__with(&EXCHANGE, |e| e.denied())
                }
            }

            // Only a wasm32 build exports: the WIT export names (`iface#func`)
            // are not symbols a native linker accepts, so a native cdylib
            // (`cargo build --workspace`) would fail to link. A native build
            // still type-checks the glue and keeps the plugin's code live,
            // for its unit tests and without dead-code warnings.
            #[cfg(not(target_arch = "wasm32"))]
            #[allow(dead_code)]
            fn native_build_uses_the_exports() {
                use $crate::__bindings::mechanism::exports::portcullis::auth::mechanism::Guest;
                let _ = <PortcullisMechanism as Guest>::info;
                let _ = <PortcullisMechanism as Guest>::start;
                let _ = <PortcullisMechanism as Guest>::step;
                let _ = <PortcullisMechanism as Guest>::denied;
            }

            #[cfg(target_arch = "wasm32")]
            $crate::__bindings::mechanism::export_mechanism_world!(
                PortcullisMechanism with_types_in $crate::__bindings::mechanism
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UsernamePassword;

    struct Echo;

    impl OneMessage for Echo {
        fn info() -> MechanismInfo {
            MechanismInfo::new("X-ECHO", [CredentialKind::UsernamePassword])
        }
        fn finish(message: &[u8]) -> Step {
            match message {
                b"" => Step::failure("empty"),
                b"again" => Step::Challenge(Vec::new()),
                m => Step::success(Credentials::UsernamePassword(UsernamePassword {
                    authzid: None,
                    username: String::from_utf8_lossy(m).into_owned(),
                    password: "pw".into(),
                })),
            }
        }
        fn denied() -> Option<Vec<u8>> {
            Some(b"no".to_vec())
        }
    }

    type E = Exchange<OneMessageMechanism<Echo>>;

    fn show(step: &Step) -> String {
        match step {
            Step::Challenge(c) => format!("challenge {c:?}"),
            Step::Success { .. } => "success".into(),
            Step::Failure(why) => format!("failure {why}"),
        }
    }

    #[test]
    fn call_order_rules() {
        let mut e = E::new();
        assert_eq!(show(&e.start(Some(b"tim".to_vec()))), "success");
        assert_eq!(e.denied(), Some(b"no".to_vec()));
        assert_eq!(
            show(&e.step(b"tim".to_vec())),
            "failure no response was expected"
        );
        assert_eq!(show(&e.start(None)), "failure start called twice");
        assert_eq!(e.denied(), None);

        let mut e = E::new();
        assert_eq!(
            show(&e.step(b"tim".to_vec())),
            "failure no response was expected"
        );
        assert_eq!(show(&e.start(None)), "failure start called twice");

        let mut e = E::new();
        assert_eq!(show(&e.start(None)), "challenge []");
        assert_eq!(show(&e.start(None)), "failure start called twice");
        assert_eq!(
            show(&e.step(b"tim".to_vec())),
            "failure no response was expected"
        );

        let mut e = E::new();
        assert_eq!(show(&e.start(None)), "challenge []");
        assert_eq!(show(&e.step(b"tim".to_vec())), "success");

        let mut e = E::new();
        assert_eq!(show(&e.start(Some(Vec::new()))), "failure empty");
        assert_eq!(e.denied(), None);
        assert_eq!(
            show(&e.step(b"tim".to_vec())),
            "failure no response was expected"
        );

        let mut e = E::new();
        let huge = vec![b'a'; (16 << 10) + 1];
        assert_eq!(
            show(&e.start(Some(huge.clone()))),
            "failure client message longer than the mechanism's limit of 16384 bytes"
        );
        let mut e = E::new();
        assert_eq!(show(&e.start(None)), "challenge []");
        assert!(show(&e.step(huge)).starts_with("failure client message longer"));
        let mut e = E::new();
        assert_eq!(show(&e.start(Some(vec![b'a'; 16 << 10]))), "success");

        let mut e = E::new();
        assert_eq!(
            show(&e.start(Some(b"again".to_vec()))),
            "failure one-message mechanism asked for another round"
        );
    }
}
