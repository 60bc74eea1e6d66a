//! In-memory users (Twisted's `InMemoryUsernamePasswordDatabaseDontUse`) as
//! a portcullis checker plugin; what `--auth memory:user:pass` loads.
//!
//! Configuration: `{"users": {"guest": "password", ...}, "case-insensitive":
//! false}`. Verifies username-password credentials; passwords are compared
//! in constant time, and an unknown user costs the same as a wrong
//! password.

use std::collections::BTreeMap;

use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::types::{CredentialKind, Credentials, Denial};
use serde::Deserialize;
use subtle::ConstantTimeEq;

wit_bindgen::generate!({
    path: "../../wit",
    world: "checker-plugin",
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    users: BTreeMap<String, String>,
    #[serde(default)]
    case_insensitive: bool,
}

/// The pure decision, testable without the host.
fn verify(config: &Config, username: &str, authzid: Option<&str>, password: &str) -> Verdict {
    let found = config.users.iter().find(|(name, _)| {
        if config.case_insensitive {
            name.eq_ignore_ascii_case(username)
        } else {
            *name == username
        }
    });
    // Compare against something even for an unknown user, so timing does
    // not tell which names exist.
    let stored = found
        .map(|(_, p)| p.as_str())
        .unwrap_or("\u{0}no such user\u{0}");
    let matches: bool = stored.as_bytes().ct_eq(password.as_bytes()).into();
    match found {
        None => Verdict::Denied(Denial::UnknownUser),
        Some(_) if !matches => Verdict::Denied(Denial::BadCredentials),
        Some((name, _)) => match authzid {
            Some(z) if z != name => Verdict::Denied(Denial::NotAuthorized),
            _ => Verdict::Accepted(name.clone()),
        },
    }
}

struct Memory;

impl Guest for Memory {
    fn credential_kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::UsernamePassword]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::UsernamePassword(up) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        match serde_json::from_str::<Config>(&portcullis::auth::host::config()) {
            Ok(config) => verify(&config, &up.username, up.authzid.as_deref(), &up.password),
            Err(e) => Verdict::Unavailable(format!("bad configuration: {e}")),
        }
    }

    fn lookup_secret(_username: String, _kind: CredentialKind) -> SecretAnswer {
        SecretAnswer::Denied(Denial::Unsupported)
    }
}

export!(Memory);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ci: bool) -> Config {
        Config {
            users: [("guest", "password"), ("Bob", "builder")]
                .into_iter()
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect(),
            case_insensitive: ci,
        }
    }

    fn show(v: Verdict) -> String {
        match v {
            Verdict::Accepted(id) => format!("ok {id}"),
            Verdict::Denied(d) => format!("denied {d:?}").replace("Denial::", ""),
            Verdict::Unavailable(w) => format!("unavailable {w}"),
        }
    }

    #[test]
    fn decisions() {
        let cases = [
            (false, "guest", None, "password", "ok guest"),
            (false, "guest", Some("guest"), "password", "ok guest"),
            (
                false,
                "guest",
                Some("root"),
                "password",
                "denied NotAuthorized",
            ),
            (false, "guest", None, "Password", "denied BadCredentials"),
            (false, "guest", None, "", "denied BadCredentials"),
            (false, "nobody", None, "password", "denied UnknownUser"),
            (false, "bob", None, "builder", "denied UnknownUser"),
            (true, "bob", None, "builder", "ok Bob"),
        ];
        for (ci, user, authzid, pass, want) in cases {
            assert_eq!(
                show(verify(&config(ci), user, authzid, pass)),
                want,
                "{user}/{pass}"
            );
        }
    }

    #[test]
    fn config_is_strict() {
        assert!(serde_json::from_str::<Config>(r#"{"users":{"a":"b"}}"#).is_ok());
        assert!(serde_json::from_str::<Config>(r#"{"users":{"a":"b"},"typo":1}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{}"#).is_err());
    }
}
