//! The wasmtime engines of a process, their linkers, fingerprints and epoch tickers.
//!
//! Artifacts compiled with fuel metering and without it are not interchangeable, so a
//! process has up to two engines: the plain one (created at start) and a fuel-metering one
//! (created on the first job that asks for fuel). Each has its own fingerprint, hence its
//! own artifact directory, and its own epoch ticker thread that stops when the engine is
//! dropped.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use wasmtime::component::ResourceTable;
use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, Linker,
    PoolingAllocationConfig,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::egress::Egress;
use crate::limiter::JobLimiter;

/// What the store of a core-module job holds.
pub(crate) struct State {
    /// The guest's WASI view: args, env, stdio pipes, preopened directories.
    pub(crate) wasi: WasiP1Ctx,
    /// The job's memory and table limits, and what it used.
    pub(crate) limiter: JobLimiter,
}

/// What the store of a component job holds.
pub(crate) struct ComponentState {
    /// The guest's WASI preview 2 context.
    pub(crate) ctx: WasiCtx,
    /// The guest's resources (streams, files, ...).
    pub(crate) table: ResourceTable,
    /// The job's memory and table limits, and what it used.
    pub(crate) limiter: JobLimiter,
    /// `wasi:http`'s own state.
    pub(crate) http: WasiHttpCtx,
    /// What the job may reach on the network: nothing.
    pub(crate) egress: Egress,
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// Gives the shared run code the limiter of either store kind.
pub(crate) trait HasLimiter: Send + 'static {
    fn limiter(&mut self) -> &mut JobLimiter;
}

impl HasLimiter for State {
    fn limiter(&mut self) -> &mut JobLimiter {
        &mut self.limiter
    }
}

impl HasLimiter for ComponentState {
    fn limiter(&mut self) -> &mut JobLimiter {
        &mut self.limiter
    }
}

/// Which engine a job runs on: the plain one, or the one that meters fuel (for jobs with
/// `limits.fuel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Metering {
    Plain,
    Fuel,
}

/// Engine settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct EngineOptions {
    pub(crate) pooling: bool,
    pub(crate) slots: u32,
    /// What each of the `slots` holds.
    pub(crate) pool: PoolSize,
    pub(crate) keep_resident_bytes: usize,
    pub(crate) epoch_tick: Duration,
}

/// What one job may hold of the instance pool: the worker's maximum limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSize {
    pub(crate) max_memory_bytes: u64,
    pub(crate) max_table_elements: usize,
    /// The most core instances, tables and memories one job may have.
    pub(crate) max_instances: u32,
    pub(crate) max_tables: u32,
    pub(crate) max_memories: u32,
    /// The largest core instance state (`VMContext`).
    pub(crate) max_core_instance_bytes: usize,
}

/// One engine with everything bound to it.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    /// WASI preview 1, async, on this engine.
    pub(crate) linker: Linker<State>,
    /// WASI preview 2, async, for components.
    pub(crate) component_linker: wasmtime::component::Linker<ComponentState>,
    /// Which artifacts this engine can load (see [`fingerprint`]).
    pub(crate) fingerprint: String,
    /// What one job may hold of the instance pool.
    pub(crate) pool: PoolSize,
    /// The same configuration with the on-demand allocator, created when first needed: an
    /// artifact this engine refuses but that one loads is one the pool cannot hold
    /// (rather than a bad artifact), and it says what the module needs.
    unpooled: OnceLock<Result<Engine, String>>,
    config: Config,
}

/// The plain engine and, once needed, the fuel-metering one.
pub(crate) struct Engines {
    options: EngineOptions,
    plain: Runtime,
    fuel: OnceLock<Runtime>,
}

impl Engines {
    pub(crate) fn new(options: EngineOptions) -> anyhow::Result<Engines> {
        let plain = Runtime::new(&options, false)?;
        Ok(Engines {
            options,
            plain,
            fuel: OnceLock::new(),
        })
    }

    /// The engine for `kind`, creating the fuel engine on first use.
    pub(crate) fn get(&self, kind: Metering) -> anyhow::Result<&Runtime> {
        match kind {
            Metering::Plain => Ok(&self.plain),
            Metering::Fuel => {
                if let Some(rt) = self.fuel.get() {
                    return Ok(rt);
                }
                let rt = Runtime::new(&self.options, true)?;
                // A racing creator may win; its engine is as good as ours.
                Ok(self.fuel.get_or_init(|| rt))
            }
        }
    }
}

impl Runtime {
    /// An engine for pre-initialising snapshots: relaxed SIMD made deterministic, so
    /// what an initializer computes does not depend on this host's CPU.
    pub(crate) fn for_snapshots(options: &EngineOptions) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.relaxed_simd_deterministic(true);
        Runtime::with_config(config, options, false)
    }

    fn new(options: &EngineOptions, fuel: bool) -> anyhow::Result<Runtime> {
        Runtime::with_config(Config::new(), options, fuel)
    }

    fn with_config(
        mut config: Config,
        options: &EngineOptions,
        fuel: bool,
    ) -> anyhow::Result<Runtime> {
        config
            .strategy(wasmtime::Strategy::Cranelift)
            .epoch_interruption(true)
            .consume_fuel(fuel);
        enable_proposals(&mut config);
        let unpooled_config = config.clone();
        if options.pooling {
            let mut pool = PoolingAllocationConfig::default();
            let n = options.slots;
            // Each of the `n` jobs at once may use up to the worker's maximum of each.
            let size = options.pool;
            let (instances, tables, memories) =
                (size.max_instances, size.max_tables, size.max_memories);
            // A job that uses GC types or exceptions also takes a GC heap, which the pool
            // carves out of a memory slot.
            pool.total_core_instances(n.saturating_mul(instances))
                .total_memories(n.saturating_mul(memories.saturating_add(1)))
                .total_tables(n.saturating_mul(tables))
                .total_gc_heaps(n)
                .total_stacks(n)
                .total_component_instances(n)
                // Instance state is allocated as instances are created; these only bound it.
                .max_component_instance_size(
                    size.max_core_instance_bytes
                        .saturating_mul(instances as usize),
                )
                .max_core_instances_per_component(instances)
                .max_memories_per_component(memories)
                .max_tables_per_component(tables)
                .max_memories_per_module(memories)
                .max_tables_per_module(tables)
                .max_core_instance_size(size.max_core_instance_bytes)
                .max_memory_size(usize::try_from(size.max_memory_bytes)?)
                .table_elements(size.max_table_elements)
                // Resetting a reused slot by memset instead of madvise keeps parallel jobs
                // from serialising on the kernel's mmap lock (see docs/architecture.md).
                .linear_memory_keep_resident(options.keep_resident_bytes)
                .table_keep_resident(options.keep_resident_bytes)
                .pagemap_scan(Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut State| &mut s.wasi)?;
        // WASI's exit status is a u32, but wasmtime-wasi refuses 126 and up with an error
        // that would read as a failed host call; the job's status is what it passed.
        linker.allow_shadowing(true);
        linker.func_wrap(
            "wasi_snapshot_preview1",
            "proc_exit",
            |code: i32| -> wasmtime::Result<()> { Err(wasmtime_wasi::I32Exit(code).into()) },
        )?;
        linker.allow_shadowing(false);
        let mut component_linker = wasmtime::component::Linker::new(&engine);
        // This includes `wasi:cli/exit#exit-with-code` (WASI 0.2.12), so a component that
        // exits with a number reports that number, as a core command does.
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker)?;
        // wasi:http, every request through the job's `Egress` (see egress.rs).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)?;
        spawn_epoch_ticker(engine.weak(), options.epoch_tick);
        let fingerprint = fingerprint(&engine);
        Ok(Runtime {
            engine,
            linker,
            component_linker,
            fingerprint,
            pool: options.pool,
            unpooled: OnceLock::new(),
            config: unpooled_config,
        })
    }
}

impl Runtime {
    /// The on-demand twin of this engine (see [`Runtime::unpooled`]'s field doc).
    pub(crate) fn unpooled(&self) -> Result<&Engine, String> {
        self.unpooled
            .get_or_init(|| {
                let mut config = self.config.clone();
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&config).map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The WebAssembly proposals `wasmtime run` accepts by default, so that a module it runs
/// runs here (docs/job-format.md lists them). Each one is part of the engine's
/// fingerprint: artifacts compiled before a change are recompiled, never loaded.
fn enable_proposals(config: &mut Config) {
    config
        .wasm_exceptions(true)
        .wasm_gc(true)
        .wasm_function_references(true);
}

/// Feeds `Hash` output into sha256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the sha256 of the written bytes is used")
    }
}

/// A short stable name for everything that makes an artifact loadable by `engine`:
/// wasmtime's own compatibility hash (its version, compiler settings, enabled features,
/// target and CPU flags) plus the layout version of this cache.
pub(crate) fn fingerprint(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    "wasmq-artifact-v1".hash(&mut h);
    std::env::consts::ARCH.hash(&mut h);
    std::env::consts::OS.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..12])
}

/// Advances `engine`'s epoch every `tick` until the engine is dropped.
fn spawn_epoch_ticker(engine: EngineWeak, tick: Duration) {
    std::thread::Builder::new()
        .name("wasmq-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match engine.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawning the epoch ticker thread");
}
