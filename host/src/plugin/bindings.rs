//! The generated bindings for the `portcullis:auth` WIT package: the one
//! place `bindgen!` runs.
//!
//! Each world gets its own module; the checker and realm worlds reuse the
//! mechanism world's `types` and `host` interfaces so that one Rust type
//! stands for each WIT type, and the `host` import is implemented once.

/// Bindings for `world mechanism-plugin`.
pub mod mechanism {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "mechanism-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Bindings for `world any-checker-plugin`: a checker, with the `sql` and
/// `keyed-file` imports linked for every checker (one that does not import
/// them simply never calls them).
pub mod checker {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "any-checker-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "portcullis:auth/types": super::mechanism::portcullis::auth::types,
            "portcullis:auth/host": super::mechanism::portcullis::auth::host,
        },
    });
}

/// Bindings for `world relay-realm-plugin`, used for every realm: the
/// `relay` import is linked for all of them (one that does not import it
/// simply never calls it, and a realm built for `realm-plugin` loads as
/// before).
pub mod realm {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "relay-realm-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "portcullis:auth/types": super::mechanism::portcullis::auth::types,
            "portcullis:auth/host": super::mechanism::portcullis::auth::host,
        },
    });
}

pub use mechanism::portcullis::auth::types;

pub use realm::{RelayRealmPlugin as RealmPlugin, RelayRealmPluginPre as RealmPluginPre};

pub use checker::{AnyCheckerPlugin as CheckerPlugin, AnyCheckerPluginPre as CheckerPluginPre};
