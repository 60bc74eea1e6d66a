//! SMTP (RFC 5321) pieces with no I/O: the command parser and the reply
//! table. The session and the listener come with the SMTP service.

pub mod command;
pub mod reply;
