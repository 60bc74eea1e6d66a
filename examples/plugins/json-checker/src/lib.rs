//! A username-password checker over a JSON user file: an example of a
//! third-party portcullis checker written with `portcullis-sdk`.
//!
//! Configuration (JSON, `users` required):
//!
//! ```json
//! {"users": "/data/users.json"}
//! ```
//!
//! `users` is a guest path inside a folder the operator granted (read-only
//! is enough). The file maps user names to entries:
//!
//! ```json
//! {
//!   "alice": {"argon2": "$argon2id$v=19$m=19456,t=2,p=1$...$..."},
//!   "bob":   {"plain": "hunter2"},
//!   "carol": {"plain": "secret", "disabled": true}
//! }
//! ```
//!
//! The file is read on every check, so edits take effect at once. A plain
//! password is compared in constant time (`subtle`); an Argon2 PHC string
//! is verified by the `argon2` crate. An unknown user costs the same
//! comparison as a known one, against a decoy. An unreadable or malformed
//! file is `unavailable` (a temporary failure), never a denial.

use std::collections::BTreeMap;

use portcullis_sdk::checker::{Checker, Verdict};
use portcullis_sdk::host;
use portcullis_sdk::types::{CredentialKind, Credentials, Denial};
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The user file's guest path.
    users: String,
}

/// One user's entry: exactly one of `plain` and `argon2`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    plain: Option<String>,
    #[serde(default)]
    argon2: Option<String>,
    #[serde(default)]
    disabled: bool,
}

/// The user file.
type Users = BTreeMap<String, Entry>;

/// Whether `password` matches `entry`. The error names what is wrong with
/// the entry, never its contents.
fn matches(entry: &Entry, password: &str) -> Result<bool, &'static str> {
    match (&entry.plain, &entry.argon2) {
        (Some(plain), None) => Ok(plain.as_bytes().ct_eq(password.as_bytes()).into()),
        (None, Some(phc)) => {
            use argon2::{Argon2, PasswordHash, PasswordVerifier};
            let hash = PasswordHash::new(phc).map_err(|_| "an argon2 field is not a PHC string")?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok())
        }
        _ => Err("an entry needs exactly one of plain and argon2"),
    }
}

/// The decision for one login, given the parsed user file.
fn decide(users: &Users, username: &str, authzid: Option<&str>, password: &str) -> Verdict {
    let Some(entry) = users.get(username) else {
        // Spend a comparison anyway, so timing does not tell which names
        // exist.
        let decoy = Entry {
            plain: Some("decoy-password-for-unknown-users".into()),
            argon2: None,
            disabled: false,
        };
        let _ = matches(&decoy, password);
        return Verdict::Denied(Denial::UnknownUser);
    };
    match matches(entry, password) {
        Err(why) => Verdict::Unavailable(format!("user file: {why}")),
        Ok(false) => Verdict::Denied(Denial::BadCredentials),
        Ok(true) if entry.disabled => Verdict::Denied(Denial::AccountDisabled),
        Ok(true) => match authzid {
            Some(other) if other != username => Verdict::Denied(Denial::NotAuthorized),
            _ => Verdict::Accepted(username.to_owned()),
        },
    }
}

/// Reads the configuration and the user file.
fn load() -> Result<Users, String> {
    let config: Config = host::config_as()?;
    let text = std::fs::read_to_string(&config.users)
        .map_err(|e| format!("cannot read the user file {}: {}", config.users, e.kind()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "the user file {} is not a JSON object of entries (line {})",
            config.users,
            e.line()
        )
    })
}

struct JsonChecker;

impl Checker for JsonChecker {
    fn kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::UsernamePassword]
    }

    fn check(credentials: Credentials) -> Verdict {
        // The SDK passes only the kinds declared above.
        let Credentials::UsernamePassword(up) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        match load() {
            Ok(users) => decide(&users, &up.username, up.authzid.as_deref(), &up.password),
            Err(why) => Verdict::Unavailable(why),
        }
    }
}

portcullis_sdk::export_checker!(JsonChecker);

#[cfg(test)]
mod tests {
    use super::*;

    /// argon2-cffi: hash_secret(b"correct horse", b"portcullis-salt",
    /// time_cost=2, memory_cost=1024, parallelism=1, hash_len=32).
    const ARGON2: &str = "$argon2id$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08";

    fn users() -> Users {
        serde_json::from_str(&format!(
            r#"{{"alice": {{"argon2": "{ARGON2}"}},
                "bob": {{"plain": "hunter2"}},
                "carol": {{"plain": "secret", "disabled": true}},
                "dave": {{}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn decisions() {
        let users = users();
        let cases = [
            (
                "alice",
                None,
                "correct horse",
                Verdict::Accepted("alice".into()),
            ),
            (
                "alice",
                None,
                "correct horse!",
                Verdict::Denied(Denial::BadCredentials),
            ),
            ("bob", None, "hunter2", Verdict::Accepted("bob".into())),
            (
                "bob",
                Some("bob"),
                "hunter2",
                Verdict::Accepted("bob".into()),
            ),
            (
                "bob",
                Some("alice"),
                "hunter2",
                Verdict::Denied(Denial::NotAuthorized),
            ),
            (
                "bob",
                None,
                "hunter",
                Verdict::Denied(Denial::BadCredentials),
            ),
            ("bob", None, "", Verdict::Denied(Denial::BadCredentials)),
            (
                "carol",
                None,
                "secret",
                Verdict::Denied(Denial::AccountDisabled),
            ),
            (
                "carol",
                None,
                "wrong",
                Verdict::Denied(Denial::BadCredentials),
            ),
            (
                "erin",
                None,
                "hunter2",
                Verdict::Denied(Denial::UnknownUser),
            ),
        ];
        for (user, authzid, password, want) in cases {
            assert_eq!(
                decide(&users, user, authzid, password),
                want,
                "{user} {password}"
            );
        }
        assert!(matches!(
            decide(&users, "dave", None, "s3cr3t"),
            Verdict::Unavailable(why) if !why.contains("s3cr3t")
        ));
    }

    #[test]
    fn configuration_errors_do_not_quote_values() {
        let err = host::parse_config::<Config>(r#"{"users": 42}"#).unwrap_err();
        assert!(!err.contains("42"), "{err}");
        assert!(host::parse_config::<Config>(r#"{"users": "/data/u.json"}"#).is_ok());
    }
}
