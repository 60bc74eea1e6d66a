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
//!   derived from the password (after SASLprep) with 4096 iterations and a
//!   salt computed from the user name as the client sent it
//!   (`scram_core::derived_salt`). The host derives them once, when it
//!   configures the checker (`"scram": {USER: {"sha256": {"stored-key":
//!   HEX, "server-key": HEX}, ...}}`), and a lookup only reads them; a
//!   configuration without them has every lookup derive them. A random salt would have to be
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

/// The keys the host derived for `name` (spelled as the client spelled
/// it, since the salt depends on the spelling), if it did.
fn derived_keys(config: &Config, name: &str, username: &str, algorithm: Algorithm) -> Option<Keys> {
    if name != username {
        return None;
    }
    let entry = config.scram.get(name)?;
    let pair = match algorithm {
        Algorithm::Sha1 => entry.sha1.as_ref(),
        Algorithm::Sha256 => entry.sha256.as_ref(),
    }?;
    let keys = Keys {
        salt: derived_salt(name).to_vec(),
        iterations: DEFAULT_ITERATIONS,
        stored_key: hex(&pair.stored_key)?,
        server_key: hex(&pair.server_key)?,
    };
    keys.fit(algorithm).then_some(keys)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The SCRAM keys for `username`: the host's, or derived from the
/// password.
fn scram_keys(config: &Config, username: &str, algorithm: Algorithm) -> SecretAnswer {
    let found = config.find(username);
    let derived = found.and_then(|(name, _)| derived_keys(config, name, username, algorithm));
    let keys = match derived {
        Some(keys) => keys,
        // With the host's keys, an unknown user costs what a known one
        // does (nothing); without, both cost one derivation.
        None if found.is_none() && !config.scram.is_empty() => {
            return SecretAnswer::Denied(Denial::UnknownUser);
        }
        None => Keys::derive(
            algorithm,
            found.map_or(DUMMY, |(_, p)| p),
            &derived_salt(username),
            DEFAULT_ITERATIONS,
        ),
    };
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
            scram: Default::default(),
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

    #[test]
    fn scram_lookups_read_the_hosts_keys() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        // Keys the host would derive; marked so the test sees they are
        // read, not derived again.
        let mut stored = vec![7u8; 32];
        stored[0] = 1;
        let json = format!(
            r#"{{"users": {{"guest": "password"}},
                "scram": {{"guest": {{"sha256": {{"stored-key": "{}", "server-key": "{}"}}}}}}}}"#,
            hex(&stored),
            hex(&[9u8; 32])
        );
        let config = Config::parse(&json).unwrap();
        let SecretAnswer::Found(entry) = scram_keys(&config, "guest", Algorithm::Sha256) else {
            panic!("guest has keys");
        };
        let StoredSecret::Scram(keys) = entry.secret;
        assert_eq!(keys.stored_key, stored);
        assert_eq!(keys.server_key, vec![9u8; 32]);
        assert_eq!(keys.salt, derived_salt("guest"));
        // No SHA-1 keys from the host: derived from the password.
        let SecretAnswer::Found(entry) = scram_keys(&config, "guest", Algorithm::Sha1) else {
            panic!("guest has keys");
        };
        let StoredSecret::Scram(keys) = entry.secret;
        let derived = Keys::derive(Algorithm::Sha1, "password", &derived_salt("guest"), 4096);
        assert_eq!(keys.stored_key, derived.stored_key);
        assert!(matches!(
            scram_keys(&config, "nobody", Algorithm::Sha256),
            SecretAnswer::Denied(Denial::UnknownUser)
        ));
        // Keys of the wrong length are not served.
        let bad = json.replace(&hex(&[9u8; 32]), "abcd");
        let SecretAnswer::Found(entry) =
            scram_keys(&Config::parse(&bad).unwrap(), "guest", Algorithm::Sha256)
        else {
            panic!("guest has keys");
        };
        let StoredSecret::Scram(keys) = entry.secret;
        assert_ne!(keys.server_key, b"\xab\xcd");
        assert_eq!(keys.server_key.len(), 32);
    }
}
