#!/bin/sh
# wasmtime's floor per fresh instance and RSS per live store, with the
# host's pool settings, for the host's wasmtime and a newer one, on one
# machine, one after the other (see src/main.rs and examples/bench/README.md).
#
#   sh examples/bench/wasmtime-floor/run.sh [VERSION=TOOLCHAIN ...]
#
# Default: 48.0.8 (the host's) with the default toolchain, and 50.0.1
# (which needs rustc 1.97) with the `nightly` toolchain. The guest is the
# built-in mech-plain of a host build (cargo build --release first);
# GUEST= names another component, INTERFACE= and FUNCTION= its export.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
guest=${GUEST:-$root/target/portcullis-guests/wasm32-wasip2/guest/mech_plain.wasm}
interface=${INTERFACE:-portcullis:auth/mechanism@0.2.0}
function=${FUNCTION:-info}
loops=${LOOPS:-20000}
live=${LIVE:-4000}
[ -f "$guest" ] || { echo "no $guest: build the host first (cargo build --release)" >&2; exit 1; }
[ $# -gt 0 ] || set -- 48.0.8= 50.0.1=nightly
for spec in "$@"; do
    version=${spec%%=*}
    toolchain=${spec#*=}
    dir=${TMPDIR:-/tmp}/portcullis-wasmtime-floor-$version
    mkdir -p "$dir/src"
    cp "$here/src/main.rs" "$dir/src/"
    sed "s/@VERSION@/$version/g" "$here/Cargo.toml.in" > "$dir/Cargo.toml"
    echo "## wasmtime $version (rustc: $(cd "$dir" && rustc ${toolchain:+"+$toolchain"} --version))"
    (cd "$dir" && cargo ${toolchain:+"+$toolchain"} build --release --quiet)
    "$dir/target/release/wasmtime-floor" "$guest" "$interface" "$function" "$loops" "$live"
done
