//! Stored secrets a checker hands to a mechanism that verifies proofs
//! itself (SCRAM), so neither side needs the password.

use std::fmt;

/// RFC 5802 keys for one user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredSecret {
    Scram(ScramKeys),
}

/// A secret and the avatar id the checker vouches for with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEntry {
    pub avatar_id: String,
    pub secret: StoredSecret,
}
