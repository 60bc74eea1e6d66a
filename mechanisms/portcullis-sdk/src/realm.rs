//! Realms (`interface realm`): turn an avatar id into the avatar that acts
//! for the user in one protocol.
//!
//! Implement [`Realm`], with an [`EchoAvatar`] for the echo service and a
//! [`DeliveryAvatar`] for SMTP delivery (use [`NoAvatar`] for an interface
//! you do not serve, and answer its requests
//! `Err(Denial::Unsupported.into())`), then export it with
//! [`export_realm!`](crate::export_realm). A realm that cannot serve anyone
//! (its own configuration or data is broken) answers
//! `Err(AvatarError::Unavailable(why))`: the client gets a temporary
//! failure, not a failed login.
//!
//! The host creates a fresh instance for every avatar and drops the avatar
//! at logout: implement `Drop` on your avatar type to release what the
//! login acquired.

use crate::bindings::realm::exports::portcullis::auth::realm as wit;
use crate::types::Denial;

pub use wit::{AvatarError, AvatarInterface, EchoReply, Mind, ReceivedInfo, Rejection};

/// A denial is the usual reason for no avatar: `?` on a `Result<_, Denial>`
/// and `Err(denial.into())` work in [`Realm::request_avatar`].
impl From<Denial> for AvatarError {
    fn from(denial: Denial) -> Self {
        AvatarError::Denied(denial)
    }
}

/// One logged-in user of the echo service.
pub trait EchoAvatar: 'static {
    /// One line from the client, without its line ending.
    fn line(&self, line: String) -> EchoReply;
}

/// One logged-in SMTP user (Twisted's `IMessageDelivery`).
pub trait DeliveryAvatar: 'static {
    /// May this session send mail from `sender` (empty: the null
    /// reverse-path)?
    fn validate_from(&self, helo: String, sender: String) -> Result<(), Rejection>;
    /// May mail be delivered to `recipient`?
    fn validate_to(&self, recipient: String) -> Result<(), Rejection>;
    /// The Received header to prepend, or `None` (the default) for the
    /// host's standard one.
    fn received_header(&self, info: ReceivedInfo) -> Option<String> {
        let _ = info;
        None
    }
    /// Delivers a message; return `Ok` only once it is safe.
    fn deliver(&self, info: ReceivedInfo, message: Vec<u8>) -> Result<(), Rejection>;
}

/// The avatar for an interface you do not serve: it has no values.
pub enum NoAvatar {}

impl EchoAvatar for NoAvatar {
    fn line(&self, _: String) -> EchoReply {
        match *self {}
    }
}

impl DeliveryAvatar for NoAvatar {
    fn validate_from(&self, _: String, _: String) -> Result<(), Rejection> {
        match *self {}
    }
    fn validate_to(&self, _: String) -> Result<(), Rejection> {
        match *self {}
    }
    fn deliver(&self, _: ReceivedInfo, _: Vec<u8>) -> Result<(), Rejection> {
        match *self {}
    }
}

/// An avatar of one of the realm's two types.
pub enum Avatar<E, D> {
    Echo(E),
    MessageDelivery(D),
}

/// A realm.
pub trait Realm {
    type Echo: EchoAvatar;
    type Delivery: DeliveryAvatar;

    /// The avatar for `avatar_id` (`None`: an anonymous user) implementing
    /// `interface`. A realm that does not serve the interface MUST answer
    /// `Err(Denial::Unsupported.into())`; the SDK refuses an avatar of the
    /// other interface than the one asked for in the same way. A realm that
    /// cannot serve because of its own fault SHOULD answer
    /// `Err(AvatarError::Unavailable(why))` (a temporary failure, logged
    /// with `why`), never a denial.
    fn request_avatar(
        avatar_id: Option<String>,
        interface: AvatarInterface,
        mind: Mind,
    ) -> Result<Avatar<Self::Echo, Self::Delivery>, AvatarError>;
}

#[doc(hidden)]
pub struct EchoResource<E>(E);

impl<E: EchoAvatar> wit::GuestEchoAvatar for EchoResource<E> {
    fn line(&self, line: String) -> EchoReply {
        self.0.line(line)
    }
}

#[doc(hidden)]
pub struct DeliveryResource<D>(D);

impl<D: DeliveryAvatar> wit::GuestDeliveryAvatar for DeliveryResource<D> {
    fn validate_from(&self, helo: String, sender: String) -> Result<(), Rejection> {
        self.0.validate_from(helo, sender)
    }
    fn validate_to(&self, recipient: String) -> Result<(), Rejection> {
        self.0.validate_to(recipient)
    }
    fn received_header(&self, info: ReceivedInfo) -> Option<String> {
        self.0.received_header(info)
    }
    fn deliver(&self, info: ReceivedInfo, message: Vec<u8>) -> Result<(), Rejection> {
        self.0.deliver(info, message)
    }
}

#[doc(hidden)]
pub fn __request_avatar<R: Realm>(
    avatar_id: Option<String>,
    interface: AvatarInterface,
    mind: Mind,
) -> Result<wit::Avatar, AvatarError> {
    match (R::request_avatar(avatar_id, interface, mind)?, interface) {
        (Avatar::Echo(e), AvatarInterface::Echo) => {
            Ok(wit::Avatar::Echo(wit::EchoAvatar::new(EchoResource(e))))
        }
        (Avatar::MessageDelivery(d), AvatarInterface::MessageDelivery) => Ok(
            wit::Avatar::MessageDelivery(wit::DeliveryAvatar::new(DeliveryResource(d))),
        ),
        _ => Err(AvatarError::Denied(Denial::Unsupported)),
    }
}

/// Exports a [`Realm`] as this component's `realm` interface. Use once, at
/// the crate root of a `cdylib`.
///
/// ```ignore
/// portcullis_sdk::export_realm!(MyRealm);
/// ```
#[macro_export]
macro_rules! export_realm {
    ($ty:ty) => {
        const _: () = {
            struct PortcullisRealm;

            impl $crate::__bindings::realm::exports::portcullis::auth::realm::Guest
                for PortcullisRealm
            {
                type EchoAvatar = $crate::realm::EchoResource<<$ty as $crate::realm::Realm>::Echo>;
                type DeliveryAvatar =
                    $crate::realm::DeliveryResource<<$ty as $crate::realm::Realm>::Delivery>;

                fn request_avatar(
                    avatar_id: Option<String>,
                    interface: $crate::realm::AvatarInterface,
                    mind: $crate::realm::Mind,
                ) -> Result<
                    $crate::__bindings::realm::exports::portcullis::auth::realm::Avatar,
                    $crate::realm::AvatarError,
                > {
                    $crate::realm::__request_avatar::<$ty>(avatar_id, interface, mind)
                }
            }

            // Only a wasm32 build exports: the WIT export names (`iface#func`)
            // are not symbols a native linker accepts, so a native cdylib
            // (`cargo build --workspace`) would fail to link. A native build
            // still type-checks the glue and keeps the plugin's code live,
            // for its unit tests and without dead-code warnings.
            #[cfg(not(target_arch = "wasm32"))]
            #[allow(dead_code)]
            fn native_build_uses_the_exports() {
                use $crate::__bindings::realm::exports::portcullis::auth::realm::Guest;
                let _ = <PortcullisRealm as Guest>::request_avatar;
            }

            #[cfg(target_arch = "wasm32")]
            $crate::__bindings::realm::export_realm_world!(
                PortcullisRealm with_types_in $crate::__bindings::realm
            );
        };
    };
}
