//! The smuggling property of DATA, over arbitrary bytes and any split into
//! reads: one DATA never yields two messages, and never ends before the
//! real `CRLF . CRLF`. The input is framed as the session frames it and fed
//! to one DATA reader; the message must end exactly where the first
//! `\r\n.\r\n` (counting the CRLF that ended the DATA command) ends, and
//! what follows it must be left unread.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::proto::line::LineBuffer;
use portcullis::smtp::data::{BareNewline, DataProgress, DataReader};

fuzz_target!(|input: (bool, Vec<Vec<u8>>)| {
    let (reject, chunks) = input;
    let policy = if reject {
        BareNewline::Reject
    } else {
        BareNewline::Normalize
    };
    // The stream as the client sent it, after DATA's own CRLF.
    let stream: Vec<u8> = chunks.concat();
    let mut with_crlf = b"\r\n".to_vec();
    with_crlf.extend_from_slice(&stream);
    let real_end = with_crlf
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|at| at + 5 - 2);

    let mut lines = LineBuffer::new(1 << 20);
    let mut reader = DataReader::with_policy(Vec::new(), 1 << 20, policy);
    let mut consumed = 0usize;
    let mut ended_at = None;
    for chunk in &chunks {
        lines.extend(chunk);
        consumed += chunk.len();
        while let Some(frame) = lines.next_frame() {
            assert!(ended_at.is_none(), "a second message from one DATA");
            if let DataProgress::Done(result) = reader.feed(frame) {
                ended_at = Some(consumed - lines.buffered().len());
                if let Ok(message) = result {
                    // Stored text has CRLF line endings only.
                    for (i, &b) in message.iter().enumerate() {
                        if b == b'\n' {
                            assert!(i > 0 && message[i - 1] == b'\r');
                        }
                        if b == b'\r' {
                            assert_eq!(message.get(i + 1), Some(&b'\n'));
                        }
                    }
                }
                break;
            }
        }
        if ended_at.is_some() {
            break;
        }
    }
    assert_eq!(ended_at, real_end, "DATA ended elsewhere than CRLF.CRLF");
});
