//! CRAM-MD5 and SCRAM end to end: the real binary with its built-in
//! mechanism and checker plugins, over the echo service, against a client
//! computed here with RustCrypto. The SCRAM client checks the server
//! signature, as real clients do.
//!
//! XOAUTH2, OAUTHBEARER and EXTERNAL are covered by their crates' unit
//! tests only: no built-in checker serves bearer tokens or external
//! identities yet, so the host does not offer them (checked here).

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Client, LOGIN_DENIED, LOGIN_OK, Server, b64};
use hmac::{Hmac, Mac};

fn unb64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).expect("the server sent valid base64")
}

/// The data of a `+ base64` challenge line.
fn challenge_data(line: &str) -> Vec<u8> {
    let data = line
        .strip_prefix("+ ")
        .unwrap_or_else(|| panic!("expected a challenge, got {line:?}"));
    unb64(data)
}

fn password_file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords.txt");
    std::fs::write(&path, contents).unwrap();
    (dir, path.display().to_string())
}

// CRAM-MD5 (RFC 2195), client side.

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cram_md5_digest(password: &str, challenge: &[u8]) -> String {
    let mut mac = Hmac::<md5::Md5>::new_from_slice(password.as_bytes()).unwrap();
    mac.update(challenge);
    hex(&mac.finalize().into_bytes())
}

/// Runs a CRAM-MD5 exchange; returns the challenge and the server's reply.
fn cram_md5(client: &mut Client, user: &str, password: &str) -> (String, String) {
    let challenge = challenge_data(&client.ask("AUTH CRAM-MD5"));
    let response = format!("{user} {}", cram_md5_digest(password, &challenge));
    let reply = client.ask(&b64(response.as_bytes()));
    (String::from_utf8(challenge).unwrap(), reply)
}

#[test]
fn rfc_2195_vector() {
    assert_eq!(
        cram_md5_digest(
            "tanstaaftanstaaf",
            b"<1896.697170952@postoffice.reston.mci.net>"
        ),
        "b913a602c7eda7a495b4e6e7334d3890"
    );
}

#[test]
fn cram_md5_with_the_memory_checker() {
    let server = Server::start(&[
        "--auth",
        "memory:tim:tanstaaftanstaaf",
        "--server-name",
        "mail.example.net",
    ]);
    assert!(server.banner.contains("CRAM-MD5"), "{}", server.banner);

    let mut c = server.connect();
    let (first, reply) = cram_md5(&mut c, "tim", "tanstaaftanstaaf");
    assert_eq!(reply, LOGIN_OK);
    assert_eq!(c.ask("after CRAM-MD5"), "after CRAM-MD5");
    // <random.timestamp@server-name>
    let inner = first
        .strip_prefix('<')
        .and_then(|f| f.strip_suffix("@mail.example.net>"))
        .unwrap_or_else(|| panic!("challenge {first:?}"));
    let (random, timestamp) = inner.split_once('.').unwrap();
    assert!(random.parse::<u64>().is_ok() && timestamp.parse::<u64>().is_ok());

    let (second, _) = cram_md5(&mut server.connect(), "tim", "tanstaaftanstaaf");
    assert_ne!(first, second, "every exchange gets a fresh challenge");

    let mut c = server.connect();
    assert_eq!(cram_md5(&mut c, "tim", "tanstaafl").1, LOGIN_DENIED);
    c.expect_closed();
    assert_eq!(
        cram_md5(&mut server.connect(), "tom", "tanstaaftanstaaf").1,
        LOGIN_DENIED
    );
    let logs = server.wait_for_log("unknown user");
    assert!(logs.contains("bad credentials"), "{logs}");
    assert!(!logs.contains(&cram_md5_digest("tanstaafl", first.as_bytes())));
}

#[test]
fn cram_md5_with_a_password_file() {
    // `openssl passwd -5 -salt saltsalt password`
    let (_dir, path) = password_file(
        "tim:tanstaaftanstaaf\n\
         bob:$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.\n",
    );
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert_eq!(
        cram_md5(&mut server.connect(), "tim", "tanstaaftanstaaf").1,
        LOGIN_OK
    );
    assert_eq!(
        cram_md5(&mut server.connect(), "tim", "wrong").1,
        LOGIN_DENIED
    );
    // A hashed password cannot answer a challenge, even the right one.
    assert_eq!(
        cram_md5(&mut server.connect(), "bob", "password").1,
        LOGIN_DENIED
    );
    server.wait_for_log("not stored in plain text, which CRAM-MD5 needs");
    // The same user still logs in with the password itself.
    assert_eq!(server.connect().ask("bob password"), LOGIN_OK);
}

#[test]
fn malformed_cram_md5_responses_fail() {
    let server = Server::start(&["--auth", "memory:tim:tanstaaftanstaaf"]);
    let mut c = server.connect();
    challenge_data(&c.ask("AUTH CRAM-MD5"));
    assert_eq!(c.ask(&b64(b"tim not-a-digest")), LOGIN_DENIED);
    server.wait_for_log("malformed CRAM-MD5 response");
}

// SCRAM (RFC 5802, RFC 7677), client side.

#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn mechanism(self) -> &'static str {
        match self {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => {
                let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Hash::Sha256 => {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let password = password.as_bytes();
        match self {
            Hash::Sha1 => {
                let mut out = vec![0; 20];
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out);
                out
            }
            Hash::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    /// A Dovecot-style stored entry (`doveadm pw -s SCRAM-SHA-256`).
    fn dovecot_entry(self, password: &str, salt: &[u8], iterations: u32) -> String {
        let salted = self.salted_password(password, salt, iterations);
        let stored_key = self.hash(&self.hmac(&salted, b"Client Key"));
        let server_key = self.hmac(&salted, b"Server Key");
        format!(
            "{{{}}}{iterations},{},{},{}",
            self.mechanism(),
            b64(salt),
            b64(&stored_key),
            b64(&server_key)
        )
    }
}

/// How a SCRAM exchange went, seen from the client.
#[derive(Debug)]
struct Scram {
    salt: Vec<u8>,
    iterations: u32,
    /// The server-final message, when the server sent one.
    server_final: Option<String>,
    /// The server's last line.
    outcome: String,
    /// The client-final message as sent (base64), proof included.
    client_final: String,
}

const CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";

/// Runs a SCRAM exchange with the client-first message as the initial
/// response, checking the server signature when one arrives.
fn scram(c: &mut Client, hash: Hash, gs2_header: &str, user: &str, password: &str) -> Scram {
    let first_bare = format!("n={user},r={CLIENT_NONCE}");
    let first = format!("{gs2_header}{first_bare}");
    let reply = c.ask(&format!(
        "AUTH {} {}",
        hash.mechanism(),
        b64(first.as_bytes())
    ));
    let server_first = String::from_utf8(challenge_data(&reply)).unwrap();

    let mut fields = server_first.split(',');
    let mut field = |name: &str| {
        fields
            .next()
            .and_then(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {server_first:?}"))
            .to_owned()
    };
    let (nonce, salt, iterations) = (field("r="), field("s="), field("i="));
    assert!(
        nonce.starts_with(CLIENT_NONCE) && nonce.len() >= CLIENT_NONCE.len() + 16,
        "{nonce}"
    );
    let salt = unb64(&salt);
    let iterations: u32 = iterations.parse().unwrap();

    let salted = hash.salted_password(password, &salt, iterations);
    let client_key = hash.hmac(&salted, b"Client Key");
    let stored_key = hash.hash(&client_key);
    let without_proof = format!("c={},r={nonce}", b64(gs2_header.as_bytes()));
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hash.hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let client_final = format!("{without_proof},p={}", b64(&proof));

    let client_final = b64(client_final.as_bytes());
    let reply = c.ask(&client_final);
    let Some(data) = reply.strip_prefix("+ ") else {
        return Scram {
            salt,
            iterations,
            server_final: None,
            outcome: reply,
            client_final,
        };
    };
    let server_final = String::from_utf8(unb64(data)).unwrap();
    let server_key = hash.hmac(&salted, b"Server Key");
    let expected = format!(
        "v={}",
        b64(&hash.hmac(&server_key, auth_message.as_bytes()))
    );
    assert_eq!(server_final, expected, "the server signature must verify");
    // Like gsasl: acknowledge the server-final with an empty response.
    let outcome = c.ask("");
    Scram {
        salt,
        iterations,
        server_final: Some(server_final),
        outcome,
        client_final,
    }
}

#[test]
fn scram_sha_256_with_the_memory_checker() {
    let server = Server::start(&["--auth", "memory:user:pencil"]);
    assert!(server.banner.contains("SCRAM-SHA-256"), "{}", server.banner);

    let mut c = server.connect();
    let ok = scram(&mut c, Hash::Sha256, "n,,", "user", "pencil");
    assert!(ok.server_final.is_some());
    assert_eq!(ok.outcome, LOGIN_OK);
    assert_eq!(ok.iterations, 4096);
    assert_eq!(c.ask("after SCRAM"), "after SCRAM");

    let mut c = server.connect();
    let wrong = scram(&mut c, Hash::Sha256, "n,,", "user", "pencil2");
    assert_eq!(
        (wrong.server_final, wrong.outcome.as_str()),
        (None, LOGIN_DENIED)
    );
    c.expect_closed();
    server.wait_for_log("the client's proof is wrong");

    // An unknown user gets a server-first message like a real one and is
    // refused only after the proof; its salt is stable across attempts.
    let unknown = scram(&mut server.connect(), Hash::Sha256, "n,,", "nobody", "x");
    assert_eq!(
        (
            unknown.server_final,
            unknown.outcome.as_str(),
            unknown.iterations
        ),
        (None, LOGIN_DENIED, 4096)
    );
    let again = scram(&mut server.connect(), Hash::Sha256, "n,,", "nobody", "y");
    assert_eq!(unknown.salt, again.salt);
    assert_eq!(unknown.salt.len(), ok.salt.len());
    server.wait_for_log("mechanism failed: no such user");
}

#[test]
fn scram_sha_1_with_the_memory_checker() {
    let server = Server::start(&["--auth", "memory:user:pencil"]);
    let ok = scram(&mut server.connect(), Hash::Sha1, "n,,", "user", "pencil");
    assert_eq!(ok.outcome, LOGIN_OK);
    let wrong = scram(&mut server.connect(), Hash::Sha1, "n,,", "user", "pencil2");
    assert_eq!(wrong.outcome, LOGIN_DENIED);
}

#[test]
fn scram_authzid_and_channel_binding_flags() {
    let server = Server::start(&["--auth", "memory:user:pencil:root:toor"]);
    let as_self = scram(
        &mut server.connect(),
        Hash::Sha256,
        "y,a=user,",
        "user",
        "pencil",
    );
    assert_eq!(as_self.outcome, LOGIN_OK);
    // The proof is good, but user may not act as root: the portal denies,
    // so no server-final message is sent.
    let as_root = scram(
        &mut server.connect(),
        Hash::Sha256,
        "n,a=root,",
        "user",
        "pencil",
    );
    assert_eq!(
        (as_root.server_final, as_root.outcome.as_str()),
        (None, LOGIN_DENIED)
    );
    server.wait_for_log("not authorized for the requested identity");

    // Channel binding is refused at once: no -PLUS variant is offered.
    let mut c = server.connect();
    let first = format!("p=tls-unique,,n=user,r={CLIENT_NONCE}");
    assert_eq!(
        c.ask(&format!("AUTH SCRAM-SHA-256 {}", b64(first.as_bytes()))),
        LOGIN_DENIED
    );
    server.wait_for_log("asked for channel binding");
}

#[test]
fn scram_without_an_initial_response() {
    let server = Server::start(&["--auth", "memory:user:pencil"]);
    let mut c = server.connect();
    assert_eq!(c.ask("AUTH SCRAM-SHA-256"), "+");
    let first = format!("n,,n=user,r={CLIENT_NONCE}");
    let server_first = challenge_data(&c.ask(&b64(first.as_bytes())));
    assert!(server_first.starts_with(format!("r={CLIENT_NONCE}").as_bytes()));
    assert_eq!(c.ask("*"), "Authentication cancelled.");
}

#[test]
fn scram_with_a_password_file() {
    let salt = b"0123456789abcdef";
    let (_dir, path) = password_file(&format!(
        "# stored keys, as doveadm pw -s SCRAM-SHA-256 writes them\n\
         sam:{}\n\
         old:{}\n\
         user:pencil\n\
         bob:$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.\n",
        Hash::Sha256.dovecot_entry("sesame", salt, 4096),
        Hash::Sha1.dovecot_entry("sesame", salt, 8192),
    ));
    let server = Server::start(&["--auth", &format!("file:{path}")]);

    let stored = scram(&mut server.connect(), Hash::Sha256, "n,,", "sam", "sesame");
    assert_eq!(stored.outcome, LOGIN_OK);
    assert_eq!(stored.salt, salt, "the stored salt is used");
    let sha1 = scram(&mut server.connect(), Hash::Sha1, "n,,", "old", "sesame");
    assert_eq!((sha1.outcome.as_str(), sha1.iterations), (LOGIN_OK, 8192));
    let wrong = scram(&mut server.connect(), Hash::Sha256, "n,,", "sam", "Sesame");
    assert_eq!(wrong.outcome, LOGIN_DENIED);
    // A plain-text line serves SCRAM with derived keys.
    let plain = scram(&mut server.connect(), Hash::Sha256, "n,,", "user", "pencil");
    assert_eq!(plain.outcome, LOGIN_OK);

    // Stored keys of one variant do not serve the other, and a hash serves
    // neither; the client only sees a failure after its proof.
    let other = scram(&mut server.connect(), Hash::Sha1, "n,,", "sam", "sesame");
    assert_eq!(other.outcome, LOGIN_DENIED);
    server.wait_for_log("no SCRAM-SHA-1 keys stored for sam");
    let hashed = scram(
        &mut server.connect(),
        Hash::Sha256,
        "n,,",
        "bob",
        "password",
    );
    assert_eq!(hashed.outcome, LOGIN_DENIED);
    server.wait_for_log("no SCRAM keys stored for bob");

    // Stored SCRAM keys also verify clear-text logins.
    assert_eq!(server.connect().ask("sam sesame"), LOGIN_OK);
    assert_eq!(server.connect().ask("sam Sesame"), LOGIN_DENIED);
    let plain_sasl = format!("AUTH PLAIN {}", b64(b"\0old\0sesame"));
    assert_eq!(server.connect().ask(&plain_sasl), LOGIN_OK);
}

#[test]
fn an_unreadable_password_file_is_a_temporary_failure() {
    let (dir, path) = password_file("user:pencil\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    std::fs::remove_file(dir.path().join("passwords.txt")).unwrap();
    // The lookup fails before the server-first message: a fault, not a
    // denial, whatever the user.
    let mut c = server.connect();
    let first = format!("n,,n=user,r={CLIENT_NONCE}");
    assert_eq!(
        c.ask(&format!("AUTH SCRAM-SHA-256 {}", b64(first.as_bytes()))),
        common::TEMPORARY
    );
    c.expect_closed();
    let mut c = server.connect();
    challenge_data(&c.ask("AUTH CRAM-MD5"));
    assert_eq!(
        c.ask(&b64(b"user 00000000000000000000000000000000")),
        common::TEMPORARY
    );
    server.wait_for_log("cannot read password file");
}

#[test]
fn the_example_password_file_works_as_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/passwords.txt");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    let login = |hash, user, pass| scram(&mut server.connect(), hash, "n,,", user, pass).outcome;
    assert_eq!(login(Hash::Sha256, "erin", "erin-pass"), LOGIN_OK);
    assert_eq!(login(Hash::Sha256, "dave", "plain-text-pass"), LOGIN_OK);
    assert_eq!(login(Hash::Sha1, "dave", "plain-text-pass"), LOGIN_OK);
    assert_eq!(login(Hash::Sha1, "erin", "erin-pass"), LOGIN_DENIED);
    assert_eq!(login(Hash::Sha256, "alice", "wonderland"), LOGIN_DENIED);
    let cram = |user, pass| cram_md5(&mut server.connect(), user, pass).1;
    assert_eq!(cram("dave", "plain-text-pass"), LOGIN_OK);
    assert_eq!(cram("erin", "erin-pass"), LOGIN_DENIED);
}

#[test]
fn token_and_external_mechanisms_need_their_checkers() {
    let server = Server::start(&[]);
    for name in ["XOAUTH2", "OAUTHBEARER", "EXTERNAL"] {
        assert!(!server.banner.contains(name), "{}", server.banner);
        let reply = server.connect().ask(&format!("AUTH {name}"));
        assert!(
            reply.starts_with(&format!("Error: mechanism {name} is not available")),
            "{reply}"
        );
    }
    // They are loaded all the same (the host instantiated each built-in at
    // start to ask its name): only a loaded mechanism can be excluded.
    Server::start(&[
        "--exclude-mechanism",
        "xoauth2",
        "--exclude-mechanism",
        "oauthbearer",
        "--exclude-mechanism",
        "external",
    ]);
}

/// Every mechanism, each with the right and a wrong secret, over the echo
/// service and SMTP, with the logs at their most verbose and in JSON: no
/// password, token, SASL response, CRAM-MD5 digest, SCRAM proof or server
/// signature appears anywhere in them, while the outcomes do.
#[test]
fn no_secret_of_any_mechanism_reaches_the_logs() {
    const PASSWORD: &str = "Pw-correct-horse-17";
    const WRONG: &str = "Pw-wrong-battery-42";
    const TOKEN: &str = "tok-ya29-known-bearer-5150";
    const WRONG_TOKEN: &str = "tok-ya29-forged-bearer-0666";
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, format!("alice:{TOKEN}\n")).unwrap();
    let server = Server::start(&[
        // Everything at trace level but the compiler's own tracing, which
        // writes gigabytes when a plugin is compiled with a cold cache.
        "--log",
        "trace,cranelift_codegen=info,cranelift_frontend=info,regalloc2=info,\
         wasmtime_internal_cranelift=info,wasmtime_cranelift=info",
        "--log-format",
        "json",
        "--auth",
        &format!("memory:alice:{PASSWORD}"),
        "--auth",
        &format!("token:tokens={}", tokens.display()),
        "--auth",
        "anonymous",
        "--auth-failure-delay",
        "0s",
    ]);
    // Everything a client sent that carries a secret, as sent and decoded.
    let mut secrets: Vec<String> = [PASSWORD, WRONG, TOKEN, WRONG_TOKEN]
        .map(str::to_owned)
        .to_vec();
    let expect = |outcome: String, ok: bool, what: &str| {
        let wanted = if ok { LOGIN_OK } else { LOGIN_DENIED };
        assert_eq!(outcome, wanted, "{what}");
    };

    for (password, ok) in [(PASSWORD, true), (WRONG, false)] {
        let plain = b64(format!("\0alice\0{password}").as_bytes());
        let mut c = server.connect();
        expect(c.ask(&format!("AUTH PLAIN {plain}")), ok, "PLAIN");
        secrets.push(plain);

        let mut c = server.connect();
        c.ask("AUTH LOGIN");
        c.ask(&b64(b"alice"));
        let response = b64(password.as_bytes());
        expect(c.ask(&response), ok, "LOGIN");
        secrets.push(response);

        let mut c = server.connect();
        let (challenge, reply) = cram_md5(&mut c, "alice", password);
        expect(reply, ok, "CRAM-MD5");
        let digest = cram_md5_digest(password, challenge.as_bytes());
        secrets.push(b64(format!("alice {digest}").as_bytes()));
        secrets.push(digest);

        for hash in [Hash::Sha256, Hash::Sha1] {
            let mut c = server.connect();
            let exchange = scram(&mut c, hash, "n,,", "alice", password);
            expect(exchange.outcome, ok, hash.mechanism());
            let client_final = String::from_utf8(unb64(&exchange.client_final)).unwrap();
            let proof = client_final.rsplit_once(",p=").unwrap().1.to_owned();
            secrets.extend([exchange.client_final, proof]);
            if let Some(server_final) = exchange.server_final {
                secrets.push(server_final.trim_start_matches("v=").to_owned());
                secrets.push(b64(server_final.as_bytes()));
            }
        }
    }
    for (token, ok) in [(TOKEN, true), (WRONG_TOKEN, false)] {
        let xoauth2 = b64(format!("user=alice\x01auth=Bearer {token}\x01\x01").as_bytes());
        let mut c = server.connect();
        let reply = c.ask(&format!("AUTH XOAUTH2 {xoauth2}"));
        if ok {
            expect(reply, ok, "XOAUTH2");
        } else {
            // A failed XOAUTH2 answers with an error challenge first.
            assert!(reply.starts_with("+ "), "XOAUTH2: {reply}");
            expect(c.ask(""), ok, "XOAUTH2");
        }
        secrets.push(xoauth2);

        let bearer = b64(format!("n,a=alice,\x01auth=Bearer {token}\x01\x01").as_bytes());
        let mut c = server.connect();
        let reply = c.ask(&format!("AUTH OAUTHBEARER {bearer}"));
        if ok {
            expect(reply, ok, "OAUTHBEARER");
        } else {
            assert!(reply.starts_with("+ "), "OAUTHBEARER: {reply}");
            expect(c.ask(&b64(b"\x01")), ok, "OAUTHBEARER");
        }
        secrets.push(bearer);
    }
    let mut c = server.connect();
    expect(
        c.ask(&format!("AUTH ANONYMOUS {}", b64(b"trace"))),
        true,
        "ANONYMOUS",
    );

    // SMTP: PLAIN, LOGIN and XOAUTH2, right and wrong.
    for (password, token, code) in [(PASSWORD, TOKEN, 235), (WRONG, WRONG_TOKEN, 535)] {
        let plain = b64(format!("\0alice\0{password}").as_bytes());
        let mut c = server.smtp_client();
        assert_eq!(c.cmd("EHLO client.example").code, 250);
        assert_eq!(c.cmd(&format!("AUTH PLAIN {plain}")).code, code);

        let mut c = server.smtp_client();
        assert_eq!(c.cmd("EHLO client.example").code, 250);
        assert_eq!(c.cmd("AUTH LOGIN").code, 334);
        assert_eq!(c.cmd(&b64(b"alice")).code, 334);
        assert_eq!(c.cmd(&b64(password.as_bytes())).code, code);

        let xoauth2 = b64(format!("user=alice\x01auth=Bearer {token}\x01\x01").as_bytes());
        let mut c = server.smtp_client();
        assert_eq!(c.cmd("EHLO client.example").code, 250);
        let reply = c.cmd(&format!("AUTH XOAUTH2 {xoauth2}"));
        if code == 535 {
            assert_eq!(reply.code, 334);
            assert_eq!(c.cmd("").code, 535);
        } else {
            assert_eq!(reply.code, 235);
        }
        assert_eq!(c.cmd("QUIT").code, 221);
        secrets.extend([plain, xoauth2]);
    }

    // The outcomes are logged (so the logs were really captured at trace
    // level), the secrets never.
    let logs = server.wait_for_log(r#""mechanism":"XOAUTH2""#);
    for needle in [
        r#""result":"success""#,
        r#""result":"denied""#,
        r#""mechanism":"SCRAM-SHA-1""#,
        r#""mechanism":"OAUTHBEARER""#,
        r#""level":"TRACE""#,
    ] {
        assert!(logs.contains(needle), "no {needle} in the logs:\n{logs}");
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret ({secret:?}) reached the logs:\n{logs}"
        );
    }
}

#[test]
fn scram_keys_from_a_password_file_follow_its_edits() {
    let salt = b"0123456789abcdef";
    let (_dir, path) = password_file(&format!(
        "sam:{}\n",
        Hash::Sha256.dovecot_entry("sesame", salt, 4096)
    ));
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    let before = scram(&mut server.connect(), Hash::Sha256, "n,,", "sam", "sesame");
    assert_eq!(before.outcome, LOGIN_OK);
    let new = format!("{path}.new");
    std::fs::write(
        &new,
        format!("sam:{}\n", Hash::Sha256.dovecot_entry("open", salt, 4096)),
    )
    .unwrap();
    std::fs::rename(&new, &path).unwrap();
    let old = scram(&mut server.connect(), Hash::Sha256, "n,,", "sam", "sesame");
    assert_eq!(old.outcome, LOGIN_DENIED);
    let after = scram(&mut server.connect(), Hash::Sha256, "n,,", "sam", "open");
    assert_eq!(after.outcome, LOGIN_OK);
}
