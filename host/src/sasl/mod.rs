//! SASL on the host side: the registry of loaded mechanisms, the framing
//! every protocol shares (base64, `=`, `*`), and the authenticator that
//! drives one exchange through a mechanism plugin and the portal.

mod authenticator;
mod framing;
mod registry;

pub use authenticator::{Authenticator, Outcome, Progress};
pub use framing::{
    Continuation, FramingError, decode_continuation, decode_initial_response, encode,
};
pub use registry::{Mechanisms, Mechname};
