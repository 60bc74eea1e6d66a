//! What checking a slow hash will cost, read from the stored field before
//! any work is done: Argon2's memory, passes and lanes, bcrypt's cost,
//! SHA-crypt's rounds. The host reads it to decide whether it may verify a
//! hash natively, where nothing can interrupt the work once begun.
//!
//! Error texts describe the field's shape only; they never quote it.

use argon2::PasswordHash;

use crate::hash::Scheme;

/// The work parameters of a slow hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Argon2: memory in KiB, passes over it, lanes.
    Argon2 {
        memory_kib: u32,
        passes: u32,
        lanes: u32,
    },
    /// bcrypt: 2^cost rounds of its key schedule.
    Bcrypt { cost: u32 },
    /// SHA-crypt (`$5$`, `$6$`): rounds, each over the whole password.
    ShaCrypt { rounds: u32 },
}

/// Rounds of a SHA-crypt field without `rounds=` (glibc's default).
const SHA_CRYPT_DEFAULT_ROUNDS: u32 = 5_000;

/// The cost of checking `stored`: `None` for a field that is not a slow
/// hash (plain text, SCRAM keys, an unknown scheme), an error for one that
/// looks like a slow hash but cannot be read.
pub fn of(stored: &str) -> Option<Result<Cost, String>> {
    match Scheme::of(stored) {
        Scheme::Argon2 => Some(argon2(stored)),
        Scheme::Bcrypt => Some(bcrypt(stored)),
        Scheme::ShaCrypt => Some(sha_crypt(stored)),
        Scheme::Scram(_) | Scheme::Plain | Scheme::Unknown => None,
    }
}

fn argon2(stored: &str) -> Result<Cost, String> {
    let hash = PasswordHash::new(stored).map_err(|e| format!("bad argon2 hash: {e}"))?;
    let params =
        argon2::Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    Ok(Cost::Argon2 {
        memory_kib: params.m_cost(),
        passes: params.t_cost(),
        lanes: params.p_cost(),
    })
}

/// `$2b$NN$` + 53 characters of salt and hash.
fn bcrypt(stored: &str) -> Result<Cost, String> {
    let digits = stored
        .get(4..6)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()) && stored.get(6..7) == Some("$"))
        .ok_or("bad bcrypt hash: no two-digit cost")?;
    let cost = digits.parse().map_err(|_| "bad bcrypt hash: cost")?;
    Ok(Cost::Bcrypt { cost })
}

/// `$6$[rounds=N$]salt$hash`; glibc's rounds: 5,000 when absent, and a
/// value below 1,000 or above 999,999,999 is clamped to that range.
fn sha_crypt(stored: &str) -> Result<Cost, String> {
    let rest = &stored[3..];
    let Some(param) = rest.strip_prefix("rounds=") else {
        return Ok(Cost::ShaCrypt {
            rounds: SHA_CRYPT_DEFAULT_ROUNDS,
        });
    };
    let digits = param
        .split('$')
        .next()
        .filter(|d| !d.is_empty() && d.len() <= 10 && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("bad sha-crypt hash: rounds= is not a number")?;
    let rounds: u64 = digits
        .parse()
        .map_err(|_| "bad sha-crypt hash: rounds= is not a number")?;
    Ok(Cost::ShaCrypt {
        rounds: rounds.clamp(1_000, 999_999_999) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_of_each_scheme() {
        let cases: [(&str, Option<Result<Cost, ()>>); 12] = [
            (
                "$argon2id$v=19$m=19456,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08",
                Some(Ok(Cost::Argon2 {
                    memory_kib: 19456,
                    passes: 2,
                    lanes: 1,
                })),
            ),
            (
                "$argon2i$v=19$m=1024,t=3,p=4$cG9ydGN1bGxpcy1zYWx0$eyOpf27n+C6Oj6zjpA0W858/2ilwnjckGBK6/e3i+RA",
                Some(Ok(Cost::Argon2 {
                    memory_kib: 1024,
                    passes: 3,
                    lanes: 4,
                })),
            ),
            (
                "$argon2id$v=19$m=x,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
                Some(Err(())),
            ),
            (
                "$2b$12$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
                Some(Ok(Cost::Bcrypt { cost: 12 })),
            ),
            ("$2y$4$abcdefghijklmnopqrstuu", Some(Err(()))),
            ("$2a$xx$abc", Some(Err(()))),
            (
                "$6$saltsalt$qFmFH",
                Some(Ok(Cost::ShaCrypt { rounds: 5000 })),
            ),
            (
                "$5$rounds=10000$saltsalt$a6WJ",
                Some(Ok(Cost::ShaCrypt { rounds: 10000 })),
            ),
            (
                "$6$rounds=10$salt$x",
                Some(Ok(Cost::ShaCrypt { rounds: 1000 })),
            ),
            ("$6$rounds=$salt$x", Some(Err(()))),
            ("$6$rounds=99999999999$salt$x", Some(Err(()))),
            ("plain text", None),
        ];
        for (stored, want) in cases {
            assert_eq!(of(stored).map(|r| r.map_err(|_| ())), want, "{stored}");
        }
        assert_eq!(of("{SCRAM-SHA-256}4096,x"), None);
        assert_eq!(of("$1$md5$x"), None);
    }

    #[test]
    fn errors_never_quote_the_field() {
        for stored in [
            "$argon2id$v=19$m=zzsecret",
            "$2b$zz$secret",
            "$6$rounds=zz$secret",
        ] {
            let err = of(stored).unwrap().expect_err(stored);
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
