//! The bearer-token checker through the host's plugin API (a static token
//! file in a grant, and HS256 JWTs), and `--auth token` on the command
//! line.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use portcullis::plugin::{Grant, PluginSpec, Runtime, RuntimeConfig, WasmChecker};
use portcullis::portal::{Credentials, Denial, FaultKind, Portal, Verdict};
use serde_json::{Value, json};

const SECRET: &str = "integration-test-secret-32-bytes";

// Made with Python's hmac over SECRET: iss https://issuer.example, aud
// portcullis, email carol@example.com, exp 2100-01-01 (GOOD), 2001-09-09
// (EXPIRED); NONE is the same claims with alg none and no signature.
const GOOD: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjoicG9ydGN1bGxpcyIsImVtYWlsIjoiY2Fyb2xAZXhhbXBsZS5jb20iLCJleHAiOjQxMDI0NDQ4MDB9.uXM8XIHoRRbmySVL7GLaATaFJ9LgYTNVNRb046syEus";
const EXPIRED: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjoicG9ydGN1bGxpcyIsImVtYWlsIjoiY2Fyb2xAZXhhbXBsZS5jb20iLCJleHAiOjEwMDAwMDAwMDB9.rLuAOik3RfgTP2UUE0W3PwBOuyf9D1DRPSzM0MnGbBU";
const NONE: &str = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjoicG9ydGN1bGxpcyIsImVtYWlsIjoiY2Fyb2xAZXhhbXBsZS5jb20iLCJleHAiOjQxMDI0NDQ4MDB9.";

fn token_file() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokens.txt"),
        // sha256("hashed-secret-token")
        "# static tokens\nalice@example.com:opaque-alice\n\
         bob:sha256:c36ddc69f325f235fc27840724d3f7caaa414a4d2f8cca83fdaee6522de1eb3b\n",
    )
    .unwrap();
    dir
}

async fn portal(grant: Option<&Path>, config: Value) -> Portal {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let mut spec = PluginSpec::from_file(&common::guest_wasm("checker-token")).unwrap();
    if let Some(dir) = grant {
        spec.grants.push(Grant {
            host_path: dir.to_path_buf(),
            guest_path: "/grant".into(),
            writable: false,
        });
    }
    spec.config = config.to_string();
    let mut portal = Portal::default();
    portal
        .register_checker(Arc::new(WasmChecker(runtime.load(spec).await.unwrap())))
        .await
        .unwrap();
    portal
}

async fn check(portal: &Portal, user: Option<&str>, token: &str) -> Verdict<Option<String>> {
    portal
        .check(&Credentials::BearerToken {
            authzid: None,
            username: user.map(str::to_owned),
            token: token.into(),
        })
        .await
}

#[tokio::test]
async fn static_tokens_and_jwts() {
    let dir = token_file();
    let portal = portal(
        Some(dir.path()),
        json!({
            "tokens": "/grant/tokens.txt",
            "jwt": {"hs256-secret": SECRET, "issuer": "https://issuer.example",
                    "audience": "portcullis"},
        }),
    )
    .await;
    let ok = |u: &str| Ok(Some(u.to_owned()));
    let cases = [
        (None, "opaque-alice", ok("alice@example.com")),
        (
            Some("Alice@Example.com"),
            "opaque-alice",
            ok("alice@example.com"),
        ),
        (Some("bob"), "opaque-alice", Err(Denial::NotAuthorized)),
        (None, "opaque-nobody", Err(Denial::BadCredentials)),
        (Some("bob"), "hashed-secret-token", ok("bob")),
        (
            Some("Bob"),
            "hashed-secret-token",
            Err(Denial::NotAuthorized),
        ),
        (None, GOOD, ok("carol@example.com")),
        (Some("carol@example.com"), GOOD, ok("carol@example.com")),
        (Some("alice@example.com"), GOOD, Err(Denial::NotAuthorized)),
        (None, EXPIRED, Err(Denial::BadCredentials)),
        (None, NONE, Err(Denial::BadCredentials)),
    ];
    for (user, token, want) in cases {
        let got = check(&portal, user, token).await.unwrap();
        assert_eq!(got, want, "{user:?} {}", &token[..12]);
    }
}

#[tokio::test]
async fn the_wrong_secret_or_issuer_is_refused() {
    let portal = portal(
        None,
        json!({"jwt": {"hs256-secret": "another-secret-of-at-least-32-bytes",
                       "audience": "portcullis"}}),
    )
    .await;
    assert_eq!(
        check(&portal, None, GOOD).await.unwrap(),
        Err(Denial::BadCredentials)
    );
    let portal = self::portal(
        None,
        json!({"jwt": {"hs256-secret": SECRET, "issuer": "https://other.example",
                       "audience": "portcullis"}}),
    )
    .await;
    assert_eq!(
        check(&portal, None, GOOD).await.unwrap(),
        Err(Denial::BadCredentials)
    );
}

#[tokio::test]
async fn an_unreadable_token_file_or_bad_configuration_is_unavailable() {
    let portal = portal(None, json!({"tokens": "/grant/tokens.txt"})).await;
    let fault = check(&portal, None, "opaque-alice").await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::Unavailable);
    assert!(
        fault.detail.starts_with("cannot read token file"),
        "{}",
        fault.detail
    );

    let portal = self::portal(None, json!({"jwt": {"hs256-secret": "too short"}})).await;
    let fault = check(&portal, None, GOOD).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::Unavailable);
    assert!(
        fault.detail.contains("at least 32 bytes"),
        "{}",
        fault.detail
    );
    assert!(!fault.detail.contains("too short"), "{}", fault.detail);
}

#[test]
fn auth_token_on_the_command_line() {
    let dir = token_file();
    let path = dir.path().join("tokens.txt");
    // The token checker takes bearer tokens; the echo service's `user pass`
    // lines still go to the memory checker beside it.
    let spec = format!(
        r#"token:tokens={}:{{"jwt":{{"hs256-secret":"{SECRET}"}}}}"#,
        path.display()
    );
    let server = common::Server::start(&["--auth", &spec, "--auth", "memory:guest:pw"]);
    assert_eq!(server.connect().ask("guest pw"), common::LOGIN_OK);

    let err =
        common::Server::try_start(&["--auth", "token:tokens=/nonexistent/tokens.txt"]).unwrap_err();
    assert!(
        err.stderr
            .contains("--auth token:tokens=/nonexistent/tokens.txt: no such file"),
        "{}",
        err.stderr
    );
}
