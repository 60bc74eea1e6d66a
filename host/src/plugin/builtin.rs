//! The guest plugins compiled from `mechanisms/` by `build.rs` and shipped
//! inside the binary. They are sandboxed exactly like third-party plugins.

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The component bytes of a built-in guest, by crate name (`mech-plain`).
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The names of every built-in guest.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}
