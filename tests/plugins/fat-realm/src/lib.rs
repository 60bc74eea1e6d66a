//! Test fixture: an echo realm that can never be instantiated under the
//! default 96 MiB memory limit, for the host's load-time checks (issue
//! 12). Never shipped, never embedded in the host. No configuration.
//!
//! [`BALLAST`], a 128 MiB zero-initialised static, lives in the module's
//! linear memory: the linker raises the memory's minimum to cover it, so
//! instantiating the component asks for more than 128 MiB up front. Were
//! it instantiated, its avatars would echo every line.

use portcullis_sdk::realm::{
    Avatar, AvatarError, AvatarInterface, EchoAvatar, EchoReply, Mind, NoAvatar, Realm as SdkRealm,
};
use portcullis_sdk::types::Denial;

/// The size of [`BALLAST`]: above the default memory limit (96 MiB).
pub const BALLAST_BYTES: usize = 128 << 20;

/// Linear memory the module reserves at instantiation.
pub static mut BALLAST: [u8; BALLAST_BYTES] = [0; BALLAST_BYTES];

/// Reads a byte of the ballast, so the linker keeps all of it.
fn ballast_byte(at: usize) -> u8 {
    // SAFETY: a plain read of a static nobody writes; the address goes
    // through black_box so the static cannot be optimised away.
    unsafe {
        let base = std::hint::black_box(&raw const BALLAST).cast::<u8>();
        *base.add(at % BALLAST_BYTES)
    }
}

struct Echo;

impl EchoAvatar for Echo {
    fn line(&self, line: String) -> EchoReply {
        let _ = ballast_byte(line.len() * 4096);
        EchoReply {
            lines: vec![line],
            close: false,
        }
    }
}

struct Realm;

impl SdkRealm for Realm {
    type Echo = Echo;
    type Delivery = NoAvatar;

    fn request_avatar(
        avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar<Self::Echo, Self::Delivery>, AvatarError> {
        let _ = ballast_byte(avatar_id.map_or(0, |id| id.len()));
        match interface {
            AvatarInterface::Echo => Ok(Avatar::Echo(Echo)),
            AvatarInterface::MessageDelivery => Err(Denial::Unsupported.into()),
        }
    }
}

portcullis_sdk::export_realm!(Realm);
