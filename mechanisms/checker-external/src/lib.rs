//! Identities from verified TLS client certificates, as a portcullis
//! checker plugin; what `--auth external[:ID:ID...]` loads. The host has
//! already verified the certificate against the operator's CA
//! (`--tls-client-ca`); this checker decides which identities may log in
//! and under which avatar id.
//!
//! Configuration (JSON): `{"allow": ["alice", "bob@example.com"]}`; without
//! `allow` every verified identity is accepted. The avatar id is the
//! identity. An authzid other than the identity itself is refused.

use portcullis_sdk::checker::{Checker, Verdict};
use portcullis_sdk::types::{CredentialKind, Credentials, Denial};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    allow: Option<Vec<String>>,
}

fn decide(config: &Config, identity: &str, authzid: Option<&str>) -> Verdict {
    if let Some(allow) = &config.allow
        && !allow.iter().any(|a| a == identity)
    {
        return Verdict::Denied(Denial::UnknownUser);
    }
    match authzid {
        Some(z) if z != identity => Verdict::Denied(Denial::NotAuthorized),
        _ => Verdict::Accepted(identity.to_owned()),
    }
}

struct ExternalChecker;

impl Checker for ExternalChecker {
    fn kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::External]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::External(external) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        match serde_json::from_str::<Config>(&portcullis_sdk::host::config()) {
            Ok(config) => decide(&config, &external.identity, external.authzid.as_deref()),
            Err(e) => Verdict::Unavailable(format!("bad configuration: {e}")),
        }
    }
}

portcullis_sdk::export_checker!(ExternalChecker);

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: Verdict) -> String {
        match v {
            Verdict::Accepted(id) => format!("ok {id}"),
            Verdict::Denied(d) => format!("denied {d:?}"),
            Verdict::Unavailable(t) => format!("unavailable {t}"),
        }
    }

    #[test]
    fn decisions() {
        let any = Config::default();
        let some = Config {
            allow: Some(vec!["alice".into()]),
        };
        assert_eq!(show(decide(&any, "carol", None)), "ok carol");
        assert_eq!(show(decide(&some, "alice", None)), "ok alice");
        assert_eq!(show(decide(&some, "alice", Some("alice"))), "ok alice");
        assert_eq!(
            show(decide(&some, "carol", None)),
            "denied Denial::UnknownUser"
        );
        assert_eq!(
            show(decide(&any, "alice", Some("root"))),
            "denied Denial::NotAuthorized"
        );
    }
}
