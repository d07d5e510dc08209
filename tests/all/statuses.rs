//! Every status, caused by a guest that earns it; limits enforced.

use serde_json::json;
use wasmq_spec::Status;

use crate::support::{Dir, fixture, guest, job, with};

#[test]
fn every_status_has_a_guest_that_causes_it() {
    let d = Dir::new();
    let fast = json!({"limits": {"timeout_ms": 2000}});
    let jobs = vec![
        with(
            job("ok", &guest("hello")),
            json!({"args": ["tests"], "stdin": "in\n"}),
        ),
        with(job("exit7", &fixture("exit7.wat")), fast.clone()),
        with(
            job("unreachable", &fixture("unreachable.wat")),
            fast.clone(),
        ),
        with(job("oob", &fixture("oob.wat")), fast.clone()),
        with(job("stack", &fixture("recurse.wat")), fast.clone()),
        with(
            job("loop", &fixture("loop.wat")),
            json!({"limits": {"timeout_ms": 300}}),
        ),
        with(
            job("sleep", &fixture("sleep.wat")),
            json!({"limits": {"timeout_ms": 300}}),
        ),
        with(
            job("fuel", &fixture("loop.wat")),
            json!({"limits": {"fuel": 1_000_000, "timeout_ms": 5000}}),
        ),
        with(
            job("grow", &fixture("grow.wat")),
            json!({"limits": {"memory_bytes": 1_048_576}}),
        ),
        job("invalid", &fixture("invalid.wasm")),
        job("import", &fixture("unknown-import.wat")),
        job("nostart", &fixture("no-start.wat")),
        with(
            job("toomuch", &guest("hello")),
            json!({"limits": {"memory_bytes": 1u64 << 40}}),
        ),
        with(
            job("novolume", &guest("hello")),
            json!({"volumes": {"/data": "nope"}}),
        ),
    ];
    let r = d.run_jobs(&jobs, &[]);
    assert_eq!(
        r.code, 1,
        "not every job succeeded, so exit 1: {}",
        r.stderr
    );
    assert_eq!(r.results.len(), jobs.len());

    let ok = r.by_id("ok");
    assert_eq!((ok.status, ok.exit_code), (Status::Succeeded, Some(0)));
    assert_eq!(ok.stdout, "hello, tests\nin\n");

    let e = r.by_id("exit7");
    assert_eq!(
        (e.status, e.exit_code, e.code.as_str()),
        (Status::Failed, Some(7), "exit_nonzero")
    );

    let u = r.by_id("unreachable");
    assert_eq!(u.status, Status::Trapped);
    assert_eq!(u.code, "trap_unreachable_code_reached");
    assert_eq!(
        u.stdout, "before the trap\n",
        "output before a trap is kept"
    );

    assert_eq!(r.by_id("oob").code, "trap_memory_out_of_bounds");
    assert_eq!(r.by_id("stack").code, "trap_stack_overflow");

    for id in ["loop", "sleep"] {
        let t = r.by_id(id);
        assert_eq!(t.status, Status::TimedOut, "{id}: {}", t.message);
        assert!(
            t.timings.instantiate_us + t.timings.run_us <= 600_000,
            "{id}: a 300 ms limit must stop the guest within 2x: {:?}",
            t.timings
        );
    }

    let f = r.by_id("fuel");
    assert_eq!(f.status, Status::FuelExhausted);
    assert_eq!(f.fuel_consumed, Some(1_000_000));

    let g = r.by_id("grow");
    assert_eq!(g.status, Status::MemoryExceeded, "{}", g.message);
    assert!(
        g.memory_peak_bytes <= 1_048_576,
        "memory never above the limit: {}",
        g.memory_peak_bytes
    );
    assert_eq!(
        g.memory_peak_bytes, 1_048_576,
        "the guest grew right up to the limit"
    );

    for (id, code) in [
        ("invalid", "invalid_module"),
        ("import", "unknown_import"),
        ("nostart", "no_entry_point"),
        ("toomuch", "limit_above_maximum"),
        ("novolume", "unknown_volume"),
    ] {
        let x = r.by_id(id);
        assert_eq!(
            (x.status, x.code.as_str()),
            (Status::Rejected, code),
            "{id}: {}",
            x.message
        );
        assert!(!x.message.is_empty());
    }
    assert!(r.by_id("import").message.contains("env::launch_missiles"));
}

#[test]
fn host_fault_is_an_internal_error_and_the_next_job_still_runs() {
    let d = Dir::new();
    // A module store entry that cannot be read (a directory where the file should be).
    let bytes = wat::parse_file(fixture("hello.wat")).unwrap();
    let hex = wasmq_cache::Digest::of(&bytes).to_hex();
    let entry = d
        .cache_dir()
        .join("modules")
        .join(&hex[..2])
        .join(format!("{hex}.wasm"));
    std::fs::create_dir_all(&entry).unwrap();
    let r = d.run_jobs(
        &[
            json!({"id": "broken", "module": {"sha256": hex}}),
            job("fine", &fixture("exit7.wat")),
        ],
        &[],
    );
    let b = r.by_id("broken");
    assert_eq!(b.status, Status::InternalError, "{}", b.message);
    assert!(b.message.contains(&hex), "{}", b.message);
    assert_eq!(r.by_id("fine").exit_code, Some(7));
}

#[test]
fn fuel_is_counted_for_a_guest_that_finishes() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[with(
            job("f", &guest("hello")),
            json!({"limits": {"fuel": 100_000_000}}),
        )],
        &[],
    );
    let f = r.by_id("f");
    assert_eq!(f.status, Status::Succeeded, "{}", f.message);
    let used = f.fuel_consumed.expect("fuel was on");
    assert!(used > 0 && used < 100_000_000, "{used}");
    assert_ne!(
        f.engine,
        d.run_jobs(&[job("g", &guest("hello"))], &[])
            .by_id("g")
            .engine,
        "fuel and plain engines have different fingerprints"
    );
}

#[test]
fn output_is_capped_head_kept() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[with(
            job("flood", &fixture("flood.wat")),
            json!({"limits": {"stdout_bytes": 1000, "stderr_bytes": 10}}),
        )],
        &[],
    );
    let f = r.by_id("flood");
    assert_eq!(f.status, Status::Succeeded, "{}", f.message);
    assert_eq!(f.stdout, "x".repeat(1000));
    assert_eq!(f.stderr, "x".repeat(10));
    assert!(f.stdout_truncated && f.stderr_truncated);
}

#[test]
fn a_cpu_bound_guest_computes_the_right_answer() {
    use sha2::{Digest, Sha256};
    let d = Dir::new();
    let r = d.run_jobs(
        &[with(
            job("h", &guest("hashbench")),
            json!({"args": ["2", "3"]}),
        )],
        &[],
    );
    let h = r.by_id("h");
    assert_eq!(h.status, Status::Succeeded, "{}", h.message);
    let data: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut digest = [0u8; 32];
    for _ in 0..3 {
        let mut s = Sha256::new();
        s.update(digest);
        s.update(&data);
        digest = s.finalize().into();
    }
    assert_eq!(h.stdout.trim(), hex::encode(digest));
}
