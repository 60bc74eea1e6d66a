//! The values that cross the portal: credentials, their kinds, denials and
//! faults.
//!
//! "It said no" and "it failed" are different things: a [`Denial`] is a
//! normal answer (SMTP 535), a [`Fault`] means a plugin trapped, timed out or
//! broke its contract (SMTP 454). APIs return `Result<Result<T, Denial>,
//! Fault>` so a wrong password never travels as an error.

use std::fmt;

/// The kinds of credentials the portal routes to checkers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKind {
    UsernamePassword,
    ChallengeResponse,
    BearerToken,
    Anonymous,
    External,
    ScramSha1,
    ScramSha256,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 7] = [
        Self::UsernamePassword,
        Self::ChallengeResponse,
        Self::BearerToken,
        Self::Anonymous,
        Self::External,
        Self::ScramSha1,
        Self::ScramSha256,
    ];

    /// The WIT name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsernamePassword => "username-password",
            Self::ChallengeResponse => "challenge-response",
            Self::BearerToken => "bearer-token",
            Self::Anonymous => "anonymous",
            Self::External => "external",
            Self::ScramSha1 => "scram-sha1",
            Self::ScramSha256 => "scram-sha256",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a mechanism (or the echo service's `user pass` line) established.
///
/// `Debug` never prints a password, response or token.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    UsernamePassword {
        authzid: Option<String>,
        username: String,
        password: String,
    },
    ChallengeResponse {
        authzid: Option<String>,
        username: String,
        method: String,
        challenge: Vec<u8>,
        response: Vec<u8>,
    },
    BearerToken {
        authzid: Option<String>,
        username: Option<String>,
        token: String,
    },
    Anonymous {
        trace: String,
    },
    VerifiedSecret {
        authzid: Option<String>,
        username: String,
        kind: CredentialKind,
    },
    External {
        authzid: Option<String>,
        identity: String,
    },
}

impl Credentials {
    /// The kind the portal routes these credentials by.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::UsernamePassword { .. } => CredentialKind::UsernamePassword,
            Self::ChallengeResponse { .. } => CredentialKind::ChallengeResponse,
            Self::BearerToken { .. } => CredentialKind::BearerToken,
            Self::Anonymous { .. } => CredentialKind::Anonymous,
            Self::VerifiedSecret { kind, .. } => *kind,
            Self::External { .. } => CredentialKind::External,
        }
    }

    /// The user name the client claimed, for logs. Never a secret.
    pub fn claimed_user(&self) -> Option<&str> {
        match self {
            Self::UsernamePassword { username, .. }
            | Self::ChallengeResponse { username, .. }
            | Self::VerifiedSecret { username, .. } => Some(username),
            Self::BearerToken { username, .. } => username.as_deref(),
            Self::External { identity, .. } => Some(identity),
            Self::Anonymous { .. } => None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("kind", &self.kind())
            .field("user", &self.claimed_user())
            .finish_non_exhaustive()
    }
}

/// Why a checker or realm said no. Shown to operators, never to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    UnknownUser,
    BadCredentials,
    AccountDisabled,
    NotAuthorized,
    Unsupported,
    /// No checker is registered for the credentials' kind.
    NoChecker(CredentialKind),
    /// The mechanism ended the exchange (malformed message, cancelled).
    MechanismFailed(String),
    Other(String),
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser => f.write_str("unknown user"),
            Self::BadCredentials => f.write_str("bad credentials"),
            Self::AccountDisabled => f.write_str("account disabled"),
            Self::NotAuthorized => f.write_str("not authorized for the requested identity"),
            Self::Unsupported => f.write_str("unsupported"),
            Self::NoChecker(kind) => write!(f, "no checker is registered for {kind} credentials"),
            Self::MechanismFailed(why) => write!(f, "mechanism failed: {why}"),
            Self::Other(why) => f.write_str(why),
        }
    }
}

/// How a plugin failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The guest trapped (panic, unreachable, out of bounds).
    Trap,
    /// The guest ran past its time limit.
    Timeout,
    /// The guest asked for more memory than its limit.
    Memory,
    /// The guest returned something the contract forbids.
    Contract,
    /// The guest said it could not decide (`unavailable`).
    Unavailable,
    /// The host could not instantiate the guest.
    Instantiate,
    /// Every instance slot stayed busy for the whole wait.
    Busy,
    /// The guest opened more WASI resources than its limit.
    Resources,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::Memory => "memory limit",
            Self::Contract => "contract violation",
            Self::Unavailable => "unavailable",
            Self::Instantiate => "instantiation failed",
            Self::Busy => "busy",
            Self::Resources => "resource limit",
        })
    }
}

/// A plugin failed: the exchange ends with a temporary failure, the host
/// goes on.
#[derive(Clone, Debug, thiserror::Error)]
#[error("plugin {plugin} failed ({kind}): {detail}")]
pub struct Fault {
    pub plugin: String,
    pub kind: FaultKind,
    pub detail: String,
}

impl Fault {
    pub fn new(plugin: &str, kind: FaultKind, detail: impl Into<String>) -> Self {
        crate::metrics::METRICS.fault(plugin, &kind.to_string());
        Fault {
            plugin: plugin.to_owned(),
            kind,
            detail: detail.into(),
        }
    }
}

/// The shape of every portal answer.
pub type Verdict<T> = Result<Result<T, Denial>, Fault>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let creds = [
            Credentials::UsernamePassword {
                authzid: None,
                username: "alice".into(),
                password: "hunter2-secret".into(),
            },
            Credentials::BearerToken {
                authzid: None,
                username: Some("alice".into()),
                token: "ya29.hunter2-secret".into(),
            },
            Credentials::ChallengeResponse {
                authzid: None,
                username: "alice".into(),
                method: "hmac-md5".into(),
                challenge: b"<1.2@x>".to_vec(),
                response: b"hunter2-secret".to_vec(),
            },
        ];
        for c in creds {
            let shown = format!("{c:?}");
            assert!(shown.contains("alice"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
