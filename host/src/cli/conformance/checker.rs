//! The checker rules: stable kinds, unknown users and undeclared kinds
//! denied, no secret for an unknown user, hostile credentials denied, and
//! (given a test user) the wrong password denied and the right accepted.

use std::sync::Arc;

use super::{Outcome, RuleResult, TestArgs, fail, faulted, pass, rule};
use crate::plugin::Plugin;
use crate::portal::{CredentialKind, Credentials, Denial};

/// A user name no checker knows.
const UNKNOWN_USER: &str = "conformance-no-such-user-7f3a";

pub(super) async fn checker_rules(plugin: &Arc<Plugin>, args: &TestArgs) -> Vec<RuleResult> {
    let mut out = Vec::new();
    let kinds = match plugin.credential_kinds().await {
        Ok(kinds) if kinds.is_empty() => {
            out.push(rule("kinds", fail("declares no credential kinds")));
            return out;
        }
        Ok(kinds) => {
            let names: Vec<_> = kinds.iter().map(|k| k.as_str()).collect();
            out.push(rule("kinds", pass(names.join(", "))));
            kinds
        }
        Err(f) => {
            out.push(rule("kinds", faulted("credential-kinds()", &f)));
            return out;
        }
    };
    out.push(rule(
        "kinds-stable",
        match plugin.credential_kinds().await {
            Ok(again) if again == kinds => pass("the same answer twice"),
            Ok(_) => fail("credential-kinds() changed between calls"),
            Err(f) => faulted("credential-kinds()", &f),
        },
    ));

    // Unknown users, for the kinds that name one.
    let unknown: Vec<Credentials> = kinds
        .iter()
        .filter_map(|kind| unknown_user(*kind))
        .collect();
    out.push(rule(
        "unknown-user",
        if unknown.is_empty() {
            Outcome::Skip("no declared kind names a user".into())
        } else {
            must_deny(plugin, &unknown, None).await
        },
    ));

    let undeclared = [
        CredentialKind::UsernamePassword,
        CredentialKind::BearerToken,
        CredentialKind::Anonymous,
    ]
    .into_iter()
    .find(|k| !kinds.contains(k))
    .and_then(unknown_user_or_anonymous);
    out.push(rule(
        "undeclared-kind",
        match undeclared {
            None => Outcome::Skip("declares every kind this rule tries".into()),
            Some(c) => must_deny(plugin, &[c], Some(Denial::Unsupported)).await,
        },
    ));

    out.push(rule("lookup-secret", lookup_rule(plugin, &kinds).await));
    out.push(rule(
        "garbage-credentials",
        garbage_rule(plugin, &kinds).await,
    ));

    let password_kind = kinds.contains(&CredentialKind::UsernamePassword);
    match (&args.user, &args.password) {
        (Some(user), Some(password)) if password_kind => {
            let with = |password: String| Credentials::UsernamePassword {
                authzid: None,
                username: user.clone(),
                password,
            };
            out.push(rule(
                "wrong-password",
                must_deny(
                    plugin,
                    &[with(format!("{password}-wrong")), with(String::new())],
                    None,
                )
                .await,
            ));
            out.push(rule(
                "accepts-user",
                match plugin.check(&with(password.clone())).await {
                    Ok(Ok(id)) => pass(format!("accepted with avatar id {id:?}")),
                    Ok(Err(denial)) => fail(format!("denied: {denial}")),
                    Err(f) => faulted("check", &f),
                },
            ));
        }
        (Some(_), _) => {
            let why = "--user given, but the checker does not verify username-password";
            out.push(rule("wrong-password", Outcome::Skip(why.into())));
            out.push(rule("accepts-user", Outcome::Skip(why.into())));
        }
        _ => {
            let why = "give --user NAME --password PASSWORD of a user it should accept";
            out.push(rule("wrong-password", Outcome::Skip(why.into())));
            out.push(rule("accepts-user", Outcome::Skip(why.into())));
        }
    }
    out
}

fn unknown_user(kind: CredentialKind) -> Option<Credentials> {
    Some(match kind {
        CredentialKind::UsernamePassword => Credentials::UsernamePassword {
            authzid: None,
            username: UNKNOWN_USER.into(),
            password: "conformance-password".into(),
        },
        CredentialKind::ChallengeResponse => Credentials::ChallengeResponse {
            authzid: None,
            username: UNKNOWN_USER.into(),
            method: "hmac-md5".into(),
            challenge: b"<1.1@conformance.invalid>".to_vec(),
            response: b"0123456789abcdef0123456789abcdef".to_vec(),
        },
        CredentialKind::BearerToken => Credentials::BearerToken {
            authzid: None,
            username: Some(UNKNOWN_USER.into()),
            token: "conformance-not-a-token".into(),
        },
        _ => return None,
    })
}

fn unknown_user_or_anonymous(kind: CredentialKind) -> Option<Credentials> {
    match kind {
        CredentialKind::Anonymous => Some(Credentials::Anonymous {
            trace: "conformance".into(),
        }),
        other => unknown_user(other),
    }
}

/// Every credential must be denied (with `want`, when given).
async fn must_deny(plugin: &Arc<Plugin>, all: &[Credentials], want: Option<Denial>) -> Outcome {
    let mut seen = Vec::new();
    for credentials in all {
        let kind = credentials.kind();
        match plugin.check(credentials).await {
            Ok(Ok(id)) => return fail(format!("{kind}: accepted, as {id:?}")),
            Ok(Err(denial)) => match &want {
                Some(want) if *want != denial => {
                    return fail(format!("{kind}: denied {denial}, not {want}"));
                }
                _ => seen.push(format!("{kind}: {denial}")),
            },
            Err(f) => {
                return fail(format!(
                    "{kind}: {}: {} (give it its configuration and grants: \
                     FILE:grant=DIR:{{JSON}})",
                    f.kind, f.detail
                ));
            }
        }
    }
    pass(format!("denied ({})", seen.join("; ")))
}

async fn lookup_rule(plugin: &Arc<Plugin>, kinds: &[CredentialKind]) -> Outcome {
    let mut seen = Vec::new();
    for kind in [
        CredentialKind::ScramSha256,
        CredentialKind::ScramSha1,
        CredentialKind::UsernamePassword,
    ] {
        let declared = kinds.contains(&kind);
        match plugin.lookup_secret(UNKNOWN_USER, kind).await {
            Ok(Ok(_)) => return fail(format!("{kind}: found a secret for an unknown user")),
            Ok(Err(denial)) if !declared && denial != Denial::Unsupported => {
                return fail(format!(
                    "{kind} (not declared): denied {denial}, not unsupported"
                ));
            }
            Ok(Err(denial)) => seen.push(format!("{kind}: {denial}")),
            Err(f) => return faulted(&format!("lookup-secret {kind}"), &f),
        }
    }
    pass(format!("unknown user not found ({})", seen.join("; ")))
}

async fn garbage_rule(plugin: &Arc<Plugin>, kinds: &[CredentialKind]) -> Outcome {
    // As long as a field can get through the protocols (a 16 KiB echo
    // line, a 12288-octet base64 SASL line): longer is not hostile but
    // impossible, and a checker may spend time in proportion to it
    // (sha512-crypt does).
    let long = "\u{202e}\0\r\n".repeat(2 << 10);
    let all = vec![
        Credentials::UsernamePassword {
            authzid: Some(long.clone()),
            username: long.clone(),
            password: long.clone(),
        },
        Credentials::UsernamePassword {
            authzid: Some(String::new()),
            username: "\0".into(),
            password: String::new(),
        },
        Credentials::ChallengeResponse {
            authzid: None,
            username: long.clone(),
            method: "\0".into(),
            challenge: Vec::new(),
            response: vec![0xff; 12 << 10],
        },
        Credentials::BearerToken {
            authzid: None,
            username: None,
            token: long.clone(),
        },
    ];
    // Anonymous and external credentials are left out: the first claim
    // nobody, and the host vouches for the second's identity (it must be
    // what the TLS layer verified) before any checker sees it.
    let declared = all.iter().filter(|c| kinds.contains(&c.kind())).count();
    match must_deny(plugin, &all, None).await {
        Outcome::Pass(_) => pass(format!(
            "{} hostile credentials denied ({declared} of declared kinds)",
            all.len()
        )),
        other => other,
    }
}
