//! The `password-hash` import: slow password hashes (Argon2, bcrypt,
//! SHA-crypt) verified natively for checker plugins, with the code the
//! built-in checkers run in the sandbox (`password_fields::hash::verify`).
//! In Wasm the same check costs 1.4 to 2.9 times the CPU (the benchmark's
//! `hashes` run), and a checker with hashed passwords spends most of a
//! login in it.
//!
//! Native code cannot be interrupted the way a guest can, so the host
//! bounds the work before it starts ([`Caps::admit`]): it reads the hash's
//! cost parameters and the password's length, and declines (`over-limit`)
//! anything past its caps; the guest then verifies the hash itself, under
//! its own time and memory limits, as before. Each store may call it
//! [`PER_STORE`] times, answered or declined. At most one verification per CPU
//! runs at once ([`Verifier`]); a verification holds its permit until it
//! ends, even when the guest call that asked for it has been cut off, so
//! the bound holds against guests that give up early.
//!
//! The permits go round the clients in turn ([`crate::fair`]), the client
//! being the address the login is for, as the per-address limits count it
//! ([`for_client`]): clients sending wrong passwords for users with slow
//! hashes, however many requests they queue, make another client's login
//! wait behind at most one verification of each of them, not behind all.
//! And a client whose last verification here did not match (within
//! [`FORGET_FAILURE`]) waits behind clients without one: while both kinds
//! wait, it gets one freed permit in [`crate::fair::OTHER_SHARE`]. A user
//! with the right password is then not kept waiting by clients that send
//! wrong ones, however many addresses they have, beyond the verifications
//! already running and that share ([`Failures`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use password_fields::cost::Cost;

use crate::fair::{Class, FairPermits};

/// `password-hash` calls one store (one check, one lookup) may make: a
/// check needs one, or one against a decoy for an absent user.
pub const PER_STORE: u32 = 2;

/// The caps a hash must be within to be verified natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Argon2 memory, in KiB: the plugin's own memory limit, at most
    /// [`Caps::ARGON2_MEMORY_KIB`].
    pub argon2_memory_kib: u32,
    /// Off (`--plugin-native-hashes no`): every hash is declined.
    pub enabled: bool,
}

/// Why a hash is not verified natively.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Declined {
    /// Not a slow hash: plain text, SCRAM keys, an unknown scheme.
    #[error("not a hash the host verifies")]
    Unsupported,
    /// Past a cap; the text names it.
    #[error("{0}")]
    OverLimit(String),
    /// Looks like a slow hash but cannot be read (its shape, never its
    /// content).
    #[error("{0}")]
    Malformed(String),
}

impl Declined {
    /// Its label on the metrics page.
    pub fn outcome(&self) -> &'static str {
        match self {
            Declined::Unsupported => "unsupported",
            Declined::OverLimit(_) => "over_limit",
            Declined::Malformed(_) => "malformed",
        }
    }
}

impl Caps {
    /// The most Argon2 memory verified natively, whatever the plugin's
    /// memory limit: 256 MiB.
    pub const ARGON2_MEMORY_KIB: u32 = 256 << 10;
    /// Argon2 memory times passes, in KiB: 1 GiB, about a second of one
    /// core (19 MiB × 2 passes took 38 ms on the benchmark machine).
    pub const ARGON2_WORK_KIB: u64 = 1 << 20;
    /// Argon2 lanes (run one after another here).
    pub const ARGON2_LANES: u32 = 16;
    /// bcrypt cost: 2^13 rounds, about 0.8 s.
    pub const BCRYPT_COST: u32 = 13;
    /// SHA-crypt rounds: about 0.5 s with a short password.
    pub const SHA_CRYPT_ROUNDS: u32 = 1_000_000;
    /// Password bytes, any scheme.
    pub const PASSWORD_BYTES: usize = 1024;
    /// Password bytes for SHA-crypt, whose every round hashes the whole
    /// password several times.
    pub const SHA_CRYPT_PASSWORD_BYTES: usize = 256;
    /// Stored field bytes.
    pub const STORED_BYTES: usize = 512;

    /// The caps for a plugin whose memory limit is `memory` bytes.
    pub fn for_memory(memory: usize) -> Caps {
        let kib = u32::try_from(memory >> 10).unwrap_or(u32::MAX);
        Caps {
            argon2_memory_kib: kib.min(Self::ARGON2_MEMORY_KIB),
            enabled: true,
        }
    }

    /// These caps, or none at all when native verification is off.
    pub fn enabled(self, enabled: bool) -> Caps {
        Caps { enabled, ..self }
    }

    /// Whether `stored` may be checked against a password of
    /// `password_len` bytes natively: its cost, or why not.
    pub fn admit(&self, stored: &str, password_len: usize) -> Result<Cost, Declined> {
        if !self.enabled || stored.len() > Self::STORED_BYTES {
            return Err(Declined::Unsupported);
        }
        let cost = match password_fields::cost::of(stored) {
            None => return Err(Declined::Unsupported),
            Some(Err(why)) => return Err(Declined::Malformed(why)),
            Some(Ok(cost)) => cost,
        };
        let over = |what: String| Err(Declined::OverLimit(what));
        if password_len > Self::PASSWORD_BYTES {
            // The text reaches the debug log: it gives the bound, never
            // the password's length.
            return over(format!("a password over {} bytes", Self::PASSWORD_BYTES));
        }
        match cost {
            Cost::Argon2 {
                memory_kib,
                passes,
                lanes,
            } => {
                if memory_kib > self.argon2_memory_kib {
                    return over(format!(
                        "argon2 memory of {memory_kib} KiB, over {} KiB",
                        self.argon2_memory_kib
                    ));
                }
                let work = u64::from(memory_kib) * u64::from(passes);
                if work > Self::ARGON2_WORK_KIB {
                    return over(format!(
                        "argon2 memory × passes of {work} KiB, over {} KiB",
                        Self::ARGON2_WORK_KIB
                    ));
                }
                if lanes > Self::ARGON2_LANES {
                    return over(format!(
                        "argon2 with {lanes} lanes, over {}",
                        Self::ARGON2_LANES
                    ));
                }
            }
            Cost::Bcrypt { cost } if cost > Self::BCRYPT_COST => {
                return over(format!("bcrypt cost {cost}, over {}", Self::BCRYPT_COST));
            }
            Cost::ShaCrypt { rounds } if rounds > Self::SHA_CRYPT_ROUNDS => {
                return over(format!(
                    "sha-crypt with {rounds} rounds, over {}",
                    Self::SHA_CRYPT_ROUNDS
                ));
            }
            Cost::ShaCrypt { .. } if password_len > Self::SHA_CRYPT_PASSWORD_BYTES => {
                return over(format!(
                    "a password over {} bytes for sha-crypt",
                    Self::SHA_CRYPT_PASSWORD_BYTES
                ));
            }
            Cost::Bcrypt { .. } | Cost::ShaCrypt { .. } => {}
        }
        Ok(cost)
    }
}

tokio::task_local! {
    /// The client the login in progress is for, as counted by
    /// `penalty::key`.
    static CLIENT: IpAddr;
}

/// Runs `login` (a check, with the checker's `password-hash` calls) on
/// behalf of `client`, whose turn its verifications wait for. Work outside
/// any login (the conformance tool, tests) shares one turn.
pub async fn for_client<F: Future>(client: IpAddr, login: F) -> F::Output {
    CLIENT.scope(crate::penalty::key(client), login).await
}

/// How long a verification that did not match makes its client wait
/// behind the others.
pub const FORGET_FAILURE: Duration = Duration::from_secs(15 * 60);

/// Clients whose last verification did not match, and when. Bounded: when
/// full, and no entry is old enough to forget, a new client is not added
/// (it waits in turn with the clients without failures, as if there were
/// no classes).
pub struct Failures {
    last: Mutex<HashMap<IpAddr, Instant>>,
    max: usize,
}

impl Failures {
    /// The most clients remembered (about 3 MiB when full).
    pub const MAX: usize = 65_536;

    pub fn new(max: usize) -> Failures {
        Failures {
            last: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The class `client` waits in at `now`.
    pub fn class(&self, client: IpAddr, now: Instant) -> Class {
        match self.lock().get(&client) {
            Some(&at) if now.duration_since(at) < FORGET_FAILURE => Class::Other,
            _ => Class::Preferred,
        }
    }

    /// Records how `client`'s verification at `now` came out.
    pub fn record(&self, client: IpAddr, matched: bool, now: Instant) {
        let mut last = self.lock();
        if matched {
            last.remove(&client);
            return;
        }
        if last.len() >= self.max && !last.contains_key(&client) {
            last.retain(|_, at| now.duration_since(*at) < FORGET_FAILURE);
            if last.len() >= self.max {
                return;
            }
        }
        last.insert(client, now);
    }
}

/// The host's verifications, one per CPU at a time, shared fairly among
/// clients.
pub struct Verifier {
    permits: Arc<FairPermits<IpAddr>>,
    failures: Failures,
}

impl Verifier {
    /// The process's verifier.
    pub fn global() -> &'static Verifier {
        static VERIFIER: OnceLock<Verifier> = OnceLock::new();
        VERIFIER.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            Verifier {
                permits: FairPermits::new(cpus),
                failures: Failures::new(Failures::MAX),
            }
        })
    }

    /// Whether `password` matches `stored`, which [`Caps::admit`] has
    /// admitted. Waits for a permit first, in the turn of the login's
    /// client ([`for_client`]) and in its class ([`Failures`]); the work
    /// runs on tokio's blocking threads, holding the permit until it ends.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, Declined> {
        let client = CLIENT
            .try_with(|client| *client)
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let class = self.failures.class(client, Instant::now());
        tracing::debug!(%client, ?class, "password-hash waits for its turn");
        let permit = self.permits.acquire(client, class).await;
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            password_fields::hash::verify(&password, &stored)
        });
        match work.await {
            Ok(Ok(matches)) => {
                self.failures.record(client, matches, Instant::now());
                Ok(matches)
            }
            Ok(Err(why)) => Err(Declined::Malformed(why)),
            // A panic in the hash code: let the guest try (and fault).
            Err(_) => Err(Declined::Unsupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGON2: &str = "$argon2id$v=19$m=19456,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08";
    const BCRYPT: &str = "$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e";
    const SHA512: &str = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";

    fn over(caps: &Caps, stored: &str, password_len: usize) -> bool {
        matches!(
            caps.admit(stored, password_len),
            Err(Declined::OverLimit(_))
        )
    }

    #[test]
    fn caps_follow_the_plugin_memory_limit() {
        assert_eq!(Caps::for_memory(96 << 20).argon2_memory_kib, 96 << 10);
        assert_eq!(Caps::for_memory(512 << 20).argon2_memory_kib, 256 << 10);
        let small = Caps::for_memory(16 << 20);
        assert!(over(&small, ARGON2, 8), "19 MiB over a 16 MiB plugin");
        assert!(Caps::for_memory(96 << 20).admit(ARGON2, 8).is_ok());
    }

    #[test]
    fn costs_past_the_caps_are_declined() {
        let caps = Caps::for_memory(96 << 20);
        let argon = |m: u32, t: u32, p: u32| {
            format!(
                "$argon2id$v=19$m={m},t={t},p={p}$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08"
            )
        };
        assert!(caps.admit(&argon(65536, 16, 4), 8).is_ok(), "exactly 1 GiB");
        assert!(over(&caps, &argon(65536, 17, 4), 8));
        assert!(over(&caps, &argon(98305, 1, 1), 8));
        assert!(over(&caps, &argon(1024, 2, 17), 8));
        let bcrypt = |cost: u32| {
            format!("$2b${cost:02}$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e")
        };
        assert!(caps.admit(&bcrypt(13), 8).is_ok());
        assert!(over(&caps, &bcrypt(14), 8));
        assert!(caps.admit("$6$rounds=1000000$salt$x", 8).is_ok());
        assert!(over(&caps, "$6$rounds=1000001$salt$x", 8));
        assert!(caps.admit(SHA512, 256).is_ok());
        assert!(
            over(&caps, SHA512, 257),
            "sha-crypt's cost grows with the password"
        );
        assert!(caps.admit(BCRYPT, 1024).is_ok());
        assert!(over(&caps, BCRYPT, 1025));
        let Err(Declined::OverLimit(text)) = caps.admit(SHA512, 300) else {
            panic!("over the sha-crypt password cap");
        };
        assert!(
            !text.contains("300"),
            "the password's length is not told: {text}"
        );
    }

    #[test]
    fn only_slow_hashes_are_taken() {
        let caps = Caps::for_memory(96 << 20);
        for stored in [
            "secret",
            "{SCRAM-SHA-256}4096,a,b,c",
            "$1$md5$x",
            "$y$j9T$salt$hash",
        ] {
            assert_eq!(
                caps.admit(stored, 8),
                Err(Declined::Unsupported),
                "{stored}"
            );
        }
        assert!(matches!(
            caps.admit("$2b$xx$zz", 8),
            Err(Declined::Malformed(_))
        ));
        let long = format!("{SHA512}{}", "x".repeat(600));
        assert_eq!(caps.admit(&long, 8), Err(Declined::Unsupported));
        let off = caps.enabled(false);
        assert_eq!(
            off.admit(SHA512, 8),
            Err(Declined::Unsupported),
            "switched off"
        );
    }

    #[tokio::test]
    async fn verifies_natively() {
        let verifier = Verifier::global();
        // argon2-cffi's vector, m=1024 KiB (the m=19456 one above only
        // tests the caps).
        let argon2 = "$argon2id$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08";
        for (stored, right) in [
            (argon2, "correct horse"),
            (BCRYPT, "correct horse"),
            (SHA512, "password"),
        ] {
            assert_eq!(
                verifier.verify(right.into(), stored.into()).await,
                Ok(true),
                "{stored}"
            );
            assert_eq!(
                verifier.verify("wrong".into(), stored.into()).await,
                Ok(false),
                "{stored}"
            );
        }
        assert!(matches!(
            verifier
                .verify("x".into(), "$argon2id$v=19$m=8,t=1,p=1".into())
                .await,
            Err(Declined::Malformed(_))
        ));
    }

    #[test]
    fn a_failed_verification_sends_its_client_behind_until_a_match_or_forgotten() {
        let failures = Failures::new(2);
        let (a, b, c) = (
            IpAddr::from([192, 0, 2, 1]),
            IpAddr::from([192, 0, 2, 2]),
            IpAddr::from([192, 0, 2, 3]),
        );
        let t0 = Instant::now();
        assert_eq!(failures.class(a, t0), Class::Preferred);
        failures.record(a, false, t0);
        assert_eq!(failures.class(a, t0), Class::Other);
        assert_eq!(failures.class(b, t0), Class::Preferred, "only a failed");
        failures.record(a, true, t0);
        assert_eq!(failures.class(a, t0), Class::Preferred, "a match clears it");

        failures.record(a, false, t0);
        failures.record(b, false, t0);
        failures.record(c, false, t0);
        assert_eq!(
            failures.class(c, t0),
            Class::Preferred,
            "full: a new client is not remembered"
        );
        let later = t0 + FORGET_FAILURE;
        assert_eq!(failures.class(a, later), Class::Preferred, "forgotten");
        failures.record(c, false, later);
        assert_eq!(
            failures.class(c, later),
            Class::Other,
            "room once forgotten"
        );
        assert_eq!(failures.lock().len(), 1, "the forgotten were dropped");
    }
}
