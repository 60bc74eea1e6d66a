//! Line framing: however the input is split into reads, no frame is longer
//! than the limit and the buffer never holds much more than one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::proto::line::{Frame, LineBuffer};

fuzz_target!(|input: (u8, Vec<Vec<u8>>)| {
    let (max, chunks) = input;
    let max = usize::from(max) + 1;
    let mut buffer = LineBuffer::new(max);
    for chunk in chunks {
        buffer.extend(&chunk);
        while let Some(frame) = buffer.next_frame() {
            if let Frame::Line(line) = frame {
                assert!(line.len() <= max);
                assert!(!line.contains(&b'\n'));
            }
        }
        assert!(buffer.buffered().len() <= max + 1);
    }
});
