//! In-memory users (Twisted's `InMemoryUsernamePasswordDatabaseDontUse`) as
//! a portcullis checker plugin; what `--auth memory:user:pass` loads.
//!
//! Configuration (JSON; `case-insensitive` optional, default `false`):
//!
//! ```json
//! {"users": {"guest": "password", "bob": "builder"}, "case-insensitive": false}
//! ```
//!
//! Knowing every password in clear, it serves every password-based kind:
//!
//! - **username-password** (PLAIN, LOGIN): the password is compared in
//!   constant time.
//! - **challenge-response** with method `hmac-md5` (CRAM-MD5): the digest
//!   is recomputed from the password and compared in constant time. Other
//!   methods are denied `unsupported`.
//! - **scram-sha1** and **scram-sha256** (`lookup-secret`): the keys are
//!   derived on every lookup from the password (after SASLprep) with
//!   4096 iterations and a salt computed from the user name as the client
//!   sent it (`scram_core::derived_salt`). A random salt would have to be
//!   stored, and this checker stores nothing; the deterministic one is the
//!   same salt the SCRAM mechanisms invent for unknown users, so the
//!   exchange does not tell real users from invented ones. It also lets an
//!   attacker precompute guesses for a known name: fine for a development
//!   checker, not for production (use a file with stored SCRAM keys).
//!
//! Verdicts accept with the user name as the configuration spells it. An
//! unknown user costs the same work as a known one (the comparison or the
//! key derivation runs against a dummy password), so timing does not tell
//! which names exist. An authzid must name the user itself.

mod config;

use config::Config;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use portcullis_sdk::checker::{Checker, SecretAnswer, Verdict};
use portcullis_sdk::types::{
    CredentialKind, Credentials, Denial, ScramKeys, SecretEntry, StoredSecret,
};
use scram_core::{Algorithm, DEFAULT_ITERATIONS, Keys, derived_salt};
use subtle::ConstantTimeEq;

/// What unknown users' passwords are compared with.
const DUMMY: &str = "\u{0}no such user\u{0}";

/// The verdict once the secret was compared: only a user who proved the
/// password learns about authorization.
fn decide(config: &Config, found: Option<&str>, matches: bool, authzid: Option<&str>) -> Verdict {
    match found {
        None => Verdict::Denied(Denial::UnknownUser),
        Some(_) if !matches => Verdict::Denied(Denial::BadCredentials),
        Some(name) => match authzid {
            Some(z) if !config.same_user(name, z) => Verdict::Denied(Denial::NotAuthorized),
            _ => Verdict::Accepted(name.to_owned()),
        },
    }
}

/// A username-password login.
fn verify(config: &Config, username: &str, authzid: Option<&str>, password: &str) -> Verdict {
    let found = config.find(username);
    // Compare against something even for an unknown user, so timing does
    // not tell which names exist.
    let stored = found.map_or(DUMMY, |(_, p)| p);
    let matches: bool = stored.as_bytes().ct_eq(password.as_bytes()).into();
    decide(config, found.map(|(name, _)| name), matches, authzid)
}

/// HMAC-MD5(password, challenge) in lower-case hex: the CRAM-MD5 digest
/// (RFC 2195).
fn cram_md5_digest(password: &str, challenge: &[u8]) -> String {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(password.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(challenge);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A challenge-response login.
fn verify_response(
    config: &Config,
    username: &str,
    authzid: Option<&str>,
    method: &str,
    challenge: &[u8],
    response: &[u8],
) -> Verdict {
    if method != "hmac-md5" {
        return Verdict::Denied(Denial::Unsupported);
    }
    let found = config.find(username);
    let expected = cram_md5_digest(found.map_or(DUMMY, |(_, p)| p), challenge);
    let matches: bool = expected.as_bytes().ct_eq(response).into();
    decide(config, found.map(|(name, _)| name), matches, authzid)
}

/// The SCRAM keys for `username`, derived from the password.
fn scram_keys(config: &Config, username: &str, algorithm: Algorithm) -> SecretAnswer {
    let found = config.find(username);
    let password = found.map_or(DUMMY, |(_, p)| p);
    let keys = Keys::derive(
        algorithm,
        password,
        &derived_salt(username),
        DEFAULT_ITERATIONS,
    );
    match found {
        None => SecretAnswer::Denied(Denial::UnknownUser),
        Some((name, _)) => SecretAnswer::Found(SecretEntry {
            avatar_id: name.to_owned(),
            secret: StoredSecret::Scram(ScramKeys {
                salt: keys.salt,
                iterations: keys.iterations,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
            }),
        }),
    }
}

struct Memory;

impl Checker for Memory {
    fn kinds() -> Vec<CredentialKind> {
        vec![
            CredentialKind::UsernamePassword,
            CredentialKind::ChallengeResponse,
            CredentialKind::ScramSha1,
            CredentialKind::ScramSha256,
        ]
    }

    fn check(credentials: Credentials) -> Verdict {
        let config = match Config::parse(&portcullis_sdk::host::config()) {
            Ok(config) => config,
            Err(e) => return Verdict::Unavailable(format!("bad configuration: {e}")),
        };
        match credentials {
            Credentials::UsernamePassword(up) => {
                verify(&config, &up.username, up.authzid.as_deref(), &up.password)
            }
            Credentials::ChallengeResponse(cr) => verify_response(
                &config,
                &cr.username,
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
        match Config::parse(&portcullis_sdk::host::config()) {
            Ok(config) => scram_keys(&config, &username, algorithm),
            Err(e) => SecretAnswer::Unavailable(format!("bad configuration: {e}")),
        }
    }
}

portcullis_sdk::export_checker!(Memory);

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

    /// (user, authzid, method, challenge, response, expected verdict)
    type ResponseCase<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a [u8],
        &'a [u8],
        &'a str,
    );

    fn with_tim() -> Config {
        let mut config = config(true);
        config.users.insert("tim".into(), "tanstaaftanstaaf".into());
        config
    }

    #[test]
    fn cram_md5_rfc_2195() {
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            cram_md5_digest("tanstaaftanstaaf", challenge),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        let good = b"b913a602c7eda7a495b4e6e7334d3890";
        let cases: [ResponseCase; 8] = [
            ("tim", None, "hmac-md5", challenge, good, "ok tim"),
            ("TIM", Some("tim"), "hmac-md5", challenge, good, "ok tim"),
            (
                "tim",
                Some("guest"),
                "hmac-md5",
                challenge,
                good,
                "denied NotAuthorized",
            ),
            (
                "tim",
                None,
                "hmac-md5",
                b"<1897.697170952@postoffice.reston.mci.net>",
                good,
                "denied BadCredentials",
            ),
            (
                "tim",
                None,
                "hmac-md5",
                challenge,
                b"B913A602C7EDA7A495B4E6E7334D3890",
                "denied BadCredentials",
            ),
            (
                "tim",
                None,
                "hmac-md5",
                challenge,
                b"",
                "denied BadCredentials",
            ),
            (
                "tom",
                None,
                "hmac-md5",
                challenge,
                good,
                "denied UnknownUser",
            ),
            (
                "tim",
                None,
                "hmac-sha1",
                challenge,
                good,
                "denied Unsupported",
            ),
        ];
        for (user, authzid, method, challenge, response, want) in cases {
            assert_eq!(
                show(verify_response(
                    &with_tim(),
                    user,
                    authzid,
                    method,
                    challenge,
                    response
                )),
                want,
                "{user}/{authzid:?}/{method}"
            );
        }
    }

    #[test]
    fn scram_lookups() {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256] {
            let SecretAnswer::Found(entry) = scram_keys(&with_tim(), "TIM", algorithm) else {
                panic!("tim has keys");
            };
            assert_eq!(entry.avatar_id, "tim");
            let StoredSecret::Scram(keys) = entry.secret;
            assert_eq!(keys.salt, derived_salt("TIM"));
            assert_eq!(keys.iterations, 4096);
            // What a client computes from the password and the salt.
            let salted = algorithm.salted_password(b"tanstaaftanstaaf", &keys.salt, 4096);
            let client_key = algorithm.hmac(&salted, &[b"Client Key"]);
            assert_eq!(keys.stored_key, algorithm.hash(&client_key));
            assert_eq!(keys.server_key, algorithm.hmac(&salted, &[b"Server Key"]));
            assert!(matches!(
                scram_keys(&with_tim(), "tom", algorithm),
                SecretAnswer::Denied(Denial::UnknownUser)
            ));
        }
        assert!(matches!(
            scram_keys(&config(false), "bob", Algorithm::Sha256),
            SecretAnswer::Denied(Denial::UnknownUser)
        ));
    }
}
