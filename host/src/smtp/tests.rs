//! Table tests of the SMTP state machine: every sequence and policy rule,
//! without sockets or plugins. Session tests over `tokio::io::duplex` are
//! in `session_tests`.

use std::net::SocketAddr;

use super::config::{AuthPolicy, SessionLimits, TlsOnly};
use super::reply::Reply;
use super::state::{Answer, Delivered, Effect, Rules, Session, State};
use crate::portal::Rejection;
use crate::proto::line::Frame;
use crate::sasl::Mechname;

fn rules(peer: &str) -> Rules {
    Rules {
        server_name: "mx.test".into(),
        peer: peer.parse::<SocketAddr>().unwrap(),
        limits: SessionLimits {
            max_recipients: 2,
            max_errors: 3,
            ..SessionLimits::default()
        },
        policy: AuthPolicy {
            required: false,
            tls_only: TlsOnly::Auto,
            failure_delay: std::time::Duration::ZERO,
            max_failures: 2,
        },
        tls_offered: true,
    }
}

fn session() -> Session {
    Session::new(rules("127.0.0.1:2525"), false)
}

fn offered(plaintext: bool) -> Vec<String> {
    match plaintext {
        true => vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
        false => vec!["SCRAM-SHA-256".into()],
    }
}

/// One line through the machine, answering any avatar call with
/// `Accepted`; the code of the reply it ends with, and whether it closes.
fn say(session: &mut Session, line: &str) -> (u16, bool) {
    let effect = session.step(Frame::Line(line.as_bytes().to_vec()), &offered);
    settle(session, effect)
}

fn settle(session: &mut Session, effect: Effect) -> (u16, bool) {
    let reply: Reply = match effect {
        Effect::Nothing => return (0, false),
        Effect::Reply(r) => r,
        Effect::Close(rs) => return (rs.last().unwrap().code, true),
        Effect::StartTls => return (220, false),
        Effect::ValidateFrom { sender, params, .. } => {
            session.sender_answered(sender, params, Answer::Accepted)
        }
        Effect::ValidateTo { recipient } => session.recipient_answered(recipient, Answer::Accepted),
        Effect::StartData => {
            let info = session.received_info("id".into(), "date".into());
            session.data_answered(Ok((info.unwrap(), "Received: test".into())))
        }
        Effect::Deliver(d) => session.delivered(&d.info, Delivered::Answer(Answer::Accepted)),
        Effect::Auth { .. } => return (1, false),
        Effect::AuthLine(_) => return (2, false),
        Effect::AuthFailed { close, .. } => return (535, close),
    };
    (reply.code, false)
}

#[test]
fn command_sequences() {
    // (lines, the code each gets)
    let cases: &[(&[&str], &[u16])] = &[
        (&["MAIL FROM:<a@b>"], &[503]),
        (&["HELO c", "RCPT TO:<a@b>"], &[250, 503]),
        (&["HELO c", "DATA"], &[250, 503]),
        (&["HELO c", "MAIL FROM:<a@b>", "DATA"], &[250, 250, 554]),
        (
            &["HELO c", "MAIL FROM:<a@b>", "MAIL FROM:<a@b>"],
            &[250, 250, 503],
        ),
        (&["HELO c", "MAIL FROM:<a@b> SIZE=10"], &[250, 555]),
        (&["EHLO c", "MAIL FROM:<a@b> SIZE=10"], &[250, 250]),
        (&["EHLO c", "MAIL FROM:<a@b> SIZE=99999999999"], &[250, 552]),
        (
            &[
                "EHLO c",
                "MAIL FROM:<a@b>",
                "RCPT TO:<x@y>",
                "RCPT TO:<z@y>",
                "RCPT TO:<w@y>",
            ],
            &[250, 250, 250, 250, 452],
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "RSET", "MAIL FROM:<a@b>"],
            &[250, 250, 250, 250],
        ),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "EHLO d", "RCPT TO:<x@y>"],
            &[250, 250, 250, 503],
        ),
        (&["RSET", "NOOP", "VRFY x", "HELP"], &[250, 250, 252, 214]),
        (&["EXPN x"], &[502]),
        (&["HELO c", "AUTH PLAIN"], &[250, 503]),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "AUTH PLAIN"],
            &[250, 250, 503],
        ),
        (&["EHLO c", "AUTH PLAIN"], &[250, 1]),
        (&["STARTTLS"], &[220]),
    ];
    for (lines, want) in cases {
        let mut session = session();
        let got: Vec<u16> = lines.iter().map(|l| say(&mut session, l).0).collect();
        assert_eq!(&got, want, "{lines:?}");
    }
}

#[test]
fn a_whole_transaction() {
    let mut s = session();
    for line in ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@y>"] {
        assert_eq!(say(&mut s, line).0, 250, "{line}");
    }
    assert_eq!(say(&mut s, "DATA").0, 354);
    assert!(matches!(s.state(), State::Data(..)));
    assert_eq!(s.line_limit(), s.rules().limits.max_text_line);
    assert_eq!(say(&mut s, "Subject: hi").0, 0);
    let effect = s.step(Frame::Line(b".".to_vec()), &offered);
    let Effect::Deliver(delivery) = effect else {
        panic!("the end of data delivers");
    };
    assert_eq!(delivery.message, b"Received: test\r\nSubject: hi\r\n");
    assert_eq!(delivery.info.recipients, vec!["x@y".to_owned()]);
    assert_eq!(delivery.info.with_protocol, "ESMTP");
    let reply = s.delivered(&delivery.info, Delivered::Answer(Answer::Accepted));
    assert_eq!(reply.code, 250);
    assert_eq!(s.messages, 1);
    assert!(matches!(s.state(), State::Ready(_)));
    assert_eq!(s.line_limit(), s.rules().limits.max_auth_line);
    // Uncertain deliveries are permanent failures, so no one sends again.
    assert_eq!(s.delivered(&delivery.info, Delivered::Uncertain).code, 554);
}

#[test]
fn realm_answers_become_replies() {
    let mut s = session();
    say(&mut s, "EHLO c");
    let Effect::ValidateFrom { sender, params, .. } =
        s.step(Frame::Line(b"MAIL FROM:<spam@b>".to_vec()), &offered)
    else {
        panic!("MAIL asks the realm");
    };
    let refused = Answer::Rejected(Rejection {
        permanent: true,
        text: "no\x1bspam".into(),
    });
    let reply = s.sender_answered(sender.clone(), params.clone(), refused);
    assert_eq!((reply.code, reply.text.as_ref()), (550, "nospam"));
    assert!(s.transaction().is_none());
    let deferred = Answer::Rejected(Rejection {
        permanent: false,
        text: String::new(),
    });
    assert_eq!(
        s.sender_answered(sender.clone(), params.clone(), deferred)
            .code,
        451
    );
    let trouble = Answer::Trouble(super::reply::LOCAL_ERROR);
    assert_eq!(s.sender_answered(sender, params, trouble).code, 451);
    assert!(s.transaction().is_none());
}

#[test]
fn auth_policy() {
    // AUTH required: no mail without a login.
    let mut required = rules("127.0.0.1:1");
    required.policy.required = true;
    let mut s = Session::new(required, false);
    let got: Vec<u16> = ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<a@b>", "DATA"]
        .iter()
        .map(|l| say(&mut s, l).0)
        .collect();
    assert_eq!(got, [250, 530, 530, 530]);

    // Plaintext mechanisms: not in the clear off loopback, under auto.
    let mut remote = Session::new(rules("192.0.2.1:1"), false);
    assert!(!remote.plaintext_allowed());
    let Effect::Reply(ehlo) = remote.step(Frame::Line(b"EHLO c".to_vec()), &offered) else {
        panic!()
    };
    assert!(ehlo.text.contains("AUTH SCRAM-SHA-256\n"), "{}", ehlo.text);
    assert!(ehlo.text.contains("STARTTLS"));
    let secure = Session::new(rules("192.0.2.1:1"), true);
    assert!(secure.plaintext_allowed());
    assert!(session().plaintext_allowed());
    let mut yes = rules("127.0.0.1:1");
    yes.policy.tls_only = TlsOnly::Yes;
    assert!(!Session::new(yes, false).plaintext_allowed());

    // STARTTLS: not twice, not when there is no certificate.
    let mut s = Session::new(rules("127.0.0.1:1"), true);
    assert_eq!(say(&mut s, "STARTTLS").0, 503);
    let mut no_tls = rules("127.0.0.1:1");
    no_tls.tls_offered = false;
    let mut s = Session::new(no_tls, false);
    assert_eq!(say(&mut s, "STARTTLS").0, 502);
}

#[test]
fn bad_lines_are_counted_until_the_session_ends() {
    let mut s = session();
    assert_eq!(say(&mut s, "BOGUS"), (500, false));
    assert_eq!(say(&mut s, "MAIL FROM:<a@b\rRCPT TO:<c@d>"), (500, false));
    // The third bad line closes (max-errors 3).
    assert_eq!(
        s.step(Frame::TooLong, &offered).code_and_close(),
        (421, true)
    );

    // A long command is refused, a long AUTH line is not.
    let mut s = session();
    say(&mut s, "EHLO c");
    let long = format!("NOOP {}", "a".repeat(3000));
    assert_eq!(say(&mut s, &long).0, 500);
    let auth = format!("AUTH PLAIN {}", "A".repeat(3000));
    assert_eq!(say(&mut s, &auth).0, 1);
}

#[test]
fn auth_failures_close_the_session() {
    let mut s = session();
    say(&mut s, "EHLO c");
    let name = Mechname::parse(b"PLAIN").unwrap();
    let denied = || crate::sasl::Ending::Denied {
        denial: crate::portal::Denial::BadCredentials,
        user: None,
        plugin: None,
    };
    let (effect, _) = s.auth_over(name.clone(), denied());
    assert_eq!(settle(&mut s, effect), (535, false));
    let (effect, _) = s.auth_over(name.clone(), denied());
    assert_eq!(settle(&mut s, effect), (535, true));
    // Cancelling is not a failure; a malformed response is a bad line.
    let (effect, _) = s.auth_over(name.clone(), crate::sasl::Ending::Cancelled);
    assert_eq!(settle(&mut s, effect), (501, false));
    assert_eq!(s.auth_failures, 2);
    let fault = crate::portal::Fault::new("p", crate::portal::FaultKind::Trap, "x");
    let (effect, _) = s.auth_over(name, crate::sasl::Ending::Fault(fault));
    assert_eq!(settle(&mut s, effect), (454, false));
    // QUIT always ends it.
    assert_eq!(say(&mut s, "QUIT"), (221, true));
}

trait CodeAndClose {
    fn code_and_close(self) -> (u16, bool);
}

impl CodeAndClose for Effect {
    fn code_and_close(self) -> (u16, bool) {
        match self {
            Effect::Reply(r) => (r.code, false),
            Effect::Close(rs) => (rs.last().unwrap().code, true),
            _ => (0, false),
        }
    }
}
