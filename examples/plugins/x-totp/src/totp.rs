//! RFC 6238 TOTP over RFC 4226 HOTP: pure functions, no I/O.

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

/// The HMAC behind the codes (RFC 6238 §1.2 allows SHA-1, SHA-256 and
/// SHA-512; authenticator apps mostly use SHA-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

fn mac<M: Mac + KeyInit>(key: &[u8], counter: u64) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// HOTP (RFC 4226 §5.3): the `digits`-digit code for `counter`.
pub fn hotp(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> String {
    let hash = match algorithm {
        Algorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(key, counter),
        Algorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(key, counter),
        Algorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(key, counter),
    };
    // Dynamic truncation.
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let code = u64::from(binary) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The TOTP parameters (RFC 6238 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub algorithm: Algorithm,
    /// Digits per code, 6 to 8.
    pub digits: u32,
    /// The time step X, in seconds.
    pub period: u64,
    /// How many steps before and after the current one are accepted, for
    /// clock drift and slow typists (RFC 6238 §5.2 recommends at most one).
    pub skew: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            skew: 1,
        }
    }
}

/// TOTP (RFC 6238 §4.2): the code at Unix time `now`.
pub fn totp(params: &Params, key: &[u8], now: u64) -> String {
    hotp(params.algorithm, key, now / params.period, params.digits)
}

/// Whether `code` is the code of a time step within `skew` of `now`'s.
/// Every candidate is computed and compared in constant time, so the
/// timing does not tell which step (if any) matched.
pub fn verify(params: &Params, key: &[u8], now: u64, code: &str) -> bool {
    let step = now / params.period;
    let mut ok = subtle::Choice::from(0);
    for candidate in step.saturating_sub(params.skew)..=step.saturating_add(params.skew) {
        let expected = hotp(params.algorithm, key, candidate, params.digits);
        ok |= expected.as_bytes().ct_eq(code.as_bytes());
    }
    ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds (ASCII "1234567890" repeated to the
    /// hash's length) and the 8-digit codes at each test time.
    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc_6238_appendix_b() {
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in vectors {
            for (algorithm, seed, want) in [
                (Algorithm::Sha1, SEED_SHA1, sha1),
                (Algorithm::Sha256, SEED_SHA256, sha256),
                (Algorithm::Sha512, SEED_SHA512, sha512),
            ] {
                let params = Params {
                    algorithm,
                    digits: 8,
                    period: 30,
                    skew: 0,
                };
                assert_eq!(totp(&params, seed, time), want, "{algorithm:?} at {time}");
                assert!(verify(&params, seed, time, want));
            }
        }
    }

    #[test]
    fn rfc_4226_appendix_d() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in want.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, SEED_SHA1, counter as u64, 6), *want);
        }
    }

    #[test]
    fn skew_window() {
        let params = Params::default();
        let now = 1_234_567_890;
        let code = totp(&params, SEED_SHA1, now);
        assert!(verify(&params, SEED_SHA1, now, &code));
        assert!(verify(&params, SEED_SHA1, now + 30, &code));
        assert!(verify(&params, SEED_SHA1, now - 30, &code));
        assert!(!verify(&params, SEED_SHA1, now + 90, &code));
        assert!(!verify(&params, SEED_SHA1, now - 90, &code));
        let strict = Params { skew: 0, ..params };
        assert!(!verify(&strict, SEED_SHA1, now + 30, &code));
        assert!(!verify(&params, SEED_SHA1, now, ""));
        assert!(!verify(&params, SEED_SHA1, now, &code[..5]));
        assert!(verify(
            &params,
            SEED_SHA1,
            10,
            &totp(&params, SEED_SHA1, 10)
        ));
    }
}
