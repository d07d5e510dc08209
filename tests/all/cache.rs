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

/// The artifact of the single module `path` compiled in `d`, with its metadata file.
fn artifact_of(d: &Dir, path: &std::path::Path) -> (PathBuf, PathBuf) {
    let bytes = std::fs::read(path).unwrap();
    let bytes = wat::parse_bytes(&bytes).unwrap();
    let hex = wasmq_cache::Digest::of(&bytes).to_hex();
    let found: Vec<PathBuf> = artifacts(d)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&hex))
        .collect();
    let [a] = found.try_into().expect("one artifact for the module");
    let mut meta = a.clone().into_os_string();
    meta.push(".meta");
    (a, PathBuf::from(meta))
}

#[test]
fn artifacts_are_authenticated_with_a_key_outside_the_cache() {
    let d = Dir::new();
    let hello = job("h", &fixture("hello.wat"));
    let noop = job("n", &fixture("noop.wat"));
    let r = d.run_jobs(&[hello.clone(), noop.clone()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // The key was generated beside the cache directory, private to its owner.
    let key = d.path().join("cache.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);

    // Someone with write access to the cache plants hello's compiled code under noop's
    // name, with metadata edited to match: the MAC binds the name, so it is refused.
    let (hello_art, hello_meta) = artifact_of(&d, &fixture("hello.wat"));
    let (noop_art, noop_meta) = artifact_of(&d, &fixture("noop.wat"));
    let noop_hex = noop_art.file_stem().unwrap().to_string_lossy().into_owned();
    let noop_hex = noop_hex.split('.').next().unwrap().to_owned();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hello_meta).unwrap()).unwrap();
    meta["module"] = json!(noop_hex);
    std::fs::write(&noop_meta, meta.to_string()).unwrap();
    std::fs::copy(&hello_art, &noop_art).unwrap();
    let r = d.run_jobs(std::slice::from_ref(&noop), &[]);
    let n = r.by_id("n");
    assert_eq!(
        (n.status, n.cache, n.stdout.as_str()),
        (Status::Succeeded, Some(CacheOutcome::Compiled), ""),
        "the planted code must not run: {}",
        r.stderr
    );
    assert!(r.stderr.contains("MAC does not match"), "{}", r.stderr);

    // An artifact tagged by another deployment's key (same bytes, valid metadata) is
    // refused too: the tag cannot be made without this key.
    let other = Dir::new();
    assert_eq!(other.run_jobs(std::slice::from_ref(&hello), &[]).code, 0);
    let (o_art, o_meta) = artifact_of(&other, &fixture("hello.wat"));
    std::fs::copy(&o_art, &hello_art).unwrap();
    std::fs::copy(&o_meta, &hello_meta).unwrap();
    let r = d.run_jobs(std::slice::from_ref(&hello), &[]);
    assert_eq!(
        r.by_id("h").cache,
        Some(CacheOutcome::Compiled),
        "{}",
        r.stderr
    );
    assert_eq!(r.by_id("h").stdout, "hello from wasm\n");

    // Metadata of another format (an older wasmq) is refused, not trusted.
    std::fs::write(
        &hello_meta,
        json!({"sha256": "00", "size": 1, "module": "x", "engine": "y", "kind": "cwasm"})
            .to_string(),
    )
    .unwrap();
    let r = d.run_jobs(std::slice::from_ref(&hello), &[]);
    assert_eq!(
        r.by_id("h").cache,
        Some(CacheOutcome::Compiled),
        "{}",
        r.stderr
    );

    // The key is configurable; with another key every artifact is recompiled once.
    let elsewhere = d.path().join("keys/wasmq.key");
    let flags = ["--artifact-key-file", elsewhere.to_str().unwrap()];
    let r = d.run_jobs(std::slice::from_ref(&hello), &flags);
    assert_eq!(
        r.by_id("h").cache,
        Some(CacheOutcome::Compiled),
        "{}",
        r.stderr
    );
    assert!(elsewhere.is_file());
    let r = d.run_jobs(std::slice::from_ref(&hello), &flags);
    assert_eq!(
        r.by_id("h").cache,
        Some(CacheOutcome::HitDisk),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unusable_cache_disk_degrades_to_compiling_in_memory() {
    let jobs = [job("h", &guest("hello")), job("n", &fixture("noop.wat"))];
    let expect_compiled = |r: &crate::support::Run| {
        assert_eq!(r.code, 0, "jobs must not fail: {}", r.stderr);
        assert_eq!(r.count_cache(CacheOutcome::Compiled), 2, "{}", r.stderr);
    };

    // The artifact directory cannot be created.
    let d = Dir::new();
    std::fs::create_dir_all(d.cache_dir()).unwrap();
    std::fs::write(d.cache_dir().join("artifacts"), b"not a directory").unwrap();
    for _ in 0..2 {
        let r = d.run_jobs(&jobs, &[]);
        expect_compiled(&r);
        assert!(r.stderr.contains("artifact cache disabled"), "{}", r.stderr);
    }

    // The key can be neither read nor created.
    let d = Dir::new();
    let r = d.run_jobs(&jobs, &["--artifact-key-file", "/dev/null/wasmq.key"]);
    expect_compiled(&r);
    assert!(r.stderr.contains("artifact cache disabled"), "{}", r.stderr);

    // A key file that is not a key is the operator's mistake: refused at start.
    let d = Dir::new();
    std::fs::write(d.path().join("cache.key"), "oops").unwrap();
    let r = d.run_jobs(&jobs, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not an artifact key"), "{}", r.stderr);
}

/// Runs `script` with `sh` in a new user and mount namespace (so it may mount a tmpfs
/// without privileges), with `$WASMQ` the binary and `$DIR` the test directory.
fn in_mount_namespace(d: &Dir, script: &str) {
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-ec", script])
        .env("WASMQ", env!("CARGO_BIN_EXE_wasmq"))
        .env("DIR", d.path())
        .env_remove("WASMQ_CONFIG")
        .env_remove("WASMQ_CACHE_DIR")
        .current_dir(d.path())
        .output()
        .expect("unshare (util-linux) runs");
    assert!(
        out.status.success(),
        "the namespace script failed (this test needs util-linux `unshare` and user \
         namespaces: sysctl kernel.unprivileged_userns_clone=1): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn results_in(path: std::path::PathBuf) -> Vec<wasmq_spec::JobResult> {
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_full_or_read_only_cache_disk_does_not_fail_jobs() {
    let d = Dir::new();
    d.jobs_file("a.jsonl", &[job("h", &guest("hello"))]);
    d.jobs_file(
        "b.jsonl",
        &[job("h", &guest("hello")), job("w", &fixture("noop.wat"))],
    );
    std::fs::create_dir_all(d.cache_dir()).unwrap();
    in_mount_namespace(
        &d,
        r#"
        cd "$DIR"
        # A disk with room for the directories and nothing more.
        mount -t tmpfs -o size=48k tmpfs cache
        "$WASMQ" run --cache-dir cache a.jsonl >full.out 2>full.err
        umount cache
        # A healthy disk that then turns read-only.
        mount -t tmpfs -o size=64m tmpfs cache
        "$WASMQ" run --cache-dir cache a.jsonl >warm.out 2>warm.err
        mount -o remount,ro cache
        "$WASMQ" run --cache-dir cache b.jsonl >ro.out 2>ro.err
        "#,
    );
    let err = |name: &str| std::fs::read_to_string(d.path().join(name)).unwrap();

    let full = results_in(d.path().join("full.out"));
    assert_eq!(full.len(), 1);
    assert_eq!(
        (full[0].status, full[0].cache),
        (Status::Succeeded, Some(CacheOutcome::Compiled)),
        "{}",
        err("full.err")
    );
    assert!(
        err("full.err").contains("could not store the compiled artifact"),
        "a full disk is logged: {}",
        err("full.err")
    );

    let ro = results_in(d.path().join("ro.out"));
    let by = |id: &str| ro.iter().find(|r| r.id == id).unwrap();
    assert_eq!(
        (by("h").status, by("h").cache),
        (Status::Succeeded, Some(CacheOutcome::HitDisk)),
        "artifacts on a read-only disk are still used: {}",
        err("ro.err")
    );
    assert_eq!(
        (by("w").status, by("w").cache),
        (Status::Succeeded, Some(CacheOutcome::Compiled)),
        "{}",
        err("ro.err")
    );
    assert!(
        err("ro.err").contains("could not store the compiled artifact"),
        "{}",
        err("ro.err")
    );
}

#[test]
fn two_processes_and_a_gc_sharing_one_cache_never_corrupt_it() {
    let d = Dir::new();
    let modules = [
        guest("hello"),
        guest("wordcount"),
        guest("jsonx"),
        fixture("hello.wat"),
        fixture("noop.wat"),
        fixture("exit7.wat"),
    ];
    let jobs: Vec<_> = (0..120)
        .map(|i| {
            with(
                job(&format!("j{i}"), &modules[i % modules.len()]),
                json!({"files": {"input.txt": "a b"}, "stdin": "[]"}),
            )
        })
        .collect();
    let file = d.jobs_file("shared.jsonl", &jobs);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A collector evicting everything, over and over, while both processes compile and
    // load.
    let gc = {
        let (stop, cache) = (stop.clone(), d.cache_dir());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmq"))
                    .env_remove("WASMQ_CONFIG")
                    .env("WASMQ_CACHE_DIR", &cache)
                    .args(["cache", "gc", "--max-bytes", "0"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        })
    };
    for round in 0..3 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                d.wasmq()
                    .args(["run", "-j", "4"])
                    .arg(&file)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let r = crate::support::parse(child.wait_with_output().unwrap());
            assert_eq!(r.results.len(), jobs.len(), "round {round}: {}", r.stderr);
            // exit7.wat fails by design; everything else succeeds.
            assert_eq!(
                r.count_status(Status::Failed),
                jobs.len() / modules.len(),
                "round {round}: {}",
                r.stderr
            );
            assert_eq!(
                r.count_status(Status::Succeeded),
                jobs.len() - jobs.len() / modules.len(),
                "round {round}: {}",
                r.stderr
            );
            assert!(
                !r.stderr.contains("integrity check"),
                "no process ever found a damaged artifact: {}",
                r.stderr
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(gc.join().unwrap() > 0, "the collector ran");
    let verify = d.wasmq().args(["cache", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert_eq!(
        std::fs::read_dir(d.cache_dir().join("quarantine"))
            .unwrap()
            .count(),
        0,
        "nothing was ever quarantined"
    );
}
