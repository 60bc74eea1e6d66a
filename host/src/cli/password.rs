//! `portcullis password`: prints a password entry for the file and SQL
//! checkers, like `doveadm pw` or `saslpasswd2`. Argon2id by default; SCRAM
//! entries hold only the salt, iteration count, StoredKey and ServerKey
//! (RFC 5802 §3) in Dovecot's `{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY`
//! form, so the server never keeps the password itself.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Digest;

#[derive(Debug, clap::Args)]
pub struct PasswordArgs {
    /// How to store the password.
    #[arg(long, value_enum, default_value_t = Scheme::Argon2id)]
    pub scheme: Scheme,

    /// Print `USER:ENTRY`, a line for a password file.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// PBKDF2 iterations for SCRAM (default 4096), or the bcrypt cost
    /// (default 12).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// Argon2id, PHC string (`$argon2id$…`): the default.
    Argon2id,
    /// bcrypt (`$2b$…`).
    Bcrypt,
    /// SCRAM-SHA-256 stored keys: for SCRAM-SHA-256 logins only.
    #[value(name = "scram-sha-256")]
    ScramSha256,
    /// SCRAM-SHA-1 stored keys: for SCRAM-SHA-1 logins only.
    #[value(name = "scram-sha-1")]
    ScramSha1,
    /// The password itself: the only form CRAM-MD5 can use (RFC 2195
    /// needs the shared secret).
    Plain,
}

/// Reads the password (prompting twice on a terminal) and prints the entry.
pub fn run(args: &PasswordArgs) -> anyhow::Result<()> {
    let password = read_password()?;
    let entry = entry(args.scheme, &password, args.rounds)?;
    match &args.user {
        Some(user) if user.contains(':') => bail!("--user {user}: a name cannot contain ':'"),
        Some(user) => println!("{user}:{entry}"),
        None => println!("{entry}"),
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the two passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (give it as the first line)");
    }
    Ok(password)
}

/// The stored form of `password` under `scheme`.
pub fn entry(scheme: Scheme, password: &str, rounds: Option<u32>) -> anyhow::Result<String> {
    if password.contains(['\r', '\n']) {
        bail!("a password cannot contain a line break");
    }
    let mut salt = [0u8; 16];
    getrandom(&mut salt);
    Ok(match scheme {
        Scheme::Argon2id => {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
            argon2::Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
                .to_string()
        }
        Scheme::Bcrypt => {
            let cost = rounds.unwrap_or(12);
            if !(4..=31).contains(&cost) {
                bail!("--rounds {cost}: the bcrypt cost is 4 to 31");
            }
            bcrypt::hash_with_salt(password, cost, salt)?.format_for_version(bcrypt::Version::TwoB)
        }
        Scheme::ScramSha256 => {
            let keys = scram_keys(ScramHash::Sha256, password, &salt, scram_rounds(rounds)?);
            keys.entry("SCRAM-SHA-256")
        }
        Scheme::ScramSha1 => {
            let keys = scram_keys(ScramHash::Sha1, password, &salt, scram_rounds(rounds)?);
            keys.entry("SCRAM-SHA-1")
        }
        Scheme::Plain => password.to_owned(),
    })
}

fn scram_rounds(rounds: Option<u32>) -> anyhow::Result<u32> {
    let rounds = rounds.unwrap_or(4096);
    if rounds < 4096 {
        bail!("--rounds {rounds}: RFC 7677 asks for at least 4096 iterations");
    }
    Ok(rounds)
}

fn getrandom(buf: &mut [u8]) {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    OsRng.fill_bytes(buf);
}

/// RFC 5802 §3's stored keys.
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramKeys {
    fn entry(&self, scheme: &str) -> String {
        format!(
            "{{{scheme}}}{},{},{},{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.stored_key),
            STANDARD.encode(&self.server_key)
        )
    }
}

/// The hash a SCRAM mechanism is named after.
#[derive(Clone, Copy, Debug)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

/// SaltedPassword = PBKDF2(password, salt, i); ClientKey and ServerKey are
/// HMACs of it; StoredKey = H(ClientKey).
pub fn scram_keys(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> ScramKeys {
    macro_rules! derive {
        ($h:ty) => {{
            let mut salted = vec![0u8; <$h as Digest>::output_size()];
            pbkdf2::pbkdf2::<Hmac<$h>>(password.as_bytes(), salt, iterations, &mut salted)
                .expect("HMAC takes keys of any length");
            let hmac = |data: &[u8]| {
                let mut mac = <Hmac<$h> as Mac>::new_from_slice(&salted)
                    .expect("HMAC takes keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            };
            let client_key = hmac(b"Client Key");
            ScramKeys {
                salt: salt.to_vec(),
                iterations,
                stored_key: <$h>::digest(&client_key).to_vec(),
                server_key: hmac(b"Server Key"),
            }
        }};
    }
    match hash {
        ScramHash::Sha1 => derive!(sha1::Sha1),
        ScramHash::Sha256 => derive!(sha2::Sha256),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: the server signature of the `user`/`pencil` exchange
    /// follows from the ServerKey we store.
    #[test]
    fn scram_sha256_keys_reproduce_rfc7677() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = scram_keys(ScramHash::Sha256, "pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&keys.server_key).unwrap();
        mac.update(auth_message.as_bytes());
        assert_eq!(
            STANDARD.encode(mac.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let entry = keys.entry("SCRAM-SHA-256");
        assert!(
            entry.starts_with("{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"),
            "{entry}"
        );
    }

    #[test]
    fn entries_verify() {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let argon = entry(Scheme::Argon2id, "s3cret", None).unwrap();
        let parsed = PasswordHash::new(&argon).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        assert!(
            argon2::Argon2::default()
                .verify_password(b"other", &parsed)
                .is_err()
        );
        let bcrypt_entry = entry(Scheme::Bcrypt, "s3cret", Some(4)).unwrap();
        assert!(bcrypt_entry.starts_with("$2b$04$"));
        assert!(bcrypt::verify("s3cret", &bcrypt_entry).unwrap());
        assert_eq!(entry(Scheme::Plain, "s3cret", None).unwrap(), "s3cret");
        let sha1 = entry(Scheme::ScramSha1, "s3cret", None).unwrap();
        assert_eq!(sha1.split(',').count(), 4);
        assert!(sha1.starts_with("{SCRAM-SHA-1}4096,"));
        assert!(entry(Scheme::ScramSha256, "x", Some(10)).is_err());
        assert!(entry(Scheme::Bcrypt, "x", Some(40)).is_err());
        assert!(entry(Scheme::Plain, "a\nb", None).is_err());
        // Fresh salt each time.
        assert_ne!(entry(Scheme::Argon2id, "s", None).unwrap(), argon);
    }
}
