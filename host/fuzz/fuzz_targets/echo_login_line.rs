//! The echo service's login-line parser never panics, and what it accepts
//! is consistent with its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::echo::codec::{LoginLine, parse_login_line};

fuzz_target!(|line: &[u8]| {
    match parse_login_line(line) {
        Ok(LoginLine::Credentials { username, password }) => {
            assert!(!username.is_empty() && !password.is_empty());
            assert!(!username.contains(' '));
            assert_eq!(format!("{username} {password}").as_bytes(), line);
        }
        Ok(LoginLine::Sasl { mechanism, .. }) => {
            assert!(line.starts_with(b"AUTH "));
            assert!(mechanism.as_str().len() <= 20);
        }
        Err(_) => {}
    }
});
