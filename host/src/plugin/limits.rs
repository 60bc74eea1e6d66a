//! Per-plugin resource limits, with defaults an operator can override.

use std::time::Duration;

/// What one instance of a plugin may use. Every store gets a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, in bytes, across all of the instance's memories.
    pub memory: usize,
    /// Wall-clock time for one call into the guest, including time the
    /// guest spends waiting on the host.
    pub call_time: Duration,
    /// The largest challenge, avatar id or reply the host accepts from the
    /// guest, in bytes.
    pub max_output: usize,
    /// Table elements per table.
    pub table_elements: usize,
}

impl Limits {
    /// The ceiling the engine's pooling allocator is sized for: no plugin
    /// may ask for more memory than this.
    pub const MAX_MEMORY: usize = 512 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // argon2id with the RFC 9106 second recommendation needs 64 MiB;
            // OWASP's 19 MiB setting fits comfortably.
            memory: 96 << 20,
            call_time: Duration::from_secs(2),
            max_output: 64 << 10,
            table_elements: 20_000,
        }
    }
}
