//! `wasmq cache`: inspect and maintain the module store and artifact cache.

use anyhow::bail;
use clap::{ArgMatches, Args, Subcommand};

use crate::Outcome;
use crate::settings::{self, CommonArgs};

/// Inspect and maintain the cache.
#[derive(Args)]
pub struct CacheCommand {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    action: Action,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Action {
    /// Count modules and artifacts and their sizes.
    Stats,
    /// Remove least recently used artifacts down to a size, and leftover temp files.
    Gc {
        /// Keep at most this many bytes of artifacts [default: the cache cap].
        #[arg(long)]
        max_bytes: Option<u64>,
    },
    /// Check every module and artifact against its digest; quarantine the bad ones.
    Verify,
}

impl CacheCommand {
    pub fn execute(self, matches: &ArgMatches) -> Outcome {
        let (_, settings) = settings::start(&self.common, matches, "warn")?;
        let cache = settings.open_cache()?;
        match self.action {
            Action::Stats => {
                let s = cache.disk_stats()?;
                if self.json {
                    println!("{}", serde_json::to_string(&s)?);
                } else {
                    println!("root        {}", cache.root().display());
                    println!("modules     {} ({} bytes)", s.modules, s.module_bytes);
                    if s.tenant_modules > 0 {
                        println!(
                            "tenant-only {} modules ({} bytes)",
                            s.tenant_modules, s.tenant_module_bytes
                        );
                    }
                    println!("artifacts   {} ({} bytes)", s.artifacts, s.artifact_bytes);
                    println!("engines     {}", s.engines.join(", "));
                    println!("quarantined {}", s.quarantined);
                    match s.max_bytes {
                        Some(m) => println!("cap         {m} bytes"),
                        None => println!("cap         none"),
                    }
                }
                Ok(true)
            }
            Action::Gc { max_bytes } => {
                let Some(max) = max_bytes.or(settings.cache_max_bytes) else {
                    bail!(
                        "give --max-bytes (or set --cache-max-bytes / cache_max_bytes) to say how much to keep"
                    );
                };
                let r = cache.gc(max)?;
                if self.json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "removed {} artifacts ({} bytes) and {} stale temp files; {} bytes remain",
                        r.removed, r.freed_bytes, r.stale_temp_files, r.remaining_bytes
                    );
                }
                Ok(true)
            }
            Action::Verify => {
                let r = cache.verify()?;
                if self.json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "checked {} modules and {} artifacts",
                        r.modules, r.artifacts
                    );
                    for p in &r.quarantined {
                        println!("quarantined {}", p.display());
                    }
                }
                Ok(r.quarantined.is_empty())
            }
        }
    }
}
