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
//! the guest path in `path`; the checker can read nothing else. Users are
//! found through the host's `keyed-file` index of the file (see
//! `wit/keyed-file.wit`), built once per version of the file, so a login
//! costs the same with a thousand users or a million, and an edit (in
//! place or by rename) applies at the next login. Blank lines, `#`
//! comments, lines with too few fields and lines with an empty user name or
//! password are skipped; the first matching line wins. With
//! `"case-sensitive": false` user names match ASCII-case-insensitively.
//!
//! Password fields may be plain text (compared in constant time), hashes
//! recognised by prefix (see `password_fields::hash`): Argon2, bcrypt, SHA-512-crypt and
//! SHA-256-crypt, or stored SCRAM keys in Dovecot's format
//! (`{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY` and `{SCRAM-SHA-1}…`,
//! see [`scram`]). What each kind of field can answer:
//!
//! | credential kind | plain text | hash | SCRAM keys |
//! | --- | --- | --- | --- |
//! | username-password (PLAIN, LOGIN) | yes | yes | yes (keys derived from the password and compared) |
//! | challenge-response, `hmac-md5` (CRAM-MD5) | yes | no | no |
//! | scram-sha256 / scram-sha1 lookups | yes (keys derived, salt from the user name) | no | its own variant |
//!
//! The gaps are inherent, not missing work: CRAM-MD5 needs the password
//! itself to recompute the digest, and SCRAM keys are a one-way function
//! of the password that no other hash can be turned into. So a user whose
//! line cannot answer is denied `other` with a text naming the reason (for
//! the operator's log; the client sees an ordinary failure), not
//! `unavailable`: nothing is broken and retrying would not help. Store
//! `{SCRAM-SHA-256}` lines (`doveadm pw -s SCRAM-SHA-256` prints them) to
//! offer SCRAM without keeping plain-text passwords; they also serve PLAIN
//! and LOGIN.
//!
//! An authzid must name the user itself. An unreadable file or an unusable
//! hash or SCRAM entry makes the answer `unavailable`. An unknown user
//! costs about the same work as a known one (see [`hash::burn`]).

mod check;
mod db;

use check::{lookup, verify, verify_response};
use db::KeyedEntry;
use portcullis_sdk::checker::{Checker, SecretAnswer, Verdict};
use portcullis_sdk::keyed_file::{self, FileError};
use portcullis_sdk::types::{CredentialKind, Credentials, Denial};
use scram_core::Algorithm;
use serde::Deserialize;

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

/// The configuration, and what the host's index of the file has for
/// `username`, or why they cannot be had.
fn load(username: &str) -> Result<(Config, KeyedEntry), String> {
    let config = Config::parse(&portcullis_sdk::host::config())
        .map_err(|e| format!("bad configuration: {e}"))?;
    let answer = keyed_file::lookup(&config.path, &config.format().line_format(), username)
        .map_err(|e| {
            let why = match e {
                FileError::NotGranted(t) | FileError::BadFormat(t) | FileError::Unavailable(t) => t,
            };
            format!("cannot read password file {}: {why}", config.path)
        })?;
    Ok((config, answer))
}

struct FileDb;

impl Checker for FileDb {
    fn kinds() -> Vec<CredentialKind> {
        vec![
            CredentialKind::UsernamePassword,
            CredentialKind::ChallengeResponse,
            CredentialKind::ScramSha1,
            CredentialKind::ScramSha256,
        ]
    }

    fn check(credentials: Credentials) -> Verdict {
        let username = match &credentials {
            Credentials::UsernamePassword(up) => &up.username,
            Credentials::ChallengeResponse(cr) => &cr.username,
            _ => return Verdict::Denied(Denial::Unsupported),
        };
        let (config, answer) = match load(username) {
            Ok(loaded) => loaded,
            Err(why) => return Verdict::Unavailable(why),
        };
        let format = config.format();
        match credentials {
            Credentials::UsernamePassword(up) => {
                verify(&answer, &format, up.authzid.as_deref(), &up.password)
            }
            Credentials::ChallengeResponse(cr) => verify_response(
                &answer,
                &format,
                cr.authzid.as_deref(),
                &cr.method,
                &cr.challenge,
                &cr.response,
            ),
            _ => Verdict::Denied(Denial::Unsupported),
        }
    }

    fn lookup_secret(username: String, kind: CredentialKind) -> SecretAnswer {
        let algorithm = match kind {
            CredentialKind::ScramSha1 => Algorithm::Sha1,
            CredentialKind::ScramSha256 => Algorithm::Sha256,
            _ => return SecretAnswer::Denied(Denial::Unsupported),
        };
        match load(&username) {
            Ok((config, answer)) => lookup(&answer, &config.format(), &username, algorithm),
            Err(why) => SecretAnswer::Unavailable(why),
        }
    }
}

portcullis_sdk::export_checker!(FileDb);

#[cfg(test)]
mod tests {
    use super::*;

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
