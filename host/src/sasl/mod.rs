//! SASL on the host side: the registry of loaded mechanisms, the framing
//! every protocol shares (base64, `=`, `*`), the authenticator that drives
//! one exchange through a mechanism and the portal, and [`line`]: that
//! exchange over a line protocol, which SMTP and echo both drive.

mod authenticator;
mod framing;
pub mod line;
mod registry;

pub use authenticator::{Authenticator, Outcome, Progress, Purpose};
pub use framing::{
    Continuation, FramingError, decode_continuation, decode_initial_response, encode,
};
pub use line::{Begin, Ending, LineExchange, Refusal, Turn};
pub use registry::{Mechanisms, Mechname, Registered};
