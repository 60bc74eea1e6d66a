//! The checker's side of the portal: Twisted's `ICredentialsChecker`, and
//! the narrower [`SecretSource`] a mechanism looks stored secrets up in.

use async_trait::async_trait;

use super::{CredentialKind, Credentials, Denial, Fault, SecretEntry, Verdict};

/// Verifies credentials of the kinds it declares, and may hand a mechanism
/// the stored secret it verifies a response against (SCRAM, CRAM-MD5).
#[async_trait]
pub trait Checker: Send + Sync {
    /// The implementation's name, for logs and faults.
    fn name(&self) -> &str;

    /// The credential kinds this checker serves; asked once, at
    /// registration.
    async fn credential_kinds(&self) -> Result<Vec<CredentialKind>, Fault>;

    /// An avatar id, a denial, or a fault.
    async fn check(&self, credentials: &Credentials) -> Verdict<String>;

    /// The secret stored for `username`, of `kind`. A checker that keeps
    /// none says [`Denial::Unsupported`].
    async fn lookup_secret(&self, _username: &str, _kind: CredentialKind) -> Verdict<SecretEntry> {
        Ok(Err(Denial::Unsupported))
    }
}

/// Where a mechanism's `lookup-secret` is answered: the portal, which
/// routes it to the checker for the kind. A mechanism implementation sees
/// only this, never the portal.
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn lookup_secret(&self, username: &str, kind: CredentialKind) -> Verdict<SecretEntry>;
}
