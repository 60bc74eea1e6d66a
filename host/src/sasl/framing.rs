//! Base64 framing of SASL messages (RFC 4954 §4, RFC 4422 §5): pure
//! functions over bytes, shared by SMTP and the echo service.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Standard alphabet; padding optional on input, written on output.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What the client sent in answer to a challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum Continuation {
    /// `*`: the client gives up on the exchange.
    Cancel,
    Data(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("invalid base64 in SASL message")]
    BadBase64,
}

/// Decodes an initial response: `=` is an empty response (RFC 4954 §4).
pub fn decode_initial_response(token: &[u8]) -> Result<Vec<u8>, FramingError> {
    if token == b"=" {
        return Ok(Vec::new());
    }
    decode(token)
}

/// Decodes a response line to a challenge: `*` cancels, an empty line is an
/// empty response.
pub fn decode_continuation(line: &[u8]) -> Result<Continuation, FramingError> {
    match line {
        b"*" => Ok(Continuation::Cancel),
        b"" => Ok(Continuation::Data(Vec::new())),
        other => decode(other).map(Continuation::Data),
    }
}

/// Encodes a challenge for the wire.
pub fn encode(data: &[u8]) -> String {
    general_purpose::STANDARD.encode(data)
}

fn decode(token: &[u8]) -> Result<Vec<u8>, FramingError> {
    LENIENT
        .decode(token.trim_ascii())
        .map_err(|_| FramingError::BadBase64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses() {
        type Case<'a> = (&'a [u8], Result<&'a [u8], FramingError>);
        let cases: &[Case] = &[
            (b"=", Ok(b"")),
            (b"AGd1ZXN0AHBhc3N3b3Jk", Ok(b"\0guest\0password")),
            (b"AGd1ZXN0AHBhc3N3b3Jk\r", Ok(b"\0guest\0password")),
            (b"dGlt", Ok(b"tim")),
            (b"dGk", Ok(b"ti")),
            (b"dGk=", Ok(b"ti")),
            (b"not base64!", Err(FramingError::BadBase64)),
            (b"====", Err(FramingError::BadBase64)),
            (b"*", Err(FramingError::BadBase64)),
        ];
        for (input, want) in cases {
            let got = decode_initial_response(input);
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                want.as_deref().map_err(Clone::clone),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn continuations() {
        assert_eq!(decode_continuation(b"*"), Ok(Continuation::Cancel));
        assert_eq!(decode_continuation(b""), Ok(Continuation::Data(vec![])));
        assert_eq!(
            decode_continuation(b"Z3Vlc3Q="),
            Ok(Continuation::Data(b"guest".to_vec()))
        );
        assert_eq!(decode_continuation(b"@@"), Err(FramingError::BadBase64));
    }

    #[test]
    fn encode_round_trips() {
        for data in [&b""[..], b"Username:", b"\0\xff\x10"] {
            assert_eq!(
                decode_initial_response(encode(data).as_bytes()).unwrap(),
                data
            );
        }
    }
}
