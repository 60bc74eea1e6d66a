//! The trace information of an accepted message: its id, the `with`
//! protocol (RFC 3848) and the standard Received header (RFC 5321 §4.4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::portal::ReceivedInfo;

/// A message id unique within this host: start time and a counter.
pub fn message_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}{:05x}.{n:x}", now.as_secs(), now.subsec_micros())
}

/// RFC 3848's protocol name for a session.
pub fn with_protocol(esmtp: bool, tls: bool, authenticated: bool) -> &'static str {
    match (esmtp, tls, authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, false, true) => "ESMTPA",
        (true, true, false) => "ESMTPS",
        (true, true, true) => "ESMTPSA",
    }
}

/// The current time as RFC 5322 wants it.
pub fn now_rfc5322() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

/// The host's standard Received header, folded, without the final CRLF.
pub fn standard_header(info: &ReceivedInfo) -> String {
    let mut header = format!(
        "Received: from {} ({} [{}])\r\n\tby {} (portcullis) with {} id {}",
        sanitize(&info.helo),
        info.peer_ip,
        info.peer_ip,
        info.server_name,
        info.with_protocol,
        info.id
    );
    if let Some(user) = &info.authenticated_id {
        header.push_str(&format!("\r\n\t(authenticated as {})", sanitize(user)));
    }
    if let [only] = info.recipients.as_slice() {
        header.push_str(&format!("\r\n\tfor <{}>", sanitize(only)));
    }
    header.push_str(&format!(";\r\n\t{}", info.date));
    header
}

/// Keeps client-supplied text from breaking the header: no control
/// characters, no parentheses that would unbalance the comment.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c == '(' || c == ')' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(with_protocol(false, true, true), "SMTP");
        assert_eq!(with_protocol(true, false, false), "ESMTP");
        assert_eq!(with_protocol(true, false, true), "ESMTPA");
        assert_eq!(with_protocol(true, true, false), "ESMTPS");
        assert_eq!(with_protocol(true, true, true), "ESMTPSA");
    }

    #[test]
    fn header() {
        let mut info = ReceivedInfo {
            helo: "client.example".into(),
            peer_ip: "127.0.0.1".into(),
            server_name: "mx.example".into(),
            with_protocol: "ESMTPSA".into(),
            authenticated_id: Some("guest".into()),
            id: "abc.1".into(),
            sender: "a@example.com".into(),
            recipients: vec!["b@example.com".into()],
            date: "Mon, 23 Nov 2026 10:00:00 +0000".into(),
        };
        assert_eq!(
            standard_header(&info),
            "Received: from client.example (127.0.0.1 [127.0.0.1])\r\n\
             \tby mx.example (portcullis) with ESMTPSA id abc.1\r\n\
             \t(authenticated as guest)\r\n\
             \tfor <b@example.com>;\r\n\
             \tMon, 23 Nov 2026 10:00:00 +0000"
        );
        info.authenticated_id = None;
        info.recipients.push("c@example.com".into());
        info.helo = "evil\r\nX-Injected: (yes)".into();
        let header = standard_header(&info);
        assert!(!header.contains("X-Injected: (") && !header.contains("for <"));
        assert_eq!(header.matches("\r\n").count(), 2, "{header}");
    }

    #[test]
    fn ids_are_unique_and_dates_parse() {
        assert_ne!(message_id(), message_id());
        let date = now_rfc5322();
        assert!(OffsetDateTime::parse(&date, &Rfc2822).is_ok(), "{date}");
    }
}
