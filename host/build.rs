//! Builds the guest plugins (every crate under `mechanisms/` and
//! `tests/plugins/` whose `crate-type` includes `cdylib`) for
//! `wasm32-wasip2` and embeds the ones under `mechanisms/` in the host
//! binary, so a default run needs no extra files. Plain library crates
//! there (`scram-core`) are built only as the plugins' dependencies.
//!
//! The guests are built by a nested `cargo build` with its own target
//! folder, so it never waits on the outer build's lock.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR is TARGET_DIR/[triple/]PROFILE/build/PKG-HASH/out.
    let guest_target = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("portcullis-guests");

    for dir in ["wit", "mechanisms", "tests/plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let builtins = guest_crates(&root.join("mechanisms"));
    let fixtures = guest_crates(&root.join("tests/plugins"));

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            "guest",
            "--target-dir",
        ])
        .arg(&guest_target);
    for name in builtins.iter().chain(&fixtures) {
        cmd.args(["-p", name]);
    }
    // The outer build's settings are for the host, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running cargo to build the guest plugins");
    if !status.success() {
        panic!(
            "building the guest plugins for {TARGET} failed (see above). If the target is \
             missing, install it with `rustup target add {TARGET}`."
        );
    }

    let wasm_dir = guest_target.join(TARGET).join("guest");
    let mut table = String::from(
        "/// The guests shipped inside the binary: (crate name, component bytes).\n\
         pub const BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    for name in &builtins {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(
            file.exists(),
            "guest {name} was built but {} is missing",
            file.display()
        );
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(out_dir.join("builtin.rs"), table).unwrap();
    // Tests load the fixtures (and the built-ins) from here as files.
    println!(
        "cargo:rustc-env=PORTCULLIS_GUEST_DIR={}",
        wasm_dir.display()
    );
}

/// The package names of the guest plugin crates directly under `dir`.
fn guest_crates(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let manifest = fs::read_to_string(e.ok()?.path().join("Cargo.toml")).ok()?;
            is_plugin(&manifest).then(|| package_name(&manifest))?
        })
        .collect();
    names.sort();
    names
}

/// Whether a manifest builds a component: a `crate-type` line naming
/// `cdylib`.
fn is_plugin(manifest: &str) -> bool {
    manifest.lines().map(str::trim).any(|line| {
        line.strip_prefix("crate-type")
            .is_some_and(|rest| rest.trim_start().starts_with('=') && rest.contains("\"cdylib\""))
    })
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}
