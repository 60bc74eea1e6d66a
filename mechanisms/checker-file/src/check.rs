//! The decisions, as pure functions of what the host's index answered for
//! the user (their line, or the file's kinds of values when absent): a
//! login with a password, a challenge-response login, a SCRAM key lookup.

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use scram_core::Algorithm;
use subtle::ConstantTimeEq;

use crate::db::{self, KeyedEntry, ValueKind};
use password_fields::{hash, scram};
use portcullis_sdk::checker::{SecretAnswer, Verdict};
use portcullis_sdk::types::{Denial, ScramKeys, SecretEntry, StoredSecret};

/// The verdict once the secret was compared: only a user who proved the
/// password learns about authorization.
fn decide(format: &db::Format, username: &str, matches: bool, authzid: Option<&str>) -> Verdict {
    if !matches {
        return Verdict::Denied(Denial::BadCredentials);
    }
    match authzid {
        Some(z) if !format.same_user(username, z) => Verdict::Denied(Denial::NotAuthorized),
        _ => Verdict::Accepted(username.to_owned()),
    }
}

/// The user's entry, or the file's kinds of values when there is none.
enum Found<'a> {
    Entry(db::Entry<'a>),
    Absent(&'a [ValueKind]),
}

fn found<'a>(answer: &'a KeyedEntry, format: &db::Format) -> Result<Found<'a>, String> {
    match answer {
        KeyedEntry::Found(line) => db::entry(line, format)
            .map(Found::Entry)
            .ok_or_else(|| "the host's index answered a line that is not an entry".into()),
        KeyedEntry::Absent(kinds) => Ok(Found::Absent(kinds)),
    }
}

/// The decision for one login, given what the index has for the user.
pub fn verify(
    answer: &KeyedEntry,
    format: &db::Format,
    authzid: Option<&str>,
    password: &str,
) -> Verdict {
    let entry = match found(answer, format) {
        Ok(Found::Entry(entry)) => entry,
        Ok(Found::Absent(kinds)) => {
            // Spend the time a real check would, against an entry of the
            // scheme the file mostly uses (not the first line's, which
            // may be plain text in a file of hashes), so absent users are
            // not told apart by timing.
            hash::burn_via_host(password, db::decoy(kinds, format));
            return Verdict::Denied(Denial::UnknownUser);
        }
        Err(why) => return Verdict::Unavailable(why),
    };
    match hash::verify_via_host(password, entry.password) {
        Err(e) => Verdict::Unavailable(format!(
            "password entry for {} is unusable: {e}",
            entry.username
        )),
        Ok(matches) => decide(format, entry.username, matches, authzid),
    }
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

/// The decision for a challenge-response login. Only plain-text lines can
/// answer it.
pub fn verify_response(
    answer: &KeyedEntry,
    format: &db::Format,
    authzid: Option<&str>,
    method: &str,
    challenge: &[u8],
    response: &[u8],
) -> Verdict {
    if method != "hmac-md5" {
        return Verdict::Denied(Denial::Unsupported);
    }
    let entry = match found(answer, format) {
        Ok(Found::Entry(entry)) => entry,
        Ok(Found::Absent(_)) => {
            let _ = cram_md5_digest("\u{0}no such user\u{0}", challenge);
            return Verdict::Denied(Denial::UnknownUser);
        }
        Err(why) => return Verdict::Unavailable(why),
    };
    if hash::Scheme::of(entry.password) != hash::Scheme::Plain {
        return Verdict::Denied(Denial::Other(format!(
            "the password of {} is not stored in plain text, which CRAM-MD5 needs",
            entry.username
        )));
    }
    let expected = cram_md5_digest(entry.password, challenge);
    let matches: bool = expected.as_bytes().ct_eq(response).into();
    decide(format, entry.username, matches, authzid)
}

/// The answer to a SCRAM key lookup.
pub fn lookup(
    answer: &KeyedEntry,
    format: &db::Format,
    username: &str,
    algorithm: Algorithm,
) -> SecretAnswer {
    let entry = match found(answer, format) {
        Ok(Found::Entry(entry)) => entry,
        Ok(Found::Absent(kinds)) => {
            // Deriving keys for a plain-text line costs a PBKDF2 run:
            // spend it when the file's usual entry would, so absent users
            // are not told apart.
            if let Some(decoy) = db::decoy(kinds, format) {
                let _ = scram::keys_for(decoy, username, algorithm);
            }
            return SecretAnswer::Denied(Denial::UnknownUser);
        }
        Err(why) => return SecretAnswer::Unavailable(why),
    };
    match scram::keys_for(entry.password, username, algorithm) {
        Ok(keys) => SecretAnswer::Found(SecretEntry {
            avatar_id: entry.username.to_owned(),
            secret: StoredSecret::Scram(ScramKeys {
                salt: keys.salt,
                iterations: keys.iterations,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
            }),
        }),
        Err(scram::NoKeys::Hashed) => SecretAnswer::Denied(Denial::Other(format!(
            "no SCRAM keys stored for {}: the entry is a password hash",
            entry.username
        ))),
        Err(scram::NoKeys::OtherVariant(stored)) => SecretAnswer::Denied(Denial::Other(format!(
            "no {} keys stored for {}: the entry holds {} keys",
            algorithm.mechanism_name(),
            entry.username,
            stored.mechanism_name()
        ))),
        Err(scram::NoKeys::Unusable(e)) => SecretAnswer::Unavailable(format!(
            "SCRAM entry for {} is unusable: {e}",
            entry.username
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The decisions over a file's text, with the host's index worked out
    // by a scan.
    fn verify(
        text: &str,
        format: &db::Format,
        user: &str,
        authzid: Option<&str>,
        password: &str,
    ) -> Verdict {
        super::verify(&db::scan(text, format, user), format, authzid, password)
    }

    fn verify_response(
        text: &str,
        format: &db::Format,
        user: &str,
        authzid: Option<&str>,
        method: &str,
        challenge: &[u8],
        response: &[u8],
    ) -> Verdict {
        let answer = db::scan(text, format, user);
        super::verify_response(&answer, format, authzid, method, challenge, response)
    }

    fn lookup(text: &str, format: &db::Format, user: &str, algorithm: Algorithm) -> SecretAnswer {
        super::lookup(&db::scan(text, format, user), format, user, algorithm)
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
        let text = "# users\nguest:password\nBob:$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.\n\
                    alice:$6$saltsalt$bad\n";
        let exact = db::Format::default();
        let any_case = db::Format {
            case_sensitive: false,
            ..exact
        };
        let cases = [
            (exact, "guest", None, "password", "ok guest"),
            (exact, "guest", Some("guest"), "password", "ok guest"),
            (exact, "guest", None, "nope", "denied BadCredentials"),
            (exact, "guest", None, "", "denied BadCredentials"),
            (exact, "bob", None, "password", "denied UnknownUser"),
            (
                exact,
                "guest",
                Some("alice"),
                "password",
                "denied NotAuthorized",
            ),
            (
                exact,
                "guest",
                Some("Guest"),
                "password",
                "denied NotAuthorized",
            ),
            (
                exact,
                "guest",
                Some("alice"),
                "nope",
                "denied BadCredentials",
            ),
            (exact, "Bob", None, "password", "ok Bob"),
            (any_case, "bob", None, "password", "ok Bob"),
            (any_case, "bob", Some("BOB"), "password", "ok Bob"),
            (
                any_case,
                "bob",
                Some("guest"),
                "password",
                "denied NotAuthorized",
            ),
            (
                exact,
                "alice",
                None,
                "x",
                "unavailable password entry for alice is unusable: bad sha-crypt hash: \
                 invalid encoding",
            ),
        ];
        for (format, user, authzid, pass, want) in cases {
            let got = show(verify(text, &format, user, authzid, pass));
            assert_eq!(got, want, "{user}/{authzid:?}/{pass}");
            assert!(!got.contains("$6$saltsalt$bad"), "{got}");
        }
    }

    /// (format, user, authzid, method, response, expected verdict)
    type ResponseCase<'a> = (
        db::Format,
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a [u8],
        &'a str,
    );

    /// RFC 2195's user, a hashed user and a user with stored SCRAM keys.
    fn cram_and_scram_file() -> String {
        let salt = b"0123456789abcdef";
        format!(
            "tim:tanstaaftanstaaf\n\
             Bob:$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.\n\
             sam:{}\n\
             sha1:{}\n\
             broken:{{SCRAM-SHA-256}}4096,AAAA\n",
            scram::entry(Algorithm::Sha256, "pencil", salt, 4096),
            scram::entry(Algorithm::Sha1, "pencil", salt, 4096),
        )
    }

    #[test]
    fn challenge_responses() {
        let text = cram_and_scram_file();
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            cram_md5_digest("tanstaaftanstaaf", challenge),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        let good = b"b913a602c7eda7a495b4e6e7334d3890";
        let exact = db::Format::default();
        let any_case = db::Format {
            case_sensitive: false,
            ..exact
        };
        let cases: [ResponseCase; 9] = [
            (exact, "tim", None, "hmac-md5", good, "ok tim"),
            (any_case, "TIM", Some("tim"), "hmac-md5", good, "ok tim"),
            (
                exact,
                "tim",
                Some("sam"),
                "hmac-md5",
                good,
                "denied NotAuthorized",
            ),
            (
                exact,
                "tim",
                None,
                "hmac-md5",
                b"b913a602c7eda7a495b4e6e7334d3891",
                "denied BadCredentials",
            ),
            (exact, "TIM", None, "hmac-md5", good, "denied UnknownUser"),
            (
                exact,
                "tim",
                None,
                "hmac-sha256",
                good,
                "denied Unsupported",
            ),
            (
                exact,
                "Bob",
                None,
                "hmac-md5",
                good,
                "denied Other(\"the password of Bob is not stored in plain text, which CRAM-MD5 needs\")",
            ),
            (
                exact,
                "sam",
                None,
                "hmac-md5",
                good,
                "denied Other(\"the password of sam is not stored in plain text, which CRAM-MD5 needs\")",
            ),
            (
                exact,
                "broken",
                None,
                "hmac-md5",
                good,
                "denied Other(\"the password of broken is not stored in plain text, which CRAM-MD5 needs\")",
            ),
        ];
        for (format, user, authzid, method, response, want) in cases {
            let got = show(verify_response(
                &text, &format, user, authzid, method, challenge, response,
            ));
            assert_eq!(got, want, "{user}/{authzid:?}/{method}");
        }
    }

    fn show_secret(answer: SecretAnswer) -> String {
        match answer {
            SecretAnswer::Found(SecretEntry {
                avatar_id,
                secret: StoredSecret::Scram(keys),
            }) => format!("found {avatar_id} {}", keys.iterations),
            SecretAnswer::Denied(d) => format!("denied {d:?}").replace("Denial::", ""),
            SecretAnswer::Unavailable(w) => format!("unavailable {w}"),
        }
    }

    #[test]
    fn scram_lookups() {
        let text = cram_and_scram_file();
        let f = db::Format::default();
        let cases = [
            ("sam", Algorithm::Sha256, "found sam 4096"),
            ("sha1", Algorithm::Sha1, "found sha1 4096"),
            ("tim", Algorithm::Sha256, "found tim 4096"),
            ("tim", Algorithm::Sha1, "found tim 4096"),
            (
                "sam",
                Algorithm::Sha1,
                "denied Other(\"no SCRAM-SHA-1 keys stored for sam: the entry holds SCRAM-SHA-256 keys\")",
            ),
            (
                "Bob",
                Algorithm::Sha256,
                "denied Other(\"no SCRAM keys stored for Bob: the entry is a password hash\")",
            ),
            ("nobody", Algorithm::Sha256, "denied UnknownUser"),
            (
                "broken",
                Algorithm::Sha256,
                "unavailable SCRAM entry for broken is unusable: a SCRAM entry needs iterations, \
                 salt, stored key and server key",
            ),
        ];
        for (user, algorithm, want) in cases {
            assert_eq!(
                show_secret(lookup(&text, &f, user, algorithm)),
                want,
                "{user}"
            );
        }

        // The keys a stored entry yields are the ones stored; a plain-text
        // line yields keys derived with the salt from the user name.
        let SecretAnswer::Found(SecretEntry {
            secret: StoredSecret::Scram(stored),
            ..
        }) = lookup(&text, &f, "sam", Algorithm::Sha256)
        else {
            panic!("sam has keys");
        };
        assert_eq!(stored.salt, b"0123456789abcdef");
        let SecretAnswer::Found(SecretEntry {
            secret: StoredSecret::Scram(derived),
            ..
        }) = lookup(&text, &f, "tim", Algorithm::Sha256)
        else {
            panic!("tim has keys");
        };
        assert_eq!(derived.salt, scram_core::derived_salt("tim"));
    }

    #[test]
    fn scram_entries_serve_plain_logins() {
        let text = cram_and_scram_file();
        let f = db::Format::default();
        assert_eq!(show(verify(&text, &f, "sam", None, "pencil")), "ok sam");
        assert_eq!(show(verify(&text, &f, "sha1", None, "pencil")), "ok sha1");
        assert_eq!(
            show(verify(&text, &f, "sam", None, "pencil2")),
            "denied BadCredentials"
        );
        let got = show(verify(&text, &f, "broken", None, "pencil"));
        assert!(
            got.starts_with("unavailable password entry for broken is unusable"),
            "{got}"
        );
    }

    #[test]
    fn empty_file() {
        let f = db::Format::default();
        assert_eq!(
            show(verify("", &f, "guest", None, "pw")),
            "denied UnknownUser"
        );
    }
}
