//! `wasmq snapshot`: a module pre-initialised once (wasmtime-wizer) runs as any module,
//! starting where its initializer left off.

use serde_json::{Value, json};
use wasmq_spec::Status;

use crate::support::{Dir, guest, with};

/// A job that runs the `primes` reactor's `run` on `module`.
fn primes_job(id: &str, module: Value) -> Value {
    json!({"id": id, "module": module, "invoke": "run", "args": ["1000", "50000000"]})
}

/// `wasmq snapshot ARGS...` in `d`: (exit code, stdout, stderr).
fn snapshot(d: &Dir, args: &[&str]) -> (i32, String, String) {
    let out = d.wasmq().arg("snapshot").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_snapshot_starts_where_its_initializer_left_off_and_runs_like_any_module() {
    let d = Dir::new();
    let base = guest("primes");
    let job_file = d.jobs_file(
        "init.json",
        &[json!({"module": {"path": base}, "args": ["ignored by the initializer"]})],
    );
    let out = d.path().join("primes.snap.wasm");
    let (code, stdout, stderr) = snapshot(
        &d,
        &[
            "--init",
            "wizer.initialize",
            "-o",
            out.to_str().unwrap(),
            job_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let digest = stdout
        .trim()
        .strip_prefix("sha256:")
        .expect(&stdout)
        .to_owned();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(wasmq_cache::Digest::of(&bytes).to_hex(), digest);

    // What it was made from, beside it and in the module store.
    let provenance: Value = serde_json::from_slice(
        &std::fs::read(d.path().join("primes.snap.wasm.provenance.json")).unwrap(),
    )
    .unwrap();
    let base_digest = wasmq_cache::Digest::of(&std::fs::read(&base).unwrap()).to_hex();
    assert_eq!(provenance["base"], json!(format!("sha256:{base_digest}")));
    assert_eq!(provenance["init"], json!("wizer.initialize"));
    assert!(
        provenance["inputs"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let stored = d
        .cache_dir()
        .join("modules")
        .join(&digest[..2])
        .join(format!("{digest}.provenance.json"));
    assert_eq!(
        std::fs::read(stored).unwrap(),
        std::fs::read(d.path().join("primes.snap.wasm.provenance.json")).unwrap()
    );

    // The base builds its table in every job; the snapshot, by path or by its sha256 in
    // the module store, does not, and answers the same.
    let r = d.run_jobs(
        &[
            primes_job("base", json!({"path": base})),
            primes_job("by-path", json!({"path": out})),
            primes_job("by-digest", json!({"sha256": digest})),
        ],
        &[],
    );
    for id in ["base", "by-path", "by-digest"] {
        let res = r.by_id(id);
        assert_eq!(res.status, Status::Succeeded, "{id}: {}", res.message);
        assert_eq!(res.stdout, "1000 168\n50000000 3001134\n", "{id}");
    }
    assert_eq!(r.by_id("base").stderr, "primes: building the sieve\n");
    assert_eq!(r.by_id("by-path").stderr, "");
    assert_eq!(r.by_id("by-digest").stderr, "");
    // The initializer is not exported any more.
    let again = d.run_jobs(
        &[with(
            primes_job("init", json!({"path": out})),
            json!({"invoke": "wizer.initialize"}),
        )],
        &[],
    );
    assert_eq!(again.by_id("init").code, "no_entry_point");
}

#[test]
fn a_snapshot_that_cannot_be_made_says_why() {
    let d = Dir::new();
    let primes = d.jobs_file(
        "primes.json",
        &[json!({"module": {"path": guest("primes")}})],
    );
    let component = d.jobs_file(
        "component.json",
        &[json!({"module": {"path": guest("hello-p2")}})],
    );
    let two = d.jobs_file(
        "two.jsonl",
        &[
            json!({"module": {"path": guest("primes")}}),
            json!({"module": {"path": guest("primes")}}),
        ],
    );
    let trapping = d.path().join("trap.wat");
    std::fs::write(
        &trapping,
        r#"(module (memory 1) (func (export "wizer.initialize") unreachable) (func (export "_start")))"#,
    )
    .unwrap();
    let trapping = d.jobs_file("trap.json", &[json!({"module": {"path": trapping}})]);
    let out = d.path().join("out.wasm");
    let out = out.to_str().unwrap();
    for (file, init, says) in [
        (
            &trapping,
            "wizer.initialize",
            "the initializer `wizer.initialize` did not finish",
        ),
        (&primes, "missing", "exports no initializer `missing`"),
        (
            &primes,
            "run",
            "is not a function taking and returning nothing",
        ),
        (&component, "wizer.initialize", "not a component"),
        (&two, "wizer.initialize", "holds 2 jobs"),
    ] {
        let (code, stdout, stderr) =
            snapshot(&d, &["--init", init, "-o", out, file.to_str().unwrap()]);
        assert_eq!(code, 2, "{init}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains(says),
            "{init}: {stderr:?} does not say {says:?}"
        );
    }
    assert!(!std::path::Path::new(out).exists(), "nothing is written");
}
