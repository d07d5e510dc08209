//! Parity with `wasmtime run`: a corpus of WASI programs (Rust for preview 1 and 2, and C
//! on wasi-libc) runs once under `wasmq run` with `work_dir: "/"` and no `kind`, and once
//! under a reference built on the same wasmtime and wasmtime-wasi crates, configured as
//! `wasmtime run --dir D::/` configures them. Exit status, stdout, stderr and the files the
//! program leaves behind must be the same. Where the wasmtime CLI of the same version is
//! on this machine (`WASMTIME`, `target/wasmtime-cli-48.0.8/bin/wasmtime` as
//! `cargo bench --bench process` installs it, or `wasmtime` on the PATH), every case runs
//! under `wasmtime run --dir D::/` itself as well, and must agree with both.
//!
//! The differences that remain are deliberate, and the corpus stays clear of them
//! (docs/job-format.md lists them): wasmq accepts every preview 1 exit status
//! (wasmtime-wasi refuses 126 and up) and calls argv\[0\] `main.wasm`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use wasmq_spec::JobResult;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::support::{Dir, guest};

/// The input file every case finds in its directory.
const INPUT: &str = "hello parity\n";

/// One program run: its arguments, environment and stdin.
#[derive(Clone)]
struct Case {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: String,
}

fn case(args: &[&str]) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        stdin: String::new(),
    }
}

/// What a run did.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// The exit status, or the error that ended the run when it did not exit.
    exit: Result<i32, String>,
    stdout: String,
    stderr: String,
    /// The regular files left in the directory (links not followed), path -> content.
    files: BTreeMap<String, String>,
}

/// A corpus guest: a name for messages, its module, and the cases it runs.
type Guest = (&'static str, PathBuf, Vec<(String, Case)>);

/// Every scenario of the corpus guests (jobs/guests/parity, jobs/guests-c/parity.c).
const SCENARIOS: &[&str] = &[
    "relpath", "abspath", "readdir", "seek", "pread", "append", "rename", "symlink", "hardlink",
    "truncate", "times", "renumber", "dirfd", "poll", "random", "sockets", "errors",
];

fn corpus() -> Vec<(String, Case)> {
    let mut cases: Vec<(String, Case)> = SCENARIOS
        .iter()
        .map(|s| (s.to_string(), case(&[s])))
        .collect();
    let mut args = case(&["args", "two words", "--flag=1", "\u{fc}n\u{ef}code", ""]);
    args.env = vec![
        ("LANG".into(), "C.UTF-8".into()),
        ("PARITY".into(), "a=b=c".into()),
        ("EMPTY".into(), String::new()),
    ];
    cases.push(("args".into(), args));
    let mut stdin = case(&["stdin"]);
    stdin.stdin = "line one\nline two\n\u{e9}t\u{e9}\n".repeat(300);
    cases.push(("stdin".into(), stdin));
    for code in ["0", "7", "125"] {
        cases.push((format!("exit-{code}"), case(&["exit", code])));
    }
    cases
}

/// The reference: a store set up as `wasmtime run --dir D::/` sets it up (the directory
/// at `/` with every permission, args, the given env, no network), with stdio as pipes.
fn wasi_ctx(case: &Case, dir: &Path) -> (WasiCtxBuilder, MemoryOutputPipe, MemoryOutputPipe) {
    let stdout = MemoryOutputPipe::new(usize::MAX);
    let stderr = MemoryOutputPipe::new(usize::MAX);
    let mut b = WasiCtxBuilder::new();
    b.arg("main.wasm")
        .args(&case.args)
        .envs(&case.env)
        .stdin(MemoryInputPipe::new(case.stdin.clone()))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    b.preopened_dir(dir, "/", FsPerms::ReadWrite)
        .expect("preopen the reference directory");
    (b, stdout, stderr)
}

struct P2 {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for P2 {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// A compiled corpus guest for the reference.
enum Program {
    Core(Module),
    Component(Component),
}

struct Reference {
    engine: Engine,
    core: Linker<WasiP1Ctx>,
    component: wasmtime::component::Linker<P2>,
}

impl Reference {
    fn new() -> Reference {
        let engine = Engine::default();
        let mut core = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut core, |c| c).unwrap();
        let mut component = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut component).unwrap();
        Reference {
            engine,
            core,
            component,
        }
    }

    fn compile(&self, wasm: &Path) -> Program {
        let bytes = std::fs::read(wasm).unwrap();
        // The header's layer field: 1 for a component, 0 for a core module.
        if bytes.get(6..8) == Some(&[1, 0]) {
            Program::Component(Component::new(&self.engine, &bytes).unwrap())
        } else {
            Program::Core(Module::new(&self.engine, &bytes).unwrap())
        }
    }

    fn run(&self, program: &Program, case: &Case) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("input.txt"), INPUT).unwrap();
        let (mut b, stdout, stderr) = wasi_ctx(case, dir.path());
        let ended: wasmtime::Result<()> = match program {
            Program::Core(module) => {
                let mut store = Store::new(&self.engine, b.build_p1());
                self.core
                    .instantiate(&mut store, module)
                    .and_then(|i| i.get_typed_func::<(), ()>(&mut store, "_start"))
                    .and_then(|start| start.call(&mut store, ()))
            }
            Program::Component(component) => {
                let state = P2 {
                    ctx: b.build(),
                    table: ResourceTable::new(),
                };
                let mut store = Store::new(&self.engine, state);
                wasmtime_wasi::p2::bindings::sync::Command::instantiate(
                    &mut store,
                    component,
                    &self.component,
                )
                .and_then(|c| c.wasi_cli_run().call_run(&mut store))
                .and_then(|r| match r {
                    Ok(()) => Ok(()),
                    Err(()) => Err(I32Exit(1).into()),
                })
            }
        };
        let exit = match ended {
            Ok(()) => Ok(0),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => Ok(*code),
                None => Err(format!("{e:#}")),
            },
        };
        Outcome {
            exit,
            stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
            files: files_of(dir.path()),
        }
    }
}

/// The wasmtime CLI of the version wasmq is built on, if this machine has it.
fn wasmtime_cli() -> Option<PathBuf> {
    const VERSION: &str = "48.0.8";
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("wasmtime-cli-{VERSION}/bin/wasmtime"));
    let candidates = [
        std::env::var_os("WASMTIME").map(PathBuf::from),
        Some(local),
        Some(PathBuf::from("wasmtime")),
    ];
    candidates.into_iter().flatten().find(|cli| {
        Command::new(cli)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(VERSION))
    })
}

/// `wasmtime run --dir D::/` itself, on a module it precompiled (`wasmtime compile`).
struct Cli {
    exe: PathBuf,
    dir: tempfile::TempDir,
}

impl Cli {
    fn precompile(&self, wasm: &Path) -> PathBuf {
        let out = self
            .dir
            .path()
            .join(wasm.file_name().unwrap())
            .with_extension("cwasm");
        let ok = Command::new(&self.exe)
            .arg("compile")
            .arg(wasm)
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap()
            .success();
        assert!(ok, "wasmtime compile {} failed", wasm.display());
        out
    }

    fn run(&self, cwasm: &Path, case: &Case) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("input.txt"), INPUT).unwrap();
        let mut cmd = Command::new(&self.exe);
        cmd.arg("run")
            .arg("--allow-precompiled")
            .arg("--dir")
            .arg(format!("{}::/", dir.path().display()));
        for (k, v) in &case.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        let mut child = cmd
            .arg(cwasm)
            .args(&case.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(case.stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Outcome {
            exit: out.status.code().ok_or_else(|| format!("{}", out.status)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            files: files_of(dir.path()),
        }
    }
}

/// Regular files under `root`, without following links, path -> content.
fn files_of(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(&path).unwrap();
                out.insert(rel, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The job wasmq runs for a case: no kind, the directory at `work_dir`, every file
/// collected.
fn job_of(id: &str, wasm: &Path, case: &Case, work_dir: &str) -> Value {
    let env: serde_json::Map<String, Value> = case
        .env
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "id": id,
        "module": {"path": wasm},
        "work_dir": work_dir,
        "args": case.args,
        "env": env,
        "stdin": case.stdin,
        "files": {"input.txt": INPUT},
        "collect": ["**"],
    })
}

fn outcome_of(r: &JobResult) -> Outcome {
    let exit = match r.exit_code {
        Some(code) => Ok(code),
        None => Err(format!("{}: {}", r.code, r.message)),
    };
    Outcome {
        exit,
        stdout: r.stdout.clone(),
        stderr: r.stderr.clone(),
        files: r
            .files
            .iter()
            .map(|(k, v)| {
                let bytes = v.to_bytes().unwrap();
                (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
            })
            .collect(),
    }
}

/// Runs the corpus on `guests` both ways, with the job's directory at `work_dir` under
/// wasmq, and returns every case that differs.
fn differences(guests: &[Guest], work_dir: &str) -> Vec<String> {
    let reference = Reference::new();
    let cli = wasmtime_cli().map(|exe| Cli {
        exe,
        dir: tempfile::tempdir().unwrap(),
    });
    match &cli {
        Some(c) => eprintln!("parity: also comparing with {}", c.exe.display()),
        None => eprintln!(
            "parity: no wasmtime 48.0.8 CLI on this machine; comparing with the crates alone"
        ),
    }
    let mut jobs = Vec::new();
    let mut expected = Vec::new();
    let mut diffs = Vec::new();
    for (name, wasm, cases) in guests {
        let program = reference.compile(wasm);
        let cwasm = cli.as_ref().map(|c| c.precompile(wasm));
        for (label, case) in cases {
            let id = format!("{name}/{label}");
            jobs.push(job_of(&id, wasm, case, work_dir));
            let want = reference.run(&program, case);
            if let (Some(c), Some(cwasm)) = (&cli, &cwasm) {
                let got = c.run(cwasm, case);
                if got != want {
                    diffs.push(format!(
                        "{id}: the crates and the CLI disagree:\n  crates: {want:?}\n  CLI:    {got:?}"
                    ));
                }
            }
            expected.push((id, want));
        }
    }
    let d = Dir::new();
    let run = d.run_jobs(&jobs, &[]);
    assert_eq!(run.results.len(), jobs.len(), "{}", run.stderr);
    for (id, want) in expected {
        let r = run.by_id(&id);
        let got = outcome_of(r);
        if got != want {
            diffs.push(format!(
                "{id}:\n  wasmtime: {want:?}\n  wasmq:    {got:?}\n  (status {}, code {})",
                r.status, r.code
            ));
        }
        // The reference exits 0 wherever the guest ran its scenario to the end.
        if id.ends_with("/exit-0") || !id.contains("/exit-") {
            assert_eq!(
                want.exit,
                Ok(0),
                "{id} should exit 0 under the reference: {want:?}"
            );
        }
    }
    diffs
}

/// Fails naming every case that differs from the reference.
fn assert_same(guests: &[Guest], work_dir: &str) {
    let diffs = differences(guests, work_dir);
    assert!(
        diffs.is_empty(),
        "{} of the corpus differ from wasmtime (work_dir {work_dir}):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn wasi_programs_run_as_under_wasmtime_run() {
    // A component exiting through `wasi:cli/exit#exit-with-code` with its own number.
    let exit_codes = ["0", "7", "255"]
        .iter()
        .map(|c| (format!("exit-{c}"), case(&[c])))
        .collect();
    let guests = [
        ("rust-p1", guest("parity"), corpus()),
        ("rust-p2", guest("parity-p2"), corpus()),
        ("c", guest("parity-c"), corpus()),
        ("exitcode-p2", guest("exitcode-p2"), exit_codes),
    ];
    assert_same(&guests, "/");
}

/// With the job's directory at the default `/work` (and so also at `.`), a program that
/// never names `/work` sees what it sees at `/`: wasi-libc gives `.` and `/` the same empty
/// prefix, so relative paths, `/x` and a listing of `/` all land in the job's directory.
#[test]
fn at_the_default_work_dir_programs_that_never_name_it_see_the_same() {
    let guests = [
        ("rust-p1", guest("parity"), corpus()),
        ("c", guest("parity-c"), corpus()),
    ];
    assert_same(&guests, "/work");
}
