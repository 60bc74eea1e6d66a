//! The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), with the salted
//! password cached per salt and iteration count so the generator's own
//! PBKDF2 does not limit the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Salted passwords by salt and iteration count.
type SaltedCache = HashMap<(Vec<u8>, u32), [u8; 32]>;

pub struct ScramClient {
    user: String,
    pass: String,
    salted: Mutex<SaltedCache>,
    counter: AtomicU64,
}

/// One exchange in progress.
pub struct Exchange<'a> {
    client: &'a ScramClient,
    first_bare: String,
    auth_message: String,
    server_key: [u8; 32],
}

impl ScramClient {
    pub fn new(user: &str, pass: &str) -> ScramClient {
        ScramClient {
            user: user.to_owned(),
            pass: pass.to_owned(),
            salted: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        }
    }

    pub fn start(&self) -> Exchange<'_> {
        // A nonce unique to this process run; secrecy is not the point here.
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let seed = std::process::id() as u64
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0));
        let nonce = B64.encode(&Sha256::digest(format!("{seed}:{n}"))[..18]);
        Exchange {
            client: self,
            first_bare: format!("n={},r={nonce}", self.user),
            auth_message: String::new(),
            server_key: [0; 32],
        }
    }

    fn salted_password(&self, salt: &[u8], iterations: u32) -> [u8; 32] {
        let key = (salt.to_vec(), iterations);
        if let Some(s) = self.salted.lock().unwrap().get(&key) {
            return *s;
        }
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.pass.as_bytes(), salt, iterations, &mut out);
        self.salted.lock().unwrap().insert(key, out);
        out
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl Exchange<'_> {
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    pub fn client_final(&mut self, server_first: &[u8]) -> anyhow::Result<String> {
        let server_first = std::str::from_utf8(server_first).context("server-first UTF-8")?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(B64.decode(v).context("salt base64")?),
                Some(("i=", v)) => iterations = Some(v.parse::<u32>().context("iterations")?),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            bail!("server-first message lacks r, s or i: {server_first:?}");
        };
        let salted = self.client.salted_password(&salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let signature = hmac(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.server_key = hmac(&salted, b"Server Key");
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    pub fn verify_server(&self, server_final: &[u8]) -> anyhow::Result<()> {
        let want = B64.encode(hmac(&self.server_key, self.auth_message.as_bytes()));
        let got = std::str::from_utf8(server_final).unwrap_or("");
        if got.strip_prefix("v=") != Some(want.as_str()) {
            bail!("bad server signature {got:?}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example, with its client nonce.
    #[test]
    fn rfc7677_vector() {
        let client = ScramClient::new("user", "pencil");
        let mut ex = client.start();
        ex.first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = ex.client_final(server_first.as_bytes()).unwrap();
        assert!(
            fin.ends_with(",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            "{fin}"
        );
        ex.verify_server(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }
}
