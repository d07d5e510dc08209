//! Job kinds: WASI preview 2 components, plugin functions and handler components, each
//! with the limits and statuses of core commands.

use serde_json::{Value, json};
use wasmq_spec::{CacheOutcome, Status};

use crate::support::{Dir, fixture, guest, job, with};

fn kind(id: &str, kind: &str, module: &std::path::Path, extra: Value) -> Value {
    let mut j = with(job(id, module), extra);
    j["kind"] = json!(kind);
    j
}

#[test]
fn each_kind_runs_and_returns_its_output() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[
            kind(
                "p2",
                "component",
                &guest("hello-p2"),
                json!({"args": ["p2"], "env": {"GREETING": "hey"}, "stdin": "in\n"}),
            ),
            kind(
                "p2exit",
                "component",
                &guest("misbehave-p2"),
                json!({"args": ["exit", "3"]}),
            ),
            kind(
                "fn",
                "function",
                &guest("upper"),
                json!({"input": "hello plugin"}),
            ),
            kind(
                "wat",
                "function",
                &fixture("reverse.wat"),
                json!({"input": "stressed"}),
            ),
            kind(
                "bin",
                "function",
                &fixture("reverse.wat"),
                json!({"input_base64": "AAEC/w=="}),
            ),
            kind(
                "h",
                "handler",
                &guest("handler"),
                json!({"input": "abc", "args": ["x", "y"], "env": {"A": "1"}}),
            ),
        ],
        &[],
    );
    let p2 = r.by_id("p2");
    assert_eq!(
        (p2.status, p2.exit_code),
        (Status::Succeeded, Some(0)),
        "{}",
        p2.message
    );
    assert_eq!(p2.stdout, "hey, p2\nin\n");
    // WASI 0.2's `wasi:cli/exit` carries success or failure only, not the number.
    let e = r.by_id("p2exit");
    assert_eq!((e.status, e.exit_code), (Status::Failed, Some(1)));

    let f = r.by_id("fn");
    assert_eq!(
        (f.status, f.output.as_deref()),
        (Status::Succeeded, Some("HELLO PLUGIN")),
        "{}",
        f.message
    );
    assert_eq!(f.exit_code, None);
    assert_eq!(r.by_id("wat").output.as_deref(), Some("desserts"));
    let bin = r.by_id("bin");
    assert_eq!(
        bin.output_base64.as_deref(),
        Some("/wIBAA=="),
        "bytes that are not UTF-8 come back exactly"
    );

    let h = r.by_id("h");
    assert_eq!(h.status, Status::Succeeded, "{}", h.message);
    let out: Value = serde_json::from_str(h.output.as_deref().unwrap()).unwrap();
    assert_eq!(
        out,
        json!({"id": "h", "args": ["x", "y"], "env": 1, "input_len": 3, "upper": "ABC"})
    );
}

#[test]
fn guest_errors_are_failed_results_with_the_guests_message() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[
            kind("fn", "function", &guest("upper"), json!({"input": "fail"})),
            kind("h", "handler", &guest("handler"), json!({"input": "fail"})),
            kind(
                "abi",
                "function",
                &fixture("plugin-badptr.wat"),
                json!({"input": "x"}),
            ),
        ],
        &[],
    );
    let f = r.by_id("fn");
    assert_eq!((f.status, f.code.as_str()), (Status::Failed, "guest_error"));
    assert!(
        f.message.contains("the input asked to fail"),
        "{}",
        f.message
    );
    let h = r.by_id("h");
    assert_eq!((h.status, h.code.as_str()), (Status::Failed, "guest_error"));
    assert!(h.message.contains("job h asked to fail"), "{}", h.message);
    let a = r.by_id("abi");
    assert_eq!(
        (a.status, a.code.as_str()),
        (Status::Failed, "abi_mismatch")
    );
    assert!(
        a.message.contains("outside the guest's memory"),
        "{}",
        a.message
    );
}

#[test]
fn a_module_of_the_wrong_kind_is_rejected_saying_what_was_found() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[
            kind("c-as-cmd", "command", &guest("hello-p2"), json!({})),
            kind("m-as-comp", "component", &guest("hello"), json!({})),
            kind("m-as-handler", "handler", &fixture("hello.wat"), json!({})),
            kind("cmd-as-fn", "function", &guest("hello"), json!({})),
            kind("comp-as-handler", "handler", &guest("hello-p2"), json!({})),
            kind("handler-as-comp", "component", &guest("handler"), json!({})),
            kind("fn-as-cmd", "command", &guest("upper"), json!({})),
            kind(
                "no-export",
                "function",
                &guest("upper"),
                json!({"export": "nope"}),
            ),
        ],
        &[],
    );
    let expect = [
        ("c-as-cmd", "wrong_kind", "the bytes are a component"),
        (
            "m-as-comp",
            "wrong_kind",
            "the bytes are a core WebAssembly module",
        ),
        (
            "m-as-handler",
            "wrong_kind",
            "the bytes are a core WebAssembly module",
        ),
        ("cmd-as-fn", "abi_mismatch", "run it as kind `command`"),
        (
            "comp-as-handler",
            "abi_mismatch",
            "run it as kind `component`",
        ),
        (
            "handler-as-comp",
            "no_entry_point",
            "run it as kind `handler`",
        ),
        ("fn-as-cmd", "no_entry_point", "run it as kind `function`"),
        ("no-export", "abi_mismatch", "no export `nope`"),
    ];
    for (id, code, says) in expect {
        let x = r.by_id(id);
        assert_eq!(
            (x.status, x.code.as_str()),
            (Status::Rejected, code),
            "{id}: {}",
            x.message
        );
        assert!(x.message.contains(says), "{id}: {}", x.message);
    }
}

#[test]
fn hostile_guests_of_every_kind_end_in_their_status() {
    let d = Dir::new();
    let limits = json!({"timeout_ms": 500, "memory_bytes": 16 << 20, "stdout_bytes": 2048});
    let mut jobs = Vec::new();
    for (k, path, how) in [
        ("component", guest("misbehave-p2"), "args"),
        ("function", guest("upper"), "input"),
        ("handler", guest("handler"), "input"),
    ] {
        for case in ["loop", "grow", "flood"] {
            let extra = if how == "args" {
                json!({"args": [case]})
            } else {
                json!({"input": case})
            };
            let mut j = kind(&format!("{k}-{case}"), k, &path, extra);
            j["limits"] = limits.clone();
            jobs.push(j);
        }
    }
    jobs.push(kind(
        "wat-loop",
        "function",
        &fixture("plugin-loop.wat"),
        json!({"limits": {"fuel": 50_000_000}}),
    ));
    let r = d.run_jobs(&jobs, &[]);
    for k in ["component", "function", "handler"] {
        let l = r.by_id(&format!("{k}-loop"));
        assert_eq!(l.status, Status::TimedOut, "{k}: {}", l.message);
        assert!(
            l.timings.instantiate_us + l.timings.run_us < 1_000_000,
            "{k}: within 2x of 500 ms: {:?}",
            l.timings
        );
        let g = r.by_id(&format!("{k}-grow"));
        assert_eq!(g.status, Status::MemoryExceeded, "{k}: {}", g.message);
        assert!(
            g.memory_peak_bytes <= 16 << 20,
            "{k}: {}",
            g.memory_peak_bytes
        );
        let f = r.by_id(&format!("{k}-flood"));
        assert_eq!(
            f.status,
            Status::TimedOut,
            "{k}: a flood runs until its time is up: {}",
            f.message
        );
        assert!(
            f.stdout_truncated && f.stdout.len() == 2048,
            "{k}: output capped at 2048: {}",
            f.stdout.len()
        );
    }
    let w = r.by_id("wat-loop");
    assert_eq!(
        (w.status, w.fuel_consumed),
        (Status::FuelExhausted, Some(50_000_000))
    );
}

#[test]
fn components_are_cached_under_their_own_artifact_kind() {
    let d = Dir::new();
    let jobs = [
        kind("a", "component", &guest("hello-p2"), json!({})),
        kind("h", "handler", &guest("handler"), json!({"input": "x"})),
    ];
    let first = d.run_jobs(&jobs, &[]);
    assert_eq!(
        first.count_cache(CacheOutcome::Compiled),
        2,
        "{}",
        first.stderr
    );
    let second = d.run_jobs(&jobs, &[]);
    assert_eq!(
        second.count_cache(CacheOutcome::HitDisk),
        2,
        "{}",
        second.stderr
    );
    let mut names = Vec::new();
    let mut stack = vec![d.cache_dir().join("artifacts")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with(".component.cwasm"))
            .count(),
        2,
        "{names:?}"
    );
}
