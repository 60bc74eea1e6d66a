//! Checking a password against a stored password field: plain text, or a
//! hash recognised by its prefix.
//!
//! | prefix | scheme |
//! | --- | --- |
//! | `$argon2id$`, `$argon2i$`, `$argon2d$` | Argon2 (PHC string) |
//! | `$2a$`, `$2b$`, `$2y$` | bcrypt |
//! | `$6$` | SHA-512-crypt |
//! | `$5$` | SHA-256-crypt |
//! | `{SCRAM-SHA-256}`, `{SCRAM-SHA-1}` | stored SCRAM keys (see [`crate::scram`]) |
//! | any other `$…` | refused: an unknown scheme is never taken as plain text |
//! | anything else | plain text, compared in constant time |
//!
//! Error texts describe the field's shape only; they never quote it.

use argon2::password_hash::Error as HashError;
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use scram_core::Algorithm;
use sha_crypt::ShaCrypt;
use subtle::ConstantTimeEq;

/// The schemes a password field may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Argon2,
    Bcrypt,
    ShaCrypt,
    Scram(Algorithm),
    Plain,
    Unknown,
}

impl Scheme {
    /// The scheme of a stored password field, told by its prefix.
    pub fn of(stored: &str) -> Scheme {
        let has = |prefixes: &[&str]| prefixes.iter().any(|p| stored.starts_with(p));
        if has(&["$argon2id$", "$argon2i$", "$argon2d$"]) {
            Scheme::Argon2
        } else if has(&["$2a$", "$2b$", "$2y$"]) {
            Scheme::Bcrypt
        } else if has(&["$6$", "$5$"]) {
            Scheme::ShaCrypt
        } else if let Some(algorithm) = crate::scram::algorithm_of(stored) {
            Scheme::Scram(algorithm)
        } else if stored.starts_with('$') {
            Scheme::Unknown
        } else {
            Scheme::Plain
        }
    }
}

/// Whether `password` matches `stored`; an error for a field that looks
/// like a hash this checker cannot use.
pub fn verify(password: &str, stored: &str) -> Result<bool, String> {
    let password_bytes = password.as_bytes();
    match Scheme::of(stored) {
        Scheme::Argon2 => {
            let hash = PasswordHash::new(stored).map_err(|e| format!("bad argon2 hash: {e}"))?;
            if hash.hash.is_none() || hash.salt.is_none() {
                return Err("bad argon2 hash: no salt or hash value".into());
            }
            phc_result(
                "argon2",
                Argon2::default().verify_password(password_bytes, &hash),
            )
        }
        Scheme::Bcrypt => {
            bcrypt::verify(password_bytes, stored).map_err(|e| format!("bad bcrypt hash: {e}"))
        }
        Scheme::ShaCrypt => phc_result(
            "sha-crypt",
            ShaCrypt::default().verify_password(password_bytes, stored),
        ),
        Scheme::Scram(_) => crate::scram::verify(password, stored),
        Scheme::Unknown => Err("unsupported hash scheme".into()),
        Scheme::Plain => Ok(stored.as_bytes().ct_eq(password_bytes).into()),
    }
}

/// What the host's native verifier (`interface password-hash`) says of a
/// slow hash (Argon2, bcrypt, SHA-crypt): whether it matches, or an error
/// for a malformed field. `None` when the host will not verify it (not a
/// slow hash, its cost past the host's caps, the instance's share used
/// up) and outside `wasm32` (native unit tests): verify it yourself.
#[cfg(feature = "sdk")]
pub fn ask_host(password: &str, stored: &str) -> Option<Result<bool, String>> {
    #[cfg(target_arch = "wasm32")]
    if matches!(
        Scheme::of(stored),
        Scheme::Argon2 | Scheme::Bcrypt | Scheme::ShaCrypt
    ) {
        use portcullis_sdk::password_hash::{HashError, verify as host_verify};
        return match host_verify(password, stored) {
            Ok(matches) => Some(Ok(matches)),
            Err(HashError::Malformed(why)) => Some(Err(why)),
            Err(HashError::Unsupported | HashError::OverLimit(_) | HashError::Exhausted) => None,
        };
    }
    let _ = (password, stored);
    None
}

/// [`verify`], with the slow hashes handed to the host's native verifier
/// ([`ask_host`]) when this runs as a plugin: the same answer at a
/// fraction of the sandbox's CPU. What the host will not verify is
/// verified here, under the plugin's own limits.
#[cfg(feature = "sdk")]
pub fn verify_via_host(password: &str, stored: &str) -> Result<bool, String> {
    ask_host(password, stored).unwrap_or_else(|| verify(password, stored))
}

/// [`burn`], through [`verify_via_host`]: an absent user costs what a
/// present one does, in the host as in the guest.
#[cfg(feature = "sdk")]
pub fn burn_via_host(password: &str, decoy: Option<&str>) {
    let _ = verify_via_host(password, decoy.unwrap_or(NO_SUCH_USER));
}

/// What an absent user's password is checked against when the file has no
/// entry to use as a decoy.
const NO_SUCH_USER: &str = "\u{0}no such user\u{0}";

/// A mismatch is an answer; any other error means the field is unusable.
fn phc_result(scheme: &str, result: Result<(), HashError>) -> Result<bool, String> {
    match result {
        Ok(()) => Ok(true),
        Err(HashError::PasswordInvalid) => Ok(false),
        Err(e) => Err(format!("bad {scheme} hash: {e}")),
    }
}

/// Work done for a user who does not exist, so that the answer's timing
/// does not reveal it: the password is checked against `decoy` (another
/// entry's field, so usually the same scheme and cost) and the answer is
/// thrown away.
pub fn burn(password: &str, decoy: Option<&str>) {
    let _ = verify(password, decoy.unwrap_or(NO_SUCH_USER));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (password tried, stored field, expected answer; `None` for an error)
    type Case = (&'static str, &'static str, Option<bool>);

    fn run(cases: &[Case]) {
        for &(password, stored, want) in cases {
            assert_eq!(
                verify(password, stored).ok(),
                want,
                "{password:?} vs {stored}"
            );
        }
    }

    #[test]
    fn schemes() {
        let cases = [
            ("$argon2id$v=19$x", Scheme::Argon2),
            ("$argon2i$v=19$x", Scheme::Argon2),
            ("$argon2d$v=19$x", Scheme::Argon2),
            ("$argon2x$v=19$x", Scheme::Unknown),
            ("$2a$04$x", Scheme::Bcrypt),
            ("$2b$04$x", Scheme::Bcrypt),
            ("$2y$04$x", Scheme::Bcrypt),
            ("$2x$04$x", Scheme::Unknown),
            ("$6$salt$x", Scheme::ShaCrypt),
            ("$5$salt$x", Scheme::ShaCrypt),
            ("$1$salt$x", Scheme::Unknown),
            ("$", Scheme::Unknown),
            ("{SCRAM-SHA-256}4096,x", Scheme::Scram(Algorithm::Sha256)),
            ("{SCRAM-SHA-1}4096,x", Scheme::Scram(Algorithm::Sha1)),
            ("{SCRAM-SHA-512}4096,x", Scheme::Plain),
            ("{PLAIN}secret", Scheme::Plain),
            ("secret", Scheme::Plain),
            ("", Scheme::Plain),
        ];
        for (stored, want) in cases {
            assert_eq!(Scheme::of(stored), want, "{stored}");
        }
    }

    #[test]
    fn plain_text() {
        run(&[
            ("secret", "secret", Some(true)),
            ("secret", "Secret", Some(false)),
            ("secret", "secret ", Some(false)),
            ("", "secret", Some(false)),
            ("x", "$1$md5crypt$nope", None),
        ]);
    }

    #[test]
    fn fixed_vectors() {
        run(&[
            // argon2-cffi: hash_secret(b"correct horse", b"portcullis-salt",
            // time_cost=2, memory_cost=1024, parallelism=1, hash_len=32).
            (
                "correct horse",
                "$argon2id$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08",
                Some(true),
            ),
            (
                "correct horse",
                "$argon2i$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$eyOpf27n+C6Oj6zjpA0W858/2ilwnjckGBK6/e3i+RA",
                Some(true),
            ),
            (
                "correct horse",
                "$argon2d$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$ud5fOHp3m4WobLxe+GaCJgx9wEbd7F+WTMB9whjf79s",
                Some(true),
            ),
            (
                "correct horsf",
                "$argon2id$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08",
                Some(false),
            ),
            // Openwall crypt_blowfish test vector.
            (
                "U*U",
                "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                Some(true),
            ),
            (
                "U*V",
                "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                Some(false),
            ),
            // Python bcrypt: hashpw(b"correct horse", b"$2b$04$abcdefghijklmnopqrstuu").
            (
                "correct horse",
                "$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
                Some(true),
            ),
            (
                "correct horse",
                "$2y$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
                Some(true),
            ),
            // `openssl passwd -6 -salt saltsalt password` and `-5`.
            (
                "password",
                "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/",
                Some(true),
            ),
            (
                "passwore",
                "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/",
                Some(false),
            ),
            (
                "password",
                "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.",
                Some(true),
            ),
            (
                "passwore",
                "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.",
                Some(false),
            ),
            // glibc crypt(3) with explicit rounds.
            (
                "password",
                "$6$rounds=10000$saltsalt$ZqOTO2O04D/DgwZlm.rZTgWxvBaIf4LQsZKtXFEu9UHJ4CvgmdLAGxKUzJ0mPO98OevETdY6oK/Oac6j2Axxq/",
                Some(true),
            ),
            (
                "password",
                "$5$rounds=10000$saltsalt$a6WJS3V6B3leg7T3.ELC5.vcUmHOyFDvLaurLBy.mc8",
                Some(true),
            ),
        ]);
    }

    #[test]
    fn malformed_hashes_are_errors_without_the_hash() {
        let cases = [
            "$argon2id$garbage",
            "$argon2id$v=19$m=1024,t=2,p=1",
            "$2b$04$tooshort",
            "$2b$xx$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
            "$6$",
            "$5$saltsalt$not*base64",
        ];
        for stored in cases {
            let err = verify("pw", stored).expect_err(stored);
            assert!(!err.contains(stored), "{err}");
        }
    }

    #[test]
    fn generated_hashes() {
        use argon2::password_hash::PasswordHasher;
        let salt = b"portcullis-salt!";

        let argon = Argon2::default()
            .hash_password_with_salt(b"hunter2", salt)
            .unwrap()
            .to_string();
        assert!(argon.starts_with("$argon2id$"));

        let bcrypt = bcrypt::hash_with_salt("hunter2", 4, *salt)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        assert!(bcrypt.starts_with("$2b$04$"));

        let sha512 = ShaCrypt::SHA512
            .hash_password_with_salt(b"hunter2", b"saltsalt")
            .unwrap()
            .to_string();
        let sha256 = ShaCrypt::SHA256
            .hash_password_with_salt(b"hunter2", b"saltsalt")
            .unwrap()
            .to_string();
        assert!(sha512.starts_with("$6$") && sha256.starts_with("$5$"));
        let scram256 = crate::scram::entry(Algorithm::Sha256, "hunter2", salt, 4096);
        let scram1 = crate::scram::entry(Algorithm::Sha1, "hunter2", salt, 4096);

        for stored in [&argon, &bcrypt, &sha512, &sha256, &scram256, &scram1] {
            assert_eq!(verify("hunter2", stored), Ok(true), "{stored}");
            assert_eq!(verify("hunter3", stored), Ok(false), "{stored}");
            assert_eq!(verify("", stored), Ok(false), "{stored}");
            assert_eq!(verify(&"x".repeat(100), stored), Ok(false), "{stored}");
        }
    }
}
