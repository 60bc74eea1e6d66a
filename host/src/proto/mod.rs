//! Transport pieces every line-based protocol shares.

pub mod line;
