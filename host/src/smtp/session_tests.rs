//! Whole sessions over `tokio::io::duplex`, with the portal's in-memory
//! fakes and paused time: the clocks (failure delay, idle and step
//! timeouts) are tested without waiting for them.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{AuthPolicy, SessionLimits, SmtpConfig, TlsOnly};
use crate::portal::fakes::{FakeChecker, FakePlain, FakeRealm};
use crate::portal::{AvatarInterface, CredentialKind, Portal};
use crate::sasl::Mechanisms;
use crate::services::{Live, Services};

struct World {
    realm: Arc<FakeRealm>,
    plain: Arc<FakePlain>,
    live: Arc<Live>,
}

async fn services(name: &'static str) -> (Services, Arc<FakeRealm>, Arc<FakePlain>) {
    let mut portal = Portal::default();
    let checker = FakeChecker::new("passwords", &[CredentialKind::UsernamePassword]);
    portal.register_checker(checker).await.unwrap();
    let realm = FakeRealm::new(name);
    portal.register_realm(AvatarInterface::MessageDelivery, realm.clone());
    let plain = FakePlain::new();
    let mut mechanisms = Mechanisms::default();
    mechanisms.register(plain.clone()).await.unwrap();
    let services = Services {
        portal: Arc::new(portal),
        mechanisms: Arc::new(mechanisms),
    };
    (services, realm, plain)
}

async fn start(policy: AuthPolicy) -> (World, Client) {
    let (services, realm, plain) = services("realm").await;
    let live = Live::new(services);
    let config = Arc::new(SmtpConfig {
        services: live.clone(),
        server_name: "mx.test".into(),
        tls: None,
        policy,
        limits: SessionLimits {
            idle_timeout: Duration::from_secs(300),
            ..SessionLimits::default()
        },
        penalty: Arc::new(crate::penalty::Penalty::new(
            Duration::ZERO,
            Duration::ZERO,
            Vec::new(),
        )),
        clients: crate::limits::ClientLimits::unlimited(),
        step_timeout: Duration::from_secs(20),
    });
    let (client, server) = tokio::io::duplex(64 << 10);
    let (_down, shutdown) = watch::channel(false);
    let peer = "127.0.0.1:4000".parse().unwrap();
    tokio::spawn(async move {
        let _keep = _down;
        super::serve(server, peer, config, shutdown, false).await
    });
    let mut client = Client {
        stream: BufReader::new(client),
    };
    assert!(client.reply().await.starts_with("220 "));
    let world = World { realm, plain, live };
    (world, client)
}

fn policy() -> AuthPolicy {
    AuthPolicy {
        required: true,
        tls_only: TlsOnly::Auto,
        failure_delay: Duration::from_secs(2),
        max_failures: 2,
    }
}

struct Client {
    stream: BufReader<DuplexStream>,
}

impl Client {
    /// The last line of the next reply (empty when the server closed).
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await.unwrap() == 0 {
                return String::new();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    async fn send(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream.write_all(line.as_bytes()).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }

    async fn say(&mut self, line: &str) -> String {
        self.send(line).await;
        self.reply().await
    }
}

/// `AUTH PLAIN` initial response for user/pass.
fn plain(user: &str, pass: &str) -> String {
    crate::sasl::encode(format!("\0{user}\0{pass}").as_bytes())
}

#[tokio::test(start_paused = true)]
async fn login_and_deliver() {
    let (world, mut c) = start(policy()).await;
    assert!(c.say("EHLO client").await.starts_with("250 HELP"));
    assert!(c.say("MAIL FROM:<a@b>").await.starts_with("530"));
    let auth = format!("AUTH PLAIN {}", plain("user", "password"));
    assert!(c.say(&auth).await.starts_with("235 2.7.0"));
    assert!(c.say("AUTH PLAIN").await.starts_with("503"));
    assert!(c.say("MAIL FROM:<a@b>").await.starts_with("250"));
    assert!(c.say("RCPT TO:<x@y>").await.starts_with("250"));
    assert!(c.say("DATA").await.starts_with("354"));
    // Pipelined text, a dot-stuffed line and the end.
    c.send("Subject: hi\r\n..dot\r\n.").await;
    assert!(c.reply().await.starts_with("250 2.0.0 Message accepted"));
    assert!(c.say("QUIT").await.starts_with("221"));
    assert_eq!(c.reply().await, "");
    {
        let record = world.realm.record.lock().unwrap();
        assert_eq!(record.avatars, vec![Some("user".to_owned())]);
        let message = String::from_utf8(record.messages[0].clone()).unwrap();
        assert!(message.starts_with("Received: from client"), "{message}");
        assert!(message.ends_with("Subject: hi\r\n.dot\r\n"), "{message}");
    }
    tokio::task::yield_now().await;
    assert_eq!(world.realm.record.lock().unwrap().logouts, 1);
}

#[tokio::test(start_paused = true)]
async fn failures_wait_then_close() {
    let (_world, mut c) = start(policy()).await;
    c.say("EHLO client").await;
    let started = Instant::now();
    let auth = format!("AUTH PLAIN {}", plain("user", "wrong"));
    assert!(c.say(&auth).await.starts_with("535 5.7.8"));
    assert!(started.elapsed() >= Duration::from_secs(2));
    // A two-step exchange: the challenge, then the response.
    assert_eq!(c.say("AUTH PLAIN").await, "334");
    assert!(c.say(&plain("nobody", "x")).await.starts_with("535"));
    assert!(c.reply().await.starts_with("421"));
    assert_eq!(c.reply().await, "");
    assert!(started.elapsed() >= Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_exchange_is_cancelled_and_freed() {
    let (world, mut c) = start(policy()).await;
    c.say("EHLO client").await;
    assert_eq!(c.say("AUTH PLAIN").await, "334");
    assert_eq!(world.plain.live(), 1);
    let started = Instant::now();
    let answer = c.reply().await;
    assert!(answer.starts_with("501 5.7.0"), "{answer}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(20) && waited < Duration::from_secs(21));
    assert_eq!(world.plain.live(), 0);
    // The client may try again; `*` cancels.
    assert_eq!(c.say("AUTH PLAIN").await, "334");
    assert!(
        c.say("*")
            .await
            .starts_with("501 5.7.0 Authentication cancelled")
    );
    assert_eq!(world.plain.live(), 0);
    // And then idles out.
    let started = Instant::now();
    assert!(c.reply().await.starts_with("421 4.4.2"));
    assert!(started.elapsed() >= Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn an_exchange_keeps_the_services_it_started_with() {
    let (world, mut c) = start(policy()).await;
    c.say("EHLO client").await;
    assert_eq!(c.say("AUTH PLAIN").await, "334");
    // A reload lands half-way: the exchange finishes on the old set.
    let (fresh, new_realm, _) = services("new-realm").await;
    world.live.replace(fresh);
    assert!(c.say(&plain("user", "password")).await.starts_with("235"));
    assert_eq!(world.realm.record.lock().unwrap().avatars.len(), 1);
    assert!(new_realm.record.lock().unwrap().avatars.is_empty());
}
