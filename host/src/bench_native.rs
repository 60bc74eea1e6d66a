//! A native PLAIN mechanism and in-memory checker, for the benchmark only
//! (`examples/bench`): the same logins as the Wasm `mech-plain` and
//! `checker-memory` plugins, done in Rust in the host, so the sandbox's cost
//! can be measured against something. Built only with the `bench-native`
//! cargo feature, and active only when the environment variable
//! [`ENV`] names the users (`user:pass[:user:pass…]`); otherwise nothing
//! changes.
//!
//! With it on, [`install`] registers a native PLAIN [`Mechanism`] and a
//! native username-password [`Checker`] in place of the plugins, like any
//! other implementation of those roles (the realm that hands out the
//! avatar is still the Wasm one). Passwords are compared in constant time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use subtle::ConstantTimeEq as _;

use crate::portal::{
    ChannelInfo, Checker, CredentialKind, Credentials, Denial, Exchange, Fault, Mechanism,
    MechanismInfo, Portal, SecretSource, Step, Verdict,
};
use crate::sasl::Mechanisms;

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

/// Registers the native PLAIN and checker when [`ENV`] is set.
pub async fn install(portal: &mut Portal, mechanisms: &mut Mechanisms) -> anyhow::Result<()> {
    let Some(users) = USERS.as_ref() else {
        return Ok(());
    };
    portal.replace_checker(
        CredentialKind::UsernamePassword,
        Arc::new(NativeChecker { users }),
    );
    mechanisms.register(Arc::new(NativePlain)).await?;
    Ok(())
}

/// The in-memory checker, natively.
struct NativeChecker {
    users: &'static HashMap<String, String>,
}

#[async_trait]
impl Checker for NativeChecker {
    fn name(&self) -> &str {
        "bench-native"
    }

    async fn credential_kinds(&self) -> Result<Vec<CredentialKind>, Fault> {
        Ok(vec![CredentialKind::UsernamePassword])
    }

    async fn check(&self, credentials: &Credentials) -> Verdict<String> {
        let Credentials::UsernamePassword {
            authzid,
            username,
            password,
        } = credentials
        else {
            return Ok(Err(Denial::Unsupported));
        };
        Ok(verify(
            self.users,
            authzid.as_deref(),
            username,
            password.as_bytes(),
        ))
    }
}

/// PLAIN (RFC 4616), natively.
struct NativePlain;

#[async_trait]
impl Mechanism for NativePlain {
    fn name(&self) -> &str {
        "bench-native"
    }

    async fn info(&self) -> Result<MechanismInfo, Fault> {
        Ok(MechanismInfo {
            name: "PLAIN".into(),
            plaintext: true,
            kinds: vec![CredentialKind::UsernamePassword],
        })
    }

    async fn exchange(
        &self,
        _secrets: Arc<dyn SecretSource>,
        _channel: ChannelInfo,
        _declared: &[CredentialKind],
    ) -> Result<Box<dyn Exchange>, Fault> {
        Ok(Box::new(PlainExchange))
    }
}

struct PlainExchange;

#[async_trait]
impl Exchange for PlainExchange {
    async fn start(&mut self, initial_response: Option<&[u8]>) -> Result<Step, Fault> {
        Ok(match initial_response {
            None => Step::Challenge(Vec::new()),
            Some(message) => plain(message),
        })
    }

    async fn step(&mut self, response: &[u8]) -> Result<Step, Fault> {
        Ok(plain(response))
    }

    async fn denied(&mut self) -> Result<Option<Vec<u8>>, Fault> {
        Ok(None)
    }

    fn vouched_avatar(&self, _username: &str, _kind: CredentialKind) -> Option<String> {
        None
    }
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

/// A PLAIN message: the credentials it carries, or why it is malformed.
fn plain(message: &[u8]) -> Step {
    let fields: Vec<&[u8]> = message.split(|b| *b == 0).collect();
    let parsed = match fields[..] {
        [authzid, authcid, passwd] if !authcid.is_empty() && !passwd.is_empty() => {
            match (
                std::str::from_utf8(authzid),
                std::str::from_utf8(authcid),
                std::str::from_utf8(passwd),
            ) {
                (Ok(z), Ok(c), Ok(p)) => Some(((!z.is_empty()).then_some(z), c, p)),
                _ => None,
            }
        }
        _ => None,
    };
    match parsed {
        None => Step::Failure("malformed PLAIN message".into()),
        Some((authzid, username, password)) => Step::Success {
            credentials: Credentials::UsernamePassword {
                authzid: authzid.map(str::to_owned),
                username: username.to_owned(),
                password: password.to_owned(),
            },
            additional_data: None,
        },
    }
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
