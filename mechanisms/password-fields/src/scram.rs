//! SCRAM keys from a password field: stored in Dovecot's format, or derived
//! from a plain-text password.
//!
//! A stored entry is what `doveadm pw -s SCRAM-SHA-256` prints:
//!
//! ```text
//! {SCRAM-SHA-256}ITERATIONS,SALT,STORED-KEY,SERVER-KEY
//! {SCRAM-SHA-1}ITERATIONS,SALT,STORED-KEY,SERVER-KEY
//! ```
//!
//! with the salt and the keys in base64 (the prefix in upper case, as
//! Dovecot writes it). Such an entry answers SCRAM lookups of its own
//! variant only, and also verifies clear-text logins (PLAIN, LOGIN) by
//! deriving the stored key from the password. A plain-text entry answers
//! both SCRAM variants with keys derived on the spot (see
//! `scram_core::derived_salt` for the salt and its trade-off). A hashed
//! entry (Argon2, bcrypt, crypt) has no SCRAM keys.
//!
//! Error texts describe the entry's shape; they never quote it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use scram_core::{Algorithm, DEFAULT_ITERATIONS, Keys, derived_salt};
use subtle::ConstantTimeEq;

use crate::hash::Scheme;

/// The entry prefixes, with their variants.
const PREFIXES: [(&str, Algorithm); 2] = [
    ("{SCRAM-SHA-256}", Algorithm::Sha256),
    ("{SCRAM-SHA-1}", Algorithm::Sha1),
];

/// The variant of a stored SCRAM entry, told by its prefix.
pub fn algorithm_of(stored: &str) -> Option<Algorithm> {
    PREFIXES
        .iter()
        .find(|(prefix, _)| stored.starts_with(prefix))
        .map(|&(_, algorithm)| algorithm)
}

/// Parses a stored entry.
pub fn parse_entry(stored: &str) -> Result<(Algorithm, Keys), String> {
    let (prefix, algorithm) = PREFIXES
        .iter()
        .find(|(prefix, _)| stored.starts_with(prefix))
        .ok_or("not a SCRAM entry")?;
    let fields: Vec<&str> = stored[prefix.len()..].split(',').collect();
    let [iterations, salt, stored_key, server_key] = fields[..] else {
        return Err("a SCRAM entry needs iterations, salt, stored key and server key".into());
    };
    let iterations: u32 = iterations
        .parse()
        .ok()
        .filter(|&i| i > 0)
        .ok_or("bad SCRAM iteration count")?;
    let decode = |field: &str, what: &str| {
        STANDARD
            .decode(field)
            .map_err(|_| format!("bad base64 in the SCRAM {what}"))
    };
    let keys = Keys {
        salt: decode(salt, "salt")?,
        iterations,
        stored_key: decode(stored_key, "stored key")?,
        server_key: decode(server_key, "server key")?,
    };
    if !keys.fit(*algorithm) {
        return Err(format!(
            "the SCRAM keys do not fit {} (empty salt or wrong key length)",
            algorithm.mechanism_name()
        ));
    }
    Ok((*algorithm, keys))
}

/// Whether a clear-text `password` matches a stored SCRAM entry: its keys
/// derived with the entry's salt and iteration count give the stored key.
pub fn verify(password: &str, stored: &str) -> Result<bool, String> {
    let (algorithm, keys) = parse_entry(stored)?;
    let derived = Keys::derive(algorithm, password, &keys.salt, keys.iterations);
    Ok(derived.stored_key.ct_eq(&keys.stored_key).into())
}

/// Why a password field yields no keys for a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum NoKeys {
    /// The field is a password hash, from which no SCRAM keys follow.
    Hashed,
    /// The field stores keys of the other variant.
    OtherVariant(Algorithm),
    /// The field looks like a SCRAM entry but is broken.
    Unusable(String),
}

/// The keys of `algorithm` that a password field provides for `username`.
pub fn keys_for(stored: &str, username: &str, algorithm: Algorithm) -> Result<Keys, NoKeys> {
    match Scheme::of(stored) {
        Scheme::Scram(stored_algorithm) => {
            let (_, keys) = parse_entry(stored).map_err(NoKeys::Unusable)?;
            if stored_algorithm == algorithm {
                Ok(keys)
            } else {
                Err(NoKeys::OtherVariant(stored_algorithm))
            }
        }
        Scheme::Plain => Ok(Keys::derive(
            algorithm,
            stored,
            &derived_salt(username),
            DEFAULT_ITERATIONS,
        )),
        Scheme::Argon2 | Scheme::Bcrypt | Scheme::ShaCrypt | Scheme::Unknown => Err(NoKeys::Hashed),
    }
}

/// A Dovecot-style entry for `password`, as `doveadm pw` would write it
/// with this salt.
pub fn entry(algorithm: Algorithm, password: &str, salt: &[u8], iterations: u32) -> String {
    let keys = Keys::derive(algorithm, password, salt, iterations);
    format!(
        "{{{}}}{iterations},{},{},{}",
        algorithm.mechanism_name(),
        STANDARD.encode(&keys.salt),
        STANDARD.encode(&keys.stored_key),
        STANDARD.encode(&keys.server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7677_entry() {
        // The RFC 7677 example's user, as a stored entry: its keys are the
        // ones that produce the RFC's server signature (checked in
        // scram-core's exchange tests).
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let stored = entry(Algorithm::Sha256, "pencil", &salt, 4096);
        assert!(stored.starts_with("{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"));
        let (algorithm, keys) = parse_entry(&stored).unwrap();
        assert_eq!(algorithm, Algorithm::Sha256);
        assert_eq!(keys, Keys::derive(Algorithm::Sha256, "pencil", &salt, 4096));
        assert_eq!(verify("pencil", &stored), Ok(true));
        assert_eq!(verify("pencil2", &stored), Ok(false));
        assert_eq!(verify("", &stored), Ok(false));
    }

    #[test]
    fn entries_dovecot_wrote() {
        // `doveadm pw -s SCRAM-SHA-256 -p erin-pass` and `-s SCRAM-SHA-1`
        // (Dovecot 2.3.19, Debian 12).
        let sha256 = "{SCRAM-SHA-256}4096,6Tgdyp6e6jn4Bo2ynaJYYw==,\
                      8IvQSDVZo96+28G4OGnJva+D6+PGxH0bnHlmxCptBj4=,\
                      803LZ87UuPpEOVwDj6NjhCMp4iZMQCqdr4lwWLM+kgQ=";
        let sha1 = "{SCRAM-SHA-1}4096,jEr98NAq09wNacYJSd2Ibw==,\
                    gpElVoW1avOCaWym6JfJNPhoJUM=,MJm3OYmM1LoLBz6XGY9sD/ji2xU=";
        for (stored, algorithm) in [(sha256, Algorithm::Sha256), (sha1, Algorithm::Sha1)] {
            let (parsed, keys) = parse_entry(stored).unwrap();
            assert_eq!(parsed, algorithm);
            // The server key too is what this crate derives.
            assert_eq!(
                keys,
                Keys::derive(algorithm, "erin-pass", &keys.salt, keys.iterations)
            );
            assert_eq!(verify("erin-pass", stored), Ok(true));
            assert_eq!(verify("erin-pasS", stored), Ok(false));
        }
    }

    #[test]
    fn sha_1_entries() {
        let stored = entry(Algorithm::Sha1, "pencil", b"salt", 4096);
        assert!(stored.starts_with("{SCRAM-SHA-1}4096,c2FsdA==,"));
        assert_eq!(algorithm_of(&stored), Some(Algorithm::Sha1));
        assert_eq!(verify("pencil", &stored), Ok(true));
        assert_eq!(verify("Pencil", &stored), Ok(false));
    }

    #[test]
    fn malformed_entries() {
        let good = entry(Algorithm::Sha256, "pw", b"salt", 4096);
        let fields: Vec<&str> = good["{SCRAM-SHA-256}".len()..].split(',').collect();
        let (salt, stored_key, server_key) = (fields[1], fields[2], fields[3]);
        let cases = [
            "{SCRAM-SHA-256}".to_owned(),
            format!("{{SCRAM-SHA-256}}4096,{salt},{stored_key}"),
            format!("{{SCRAM-SHA-256}}4096,{salt},{stored_key},{server_key},extra"),
            format!("{{SCRAM-SHA-256}}0,{salt},{stored_key},{server_key}"),
            format!("{{SCRAM-SHA-256}}-1,{salt},{stored_key},{server_key}"),
            format!("{{SCRAM-SHA-256}}many,{salt},{stored_key},{server_key}"),
            format!("{{SCRAM-SHA-256}}4096,,{stored_key},{server_key}"),
            format!("{{SCRAM-SHA-256}}4096,{salt},not*base64,{server_key}"),
            format!("{{SCRAM-SHA-256}}4096,{salt},{stored_key},c2FsdA=="),
            // SHA-256 keys under the SHA-1 prefix have the wrong length.
            format!("{{SCRAM-SHA-1}}4096,{salt},{stored_key},{server_key}"),
        ];
        for stored in &cases {
            let err = parse_entry(stored).expect_err(stored);
            assert!(!err.contains(stored_key), "{err}");
            assert!(verify("pw", stored).is_err(), "{stored}");
        }
        assert!(parse_entry("plain").is_err());
        assert_eq!(algorithm_of("{scram-sha-256}4096,a,b,c"), None);
        assert_eq!(algorithm_of("{SCRAM-SHA-512}4096,a,b,c"), None);
    }

    #[test]
    fn keys_for_each_kind_of_field() {
        let sha256 = entry(Algorithm::Sha256, "pencil", b"salt", 4096);
        let sha1 = entry(Algorithm::Sha1, "pencil", b"salt", 4096);
        assert_eq!(
            keys_for(&sha256, "user", Algorithm::Sha256),
            Ok(Keys::derive(Algorithm::Sha256, "pencil", b"salt", 4096))
        );
        assert_eq!(
            keys_for(&sha256, "user", Algorithm::Sha1),
            Err(NoKeys::OtherVariant(Algorithm::Sha256))
        );
        assert_eq!(
            keys_for(&sha1, "user", Algorithm::Sha256),
            Err(NoKeys::OtherVariant(Algorithm::Sha1))
        );
        assert_eq!(
            keys_for("pencil", "user", Algorithm::Sha1),
            Ok(Keys::derive(
                Algorithm::Sha1,
                "pencil",
                &derived_salt("user"),
                4096
            ))
        );
        for hashed in [
            "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/",
            "$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
            "$argon2id$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08",
            "$1$old$md5crypt",
        ] {
            assert_eq!(
                keys_for(hashed, "user", Algorithm::Sha256),
                Err(NoKeys::Hashed)
            );
        }
        assert!(matches!(
            keys_for("{SCRAM-SHA-256}4096,x", "user", Algorithm::Sha256),
            Err(NoKeys::Unusable(_))
        ));
    }
}
