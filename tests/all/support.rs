//! A test directory with its own cache, and helpers to run `wasmq` in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use wasmq_spec::{CacheOutcome, JobResult, Status};

/// A fixture from `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A guest built by `jobs/build.sh`; fails with instructions when it is missing.
pub fn guest(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("jobs/wasm")
        .join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "guest {} is missing: build the guests with jobs/build.sh (the README's test command does)",
        p.display()
    );
    p
}

/// A temporary directory with its own cache root.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

/// What one `wasmq` invocation did.
pub struct Run {
    pub code: i32,
    pub results: Vec<JobResult>,
    pub stderr: String,
}

impl Run {
    /// The single result with this id.
    pub fn by_id(&self, id: &str) -> &JobResult {
        let found: Vec<&JobResult> = self.results.iter().filter(|r| r.id == id).collect();
        assert_eq!(
            found.len(),
            1,
            "expected one result for {id}, got {}: {}",
            found.len(),
            self.stderr
        );
        found[0]
    }

    /// How many results came from each cache outcome.
    pub fn count_cache(&self, outcome: CacheOutcome) -> usize {
        self.results
            .iter()
            .filter(|r| r.cache == Some(outcome))
            .count()
    }

    /// How many results have this status.
    pub fn count_status(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path().join("cache")
    }

    /// Writes `jobs` as a JSONL file and returns its path.
    pub fn jobs_file(&self, name: &str, jobs: &[Value]) -> PathBuf {
        let text: String = jobs.iter().map(|j| format!("{j}\n")).collect();
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write jobs");
        path
    }

    /// A `wasmq` command using this directory's cache.
    pub fn wasmq(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wasmq"));
        c.env_remove("WASMQ_CONFIG")
            .env("WASMQ_CACHE_DIR", self.cache_dir())
            .current_dir(self.path());
        c
    }

    /// `wasmq run ARGS...` and its parsed results.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self
            .wasmq()
            .arg("run")
            .args(args)
            .output()
            .expect("spawn wasmq");
        parse(out)
    }

    /// Runs `jobs` through `wasmq run` with extra flags.
    pub fn run_jobs(&self, jobs: &[Value], flags: &[&str]) -> Run {
        let file = self.jobs_file("jobs.jsonl", jobs);
        let mut args: Vec<&str> = flags.to_vec();
        let f = file.to_str().unwrap().to_owned();
        args.push(&f);
        self.run(&args)
    }
}

pub fn parse(out: Output) -> Run {
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let results = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a result line ({e}): {l}\nstderr: {stderr}"))
        })
        .collect();
    Run {
        code: out.status.code().unwrap_or(-1),
        results,
        stderr,
    }
}

/// A job running module file `path`.
pub fn job(id: &str, path: &Path) -> Value {
    serde_json::json!({ "id": id, "module": { "path": path } })
}

/// Merges `extra` fields into a job.
pub fn with(mut job: Value, extra: Value) -> Value {
    let obj = job.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    job
}
