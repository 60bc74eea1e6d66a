//! The PLAIN message (RFC 4616 §2): a pure parser.

/// A parsed message, borrowing from the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// `None` when the client sent an empty authorization identity.
    pub authzid: Option<&'a str>,
    pub authcid: &'a str,
    pub password: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Not exactly three NUL-separated fields.
    Fields,
    EmptyAuthcid,
    EmptyPassword,
    NotUtf8,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Fields => "expected authzid NUL authcid NUL password",
            Error::EmptyAuthcid => "empty authentication identity",
            Error::EmptyPassword => "empty password",
            Error::NotUtf8 => "not UTF-8",
        })
    }
}

/// Splits a message at its NULs. Exactly two are allowed, so no field can
/// contain one.
pub fn parse(message: &[u8]) -> Result<Message<'_>, Error> {
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Error::Fields);
    };
    let text = |b| std::str::from_utf8(b).map_err(|_| Error::NotUtf8);
    let (authzid, authcid, password) = (text(authzid)?, text(authcid)?, text(password)?);
    if authcid.is_empty() {
        return Err(Error::EmptyAuthcid);
    }
    if password.is_empty() {
        return Err(Error::EmptyPassword);
    }
    Ok(Message {
        authzid: (!authzid.is_empty()).then_some(authzid),
        authcid,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let m = |z, c, p| {
            Ok(Message {
                authzid: z,
                authcid: c,
                password: p,
            })
        };
        let cases: &[(&[u8], Result<Message, Error>)] = &[
            (
                b"\0tim\0tanstaaftanstaaf",
                m(None, "tim", "tanstaaftanstaaf"),
            ),
            (
                b"Ursel\0Kurt\0xipj3plmq",
                m(Some("Ursel"), "Kurt", "xipj3plmq"),
            ),
            ("\0jürgen\0pä ss".as_bytes(), m(None, "jürgen", "pä ss")),
            (b"\0tim\0", Err(Error::EmptyPassword)),
            (b"\0\0pw", Err(Error::EmptyAuthcid)),
            (b"tim\0pw", Err(Error::Fields)),
            (b"a\0b\0c\0d", Err(Error::Fields)),
            (b"", Err(Error::Fields)),
            (b"\0tim\0\xff", Err(Error::NotUtf8)),
            (b"\xff\0tim\0pw", Err(Error::NotUtf8)),
            (b"\0t\xc3\0pw", Err(Error::NotUtf8)),
            (b"\0\0", Err(Error::EmptyAuthcid)),
            (b"\0\0\0", Err(Error::Fields)),
            (b"\0tim\0pw\0", Err(Error::Fields)),
            (b"\0tim", Err(Error::Fields)),
            (b" \0 \0 ", m(Some(" "), " ", " ")),
        ];
        for (input, want) in cases {
            assert_eq!(&parse(input), want, "{input:?}");
        }
    }
}
