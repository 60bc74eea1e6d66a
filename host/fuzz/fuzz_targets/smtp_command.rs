//! The SMTP command parser never panics, and an accepted path never
//! contains the brackets that delimit it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::smtp::command::{Command, parse_command};

fuzz_target!(|line: &[u8]| {
    match parse_command(line) {
        Ok(Command::Mail { from: path, params }) | Ok(Command::Rcpt { to: path, params }) => {
            assert!(path.len() < line.len());
            for p in params {
                assert!(!p.keyword.is_empty());
            }
        }
        Ok(_) | Err(_) => {}
    }
});
