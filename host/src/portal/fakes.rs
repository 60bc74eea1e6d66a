//! In-memory implementations of the portal's roles, for tests that must
//! run without compiling a guest: a checker per credential kind, a realm
//! whose avatars record what they are given, and a PLAIN mechanism.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    Avatar, AvatarInterface, ChannelInfo, Checker, CredentialKind, Credentials, Denial, EchoReply,
    Exchange, Fault, FaultKind, Mechanism, MechanismInfo, Mind, Realm, ReceivedInfo, Rejection,
    ScramKeys, SecretEntry, SecretSource, Step, StoredSecret, Verdict,
};

/// A checker for the kinds it is given: `user`/`password` pass, anonymous
/// always does, and every call is counted.
pub struct FakeChecker {
    pub name: &'static str,
    pub kinds: Vec<CredentialKind>,
    pub users: HashMap<String, String>,
    pub checks: AtomicUsize,
    /// Answer every check with this fault instead.
    pub unavailable: bool,
}

impl FakeChecker {
    pub fn new(name: &'static str, kinds: &[CredentialKind]) -> Arc<FakeChecker> {
        Arc::new(FakeChecker {
            name,
            kinds: kinds.to_vec(),
            users: HashMap::from([("user".to_owned(), "password".to_owned())]),
            checks: AtomicUsize::new(0),
            unavailable: false,
        })
    }

    pub fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Checker for FakeChecker {
    fn name(&self) -> &str {
        self.name
    }

    async fn credential_kinds(&self) -> Result<Vec<CredentialKind>, Fault> {
        Ok(self.kinds.clone())
    }

    async fn check(&self, credentials: &Credentials) -> Verdict<String> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.unavailable {
            return Err(Fault::new(self.name, FaultKind::Unavailable, "down"));
        }
        Ok(match credentials {
            Credentials::UsernamePassword {
                username, password, ..
            } => match self.users.get(username) {
                Some(p) if p == password => Ok(username.clone()),
                Some(_) => Err(Denial::BadCredentials),
                None => Err(Denial::UnknownUser),
            },
            Credentials::Anonymous { .. } => Ok("anonymous".into()),
            other => match other.claimed_user() {
                Some(user) => Ok(user.to_owned()),
                None => Err(Denial::Unsupported),
            },
        })
    }

    async fn lookup_secret(&self, username: &str, _kind: CredentialKind) -> Verdict<SecretEntry> {
        Ok(match self.users.get(username) {
            Some(p) => Ok(SecretEntry {
                avatar_id: username.to_owned(),
                secret: StoredSecret::Scram(ScramKeys {
                    salt: b"salt".to_vec(),
                    iterations: 4096,
                    stored_key: p.as_bytes().to_vec(),
                    server_key: Vec::new(),
                }),
            }),
            None => Err(Denial::UnknownUser),
        })
    }
}

/// What a fake realm's avatars were given.
#[derive(Default)]
pub struct Record {
    pub avatars: Vec<Option<String>>,
    pub messages: Vec<Vec<u8>>,
    pub logouts: usize,
}

/// A realm serving both interfaces, refusing `refuse` as an avatar id.
pub struct FakeRealm {
    pub name: &'static str,
    pub refuse: Option<&'static str>,
    /// What it says of itself ([`Realm::grants_every_identity`]), true or
    /// not.
    pub grants_all: bool,
    pub record: Arc<Mutex<Record>>,
}

impl FakeRealm {
    pub fn new(name: &'static str) -> Arc<FakeRealm> {
        Arc::new(FakeRealm {
            name,
            refuse: None,
            grants_all: false,
            record: Arc::default(),
        })
    }
}

#[async_trait]
impl Realm for FakeRealm {
    fn name(&self) -> &str {
        self.name
    }

    fn grants_every_identity(&self) -> bool {
        self.grants_all
    }

    async fn request_avatar(
        &self,
        avatar_id: Option<&str>,
        interface: AvatarInterface,
        _mind: &Mind,
    ) -> Verdict<Box<dyn Avatar>> {
        if avatar_id.is_some() && avatar_id == self.refuse {
            return Ok(Err(Denial::AccountDisabled));
        }
        self.record
            .lock()
            .unwrap()
            .avatars
            .push(avatar_id.map(str::to_owned));
        Ok(Ok(Box::new(FakeAvatar {
            realm: self.name,
            interface,
            record: self.record.clone(),
        })))
    }
}

struct FakeAvatar {
    realm: &'static str,
    interface: AvatarInterface,
    record: Arc<Mutex<Record>>,
}

#[async_trait]
impl Avatar for FakeAvatar {
    fn interface(&self) -> AvatarInterface {
        self.interface
    }

    fn realm_name(&self) -> &str {
        self.realm
    }

    fn is_poisoned(&self) -> bool {
        false
    }

    async fn echo_line(&mut self, line: &str) -> Result<EchoReply, Fault> {
        Ok(EchoReply {
            lines: vec![line.to_owned()],
            close: false,
        })
    }

    async fn validate_from(
        &mut self,
        _: &str,
        sender: &str,
    ) -> Result<Result<(), Rejection>, Fault> {
        Ok(match sender.starts_with("spammer") {
            true => Err(Rejection {
                permanent: true,
                text: "No spammers".into(),
            }),
            false => Ok(()),
        })
    }

    async fn validate_to(&mut self, _: &str) -> Result<Result<(), Rejection>, Fault> {
        Ok(Ok(()))
    }

    async fn received_header(&mut self, _: &ReceivedInfo) -> Result<Option<String>, Fault> {
        Ok(None)
    }

    async fn deliver(
        &mut self,
        _: &ReceivedInfo,
        message: &[u8],
    ) -> Result<Result<(), Rejection>, Fault> {
        self.record.lock().unwrap().messages.push(message.to_vec());
        Ok(Ok(()))
    }

    async fn logout(self: Box<Self>) {
        self.record.lock().unwrap().logouts += 1;
    }
}

/// PLAIN (RFC 4616), or with `secret_lookup` a mechanism that looks the
/// user's secret up and vouches for it (as SCRAM does).
pub struct FakePlain {
    pub exchanges: Arc<AtomicUsize>,
    /// Sent with a success (as SCRAM's server-final message).
    pub additional_data: Option<Vec<u8>>,
    /// Sent after a denial (as XOAUTH2's error).
    pub error_challenge: Option<Vec<u8>>,
}

impl FakePlain {
    pub fn new() -> Arc<FakePlain> {
        Arc::new(FakePlain {
            exchanges: Arc::default(),
            additional_data: None,
            error_challenge: None,
        })
    }

    /// Exchanges alive now.
    pub fn live(&self) -> usize {
        self.exchanges.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Mechanism for FakePlain {
    fn name(&self) -> &str {
        "fake-plain"
    }

    async fn info(&self) -> Result<MechanismInfo, Fault> {
        Ok(MechanismInfo {
            name: "PLAIN".into(),
            plaintext: true,
            kinds: vec![CredentialKind::UsernamePassword],
        })
    }

    async fn exchange(
        &self,
        _secrets: Arc<dyn SecretSource>,
        _channel: ChannelInfo,
        _declared: &[CredentialKind],
    ) -> Result<Box<dyn Exchange>, Fault> {
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(PlainExchange {
            live: self.exchanges.clone(),
            additional_data: self.additional_data.clone(),
            error_challenge: self.error_challenge.clone(),
        }))
    }
}

struct PlainExchange {
    live: Arc<AtomicUsize>,
    additional_data: Option<Vec<u8>>,
    error_challenge: Option<Vec<u8>>,
}

impl Drop for PlainExchange {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Exchange for PlainExchange {
    async fn start(&mut self, initial_response: Option<&[u8]>) -> Result<Step, Fault> {
        Ok(match initial_response {
            None => Step::Challenge(Vec::new()),
            Some(message) => plain(message, &self.additional_data),
        })
    }

    async fn step(&mut self, response: &[u8]) -> Result<Step, Fault> {
        Ok(plain(response, &self.additional_data))
    }

    async fn denied(&mut self) -> Result<Option<Vec<u8>>, Fault> {
        Ok(self.error_challenge.clone())
    }

    fn vouched_avatar(&self, _: &str, _: CredentialKind) -> Option<String> {
        None
    }
}

fn plain(message: &[u8], additional_data: &Option<Vec<u8>>) -> Step {
    let text = String::from_utf8_lossy(message);
    match text.split('\0').collect::<Vec<_>>()[..] {
        [_, user, pass] => Step::Success {
            credentials: Credentials::UsernamePassword {
                authzid: None,
                username: user.to_owned(),
                password: pass.to_owned(),
            },
            additional_data: additional_data.clone(),
        },
        _ => Step::Failure("malformed".into()),
    }
}
