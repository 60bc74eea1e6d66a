//! `sha256=HEX` pins: the digest an operator expects a plugin file to
//! have, checked before the file is compiled.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest of a plugin's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256Pin(pub [u8; 32]);

impl Sha256Pin {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256Pin {
        Sha256Pin(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

impl FromStr for Sha256Pin {
    type Err = String;

    /// 64 hexadecimal digits, either case (what `sha256sum` prints).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "sha256 \"{text}\" is not a SHA-256 digest; write the 64 hexadecimal \
                 digits `sha256sum PLUGIN.wasm` prints"
            )
        };
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Sha256Pin(out))
    }
}

#[cfg(test)]
mod tests {
    use super::Sha256Pin;

    #[test]
    fn parses_prints_and_digests() {
        // sha256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Sha256Pin::of(b"abc").to_string(), abc);
        assert_eq!(abc.parse::<Sha256Pin>(), Ok(Sha256Pin::of(b"abc")));
        assert_eq!(
            abc.to_uppercase().parse::<Sha256Pin>(),
            Ok(Sha256Pin::of(b"abc"))
        );
        for bad in [
            "",
            "abc",
            &abc[1..],
            &format!("{}g", &abc[1..]),
            &format!("{abc}00"),
        ] {
            let err = bad.parse::<Sha256Pin>().unwrap_err();
            assert!(err.contains("64 hexadecimal digits"), "{bad}: {err}");
        }
        assert!("é".repeat(32).parse::<Sha256Pin>().is_err());
    }
}
