//! The hash functions of the SCRAM variants and the keys RFC 5802 §3
//! derives from a password.
//!
//! ```text
//! SaltedPassword  := Hi(Normalize(password), salt, i)   (PBKDF2-HMAC)
//! ClientKey       := HMAC(SaltedPassword, "Client Key")
//! StoredKey       := H(ClientKey)
//! ServerKey       := HMAC(SaltedPassword, "Server Key")
//! ```

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The iteration count used when keys are derived on the fly (RFC 7677
/// §4: at least 4096).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// The hash a SCRAM variant is built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
}

impl Algorithm {
    /// The SASL mechanism name.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SCRAM-SHA-1",
            Algorithm::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// The length of a hash, a key and a proof, in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => Sha1::digest(data).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`, the parts of `data` concatenated.
    pub fn hmac(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[&[u8]]) -> Vec<u8> {
            let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
            for part in data {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::Sha1 => run::<Hmac<Sha1>>(key, data),
            Algorithm::Sha256 => run::<Hmac<Sha256>>(key, data),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with HMAC over this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        match self {
            Algorithm::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            Algorithm::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// What a server stores for one user (RFC 5802 §2.2): enough to verify a
/// proof and to prove itself, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Derives the keys for `password`. The password is prepared with
    /// SASLprep (RFC 4013) as RFC 5802 §2.2 asks, which clients do too; a
    /// password SASLprep refuses (prohibited characters) is used as it is,
    /// as most servers do: such a client cannot log in either way.
    pub fn derive(algorithm: Algorithm, password: &str, salt: &[u8], iterations: u32) -> Keys {
        let prepared = stringprep::saslprep(password);
        let password = prepared.as_deref().unwrap_or(password);
        let salted = algorithm.salted_password(password.as_bytes(), salt, iterations);
        let client_key = algorithm.hmac(&salted, &[b"Client Key"]);
        Keys {
            salt: salt.to_vec(),
            iterations,
            stored_key: algorithm.hash(&client_key),
            server_key: algorithm.hmac(&salted, &[b"Server Key"]),
        }
    }

    /// Whether the keys can serve `algorithm`: key lengths match the hash,
    /// and there is a salt and at least one iteration.
    pub fn fit(&self, algorithm: Algorithm) -> bool {
        self.stored_key.len() == algorithm.output_len()
            && self.server_key.len() == algorithm.output_len()
            && !self.salt.is_empty()
            && self.iterations > 0
    }
}

/// A salt computed from the user name alone: SHA-256 of a fixed label and
/// the name, first 16 bytes.
///
/// Checkers that derive keys on the fly from a password they know
/// (`checker-memory`, plain-text lines of `checker-file`) use it, and the
/// mechanisms use it for users that do not exist, so in both cases the
/// server-first message is the same function of the name and does not tell
/// a real user from an invented one. It is public and fixed, so it does not
/// hide users whose keys are stored with a random salt from someone who
/// knows this function (hiding those needs a server secret, which plugins
/// do not have), and it lets an attacker precompute guesses for a known
/// user name: store keys (Dovecot's `{SCRAM-SHA-256}` lines) for real
/// deployments.
pub fn derived_salt(username: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"portcullis SCRAM salt\0")
        .chain_update(username.as_bytes())
        .finalize();
    let mut salt = [0; 16];
    salt.copy_from_slice(&digest[..16]);
    salt
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fitting_keys() {
        let keys = Keys::derive(Algorithm::Sha256, "pencil", b"salt", 4096);
        assert!(keys.fit(Algorithm::Sha256));
        assert!(!keys.fit(Algorithm::Sha1));
        assert_eq!(keys.iterations, 4096);
        let sha1 = Keys::derive(Algorithm::Sha1, "pencil", b"salt", 1);
        assert!(sha1.fit(Algorithm::Sha1));
        let no_salt = Keys {
            salt: Vec::new(),
            ..sha1.clone()
        };
        let no_iterations = Keys {
            iterations: 0,
            ..sha1.clone()
        };
        assert!(!no_salt.fit(Algorithm::Sha1) && !no_iterations.fit(Algorithm::Sha1));
    }

    #[test]
    fn pbkdf2_vectors() {
        // RFC 6070 test vector 2 (PBKDF2-HMAC-SHA1, 2 iterations).
        assert_eq!(
            Algorithm::Sha1.salted_password(b"password", b"salt", 2),
            hex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")
        );
        // RFC 7914 §11 (PBKDF2-HMAC-SHA256, 1 iteration), first 32 bytes.
        assert_eq!(
            Algorithm::Sha256.salted_password(b"passwd", b"salt", 1),
            hex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
        );
    }

    #[test]
    fn saslprep_is_applied() {
        let salt = b"salt";
        // RFC 4013 maps U+00A0 (no-break space) to a space and removes
        // U+00AD (soft hyphen).
        assert_eq!(
            Keys::derive(Algorithm::Sha256, "I\u{ad}X\u{a0}Y", salt, 1),
            Keys::derive(Algorithm::Sha256, "IX Y", salt, 1)
        );
        // A password SASLprep refuses is used as it is, not dropped.
        assert_ne!(
            Keys::derive(Algorithm::Sha256, "a\u{7}", salt, 1),
            Keys::derive(Algorithm::Sha256, "a", salt, 1)
        );
    }

    #[test]
    fn derived_salts_depend_on_the_name_only() {
        assert_eq!(derived_salt("user"), derived_salt("user"));
        assert_ne!(derived_salt("user"), derived_salt("User"));
        assert_ne!(derived_salt(""), derived_salt("user"));
    }

    #[test]
    fn debug_hides_keys() {
        let keys = Keys::derive(Algorithm::Sha1, "pencil", b"salt", 1);
        let shown = format!("{keys:?}");
        assert!(!shown.contains("stored") && shown.contains("iterations"));
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
