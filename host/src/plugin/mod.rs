//! The plugin runtime: one wasmtime [`Engine`], every plugin compiled once
//! and pre-instantiated, a fresh [`Store`] from the pooling allocator for
//! every exchange and every avatar.
//!
//! - [`bindings`]: the generated bindings (the one `bindgen!` module).
//! - [`convert`]: generated types ↔ the portal's domain types.
//! - [`host_impl`]: the imports plugins call.
//! - [`mechanism`], [`checker`], [`realm`]: typed handles for one call,
//!   exchange or avatar, turning traps and contract breaches into [`Fault`]s.
//! - [`builtin`]: the guests shipped inside the binary.
//! - [`limits`], [`pin`]: what one plugin may use, and the digest its file
//!   must have.
//!
//! Instances come from a fixed pool, split into three budgets
//! ([`Budgets`]): mechanism instances (exchanges in flight), checker
//! instances (one call each) and realm instances (logged-in avatars). A
//! semaphore per budget stands in front of the pool, so an exchange that
//! finds its budget spent waits for a slot (at most its plugin's call
//! time) instead of failing at once, and neither long-lived avatars nor
//! exchanges can starve the other.
//!
//! Every store is bounded beyond time and memory: the bytes and list
//! elements the host lifts out of one answer (`max_output`, as wasmtime's
//! hostcall fuel, counted before anything is allocated), its WASI
//! resources and open descriptors (`max_resources`), and its stderr (a
//! ring that keeps the last few KiB and never fails a write).

pub mod bindings;
pub mod builtin;
pub mod checker;
mod convert;
mod host_impl;
pub mod limits;
pub mod mechanism;
pub mod pin;
pub mod realm;
mod state;
mod stderr;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
    Trap, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub use checker::WasmChecker;
pub use limits::Limits;
pub use mechanism::{WasmExchange, WasmMechanism};
pub use pin::Sha256Pin;
pub use realm::{WasmAvatar, WasmRealm};
pub use state::PluginState;

use crate::portal::{Fault, FaultKind};

/// The WIT package this host speaks, as guests name it in their imports.
pub const WIT_PACKAGE: &str = "portcullis:auth";
/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.2.0";

/// Bytes of a freed slot's linear memory reset in place and kept resident
/// (see `Runtime::new`): what a Rust guest typically touches per call.
const KEEP_RESIDENT: usize = 2 << 20;

/// The least hostcall fuel a store gets: a WASI file write carries up to
/// 64 KiB (wasmtime-wasi's write capacity), plus room for the call.
const MIN_HOSTCALL_FUEL: usize = (64 << 10) + 4096;

/// How often the engine's epoch advances; the granularity of time limits.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How many instances of each role may be alive at once. The pool holds
/// their sum; each role draws only on its own budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// Mechanism instances: SASL exchanges in flight.
    pub exchanges: u32,
    /// Checker instances: one per check or secret lookup, each as long as
    /// one call.
    pub checks: u32,
    /// Realm instances: one per logged-in session's avatar. Sized for
    /// `--max-sessions` by default, so every session can hold one.
    pub avatars: u32,
}

impl Budgets {
    pub fn total(&self) -> u32 {
        self.exchanges
            .saturating_add(self.checks)
            .saturating_add(self.avatars)
    }

    fn of(&self, kind: PluginKind) -> u32 {
        match kind {
            PluginKind::Mechanism => self.exchanges,
            PluginKind::Checker => self.checks,
            PluginKind::Realm => self.avatars,
        }
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            exchanges: 1000,
            checks: 1000,
            avatars: 10_000,
        }
    }
}

/// Sizes the engine is built for.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Instances alive at once, per role.
    pub budgets: Budgets,
    /// wasm stack per call, in bytes.
    pub max_wasm_stack: usize,
    /// Where compiled plugins are cached, keyed by their content and the
    /// engine's settings, so a restart skips compilation; `None`: no cache.
    pub cache_dir: Option<PathBuf>,
    /// `lookup-secret` calls one exchange may make.
    pub max_lookups: u32,
    /// Whether the `password-hash` import verifies slow hashes natively
    /// (otherwise it declines every one and checkers verify them).
    pub native_hashes: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            budgets: Budgets::default(),
            max_wasm_stack: Limits::WASM_STACK,
            cache_dir: None,
            max_lookups: 4,
            native_hashes: true,
        }
    }
}

/// The engine, the linkers and the epoch ticker. Shared by every plugin.
pub struct Runtime {
    engine: Engine,
    mechanism_linker: Linker<PluginState>,
    checker_linker: Linker<PluginState>,
    realm_linker: Linker<PluginState>,
    ticker_stop: Arc<AtomicBool>,
    /// One permit per instance slot of each budget, indexed by
    /// [`PluginKind::index`].
    slots: [Arc<tokio::sync::Semaphore>; 3],
    budgets: Budgets,
    max_lookups: u32,
    native_hashes: bool,
}

impl Runtime {
    pub fn new(sizes: &RuntimeConfig) -> anyhow::Result<Arc<Runtime>> {
        low_priority_rayon();
        warn_if_map_count_is_low(sizes.budgets.total());
        let total = sizes.budgets.total().max(1);
        let mut pool = PoolingAllocationConfig::new();
        // A Rust component holds a few core instances, one memory and a
        // couple of tables. Every slot is address space reserved up front,
        // not memory: what a slot costs in RSS is what its guest touches.
        pool.total_component_instances(total)
            .total_core_instances(total.saturating_mul(8))
            .total_memories(total.saturating_mul(2))
            .total_tables(total.saturating_mul(4))
            // A store keeps the fiber stack of its last call for the next
            // one (wasmtime has no public way to give it back early), so
            // an idle avatar holds one too: one stack per instance. Each
            // costs two memory mappings (its guard page), which is what
            // bounds the pool against the kernel's vm.max_map_count.
            .total_stacks(total)
            .max_memory_size(Limits::MAX_MEMORY)
            // A login instantiates and drops two or three plugins. Reset a
            // freed slot's memory, tables and async stack with memset
            // (only the pages it touched, found with PAGEMAP_SCAN where the
            // kernel has it) instead of madvise: no syscall, no page faults
            // when the slot is reused, no TLB shootdown across threads.
            // The cost is that much resident memory per warm slot.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(sizes.max_wasm_stack + (256 << 10))
            .pagemap_scan(wasmtime::Enabled::Auto);

        let mut config = Config::new();
        config
            // Each memory slot reserves the plugin memory ceiling (plus
            // wasmtime's guard), not the 4 GiB default, so a pool sized
            // for 10,000 sessions reserves terabytes less address space.
            // The price is an explicit bounds check per memory access.
            .memory_reservation(Limits::MAX_MEMORY as u64)
            .memory_reservation_for_growth(0)
            // Compilation runs on threads that are not serving and yield
            // to those that are (`Runtime::load`, `low_priority_rayon`): a
            // reload that compiles for seconds must not slow logins down.
            .parallel_compilation(true)
            .epoch_interruption(true)
            .max_wasm_stack(sizes.max_wasm_stack)
            .async_stack_size(sizes.max_wasm_stack + (256 << 10))
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = &sizes.cache_dir {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache = wasmtime::Cache::new(cache)
                .map_err(to_anyhow)
                .with_context(|| format!("plugin cache in {}", dir.display()))?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(to_anyhow)?;

        let mut mechanism_linker = Linker::new(&engine);
        let mut checker_linker = Linker::new(&engine);
        let mut realm_linker = Linker::new(&engine);
        for linker in [
            &mut mechanism_linker,
            &mut checker_linker,
            &mut realm_linker,
        ] {
            wasmtime_wasi::p2::add_to_linker_async(linker).map_err(to_anyhow)?;
        }
        bindings::mechanism::MechanismPlugin::add_to_linker::<_, HasSelf>(
            &mut mechanism_linker,
            |s| s,
        )
        .map_err(to_anyhow)?;
        bindings::CheckerPlugin::add_to_linker::<_, HasSelf>(&mut checker_linker, |s| s)
            .map_err(to_anyhow)?;
        bindings::RealmPlugin::add_to_linker::<_, HasSelf>(&mut realm_linker, |s| s)
            .map_err(to_anyhow)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("portcullis-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("starting the epoch thread")?;
        }

        Ok(Arc::new(Runtime {
            engine,
            mechanism_linker,
            checker_linker,
            realm_linker,
            ticker_stop,
            slots: [
                PluginKind::Mechanism,
                PluginKind::Checker,
                PluginKind::Realm,
            ]
            .map(|k| Arc::new(tokio::sync::Semaphore::new(sizes.budgets.of(k) as usize))),
            budgets: sizes.budgets,
            max_lookups: sizes.max_lookups,
            native_hashes: sizes.native_hashes,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The instance budgets the pool was sized for.
    pub fn budgets(&self) -> Budgets {
        self.budgets
    }

    /// Compiles a plugin on a thread of its own (at low priority, so the
    /// serving threads keep the CPU), pre-instantiates it against the
    /// linker of the world it implements, and instantiates it once as a
    /// trial: a plugin that can never be instantiated (a memory minimum
    /// over its limit, say) is refused here, at start or reload, instead
    /// of failing every login later.
    pub async fn load(self: &Arc<Self>, spec: PluginSpec) -> anyhow::Result<Arc<Plugin>> {
        let runtime = self.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("portcullis-compile".into())
            .spawn(move || {
                lower_thread_priority();
                let _ = done.send(runtime.compile(spec));
            })
            .context("starting a compile thread")?;
        let plugin = result
            .await
            .map_err(|_| anyhow::anyhow!("the compile thread died"))??;
        plugin.trial().await?;
        Ok(plugin)
    }

    /// Compiles and links a plugin (blocking: runs for as long as the
    /// compiler needs).
    fn compile(self: &Arc<Self>, spec: PluginSpec) -> anyhow::Result<Arc<Plugin>> {
        if let Some(expected) = spec.sha256 {
            let actual = Sha256Pin::of(&spec.wasm);
            if actual != expected {
                bail!(
                    "plugin {}: sha256 is {actual}, but the configuration pins {expected}; \
                     refusing to load it (update the pin only if you trust the new file)",
                    spec.name
                );
            }
        }
        let component = Component::from_binary(&self.engine, &spec.wasm)
            .map_err(to_anyhow)
            .with_context(|| {
                format!(
                    "plugin {}: not a WebAssembly component this host can compile \
                     (build it with `cargo build --target wasm32-wasip2`)",
                    spec.name
                )
            })?;
        let kind = PluginKind::of(&self.engine, &component)
            .with_context(|| format!("plugin {}", spec.name))?;
        if spec.defer_avatar && kind != PluginKind::Realm {
            bail!(
                "plugin {}: defer-avatar is a realm's option, and this is a {} plugin",
                spec.name,
                kind.as_str()
            );
        }
        let imports = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let pre = match kind {
            PluginKind::Mechanism => PluginPre::Mechanism(
                self.mechanism_linker
                    .instantiate_pre(&component)
                    .and_then(bindings::mechanism::MechanismPluginPre::new)
                    .map_err(to_anyhow)
                    .with_context(|| format!("plugin {}: cannot link", spec.name))?,
            ),
            PluginKind::Checker => PluginPre::Checker(
                self.checker_linker
                    .instantiate_pre(&component)
                    .and_then(bindings::CheckerPluginPre::new)
                    .map_err(to_anyhow)
                    .with_context(|| format!("plugin {}: cannot link", spec.name))?,
            ),
            PluginKind::Realm => PluginPre::Realm(
                self.realm_linker
                    .instantiate_pre(&component)
                    .and_then(bindings::RealmPluginPre::new)
                    .map_err(to_anyhow)
                    .with_context(|| format!("plugin {}: cannot link", spec.name))?,
            ),
        };
        for grant in &spec.grants {
            cap_std::fs::Dir::open_ambient_dir(&grant.host_path, cap_std::ambient_authority())
                .with_context(|| {
                    format!(
                        "plugin {}: cannot open granted folder {}",
                        spec.name,
                        grant.host_path.display()
                    )
                })?;
        }
        let times = crate::metrics::METRICS.plugin_times(&spec.name, kind.as_str());
        let files = Arc::new(crate::keyed_file::KeyedFiles::new(
            &spec.name,
            spec.grants
                .iter()
                .map(|g| (g.guest_path.as_str(), g.host_path.as_path())),
        ));
        Ok(Arc::new(Plugin {
            runtime: self.clone(),
            times,
            name: spec.name.into(),
            kind,
            config: spec.config.into(),
            grants: spec.grants,
            hash_caps: crate::password_hash::Caps::for_memory(spec.limits.memory)
                .enabled(self.native_hashes),
            limits: spec.limits,
            stdout: spec.stdout,
            sql: spec.sql,
            relay: spec.relay,
            files,
            lookup_secrets: spec.lookup_secrets,
            defer_avatar: spec.defer_avatar,
            imports,
            pre,
        }))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Accessor type for `add_to_linker`: the store data implements the
/// imports itself.
struct HasSelf;
impl wasmtime::component::HasData for HasSelf {
    type Data<'a> = &'a mut PluginState;
}

/// Which world a component implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    Mechanism,
    Checker,
    Realm,
}

impl PluginKind {
    /// Finds the world from the component's exports, and refuses a
    /// component built against another major version of the WIT package.
    fn of(engine: &Engine, component: &Component) -> anyhow::Result<PluginKind> {
        let ty = component.component_type();
        let mut seen = Vec::new();
        for (name, _) in ty.exports(engine) {
            let Some(rest) = name
                .strip_prefix(WIT_PACKAGE)
                .and_then(|r| r.strip_prefix('/'))
            else {
                seen.push(name.to_owned());
                continue;
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if !version_compatible(version) {
                bail!(
                    "built against {WIT_PACKAGE}@{version}, but this host implements \
                     {WIT_PACKAGE}@{WIT_VERSION}: rebuild it against portcullis-sdk {} (or \
                     the WIT in wit/ of this host's source); PLUGINS.md lists what changed",
                    sdk_version()
                );
            }
            match interface {
                "mechanism" => return Ok(PluginKind::Mechanism),
                "checker" => return Ok(PluginKind::Checker),
                "realm" => return Ok(PluginKind::Realm),
                _ => seen.push(name.to_owned()),
            }
        }
        bail!(
            "the component exports none of {WIT_PACKAGE}/mechanism, /checker or /realm \
             (it exports: {}); is it a portcullis plugin?",
            if seen.is_empty() {
                "nothing".to_owned()
            } else {
                seen.join(", ")
            }
        )
    }

    /// This kind's budget in [`Runtime`]'s slots.
    fn index(self) -> usize {
        match self {
            PluginKind::Mechanism => 0,
            PluginKind::Checker => 1,
            PluginKind::Realm => 2,
        }
    }

    /// The option that sizes this kind's budget.
    fn budget_flag(self) -> &'static str {
        match self {
            PluginKind::Mechanism => "exchanges",
            PluginKind::Checker => "checks",
            PluginKind::Realm => "avatars",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Mechanism => "mechanism",
            PluginKind::Checker => "checker",
            PluginKind::Realm => "realm",
        }
    }
}

/// The portcullis-sdk release that builds plugins for [`WIT_VERSION`]: the
/// SDK's major.minor is the WIT package's.
fn sdk_version() -> &'static str {
    let mut dots = WIT_VERSION.match_indices('.');
    match dots.nth(1) {
        Some((i, _)) => &WIT_VERSION[..i],
        None => WIT_VERSION,
    }
}

/// Semver compatibility with [`WIT_VERSION`]: same major, or for 0.x the
/// same minor.
fn version_compatible(version: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(version), parse(WIT_VERSION)) {
        (Some((0, minor)), Some((0, ours))) => minor == ours,
        (Some((major, _)), Some((ours, _))) => major == ours,
        _ => false,
    }
}

/// A read-only (unless said otherwise) folder a plugin may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub host_path: PathBuf,
    pub guest_path: String,
    pub writable: bool,
}

/// Everything needed to load a plugin.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    pub name: String,
    pub wasm: Arc<[u8]>,
    /// JSON text handed to the guest by the `config` import.
    pub config: String,
    pub grants: Vec<Grant>,
    pub limits: Limits,
    /// The digest `wasm` must have; checked before compiling.
    pub sha256: Option<Sha256Pin>,
    /// Let the guest write to the host's standard output (the console
    /// realm prints messages there).
    pub stdout: bool,
    /// Named SQL queries the guest may run (checkers only).
    pub sql: Option<Arc<crate::sql::SqlGrant>>,
    /// Next hops the guest may relay messages to (realms only).
    pub relay: Option<Arc<crate::relay::RelayGrant>>,
    /// A mechanism that may call `lookup-secret` (for the kinds it
    /// declares): the operator trusts it to vouch for those kinds.
    pub lookup_secrets: bool,
    /// A realm that gives every identity an avatar: SMTP asks for it at
    /// its first call, not at login (see `portal::AvatarWhen`).
    pub defer_avatar: bool,
}

impl PluginSpec {
    pub fn new(name: impl Into<String>, wasm: impl Into<Arc<[u8]>>) -> Self {
        PluginSpec {
            name: name.into(),
            wasm: wasm.into(),
            config: "{}".into(),
            grants: Vec::new(),
            limits: Limits::default(),
            sha256: None,
            stdout: false,
            sql: None,
            relay: None,
            lookup_secrets: false,
            defer_avatar: false,
        }
    }

    /// Reads a `.wasm` file; the plugin is named after the file's stem.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read plugin file {}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Self::new(name, wasm))
    }
}

enum PluginPre {
    Mechanism(bindings::mechanism::MechanismPluginPre<PluginState>),
    Checker(bindings::CheckerPluginPre<PluginState>),
    Realm(bindings::RealmPluginPre<PluginState>),
}

/// A compiled, pre-instantiated plugin.
pub struct Plugin {
    runtime: Arc<Runtime>,
    name: Arc<str>,
    kind: PluginKind,
    config: Arc<str>,
    grants: Vec<Grant>,
    limits: Limits,
    /// What the `password-hash` import verifies natively for it.
    hash_caps: crate::password_hash::Caps,
    stdout: bool,
    sql: Option<Arc<crate::sql::SqlGrant>>,
    relay: Option<Arc<crate::relay::RelayGrant>>,
    /// The `keyed-file` indexes over this plugin's grants, shared by its
    /// stores.
    files: Arc<crate::keyed_file::KeyedFiles>,
    /// May look secrets up (mechanisms only; see [`PluginSpec`]).
    lookup_secrets: bool,
    /// Gives every identity an avatar (realms only; see [`PluginSpec`]).
    defer_avatar: bool,
    /// The interfaces the component imports (what it may ask for).
    imports: Vec<String>,
    pre: PluginPre,
    /// Instantiation and call times, for the metrics page.
    times: Arc<crate::metrics::PluginTimes>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interfaces the component imports, as named in the component.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The operator's word that this realm gives every identity an avatar
    /// (`defer-avatar`).
    pub fn defers_avatar(&self) -> bool {
        self.defer_avatar
    }

    /// Instantiates the plugin once in a fresh store and drops it: the
    /// check every plugin passes at load.
    async fn trial(&self) -> anyhow::Result<()> {
        let mut store = self.new_store().await.map_err(|f| {
            anyhow::anyhow!("plugin {}: cannot be instantiated: {}", self.name, f.detail)
        })?;
        let instantiated = match &self.pre {
            PluginPre::Mechanism(pre) => self
                .bounded_instantiation(pre.instance_pre().instantiate_async(&mut *store))
                .await
                .map(drop),
            PluginPre::Checker(pre) => self
                .bounded_instantiation(pre.instance_pre().instantiate_async(&mut *store))
                .await
                .map(drop),
            PluginPre::Realm(pre) => self
                .bounded_instantiation(pre.instance_pre().instantiate_async(&mut *store))
                .await
                .map(drop),
        };
        instantiated.map_err(|e| {
            anyhow::anyhow!(
                "plugin {}: cannot be instantiated under its limits ({}); \
                 raise its memory limit or fix the plugin",
                self.name,
                printable(&format!("{e:#}"))
            )
        })
    }

    /// Waits for a free instance slot of this plugin's budget, at most its
    /// call time.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Fault> {
        let slots = &self.runtime.slots[self.kind.index()];
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        crate::metrics::METRICS.pool_wait();
        match tokio::time::timeout(self.limits.call_time, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                crate::metrics::METRICS.pool_timeout();
                Err(self.fault(
                    FaultKind::Busy,
                    format!(
                        "no free instance slot within {} ms (all --max-{} are in use)",
                        self.limits.call_time.as_millis(),
                        self.kind.budget_flag()
                    ),
                ))
            }
        }
    }

    /// A fresh store for one exchange or avatar, with this plugin's grants
    /// and limits and nothing else: no environment, no arguments, no
    /// sockets, stdio discarded. Waits for a free slot in the pool first.
    async fn new_store(&self) -> Result<PooledStore, Fault> {
        let slot = self.slot().await?;
        // Instantiation is timed from here: a wait for a slot is not part
        // of it (portcullis_plugin_pool_waits_total counts those).
        let created = Instant::now();
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // A guest that sleeps or polls must yield, so the call's
            // timeout can end it (see `bounded`).
            .allow_blocking_current_thread(false);
        for grant in &self.grants {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&grant.host_path, &grant.guest_path, perms)
                .map_err(|e| {
                    self.fault(
                        FaultKind::Instantiate,
                        format!("cannot open grant {}: {e}", grant.host_path.display()),
                    )
                })?;
        }
        if self.stdout {
            wasi.inherit_stdout();
        }
        let stderr = stderr::StderrRing::default();
        wasi.stderr(stderr.clone());
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory)
            .table_elements(self.limits.table_elements)
            .trap_on_grow_failure(true)
            .build();
        crate::metrics::METRICS.instance_created();
        let mut table = ResourceTable::new();
        // Every WASI descriptor, stream and pollable is an entry here: a
        // guest that opens files without end gets an error at the cap,
        // and the host never runs out of descriptors for it.
        table.set_max_capacity(self.limits.max_resources);
        let state = PluginState {
            wasi: wasi.build(),
            table,
            limits,
            name: self.name.clone(),
            config: self.config.clone(),
            deadline: Instant::now() + self.limits.call_time,
            stderr,
            logged: 0,
            session: None,
            sql: self.sql.clone(),
            relay: self.relay.clone().map(crate::relay::RelaySession::new),
            files: self.files.clone(),
            max_output: self.limits.max_output,
            hash_caps: self.hash_caps,
            hashes_left: crate::password_hash::PER_STORE,
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limits);
        // What the host lifts out of the guest in one answer or import
        // call: string bytes plus a fixed cost per list element, counted
        // by wasmtime before it allocates anything. Never below what one
        // WASI write may carry (64 KiB), so a small max-output cannot
        // break file writes; answers are held to max-output exactly after.
        store.set_hostcall_fuel(self.limits.max_output.max(MIN_HOSTCALL_FUEL));
        store.set_max_component_handles(self.limits.max_resources.saturating_mul(2));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(PooledStore {
            store: Some(store),
            created,
            times: self.times.clone(),
            _slot: slot,
        })
    }

    /// Starts the clock for one call into the guest.
    fn arm(&self, store: &mut Store<PluginState>) {
        self.arm_for(store, self.limits.call_time);
    }

    /// Starts the clock for one call with another time limit.
    pub(crate) fn arm_for(&self, store: &mut Store<PluginState>, limit: Duration) {
        store.data_mut().deadline = Instant::now() + limit;
        // The epoch deadline is relative to the epoch when it is set. Set
        // only when the store was made, it would have passed for every
        // call of a store older than one tick (an avatar), and each such
        // call would stop at its first check for the deadline callback
        // and a yield to the executor, though far from its time limit.
        store.set_epoch_deadline(1);
    }

    /// Runs one guest call under its time limit. The epoch deadline stops
    /// a guest that computes too long; this stops one that waits too long
    /// inside a host import (a WASI sleep or poll), where no wasm runs for
    /// the epoch to interrupt. Either way the answer is an interrupt trap.
    pub(crate) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        self.bounded_for(self.limits.call_time, call).await
    }

    /// [`Plugin::bounded`] with another time limit (a realm's `deliver`).
    pub(crate) async fn bounded_for<T>(
        &self,
        limit: Duration,
        call: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        let started = Instant::now();
        let result = time_limited(limit, call).await;
        self.times.call.record(started.elapsed());
        result
    }

    /// An instantiation under the call time, as [`Plugin::bounded`], but
    /// not recorded as a call: its time goes to the instantiation
    /// histogram ([`Plugin::instantiated`]), and counting it in both would
    /// report it twice in the plugin time per login.
    pub(crate) async fn bounded_instantiation<T>(
        &self,
        instantiation: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        time_limited(self.limits.call_time, instantiation).await
    }

    /// Records one instantiation (a fresh store and instance, done now),
    /// for the metrics page.
    fn instantiated(&self, store: &PooledStore) {
        self.times.instantiate.record(store.created.elapsed());
    }

    /// A failed instantiation, its text made printable.
    pub(crate) fn instantiate_fault(&self, err: wasmtime::Error) -> Fault {
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => self.fault(
                FaultKind::Timeout,
                format!(
                    "instantiation ran past its time limit of {} ms",
                    self.limits.call_time.as_millis()
                ),
            ),
            _ => self.fault(FaultKind::Instantiate, printable(&format!("{err:#}"))),
        }
    }

    pub(crate) fn fault(&self, kind: FaultKind, detail: impl Into<String>) -> Fault {
        Fault::new(&self.name, kind, detail)
    }

    /// Turns a wasmtime error from a call into a fault naming this plugin.
    pub(crate) fn trap(&self, store: &Store<PluginState>, err: wasmtime::Error) -> Fault {
        let root = err.root_cause().to_string();
        let (kind, detail) = match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => (
                FaultKind::Timeout,
                format!(
                    "ran past its time limit of {} ms",
                    self.limits.call_time.as_millis()
                ),
            ),
            Some(trap) => (FaultKind::Trap, trap.to_string()),
            // wasmtime's hostcall fuel: the answer (or an import's
            // arguments) would make the host copy more than max-output.
            None if root.contains("fuel allocated for hostcalls") => (
                FaultKind::Contract,
                format!(
                    "handed the host more than {} bytes at once, over its max-output of {} \
                     bytes (each list element counts)",
                    self.limits.max_output.max(MIN_HOSTCALL_FUEL),
                    self.limits.max_output
                ),
            ),
            None if root.contains("resource table has no free keys") => (
                FaultKind::Resources,
                format!(
                    "opened more than its max-resources of {} WASI descriptors and streams",
                    self.limits.max_resources
                ),
            ),
            // The store's limiter refused to grow a memory or table.
            None if root.contains("memory") || root.contains("table") => (
                FaultKind::Memory,
                format!("{root} (limit {} bytes)", self.limits.memory),
            ),
            None => (FaultKind::Trap, root),
        };
        match last_line(&store.data().stderr.contents()) {
            Some(said) if kind == FaultKind::Trap => {
                self.fault(kind, format!("{detail}; the guest said: {said}"))
            }
            _ => self.fault(kind, detail),
        }
    }
}

/// Runs a guest call or instantiation for at most `limit` (and a grace
/// for the epoch deadline to end it first); past that, an interrupt trap.
async fn time_limited<T>(
    limit: Duration,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let grace = Duration::from_millis(100);
    match tokio::time::timeout(limit + grace, call).await {
        Ok(result) => result,
        Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
    }
}

/// A store and the pool slot it occupies. The store is dropped first
/// (returning its instance to the pool, timed for the metrics), then the
/// permit, so a task woken by the permit always finds the slot free.
pub(crate) struct PooledStore {
    /// Always there until the drop.
    store: Option<Store<PluginState>>,
    /// When the slot was had and the store began, for the metrics.
    created: Instant,
    times: Arc<crate::metrics::PluginTimes>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl PooledStore {
    fn store(&self) -> &Store<PluginState> {
        self.store.as_ref().expect("a store until it is dropped")
    }

    fn store_mut(&mut self) -> &mut Store<PluginState> {
        self.store.as_mut().expect("a store until it is dropped")
    }
}

impl Drop for PooledStore {
    fn drop(&mut self) {
        let started = Instant::now();
        drop(self.store.take());
        self.times.release.record(started.elapsed());
    }
}

impl std::ops::Deref for PooledStore {
    type Target = Store<PluginState>;
    fn deref(&self) -> &Store<PluginState> {
        self.store()
    }
}

impl std::ops::DerefMut for PooledStore {
    fn deref_mut(&mut self) -> &mut Store<PluginState> {
        self.store_mut()
    }
}

impl wasmtime::AsContext for PooledStore {
    type Data = PluginState;
    fn as_context(&self) -> wasmtime::StoreContext<'_, PluginState> {
        self.store().as_context()
    }
}

impl wasmtime::AsContextMut for PooledStore {
    fn as_context_mut(&mut self) -> wasmtime::StoreContextMut<'_, PluginState> {
        self.store_mut().as_context_mut()
    }
}

/// The last non-empty line a guest wrote to stderr (a Rust panic message
/// ends up there), made printable and bounded.
fn last_line(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    // A Rust panic ends with a `note: run with RUST_BACKTRACE=1` hint.
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("note: "))?;
    Some(line.chars().filter(|c| !c.is_control()).take(300).collect())
}

/// Control characters made visible, for text from a guest in a message.
fn printable(text: &str) -> String {
    crate::logtext::escape(text).into_owned()
}

/// Memory mappings the pool needs when full: each slot's stack with its
/// guard page, and an instance's memory and tables while in use (measured:
/// about 6 per instance, 64,211 with 10,000 logged-in echo sessions and a
/// 12,000-instance pool), plus room for the rest of the process.
fn mappings_needed(instances: u32) -> u64 {
    u64::from(instances) * 6 + 8192
}

/// The kernel refuses new mappings past `vm.max_map_count` (65,530 by
/// default): with a large pool, instances past it fail to instantiate
/// (454). Says so at start, with the fix.
fn warn_if_map_count_is_low(instances: u32) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        return;
    };
    let Ok(limit) = text.trim().parse::<u64>() else {
        return;
    };
    let needed = mappings_needed(instances);
    if limit < needed {
        tracing::warn!(
            "vm.max_map_count is {limit}, below the {needed} memory mappings a full pool of \
             {instances} plugin instances needs; instances past it fail (454). Raise it \
             (sysctl -w vm.max_map_count={}) or lower --max-avatars",
            needed.next_power_of_two()
        );
    }
}

/// Builds rayon's global pool, on which wasmtime compiles a plugin's
/// functions in parallel, with threads at a low priority. Once per
/// process; if something built the pool first, it is used as it is.
fn low_priority_rayon() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("portcullis-compile-{i}"))
            .start_handler(|_| lower_thread_priority())
            .build_global();
    });
}

/// Lets the compile thread yield the CPU to the serving threads (Linux
/// applies a nice value to one thread). Best effort: a failure changes
/// only how fast a reload compiles.
fn lower_thread_priority() {
    // SAFETY: setpriority and gettid have no memory-safety preconditions.
    unsafe {
        let tid = nix::libc::syscall(nix::libc::SYS_gettid) as nix::libc::id_t;
        nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid, 10);
    }
}

/// wasmtime has its own error type; the edges of the host use anyhow.
fn to_anyhow(err: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::{sdk_version, version_compatible};

    #[test]
    fn the_sdk_release_for_this_wit() {
        assert_eq!(sdk_version(), "0.2");
    }

    #[test]
    fn last_stderr_line() {
        use super::last_line;
        assert_eq!(last_line(b""), None);
        assert_eq!(
            last_line(b"thread 'main' panicked at src/lib.rs:1:1:\nboom\nnote: run with `RUST_BACKTRACE=1`\n\n")
                .as_deref(),
            Some("boom")
        );
        assert_eq!(last_line(b"a\x1b[31mb").as_deref(), Some("a[31mb"));
    }

    #[test]
    fn wit_versions() {
        for (v, ok) in [
            ("0.2.0", true),
            ("0.2.7", true),
            ("0.1.0", false),
            ("0.3.0", false),
            ("1.0.0", false),
            ("", false),
            ("x.y", false),
        ] {
            assert_eq!(version_compatible(v), ok, "{v}");
        }
    }
}
