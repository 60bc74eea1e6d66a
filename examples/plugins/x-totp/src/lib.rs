//! X-TOTP: a password plus an RFC 6238 one-time code, as an example of a
//! third-party portcullis mechanism written with `portcullis-sdk`.
//!
//! The exchange has two rounds:
//!
//! 1. the client sends a PLAIN message, `[authzid] NUL user NUL password`
//!    (as the initial response, or after an empty challenge);
//! 2. the server challenges `TOTP code:`, the client answers with the
//!    current code from its authenticator app.
//!
//! The mechanism itself checks the code, against the user's TOTP secret
//! read from a JSON file in a folder the operator granted it (read-only);
//! only if the code is right does it hand the user name and password to
//! the portal as username-password credentials, so the password is
//! verified by whichever checker the operator registered for passwords,
//! exactly as for PLAIN. A wrong code ends the exchange in failure before
//! any checker sees the password.
//!
//! Why not `session.lookup-secret`: in `portcullis:auth@0.2.0` a stored
//! secret can only be SCRAM keys, so a TOTP secret has no way through the
//! host; a grant is the honest channel until the WIT grows one.
//!
//! Configuration (JSON; `secrets` required, the rest default as shown):
//!
//! ```json
//! {"secrets": "/grant/totp.json", "algorithm": "sha1", "digits": 6, "period": 30, "skew": 1}
//! ```
//!
//! The secrets file maps user names to base32 secrets, as in `otpauth://`
//! URIs: `{"bob": "JBSWY3DPEHPK3PXP"}`.

pub mod totp;

use std::collections::BTreeMap;

use portcullis_sdk::host;
use portcullis_sdk::mechanism::{Mechanism, MechanismInfo, Step};
use portcullis_sdk::types::{CredentialKind, Credentials, UsernamePassword};
use serde::Deserialize;

/// The second challenge.
pub const CODE_CHALLENGE: &[u8] = b"TOTP code:";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The secrets file's guest path.
    secrets: String,
    #[serde(default)]
    algorithm: totp::Algorithm,
    #[serde(default = "default_digits")]
    digits: u32,
    #[serde(default = "default_period")]
    period: u64,
    #[serde(default = "default_skew")]
    skew: u64,
}

fn default_digits() -> u32 {
    6
}
fn default_period() -> u64 {
    30
}
fn default_skew() -> u64 {
    1
}

impl Config {
    fn params(&self) -> Result<totp::Params, String> {
        if !(6..=8).contains(&self.digits) || self.period == 0 || self.skew > 10 {
            return Err(
                "configuration: digits must be 6 to 8, period above 0, skew at most 10".into(),
            );
        }
        Ok(totp::Params {
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
            skew: self.skew,
        })
    }
}

/// The first message: PLAIN's grammar (RFC 4616). Errors never quote it.
fn parse_login(message: &[u8]) -> Result<UsernamePassword, &'static str> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8")?;
    let mut fields = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("expected authzid NUL user NUL password");
    };
    if username.is_empty() || password.is_empty() {
        return Err("empty user name or password");
    }
    Ok(UsernamePassword {
        authzid: Some(authzid.to_owned()).filter(|a| !a.is_empty()),
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// A base32 secret as authenticator apps show it: case and spaces do not
/// matter, padding is optional.
pub fn decode_secret(text: &str) -> Option<Vec<u8>> {
    let mut clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    while clean.len() % 8 != 0 {
        clean.push('=');
    }
    data_encoding::BASE32
        .decode(clean.as_bytes())
        .ok()
        .filter(|k| !k.is_empty())
}

/// Checks `code` for `username` at Unix time `now`, given the secrets
/// file's text. The error is for the operator's log: it names no secret
/// and no code.
fn check_code(
    params: &totp::Params,
    secrets: &str,
    username: &str,
    code: &[u8],
    now: u64,
) -> Result<(), String> {
    let secrets: BTreeMap<String, String> = serde_json::from_str(secrets).map_err(|e| {
        format!(
            "the secrets file is not a JSON object of strings (line {})",
            e.line()
        )
    })?;
    let Some(secret) = secrets.get(username) else {
        return Err("no TOTP secret for this user".into());
    };
    let key = decode_secret(secret).ok_or("a TOTP secret in the secrets file is not base32")?;
    let code = std::str::from_utf8(code)
        .ok()
        .filter(|c| c.len() == params.digits as usize && c.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("the code is not a string of digits of the configured length")?;
    if totp::verify(params, &key, now, code) {
        Ok(())
    } else {
        Err("wrong or expired TOTP code".into())
    }
}

/// Reads the configuration and the secrets file, and checks the code now.
fn check_code_now(username: &str, code: &[u8]) -> Result<(), String> {
    let config: Config = host::config_as()?;
    let params = config.params()?;
    let secrets = std::fs::read_to_string(&config.secrets).map_err(|e| {
        format!(
            "cannot read the secrets file {}: {}",
            config.secrets,
            e.kind()
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970")?
        .as_secs();
    check_code(&params, &secrets, username, code, now)
}

/// Where the exchange stands; the SDK rejects calls out of order.
enum XTotp {
    AwaitingLogin,
    AwaitingCode(UsernamePassword),
}

impl XTotp {
    fn login(&mut self, message: &[u8]) -> Step {
        match parse_login(message) {
            Ok(login) => {
                *self = XTotp::AwaitingCode(login);
                Step::Challenge(CODE_CHALLENGE.to_vec())
            }
            Err(why) => Step::failure(format!("malformed X-TOTP login: {why}")),
        }
    }
}

impl Mechanism for XTotp {
    fn info() -> MechanismInfo {
        // The password crosses the wire as in PLAIN: TLS only.
        MechanismInfo::new("X-TOTP", [CredentialKind::UsernamePassword]).plaintext()
    }

    fn new() -> Self {
        XTotp::AwaitingLogin
    }

    fn start(&mut self, initial_response: Option<Vec<u8>>) -> Step {
        match initial_response {
            None => Step::Challenge(Vec::new()),
            Some(message) => self.login(&message),
        }
    }

    fn step(&mut self, response: Vec<u8>) -> Step {
        match std::mem::replace(self, XTotp::AwaitingLogin) {
            XTotp::AwaitingLogin => self.login(&response),
            XTotp::AwaitingCode(login) => match check_code_now(&login.username, &response) {
                Ok(()) => Step::success(Credentials::UsernamePassword(login)),
                Err(why) => Step::failure(why),
            },
        }
    }
}

portcullis_sdk::export_mechanism!(XTotp);

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"

    #[test]
    fn secrets_decode_like_authenticator_apps_show_them() {
        let key = b"12345678901234567890".to_vec();
        assert_eq!(decode_secret(SECRET_B32), Some(key.clone()));
        assert_eq!(
            decode_secret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq"),
            Some(key)
        );
        assert_eq!(
            decode_secret("JBSWY3DPEHPK3PXP"),
            Some(b"Hello!\xde\xad\xbe\xef".to_vec())
        );
        assert_eq!(decode_secret("not base32!"), None);
        assert_eq!(decode_secret(""), None);
    }

    #[test]
    fn logins() {
        let up = parse_login(b"\0bob\0hunter2").unwrap();
        assert_eq!(
            (up.authzid, up.username.as_str(), up.password.as_str()),
            (None, "bob", "hunter2")
        );
        let up = parse_login(b"admin\0bob\0pw").unwrap();
        assert_eq!(up.authzid.as_deref(), Some("admin"));
        for bad in [
            &b""[..],
            b"bob\0pw",
            b"\0bob\0",
            b"\0\0pw",
            b"\0bob\0pw\0x",
            b"\0b\xffob\0pw",
        ] {
            let why = parse_login(bad).unwrap_err();
            assert!(!why.contains("bob") && !why.contains("pw"), "{why}");
        }
    }

    #[test]
    fn codes() {
        let params = totp::Params::default();
        let secrets = format!(r#"{{"bob": "{SECRET_B32}", "eve": "!!"}}"#);
        let now = 1_111_111_111;
        let code = totp::totp(&params, b"12345678901234567890", now);
        assert_eq!(
            check_code(&params, &secrets, "bob", code.as_bytes(), now),
            Ok(())
        );
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let errors = [
            check_code(&params, &secrets, "bob", wrong.as_bytes(), now),
            check_code(&params, &secrets, "bob", code.as_bytes(), now + 3600),
            check_code(&params, &secrets, "bob", b"12345", now),
            check_code(&params, &secrets, "bob", b"12345a", now),
            check_code(&params, &secrets, "alice", code.as_bytes(), now),
            check_code(&params, &secrets, "eve", code.as_bytes(), now),
            check_code(&params, "[1, 2]", "bob", code.as_bytes(), now),
        ];
        for e in errors {
            let why = e.unwrap_err();
            assert!(!why.contains(&code) && !why.contains(SECRET_B32), "{why}");
        }
    }

    #[test]
    fn rounds() {
        use portcullis_sdk::mechanism::Exchange;
        let mut e = Exchange::<XTotp>::new();
        assert_eq!(e.start(None), Step::Challenge(Vec::new()));
        assert_eq!(
            e.step(b"\0bob\0hunter2".to_vec()),
            Step::Challenge(CODE_CHALLENGE.to_vec())
        );
        let mut e = Exchange::<XTotp>::new();
        assert_eq!(
            e.start(Some(b"\0bob\0hunter2".to_vec())),
            Step::Challenge(CODE_CHALLENGE.to_vec())
        );
        assert_eq!(e.start(None), Step::failure("start called twice"));
        let mut e = Exchange::<XTotp>::new();
        assert!(matches!(e.start(Some(b"bob".to_vec())), Step::Failure(_)));
        assert_eq!(
            e.step(b"123456".to_vec()),
            Step::failure("no response was expected")
        );
    }
}
