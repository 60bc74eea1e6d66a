//! The authenticating echo service, end to end: the real binary, the real
//! built-in plugins, a TCP client. Transcripts follow seeds/001, Example 9-1.

use crate::common;

use common::{LOGIN_DENIED, LOGIN_OK, Server, b64};

#[test]
fn default_run_logs_in_guest_and_echoes() {
    let server = Server::start(&[]);
    assert!(
        server
            .banner
            .contains("user 'guest' with password 'password'"),
        "{}",
        server.banner
    );
    let mut c = server.connect();
    assert_eq!(c.ask("guest password"), LOGIN_OK);
    assert_eq!(c.ask("Hi"), "Hi");
    assert_eq!(c.ask("Quit"), "Quit");
    assert_eq!(c.ask(""), "");
    assert_eq!(c.ask("  spaces kept  "), "  spaces kept  ");
}

#[test]
fn wrong_password_is_denied_and_closed() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.ask("foo bar"), LOGIN_DENIED);
    c.expect_closed();
    let mut c = server.connect();
    assert_eq!(c.ask("guest Password"), LOGIN_DENIED);
    c.expect_closed();
    let logs = server.wait_for_log("bad credentials");
    assert!(logs.contains("unknown user"), "{logs}");
}

#[test]
fn memory_users_from_the_command_line() {
    let server = Server::start(&["--auth", "memory:user:pass:foo:bar"]);
    let mut c = server.connect();
    assert_eq!(c.ask("user pass"), LOGIN_OK);
    assert_eq!(c.ask("Hi"), "Hi");
    let mut c = server.connect();
    assert_eq!(c.ask("foo bar"), LOGIN_OK);
    let mut c = server.connect();
    assert_eq!(
        c.ask("guest password"),
        LOGIN_DENIED,
        "no default user once --auth is given"
    );
}

#[test]
fn passwords_may_contain_spaces() {
    let server = Server::start(&["--auth", "memory:alice:open sesame"]);
    let mut c = server.connect();
    assert_eq!(c.ask("alice open sesame"), LOGIN_OK);
}

#[test]
fn sasl_plain_with_and_without_initial_response() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH PLAIN {}", b64(b"\0guest\0password"))),
        LOGIN_OK
    );
    assert_eq!(c.ask("echoed"), "echoed");

    let mut c = server.connect();
    assert_eq!(c.ask("AUTH PLAIN"), "+");
    assert_eq!(c.ask(&b64(b"\0guest\0password")), LOGIN_OK);

    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH plain {}", b64(b"\0guest\0wrong"))),
        LOGIN_DENIED
    );
    c.expect_closed();
}

#[test]
fn sasl_plain_authzid_must_match() {
    let server = Server::start(&["--auth", "memory:guest:password:root:toor"]);
    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH PLAIN {}", b64(b"guest\0guest\0password"))),
        LOGIN_OK
    );
    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH PLAIN {}", b64(b"root\0guest\0password"))),
        LOGIN_DENIED
    );
    server.wait_for_log("not authorized");
}

#[test]
fn sasl_plain_malformed_message_is_denied() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH PLAIN {}", b64(b"guest password"))),
        LOGIN_DENIED
    );
    server.wait_for_log("malformed PLAIN message");
}

#[test]
fn sasl_login_exchange() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.ask("AUTH LOGIN"), format!("+ {}", b64(b"Username:")));
    assert_eq!(c.ask(&b64(b"guest")), format!("+ {}", b64(b"Password:")));
    assert_eq!(c.ask(&b64(b"password")), LOGIN_OK);
    assert_eq!(c.ask("after LOGIN"), "after LOGIN");

    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH LOGIN {}", b64(b"guest"))),
        format!("+ {}", b64(b"Password:"))
    );
    assert_eq!(c.ask(&b64(b"nope")), LOGIN_DENIED);
}

#[test]
fn sasl_cancel_and_bad_base64_allow_a_retry() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.ask("AUTH LOGIN"), format!("+ {}", b64(b"Username:")));
    assert_eq!(c.ask("*"), "Authentication cancelled.");
    assert_eq!(c.ask("AUTH PLAIN"), "+");
    assert_eq!(
        c.ask("not*base64"),
        "Error: invalid base64 in SASL message; authentication cancelled."
    );
    assert_eq!(c.ask("guest password"), LOGIN_OK);
}

#[test]
fn unknown_mechanism_names_the_available_ones() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let available = "available: CRAM-MD5 LOGIN PLAIN SCRAM-SHA-1 SCRAM-SHA-256";
    assert_eq!(
        c.ask("AUTH DIGEST-MD5"),
        format!("Error: mechanism DIGEST-MD5 is not available; {available}")
    );
    assert_eq!(
        c.ask("AUTH ANONYMOUS"),
        format!("Error: mechanism ANONYMOUS is not available; {available}"),
        "ANONYMOUS needs an anonymous checker"
    );
    assert_eq!(c.ask("guest password"), LOGIN_OK);
}

#[test]
fn anonymous_access_when_the_operator_allows_it() {
    let server = Server::start(&["--auth", "anonymous", "--auth", "memory:guest:password"]);
    assert!(server.banner.contains("ANONYMOUS"), "{}", server.banner);
    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH ANONYMOUS {}", b64(b"sirhc@example.net"))),
        LOGIN_OK
    );
    assert_eq!(c.ask("anonymous echo"), "anonymous echo");
    let logs = server.wait_for_log("trace: sirhc@example.net");
    assert!(logs.contains("(anonymous)"), "{logs}");

    let mut c = server.connect();
    assert_eq!(c.ask("AUTH ANONYMOUS"), "+");
    assert_eq!(c.ask(""), LOGIN_OK);
}

#[test]
fn malformed_login_lines_get_clear_errors_then_close() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(
        c.ask("justoneword"),
        "Error: expected 'username password' or 'AUTH mechanism [initial-response]'."
    );
    c.send_bytes(b"guest \xffpassword");
    assert_eq!(c.recv().unwrap(), "Error: the line is not valid UTF-8.");
    assert_eq!(
        c.ask("AUTH PL@IN"),
        "Error: 'PL@IN' is not a SASL mechanism name."
    );
    assert_eq!(c.recv().unwrap(), "Error: too many bad lines, goodbye.");
    c.expect_closed();
}

#[test]
fn overlong_lines_are_discarded_with_an_error() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.ask("guest password"), LOGIN_OK);
    let long = "x".repeat(100_000);
    assert_eq!(c.ask(&long), "Error: line too long; it was discarded.");
    assert_eq!(c.ask("still here"), "still here");
    c.send_bytes(b"caf\xc3");
    assert_eq!(
        c.recv().unwrap(),
        "Error: line is not valid UTF-8; it was not echoed."
    );
    assert_eq!(c.ask("café"), "café");
}

#[test]
fn pipelined_lines_are_all_answered_in_order() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut batch = String::from("guest password\r\n");
    for i in 0..500 {
        batch.push_str(&format!("line {i}\r\n"));
    }
    c.send(batch.trim_end());
    assert_eq!(c.recv().unwrap(), LOGIN_OK);
    for i in 0..500 {
        assert_eq!(c.recv().unwrap(), format!("line {i}"));
    }
}

#[test]
fn many_concurrent_sessions() {
    let server = Server::start(&[]);
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut c = common::Client::connect(addr);
                assert_eq!(c.ask("guest password"), LOGIN_OK);
                for j in 0..20 {
                    let line = format!("client {i} line {j}");
                    assert_eq!(c.ask(&line), line);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn logout_runs_when_the_client_leaves() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.ask("guest password"), LOGIN_OK);
    drop(c);
    server.wait_for_log("guest logged out");
}
