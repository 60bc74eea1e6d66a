//! The client's SCRAM messages (RFC 5802 §7): pure parsers.
//!
//! ```text
//! client-first-message = gs2-header [reserved-mext ","] username "," nonce ["," extensions]
//! client-final-message = channel-binding "," nonce ["," extensions] "," proof
//! ```
//!
//! Optional extensions are skipped (they must look like `x=…`); a
//! mandatory one (`m=`) is refused, as none is defined.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::gs2;

/// A parsed client-first message, borrowing from the input.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    pub header: gs2::Header,
    /// The header's exact text, which the client-final `c=` repeats.
    pub gs2_header: &'a str,
    /// The message without the header: the first part of AuthMessage.
    pub bare: &'a str,
    /// The decoded user name.
    pub username: String,
    pub client_nonce: &'a str,
}

/// A parsed client-final message, borrowing from the input.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    /// The decoded `c=` value: the GS2 header (and binding data, which we
    /// never ask for).
    pub channel_binding: Vec<u8>,
    /// The full nonce, client's and server's.
    pub nonce: &'a str,
    /// The message up to the proof: the last part of AuthMessage.
    pub without_proof: &'a str,
    pub proof: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Gs2(gs2::Error),
    /// An `m=` extension, which the server must refuse.
    MandatoryExtension,
    /// No `n=` user name where it belongs.
    Username,
    /// No `r=` nonce where it belongs, or one with bad characters.
    Nonce,
    /// Something after the nonce that is not an `x=…` attribute.
    Extension,
    /// No `c=` first, or bad base64 in it.
    ChannelBinding,
    /// No `p=` last, or bad base64 in it.
    Proof,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Gs2(e) => write!(f, "{e}"),
            Error::MandatoryExtension => f.write_str("unsupported mandatory extension"),
            Error::Username => f.write_str("no user name"),
            Error::Nonce => f.write_str("missing or invalid nonce"),
            Error::Extension => f.write_str("malformed extension"),
            Error::ChannelBinding => f.write_str("missing or invalid channel binding"),
            Error::Proof => f.write_str("missing or invalid proof"),
        }
    }
}

impl From<gs2::Error> for Error {
    fn from(e: gs2::Error) -> Self {
        Error::Gs2(e)
    }
}

/// RFC 5802 `printable`: `%x21-2B / %x2D-7E`, everything visible but `,`.
pub fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// An optional extension: a letter, `=`, anything.
fn valid_extension(attribute: &str) -> bool {
    let bytes = attribute.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'='
}

pub fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, Error> {
    let (header, gs2_header, bare) = gs2::split(message)?;
    let mut attributes = bare.split(',');
    let mut first = attributes.next().unwrap_or("");
    if first.starts_with("m=") {
        return Err(Error::MandatoryExtension);
    }
    let username = first.strip_prefix("n=").ok_or(Error::Username)?;
    let username = gs2::decode_saslname(username)?;
    first = attributes.next().ok_or(Error::Nonce)?;
    let client_nonce = first.strip_prefix("r=").ok_or(Error::Nonce)?;
    if !valid_nonce(client_nonce) {
        return Err(Error::Nonce);
    }
    if !attributes.all(valid_extension) {
        return Err(Error::Extension);
    }
    Ok(ClientFirst {
        header,
        gs2_header,
        bare,
        username,
        client_nonce,
    })
}

pub fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, Error> {
    let (without_proof, proof) = message.rsplit_once(",p=").ok_or(Error::Proof)?;
    let proof = STANDARD.decode(proof).map_err(|_| Error::Proof)?;
    let mut attributes = without_proof.split(',');
    let channel_binding = attributes
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .and_then(|c| STANDARD.decode(c).ok())
        .ok_or(Error::ChannelBinding)?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|r| valid_nonce(r))
        .ok_or(Error::Nonce)?;
    if !attributes.all(valid_extension) {
        return Err(Error::Extension);
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gs2::{ChannelBinding, Header};

    #[test]
    fn client_first_messages() {
        let ok = |gs2_header, bare, username: &str, client_nonce, authzid: Option<&str>| {
            Ok(ClientFirst {
                header: Header {
                    channel_binding: if gs2_header == "y,," {
                        ChannelBinding::NotOffered
                    } else {
                        ChannelBinding::Unsupported
                    },
                    authzid: authzid.map(str::to_owned),
                },
                gs2_header,
                bare,
                username: username.to_owned(),
                client_nonce,
            })
        };
        let cases: &[(&str, Result<ClientFirst, Error>)] = &[
            (
                "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                ok(
                    "n,,",
                    "n=user,r=rOprNGfwEbeRWgbNEkqO",
                    "user",
                    "rOprNGfwEbeRWgbNEkqO",
                    None,
                ),
            ),
            (
                "y,,n=user,r=abc,x=ext",
                ok("y,,", "n=user,r=abc,x=ext", "user", "abc", None),
            ),
            (
                "n,a=adm=3Din,n=us=2Cer,r=%$)",
                ok(
                    "n,a=adm=3Din,",
                    "n=us=2Cer,r=%$)",
                    "us,er",
                    "%$)",
                    Some("adm=in"),
                ),
            ),
            ("n,,m=ext,n=user,r=abc", Err(Error::MandatoryExtension)),
            ("n,,r=abc,n=user", Err(Error::Username)),
            ("n,,n=,r=abc", Err(Error::Gs2(gs2::Error::Saslname))),
            ("n,,n=us=er,r=abc", Err(Error::Gs2(gs2::Error::Saslname))),
            ("n,,n=user", Err(Error::Nonce)),
            ("n,,n=user,r=", Err(Error::Nonce)),
            ("n,,n=user,r=a b", Err(Error::Nonce)),
            ("n,,n=user,r=a\u{7f}", Err(Error::Nonce)),
            ("n,,n=user,s=abc", Err(Error::Nonce)),
            ("n,,n=user,r=abc,", Err(Error::Extension)),
            ("n,,n=user,r=abc,junk", Err(Error::Extension)),
            ("n,,", Err(Error::Username)),
            ("", Err(Error::Gs2(gs2::Error::Missing))),
            ("n=user,r=abc,x=y", Err(Error::Gs2(gs2::Error::Flag))),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_client_first(input), want, "{input}");
        }
    }

    #[test]
    fn client_final_messages() {
        let rfc = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let parsed = parse_client_final(rfc).unwrap();
        assert_eq!(parsed.channel_binding, b"n,,");
        assert_eq!(
            parsed.nonce,
            "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );
        assert_eq!(
            parsed.without_proof,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );
        assert_eq!(parsed.proof.len(), 32);

        let with_extension = parse_client_final("c=biws,r=abc,x=1,p=AAAA").unwrap();
        assert_eq!(with_extension.without_proof, "c=biws,r=abc,x=1");
        assert_eq!(with_extension.proof, [0, 0, 0]);

        let cases = [
            ("c=biws,r=abc", Error::Proof),
            ("c=biws,r=abc,p=not*base64", Error::Proof),
            ("c=biws,r=abc,p=AAA", Error::Proof),
            ("r=abc,c=biws,p=AAAA", Error::ChannelBinding),
            ("c=bi*s,r=abc,p=AAAA", Error::ChannelBinding),
            ("c=biws,p=AAAA", Error::Nonce),
            ("c=biws,r=,p=AAAA", Error::Nonce),
            ("c=biws,r=abc,junk,p=AAAA", Error::Extension),
            ("p=AAAA", Error::Proof),
            ("", Error::Proof),
        ];
        for (input, want) in cases {
            assert_eq!(parse_client_final(input), Err(want), "{input}");
        }
    }
}
