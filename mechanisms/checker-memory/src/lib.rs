//! In-memory users (Twisted's `InMemoryUsernamePasswordDatabaseDontUse`) as
//! a portcullis checker plugin; what `--auth memory:user:pass` loads.
//!
//! Configuration (JSON; `case-insensitive` optional, default `false`):
//!
//! ```json
//! {"users": {"guest": "password", "bob": "builder"}, "case-insensitive": false}
//! ```
//!
//! Verifies username-password credentials and accepts them with the user
//! name as the configuration spells it. Passwords are compared in constant
//! time, and an unknown user is compared against a dummy so that it costs
//! the same as a wrong password. An authzid must name the user itself.
//! Answers no `lookup-secret`.

mod config;

use config::Config;
use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::types::{CredentialKind, Credentials, Denial};
use subtle::ConstantTimeEq;

wit_bindgen::generate!({
    path: "../../wit",
    world: "checker-plugin",
});

/// What unknown users' passwords are compared with.
const DUMMY: &str = "\u{0}no such user\u{0}";

/// The pure decision, testable without the host.
fn verify(config: &Config, username: &str, authzid: Option<&str>, password: &str) -> Verdict {
    let found = config.find(username);
    // Compare against something even for an unknown user, so timing does
    // not tell which names exist.
    let stored = found.map_or(DUMMY, |(_, p)| p);
    let matches: bool = stored.as_bytes().ct_eq(password.as_bytes()).into();
    match found {
        None => Verdict::Denied(Denial::UnknownUser),
        Some(_) if !matches => Verdict::Denied(Denial::BadCredentials),
        // Only a user who proved the password learns about authorization.
        Some((name, _)) => match authzid {
            Some(z) if !config.same_user(name, z) => Verdict::Denied(Denial::NotAuthorized),
            _ => Verdict::Accepted(name.to_owned()),
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
        match Config::parse(&portcullis::auth::host::config()) {
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

    fn config(case_insensitive: bool) -> Config {
        Config {
            users: [("guest", "password"), ("Bob", "builder")]
                .into_iter()
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect(),
            case_insensitive,
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
            (
                false,
                "guest",
                Some("Guest"),
                "password",
                "denied NotAuthorized",
            ),
            (
                false,
                "guest",
                Some("root"),
                "wrong",
                "denied BadCredentials",
            ),
            (false, "guest", None, "Password", "denied BadCredentials"),
            (false, "guest", None, "", "denied BadCredentials"),
            (false, "nobody", None, "password", "denied UnknownUser"),
            (false, "nobody", None, DUMMY, "denied UnknownUser"),
            (false, "bob", None, "builder", "denied UnknownUser"),
            (false, "Bob", None, "builder", "ok Bob"),
            (true, "bob", None, "builder", "ok Bob"),
            (true, "BOB", Some("bob"), "builder", "ok Bob"),
            (
                true,
                "bob",
                Some("guest"),
                "builder",
                "denied NotAuthorized",
            ),
            (true, "bob", None, "Builder", "denied BadCredentials"),
        ];
        for (ci, user, authzid, pass, want) in cases {
            assert_eq!(
                show(verify(&config(ci), user, authzid, pass)),
                want,
                "{user}/{authzid:?}/{pass}"
            );
        }
    }
}
