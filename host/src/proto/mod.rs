//! Transport pieces every line-based protocol shares.

pub mod line;

/// Bytes read from a socket at a time; every open session holds one such
/// buffer. (4 KiB saves 4 KiB per idle session but measured ~10% fewer
/// logins/s under load.)
pub const READ_CHUNK: usize = 8192;

/// The write buffer of a session: replies are short, and a longer write
/// (a big echoed line) goes past the buffer straight to the socket.
pub const WRITE_BUFFER: usize = 1024;
