//! Password files (Twisted's `FilePasswordDB`) as a portcullis checker
//! plugin; what `--auth file:PATH` loads.
//!
//! Configuration (JSON; all but `path` optional, defaults shown):
//!
//! ```json
//! {"path": "/grant/passwords.txt", "delimiter": ":", "username-field": 0,
//!  "password-field": 1, "case-sensitive": true}
//! ```
//!
//! Fields are counted from 0, as in Twisted, and must differ; `delimiter`
//! is one character. The host grants the file's folder read-only and puts
//! the guest path in `path`; the checker can read nothing else. The file
//! is read on every call, so edits are noticed at once. Blank lines, `#`
//! comments, lines with too few fields and lines with an empty user name or
//! password are skipped; the first matching line wins. With
//! `"case-sensitive": false` user names match ASCII-case-insensitively.
//!
//! Password fields may be plain text (compared in constant time) or hashes
//! recognised by prefix (see [`hash`]): Argon2, bcrypt, SHA-512-crypt and
//! SHA-256-crypt. Verifies username-password credentials; an authzid must
//! name the user itself. An unreadable file or an unusable hash makes the
//! answer `unavailable`.

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
    /// Parses and checks the JSON the host hands over.
    fn parse(json: &str) -> Result<Config, String> {
        let config: Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if config.username_field == config.password_field {
            return Err("username-field and password-field must differ".into());
        }
        Ok(config)
    }

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
        // Spend the time a real check would, against some other entry's
        // field, so absent users are not told apart by timing.
        let decoy = db::entries(text, format).next().map(|e| e.password);
        hash::burn(password, decoy);
        return Verdict::Denied(Denial::UnknownUser);
    };
    match hash::verify(password, entry.password) {
        Err(e) => Verdict::Unavailable(format!(
            "password entry for {} is unusable: {e}",
            entry.username
        )),
        Ok(false) => Verdict::Denied(Denial::BadCredentials),
        // Only a user who proved the password learns about authorization.
        Ok(true) => match authzid {
            Some(z) if !format.same_user(entry.username, z) => {
                Verdict::Denied(Denial::NotAuthorized)
            }
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
        let config = match Config::parse(&portcullis::auth::host::config()) {
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
        let text = "# users\nguest:password\nBob:$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.\n\
                    alice:$6$saltsalt$bad\n";
        let exact = db::Format::default();
        let any_case = db::Format {
            case_sensitive: false,
            ..exact
        };
        let cases = [
            (exact, "guest", None, "password", "ok guest"),
            (exact, "guest", Some("guest"), "password", "ok guest"),
            (exact, "guest", None, "nope", "denied BadCredentials"),
            (exact, "guest", None, "", "denied BadCredentials"),
            (exact, "bob", None, "password", "denied UnknownUser"),
            (
                exact,
                "guest",
                Some("alice"),
                "password",
                "denied NotAuthorized",
            ),
            (
                exact,
                "guest",
                Some("Guest"),
                "password",
                "denied NotAuthorized",
            ),
            (
                exact,
                "guest",
                Some("alice"),
                "nope",
                "denied BadCredentials",
            ),
            (exact, "Bob", None, "password", "ok Bob"),
            (any_case, "bob", None, "password", "ok Bob"),
            (any_case, "bob", Some("BOB"), "password", "ok Bob"),
            (
                any_case,
                "bob",
                Some("guest"),
                "password",
                "denied NotAuthorized",
            ),
            (
                exact,
                "alice",
                None,
                "x",
                "unavailable password entry for alice is unusable: bad sha-crypt hash: \
                 invalid encoding",
            ),
        ];
        for (format, user, authzid, pass, want) in cases {
            let got = show(verify(text, &format, user, authzid, pass));
            assert_eq!(got, want, "{user}/{authzid:?}/{pass}");
            assert!(!got.contains("$6$saltsalt$bad"), "{got}");
        }
    }

    #[test]
    fn empty_file() {
        let f = db::Format::default();
        assert_eq!(
            show(verify("", &f, "guest", None, "pw")),
            "denied UnknownUser"
        );
    }

    #[test]
    fn configs() {
        let c = Config::parse(r#"{"path":"/grant/p"}"#).unwrap();
        assert_eq!(c.path, "/grant/p");
        assert_eq!(c.format(), db::Format::default());
        let c = Config::parse(
            r#"{"path":"/p","delimiter":"|","username-field":2,"password-field":3,"case-sensitive":false}"#,
        )
        .unwrap();
        assert_eq!(
            c.format(),
            db::Format {
                delimiter: '|',
                username_field: 2,
                password_field: 3,
                case_sensitive: false,
            }
        );
        for bad in [
            r#"{}"#,
            r#"{"path":"/p","bogus":1}"#,
            r#"{"path":"/p","delimiter":"::"}"#,
            r#"{"path":"/p","delimiter":""}"#,
            r#"{"path":"/p","username-field":-1}"#,
            r#"{"path":"/p","username_field":1}"#,
            r#"{"path":"/p","password-field":0}"#,
            r#"[]"#,
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }
}
