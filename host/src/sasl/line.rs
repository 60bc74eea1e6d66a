//! One SASL exchange over a line protocol, the same for SMTP and echo: the
//! checks before it starts, each client line in turn (base64, `*`), the
//! additional data sent with the outcome and the client's answer to it.
//! Each protocol turns a [`Refusal`], a [`Turn`] and an [`Ending`] into its
//! own replies, and owns the clock (the step timeout drops the exchange).
//!
//! The exchange holds one snapshot of the portal and mechanisms from start
//! to end, so a reload half-way never mixes the old checker with the new
//! realm.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::authenticator::{Authenticator, Outcome, Progress, Purpose};
use super::framing::{Continuation, decode_continuation, decode_initial_response};
use super::registry::{Mechanisms, Mechname};
use crate::limits::{ClientLimits, Counted, Held};
use crate::portal::{ChannelInfo, Credentials, Denial, Fault, Login, Portal, Proof};

/// What a new exchange needs.
pub struct Begin<'a> {
    pub portal: Arc<Portal>,
    pub mechanisms: Arc<Mechanisms>,
    pub name: Mechname,
    /// The initial response as the client sent it (base64, or `=`).
    pub initial_response: Option<&'a [u8]>,
    /// Whether plaintext mechanisms may run on this connection now.
    pub allow_plaintext: bool,
    pub channel: ChannelInfo,
    pub purpose: Purpose,
    /// The per-address limit on exchanges in flight.
    pub clients: &'a Arc<ClientLimits>,
    pub peer: IpAddr,
}

/// Why an exchange did not start.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not loaded, or no checker serves what it needs. `offered` is what
    /// the client could have asked for.
    UnknownMechanism { offered: Vec<Mechname> },
    /// A plaintext mechanism on a connection that must encrypt first.
    EncryptionRequired,
    /// The initial response is not base64.
    BadBase64,
    /// This address has too many exchanges in flight.
    TooManyExchanges,
}

/// What to send next.
#[derive(Debug)]
pub enum Turn {
    /// A challenge (or the outcome's additional data): send it and hand
    /// the client's next line to [`LineExchange::on_line`].
    Challenge(Vec<u8>),
    /// The exchange is over.
    Over(Ending),
}

/// How an exchange ended.
#[derive(Debug)]
pub enum Ending {
    /// Logged in: the checker accepted and the realm handed out the avatar.
    Success {
        login: Login,
        /// The user name the client claimed, for the log.
        user: Option<String>,
        /// The checker that decided, for the log.
        plugin: Option<String>,
    },
    /// Not logged in (checker, mechanism or realm said no).
    Denied {
        denial: Denial,
        user: Option<String>,
        plugin: Option<String>,
    },
    /// A plugin failed: a temporary failure, never the client's fault.
    Fault(Fault),
    /// The client sent `*`.
    Cancelled,
    /// The client's response was not base64; the exchange is cancelled.
    BadBase64,
}

impl Ending {
    /// The ending of a login outside SASL (echo's `user pass` line).
    pub async fn of_password(
        portal: &Portal,
        credentials: &Credentials,
        purpose: &Purpose,
    ) -> Ending {
        let user = credentials.claimed_user().map(str::to_owned);
        let login = portal.login(
            Proof::Credentials(credentials),
            purpose.interface,
            &purpose.mind,
            purpose.when,
        );
        let answer = crate::password_hash::for_client(purpose.client, login).await;
        match answer {
            Ok(Ok(login)) => Ending::Success {
                login,
                user,
                plugin: portal
                    .checker_for(credentials.kind())
                    .map(|c| c.name().to_owned()),
            },
            Ok(Err(refused)) => Ending::Denied {
                plugin: refused.by.clone(),
                denial: refused.into_denial(),
                user,
            },
            Err(fault) => Ending::Fault(fault),
        }
    }

    fn of_outcome(outcome: Outcome) -> Ending {
        match outcome {
            Outcome::Success {
                login,
                user,
                plugin,
                ..
            } => Ending::Success {
                login,
                user,
                plugin,
            },
            Outcome::Denied {
                denial,
                user,
                plugin,
                ..
            } => Ending::Denied {
                denial,
                user,
                plugin,
            },
        }
    }
}

/// One exchange in progress.
pub struct LineExchange {
    /// `None` once the outcome is settled: the mechanism's instance is
    /// freed while the client acknowledges the outcome's data.
    auth: Option<Authenticator>,
    /// The outcome, held back until the client answers the data sent with
    /// it (SCRAM's server-final message, XOAUTH2's error).
    settled: Option<Outcome>,
    mechanism: Mechname,
    started: Instant,
    /// This exchange's share of its address's limit.
    _share: Held,
}

impl LineExchange {
    /// Checks the request and starts the mechanism on the initial
    /// response.
    pub async fn begin(begin: Begin<'_>) -> Result<(LineExchange, Turn), Refusal> {
        let Begin {
            portal,
            mechanisms,
            name,
            initial_response,
            allow_plaintext,
            channel,
            purpose,
            clients,
            peer,
        } = begin;
        let known = mechanisms.offered(&portal, true).any(|m| *m == name);
        let Some(registered) = known.then(|| mechanisms.get(&name)).flatten() else {
            let offered = mechanisms
                .offered(&portal, allow_plaintext)
                .cloned()
                .collect();
            return Err(Refusal::UnknownMechanism { offered });
        };
        if registered.info.plaintext && !allow_plaintext {
            return Err(Refusal::EncryptionRequired);
        }
        let initial = match initial_response.map(decode_initial_response) {
            None => None,
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(_)) => return Err(Refusal::BadBase64),
        };
        let share = clients
            .acquire(peer, Counted::Exchanges)
            .ok_or(Refusal::TooManyExchanges)?;
        let mut exchange = LineExchange {
            auth: None,
            settled: None,
            mechanism: name,
            started: Instant::now(),
            _share: share,
        };
        let turn = match Authenticator::new(registered, portal, channel, purpose).await {
            Err(fault) => Turn::Over(Ending::Fault(fault)),
            Ok(auth) => {
                let auth = exchange.auth.insert(auth);
                let progress = auth.start(initial.as_deref()).await;
                exchange.progress(progress)
            }
        };
        Ok((exchange, turn))
    }

    /// The client's next line.
    pub async fn on_line(&mut self, line: &[u8]) -> Turn {
        let continuation = decode_continuation(line);
        if let Some(outcome) = self.settled.take() {
            // The client's answer to the outcome's data is not looked at,
            // except that `*` withdraws from a success (RFC 4954 §4). A
            // denial stays a denial whatever the client answers.
            return match (outcome, continuation) {
                (Outcome::Success { login, .. }, Ok(Continuation::Cancel)) => {
                    login.avatar.logout().await;
                    Turn::Over(Ending::Cancelled)
                }
                (outcome, _) => Turn::Over(Ending::of_outcome(outcome)),
            };
        }
        let bytes = match continuation {
            Ok(Continuation::Data(bytes)) => bytes,
            Ok(Continuation::Cancel) => return Turn::Over(Ending::Cancelled),
            Err(_) => return Turn::Over(Ending::BadBase64),
        };
        let Some(auth) = self.auth.as_mut() else {
            // Neither settled nor running: a finished exchange was fed
            // again, which the protocols never do.
            return Turn::Over(Ending::Cancelled);
        };
        let progress = auth.step(&bytes).await;
        self.progress(progress)
    }

    fn progress(&mut self, progress: Result<Progress, Fault>) -> Turn {
        let outcome = match progress {
            Ok(Progress::Challenge(data)) => return Turn::Challenge(data),
            Ok(Progress::Done(outcome)) => outcome,
            Err(fault) => {
                self.auth = None;
                return Turn::Over(Ending::Fault(fault));
            }
        };
        self.auth = None;
        let data = match &outcome {
            Outcome::Success {
                additional_data, ..
            } => additional_data.clone(),
            Outcome::Denied {
                error_challenge, ..
            } => error_challenge.clone(),
        };
        match data {
            // RFC 4954 §4: additional data goes in one more challenge,
            // answered by an empty line, before the final reply.
            Some(data) => {
                self.settled = Some(outcome);
                Turn::Challenge(data)
            }
            None => Turn::Over(Ending::of_outcome(outcome)),
        }
    }

    pub fn mechanism(&self) -> &Mechname {
        &self.mechanism
    }

    /// When the exchange began, for the log and the metrics.
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for LineExchange {
    /// An exchange abandoned after a settled success (timeout, a line too
    /// long, the connection gone) still logs its avatar out.
    fn drop(&mut self) {
        if let Some(Outcome::Success { login, .. }) = self.settled.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(login.avatar.logout());
        }
    }
}

/// Logs and counts how a login ended: the same fields for every protocol.
pub fn report(
    protocol: &'static str,
    peer: SocketAddr,
    mechanism: &str,
    ending: &Ending,
    started: Instant,
) {
    let elapsed = started.elapsed();
    let elapsed_us = elapsed.as_micros() as u64;
    let result = match ending {
        Ending::Success { .. } => "success",
        Ending::Denied { .. } => "denied",
        Ending::Fault(_) => "fault",
        Ending::Cancelled | Ending::BadBase64 => return,
    };
    crate::metrics::METRICS.auth(protocol, mechanism, result, elapsed);
    match ending {
        Ending::Success {
            login,
            user,
            plugin,
        } => tracing::info!(protocol, %peer, mechanism = %mechanism,
            user = user.as_deref().unwrap_or(""),
            avatar_id = login.avatar_id.as_deref().unwrap_or("(anonymous)"),
            plugin = plugin.as_deref().unwrap_or(""),
            result, elapsed_us, "authenticated"),
        Ending::Denied {
            denial,
            user,
            plugin,
        } => tracing::info!(protocol, %peer, mechanism = %mechanism,
            user = user.as_deref().unwrap_or(""), result,
            plugin = plugin.as_deref().unwrap_or(""),
            reason = %denial, elapsed_us, "authentication denied"),
        Ending::Fault(fault) => tracing::warn!(protocol, %peer, mechanism = %mechanism, result,
            plugin = %fault.plugin, fault = %fault.kind, detail = %fault.detail, elapsed_us,
            "authentication failed: plugin fault"),
        Ending::Cancelled | Ending::BadBase64 => {}
    }
}

/// Logs an exchange the client kept waiting past the step timeout.
pub fn report_step_timeout(protocol: &'static str, peer: SocketAddr) {
    crate::metrics::METRICS.auth_step_timeout(protocol);
    tracing::info!(protocol, %peer,
        "SASL exchange timed out waiting for the client; cancelled");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::fakes::{FakeChecker, FakePlain, FakeRealm};
    use crate::portal::{AvatarInterface, AvatarWhen, CredentialKind, Mind};

    struct Setup {
        portal: Arc<Portal>,
        mechanisms: Arc<Mechanisms>,
        realm: Arc<FakeRealm>,
        plain: Arc<FakePlain>,
        clients: Arc<ClientLimits>,
    }

    async fn setup(plain: FakePlain) -> Setup {
        let mut portal = Portal::default();
        let checker = FakeChecker::new("passwords", &[CredentialKind::UsernamePassword]);
        portal.register_checker(checker).await.unwrap();
        let realm = FakeRealm::new("realm");
        portal.register_realm(AvatarInterface::Echo, realm.clone());
        let plain = Arc::new(plain);
        let mut mechanisms = Mechanisms::default();
        mechanisms.register(plain.clone()).await.unwrap();
        Setup {
            portal: Arc::new(portal),
            mechanisms: Arc::new(mechanisms),
            realm,
            plain,
            clients: ClientLimits::new(100, 1, Vec::new()),
        }
    }

    fn begin<'a>(s: &'a Setup, name: &str, initial: Option<&'a [u8]>) -> Begin<'a> {
        Begin {
            portal: s.portal.clone(),
            mechanisms: s.mechanisms.clone(),
            name: Mechname::parse(name.as_bytes()).unwrap(),
            initial_response: initial,
            allow_plaintext: true,
            channel: ChannelInfo::default(),
            purpose: Purpose {
                interface: AvatarInterface::Echo,
                mind: Mind::default(),
                when: AvatarWhen::AtLogin,
                client: "192.0.2.7".parse().unwrap(),
            },
            clients: &s.clients,
            peer: "192.0.2.7".parse().unwrap(),
        }
    }

    fn with_data(additional: Option<&[u8]>, error: Option<&[u8]>) -> FakePlain {
        FakePlain {
            exchanges: Arc::default(),
            additional_data: additional.map(<[u8]>::to_vec),
            error_challenge: error.map(<[u8]>::to_vec),
        }
    }

    fn b64(text: &str) -> Vec<u8> {
        crate::sasl::encode(text.as_bytes()).into_bytes()
    }

    #[tokio::test]
    async fn refusals_before_the_exchange() {
        let s = setup(with_data(None, None)).await;
        let unknown = LineExchange::begin(begin(&s, "CRAM-MD5", None)).await.err();
        let offered = vec![Mechname::parse(b"PLAIN").unwrap()];
        assert_eq!(unknown, Some(Refusal::UnknownMechanism { offered }));
        let mut clear = begin(&s, "PLAIN", None);
        clear.allow_plaintext = false;
        let refused = LineExchange::begin(clear).await.err();
        assert_eq!(refused, Some(Refusal::EncryptionRequired));
        let bad = LineExchange::begin(begin(&s, "PLAIN", Some(b"%%%")))
            .await
            .err();
        assert_eq!(bad, Some(Refusal::BadBase64));
        // One exchange per address here: the second waits its turn.
        let (_held, turn) = LineExchange::begin(begin(&s, "PLAIN", None)).await.unwrap();
        assert!(matches!(turn, Turn::Challenge(_)));
        let busy = LineExchange::begin(begin(&s, "PLAIN", None)).await.err();
        assert_eq!(busy, Some(Refusal::TooManyExchanges));
        assert_eq!(s.plain.live(), 1);
    }

    #[tokio::test]
    async fn additional_data_is_acknowledged_before_the_outcome() {
        let s = setup(with_data(Some(b"v=final"), None)).await;
        let initial = b64("\0user\0password");
        let (mut exchange, turn) = LineExchange::begin(begin(&s, "PLAIN", Some(&initial)))
            .await
            .unwrap();
        assert!(matches!(turn, Turn::Challenge(ref d) if d == b"v=final"));
        // The mechanism's instance is freed while the client answers.
        assert_eq!(s.plain.live(), 0);
        let Turn::Over(Ending::Success { login, .. }) = exchange.on_line(b"").await else {
            panic!("the acknowledgement completes the login");
        };
        assert_eq!(login.avatar_id.as_deref(), Some("user"));
    }

    #[tokio::test]
    async fn a_star_withdraws_a_success_and_logs_its_avatar_out() {
        let s = setup(with_data(Some(b"v=final"), None)).await;
        let initial = b64("\0user\0password");
        let (mut exchange, _) = LineExchange::begin(begin(&s, "PLAIN", Some(&initial)))
            .await
            .unwrap();
        assert!(matches!(
            exchange.on_line(b"*").await,
            Turn::Over(Ending::Cancelled)
        ));
        assert_eq!(s.realm.record.lock().unwrap().logouts, 1);
    }

    #[tokio::test]
    async fn a_star_after_a_denial_is_still_a_denial() {
        let s = setup(with_data(None, Some(b"{\"status\":\"401\"}"))).await;
        let initial = b64("\0user\0wrong");
        let (mut exchange, turn) = LineExchange::begin(begin(&s, "PLAIN", Some(&initial)))
            .await
            .unwrap();
        assert!(matches!(turn, Turn::Challenge(_)));
        let Turn::Over(Ending::Denied { denial, .. }) = exchange.on_line(b"*").await else {
            panic!("cancelling must not dodge the failure");
        };
        assert_eq!(denial, Denial::BadCredentials);
    }

    #[tokio::test]
    async fn an_abandoned_success_is_logged_out() {
        let s = setup(with_data(Some(b"v=final"), None)).await;
        let initial = b64("\0user\0password");
        let (exchange, _) = LineExchange::begin(begin(&s, "PLAIN", Some(&initial)))
            .await
            .unwrap();
        drop(exchange);
        tokio::task::yield_now().await;
        assert_eq!(s.realm.record.lock().unwrap().logouts, 1);
    }

    #[tokio::test]
    async fn bad_base64_or_star_mid_exchange_ends_it() {
        let s = setup(with_data(None, None)).await;
        let (mut exchange, _) = LineExchange::begin(begin(&s, "PLAIN", None)).await.unwrap();
        assert!(matches!(
            exchange.on_line(b"%%%").await,
            Turn::Over(Ending::BadBase64)
        ));
        let s = setup(with_data(None, None)).await;
        let (mut exchange, _) = LineExchange::begin(begin(&s, "PLAIN", None)).await.unwrap();
        assert!(matches!(
            exchange.on_line(b"*").await,
            Turn::Over(Ending::Cancelled)
        ));
    }
}
