//! Checking a password against a `crypt(3)` hash from `shadow` or
//! `passwd`, by the hash's prefix. The ideas are checker-file's `hash.rs`,
//! without plain text: a field that is not a known hash never matches.
//!
//! | prefix | scheme | crate |
//! | --- | --- | --- |
//! | `$6$`, `$5$` | SHA-512-crypt, SHA-256-crypt | `sha-crypt` |
//! | `$2b$`, `$2y$`, `$2a$` | bcrypt | `bcrypt` |
//! | `$y$` | yescrypt (Debian's and Fedora's default) | `yescrypt` |
//! | anything else (`$1$`, DES, `$gy$`, `$7$`…) | refused as unsupported | |
//!
//! All the crates compare the computed hash in constant time. Error texts
//! describe the field's shape only; they never quote it.

use sha_crypt::ShaCrypt;
use sha_crypt::password_hash::{Error as HashError, PasswordVerifier};
use yescrypt::Yescrypt;

/// The most memory a yescrypt hash may ask for (its `128·r·(N+p)` bytes):
/// a hash in the file must not be able to exhaust the plugin's memory
/// limit (96 MiB by default). Debian's default, `$y$j9T$`, needs 16 MiB.
pub const MAX_YESCRYPT_MEMORY: u64 = 72 << 20;

/// The schemes a hash may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    ShaCrypt,
    Bcrypt,
    Yescrypt,
    Unknown,
}

impl Scheme {
    /// The scheme of a stored hash, told by its prefix.
    pub fn of(stored: &str) -> Scheme {
        let has = |prefixes: &[&str]| prefixes.iter().any(|p| stored.starts_with(p));
        if has(&["$6$", "$5$"]) {
            Scheme::ShaCrypt
        } else if has(&["$2a$", "$2b$", "$2y$"]) {
            Scheme::Bcrypt
        } else if stored.starts_with("$y$") {
            Scheme::Yescrypt
        } else {
            Scheme::Unknown
        }
    }
}

/// Whether `password` matches `stored`; an error for a hash this checker
/// cannot use.
pub fn verify(password: &str, stored: &str) -> Result<bool, String> {
    let password = password.as_bytes();
    match Scheme::of(stored) {
        Scheme::ShaCrypt => phc_result(
            "sha-crypt",
            ShaCrypt::default().verify_password(password, stored),
        ),
        Scheme::Bcrypt => {
            bcrypt::verify(password, stored).map_err(|e| format!("bad bcrypt hash: {e}"))
        }
        Scheme::Yescrypt => {
            let memory = yescrypt_memory(stored)?;
            if memory > MAX_YESCRYPT_MEMORY {
                return Err(format!(
                    "yescrypt hash needs {} MiB, over this checker's limit of {} MiB",
                    memory >> 20,
                    MAX_YESCRYPT_MEMORY >> 20
                ));
            }
            phc_result(
                "yescrypt",
                Yescrypt::default().verify_password(password, stored),
            )
        }
        Scheme::Unknown => Err("unsupported hash scheme".into()),
    }
}

/// The bytes yescrypt allocates for a `$y$PARAMS$SALT$HASH` string.
fn yescrypt_memory(stored: &str) -> Result<u64, String> {
    let params: yescrypt::Params = stored
        .split('$')
        .nth(2)
        .ok_or("bad yescrypt hash: no parameters")?
        .parse()
        .map_err(|e| format!("bad yescrypt hash: {e}"))?;
    let (n, r, p) = (params.n(), u64::from(params.r()), u64::from(params.p()));
    Ok(128u64.saturating_mul(r).saturating_mul(n.saturating_add(p)))
}

/// [`verify`], with SHA-crypt and bcrypt verified natively by the host
/// when it will (see `password_fields::hash::ask_host`); yescrypt, and
/// what the host declines, are verified here.
pub fn verify_via_host(password: &str, stored: &str) -> Result<bool, String> {
    match Scheme::of(stored) {
        Scheme::ShaCrypt | Scheme::Bcrypt => password_fields::hash::ask_host(password, stored)
            .unwrap_or_else(|| verify(password, stored)),
        Scheme::Yescrypt | Scheme::Unknown => verify(password, stored),
    }
}

/// A mismatch is an answer; any other error means the hash is unusable.
fn phc_result(scheme: &str, result: Result<(), HashError>) -> Result<bool, String> {
    match result {
        Ok(()) => Ok(true),
        Err(HashError::PasswordInvalid) => Ok(false),
        Err(e) => Err(format!("bad {scheme} hash: {e}")),
    }
}

/// A SHA-512-crypt hash (glibc's default cost) to spend time on when the
/// files offer no real hash to use as a decoy.
const FALLBACK_DECOY: &str = "$6$portcullisdecoy$c383Uq2Jrvk7ace0.7i9I3DA9pw9b5rz3BufTlCyqeCJHmR5L9j3SKxpYZ6deKMoR2pSbf446bwy222UmkPHG.";

/// Work done for a user who does not exist (or whose answer is known
/// without a check), so that the answer's timing does not reveal it: the
/// password is checked against `decoy`, another user's hash and so usually
/// the same scheme and cost, and the answer is thrown away.
pub fn burn(password: &str, decoy: Option<&str>) {
    let _ = verify_via_host(password, decoy.unwrap_or(FALLBACK_DECOY));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (password tried, stored hash, expected answer; `None` for an error)
    type Case = (&'static str, &'static str, Option<bool>);

    #[test]
    fn schemes() {
        let cases = [
            ("$6$salt$x", Scheme::ShaCrypt),
            ("$5$salt$x", Scheme::ShaCrypt),
            ("$2a$04$x", Scheme::Bcrypt),
            ("$2b$04$x", Scheme::Bcrypt),
            ("$2y$04$x", Scheme::Bcrypt),
            ("$2x$04$x", Scheme::Unknown),
            ("$y$j9T$s$h", Scheme::Yescrypt),
            ("$gy$j9T$s$h", Scheme::Unknown),
            ("$7$C6..../....SodiumChloride$x", Scheme::Unknown),
            ("$1$salt$x", Scheme::Unknown),
            ("abJnggxhB/yWI", Scheme::Unknown),
            ("password", Scheme::Unknown),
            ("", Scheme::Unknown),
        ];
        for (stored, want) in cases {
            assert_eq!(Scheme::of(stored), want, "{stored}");
        }
    }

    #[test]
    fn libxcrypt_vectors() {
        // Python's crypt.crypt("correct horse", SALT) over libxcrypt.
        let cases: &[Case] = &[
            (
                "correct horse",
                "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0",
                Some(true),
            ),
            (
                "correct horsE",
                "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0",
                Some(false),
            ),
            (
                "correct horse",
                "$5$saltsalt$myjXcpMpE2Ofk7fj9hqyNYSn6lmWG4Mqnjx.KIRRr4/",
                Some(true),
            ),
            (
                "",
                "$5$saltsalt$myjXcpMpE2Ofk7fj9hqyNYSn6lmWG4Mqnjx.KIRRr4/",
                Some(false),
            ),
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
            (
                "correct horse",
                "$2a$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
                Some(true),
            ),
            (
                "correct horsf",
                "$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
                Some(false),
            ),
            // Debian's default cost ($y$j9T$: N = 4096, r = 32).
            (
                "correct horse",
                "$y$j9T$saltsaltsaltsalt$gNcNhvFTt75JDF1LO9O.MCPyp8TkQxrhQSKqUeo/Uy6",
                Some(true),
            ),
            (
                "correct horse",
                "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$zwtVrjrUCmXcyLTs6oxLTQlzifSUkF8RHJ./tK5KU79",
                Some(true),
            ),
            (
                "password",
                "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC",
                Some(true),
            ),
            (
                "passwore",
                "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC",
                Some(false),
            ),
            // 64 MiB: under the limit.
            (
                "correct horse",
                "$y$jBT$8LDuwfXuYVMnN5LcyMb5Q/$/2rMbjWMdGOBu7xr5V.LbbtirJcyMk1WbC3/wG7048A",
                Some(true),
            ),
        ];
        for &(password, stored, want) in cases {
            assert_eq!(
                verify(password, stored).ok(),
                want,
                "{password:?} vs {stored}"
            );
        }
    }

    #[test]
    fn bcrypt_uses_the_first_72_bytes_like_libxcrypt() {
        // crypt("x" * 100, ...) == crypt("x" * 72, ...) in libxcrypt.
        let stored = "$2b$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i";
        assert_eq!(verify(&"x".repeat(72), stored), Ok(true));
        assert_eq!(verify(&"x".repeat(71), stored), Ok(false));
    }

    #[test]
    fn unusable_hashes_are_errors_without_the_hash() {
        let cases = [
            ("$1$saltsalt$abcdefghijklmnopqrstuv", "unsupported"),
            ("abJnggxhB/yWI", "unsupported"),
            ("plain-text", "unsupported"),
            ("$6$", "sha-crypt"),
            ("$5$saltsalt$not*base64", "sha-crypt"),
            ("$2b$04$tooshort", "bcrypt"),
            ("$y$", "yescrypt"),
            ("$y$j9T$", "yescrypt"),
            ("$y$!!!$salt$hash", "yescrypt"),
            (
                "$y$j9T$saltsaltsaltsalt$gNcNhvFTt75JDF1LO9O.MCPyp8TkQxrhQSKqUeo/Uy6$extra",
                "yescrypt",
            ),
            // 2^18 blocks of 4 KiB: 1 GiB.
            (
                "$y$jFT$saltsaltsaltsalt$gNcNhvFTt75JDF1LO9O.MCPyp8TkQxrhQSKqUeo/Uy6",
                "over this checker's limit",
            ),
        ];
        for (stored, says) in cases {
            let err = verify("pw", stored).expect_err(stored);
            assert!(err.contains(says), "{stored}: {err}");
            assert!(!err.contains(stored), "{err}");
        }
    }

    #[test]
    fn the_fallback_decoy_is_a_real_hash() {
        assert_eq!(verify("x", FALLBACK_DECOY), Ok(false));
        assert_eq!(verify("no such user", FALLBACK_DECOY), Ok(true));
    }
}
