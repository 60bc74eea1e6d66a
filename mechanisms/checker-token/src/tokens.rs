//! A static token file: which user a token belongs to. A pure function over
//! the file's text.
//!
//! One `user:TOKEN` or `user:sha256:HEX` line per token (HEX: the 64 hex
//! digits of the token's SHA-256, either case); blank lines and `#`
//! comments are skipped, and so are lines with an empty user or token. A
//! token that itself starts with `sha256:` must be stored hashed.
//!
//! Every line is compared, in constant time, with the SHA-256 of the token
//! offered, so neither the answer's timing nor the stored tokens' lengths
//! tell an attacker how close a guess was. The first matching line wins.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const HASHED: &str = "sha256:";

/// The user `token` belongs to, `None` when no line matches; an error (for
/// the operator's log, never quoting a token) for a malformed hashed line.
pub fn find<'a>(text: &'a str, token: &str) -> Result<Option<&'a str>, String> {
    let offered: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, stored)) = line.split_once(':') else {
            continue;
        };
        if user.is_empty() || stored.is_empty() {
            continue;
        }
        let expected: [u8; 32] = match stored.strip_prefix(HASHED) {
            Some(hex) => decode_hex(hex).ok_or_else(|| {
                format!(
                    "token file line {}: sha256: needs 64 hex digits",
                    number + 1
                )
            })?,
            None => Sha256::digest(stored.as_bytes()).into(),
        };
        let matches: bool = offered.ct_eq(&expected).into();
        if matches && found.is_none() {
            found = Some(user);
        }
    }
    Ok(found)
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(token: &str) -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn lookups() {
        let text = format!(
            "# tokens\n\nalice:plain-token\r\nbob:sha256:{}\ncarol:sha256:{}\n\
             dave:with:colons\nnobody\n:orphan\nerin:\n  # indented comment\n\
             frank:plain-token\n",
            hex("hashed-token"),
            hex("UPPER").to_uppercase(),
        );
        let cases = [
            ("plain-token", Some("alice")),
            ("hashed-token", Some("bob")),
            ("UPPER", Some("carol")),
            ("with:colons", Some("dave")),
            ("plain-tokeN", None),
            ("plain-token ", None),
            ("", None),
            ("orphan", None),
            ("nobody", None),
            (&hex("hashed-token"), None),
            (&format!("sha256:{}", hex("hashed-token")), None),
        ];
        for (token, want) in cases {
            assert_eq!(find(&text, token), Ok(want), "{token:?}");
        }
    }

    #[test]
    fn malformed_hashed_lines_are_errors_without_tokens() {
        for (text, line) in [
            ("a:t\nb:sha256:abc\n", 2),
            (&format!("b:sha256:{}x\n", "0".repeat(63)) as &str, 1),
            (&format!("b:sha256:{}\n", "0".repeat(65)), 1),
            ("b:sha256:\n", 1),
        ] {
            let e = find(text, "t").unwrap_err();
            assert_eq!(
                e,
                format!("token file line {line}: sha256: needs 64 hex digits")
            );
        }
    }

    #[test]
    fn hex_digits() {
        let all_ff = "f".repeat(64);
        assert_eq!(decode_hex(&all_ff), Some([0xff; 32]));
        assert_eq!(decode_hex(&"F".repeat(64)), Some([0xff; 32]));
        assert_eq!(decode_hex(&"g".repeat(64)), None);
        assert_eq!(decode_hex("+1".repeat(32).as_str()), None);
        assert_eq!(decode_hex(""), None);
    }
}
