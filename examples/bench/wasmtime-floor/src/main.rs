//! wasmtime's own floor per fresh instance, and its memory per live
//! store, with the host's pool settings (`host/src/plugin/mod.rs`), for
//! the wasmtime version this crate is built against. `run.sh` builds it
//! against the host's wasmtime and a newer one, so that the two are
//! measured the same way on the same machine.
//!
//! ```text
//! wasmtime-floor COMPONENT INTERFACE FUNCTION LOOPS LIVE
//! ```
//!
//! One fresh instance is what the host makes per plugin call of a login:
//! a store, an instantiation from a pre-linked component, one call of
//! `FUNCTION` (an export of `INTERFACE` taking no arguments and returning
//! one value) and the store's drop. It prints the best of 11 means of
//! `LOOPS` each, then, if `LIVE` is above 0, the RSS that `LIVE` stores
//! kept alive after one such call add, per store: what a logged-in
//! session's avatar holds at least.
//!
//! Imports the component makes beyond WASI are defined as traps: only
//! functions that call none of them can be measured.

use std::time::Instant;

use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The host's defaults: 64 MiB per plugin memory, a 512 KiB wasm stack,
/// pools sized for 10,000 sessions and then some.
const MAX_MEMORY: usize = 64 << 20;
const MAX_WASM_STACK: usize = 512 << 10;
const SLOTS: u32 = 12_000;

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn engine() -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(SLOTS)
        .total_core_instances(SLOTS * 8)
        .total_memories(SLOTS * 2)
        .total_tables(SLOTS * 4)
        .total_stacks(SLOTS)
        .max_memory_size(MAX_MEMORY)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(MAX_WASM_STACK + (256 << 10))
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config
        .memory_reservation(MAX_MEMORY as u64)
        .memory_reservation_for_growth(0)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(MAX_WASM_STACK + (256 << 10))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a VmRSS line")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> wasmtime::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, interface, function, loops, live] = &args[..] else {
        eprintln!("usage: wasmtime-floor COMPONENT INTERFACE FUNCTION LOOPS LIVE");
        std::process::exit(2);
    };
    let (loops, live): (u32, usize) = (loops.parse()?, live.parse()?);

    let engine = engine()?;
    let component = Component::from_file(&engine, path)?;
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    linker.define_unknown_imports_as_traps(&component)?;
    let pre = linker.instantiate_pre(&component)?;

    let new_store = || {
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(MAX_MEMORY).build(),
        };
        let mut store = Store::new(&engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(100);
        store
    };
    // A fresh instance, one call; the store is handed back to be dropped
    // (the floor) or kept (the memory).
    let fresh = || {
        let pre = pre.clone();
        let mut store = new_store();
        async move {
            let instance = pre.instantiate_async(&mut store).await?;
            let (_, exports) = instance
                .get_export(&mut store, None, interface)
                .ok_or_else(|| wasmtime::format_err!("no export {interface}"))?;
            let (_, index) = instance
                .get_export(&mut store, Some(&exports), function)
                .ok_or_else(|| wasmtime::format_err!("no function {function}"))?;
            let func = instance
                .get_func(&mut store, index)
                .ok_or_else(|| wasmtime::format_err!("{function} is not a function"))?;
            let mut results = [Val::Bool(false)];
            func.call_async(&mut store, &[], &mut results).await?;
            #[allow(deprecated, reason = "a no-op where wasmtime does it itself")]
            func.post_return_async(&mut store).await?;
            wasmtime::Result::<Store<State>>::Ok(store)
        }
    };

    for _ in 0..2000 {
        drop(fresh().await?);
    }
    let mut best = f64::MAX;
    for _ in 0..11 {
        let started = Instant::now();
        for _ in 0..loops {
            drop(fresh().await?);
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / f64::from(loops));
    }
    println!("floor of one fresh instance: {best:.2} µs (best of 11 means of {loops})");
    if live > 0 {
        let before = rss_kib();
        let mut kept = Vec::with_capacity(live);
        for _ in 0..live {
            kept.push(fresh().await?);
        }
        let per_store = (rss_kib() - before) as f64 / live as f64;
        println!("RSS per live store after one call: {per_store:.1} KiB ({live} stores)");
    }
    Ok(())
}
