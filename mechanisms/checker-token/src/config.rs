//! The checker's configuration, parsed and checked into [`Settings`]. See
//! the crate documentation for the fields.

use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;

use crate::jwt;

/// The smallest RS256 key accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The shortest HS256 secret accepted, in bytes.
const MIN_SECRET: usize = 32;

// No `Debug`: the configuration holds a secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    tokens: Option<String>,
    jwt: Option<JwtConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct JwtConfig {
    hs256_secret: Option<String>,
    rs256_public_key_pem: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    user_claim: Option<String>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    60
}

/// The configuration, checked and ready to use.
pub struct Settings {
    pub tokens: Option<String>,
    pub jwt: Option<jwt::Validator>,
}

impl Settings {
    /// Parses and checks the JSON the host hands over. Error texts never
    /// quote the secret.
    pub fn parse(json: &str) -> Result<Settings, String> {
        let config: Config = serde_json::from_str(json).map_err(|e| redact(&e.to_string()))?;
        if config.tokens.is_none() && config.jwt.is_none() {
            return Err("give a token file (\"tokens\"), a \"jwt\" section, or both".into());
        }
        let jwt = config.jwt.map(JwtConfig::validator).transpose()?;
        Ok(Settings {
            tokens: config.tokens,
            jwt,
        })
    }
}

impl JwtConfig {
    fn validator(self) -> Result<jwt::Validator, String> {
        if self.hs256_secret.is_none() && self.rs256_public_key_pem.is_none() {
            return Err("jwt needs \"hs256-secret\" or \"rs256-public-key-pem\"".into());
        }
        let hs256 = match self.hs256_secret {
            Some(s) if s.len() < MIN_SECRET => {
                return Err(format!(
                    "jwt: hs256-secret must be at least {MIN_SECRET} bytes"
                ));
            }
            other => other.map(String::into_bytes),
        };
        let rs256 = match self.rs256_public_key_pem {
            None => None,
            Some(pem) => {
                let key = RsaPublicKey::from_public_key_pem(&pem).map_err(|e| {
                    format!("jwt: rs256-public-key-pem is not an SPKI PEM RSA public key: {e}")
                })?;
                let bits = key.n().bits();
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "jwt: the RS256 key has {bits} bits; at least {MIN_RSA_BITS} are needed"
                    ));
                }
                Some(key)
            }
        };
        let user_claims = match self.user_claim {
            Some(claim) if claim.is_empty() => return Err("jwt: user-claim is empty".into()),
            Some(claim) => vec![claim],
            None => vec!["email".into(), "sub".into()],
        };
        Ok(jwt::Validator {
            hs256,
            rs256,
            issuer: self.issuer,
            audience: self.audience,
            user_claims,
            leeway: self.leeway_seconds,
        })
    }
}

/// Replaces the quoted value in serde's `string "…"` (how it shows an
/// unexpected string) with `string "<redacted>"`, since it could be the
/// secret. (checker-memory's approach.)
fn redact(message: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at + MARK.len()]);
        out.push_str("<redacted>\"");
        rest = &rest[at + MARK.len()..];
        // The value is Debug-escaped: skip to the first unescaped quote.
        let mut escaped = false;
        let end = rest.char_indices().find(|&(_, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes
        });
        rest = end.map_or("", |(i, _)| &rest[i + 1..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::jwt::tests::{PUBLIC_PEM, SECRET};

    fn settings(json: &Value) -> Settings {
        Settings::parse(&json.to_string()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn configs() {
        let secret = std::str::from_utf8(SECRET).unwrap();
        let s = settings(&json!({"jwt": {"rs256-public-key-pem": PUBLIC_PEM}}));
        let v = s.jwt.unwrap();
        assert!(v.hs256.is_none() && v.rs256.is_some());
        assert_eq!(v.user_claims, ["email", "sub"]);
        assert_eq!(v.leeway, 60);
        let v = settings(
            &json!({"jwt": {"hs256-secret": secret, "issuer": "i", "audience": "a",
                                         "user-claim": "upn", "leeway-seconds": 5}}),
        )
        .jwt
        .unwrap();
        assert_eq!(
            (
                v.issuer.as_deref(),
                v.audience.as_deref(),
                v.user_claims,
                v.leeway
            ),
            (Some("i"), Some("a"), vec!["upn".to_owned()], 5)
        );
        let weak = include_str!("../testdata/weak-1024-public.pem");
        let cases = [
            (json!({}), "give a token file"),
            (json!({"jwt": {}}), "jwt needs"),
            (
                json!({"jwt": {"hs256-secret": "short"}}),
                "at least 32 bytes",
            ),
            (
                json!({"jwt": {"rs256-public-key-pem": "nope"}}),
                "not an SPKI PEM",
            ),
            (json!({"jwt": {"rs256-public-key-pem": weak}}), "1024 bits"),
            (
                json!({"jwt": {"hs256-secret": secret, "user-claim": ""}}),
                "user-claim is empty",
            ),
            (
                json!({"jwt": {"hs256-secret": secret, "alg": "none"}}),
                "unknown field",
            ),
            (json!({"tokens": "/t", "bogus": 1}), "unknown field"),
            (
                json!({"jwt": {"hs256-secret": secret, "leeway-seconds": secret}}),
                "<redacted>",
            ),
            (
                json!({"jwt": {"hs256-secret": secret, "leeway-seconds": -1}}),
                "invalid value",
            ),
        ];
        for (json, says) in cases {
            let e = Settings::parse(&json.to_string()).err().unwrap();
            assert!(e.contains(says), "{json}: {e}");
            assert!(!e.contains(secret), "{e}");
        }
    }
}
