//! The example Python submitter (`clients/python`, plain AMQP through pika, no `wasmq`
//! binary) against a real worker: one result per job on its own reply queue, statuses and
//! output as the worker reported them, and jobs and results held to the JSON Schemas of
//! `docs/schema`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{Value, json};
use wasmq_spec::{CacheOutcome, Status};

use crate::fleet::{Fleet, amqp_url};
use crate::support::{Run, fixture, parse};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, made once per test process by `clients/python/setup.sh` (which
/// installs pika and jsonschema from `clients/python/requirements.txt` when they are
/// missing or changed).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let script = repo().join("clients/python/setup.sh");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed (it needs python3 with venv, and PyPI or a wheel cache): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let python = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            python.is_file(),
            "setup.sh prints the venv's python, not {stdout:?}"
        );
        python
    })
}

/// The committed schemas; fails with instructions when they are missing.
fn schema_dir() -> PathBuf {
    let dir = repo().join("docs/schema");
    for name in ["job.schema.json", "result.schema.json"] {
        assert!(
            dir.join(name).is_file(),
            "{} is missing: generate it with WASMQ_BLESS_SCHEMA=1 cargo test -p wasmq-spec --test schema",
            dir.join(name).display()
        );
    }
    dir
}

/// Runs `clients/python/wasmq_submit.py ARGS...` on the fleet's broker and prefix.
fn submit(f: &Fleet, args: &[&str], jobs: &Path) -> Run {
    let out = Command::new(python())
        .arg(repo().join("clients/python/wasmq_submit.py"))
        .args(["--amqp-url", &amqp_url(), "--prefix", &f.prefix])
        .arg("--schema-dir")
        .arg(schema_dir())
        .args(args)
        .arg(jobs)
        .current_dir(f.dir.path())
        .output()
        .expect("spawn the python client");
    parse(out)
}

/// A WAT fixture assembled and base64-encoded, for an inline module.
fn inline(name: &str) -> Value {
    let bytes = wat::parse_file(fixture(name)).unwrap();
    json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) })
}

#[test]
fn the_python_client_gets_one_result_per_job_from_a_real_worker() {
    let mut f = Fleet::new("python");
    f.start_worker(2, &[]);
    // A binary module beside the job file, which --inline-paths embeds.
    std::fs::write(
        f.dir.path().join("exit7.wasm"),
        wat::parse_file(fixture("exit7.wat")).unwrap(),
    )
    .unwrap();
    let jobs = f.dir.jobs_file(
        "python.jsonl",
        &[
            json!({"id": "hello", "module": inline("hello.wat")}),
            json!({"id": "trap", "module": inline("unreachable.wat")}),
            json!({"id": "exit7", "module": {"path": "exit7.wasm"}}),
        ],
    );
    let r = submit(
        &f,
        &["--inline-paths", "--batch", "py", "--timeout", "120"],
        &jobs,
    );
    assert_eq!(r.code, 1, "two of the jobs do not succeed: {}", r.stderr);
    assert_eq!(r.results.len(), 3, "one line per job: {}", r.stderr);

    let hello = r.by_id("hello");
    assert_eq!(
        (hello.status, hello.code.as_str()),
        (Status::Succeeded, "ok"),
        "{}",
        hello.message
    );
    assert_eq!(hello.stdout, "hello from wasm\n");
    assert_eq!(hello.exit_code, Some(0));
    assert_eq!(hello.worker.as_deref(), Some(f.workers[0].id.as_str()));
    let trap = r.by_id("trap");
    assert_eq!(
        (trap.status, trap.code.as_str()),
        (Status::Trapped, "trap_unreachable_code_reached"),
        "{}",
        trap.message
    );
    assert_eq!(
        trap.stdout, "before the trap\n",
        "output before the trap is kept"
    );
    let exit7 = r.by_id("exit7");
    assert_eq!(
        (exit7.status, exit7.code.as_str(), exit7.exit_code),
        (Status::Failed, "exit_nonzero", Some(7)),
        "{}",
        exit7.message
    );
    assert!(
        r.results.iter().all(|x| x.batch.as_deref() == Some("py")),
        "--batch is set on every job"
    );
    assert!(
        r.stderr.contains("3 jobs in") && r.stderr.contains("1 succeeded, 1 failed, 1 trapped"),
        "the summary: {}",
        r.stderr
    );
    assert_eq!(
        f.ready("results"),
        0,
        "the results came back on the client's reply queue, not the shared one"
    );

    // Every job succeeding is exit status 0; the module is loaded in the worker by now.
    let again = f.dir.jobs_file(
        "again.json",
        &[json!([{"id": "again", "module": inline("hello.wat")}])],
    );
    let r = submit(&f, &["--timeout", "60"], &again);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let again = r.by_id("again");
    assert_eq!(again.status, Status::Succeeded, "{}", again.message);
    assert_eq!(again.cache, Some(CacheOutcome::HitMemory));

    f.signal(0, "TERM");
    let status = f.workers[0].child.wait().unwrap();
    assert!(
        status.success(),
        "the worker drains and exits 0: {status:?}"
    );
}

#[test]
fn the_python_client_refuses_jobs_and_results_that_violate_the_schemas() {
    let mut f = Fleet::new("python-schema");
    // An empty submit declares the topology, so the jobs queue can be counted.
    let empty = f.dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = f
        .wasmq()
        .args(["submit", "--batch", "empty"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A misspelt field: the job schema refuses it, and so nothing is published, not even
    // the valid job before it.
    let jobs = f.dir.jobs_file(
        "bad.jsonl",
        &[
            json!({"id": "fine", "module": inline("noop.wat")}),
            json!({"id": "misspelt", "module": inline("noop.wat"), "limit": {"timeout_ms": 5}}),
        ],
    );
    let r = submit(&f, &["--timeout", "30"], &jobs);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.results.is_empty());
    assert!(
        r.stderr.contains("bad.jsonl:2: violates the job schema") && r.stderr.contains("limit"),
        "the job and the field are named: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("bad.jsonl:1"), "{}", r.stderr);
    assert_eq!(f.ready("jobs"), 0, "nothing was published");

    // A result that does not match the result schema is reported, not printed. The
    // worker's results are right, so the schema is made stricter than the real one.
    let mut strict: Value = serde_json::from_str(
        &std::fs::read_to_string(schema_dir().join("result.schema.json")).unwrap(),
    )
    .unwrap();
    strict["properties"]["stdout"] = json!({"const": "not what the guest prints"});
    let strict_path = f.dir.path().join("strict.schema.json");
    std::fs::write(&strict_path, strict.to_string()).unwrap();
    f.start_worker(1, &[]);
    let jobs = f.dir.jobs_file(
        "hello.jsonl",
        &[json!({"id": "hello", "module": inline("hello.wat")})],
    );
    let r = submit(
        &f,
        &[
            "--result-schema",
            strict_path.to_str().unwrap(),
            "--timeout",
            "60",
        ],
        &jobs,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.results.is_empty(), "an invalid result is not printed");
    assert!(
        r.stderr
            .contains("the result of job 'hello' violates the result schema")
            && r.stderr.contains("$.stdout"),
        "{}",
        r.stderr
    );
}
