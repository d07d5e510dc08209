//! The artifact cache: disk hits across runs, tamper detection, single-flight.

use std::path::PathBuf;

use serde_json::json;
use wasmq_spec::{CacheOutcome, Status};

use crate::support::{Dir, fixture, guest, job, with};

/// Every `.cwasm` artifact under the cache root.
fn artifacts(d: &Dir) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![d.cache_dir().join("artifacts")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "cwasm") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn second_run_loads_from_disk_without_compiling() {
    let d = Dir::new();
    let jobs: Vec<_> = (0..6)
        .map(|i| {
            with(
                job(
                    &format!("j{i}"),
                    &guest(if i % 2 == 0 { "hello" } else { "wordcount" }),
                ),
                json!({"files": {"input.txt": "a b"}}),
            )
        })
        .collect();
    let first = d.run_jobs(&jobs, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.count_cache(CacheOutcome::Compiled),
        2,
        "one compile per distinct module"
    );

    let second = d.run_jobs(&jobs, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        second.count_cache(CacheOutcome::Compiled),
        0,
        "no compile on the second run"
    );
    assert_eq!(
        second.count_cache(CacheOutcome::HitDisk),
        2,
        "each module loaded from disk once"
    );
    assert_eq!(
        second.count_cache(CacheOutcome::HitMemory),
        4,
        "the rest from the hot set"
    );
}

#[test]
fn corrupt_and_truncated_artifacts_are_detected_and_recompiled() {
    let d = Dir::new();
    let jobs = [job("h", &fixture("hello.wat"))];
    assert_eq!(
        d.run_jobs(&jobs, &[]).by_id("h").cache,
        Some(CacheOutcome::Compiled)
    );
    let [artifact] = artifacts(&d).try_into().expect("one artifact");

    // Flip one byte in the middle: same size, different content.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let r = d.run_jobs(&jobs, &[]);
    let h = r.by_id("h");
    assert_eq!(
        (h.status, h.cache),
        (Status::Succeeded, Some(CacheOutcome::Compiled)),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("integrity check"),
        "a warning is logged: {}",
        r.stderr
    );

    // Cut the file short.
    let bytes = std::fs::read(&artifact).unwrap();
    std::fs::write(&artifact, &bytes[..bytes.len() / 3]).unwrap();
    let h = d.run_jobs(&jobs, &[]);
    assert_eq!(h.by_id("h").cache, Some(CacheOutcome::Compiled));
    assert_eq!(h.by_id("h").stdout, "hello from wasm\n");

    let quarantined = std::fs::read_dir(d.cache_dir().join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(
        quarantined, 4,
        "both bad artifacts and their metadata were set aside"
    );
    // And the recompiled artifact is good again.
    assert_eq!(
        d.run_jobs(&jobs, &[]).by_id("h").cache,
        Some(CacheOutcome::HitDisk)
    );
}

#[test]
fn many_concurrent_jobs_on_a_new_module_compile_it_once() {
    let d = Dir::new();
    let jobs: Vec<_> = (0..64)
        .map(|i| {
            with(
                job(&format!("j{i}"), &guest("jsonx")),
                json!({"stdin": "[{\"a\":1}]"}),
            )
        })
        .collect();
    let r = d.run_jobs(&jobs, &["--concurrency", "64"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.results.len(), 64);
    assert_eq!(r.count_status(Status::Succeeded), 64);
    assert_eq!(
        r.count_cache(CacheOutcome::Compiled),
        1,
        "exactly one compile"
    );
    assert_eq!(r.count_cache(CacheOutcome::HitMemory), 63);
    assert_eq!(artifacts(&d).len(), 1);
}

#[test]
fn prewarm_then_run_is_a_disk_hit_and_cache_commands_report() {
    let d = Dir::new();
    let out = d
        .wasmq()
        .args(["prewarm"])
        .arg(guest("hello"))
        .arg(fixture("exit7.wat"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with("sha256:") && l.contains("compiled in")),
        "{text}"
    );

    let r = d.run_jobs(&[job("h", &guest("hello"))], &[]);
    assert_eq!(r.by_id("h").cache, Some(CacheOutcome::HitDisk));

    let stats = d
        .wasmq()
        .args(["cache", "stats", "--json"])
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        (s["modules"].as_u64(), s["artifacts"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );

    let verify = d.wasmq().args(["cache", "verify"]).output().unwrap();
    assert!(verify.status.success());
    let [a, _] = artifacts(&d).try_into().unwrap();
    std::fs::write(&a, b"garbage").unwrap();
    let verify = d.wasmq().args(["cache", "verify"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1), "a bad artifact fails verify");
    assert!(String::from_utf8_lossy(&verify.stdout).contains("quarantined"));

    let gc = d
        .wasmq()
        .args(["cache", "gc", "--max-bytes", "0", "--json"])
        .output()
        .unwrap();
    let g: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(
        (g["removed"].as_u64(), g["remaining_bytes"].as_u64()),
        (Some(1), Some(0)),
        "{g}"
    );
}

#[test]
fn a_prewarm_of_a_bad_module_fails_with_its_reason() {
    let d = Dir::new();
    let out = d
        .wasmq()
        .args(["prewarm"])
        .arg(fixture("invalid.wasm"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid.wasm") && err.contains("not valid WebAssembly"),
        "{err}"
    );
}
