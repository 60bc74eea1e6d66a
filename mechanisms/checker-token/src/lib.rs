//! Bearer tokens (for XOAUTH2 and OAUTHBEARER) as a portcullis checker
//! plugin; what `--auth token` loads. Tokens come from a static file, or
//! are JSON Web Tokens signed with HS256 or RS256.
//!
//! Configuration (JSON; at least one of `tokens` and `jwt`):
//!
//! ```json
//! {"tokens": "/grant/tokens.txt",
//!  "jwt": {"hs256-secret": "at least 32 bytes of shared secret....",
//!          "rs256-public-key-pem": "-----BEGIN PUBLIC KEY-----\n...",
//!          "issuer": "https://issuer.example", "audience": "portcullis",
//!          "user-claim": "sub", "leeway-seconds": 60}}
//! ```
//!
//! - `tokens`: the guest path of a static token file (the host grants its
//!   folder read-only), read on every call; format in [`tokens`].
//! - `jwt.hs256-secret`: the HS256 shared secret, its UTF-8 bytes; at least
//!   32 bytes (RFC 7518 §3.2).
//! - `jwt.rs256-public-key-pem`: the RS256 public key, SPKI PEM
//!   (`BEGIN PUBLIC KEY`), at least 2048 bits. At least one key is needed;
//!   a token's `alg` must name a configured one, so `none` and algorithm
//!   confusion are refused.
//! - `jwt.issuer`: when set, `iss` must equal it.
//! - `jwt.audience`: when set, `aud` (a string or an array) must be or
//!   contain it. When unset, tokens carrying `aud` are refused (RFC 7519
//!   §4.1.3): set it.
//! - `jwt.user-claim`: the claim naming the user; default `email`, then
//!   `sub`.
//! - `jwt.leeway-seconds`: clock difference tolerated for `exp` (required)
//!   and `nbf` (optional); default 60.
//!
//! A token of JWT shape (`H.P.S`) is verified as a JWT when `jwt` is
//! configured; any other token is looked up in the static file. Accepted
//! tokens give the user as avatar id. When the credentials carry a user
//! (XOAUTH2 `user=`, OAUTHBEARER `a=`) or an authzid, each must name the
//! token's user, ASCII case-insensitively when it is an email address
//! (contains `@`), exactly otherwise, else the answer is `not-authorized`.
//! Refused tokens are `bad-credentials`, the reason logged (never the
//! token); an unreadable or malformed token file and a bad configuration
//! are `unavailable`.

mod config;
pub mod jwt;
pub mod tokens;

use std::time::{SystemTime, UNIX_EPOCH};

use config::Settings;
use portcullis_sdk::checker::{Checker, Verdict};
use portcullis_sdk::types::{CredentialKind, Credentials, Denial, LogLevel};

/// Whether a name the client gave names the token's user.
fn same_user(token_user: &str, given: &str) -> bool {
    if token_user.contains('@') {
        token_user.eq_ignore_ascii_case(given)
    } else {
        token_user == given
    }
}

/// The decision for one token at `now` (seconds since 1970-01-01).
/// `read` reads the token file; `log` takes lines for the host's log.
fn verify(
    settings: &Settings,
    now: u64,
    token: &str,
    username: Option<&str>,
    authzid: Option<&str>,
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    log: &mut dyn FnMut(String),
) -> Verdict {
    let user = match (&settings.jwt, &settings.tokens) {
        (Some(validator), _) if jwt::looks_like_jwt(token) => match validator.verify(token, now) {
            Ok(user) => user,
            Err(refusal) => {
                log(format!("JWT refused: {refusal}"));
                return Verdict::Denied(Denial::BadCredentials);
            }
        },
        (_, Some(path)) => {
            let text = match read(path) {
                Ok(text) => text,
                Err(e) => {
                    return Verdict::Unavailable(format!("cannot read token file {path}: {e}"));
                }
            };
            match tokens::find(&text, token) {
                Ok(Some(user)) => user.to_owned(),
                Ok(None) => {
                    log("token not in the token file".into());
                    return Verdict::Denied(Denial::BadCredentials);
                }
                Err(e) => return Verdict::Unavailable(e),
            }
        }
        (_, None) => {
            log("token is not a JWT and no token file is configured".into());
            return Verdict::Denied(Denial::BadCredentials);
        }
    };
    if [username, authzid]
        .into_iter()
        .flatten()
        .any(|given| !same_user(&user, given))
    {
        return Verdict::Denied(Denial::NotAuthorized);
    }
    Verdict::Accepted(user)
}

struct Token;

impl Checker for Token {
    fn kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::BearerToken]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::BearerToken(bt) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        let settings = match Settings::parse(&portcullis_sdk::host::config()) {
            Ok(s) => s,
            Err(e) => return Verdict::Unavailable(format!("bad configuration: {e}")),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        verify(
            &settings,
            now,
            &bt.token,
            bt.username.as_deref(),
            bt.authzid.as_deref(),
            &mut |path| std::fs::read_to_string(path),
            &mut |line| portcullis_sdk::host::log(LogLevel::Info, &line),
        )
    }
}

portcullis_sdk::export_checker!(Token);

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::jwt::tests::{SECRET, hs256};

    const NOW: u64 = 1_800_000_000;
    const TOKEN_FILE: &str = "alice@example.com:static-alice\nbob:static-bob\n";

    fn settings(json: &Value) -> Settings {
        Settings::parse(&json.to_string()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn show(v: Verdict) -> String {
        match v {
            Verdict::Accepted(id) => format!("ok {id}"),
            Verdict::Denied(d) => format!("denied {d:?}").replace("Denial::", ""),
            Verdict::Unavailable(w) => format!("unavailable {w}"),
        }
    }

    fn run(
        s: &Settings,
        token: &str,
        username: Option<&str>,
        authzid: Option<&str>,
    ) -> (String, Vec<String>) {
        let mut logs = Vec::new();
        let verdict = verify(
            s,
            NOW,
            token,
            username,
            authzid,
            &mut |path| match path {
                "/grant/tokens.txt" => Ok(TOKEN_FILE.to_owned()),
                "/grant/bad.txt" => Ok("x:sha256:nothex\n".to_owned()),
                _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            },
            &mut |line| logs.push(line),
        );
        (show(verdict), logs)
    }

    /// (what, settings, token, user, authzid, expected verdict)
    type Case<'a> = (
        &'a str,
        &'a Settings,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );

    #[test]
    fn decisions() {
        let secret = std::str::from_utf8(SECRET).unwrap();
        let both = settings(&json!({
            "tokens": "/grant/tokens.txt",
            "jwt": {"hs256-secret": secret, "audience": "portcullis"},
        }));
        let jwt_only = settings(&json!({"jwt": {"hs256-secret": secret, "user-claim": "sub"}}));
        let file_only = settings(&json!({"tokens": "/grant/tokens.txt"}));
        let missing = settings(&json!({"tokens": "/grant/missing.txt"}));
        let bad = settings(&json!({"tokens": "/grant/bad.txt"}));
        let carol =
            hs256(&json!({"email": "Carol@Example.com", "aud": "portcullis", "exp": NOW + 60}));
        let expired =
            hs256(&json!({"email": "carol@example.com", "aud": "portcullis", "exp": NOW - 3600}));
        let by_sub = hs256(&json!({"sub": "dave", "exp": NOW + 60}));
        let cases: Vec<Case> = vec![
            ("static", &both, "static-bob", None, None, "ok bob"),
            (
                "static, user",
                &both,
                "static-bob",
                Some("bob"),
                None,
                "ok bob",
            ),
            (
                "static, user case",
                &both,
                "static-bob",
                Some("Bob"),
                None,
                "denied NotAuthorized",
            ),
            (
                "static, other user",
                &both,
                "static-bob",
                Some("alice@example.com"),
                None,
                "denied NotAuthorized",
            ),
            (
                "static email, user case",
                &both,
                "static-alice",
                Some("ALICE@example.COM"),
                None,
                "ok alice@example.com",
            ),
            (
                "static, authzid",
                &both,
                "static-bob",
                None,
                Some("bob"),
                "ok bob",
            ),
            (
                "static, other authzid",
                &both,
                "static-bob",
                Some("bob"),
                Some("root"),
                "denied NotAuthorized",
            ),
            (
                "static, unknown",
                &both,
                "static-nobody",
                None,
                None,
                "denied BadCredentials",
            ),
            (
                "static, file only",
                &file_only,
                "static-alice",
                None,
                None,
                "ok alice@example.com",
            ),
            ("jwt", &both, &carol, None, None, "ok Carol@Example.com"),
            (
                "jwt, user case",
                &both,
                &carol,
                Some("carol@example.com"),
                None,
                "ok Carol@Example.com",
            ),
            (
                "jwt, other user",
                &both,
                &carol,
                Some("mallory@example.com"),
                None,
                "denied NotAuthorized",
            ),
            (
                "jwt, other authzid",
                &both,
                &carol,
                None,
                Some("bob"),
                "denied NotAuthorized",
            ),
            (
                "jwt expired",
                &both,
                &expired,
                None,
                None,
                "denied BadCredentials",
            ),
            (
                "jwt by sub",
                &jwt_only,
                &by_sub,
                Some("dave"),
                None,
                "ok dave",
            ),
            (
                "jwt by sub, user case",
                &jwt_only,
                &by_sub,
                Some("Dave"),
                None,
                "denied NotAuthorized",
            ),
            (
                "opaque token, jwt only",
                &jwt_only,
                "static-bob",
                None,
                None,
                "denied BadCredentials",
            ),
            (
                "jwt shape, file only",
                &file_only,
                &carol,
                None,
                None,
                "denied BadCredentials",
            ),
            (
                "missing file",
                &missing,
                "x",
                None,
                None,
                "unavailable cannot read token file /grant/missing.txt: entity not found",
            ),
            (
                "malformed file",
                &bad,
                "x",
                None,
                None,
                "unavailable token file line 1: sha256: needs 64 hex digits",
            ),
        ];
        for (name, s, token, user, authzid, want) in cases {
            let (got, logs) = run(s, token, user, authzid);
            assert_eq!(got, want, "{name}");
            for line in logs {
                assert!(!line.contains(token), "{name}: {line}");
            }
        }
    }

    #[test]
    fn refusals_are_logged() {
        let s = settings(&json!({"jwt": {"hs256-secret": std::str::from_utf8(SECRET).unwrap()}}));
        let expired = hs256(&json!({"sub": "x", "exp": 1}));
        assert_eq!(
            run(&s, &expired, None, None),
            (
                "denied BadCredentials".into(),
                vec!["JWT refused: token expired".into()]
            )
        );
    }
}
