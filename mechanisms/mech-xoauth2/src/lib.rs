//! SASL XOAUTH2, Google's OAuth 2.0 mechanism for IMAP and SMTP, as a
//! portcullis mechanism plugin. No configuration.
//!
//! The client sends `user=USER ^A auth=Bearer TOKEN ^A ^A` (`^A` is
//! 0x01), as an initial response or after an empty challenge. The
//! mechanism checks only the shape ([`parse`]) and hands the user and the
//! token to the portal as bearer-token credentials (`username` set, no
//! authzid); a token checker decides, so the host offers XOAUTH2 only when
//! one is registered.
//!
//! When the portal denies the token, [`Guest::denied`] returns Google's
//! JSON error, `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`,
//! which the host sends as a challenge before the failure reply (clients
//! answer it with an empty line). Flagged plaintext: a bearer token is a
//! password in effect, so hosts offer XOAUTH2 only over TLS.

use portcullis_sdk::mechanism::{MechanismInfo, OneMessage, OneMessageMechanism, Step};
use portcullis_sdk::types::{BearerToken, CredentialKind, Credentials};

/// The error challenge sent after a denial, as Google's servers send it.
const ERROR_CHALLENGE: &[u8] =
    br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;

/// A well-formed message.
#[derive(Debug, PartialEq, Eq)]
struct Message<'a> {
    user: &'a str,
    token: &'a str,
}

/// Parses `user=U ^A auth=Bearer T ^A ^A`. Fields may come in any order,
/// unknown ones are skipped; `user` must be non-empty without control
/// characters, the auth scheme `Bearer` (any case), the token non-empty
/// visible ASCII. Errors never quote the message.
fn parse(message: &[u8]) -> Result<Message<'_>, &'static str> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8")?;
    let fields = text
        .strip_suffix("\x01\x01")
        .ok_or("not terminated by two ^A")?;
    let (mut user, mut auth) = (None, None);
    for field in fields.split('\x01') {
        let (key, value) = field.split_once('=').ok_or("a field without '='")?;
        let slot = match key {
            "user" => &mut user,
            "auth" => &mut auth,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err("a repeated field");
        }
    }
    let user = user.ok_or("no user field")?;
    if user.is_empty() || user.chars().any(char::is_control) {
        return Err("empty user or control characters in it");
    }
    let auth = auth.ok_or("no auth field")?;
    let token = auth
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or("the auth field is not 'Bearer TOKEN'")?;
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("empty token or characters not allowed in one");
    }
    Ok(Message { user, token })
}

fn finish(message: &[u8]) -> Step {
    match parse(message) {
        Ok(m) => Step::success(Credentials::BearerToken(BearerToken {
            authzid: None,
            username: Some(m.user.to_owned()),
            token: m.token.to_owned(),
        })),
        Err(why) => Step::Failure(format!("malformed XOAUTH2 message: {why}")),
    }
}

struct Xoauth2;

impl OneMessage for Xoauth2 {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "XOAUTH2".into(),
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

portcullis_sdk::export_mechanism!(OneMessageMechanism<Xoauth2>);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::mechanism::{Call, Exchange};

    /// Drives one exchange through the SDK's call-order rules.
    fn run(calls: &[Call]) -> Vec<String> {
        Exchange::<OneMessageMechanism<Xoauth2>>::run(calls)
            .iter()
            .map(show)
            .collect()
    }

    /// Google's documented example, base64-decoded.
    const GOOGLE_EXAMPLE: &[u8] =
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01";

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
        let ok = |user, token| Ok(Message { user, token });
        let cases: &[(&[u8], Result<Message, &str>)] = &[
            (
                GOOGLE_EXAMPLE,
                ok(
                    "someuser@example.com",
                    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
                ),
            ),
            (b"auth=bearer t0k=n\x01user=u\x01\x01", ok("u", "t0k=n")),
            (b"user=u\x01x=y\x01auth=BEARER t\x01\x01", ok("u", "t")),
            (
                b"user=u\x01auth=Bearer t\x01",
                Err("not terminated by two ^A"),
            ),
            (b"user=u\x01auth=Bearer t", Err("not terminated by two ^A")),
            (b"user=u\x01\x01", Err("no auth field")),
            (b"auth=Bearer t\x01\x01", Err("no user field")),
            (
                b"user=\x01auth=Bearer t\x01\x01",
                Err("empty user or control characters in it"),
            ),
            (
                b"user=a\tb\x01auth=Bearer t\x01\x01",
                Err("empty user or control characters in it"),
            ),
            (
                b"user=u\x01auth=Basic dTpw\x01\x01",
                Err("the auth field is not 'Bearer TOKEN'"),
            ),
            (
                b"user=u\x01auth=Bearert\x01\x01",
                Err("the auth field is not 'Bearer TOKEN'"),
            ),
            (
                b"user=u\x01auth=Bearer \x01\x01",
                Err("empty token or characters not allowed in one"),
            ),
            (
                b"user=u\x01auth=Bearer a b\x01\x01",
                Err("empty token or characters not allowed in one"),
            ),
            (
                b"user=u\x01user=v\x01auth=Bearer t\x01\x01",
                Err("a repeated field"),
            ),
            (
                b"user=u\x01junk\x01auth=Bearer t\x01\x01",
                Err("a field without '='"),
            ),
            (b"\x01\x01", Err("a field without '='")),
            (b"", Err("not terminated by two ^A")),
            (b"user=\xff\x01auth=Bearer t\x01\x01", Err("not UTF-8")),
        ];
        for (input, want) in cases {
            assert_eq!(&parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn exchanges() {
        let ok =
            "ok None Some(\"someuser@example.com\") ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
        let message = GOOGLE_EXAMPLE.to_vec();
        let cases: Vec<(Vec<Call>, Vec<&str>)> = vec![
            (vec![Call::Start(Some(message.clone()))], vec![ok]),
            (
                vec![Call::Start(None), Call::Step(message.clone())],
                vec!["challenge []", ok],
            ),
            (
                vec![Call::Start(Some(Vec::new()))],
                vec!["failure malformed XOAUTH2 message: not terminated by two ^A"],
            ),
            (
                vec![Call::Start(Some(message.clone())), Call::Step(Vec::new())],
                vec![ok, "failure no response was expected"],
            ),
            (
                vec![Call::Start(None), Call::Start(None)],
                vec!["challenge []", "failure start called twice"],
            ),
            (
                vec![Call::Step(message)],
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
            &b"user=u\x01auth=Bearer hunter2\x01"[..],
            b"user=u\x01auth=Basic hunter2\x01\x01",
            b"user=u\x01auth=Bearer hunter 2\x01\x01",
            b"hunter2\x01\x01",
        ] {
            let text = run(&[Call::Start(Some(message.to_vec()))]).remove(0);
            assert!(
                text.starts_with("failure") && !text.contains("hunter"),
                "{text}"
            );
        }
    }

    #[test]
    fn denial_sends_googles_json_error() {
        assert_eq!(
            <Xoauth2 as OneMessage>::denied().as_deref(),
            Some(&br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#[..])
        );
        let info = <Xoauth2 as OneMessage>::info();
        assert!(info.plaintext);
        assert_eq!(info.credential_kinds, [CredentialKind::BearerToken]);
    }
}
