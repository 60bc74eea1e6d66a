//! SASL OAUTHBEARER (RFC 7628) as a portcullis mechanism plugin. No
//! configuration.
//!
//! The client sends `GS2-HEADER ^A host=H ^A port=P ^A auth=Bearer TOKEN ^A
//! ^A` (`^A` is 0x01), as an initial response or after an empty
//! challenge. The mechanism checks the message's grammar ([`parse`]; the
//! GS2 header is SCRAM's, parsed by `scram_core::gs2`) and hands the token
//! to the portal as bearer-token credentials, the header's `a=` user as
//! `username` (RFC 7628 §3.1: it names the user the token is for) and no
//! authzid; a token checker decides, so the host offers OAUTHBEARER only
//! when one is registered. `host` and `port` are accepted and not checked
//! (the checker does not see them); other keys are skipped. Channel
//! binding (`p=`) is refused: OAUTHBEARER defines none.
//!
//! When the portal denies the token, [`Guest::denied`] returns the §3.2.2
//! error `{"status":"invalid_token","schemes":"bearer"}`, sent as a
//! challenge before the failure reply (the client answers `^A`). It names
//! no `scope`: the mechanism does not know the checker's, and an empty one
//! would tell the client that unscoped tokens are required. Flagged
//! plaintext: a bearer token is a password in effect, so hosts offer
//! OAUTHBEARER only over TLS.

use portcullis_sdk::mechanism::{MechanismInfo, OneMessage, OneMessageMechanism, Step};
use portcullis_sdk::types::{BearerToken, CredentialKind, Credentials};
use scram_core::gs2::{self, ChannelBinding};

/// The error challenge sent after a denial (RFC 7628 §3.2.2).
const ERROR_CHALLENGE: &[u8] = br#"{"status":"invalid_token","schemes":"bearer"}"#;

/// A well-formed client response.
#[derive(Debug, PartialEq, Eq)]
struct Message<'a> {
    /// The GS2 header's `a=` user, decoded.
    user: Option<String>,
    token: &'a str,
}

/// RFC 7628 §3.1 `value`: `*(VCHAR / SP / HTAB / CR / LF)`.
fn valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`.
fn valid_token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Parses `gs2-header kvsep *kvpair kvsep`, where `kvpair` is `key=value
/// kvsep`. Errors never quote the message.
fn parse(message: &[u8]) -> Result<Message<'_>, String> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_owned())?;
    let (header, _, rest) = gs2::split(text).map_err(|e| e.to_string())?;
    if let ChannelBinding::Required(_) = header.channel_binding {
        return Err("channel binding requested; OAUTHBEARER has none".into());
    }
    let pairs = rest
        .strip_prefix('\x01')
        .ok_or("no ^A after the GS2 header")?
        .strip_suffix('\x01')
        .ok_or("not terminated by ^A")?;
    let mut auth = None;
    if !pairs.is_empty() {
        let pairs = pairs
            .strip_suffix('\x01')
            .ok_or("not terminated by two ^A")?;
        for pair in pairs.split('\x01') {
            let (key, value) = pair.split_once('=').ok_or("a pair without '='")?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err("a key that is not letters".into());
            }
            if !valid_value(value) {
                return Err("a value with characters not allowed in one".into());
            }
            if key == "auth" && auth.replace(value).is_some() {
                return Err("a repeated auth key".into());
            }
        }
    }
    let auth = auth.ok_or("no auth key")?;
    let token = auth
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or("the auth value is not 'Bearer TOKEN'")?;
    if !valid_token(token) {
        return Err("the token is not a b64token".into());
    }
    Ok(Message {
        user: header.authzid,
        token,
    })
}

fn finish(message: &[u8]) -> Step {
    match parse(message) {
        Ok(m) => Step::success(Credentials::BearerToken(BearerToken {
            authzid: None,
            username: m.user,
            token: m.token.to_owned(),
        })),
        Err(why) => Step::Failure(format!("malformed OAUTHBEARER message: {why}")),
    }
}

struct OauthBearer;

impl OneMessage for OauthBearer {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "OAUTHBEARER".into(),
            plaintext: true,
            credential_kinds: vec![CredentialKind::BearerToken],
        }
    }

    fn finish(message: &[u8]) -> Step {
        finish(message)
    }

    fn denied() -> Option<Vec<u8>> {
        Some(ERROR_CHALLENGE.to_vec())
    }
}

portcullis_sdk::export_mechanism!(OneMessageMechanism<OauthBearer>);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::mechanism::{Call, Exchange};

    /// Drives one exchange through the SDK's call-order rules.
    fn run(calls: &[Call]) -> Vec<String> {
        Exchange::<OneMessageMechanism<OauthBearer>>::run(calls)
            .iter()
            .map(show)
            .collect()
    }

    /// RFC 7628 §4.1's example.
    const RFC_EXAMPLE: &[u8] = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
                                 auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";

    fn show(result: &Step) -> String {
        match result {
            Step::Challenge(c) => format!("challenge {c:?}"),
            Step::Success {
                credentials: Credentials::BearerToken(t),
                additional_data: None,
            } => format!("ok {:?} {:?} {}", t.authzid, t.username, t.token),
            Step::Success { .. } => "unexpected success".into(),
            Step::Failure(why) => format!("failure {why}"),
        }
    }

    #[test]
    fn messages() {
        let ok = |user: Option<&str>, token| {
            Ok(Message {
                user: user.map(str::to_owned),
                token,
            })
        };
        let err = |why: &str| Err(why.to_owned());
        let cases: &[(&[u8], Result<Message, String>)] = &[
            (
                RFC_EXAMPLE,
                ok(
                    Some("user@example.com"),
                    "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
                ),
            ),
            (b"n,,\x01auth=Bearer abc\x01\x01", ok(None, "abc")),
            (
                b"y,,\x01auth=bearer a-b._~+/c=\x01\x01",
                ok(None, "a-b._~+/c="),
            ),
            (
                b"n,a=us=2Cer,\x01x=\t y\x01auth=Bearer t\x01\x01",
                ok(Some("us,er"), "t"),
            ),
            (
                b"p=tls-unique,,\x01auth=Bearer t\x01\x01",
                err("channel binding requested; OAUTHBEARER has none"),
            ),
            (b"\x01", err("no GS2 header")),
            (b"n,,\x01\x01", err("no auth key")),
            (b"n,,\x01auth=Bearer t\x01", err("not terminated by two ^A")),
            (b"n,,\x01auth=Bearer t", err("not terminated by ^A")),
            (
                b"n,,auth=Bearer t\x01\x01",
                err("no ^A after the GS2 header"),
            ),
            (b"n,,\x01", err("not terminated by ^A")),
            (b"n,,\x01auth\x01\x01", err("a pair without '='")),
            (b"n,,\x01au1h=x\x01\x01", err("a key that is not letters")),
            (b"n,,\x01=x\x01\x01", err("a key that is not letters")),
            (
                b"n,,\x01host=\x7f\x01auth=Bearer t\x01\x01",
                err("a value with characters not allowed in one"),
            ),
            (
                "n,,\x01host=é\x01auth=Bearer t\x01\x01".as_bytes(),
                err("a value with characters not allowed in one"),
            ),
            (
                b"n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01",
                err("a repeated auth key"),
            ),
            (
                b"n,,\x01auth=Basic dTpw\x01\x01",
                err("the auth value is not 'Bearer TOKEN'"),
            ),
            (
                b"n,,\x01auth=Bearer \x01\x01",
                err("the token is not a b64token"),
            ),
            (
                b"n,,\x01auth=Bearer a=b\x01\x01",
                err("the token is not a b64token"),
            ),
            (
                b"n,,\x01auth=Bearer ==\x01\x01",
                err("the token is not a b64token"),
            ),
            (
                b"n,a=,\x01auth=Bearer t\x01\x01",
                err("bad saslname encoding"),
            ),
            (b"n,,\x01auth=Bearer t\xff\x01\x01", err("not UTF-8")),
        ];
        for (input, want) in cases {
            assert_eq!(&parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn exchanges() {
        let ok = "ok None Some(\"user@example.com\") vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
        let cases: Vec<(Vec<Call>, Vec<&str>)> = vec![
            (vec![Call::Start(Some(RFC_EXAMPLE.to_vec()))], vec![ok]),
            (
                vec![Call::Start(None), Call::Step(RFC_EXAMPLE.to_vec())],
                vec!["challenge []", ok],
            ),
            (
                vec![Call::Start(Some(b"\x01".to_vec()))],
                vec!["failure malformed OAUTHBEARER message: no GS2 header"],
            ),
            (
                vec![
                    Call::Start(Some(RFC_EXAMPLE.to_vec())),
                    Call::Step(b"\x01".to_vec()),
                ],
                vec![ok, "failure no response was expected"],
            ),
            (
                vec![Call::Start(None), Call::Start(None)],
                vec!["challenge []", "failure start called twice"],
            ),
            (
                vec![Call::Step(RFC_EXAMPLE.to_vec())],
                vec!["failure no response was expected"],
            ),
        ];
        for (calls, want) in cases {
            let got = run(&calls);
            assert_eq!(got, want, "{calls:?}");
        }
    }

    #[test]
    fn failures_never_quote_the_token() {
        for message in [
            &b"n,,\x01auth=Bearer hunter2\x01"[..],
            b"n,,\x01auth=Basic hunter2\x01\x01",
            b"n,,\x01auth=Bearer hunter 2\x01\x01",
            b"n,a=hunter2=,\x01auth=Bearer t\x01\x01",
        ] {
            let text = run(&[Call::Start(Some(message.to_vec()))]).remove(0);
            assert!(
                text.starts_with("failure") && !text.contains("hunter"),
                "{text}"
            );
        }
    }

    #[test]
    fn denial_sends_the_rfc_error() {
        let json = <OauthBearer as OneMessage>::denied().unwrap();
        assert_eq!(json, br#"{"status":"invalid_token","schemes":"bearer"}"#);
        let info = <OauthBearer as OneMessage>::info();
        assert!(info.plaintext);
        assert_eq!(info.credential_kinds, [CredentialKind::BearerToken]);
    }
}
