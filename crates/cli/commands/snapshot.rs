//! `wasmq snapshot`: pre-initialise a job's module (wasmtime-wizer) into a new module.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{ArgMatches, Args};

use crate::Outcome;
use crate::input::{Uploader, read_inputs};
use crate::settings::{self, CommonArgs, CommonSettings, SandboxArgs, SandboxSettings};

/// Pre-initialise a module: run its initializer once with a job's inputs and write the
/// module as the initializer left it.
///
/// Instead of running the job, calls `_initialize` (when exported) and then the `--init`
/// export once, with the job's args, env, stdin, files and volumes and under its limits,
/// and writes a new module whose memories and globals are what the initializer left
/// (wasmtime-wizer); the initializer is no longer exported. The module goes into the module
/// store, with its provenance (the base module's digest, the initializer, a digest of the
/// inputs) beside it and in OUT.provenance.json; its `sha256:<hex>` is printed. Jobs name
/// it like any module: by path, or by that sha256.
#[derive(Args)]
pub struct SnapshotCommand {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// The export to call once, a function taking and returning nothing.
    #[arg(long, default_value = settings::defaults::SNAPSHOT_INIT, value_name = "EXPORT")]
    init: String,
    /// Where to write the new module.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
    /// A job file holding one job: the module, and the inputs its initializer sees.
    #[arg(value_name = "JOB_FILE")]
    input: PathBuf,
}

impl SnapshotCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (layers, common) = settings::start(&self.common, matches, "warn")?;
        let sandbox = SandboxSettings::resolve(&layers, &self.sandbox)?;
        settings::runtime()?.block_on(self.run(common, sandbox))
    }

    async fn run(self, settings: CommonSettings, sandbox: SandboxSettings) -> Outcome {
        let (cache, sandbox) = sandbox.open_local(&settings)?;
        let mut entries = read_inputs(std::slice::from_ref(&self.input))?;
        if entries.len() != 1 {
            bail!(
                "{} holds {} jobs; a snapshot is made from exactly one",
                self.input.display(),
                entries.len()
            );
        }
        let entry = entries.remove(0);
        let mut job = match entry.job {
            Ok(job) => job,
            Err(rejected) => bail!("{}: {}", entry.origin, rejected.message),
        };
        let mut uploader = Uploader::local(&cache).with_registry(settings.registry(), false);
        if let Err(r) = uploader.resolve(&mut job, &entry.base, &entry.origin) {
            bail!("{}: {} ({})", entry.origin, r.message, r.code);
        }
        let snapshot = match sandbox.snapshot(&job, &self.init).await {
            Ok(s) => s,
            Err(e) => {
                bail!("could not snapshot the module of {}: {e}", entry.origin)
            }
        };
        let digest = cache
            .put_module(&snapshot.bytes)
            .context("failed to store the snapshot in the module store")?;
        let provenance = serde_json::to_vec_pretty(&snapshot.provenance)?;
        cache
            .put_provenance(&digest, &provenance)
            .context("failed to store the snapshot's provenance")?;
        std::fs::write(&self.output, &snapshot.bytes)
            .with_context(|| format!("failed to write {}", self.output.display()))?;
        let note = PathBuf::from(format!("{}.provenance.json", self.output.display()));
        std::fs::write(&note, &provenance)
            .with_context(|| format!("failed to write {}", note.display()))?;
        eprintln!(
            "{}: {} bytes, from {} after `{}` ({:.1} s to compile, {} ms to initialise)",
            self.output.display(),
            snapshot.bytes.len(),
            snapshot.provenance.base,
            snapshot.provenance.init,
            snapshot.compile_us as f64 / 1e6,
            snapshot.init_us / 1000
        );
        println!("sha256:{digest}");
        Ok(true)
    }
}
