//! The generated bindings: one `generate!` per world, over the repository's
//! top-level `wit/` (the contract the host speaks). The checker and realm
//! worlds reuse the mechanism world's `types` and `host` modules, so one
//! Rust type stands for each WIT type.
//!
//! Each world's export macro is public and looks for its bindings in this
//! crate (`default_bindings_module`), which is what lets the SDK's own
//! `export_*!` macros expand in the plugin author's crate.

/// `world mechanism-plugin`.
pub mod mechanism {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mechanism-plugin",
        pub_export_macro: true,
        default_bindings_module: "::portcullis_sdk::__bindings::mechanism",
        export_macro_name: "export_mechanism_world",
        // So plugin authors can compare credentials and denials in tests.
        additional_derives: [PartialEq, Eq],
        runtime_path: "::portcullis_sdk::__wit_bindgen::rt",
    });
}

/// `world any-checker-plugin`, used for every checker: wit-component drops
/// the `sql` and `keyed-file` imports from a component that never calls
/// them, so a checker asks only for what it uses.
pub mod checker {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "any-checker-plugin",
        pub_export_macro: true,
        default_bindings_module: "::portcullis_sdk::__bindings::checker",
        export_macro_name: "export_checker_world",
        runtime_path: "::portcullis_sdk::__wit_bindgen::rt",
        with: {
            "portcullis:auth/types@0.2.0": crate::bindings::mechanism::portcullis::auth::types,
            "portcullis:auth/host@0.2.0": crate::bindings::mechanism::portcullis::auth::host,
        },
    });
}

/// `world relay-realm-plugin`, used for every realm: wit-component drops
/// the `relay` import from a component that never calls it, so a realm
/// that does not relay asks for no next hop.
pub mod realm {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "relay-realm-plugin",
        pub_export_macro: true,
        default_bindings_module: "::portcullis_sdk::__bindings::realm",
        export_macro_name: "export_realm_world",
        runtime_path: "::portcullis_sdk::__wit_bindgen::rt",
        with: {
            "portcullis:auth/types@0.2.0": crate::bindings::mechanism::portcullis::auth::types,
            "portcullis:auth/host@0.2.0": crate::bindings::mechanism::portcullis::auth::host,
        },
    });
}
