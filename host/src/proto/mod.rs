//! Transport pieces every line-based protocol shares.

pub mod line;
pub mod outbox;

/// Bytes read from a socket at a time, through one buffer per thread
/// (see `line::LineReader`), so no session holds a read buffer while it
/// waits.
pub const READ_CHUNK: usize = 8192;

/// Most reply bytes an SMTP session queues before writing (see
/// `outbox::Outbox`, which holds them only until they are flushed); the
/// echo service queues up to [`ECHO_WRITE_BUFFER`]: it writes back whole
/// batches of lines.
pub const WRITE_BUFFER: usize = 1024;

/// Most bytes an echo session queues before writing.
pub const ECHO_WRITE_BUFFER: usize = 8192;
