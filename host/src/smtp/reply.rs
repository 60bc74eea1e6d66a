//! Every SMTP reply the server sends, by name: code, enhanced status code
//! (RFC 3463) and text, in one place.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One reply; multi-line when the text has several lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code, e.g. `5.7.8`.
    pub enhanced: Option<&'static str>,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn new(code: u16, enhanced: Option<&'static str>, text: &'static str) -> Reply {
        Reply {
            code,
            enhanced,
            text: Cow::Borrowed(text),
        }
    }

    pub fn with_text(mut self, text: impl Into<Cow<'static, str>>) -> Reply {
        self.text = text.into();
        self
    }

    /// Positive completion (2xx) or intermediate (3xx).
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The reply as sent: `250-…` continuation lines, a final `250 …`, each
    /// ending in CRLF. The enhanced code, when there is one, starts every
    /// line (RFC 2034 §4).
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let _ = write!(out, "{}{sep}", self.code);
            if let Some(enhanced) = self.enhanced {
                let _ = write!(out, "{enhanced} ");
            }
            out.push_str(line.trim_end_matches('\r'));
            out.push_str("\r\n");
        }
        out
    }
}

pub const OK: Reply = Reply::new(250, Some("2.0.0"), "OK");
pub const SENDER_OK: Reply = Reply::new(250, Some("2.1.0"), "Sender OK");
pub const RECIPIENT_OK: Reply = Reply::new(250, Some("2.1.5"), "Recipient OK");
pub const QUEUED: Reply = Reply::new(250, Some("2.0.0"), "Message accepted for delivery");
pub const RESET: Reply = Reply::new(250, Some("2.0.0"), "Reset state");
pub const BYE: Reply = Reply::new(221, Some("2.0.0"), "Bye");
pub const VRFY: Reply = Reply::new(
    252,
    Some("2.5.0"),
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub const START_DATA: Reply = Reply::new(354, None, "End data with <CR><LF>.<CR><LF>");
pub const READY_FOR_TLS: Reply = Reply::new(220, Some("2.0.0"), "Ready to start TLS");
pub const AUTH_SUCCEEDED: Reply = Reply::new(235, Some("2.7.0"), "Authentication successful");
pub const SHUTTING_DOWN: Reply = Reply::new(
    421,
    Some("4.3.2"),
    "Service shutting down, closing connection",
);
pub const IDLE_TIMEOUT: Reply =
    Reply::new(421, Some("4.4.2"), "Idle for too long, closing connection");
pub const TOO_MANY_FAILURES: Reply = Reply::new(
    421,
    Some("4.7.0"),
    "Too many authentication failures, closing connection",
);
pub const TOO_BUSY: Reply = Reply::new(421, Some("4.3.2"), "Too many connections, try again later");
/// [`TOO_BUSY`] as bytes, for a listener that will not start a session.
pub const TOO_BUSY_WIRE: &[u8] = b"421 4.3.2 Too many connections, try again later\r\n";
pub const TOO_MANY_FROM_ADDRESS: Reply = Reply::new(
    421,
    Some("4.7.0"),
    "Too many connections from your address, try again later",
);
pub const TOO_MANY_EXCHANGES: Reply = Reply::new(
    421,
    Some("4.7.0"),
    "Too many authentication exchanges from your address, closing connection",
);
pub const AUTH_STEP_TIMEOUT: Reply = Reply::new(
    501,
    Some("5.7.0"),
    "Authentication exchange timed out waiting for your response; cancelled",
);
pub const AUTH_TEMPORARY: Reply =
    Reply::new(454, Some("4.7.0"), "Temporary authentication failure");
pub const UNRECOGNIZED: Reply = Reply::new(500, Some("5.5.2"), "Command not recognized");
pub const LINE_TOO_LONG: Reply = Reply::new(500, Some("5.5.6"), "Line too long");
/// A command holding a CR or LF of its own (RFC 5321 §2.3.8).
pub const BARE_NEWLINE_COMMAND: Reply = Reply::new(
    500,
    Some("5.5.2"),
    "Bare CR or LF in a command; SMTP lines end with CRLF",
);
/// A message holding a bare CR or LF, under `bare-newline = "reject"`.
pub const BARE_NEWLINE_MESSAGE: Reply = Reply::new(
    550,
    Some("5.6.0"),
    "Message refused: bare CR or LF in its text; SMTP lines end with CRLF (RFC 5321 section 2.3.8)",
);
pub const SYNTAX: Reply = Reply::new(
    501,
    Some("5.5.4"),
    "Syntax error in parameters or arguments",
);
pub const BAD_BASE64: Reply = Reply::new(501, Some("5.5.2"), "Invalid base64 data");
pub const AUTH_CANCELLED: Reply = Reply::new(501, Some("5.7.0"), "Authentication cancelled");
pub const BAD_SEQUENCE: Reply = Reply::new(503, Some("5.5.1"), "Bad sequence of commands");
pub const ALREADY_AUTHENTICATED: Reply = Reply::new(503, Some("5.5.1"), "Already authenticated");
pub const AUTH_IN_TRANSACTION: Reply = Reply::new(
    503,
    Some("5.5.1"),
    "AUTH is not allowed during a mail transaction",
);
pub const UNKNOWN_MECHANISM: Reply =
    Reply::new(504, Some("5.5.4"), "Unrecognized authentication mechanism");
pub const AUTH_REQUIRED: Reply = Reply::new(530, Some("5.7.0"), "Authentication required");
pub const AUTH_FAILED: Reply = Reply::new(535, Some("5.7.8"), "Authentication credentials invalid");
pub const ENCRYPTION_REQUIRED: Reply = Reply::new(
    538,
    Some("5.7.11"),
    "Encryption required for requested authentication mechanism",
);
pub const MESSAGE_TOO_BIG: Reply = Reply::new(
    552,
    Some("5.3.4"),
    "Message size exceeds fixed maximum message size",
);
pub const BAD_PARAMETER: Reply = Reply::new(
    555,
    Some("5.5.4"),
    "MAIL FROM/RCPT TO parameters not recognized or not implemented",
);
pub const NEED_SMTPUTF8: Reply = Reply::new(
    553,
    Some("5.6.7"),
    "Non-ASCII addresses require the SMTPUTF8 parameter",
);

pub const SESSION_TOO_LONG: Reply =
    Reply::new(421, Some("4.4.2"), "Session too long, closing connection");
pub const TOO_MANY_ERRORS: Reply =
    Reply::new(421, Some("4.7.0"), "Too many errors, closing connection");
pub const NOT_IMPLEMENTED: Reply = Reply::new(502, Some("5.5.1"), "Command not implemented");
pub const HELP: Reply = Reply::new(
    214,
    Some("2.0.0"),
    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH\n\
     See RFC 5321 and RFC 4954",
);
pub const SENDER_REFUSED: Reply = Reply::new(550, Some("5.7.1"), "Sender refused");
pub const SENDER_DEFERRED: Reply = Reply::new(
    451,
    Some("4.7.1"),
    "Sender temporarily refused, try again later",
);
pub const RECIPIENT_REFUSED: Reply = Reply::new(550, Some("5.1.1"), "Recipient refused");
pub const RECIPIENT_DEFERRED: Reply = Reply::new(
    450,
    Some("4.2.0"),
    "Recipient temporarily refused, try again later",
);
pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, Some("4.5.3"), "Too many recipients");
pub const NO_RECIPIENTS: Reply = Reply::new(554, Some("5.5.1"), "No valid recipients");
pub const MESSAGE_REFUSED: Reply = Reply::new(554, Some("5.6.0"), "Message refused");
pub const MESSAGE_DEFERRED: Reply = Reply::new(
    451,
    Some("4.3.0"),
    "Message not accepted for now, try again later",
);
/// A delivery that failed in a way that may have stored some copies
/// (the realm ran past its deadline or trapped mid-way): not a temporary
/// failure, so that the client does not send again a message that may
/// already be delivered.
pub const DELIVERY_UNCERTAIN: Reply = Reply::new(
    554,
    Some("5.3.0"),
    "Delivery failed part-way and may have reached some recipients; not retrying, ask the postmaster",
);
pub const LOCAL_ERROR: Reply = Reply::new(
    451,
    Some("4.3.0"),
    "Local error in processing, try again later",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(
            AUTH_FAILED.to_wire(),
            "535 5.7.8 Authentication credentials invalid\r\n"
        );
        assert_eq!(
            START_DATA.to_wire(),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        let ehlo = Reply::new(250, None, "").with_text("mx.example\nPIPELINING\nSIZE 1000");
        assert_eq!(
            ehlo.to_wire(),
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
        );
        assert!(OK.is_positive() && START_DATA.is_positive() && !AUTH_TEMPORARY.is_positive());
    }
}
