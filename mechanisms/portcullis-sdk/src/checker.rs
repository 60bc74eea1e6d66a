//! Credentials checkers (`interface checker`): declare the kinds you
//! verify, then verify them.
//!
//! Implement [`Checker`] and export it with
//! [`export_checker!`](crate::export_checker). The host may instantiate the
//! plugin afresh for every call, so read your data (a user file through a
//! grant, a SQL query) when called, and keep no state between calls. For a
//! delimited user file, [`keyed_file::lookup`](crate::keyed_file::lookup)
//! finds one line through an index the host keeps across calls, instead
//! of a parse of the whole file per call.
//!
//! The SDK keeps one rule for you: credentials of a kind your
//! [`kinds`](Checker::kinds) did not declare are denied `unsupported`
//! before [`check`](Checker::check) runs, and `lookup-secret` for such a
//! kind likewise. What remains yours: compare secrets in constant time
//! (the `subtle` crate), answer [`Verdict::Unavailable`] when your data is
//! unreadable (never a denial: the host then reports a temporary failure),
//! and keep secrets out of every text you return or log.

use crate::bindings::checker::exports::portcullis::auth::checker as wit;
use crate::types::{CredentialKind, Credentials, Denial, SecretEntry};

/// A checker's answer to `check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are good; the avatar id (non-empty, one line, at
    /// most 512 bytes) names the user to the realm.
    Accepted(String),
    /// The credentials are not good: a normal answer (SMTP 535).
    Denied(Denial),
    /// The checker could not decide (SMTP 454); the text is for the
    /// operator's log and MUST NOT contain a secret.
    Unavailable(String),
}

/// A checker's answer to `lookup-secret` (SCRAM's stored keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretAnswer {
    Found(SecretEntry),
    Denied(Denial),
    Unavailable(String),
}

/// The kind of a set of credentials.
pub fn kind_of(credentials: &Credentials) -> Option<CredentialKind> {
    Some(match credentials {
        Credentials::UsernamePassword(_) => CredentialKind::UsernamePassword,
        Credentials::ChallengeResponse(_) => CredentialKind::ChallengeResponse,
        Credentials::BearerToken(_) => CredentialKind::BearerToken,
        Credentials::Anonymous(_) => CredentialKind::Anonymous,
        Credentials::External(_) => CredentialKind::External,
        // Verified by the host from the exchange's lookups, never by a
        // checker's `check`.
        Credentials::VerifiedSecret(_) => return None,
    })
}

/// A credentials checker.
pub trait Checker {
    /// The kinds this checker verifies or answers `lookup-secret` for.
    /// MUST return the same answer every time.
    fn kinds() -> Vec<CredentialKind>;

    /// Verifies credentials of one of [`kinds`](Checker::kinds).
    fn check(credentials: Credentials) -> Verdict;

    /// The stored secret of `username` for a mechanism that verifies
    /// proofs itself (SCRAM), for a kind among [`kinds`](Checker::kinds).
    /// The default denies `unsupported`.
    fn lookup_secret(username: String, kind: CredentialKind) -> SecretAnswer {
        let _ = (username, kind);
        SecretAnswer::Denied(Denial::Unsupported)
    }
}

/// `check` with the declared-kinds rule applied: what the exported
/// component answers. Handy in unit tests too.
pub fn check<C: Checker>(credentials: Credentials) -> Verdict {
    match kind_of(&credentials) {
        Some(kind) if C::kinds().contains(&kind) => C::check(credentials),
        _ => Verdict::Denied(Denial::Unsupported),
    }
}

/// `lookup-secret` with the declared-kinds rule applied.
pub fn lookup_secret<C: Checker>(username: String, kind: CredentialKind) -> SecretAnswer {
    if C::kinds().contains(&kind) {
        C::lookup_secret(username, kind)
    } else {
        SecretAnswer::Denied(Denial::Unsupported)
    }
}

#[doc(hidden)]
pub fn __check<C: Checker>(credentials: Credentials) -> wit::Verdict {
    match check::<C>(credentials) {
        Verdict::Accepted(id) => wit::Verdict::Accepted(id),
        Verdict::Denied(d) => wit::Verdict::Denied(d),
        Verdict::Unavailable(why) => wit::Verdict::Unavailable(why),
    }
}

#[doc(hidden)]
pub fn __lookup_secret<C: Checker>(username: String, kind: CredentialKind) -> wit::SecretAnswer {
    match lookup_secret::<C>(username, kind) {
        SecretAnswer::Found(entry) => wit::SecretAnswer::Found(entry),
        SecretAnswer::Denied(d) => wit::SecretAnswer::Denied(d),
        SecretAnswer::Unavailable(why) => wit::SecretAnswer::Unavailable(why),
    }
}

/// Exports a [`Checker`] as this component's `checker` interface. Use
/// once, at the crate root of a `cdylib`.
///
/// ```ignore
/// portcullis_sdk::export_checker!(MyChecker);
/// ```
#[macro_export]
macro_rules! export_checker {
    ($ty:ty) => {
        const _: () = {
            struct PortcullisChecker;

            impl $crate::__bindings::checker::exports::portcullis::auth::checker::Guest
                for PortcullisChecker
            {
                fn credential_kinds() -> Vec<$crate::types::CredentialKind> {
                    <$ty as $crate::checker::Checker>::kinds()
                }
                fn check(
                    credentials: $crate::types::Credentials,
                ) -> $crate::__bindings::checker::exports::portcullis::auth::checker::Verdict
                {
                    $crate::checker::__check::<$ty>(credentials)
                }
                fn lookup_secret(
                    username: String,
                    kind: $crate::types::CredentialKind,
                ) -> $crate::__bindings::checker::exports::portcullis::auth::checker::SecretAnswer
                {
                    $crate::checker::__lookup_secret::<$ty>(username, kind)
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
                use $crate::__bindings::checker::exports::portcullis::auth::checker::Guest;
                let _ = <PortcullisChecker as Guest>::credential_kinds;
                let _ = <PortcullisChecker as Guest>::check;
                let _ = <PortcullisChecker as Guest>::lookup_secret;
            }

            #[cfg(target_arch = "wasm32")]
            $crate::__bindings::checker::export_checker_world!(
                PortcullisChecker with_types_in $crate::__bindings::checker
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UsernamePassword;

    struct Tokens;

    impl Checker for Tokens {
        fn kinds() -> Vec<CredentialKind> {
            vec![CredentialKind::UsernamePassword]
        }
        fn check(_: Credentials) -> Verdict {
            Verdict::Accepted("tim".into())
        }
    }

    #[test]
    fn undeclared_kinds_are_unsupported() {
        let up = Credentials::UsernamePassword(UsernamePassword {
            authzid: None,
            username: "tim".into(),
            password: "pw".into(),
        });
        assert_eq!(check::<Tokens>(up), Verdict::Accepted("tim".into()));
        assert_eq!(
            check::<Tokens>(Credentials::Anonymous(String::new())),
            Verdict::Denied(Denial::Unsupported)
        );
        assert_eq!(
            lookup_secret::<Tokens>("tim".into(), CredentialKind::ScramSha256),
            SecretAnswer::Denied(Denial::Unsupported)
        );
    }
}
