//! `wasmq run` against a process per job: the same N trivial jobs run by one `wasmq run`
//! and by one `wasmtime run --allow-precompiled` process each (the CLI of the same
//! wasmtime version, on the same precompiled module), in one run, as a ratio.
//!
//! Run: `cargo bench --bench process`. The wasmtime CLI comes from `WASMTIME` (a path),
//! else `target/wasmtime-cli-48.0.8/bin/wasmtime`, else `wasmtime` on the PATH if it is
//! 48.0.8; when none is found the bench installs it there with
//! `cargo install wasmtime-cli --version 48.0.8 --locked` (a long build, once).
//! `WASMQ_BENCH_JOBS` sets N (default 1000).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const VERSION: &str = "48.0.8";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The wasmtime CLI of the version wasmq embeds, installing it if needed.
fn wasmtime_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("WASMTIME") {
        return PathBuf::from(p);
    }
    let root = target_dir().join(format!("wasmtime-cli-{VERSION}"));
    let local = root.join("bin/wasmtime");
    if local.is_file() {
        return local;
    }
    if version_of(Path::new("wasmtime")).is_some_and(|v| v.contains(VERSION)) {
        return PathBuf::from("wasmtime");
    }
    eprintln!(
        "installing wasmtime-cli {VERSION} into {} (once; set WASMTIME to use another)",
        root.display()
    );
    let ok = Command::new(env!("CARGO"))
        .args([
            "install",
            "wasmtime-cli",
            "--version",
            VERSION,
            "--locked",
            "--root",
        ])
        .arg(&root)
        .status()
        .expect("run cargo install")
        .success();
    assert!(ok, "cargo install wasmtime-cli failed");
    local
}

/// Runs `jobs` processes, `parallel` at a time; jobs per second.
fn process_per_job(wasmtime: &Path, cwasm: &Path, jobs: usize, parallel: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..parallel {
            s.spawn(move || {
                for _ in (t..jobs).step_by(parallel) {
                    let status = Command::new(wasmtime)
                        .args(["run", "--allow-precompiled"])
                        .arg(cwasm)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .status()
                        .expect("spawn wasmtime");
                    assert!(status.success());
                }
            });
        }
    });
    jobs as f64 / start.elapsed().as_secs_f64()
}

/// One `wasmq run -j parallel` of the jobs file; jobs per second, process start included.
fn wasmq_run(dir: &Path, file: &Path, jobs: usize, parallel: usize) -> f64 {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmq"))
        .args(["run", "-j", &parallel.to_string()])
        .arg(file)
        .env("WASMQ_CACHE_DIR", dir.join("cache"))
        .env_remove("WASMQ_CONFIG")
        .stderr(Stdio::null())
        .output()
        .expect("spawn wasmq");
    let elapsed = start.elapsed();
    assert!(out.status.success());
    let results = out.stdout.iter().filter(|b| **b == b'\n').count();
    assert_eq!(results, jobs, "one result per job");
    jobs as f64 / elapsed.as_secs_f64()
}

fn main() {
    let jobs: usize = std::env::var("WASMQ_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let wasmtime = wasmtime_cli();
    let version = version_of(&wasmtime).expect("the wasmtime CLI runs");
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {cores} cores, Linux {}; {version}; wasmq {} (wasmtime {VERSION})",
        kernel.trim(),
        env!("CARGO_PKG_VERSION")
    );

    let dir = tempfile::tempdir().unwrap();
    let noop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/noop.wat");
    let cwasm = dir.path().join("noop.cwasm");
    let ok = Command::new(&wasmtime)
        .arg("compile")
        .arg(&noop)
        .arg("-o")
        .arg(&cwasm)
        .status()
        .unwrap()
        .success();
    assert!(ok, "wasmtime compile");
    let file = dir.path().join("jobs.jsonl");
    let lines: String = (0..jobs)
        .map(|i| format!("{{\"id\":\"n{i}\",\"module\":{{\"path\":{noop:?}}}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    // Compile once into the cache, as the wasmtime side is precompiled.
    wasmq_run(dir.path(), &file, jobs, 1);

    println!("{jobs} trivial jobs (tests/fixtures/noop.wat), module precompiled on both sides");
    for parallel in [1, 2] {
        let w = process_per_job(&wasmtime, &cwasm, jobs, parallel);
        let q = wasmq_run(dir.path(), &file, jobs, parallel);
        println!(
            "{parallel} at a time: wasmtime run per job {w:>9.0} jobs/s   wasmq run {q:>9.0} jobs/s   ratio {:>6.0}x (target >= 100x)",
            q / w
        );
    }
}
