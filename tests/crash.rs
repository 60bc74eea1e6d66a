//! Issue 17: accepted mail survives `kill -9`. Clients send messages to the
//! Maildir realm under load; the server is killed with SIGKILL at a random
//! moment and restarted. Every message that got 250 must be in `new/`
//! exactly once, and nothing partial may be visible in `new/`. Bounded:
//! three rounds of four clients, a few seconds each.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;

const CLIENTS: usize = 4;
const ROUNDS: usize = 3;

/// One client's loop: sends numbered messages until the server goes away;
/// records the tokens of those acknowledged with 250.
fn send_until_killed(
    addr: SocketAddr,
    client: usize,
    round: usize,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let Ok(stream) = TcpStream::connect(addr) else {
        return;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut reply = || -> Option<u16> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.get(..3)?.parse().ok();
            }
        }
    };
    if reply() != Some(220) {
        return;
    }
    let mut send = |text: &str| writer.write_all(text.as_bytes()).is_ok();
    if !send("EHLO crash.example\r\n") {
        return;
    }
    // A body of a few hundred KiB, so that kills land mid-write too.
    let filler = format!("{}\r\n", "z".repeat(900)).repeat(300);
    for n in 0.. {
        let token = format!("token-{round}-{client}-{n}");
        let ok = reply() == Some(250)
            && send("MAIL FROM:<load@example.com>\r\n")
            && reply() == Some(250)
            && send("RCPT TO:<box@example.com>\r\n")
            && reply() == Some(250)
            && send("DATA\r\n")
            && reply() == Some(354)
            && send(&format!("Subject: {token}\r\n\r\n{filler}{token}\r\n.\r\n"));
        if !ok {
            return;
        }
        // The next reply read (at the loop's top) is DATA's answer; peek
        // at it here to record the 250.
        match reply() {
            Some(250) => acked.lock().unwrap().push(token),
            _ => return,
        }
        // Keep the loop's first reply() in step: NOOP answers it.
        if !send("NOOP\r\n") {
            return;
        }
    }
}

/// Every message in `new/` by its token; panics on a partial one.
fn stored(spool: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    let Ok(dir) = std::fs::read_dir(spool.join("box/new")) else {
        return seen;
    };
    for entry in dir {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .expect("a message in new/ without its header");
        assert!(
            text.ends_with(&format!("{subject}\r\n")),
            "a partial message in new/: {subject} ({} bytes)",
            text.len()
        );
        *seen.entry(subject.to_owned()).or_insert(0) += 1;
    }
    seen
}

#[test]
fn acknowledged_mail_survives_kill_9() {
    let spool = tempfile::tempdir().unwrap();
    let spool_arg = spool.path().to_str().unwrap().to_owned();
    let args = ["--auth", "anonymous", "--maildir", spool_arg.as_str()];
    let acked = Arc::new(Mutex::new(Vec::new()));
    // A cheap source of randomness for the kill moments.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for round in 0..ROUNDS {
        let server = Server::start(&args);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let acked = acked.clone();
                let addr = server.smtp;
                std::thread::spawn(move || send_until_killed(addr, client, round, acked))
            })
            .collect();
        let wait = 300 + (seed.wrapping_mul(round as u64 + 7) % 1200);
        std::thread::sleep(Duration::from_millis(wait));
        server.signal("KILL");
        for c in clients {
            c.join().unwrap();
        }
        drop(server);
        let seen = stored(spool.path());
        for token in acked.lock().unwrap().iter() {
            assert_eq!(seen.get(token), Some(&1), "{token} was acknowledged");
        }
        for (token, count) in &seen {
            assert_eq!(*count, 1, "{token} is in new/ {count} times");
        }
    }
    let acked = acked.lock().unwrap().len();
    assert!(
        acked > 0,
        "no message was acknowledged: the test proved nothing"
    );
    // A restart removes what the killed deliveries left in tmp/.
    let server = Server::start(&args);
    server.wait_for_log("plugins loaded");
    let left: Vec<_> = std::fs::read_dir(spool.path().join("box/tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in tmp/ after a restart: {left:?}");
    eprintln!("{acked} acknowledged messages survived {ROUNDS} kills");
}
