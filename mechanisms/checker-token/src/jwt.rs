//! Verifying a JSON Web Token (RFC 7519) in compact form, signed with HS256
//! or RS256 (RFC 7518 §3.2, §3.3). Pure: the time is a parameter.
//!
//! The order matters: the header's `alg` must name a configured key (so
//! `none` and algorithm confusion, an RS256 public key used as an HMAC
//! secret, are refused before anything else), then the signature is
//! checked, and only then are the claims read.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use serde_json::{Map, Value};
use sha2::Sha256;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN: usize = 16 << 10;

/// The longest user name a token may carry (the host's avatar id limit).
const MAX_USER: usize = 512;

/// How tokens are verified: the keys and the claims required.
pub struct Validator {
    /// The HS256 shared secret.
    pub hs256: Option<Vec<u8>>,
    /// The RS256 public key.
    pub rs256: Option<RsaPublicKey>,
    /// `iss` must equal this, when set.
    pub issuer: Option<String>,
    /// `aud` must be or contain this, when set. When unset, a token that
    /// carries `aud` is refused (RFC 7519 §4.1.3).
    pub audience: Option<String>,
    /// The claims that name the user, tried in order.
    pub user_claims: Vec<String>,
    /// Seconds of clock difference tolerated for `exp` and `nbf`.
    pub leeway: u64,
}

/// Why a token was refused; for the operator's log, never quoting the
/// token.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooLong,
    Malformed(&'static str),
    /// The `alg` names no configured key (the value, if short and plain).
    Algorithm(String),
    /// The header lists extensions (`crit`) this checker does not know.
    Critical,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    NoUser,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooLong => write!(f, "token longer than {MAX_TOKEN} bytes"),
            Refusal::Malformed(what) => write!(f, "malformed token: {what}"),
            Refusal::Algorithm(alg) => write!(f, "algorithm {alg} is not configured"),
            Refusal::Critical => f.write_str("token has critical header extensions"),
            Refusal::BadSignature => f.write_str("bad signature"),
            Refusal::Expired => f.write_str("token expired"),
            Refusal::NotYetValid => f.write_str("token not valid yet (nbf)"),
            Refusal::WrongIssuer => f.write_str("wrong or missing issuer"),
            Refusal::WrongAudience => f.write_str("wrong, missing or unexpected audience"),
            Refusal::NoUser => f.write_str("no usable user claim"),
        }
    }
}

/// Whether a token has the compact form's shape (`H.P.S`, the signature
/// possibly empty as with `alg: none`), so that it is verified as a JWT.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3 && !parts[0].is_empty() && !parts[1].is_empty()
}

fn decode(part: &str, what: &'static str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed(what))
}

fn object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, Refusal> {
    serde_json::from_slice(bytes).map_err(|_| Refusal::Malformed(what))
}

impl Validator {
    /// The user the token names, if it is good at `now` (seconds since
    /// 1970-01-01).
    pub fn verify(&self, token: &str, now: u64) -> Result<String, Refusal> {
        if token.len() > MAX_TOKEN {
            return Err(Refusal::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed("not three dot-separated parts"));
        };
        let header = object(&decode(header_b64, "header")?, "header")?;
        if header.contains_key("crit") {
            return Err(Refusal::Critical);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(Refusal::Malformed("no alg"))?;
        let signature = decode(signature_b64, "signature")?;
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        match (alg, &self.hs256, &self.rs256) {
            ("HS256", Some(secret), _) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret)
                    .map_err(|_| Refusal::Malformed("hmac key"))?;
                mac.update(signed.as_bytes());
                // `verify_slice` compares in constant time.
                mac.verify_slice(&signature)
                    .map_err(|_| Refusal::BadSignature)?;
            }
            ("RS256", _, Some(key)) => {
                let signature =
                    Signature::try_from(signature.as_slice()).map_err(|_| Refusal::BadSignature)?;
                VerifyingKey::<Sha256>::new(key.clone())
                    .verify(signed.as_bytes(), &signature)
                    .map_err(|_| Refusal::BadSignature)?;
            }
            (other, _, _) => return Err(Refusal::Algorithm(printable(other))),
        }
        let claims = object(&decode(claims_b64, "claims")?, "claims")?;
        self.check_claims(&claims, now)
    }

    /// The time, issuer and audience rules, then the user claim.
    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<String, Refusal> {
        let time = |name: &'static str| -> Result<Option<f64>, Refusal> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|t| t.is_finite())
                    .map(Some)
                    .ok_or(Refusal::Malformed(name)),
            }
        };
        // Precision beyond 2^53 seconds does not matter here.
        #[allow(clippy::cast_precision_loss)]
        let (now, leeway) = (now as f64, self.leeway as f64);
        let exp = time("exp")?.ok_or(Refusal::Malformed("no exp"))?;
        if now >= exp + leeway {
            return Err(Refusal::Expired);
        }
        if let Some(nbf) = time("nbf")?
            && now + leeway < nbf
        {
            return Err(Refusal::NotYetValid);
        }
        if let Some(issuer) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(Refusal::WrongIssuer);
        }
        let aud_ok = match (&self.audience, claims.get("aud")) {
            (None, None) => true,
            (None, Some(_)) | (Some(_), None) => false,
            (Some(want), Some(Value::String(aud))) => aud == want,
            (Some(want), Some(Value::Array(auds))) => {
                auds.iter().any(|a| a.as_str() == Some(want.as_str()))
            }
            (Some(_), Some(_)) => false,
        };
        if !aud_ok {
            return Err(Refusal::WrongAudience);
        }
        self.user_claims
            .iter()
            .filter_map(|name| claims.get(name).and_then(Value::as_str))
            .find(|user| !user.is_empty())
            .filter(|user| user.len() <= MAX_USER && !user.chars().any(char::is_control))
            .map(str::to_owned)
            .ok_or(Refusal::NoUser)
    }
}

/// An `alg` value fit for a log line.
fn printable(alg: &str) -> String {
    if !alg.is_empty() && alg.len() <= 16 && alg.chars().all(|c| c.is_ascii_alphanumeric()) {
        alg.to_owned()
    } else {
        "(unprintable)".to_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rsa::RsaPrivateKey;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::signature::{SignatureEncoding, Signer};
    use serde_json::json;

    use super::*;

    pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    pub const PUBLIC_PEM: &str = include_str!("../testdata/rs256-public.pem");
    const PRIVATE_PEM: &str = include_str!("../testdata/rs256-private.pem");
    const OTHER_PEM: &str = include_str!("../testdata/other-private.pem");
    const NOW: u64 = 1_800_000_000;

    fn b64(data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(data)
    }

    /// `header.claims`, base64url-encoded JSON.
    fn unsigned(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    }

    fn hs256_with(secret: &[u8], header: &Value, claims: &Value) -> String {
        let input = unsigned(header, claims);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    pub fn hs256(claims: &Value) -> String {
        hs256_with(SECRET, &json!({"alg": "HS256", "typ": "JWT"}), claims)
    }

    fn rs256_with(pem: &str, header: &Value, claims: &Value) -> String {
        let key = RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
        let input = unsigned(header, claims);
        let signature = SigningKey::<Sha256>::new(key).sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_vec()))
    }

    fn rs256(claims: &Value) -> String {
        rs256_with(PRIVATE_PEM, &json!({"alg": "RS256", "kid": "k1"}), claims)
    }

    fn validator() -> Validator {
        Validator {
            hs256: Some(SECRET.to_vec()),
            rs256: Some(RsaPublicKey::from_public_key_pem(PUBLIC_PEM).unwrap()),
            issuer: Some("https://issuer.example".into()),
            audience: Some("portcullis".into()),
            user_claims: vec!["email".into(), "sub".into()],
            leeway: 60,
        }
    }

    fn good() -> Value {
        json!({
            "iss": "https://issuer.example",
            "aud": "portcullis",
            "sub": "1234",
            "email": "alice@example.com",
            "exp": NOW + 300,
            "iat": NOW - 10,
        })
    }

    fn with(changes: &[(&str, Value)]) -> Value {
        let mut claims = good();
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(*name);
            } else {
                claims[*name] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn claims() {
        let v = validator();
        let ok = |u: &str| Ok(u.to_owned());
        let cases: Vec<(&str, Value, Result<String, Refusal>)> = vec![
            ("good", good(), ok("alice@example.com")),
            ("no email: sub", with(&[("email", Value::Null)]), ok("1234")),
            (
                "empty email: sub",
                with(&[("email", json!(""))]),
                ok("1234"),
            ),
            (
                "email not a string: sub",
                with(&[("email", json!(5))]),
                ok("1234"),
            ),
            (
                "no user",
                with(&[("email", Value::Null), ("sub", Value::Null)]),
                Err(Refusal::NoUser),
            ),
            (
                "user with a newline",
                with(&[("email", json!("a\nb"))]),
                Err(Refusal::NoUser),
            ),
            (
                "overlong user",
                with(&[("email", json!("a".repeat(513)))]),
                Err(Refusal::NoUser),
            ),
            (
                "expired",
                with(&[("exp", json!(NOW - 61))]),
                Err(Refusal::Expired),
            ),
            (
                "expired exactly at the leeway",
                with(&[("exp", json!(NOW - 60))]),
                Err(Refusal::Expired),
            ),
            (
                "expired within the leeway",
                with(&[("exp", json!(NOW - 59))]),
                ok("alice@example.com"),
            ),
            (
                "fractional exp",
                with(&[("exp", json!(NOW as f64 + 0.5))]),
                ok("alice@example.com"),
            ),
            (
                "no exp",
                with(&[("exp", Value::Null)]),
                Err(Refusal::Malformed("no exp")),
            ),
            (
                "exp as a string",
                with(&[("exp", json!("2030-01-01"))]),
                Err(Refusal::Malformed("exp")),
            ),
            (
                "nbf in the future",
                with(&[("nbf", json!(NOW + 61))]),
                Err(Refusal::NotYetValid),
            ),
            (
                "nbf within the leeway",
                with(&[("nbf", json!(NOW + 60))]),
                ok("alice@example.com"),
            ),
            (
                "nbf not a number",
                with(&[("nbf", json!([1]))]),
                Err(Refusal::Malformed("nbf")),
            ),
            (
                "wrong issuer",
                with(&[("iss", json!("https://evil.example"))]),
                Err(Refusal::WrongIssuer),
            ),
            (
                "no issuer",
                with(&[("iss", Value::Null)]),
                Err(Refusal::WrongIssuer),
            ),
            (
                "wrong audience",
                with(&[("aud", json!("other"))]),
                Err(Refusal::WrongAudience),
            ),
            (
                "audience in a list",
                with(&[("aud", json!(["other", "portcullis"]))]),
                ok("alice@example.com"),
            ),
            (
                "audience not in the list",
                with(&[("aud", json!(["other"]))]),
                Err(Refusal::WrongAudience),
            ),
            (
                "no audience",
                with(&[("aud", Value::Null)]),
                Err(Refusal::WrongAudience),
            ),
            (
                "audience of the wrong type",
                with(&[("aud", json!(7))]),
                Err(Refusal::WrongAudience),
            ),
        ];
        for (name, claims, want) in cases {
            assert_eq!(v.verify(&hs256(&claims), NOW), want, "HS256: {name}");
            assert_eq!(v.verify(&rs256(&claims), NOW), want, "RS256: {name}");
        }
    }

    #[test]
    fn rules_that_are_not_configured() {
        let v = Validator {
            issuer: None,
            audience: None,
            user_claims: vec!["sub".into()],
            ..validator()
        };
        let cases = [
            (
                "any issuer, no audience",
                with(&[("iss", json!("x")), ("aud", Value::Null)]),
                Ok("1234".to_owned()),
            ),
            (
                "an audience nobody asked for",
                good(),
                Err(Refusal::WrongAudience),
            ),
            (
                "only the configured claim names the user",
                with(&[("sub", Value::Null), ("aud", Value::Null)]),
                Err(Refusal::NoUser),
            ),
        ];
        for (name, claims, want) in cases {
            assert_eq!(v.verify(&hs256(&claims), NOW), want, "{name}");
        }
    }

    #[test]
    fn signatures_and_algorithms() {
        let v = validator();
        let claims = good();
        let hs = hs256(&claims);
        let rs = rs256(&claims);
        let none = format!("{}.", unsigned(&json!({"alg": "none"}), &claims));
        // Algorithm confusion: an HMAC keyed with the RSA public key.
        let confused = hs256_with(PUBLIC_PEM.as_bytes(), &json!({"alg": "HS256"}), &claims);
        let wrong_secret = hs256_with(
            b"another secret of 32 bytes......",
            &json!({"alg": "HS256"}),
            &claims,
        );
        let wrong_key = rs256_with(OTHER_PEM, &json!({"alg": "RS256"}), &claims);
        let rs_as_hs = rs256_with(PRIVATE_PEM, &json!({"alg": "HS256"}), &claims);
        let hs_as_rs = hs256_with(SECRET, &json!({"alg": "RS256"}), &claims);
        let (h, c, s) = {
            let mut p = hs.split('.');
            (
                p.next().unwrap(),
                p.next().unwrap(),
                p.next().unwrap().to_owned(),
            )
        };
        let other_claims = b64(with(&[("email", json!("mallory@example.com"))])
            .to_string()
            .as_bytes());
        let swapped = format!("{h}.{other_claims}.{s}");
        let padded = format!("{h}.{c}.{s}=");
        let cases: Vec<(&str, String, Refusal)> = vec![
            ("alg none", none, Refusal::Algorithm("none".into())),
            (
                "alg HS512",
                hs256_with(SECRET, &json!({"alg": "HS512"}), &claims),
                Refusal::Algorithm("HS512".into()),
            ),
            (
                "alg with odd characters",
                hs256_with(SECRET, &json!({"alg": "HS256\n"}), &claims),
                Refusal::Algorithm("(unprintable)".into()),
            ),
            (
                "no alg",
                hs256_with(SECRET, &json!({"typ": "JWT"}), &claims),
                Refusal::Malformed("no alg"),
            ),
            (
                "crit",
                hs256_with(SECRET, &json!({"alg": "HS256", "crit": ["b64"]}), &claims),
                Refusal::Critical,
            ),
            (
                "HMAC keyed by the public key",
                confused,
                Refusal::BadSignature,
            ),
            ("wrong secret", wrong_secret, Refusal::BadSignature),
            ("wrong RSA key", wrong_key, Refusal::BadSignature),
            ("RSA signature, alg HS256", rs_as_hs, Refusal::BadSignature),
            ("HMAC, alg RS256", hs_as_rs, Refusal::BadSignature),
            ("claims swapped", swapped, Refusal::BadSignature),
            ("padded signature", padded, Refusal::Malformed("signature")),
            (
                "two parts",
                format!("{h}.{c}"),
                Refusal::Malformed("not three dot-separated parts"),
            ),
            (
                "four parts",
                format!("{hs}.x"),
                Refusal::Malformed("not three dot-separated parts"),
            ),
            (
                "header not base64",
                format!("!.{c}.{s}"),
                Refusal::Malformed("header"),
            ),
            (
                "header not JSON",
                format!("{}.{c}.{s}", b64(b"alg")),
                Refusal::Malformed("header"),
            ),
            (
                "too long",
                format!("{hs}{}", "A".repeat(MAX_TOKEN)),
                Refusal::TooLong,
            ),
        ];
        assert_eq!(v.verify(&hs, NOW), Ok("alice@example.com".into()));
        assert_eq!(v.verify(&rs, NOW), Ok("alice@example.com".into()));
        for (name, token, want) in cases {
            assert_eq!(v.verify(&token, NOW), Err(want), "{name}");
        }
    }

    #[test]
    fn only_configured_keys_are_used() {
        let claims = good();
        let hs_only = Validator {
            rs256: None,
            ..validator()
        };
        assert_eq!(
            hs_only.verify(&rs256(&claims), NOW),
            Err(Refusal::Algorithm("RS256".into()))
        );
        let rs_only = Validator {
            hs256: None,
            ..validator()
        };
        assert_eq!(
            rs_only.verify(&hs256(&claims), NOW),
            Err(Refusal::Algorithm("HS256".into()))
        );
        // With only the RSA key, an HMAC made with the public key as its
        // secret is not even tried.
        let confused = hs256_with(PUBLIC_PEM.as_bytes(), &json!({"alg": "HS256"}), &claims);
        assert_eq!(
            rs_only.verify(&confused, NOW),
            Err(Refusal::Algorithm("HS256".into()))
        );
        assert!(rs_only.verify(&rs256(&claims), NOW).is_ok());
    }

    #[test]
    fn jwt_shapes() {
        for (token, want) in [
            ("a.b.c", true),
            ("a.b.", true),
            ("a.b", false),
            ("a.b.c.d", false),
            (".b.c", false),
            ("a..c", false),
            ("opaque-token", false),
            ("", false),
        ] {
            assert_eq!(looks_like_jwt(token), want, "{token}");
        }
    }

    #[test]
    fn refusals_never_quote_the_token() {
        let token = hs256(&with(&[("exp", json!(1))]));
        let text = validator().verify(&token, NOW).unwrap_err().to_string();
        assert_eq!(text, "token expired");
        assert!(!text.contains(&token[..10]));
    }
}
