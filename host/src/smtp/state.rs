//! The SMTP session as a state machine (RFC 5321 §4.1.4, RFC 4954): what
//! the client has established, and a [`Session::step`] that decides what a
//! line means, without sockets or plugins. A step answers with an
//! [`Effect`]: a reply to send, or a call the connection must make (the
//! realm's avatar, a SASL exchange, a TLS handshake); the connection makes
//! it and hands the answer back (`*_answered`), which settles the state and
//! picks the reply.

use std::net::SocketAddr;

use super::command::{Command, ParseError, parse_command};
use super::config::{AuthPolicy, SessionLimits, TlsOnly};
use super::data::DataReader;
use super::params::MailParams;
use super::reply::{self, Reply};
use crate::portal::{ReceivedInfo, Rejection};
use crate::proto::line::{Frame, has_bare_newline};
use crate::sasl::{LineExchange, Mechname};

/// What a session is held to: fixed for the connection.
#[derive(Clone, Debug)]
pub struct Rules {
    pub server_name: String,
    pub peer: SocketAddr,
    pub limits: SessionLimits,
    pub policy: AuthPolicy,
    /// STARTTLS is on offer (a certificate is configured).
    pub tls_offered: bool,
}

/// What the client said in EHLO or HELO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    pub name: String,
    pub esmtp: bool,
}

/// A successful AUTH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub avatar_id: Option<String>,
    pub user: Option<String>,
    pub mechanism: Mechname,
}

/// A greeted client, and who it logged in as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeted {
    pub greeting: Greeting,
    pub login: Option<Login>,
}

/// A mail transaction, from MAIL to the end of DATA (RFC 5321 §3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub sender: String,
    pub params: MailParams,
    pub recipients: Vec<String>,
}

/// Message text being read.
pub struct Data {
    pub transaction: Transaction,
    pub reader: DataReader,
    pub info: ReceivedInfo,
}

/// Where the session stands; each state carries what it needs.
pub enum State {
    /// Connected; no HELO or EHLO yet.
    Fresh,
    /// Greeted, between transactions.
    Ready(Greeted),
    /// MAIL accepted; RCPT and DATA may follow.
    Mail(Greeted, Transaction),
    /// A SASL exchange runs; each line is a response.
    Auth(Greeted, Box<LineExchange>),
    /// Message text; each line goes to the data reader.
    Data(Greeted, Box<Data>),
}

/// A complete message to hand to the avatar.
pub struct Delivery {
    pub info: ReceivedInfo,
    pub message: Vec<u8>,
}

/// What the connection does after a step.
pub enum Effect {
    /// Nothing to send (a line of message text was taken).
    Nothing,
    Reply(Reply),
    /// Send these replies, then close.
    Close(Vec<Reply>),
    /// Say 220 and hand the stream to the TLS handshake.
    StartTls,
    /// Ask the avatar about the sender; then [`Session::sender_answered`].
    ValidateFrom {
        helo: String,
        sender: String,
        params: MailParams,
    },
    /// Ask the avatar about a recipient; then [`Session::recipient_answered`].
    ValidateTo {
        recipient: String,
    },
    /// Ask the avatar for a Received header for [`Session::received_info`];
    /// then [`Session::data_answered`].
    StartData,
    /// Begin an exchange; then [`Session::auth_began`] or
    /// [`Session::auth_refused`].
    Auth {
        mechanism: Mechname,
        initial_response: Option<Vec<u8>>,
    },
    /// A response for the running exchange; its end goes to
    /// [`Session::auth_over`].
    AuthLine(Vec<u8>),
    /// Hand the message over; then [`Session::delivered`].
    Deliver(Box<Delivery>),
    /// Wait out the failure delay, say 535, and close after it if `close`
    /// (with [`reply::TOO_MANY_FAILURES`]).
    AuthFailed {
        close: bool,
        /// The user name the client claimed, counted by the penalty.
        user: Option<String>,
    },
}

/// The avatar's answer to a sender, a recipient or a message.
#[derive(Debug)]
pub enum Answer {
    Accepted,
    Rejected(Rejection),
    /// No usable avatar, or it failed: this reply (the connection chose it
    /// and dealt with the avatar).
    Trouble(Reply),
}

/// How a delivery ended.
#[derive(Debug)]
pub enum Delivered {
    Answer(Answer),
    /// The realm stopped part-way (trap, timeout): some copies may exist.
    Uncertain,
}

/// What one connection has established.
pub struct Session {
    pub(super) rules: Rules,
    pub secure: bool,
    /// Who the client's verified TLS certificate says it is.
    pub external_identity: Option<String>,
    pub(super) state: State,
    errors: u32,
    pub auth_failures: u32,
    pub messages: u32,
}

impl Session {
    pub fn new(rules: Rules, secure: bool) -> Session {
        Session {
            rules,
            secure,
            external_identity: None,
            state: State::Fresh,
            errors: 0,
            auth_failures: 0,
            messages: 0,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub(super) fn greeted(&self) -> Option<&Greeted> {
        match &self.state {
            State::Fresh => None,
            State::Ready(g) | State::Mail(g, _) | State::Auth(g, _) | State::Data(g, _) => Some(g),
        }
    }

    pub fn login(&self) -> Option<&Login> {
        self.greeted().and_then(|g| g.login.as_ref())
    }

    pub fn helo(&self) -> String {
        self.greeted()
            .map(|g| g.greeting.name.clone())
            .unwrap_or_default()
    }

    pub fn transaction(&self) -> Option<&Transaction> {
        match &self.state {
            State::Mail(_, t) => Some(t),
            State::Data(_, d) => Some(&d.transaction),
            _ => None,
        }
    }

    /// A fresh avatar refused what an earlier one accepted: the
    /// transaction is over.
    pub fn end_transaction(&mut self) {
        self.state = match self.take() {
            State::Mail(g, _) => State::Ready(g),
            other => other,
        };
    }

    pub fn exchange_mut(&mut self) -> Option<&mut LineExchange> {
        match &mut self.state {
            State::Auth(_, exchange) => Some(exchange),
            _ => None,
        }
    }

    pub fn in_exchange(&self) -> bool {
        matches!(self.state, State::Auth(..))
    }

    /// The longest line the framer should accept next (message text lines
    /// are shorter than AUTH lines).
    pub fn line_limit(&self) -> usize {
        match self.state {
            State::Data(..) => self.rules.limits.max_text_line,
            _ => self.rules.limits.max_auth_line,
        }
    }

    /// Whether plaintext mechanisms may run on this connection now.
    pub fn plaintext_allowed(&self) -> bool {
        self.secure
            || match self.rules.policy.tls_only {
                TlsOnly::No => true,
                TlsOnly::Yes => false,
                TlsOnly::Auto => self.rules.peer.ip().is_loopback(),
            }
    }

    pub(super) fn auth_required(&self) -> bool {
        self.rules.policy.required && self.login().is_none()
    }

    pub(super) fn take(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Fresh)
    }

    /// Decides what one line means. `offered` names the mechanisms this
    /// session may use (for EHLO).
    pub fn step(&mut self, frame: Frame, offered: &dyn Fn(bool) -> Vec<String>) -> Effect {
        match &mut self.state {
            State::Data(..) => self.on_text(frame),
            State::Auth(..) => match frame {
                Frame::Line(line) => Effect::AuthLine(line),
                Frame::TooLong => {
                    self.leave_exchange();
                    Effect::Reply(reply::LINE_TOO_LONG.with_text("Line too long, AUTH cancelled"))
                }
            },
            _ => match frame {
                Frame::Line(line) => self.on_command(&line, offered),
                Frame::TooLong => self.error(reply::LINE_TOO_LONG),
            },
        }
    }

    fn on_command(&mut self, line: &[u8], offered: &dyn Fn(bool) -> Vec<String>) -> Effect {
        let is_auth = line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"AUTH ");
        if line.len() > self.rules.limits.max_command_line && !is_auth {
            return self.error(reply::LINE_TOO_LONG);
        }
        // RFC 5321 §2.3.8: a command is one CRLF-terminated line; a CR or
        // LF inside it is never a line end (smuggling) nor a parameter.
        if has_bare_newline(line) {
            return self.error(reply::BARE_NEWLINE_COMMAND);
        }
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(ParseError::Unrecognized) => return self.error(reply::UNRECOGNIZED),
            Err(ParseError::Syntax(why)) => {
                return self.error(reply::SYNTAX.with_text(format!("Syntax error: {why}")));
            }
        };
        Effect::Reply(match command {
            Command::Ehlo(name) => self.hello(name, true, offered),
            Command::Helo(name) => self.hello(name, false, offered),
            Command::Mail { from, params } => return self.mail(from, &params),
            Command::Rcpt { to, params } => return self.rcpt(to, &params),
            Command::Data => return self.data(),
            Command::Rset => {
                self.end_transaction();
                reply::RESET
            }
            Command::Noop => reply::OK,
            Command::Quit => return Effect::Close(vec![reply::BYE]),
            Command::Vrfy(_) => reply::VRFY,
            Command::Expn(_) => reply::NOT_IMPLEMENTED.with_text("EXPN is not supported"),
            Command::Help(_) => reply::HELP,
            Command::StartTls if !self.rules.tls_offered => {
                reply::NOT_IMPLEMENTED.with_text("STARTTLS is not offered here")
            }
            Command::StartTls if self.secure => {
                reply::BAD_SEQUENCE.with_text("TLS is already active")
            }
            Command::StartTls => return Effect::StartTls,
            Command::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response),
        })
    }

    /// Replies to a bad command and counts it; too many end the session.
    pub(super) fn error(&mut self, answer: Reply) -> Effect {
        self.errors += 1;
        if self.errors >= self.rules.limits.max_errors {
            return Effect::Close(vec![answer, reply::TOO_MANY_ERRORS]);
        }
        Effect::Reply(answer)
    }

    fn hello(&mut self, name: &str, esmtp: bool, offered: &dyn Fn(bool) -> Vec<String>) -> Reply {
        let login = self.login().cloned();
        // RFC 5321 §4.1.4: a greeting ends any transaction; a login stays.
        self.state = State::Ready(Greeted {
            greeting: Greeting {
                name: name.to_owned(),
                esmtp,
            },
            login,
        });
        let rules = &self.rules;
        let mut text = format!("{} Hello {name} [{}]", rules.server_name, rules.peer.ip());
        if esmtp {
            text.push_str(&format!(
                "\nPIPELINING\nSIZE {}\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8",
                rules.limits.max_message_size
            ));
            if rules.tls_offered && !self.secure {
                text.push_str("\nSTARTTLS");
            }
            let offered = offered(self.plaintext_allowed());
            if !offered.is_empty() {
                text.push_str("\nAUTH ");
                text.push_str(&offered.join(" "));
            }
            text.push_str("\nHELP");
        }
        Reply::new(250, None, "").with_text(text)
    }
}
