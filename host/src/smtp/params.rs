//! ESMTP parameters of MAIL and RCPT: SIZE (RFC 1870), BODY (RFC 6152),
//! SMTPUTF8 (RFC 6531) and AUTH (RFC 4954 §5). Pure functions from the
//! parsed parameters to what the session records, or the reply to send.

use super::command::Param;
use super::reply::{self, Reply};

/// What MAIL FROM's parameters asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// The size the client declared.
    pub size: Option<u64>,
    pub smtputf8: bool,
    /// The `AUTH=` mailbox, decoded from xtext; `Some("")` for `AUTH=<>`.
    pub auth: Option<String>,
}

/// Checks MAIL FROM's parameters against what the server advertised.
pub fn mail_params(params: &[Param<'_>], max_size: u64) -> Result<MailParams, Reply> {
    let mut out = MailParams::default();
    for param in params {
        let keyword = param.keyword.to_ascii_uppercase();
        match (keyword.as_str(), param.value) {
            ("SIZE", Some(v)) => {
                let size: u64 = v
                    .parse()
                    .map_err(|_| reply::SYNTAX.with_text("SIZE needs a number"))?;
                if size > max_size {
                    return Err(reply::MESSAGE_TOO_BIG);
                }
                out.size = Some(size);
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {}
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {}
            ("BODY", Some(_)) => {
                return Err(reply::BAD_PARAMETER.with_text("BODY must be 7BIT or 8BITMIME"));
            }
            ("SMTPUTF8", None) => out.smtputf8 = true,
            ("AUTH", Some(v)) => {
                let mailbox = if v == "<>" {
                    String::new()
                } else {
                    decode_xtext(v).ok_or_else(|| {
                        reply::SYNTAX.with_text("AUTH= needs an xtext-encoded mailbox or <>")
                    })?
                };
                out.auth = Some(mailbox);
            }
            _ => return Err(reply::BAD_PARAMETER),
        }
    }
    Ok(out)
}

/// RCPT TO takes no parameters here (no DSN).
pub fn rcpt_params(params: &[Param<'_>]) -> Result<(), Reply> {
    match params.first() {
        None => Ok(()),
        Some(_) => Err(reply::BAD_PARAMETER),
    }
}

/// Whether an address may be used: non-ASCII needs SMTPUTF8.
pub fn check_address(address: &str, smtputf8: bool) -> Result<(), Reply> {
    if !smtputf8 && !address.is_ascii() {
        return Err(reply::NEED_SMTPUTF8);
    }
    Ok(())
}

/// Decodes xtext (RFC 3461 §4): `+XX` hex escapes, printable ASCII
/// otherwise, no `=` or `+` unescaped.
pub fn decode_xtext(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
                {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'!'..=b'~' if bytes[i] != b'=' => {
                out.push(bytes[i]);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p<'a>(keyword: &'a str, value: Option<&'a str>) -> Param<'a> {
        Param { keyword, value }
    }

    #[test]
    fn xtext() {
        let cases = [
            ("alice@example.com", Some("alice@example.com")),
            ("a+2Bb@example.com", Some("a+b@example.com")),
            ("e+3Dmc2@x", Some("e=mc2@x")),
            ("bad+2", None),
            ("bad+zz", None),
            ("bad+2b", None),
            ("a=b", None),
            ("a b", None),
            ("", Some("")),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_xtext(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn mail() {
        let ok = |params: &[Param<'_>]| mail_params(params, 1000);
        assert_eq!(ok(&[]), Ok(MailParams::default()));
        assert_eq!(ok(&[p("size", Some("999"))]).unwrap().size, Some(999));
        assert_eq!(
            ok(&[p("SIZE", Some("1001"))]).unwrap_err().code,
            reply::MESSAGE_TOO_BIG.code
        );
        assert_eq!(ok(&[p("SIZE", Some("x"))]).unwrap_err().code, 501);
        assert_eq!(ok(&[p("SIZE", None)]).unwrap_err().code, 555);
        assert!(ok(&[p("BODY", Some("8bitmime")), p("BODY", Some("7BIT"))]).is_ok());
        assert_eq!(ok(&[p("BODY", Some("BINARYMIME"))]).unwrap_err().code, 555);
        assert!(ok(&[p("SMTPUTF8", None)]).unwrap().smtputf8);
        assert_eq!(ok(&[p("SMTPUTF8", Some("x"))]).unwrap_err().code, 555);
        assert_eq!(
            ok(&[p("AUTH", Some("a+2Bb@x"))]).unwrap().auth.as_deref(),
            Some("a+b@x")
        );
        assert_eq!(
            ok(&[p("AUTH", Some("<>"))]).unwrap().auth.as_deref(),
            Some("")
        );
        assert_eq!(ok(&[p("AUTH", Some("a+zz"))]).unwrap_err().code, 501);
        assert_eq!(ok(&[p("RET", Some("FULL"))]).unwrap_err().code, 555);
        assert!(rcpt_params(&[]).is_ok());
        assert_eq!(
            rcpt_params(&[p("NOTIFY", Some("NEVER"))]).unwrap_err().code,
            555
        );
        assert!(check_address("ü@x", true).is_ok());
        assert_eq!(check_address("ü@x", false).unwrap_err().code, 553);
    }
}
