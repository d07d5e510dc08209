//! What `wasmtime run` runs: the proposals it enables by default, WASI reactors called
//! through `invoke`, unknown imports linked as traps, and per-job counts of instances,
//! tables and memories, with the instance pool sized to match.

use serde_json::{Value, json};
use wasmq_spec::{CacheOutcome, Status};

use crate::support::{Dir, fixture, job, with};

fn proposal(name: &str) -> std::path::PathBuf {
    fixture(&format!("proposals/{name}.wat"))
}

/// A job that invokes `run` of a proposal's fixture.
fn invoking(id: &str, path: &std::path::Path, export: &str) -> Value {
    with(job(id, path), json!({ "invoke": export }))
}

#[test]
fn every_proposal_wasmtime_run_enables_by_default_runs() {
    let d = Dir::new();
    let names = [
        "exceptions",
        "gc",
        "function-references",
        "tail-call",
        "simd",
        "relaxed-simd",
        "multi-memory",
        "memory64",
        "extended-const",
        "threads-atomics",
        "wasm2",
    ];
    let jobs: Vec<Value> = names
        .iter()
        .map(|n| invoking(n, &proposal(n), "run"))
        .collect();
    let r = d.run_jobs(&jobs, &[]);
    for n in names {
        let res = r.by_id(n);
        // Each fixture's `run` returns 0 only when the proposal's instructions did what
        // they should.
        assert_eq!(
            (res.status, res.exit_code, res.code.as_str()),
            (Status::Succeeded, Some(0), "ok"),
            "{n}: {}",
            res.message
        );
        assert_eq!(res.kind.map(|k| k.as_str()), Some("command"), "{n}");
    }
}

#[test]
fn an_uncaught_exception_is_a_trap_with_its_own_code() {
    let d = Dir::new();
    let r = d.run_jobs(&[invoking("x", &proposal("uncaught"), "run")], &[]);
    let x = r.by_id("x");
    assert_eq!(
        (x.status, x.code.as_str()),
        (Status::Trapped, "trap_unhandled_tag"),
        "{}",
        x.message
    );
    assert!(x.message.contains("exception"), "{}", x.message);
}

#[test]
fn a_shared_memory_is_refused_as_wasmtime_run_refuses_it() {
    let d = Dir::new();
    let shared = invoking("shared", &proposal("threads-shared"), "run");
    let config = d.path().join("unpooled.toml");
    std::fs::write(&config, "pooling = false\n").unwrap();
    for flags in [vec![], vec!["--config", config.to_str().unwrap()]] {
        let r = d.run_jobs(std::slice::from_ref(&shared), &flags);
        let s = r.by_id("shared");
        assert_eq!(
            (s.status, s.code.as_str()),
            (Status::Rejected, "invalid_module"),
            "{flags:?}: {}",
            s.message
        );
        assert!(s.message.contains("shared memory"), "{}", s.message);
    }
}

#[test]
fn invoke_calls_a_reactors_export_after_initialize_and_its_return_is_the_exit_status() {
    let d = Dir::new();
    let reactor = fixture("reactor.wat");
    let r = d.run_jobs(
        &[
            invoking("run", &reactor, "run"),
            invoking("ok", &reactor, "ok"),
            invoking("quiet", &reactor, "quiet"),
            invoking("bye", &reactor, "bye"),
            with(
                job("kinded", &reactor),
                json!({"invoke": "ok", "kind": "command"}),
            ),
        ],
        &[],
    );
    let run = r.by_id("run");
    assert_eq!(
        (run.status, run.exit_code, run.code.as_str()),
        (Status::Failed, Some(3), "exit_nonzero"),
        "`run` returns 3, set by `_initialize`: {}",
        run.message
    );
    assert_eq!(run.stdout, "reactor ran\n");
    for id in ["ok", "quiet", "kinded"] {
        let res = r.by_id(id);
        assert_eq!(
            (res.status, res.exit_code),
            (Status::Succeeded, Some(0)),
            "{id}: {}",
            res.message
        );
    }
    let bye = r.by_id("bye");
    assert_eq!(
        (bye.status, bye.exit_code),
        (Status::Failed, Some(5)),
        "proc_exit still ends the job with its status: {}",
        bye.message
    );
}

#[test]
fn a_reactor_without_invoke_or_with_a_wrong_one_is_refused_with_what_to_do() {
    let d = Dir::new();
    let reactor = fixture("reactor.wat");
    let component = crate::support::guest("hello-p2");
    let r = d.run_jobs(
        &[
            job("none", &reactor),
            invoking("missing", &reactor, "main"),
            invoking("params", &reactor, "takes"),
            invoking("memory", &reactor, "memory"),
            invoking("component", &component, "run"),
            with(
                job("both", &reactor),
                json!({"invoke": "run", "export": "run"}),
            ),
            with(job("empty", &reactor), json!({"invoke": ""})),
        ],
        &[],
    );
    let expect = |id: &str, code: &str, says: &str| {
        let res = r.by_id(id);
        assert_eq!(
            (res.status, res.code.as_str()),
            (Status::Rejected, code),
            "{id}: {}",
            res.message
        );
        assert!(
            res.message.contains(says),
            "{id}: {:?} does not say {says:?}",
            res.message
        );
    };
    expect("none", "no_entry_point", "`invoke`");
    expect("missing", "no_entry_point", "run, ok, quiet, bye, takes");
    expect("params", "abi_mismatch", "takes nothing");
    expect("memory", "abi_mismatch", "not a function");
    expect("component", "invalid_field", "kind component");
    expect("both", "invalid_field", "not both");
    expect("empty", "invalid_field", "invoke must name an export");
}

#[test]
fn unknown_imports_are_rejected_by_default_and_trap_only_when_called_if_asked() {
    let d = Dir::new();
    let host_call = fixture("host-call.wat");
    let missiles = fixture("unknown-import.wat");
    let trap = json!({"unknown_imports": "trap"});
    let r = d.run_jobs(
        &[
            invoking("default", &host_call, "skip"),
            with(invoking("skip", &host_call, "skip"), trap.clone()),
            with(invoking("call", &host_call, "call"), trap.clone()),
            with(job("start", &missiles), trap.clone()),
            with(
                job("reject", &missiles),
                json!({"unknown_imports": "reject"}),
            ),
            with(job("memory", &fixture("unknown-memory.wat")), trap),
        ],
        &[],
    );
    let res = |id: &str| r.by_id(id);
    assert_eq!(
        (res("default").status, res("default").code.as_str()),
        (Status::Rejected, "unknown_import")
    );
    assert!(
        res("default").message.contains("unknown_imports"),
        "the rejection says how to link it as a trap: {}",
        res("default").message
    );
    assert_eq!(
        (res("skip").status, res("skip").exit_code),
        (Status::Succeeded, Some(0)),
        "{}",
        res("skip").message
    );
    for (id, import) in [("call", "host::call"), ("start", "env::launch_missiles")] {
        let t = res(id);
        assert_eq!(
            (t.status, t.code.as_str()),
            (Status::Trapped, "trap_unknown_import"),
            "{id}: {}",
            t.message
        );
        assert!(t.message.contains(import), "{id}: {}", t.message);
    }
    assert_eq!(res("reject").code, "unknown_import");
    assert_eq!(
        (res("memory").status, res("memory").code.as_str()),
        (Status::Rejected, "unknown_import"),
        "a memory import is never linked as a trap: {}",
        res("memory").message
    );

    // The operator's default, for jobs that do not say.
    let r = d.run_jobs(
        &[
            invoking("skip", &host_call, "skip"),
            with(
                invoking("own", &host_call, "skip"),
                json!({"unknown_imports": "reject"}),
            ),
        ],
        &["--unknown-imports", "trap"],
    );
    assert_eq!(r.by_id("skip").status, Status::Succeeded);
    assert_eq!(r.by_id("own").code, "unknown_import");
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A module whose instance state is about `globals` x 16 bytes.
fn many_globals(globals: usize) -> String {
    let mut wat = String::from("(module\n");
    for _ in 0..globals {
        wat.push_str("  (global (mut i64) (i64.const 1))\n");
    }
    wat.push_str("  (func (export \"_start\")))\n");
    wat
}

#[test]
fn a_module_the_pool_cannot_hold_is_a_precise_rejection_and_its_artifact_is_kept() {
    let d = Dir::new();
    let big = d.path().join("globals.wat");
    std::fs::write(&big, many_globals(16_000)).unwrap();
    let small_pool = d.path().join("small-pool.toml");
    std::fs::write(&small_pool, "max_core_instance_bytes = 65536\n").unwrap();
    let j = job("big", &big);
    let r = d.run_jobs(
        std::slice::from_ref(&j),
        &["--config", small_pool.to_str().unwrap()],
    );
    let b = r.by_id("big");
    assert_eq!(
        (b.status, b.code.as_str()),
        (Status::Rejected, "pool_limit"),
        "{}",
        b.message
    );
    assert!(
        b.message.contains("max_core_instance_bytes = 65536"),
        "{}",
        b.message
    );
    let artifacts = std::fs::read_dir(d.cache_dir().join("artifacts"))
        .unwrap()
        .flatten()
        .flat_map(|engine| walk(&engine.path()))
        .filter(|p| p.to_string_lossy().ends_with(".cwasm"))
        .count();
    assert_eq!(artifacts, 1, "the compiled module is kept");
    // With the default pool, the kept artifact runs.
    let r = d.run_jobs(&[j], &[]);
    let b = r.by_id("big");
    assert_eq!(
        (b.status, b.cache),
        (Status::Succeeded, Some(CacheOutcome::HitDisk)),
        "{}",
        b.message
    );
}

#[test]
fn counts_of_memories_are_limits_with_a_default_a_maximum_and_a_pool_to_match() {
    let d = Dir::new();
    let two = proposal("multi-memory");
    // 9 memories: more than the worker's maximum of 8 holds in one pool slot.
    let mut wat = String::from("(module\n");
    for _ in 0..9 {
        wat.push_str("  (memory 1)\n");
    }
    wat.push_str("  (func (export \"_start\")))\n");
    let many = d.path().join("many.wat");
    std::fs::write(&many, wat).unwrap();
    let r = d.run_jobs(
        &[
            with(
                invoking("one", &two, "run"),
                json!({"limits": {"memories": 1}}),
            ),
            with(
                invoking("two", &two, "run"),
                json!({"limits": {"memories": 2}}),
            ),
            with(
                invoking("over", &two, "run"),
                json!({"limits": {"memories": 9}}),
            ),
            with(
                invoking("zero", &two, "run"),
                json!({"limits": {"instances": 0}}),
            ),
            job("many", &many),
        ],
        &[],
    );
    let one = r.by_id("one");
    assert_eq!(
        (one.status, one.code.as_str()),
        (Status::Rejected, "limit_too_low"),
        "{}",
        one.message
    );
    assert!(
        one.message.contains("limits.memories = 1"),
        "{}",
        one.message
    );
    assert_eq!(r.by_id("two").status, Status::Succeeded);
    let over = r.by_id("over");
    assert_eq!(over.code, "limit_above_maximum", "{}", over.message);
    assert!(
        over.message.contains("limits.memories = 9"),
        "{}",
        over.message
    );
    assert_eq!(r.by_id("zero").code, "invalid_field");
    let many = r.by_id("many");
    assert_eq!(
        (many.status, many.code.as_str()),
        (Status::Rejected, "pool_limit"),
        "{}",
        many.message
    );
    assert!(
        many.message.contains("limits.maximum.memories = 8"),
        "{}",
        many.message
    );

    // A worker that allows more holds it.
    let config = d.path().join("more.toml");
    std::fs::write(&config, "[limits.maximum]\nmemories = 20\n").unwrap();
    let r = d.run_jobs(
        &[with(
            job("many", &d.path().join("many.wat")),
            json!({"limits": {"memories": 9}}),
        )],
        &["--config", config.to_str().unwrap()],
    );
    let many = r.by_id("many");
    assert_eq!(many.status, Status::Succeeded, "{}", many.message);
}

#[test]
fn a_module_with_imports_the_sandbox_lacks_is_prewarmed_with_unknown_imports_as_traps() {
    let d = Dir::new();
    let host_call = fixture("host-call.wat");
    // Under the default (`reject`) it cannot run here: the prewarm says so.
    let refused = d.wasmq().arg("prewarm").arg(&host_call).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unknown_imports"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = d
        .wasmq()
        .args(["prewarm", "--unknown-imports", "trap"])
        .arg(&host_call)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = d.run_jobs(
        &[
            with(
                invoking("trap", &host_call, "skip"),
                json!({"unknown_imports": "trap"}),
            ),
            invoking("reject", &host_call, "skip"),
        ],
        &[],
    );
    let t = r.by_id("trap");
    assert_eq!(
        (t.status, t.cache),
        (Status::Succeeded, Some(CacheOutcome::HitDisk)),
        "{}",
        t.message
    );
    assert_eq!(r.by_id("reject").code, "unknown_import");
}
