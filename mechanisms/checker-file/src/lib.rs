//! Password files (Twisted's `FilePasswordDB`) as a portcullis checker
//! plugin; what `--auth file:PATH` loads.
//!
//! Configuration (JSON):
//! `{"path": "/grant/passwords.txt", "delimiter": ":", "username-field": 0,
//!   "password-field": 1, "case-sensitive": true}`; all but `path` optional.
//! The host grants the file's folder read-only; the checker can read
//! nothing else. The file is read on every call, so edits are noticed at
//! once. Password fields may be plain text or hashes recognised by prefix
//! (see [`hash`]).

mod db;
mod hash;

use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::types::{CredentialKind, Credentials, Denial};
use serde::Deserialize;

wit_bindgen::generate!({
    path: "../../wit",
    world: "checker-plugin",
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    path: String,
    #[serde(default = "default_delimiter")]
    delimiter: char,
    #[serde(default)]
    username_field: usize,
    #[serde(default = "default_password_field")]
    password_field: usize,
    #[serde(default = "default_true")]
    case_sensitive: bool,
}

fn default_delimiter() -> char {
    ':'
}
fn default_password_field() -> usize {
    1
}
fn default_true() -> bool {
    true
}

impl Config {
    fn format(&self) -> db::Format {
        db::Format {
            delimiter: self.delimiter,
            username_field: self.username_field,
            password_field: self.password_field,
            case_sensitive: self.case_sensitive,
        }
    }
}

/// The decision for one login, given the file's text.
fn verify(
    text: &str,
    format: &db::Format,
    username: &str,
    authzid: Option<&str>,
    password: &str,
) -> Verdict {
    let Some(entry) = db::find(text, format, username) else {
        // Spend the time a real check would, so absent users are not
        // told apart by timing.
        hash::burn(password);
        return Verdict::Denied(Denial::UnknownUser);
    };
    match hash::verify(password, entry.password) {
        Err(e) => Verdict::Unavailable(format!(
            "password entry for {} is unusable: {e}",
            entry.username
        )),
        Ok(false) => Verdict::Denied(Denial::BadCredentials),
        Ok(true) => match authzid {
            Some(z) if z != entry.username => Verdict::Denied(Denial::NotAuthorized),
            _ => Verdict::Accepted(entry.username.to_owned()),
        },
    }
}

struct FileDb;

impl Guest for FileDb {
    fn credential_kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::UsernamePassword]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::UsernamePassword(up) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        let config: Config = match serde_json::from_str(&portcullis::auth::host::config()) {
            Ok(c) => c,
            Err(e) => return Verdict::Unavailable(format!("bad configuration: {e}")),
        };
        let text = match std::fs::read_to_string(&config.path) {
            Ok(t) => t,
            Err(e) => {
                return Verdict::Unavailable(format!(
                    "cannot read password file {}: {e}",
                    config.path
                ));
            }
        };
        verify(
            &text,
            &config.format(),
            &up.username,
            up.authzid.as_deref(),
            &up.password,
        )
    }

    fn lookup_secret(_username: String, _kind: CredentialKind) -> SecretAnswer {
        SecretAnswer::Denied(Denial::Unsupported)
    }
}

export!(FileDb);

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: Verdict) -> String {
        match v {
            Verdict::Accepted(id) => format!("ok {id}"),
            Verdict::Denied(d) => format!("denied {d:?}").replace("Denial::", ""),
            Verdict::Unavailable(w) => format!("unavailable {w}"),
        }
    }

    #[test]
    fn decisions() {
        let text = "# users\nguest:password\nalice:$6$saltsalt$bad\n";
        let f = db::Format::default();
        assert_eq!(
            show(verify(text, &f, "guest", None, "password")),
            "ok guest"
        );
        assert_eq!(
            show(verify(text, &f, "guest", None, "nope")),
            "denied BadCredentials"
        );
        assert_eq!(
            show(verify(text, &f, "bob", None, "password")),
            "denied UnknownUser"
        );
        assert_eq!(
            show(verify(text, &f, "guest", Some("alice"), "password")),
            "denied NotAuthorized"
        );
        assert!(show(verify(text, &f, "alice", None, "x")).starts_with("unavailable"));
    }

    #[test]
    fn config_defaults() {
        let c: Config = serde_json::from_str(r#"{"path":"/grant/p"}"#).unwrap();
        assert_eq!(
            (
                c.delimiter,
                c.username_field,
                c.password_field,
                c.case_sensitive
            ),
            (':', 0, 1, true)
        );
        assert!(serde_json::from_str::<Config>(r#"{"path":"/p","bogus":1}"#).is_err());
    }
}
