//! Every line the echo service sends on its own account, by name.
//!
//! The first two are Twisted's, word for word (seeds/001, Example 9-1).

pub const LOGIN_OK: &str = "Login successful, please proceed.";
pub const LOGIN_DENIED: &str = "Login denied, goodbye.";
pub const TEMPORARY_FAILURE: &str =
    "Authentication is temporarily unavailable, please try again later. Goodbye.";
pub const CANCELLED: &str = "Authentication cancelled.";
pub const BAD_BASE64: &str = "Error: invalid base64 in SASL message; authentication cancelled.";
pub const TOO_LONG: &str = "Error: line too long; it was discarded.";
pub const NOT_UTF8: &str = "Error: line is not valid UTF-8; it was not echoed.";
pub const TOO_MANY_ERRORS: &str = "Error: too many bad lines, goodbye.";
pub const IDLE: &str = "Error: idle for too long, goodbye.";
/// Over the session cap or a per-address limit (sent before closing).
pub const BUSY: &str = "Error: too many connections, try again later.";
pub const SHUTTING_DOWN: &str = "Error: the server is shutting down, goodbye.";

/// A line naming the mechanisms on offer after an unknown one was asked for.
pub fn unknown_mechanism(asked: &str, offered: &[&str]) -> String {
    format!(
        "Error: mechanism {asked} is not available; available: {}",
        if offered.is_empty() {
            "none".to_owned()
        } else {
            offered.join(" ")
        }
    )
}

/// A SASL challenge: `+` then the base64 data, IMAP style.
pub fn challenge(data: &[u8]) -> String {
    if data.is_empty() {
        "+".to_owned()
    } else {
        format!("+ {}", crate::sasl::encode(data))
    }
}
