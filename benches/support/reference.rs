//! The baseline the sandbox is measured against: the same guest run with wasmtime and
//! wasmtime-wasi directly, the way their documentation shows, with each cost wasmq adds
//! switchable. Measured in the same run as wasmq, so the ratio holds on any machine.
//!
//! One iteration: a new `Store` and WASI preview 1 context (args, in-memory stdin and
//! stdout), instantiate from an `InstancePre`, call `_start`, read the output, drop it all.
//! Synchronous: no fibers, no async runtime.

use std::path::Path;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// How the reference engine and stores are set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knobs {
    /// The pooling allocator (else on-demand).
    pub pooling: bool,
    /// Pooling slots reset by memset of up to 4 MiB, with `pagemap_scan`, instead of
    /// madvise (wasmq's default).
    pub keep_resident: bool,
    /// Epoch interruption compiled in, with a far deadline.
    pub epoch: bool,
    /// Fuel metering compiled in.
    pub fuel: bool,
    /// A `StoreLimits` memory limiter.
    pub limits: bool,
    /// A preopened directory.
    pub preopen: bool,
}

impl Knobs {
    /// The tuned reference: pooling with keep-resident slots, nothing else.
    pub const TUNED: Knobs = Knobs {
        pooling: true,
        keep_resident: true,
        epoch: false,
        fuel: false,
        limits: false,
        preopen: false,
    };
}

pub struct State {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// A guest ready to run under one set of knobs.
pub struct Reference {
    knobs: Knobs,
    engine: Engine,
    pre: InstancePre<State>,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl Reference {
    pub fn new(knobs: Knobs, wasm: &[u8], args: &[&str]) -> Reference {
        let mut config = Config::new();
        config
            .epoch_interruption(knobs.epoch)
            .consume_fuel(knobs.fuel);
        if knobs.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(4)
                .total_memories(4)
                .total_tables(4)
                .total_stacks(4)
                .max_memory_size(1 << 30);
            if knobs.keep_resident {
                pool.linear_memory_keep_resident(4 << 20)
                    .table_keep_resident(4 << 20)
                    .pagemap_scan(Enabled::Auto);
            }
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi).unwrap();
        let pre = linker.instantiate_pre(&module).unwrap();
        Reference {
            knobs,
            engine,
            pre,
            args: std::iter::once("main")
                .chain(args.iter().copied())
                .map(str::to_owned)
                .collect(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs the guest once; returns what it wrote to stdout.
    pub fn run(&self) -> Vec<u8> {
        let stdout = MemoryOutputPipe::new(1 << 20);
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&self.args)
            .stdin(MemoryInputPipe::new(&b""[..]))
            .stdout(stdout.clone());
        if self.knobs.preopen {
            wasi.preopened_dir(self.dir.path(), "/work", FsPerms::ReadWrite)
                .unwrap();
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(256 << 20)
            .table_elements(100_000)
            .build();
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: wasi.build_p1(),
                limits,
            },
        );
        if self.knobs.limits {
            store.limiter(|s| &mut s.limits);
        }
        if self.knobs.epoch {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        if self.knobs.fuel {
            store.set_fuel(u64::MAX / 2).unwrap();
        }
        let instance = self.pre.instantiate(&mut store).unwrap();
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .unwrap();
        match start.call(&mut store, ()) {
            Ok(()) => {}
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(0)) => {}
                _ => panic!("the reference run failed: {e:#}"),
            },
        }
        drop(store);
        stdout.contents().to_vec()
    }

    /// The directory preopened as `/work`.
    #[allow(dead_code)]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
