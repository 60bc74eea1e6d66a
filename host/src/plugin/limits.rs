//! Per-plugin resource limits, with defaults an operator can override
//! (see `cli::plugin_arg::LimitArgs`), and the ranges an override must
//! stay within.

use std::time::Duration;

impl Limits {
    /// The limits a realm runs under, as the file writes them (for
    /// check-config).
    pub fn realm_summary(&self) -> String {
        format!(
            "limits = {{ memory = \"{}M\", call-time = \"{}\", deliver-time = \"{}\" }}",
            self.memory >> 20,
            duration_text(self.call_time),
            duration_text(self.deliver_time),
        )
    }
}

/// A duration as the file writes it: `10ms`, `30s`.
fn duration_text(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// What one instance of a plugin may use. Every store gets a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, in bytes, across all of the instance's memories.
    /// This also bounds what the host copies out of the guest in one
    /// answer, since an answer must fit in the guest's memory first.
    pub memory: usize,
    /// Wall-clock time for one call into the guest, including time the
    /// guest spends waiting on the host. An exchange also waits at most
    /// this long for a free instance slot.
    pub call_time: Duration,
    /// Wall-clock time for a realm's `deliver`, which writes a whole
    /// message (to disk, or to a next hop) and so gets its own deadline.
    pub deliver_time: Duration,
    /// The largest challenge, credentials, avatar id or reply the host
    /// accepts from the guest, in bytes.
    pub max_output: usize,
    /// Table elements per table.
    pub table_elements: usize,
    /// WASI resources (open descriptors, streams, pollables) one store may
    /// hold at once; past it the guest's call fails, never the host.
    pub max_resources: usize,
}

impl Limits {
    /// The ceiling the engine's pooling allocator is sized for: no plugin
    /// may ask for more memory than this.
    pub const MAX_MEMORY: usize = 512 << 20;
    /// The least memory an override may give: a Rust guest's stack and
    /// heap need a few pages.
    pub const MIN_MEMORY: usize = 1 << 20;
    /// The longest call time an override may give.
    pub const MAX_CALL_TIME: Duration = Duration::from_secs(300);
    /// The shortest call time an override may give.
    pub const MIN_CALL_TIME: Duration = Duration::from_millis(10);
    /// The default of `deliver_time`: generous, since a delivery that runs
    /// past it cannot tell the client whether its message was stored.
    pub const DELIVER_TIME: Duration = Duration::from_secs(30);
    /// The range of `max_output` overrides: room for a SCRAM challenge at
    /// the bottom, at most 16 MiB copied out of a guest per answer.
    pub const MIN_OUTPUT: usize = 256;
    pub const MAX_OUTPUT: usize = 16 << 20;
    /// The wasm stack of every call (an engine setting in wasmtime, so one
    /// value for all plugins), its default and the range an override may
    /// give. Rust guests keep most frames on a shadow stack in linear
    /// memory; this bounds the native frames of compiled wasm.
    pub const WASM_STACK: usize = 512 << 10;
    pub const MIN_WASM_STACK: usize = 64 << 10;
    pub const MAX_WASM_STACK: usize = 8 << 20;
    /// The range of `max_resources` overrides: a guest needs a few for
    /// its preopened grants and stdio.
    pub const MIN_RESOURCES: usize = 8;
    pub const MAX_RESOURCES: usize = 4096;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // argon2id with the RFC 9106 second recommendation needs 64 MiB;
            // OWASP's 19 MiB setting fits comfortably.
            memory: 96 << 20,
            call_time: Duration::from_secs(2),
            deliver_time: Self::DELIVER_TIME,
            max_output: 64 << 10,
            table_elements: 20_000,
            max_resources: 64,
        }
    }
}
