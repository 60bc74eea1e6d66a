//! What a plugin's `Store` carries: its WASI context (only the grants the
//! operator gave it), its limits and, for a mechanism, the exchange it
//! serves.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::portal::{ChannelInfo, CredentialKind, Fault, SecretSource};

/// The data of one plugin store.
pub struct PluginState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// The plugin's name, for logs and faults.
    pub(crate) name: Arc<str>,
    /// The plugin's configuration as JSON text.
    pub(crate) config: Arc<str>,
    /// When the call in progress must end.
    pub(crate) deadline: Instant,
    /// The guest's stderr, kept (bounded) so a trap can be explained by
    /// the guest's panic message.
    pub(crate) stderr: super::stderr::StderrRing,
    /// Lines logged by this instance, to cap a chatty guest.
    pub(crate) logged: u32,
    /// Set for mechanism stores: what the `session` import answers from.
    pub(crate) session: Option<SessionContext>,
    /// The queries the `sql` import may run.
    pub(crate) sql: Option<Arc<crate::sql::SqlGrant>>,
    /// The next hops the `relay` import may use, and this store's
    /// connection and transaction.
    pub(crate) relay: Option<crate::relay::RelaySession>,
    /// The indexes the `keyed-file` import answers from (the plugin's, so
    /// they outlive this store).
    pub(crate) files: Arc<crate::keyed_file::KeyedFiles>,
    /// The plugin's output limit, which also bounds query results.
    pub(crate) max_output: usize,
    /// What the `password-hash` import verifies natively for this plugin.
    pub(crate) hash_caps: crate::password_hash::Caps,
    /// Native verifications this store may still ask for.
    pub(crate) hashes_left: u32,
}

impl Drop for PluginState {
    fn drop(&mut self) {
        crate::metrics::METRICS.instance_dropped();
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The mechanism store's view of its exchange.
pub struct SessionContext {
    pub(crate) channel: ChannelInfo,
    /// Where `lookup-secret` is answered.
    pub(crate) source: Arc<dyn SecretSource>,
    /// The kinds the mechanism declared: the only ones it may look up.
    pub(crate) declared: Vec<CredentialKind>,
    /// Whether the operator lets this mechanism look secrets up at all.
    pub(crate) may_lookup: bool,
    /// Lookups this exchange may still make.
    pub(crate) lookups_left: u32,
    /// Secrets handed to the mechanism: the user name, the kind and the
    /// avatar id the checker vouched for.
    pub(crate) secrets: Vec<(String, CredentialKind, String)>,
    /// A checker fault met while answering `lookup-secret`; it turns the
    /// exchange's failure into a fault.
    pub(crate) fault: Option<Fault>,
}
