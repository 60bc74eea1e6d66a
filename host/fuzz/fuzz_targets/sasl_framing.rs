//! SASL base64 framing: decoding never panics, and encoding round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::sasl::{Continuation, decode_continuation, decode_initial_response, encode};

fuzz_target!(|data: &[u8]| {
    let _ = decode_initial_response(data);
    let _ = decode_continuation(data);
    assert_eq!(
        decode_continuation(encode(data).as_bytes()),
        Ok(if data.is_empty() {
            Continuation::Data(Vec::new())
        } else {
            Continuation::Data(data.to_vec())
        })
    );
});
