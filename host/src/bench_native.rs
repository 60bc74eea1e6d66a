//! A native PLAIN mechanism and in-memory checker, for the benchmark only
//! (`examples/bench`): the same logins as the Wasm `mech-plain` and
//! `checker-memory` plugins, done in Rust in the host, so the sandbox's cost
//! can be measured against something. Built only with the `bench-native`
//! cargo feature, and active only when the environment variable
//! [`ENV`] names the users (`user:pass[:user:pass…]`); otherwise nothing
//! changes.
//!
//! With it on, SMTP `AUTH PLAIN` with an initial response is answered here
//! (the realm that hands out the delivery avatar is still the Wasm one), and
//! the portal checks every username-password credential here (the echo
//! service's `user pass` line). Passwords are compared in constant time.

use std::collections::HashMap;
use std::sync::LazyLock;

use subtle::ConstantTimeEq as _;

use crate::portal::{Credentials, Denial};
use crate::sasl::Outcome;

/// The environment variable that turns the native path on.
pub const ENV: &str = "PORTCULLIS_BENCH_NATIVE";

/// The users, when [`ENV`] is set.
static USERS: LazyLock<Option<HashMap<String, String>>> = LazyLock::new(|| {
    let spec = std::env::var(ENV).ok()?;
    let fields: Vec<&str> = spec.split(':').collect();
    let users: HashMap<String, String> = fields
        .chunks_exact(2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect();
    tracing::warn!(
        users = users.len(),
        "{ENV} is set: PLAIN and username-password checks run natively, outside the sandbox"
    );
    Some(users)
});

/// Whether the native path is on.
pub fn enabled() -> bool {
    USERS.is_some()
}

/// Checks username-password credentials natively: `None` when the native
/// path is off or the credentials are of another kind.
pub fn check(credentials: &Credentials) -> Option<Result<String, Denial>> {
    let users = USERS.as_ref()?;
    let Credentials::UsernamePassword {
        authzid,
        username,
        password,
    } = credentials
    else {
        return None;
    };
    Some(verify(
        users,
        authzid.as_deref(),
        username,
        password.as_bytes(),
    ))
}

fn verify(
    users: &HashMap<String, String>,
    authzid: Option<&str>,
    username: &str,
    password: &[u8],
) -> Result<String, Denial> {
    let (stored, known) = match users.get(username) {
        Some(stored) => (stored.as_bytes(), true),
        // Compare against something all the same, as the plugin does.
        None => (&b"\0no such user\0"[..], false),
    };
    let equal: bool = stored.ct_eq(password).into();
    match (known, equal) {
        (false, _) => Err(Denial::UnknownUser),
        (true, false) => Err(Denial::BadCredentials),
        (true, true) if authzid.is_some_and(|z| z != username) => Err(Denial::NotAuthorized),
        (true, true) => Ok(username.to_owned()),
    }
}

/// A whole PLAIN exchange (RFC 4616) from its initial response: `None` when
/// the native path is off.
pub fn plain(message: &[u8]) -> Option<Outcome> {
    let users = USERS.as_ref()?;
    let fields: Vec<&[u8]> = message.split(|b| *b == 0).collect();
    let parsed = match fields[..] {
        [authzid, authcid, passwd] if !authcid.is_empty() && !passwd.is_empty() => {
            match (std::str::from_utf8(authzid), std::str::from_utf8(authcid)) {
                (Ok(z), Ok(c)) => Some(((!z.is_empty()).then_some(z), c, passwd)),
                _ => None,
            }
        }
        _ => None,
    };
    let Some((authzid, username, password)) = parsed else {
        return Some(Outcome::Denied {
            denial: Denial::MechanismFailed("malformed PLAIN message".into()),
            user: None,
            error_challenge: None,
            checker: None,
        });
    };
    let user = Some(username.to_owned());
    Some(match verify(users, authzid, username, password) {
        Ok(id) => Outcome::Success {
            avatar_id: Some(id),
            user,
            additional_data: None,
            checker: Some("bench-native".into()),
        },
        Err(denial) => Outcome::Denied {
            denial,
            user,
            error_challenge: None,
            checker: Some("bench-native".into()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// authzid, username, password, and the verdict.
    type Case<'a> = (Option<&'a str>, &'a str, &'a str, Result<String, Denial>);

    #[test]
    fn verifies_like_the_memory_checker() {
        let users = HashMap::from([("guest".to_owned(), "password".to_owned())]);
        let cases: &[Case] = &[
            (None, "guest", "password", Ok("guest".into())),
            (Some("guest"), "guest", "password", Ok("guest".into())),
            (
                Some("root"),
                "guest",
                "password",
                Err(Denial::NotAuthorized),
            ),
            (None, "guest", "passwore", Err(Denial::BadCredentials)),
            (None, "nobody", "password", Err(Denial::UnknownUser)),
        ];
        for (authzid, user, pass, want) in cases {
            assert_eq!(&verify(&users, *authzid, user, pass.as_bytes()), want);
        }
    }
}
