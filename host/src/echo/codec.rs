//! Parsing the echo service's login line: a pure function over bytes.

use crate::sasl::Mechname;

/// What the first line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginLine<'a> {
    /// `user pass`: the password is everything after the first space.
    Credentials {
        username: &'a str,
        password: &'a str,
    },
    /// `AUTH MECH [initial-response]`.
    Sasl {
        mechanism: Mechname,
        initial_response: Option<&'a [u8]>,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the line is not valid UTF-8")]
    NotUtf8,
    #[error("expected 'username password' or 'AUTH mechanism [initial-response]'")]
    Malformed,
    #[error("'{0}' is not a SASL mechanism name")]
    BadMechanism(String),
}

/// Parses a login line (without its line ending).
pub fn parse_login_line(line: &[u8]) -> Result<LoginLine<'_>, ParseError> {
    if let Some(rest) = line.strip_prefix(b"AUTH ") {
        let mut parts = rest.splitn(2, |&b| b == b' ');
        let name = parts.next().unwrap_or_default();
        let mechanism = Mechname::parse(name)
            .ok_or_else(|| ParseError::BadMechanism(String::from_utf8_lossy(name).into_owned()))?;
        let initial_response = parts.next().filter(|ir| !ir.is_empty());
        return Ok(LoginLine::Sasl {
            mechanism,
            initial_response,
        });
    }
    let text = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    match text.split_once(' ') {
        Some((username, password)) if !username.is_empty() && !password.is_empty() => {
            Ok(LoginLine::Credentials { username, password })
        }
        _ => Err(ParseError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mech(name: &str) -> Mechname {
        Mechname::parse(name.as_bytes()).unwrap()
    }

    #[test]
    fn login_lines() {
        let cases: Vec<(&[u8], Result<LoginLine, ParseError>)> = vec![
            (
                b"user pass",
                Ok(LoginLine::Credentials {
                    username: "user",
                    password: "pass",
                }),
            ),
            (
                b"user pass with spaces",
                Ok(LoginLine::Credentials {
                    username: "user",
                    password: "pass with spaces",
                }),
            ),
            (
                "jürgen pässwort".as_bytes(),
                Ok(LoginLine::Credentials {
                    username: "jürgen",
                    password: "pässwort",
                }),
            ),
            (b"useronly", Err(ParseError::Malformed)),
            (b"", Err(ParseError::Malformed)),
            (b" pass", Err(ParseError::Malformed)),
            (b"user ", Err(ParseError::Malformed)),
            (b"user \xffpass", Err(ParseError::NotUtf8)),
            (
                b"AUTH PLAIN",
                Ok(LoginLine::Sasl {
                    mechanism: mech("PLAIN"),
                    initial_response: None,
                }),
            ),
            (
                b"AUTH plain AGd1ZXN0AHBhc3N3b3Jk",
                Ok(LoginLine::Sasl {
                    mechanism: mech("PLAIN"),
                    initial_response: Some(b"AGd1ZXN0AHBhc3N3b3Jk"),
                }),
            ),
            (
                b"AUTH PLAIN =",
                Ok(LoginLine::Sasl {
                    mechanism: mech("PLAIN"),
                    initial_response: Some(b"="),
                }),
            ),
            (b"AUTH PL@IN", Err(ParseError::BadMechanism("PL@IN".into()))),
            (b"AUTH ", Err(ParseError::BadMechanism("".into()))),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_login_line(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
