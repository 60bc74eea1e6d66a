//! The GS2 header that starts a SCRAM client-first message (RFC 5802 §7)
//! and an OAUTHBEARER response (RFC 7628 §3.1), and saslname decoding.
//!
//! ```text
//! gs2-header     = gs2-cbind-flag "," [ authzid ] ","
//! gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
//! authzid        = "a=" saslname
//! saslname       = 1*(value-safe-char / "=2C" / "=3D")
//! ```

use std::fmt;

/// What the client says about channel binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelBinding {
    /// `n`: the client does not support it.
    Unsupported,
    /// `y`: the client supports it but thinks the server does not.
    NotOffered,
    /// `p=NAME`: the client requires binding of this type.
    Required(String),
}

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub channel_binding: ChannelBinding,
    /// The decoded authzid; `None` when the client sent none.
    pub authzid: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer than two commas.
    Missing,
    /// The flag is not `n`, `y` or `p=`.
    Flag,
    /// `p=` without a valid channel binding name.
    BindingName,
    /// The authzid field does not start with `a=`.
    Authzid,
    /// A saslname with an `=` not starting `=2C` or `=3D`, a NUL, a raw
    /// `,`, or nothing at all.
    Saslname,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Missing => "no GS2 header",
            Error::Flag => "bad channel binding flag",
            Error::BindingName => "bad channel binding name",
            Error::Authzid => "bad authzid field",
            Error::Saslname => "bad saslname encoding",
        })
    }
}

/// Splits the header off `message`: the header, its exact text (both
/// commas included, as the client-final `c=` must repeat it) and the rest.
pub fn split(message: &str) -> Result<(Header, &str, &str), Error> {
    let mut parts = message.splitn(3, ',');
    let (Some(flag), Some(authzid_field), Some(rest)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Missing);
    };
    let channel_binding = match flag {
        "n" => ChannelBinding::Unsupported,
        "y" => ChannelBinding::NotOffered,
        _ => match flag.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                ChannelBinding::Required(name.to_owned())
            }
            Some(_) => return Err(Error::BindingName),
            None => return Err(Error::Flag),
        },
    };
    let authzid = match authzid_field {
        "" => None,
        field => Some(decode_saslname(
            field.strip_prefix("a=").ok_or(Error::Authzid)?,
        )?),
    };
    let header_len = flag.len() + authzid_field.len() + 2;
    Ok((
        Header {
            channel_binding,
            authzid,
        },
        &message[..header_len],
        rest,
    ))
}

/// Decodes a saslname: `=2C` is `,`, `=3D` is `=`; any other `=`, a raw
/// `,`, a NUL or an empty name is an error.
pub fn decode_saslname(encoded: &str) -> Result<String, Error> {
    if encoded.is_empty() || encoded.contains(['\0', ',']) {
        return Err(Error::Saslname);
    }
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).ok_or(Error::Saslname)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(Error::Saslname),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (message, expected header, header text and rest)
    type Case<'a> = (&'a str, Result<(Header, &'a str, &'a str), Error>);

    #[test]
    fn headers() {
        let h = |cb, z: Option<&str>| Header {
            channel_binding: cb,
            authzid: z.map(str::to_owned),
        };
        use ChannelBinding::*;
        let cases: &[Case] = &[
            ("n,,n=user", Ok((h(Unsupported, None), "n,,", "n=user"))),
            ("y,,n=user", Ok((h(NotOffered, None), "y,,", "n=user"))),
            (
                "n,a=admin,n=user",
                Ok((h(Unsupported, Some("admin")), "n,a=admin,", "n=user")),
            ),
            (
                "n,a=a=2Cb=3Dc,rest,more",
                Ok((h(Unsupported, Some("a,b=c")), "n,a=a=2Cb=3Dc,", "rest,more")),
            ),
            (
                "p=tls-unique,,n=u",
                Ok((
                    h(Required("tls-unique".into()), None),
                    "p=tls-unique,,",
                    "n=u",
                )),
            ),
            ("n,,", Ok((h(Unsupported, None), "n,,", ""))),
            ("p=,,n=u", Err(Error::BindingName)),
            ("p=tls_unique,,n=u", Err(Error::BindingName)),
            ("x,,n=u", Err(Error::Flag)),
            ("N,,n=u", Err(Error::Flag)),
            (",,n=u", Err(Error::Flag)),
            ("n,b=x,n=u", Err(Error::Authzid)),
            ("n,a=,n=u", Err(Error::Saslname)),
            ("n,a=x=2,n=u", Err(Error::Saslname)),
            ("n,", Err(Error::Missing)),
            ("n", Err(Error::Missing)),
            ("", Err(Error::Missing)),
        ];
        for (input, want) in cases {
            assert_eq!(&split(input), want, "{input}");
        }
    }

    #[test]
    fn saslnames() {
        let cases = [
            ("user", Ok("user")),
            ("=2C", Ok(",")),
            ("=3D=3D", Ok("==")),
            ("a=2Cb=3Dc", Ok("a,b=c")),
            ("jürgen", Ok("jürgen")),
            ("=2c", Err(Error::Saslname)),
            ("=", Err(Error::Saslname)),
            ("a=3", Err(Error::Saslname)),
            ("=41", Err(Error::Saslname)),
            ("a,b", Err(Error::Saslname)),
            ("a\0b", Err(Error::Saslname)),
            ("", Err(Error::Saslname)),
            ("=é", Err(Error::Saslname)),
        ];
        for (input, want) in cases {
            assert_eq!(decode_saslname(input), want.map(str::to_owned), "{input}");
        }
    }
}
