//! Everything the SMTP session parses from a client, over arbitrary bytes:
//! lines framed with limits, each parsed as a command and its ESMTP
//! parameters checked, and the same stream read as DATA. Nothing panics, no
//! line exceeds its limit, and DATA never stores more than its budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::proto::line::{Frame, LineBuffer};
use portcullis::smtp::command::{Command, parse_command};
use portcullis::smtp::data::{DataProgress, DataReader};
use portcullis::smtp::params::{check_address, mail_params, rcpt_params};

const MAX_LINE: usize = 512;
const MAX_DATA: usize = 4096;

fuzz_target!(|input: &[u8]| {
    let mut lines = LineBuffer::new(MAX_LINE);
    lines.extend(input);
    let mut data = DataReader::new(b"Received: x\r\n".to_vec(), MAX_DATA);
    while let Some(frame) = lines.next_frame() {
        if let Frame::Line(line) = &frame {
            assert!(line.len() <= MAX_LINE);
            match parse_command(line) {
                Ok(Command::Mail { from, params }) => {
                    if let Ok(p) = mail_params(&params, 1000) {
                        assert!(p.size.is_none_or(|s| s <= 1000));
                        let _ = check_address(from, p.smtputf8);
                    }
                }
                Ok(Command::Rcpt { to, params }) => {
                    let _ = rcpt_params(&params);
                    let _ = check_address(to, false);
                }
                _ => {}
            }
        }
        if let DataProgress::Done(Ok(message)) = data.feed(frame) {
            assert!(message.len() <= MAX_DATA + 13);
            data = DataReader::new(Vec::new(), MAX_DATA);
        }
    }
});
