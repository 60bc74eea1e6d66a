//! Checking a password against a stored password field: plain text, or a
//! hash recognised by its prefix.
//!
//! | prefix | scheme |
//! | --- | --- |
//! | `$argon2id$`, `$argon2i$`, `$argon2d$` | Argon2 (PHC string) |
//! | `$2a$`, `$2b$`, `$2y$` | bcrypt |
//! | `$6$` | SHA-512-crypt |
//! | `$5$` | SHA-256-crypt |
//! | anything else not starting with `$` | plain text, compared in constant time |

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use subtle::ConstantTimeEq;

/// Whether `password` matches `stored`; an error for a field that looks
/// like a hash this checker cannot use.
pub fn verify(password: &str, stored: &str) -> Result<bool, String> {
    if stored.starts_with("$argon2") {
        let hash = PasswordHash::new(stored).map_err(|e| format!("bad argon2 hash: {e}"))?;
        if hash.hash.is_none() || hash.salt.is_none() {
            return Err("bad argon2 hash: no salt or hash value".into());
        }
        return match Argon2::default().verify_password(password.as_bytes(), &hash) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::Password) => Ok(false),
            Err(e) => Err(format!("bad argon2 hash: {e}")),
        };
    }
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        return bcrypt::verify(password, stored).map_err(|e| format!("bad bcrypt hash: {e}"));
    }
    if stored.starts_with("$6$") {
        return crypt_result(sha_crypt::sha512_check(password, stored));
    }
    if stored.starts_with("$5$") {
        return crypt_result(sha_crypt::sha256_check(password, stored));
    }
    if stored.starts_with('$') {
        return Err("unsupported hash scheme".into());
    }
    Ok(stored.as_bytes().ct_eq(password.as_bytes()).into())
}

/// sha-crypt 0.5 does not export its error type, so a mismatch is told
/// from a malformed hash by the variant's name.
fn crypt_result<E: std::fmt::Debug>(result: Result<(), E>) -> Result<bool, String> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if format!("{e:?}") == "HashMismatch" => Ok(false),
        Err(e) => Err(format!("bad crypt hash: {e:?}")),
    }
}

/// Work done for a user who does not exist, so that the answer's timing
/// does not reveal it (for plain-text files; hashed ones differ anyway).
pub fn burn(password: &str) {
    let _ = verify(password, "\u{0}no such user\u{0}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text() {
        assert_eq!(verify("secret", "secret"), Ok(true));
        assert_eq!(verify("secret", "Secret"), Ok(false));
        assert_eq!(verify("", "secret"), Ok(false));
        assert!(verify("x", "$1$md5crypt$nope").is_err());
    }

    #[test]
    fn argon2id() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"portcullis-salt!").unwrap();
        let hash = Argon2::default()
            .hash_password(b"hunter2", &salt)
            .unwrap()
            .to_string();
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(verify("hunter2", &hash), Ok(true));
        assert_eq!(verify("hunter3", &hash), Ok(false));
        assert!(verify("x", "$argon2id$garbage").is_err());
    }

    #[test]
    fn bcrypt_vectors() {
        let hash = bcrypt::hash_with_salt("hunter2", 4, *b"portcullis-salt!")
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        assert_eq!(verify("hunter2", &hash), Ok(true));
        assert_eq!(verify("hunter3", &hash), Ok(false));
        assert!(hash.starts_with("$2b$04$"));
        assert!(verify("x", "$2b$04$tooshort").is_err());
    }

    #[test]
    fn sha_crypt_vectors() {
        // `openssl passwd -6 -salt saltsalt password` and `-5`.
        let sha512 = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
        assert_eq!(verify("password", sha512), Ok(true));
        assert_eq!(verify("passwore", sha512), Ok(false));
        let sha256 = "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.";
        assert_eq!(verify("password", sha256), Ok(true));
        assert_eq!(verify("passwore", sha256), Ok(false));
    }
}
