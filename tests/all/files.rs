//! The job's `/work` directory, collected files, and operator volumes.

use serde_json::json;
use wasmq_spec::{FileContent, Status};

use crate::support::{Dir, guest, job, with};

#[test]
fn input_files_in_collected_files_out() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[with(
            job("wc", &guest("wordcount")),
            json!({"files": {"input.txt": "b a b\nc b\n"}, "collect": ["*.json", "missing.txt"]}),
        )],
        &[],
    );
    let wc = r.by_id("wc");
    assert_eq!(wc.status, Status::Succeeded, "{} {}", wc.message, wc.stderr);
    assert_eq!(wc.stdout, "2 lines, 5 words, 10 bytes\n");
    let Some(FileContent::Text(counts)) = wc.files.get("counts.json") else {
        panic!("counts.json not collected: {:?}", wc.files);
    };
    let v: serde_json::Value = serde_json::from_str(counts).unwrap();
    assert_eq!(v["top"][0], json!(["b", 3]));
    assert_eq!(wc.files.len(), 1);
}

#[test]
fn collected_files_are_capped() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[with(
            job("wc", &guest("wordcount")),
            json!({"files": {"input.txt": "x"}, "collect": ["input.txt", "counts.json"], "limits": {"output_bytes": 5}}),
        )],
        &[],
    );
    let wc = r.by_id("wc");
    assert_eq!(wc.files.keys().collect::<Vec<_>>(), ["input.txt"]);
    assert_eq!(wc.files_omitted, ["counts.json"]);
}

#[test]
fn each_job_gets_a_fresh_work_directory() {
    let d = Dir::new();
    let writer = with(
        job("w", &guest("fsprobe")),
        json!({"args": ["write:/work/left-behind"]}),
    );
    let reader = with(
        job("r", &guest("fsprobe")),
        json!({"args": ["list:/work", "read:/work/left-behind"]}),
    );
    let r = d.run_jobs(&[writer, reader], &["--concurrency", "1"]);
    assert_eq!(r.by_id("w").stdout, "write /work/left-behind ok\n");
    let out = &r.by_id("r").stdout;
    assert!(
        out.starts_with("list /work ok\n"),
        "the directory is empty: {out}"
    );
    assert!(out.contains("read /work/left-behind error"), "{out}");
}

#[test]
fn volumes_are_read_only_and_cannot_be_escaped() {
    let d = Dir::new();
    let vol = d.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("data.txt"), "shared data\n").unwrap();
    let secret = d.path().join("secret.txt");
    std::fs::write(&secret, "host secret\n").unwrap();
    std::os::unix::fs::symlink(&secret, vol.join("link")).unwrap();
    let probe = with(
        job("p", &guest("fsprobe")),
        json!({
            "volumes": {"/data": "shared"},
            "args": [
                "read:/data/data.txt", "write:/data/new.txt", "append:/data/data.txt",
                "rm:/data/data.txt", "read:/data/link", "read:/data/../secret.txt",
                "read:/work/../vol/data.txt", "list:/", "env",
            ],
            "env": {"ONLY": "this"},
        }),
    );
    let spec = format!("shared={}", vol.display());
    let r = d.run_jobs(&[probe], &["--volume", &spec]);
    let p = r.by_id("p");
    assert_eq!(p.status, Status::Succeeded, "{}", p.message);
    let lines: Vec<&str> = p.stdout.lines().collect();
    assert_eq!(lines[0], "read /data/data.txt ok 12 bytes: shared data");
    for (i, what) in [
        (1, "write /data/new.txt"),
        (2, "append /data/data.txt"),
        (3, "rm /data/data.txt"),
    ] {
        assert!(
            lines[i].starts_with(&format!("{what} error")),
            "read-only volume allowed: {}",
            lines[i]
        );
    }
    for (i, what) in [
        (4, "read /data/link"),
        (5, "read /data/../secret.txt"),
        (6, "read /work/../vol/data.txt"),
    ] {
        assert!(
            lines[i].starts_with(&format!("{what} error")),
            "escape allowed: {}",
            lines[i]
        );
    }
    // `/` is no way out either: the job's directory is also preopened as `.` (so that
    // relative paths resolve in it), which wasi-libc matches for `/` too, and it is empty.
    assert_eq!(
        lines[7], "list / ok",
        "/ must be the job's own empty directory"
    );
    assert_eq!(
        &lines[8..],
        ["env ONLY=this"],
        "the guest sees its own env, not the host's"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("data.txt")).unwrap(),
        "shared data\n"
    );
    assert!(!vol.join("new.txt").exists());
}

#[test]
fn a_writable_volume_accepts_writes() {
    let d = Dir::new();
    let vol = d.path().join("out");
    std::fs::create_dir(&vol).unwrap();
    let spec = format!("out={}:rw", vol.display());
    let r = d.run_jobs(
        &[with(
            job("p", &guest("fsprobe")),
            json!({"volumes": {"/out": "out"}, "args": ["write:/out/result.txt"]}),
        )],
        &["--volume", &spec],
    );
    assert_eq!(r.by_id("p").stdout, "write /out/result.txt ok\n");
    assert_eq!(
        std::fs::read_to_string(vol.join("result.txt")).unwrap(),
        "written by fsprobe\n"
    );
}

#[test]
fn a_disk_quota_stops_jobs_that_fill_work_and_the_next_job_starts_clean() {
    use crate::support::fixture;
    let d = Dir::new();
    let mib = 1u64 << 20;
    let jobs = [
        // Writes forever: stopped by the quota, long before its time limit.
        with(
            job("fill", &fixture("diskfill.wat")),
            json!({"limits": {"disk_bytes": 4 * mib, "timeout_ms": 20_000}}),
        ),
        // Writes 2 MiB and exits 0 at once: caught by the check at the end.
        with(
            job("burst", &fixture("diskburst.wat")),
            json!({"limits": {"disk_bytes": mib}}),
        ),
        // The same within its quota succeeds.
        with(
            job("fits", &fixture("diskburst.wat")),
            json!({"limits": {"disk_bytes": 3 * mib}}),
        ),
        // Creates files forever: stopped by the file count limit.
        with(
            job("many", &fixture("manyfiles.wat")),
            json!({"limits": {"files": 500, "timeout_ms": 20_000}}),
        ),
        // Input files count too.
        with(
            job("inputs", &guest("hello")),
            json!({"files": {"a": "1", "b": "2", "c": "3"}, "limits": {"files": 2}}),
        ),
        // Then, on the same reused directory: nothing is left of the others.
        with(
            job("after", &guest("fsprobe")),
            json!({"args": ["list:/work"]}),
        ),
    ];
    let started = std::time::Instant::now();
    let r = d.run_jobs(&jobs, &["-j", "1"]);
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(15),
        "the quota stops a job well before its 20 s time limit: {elapsed:?}"
    );
    for id in ["fill", "burst", "many", "inputs"] {
        let res = r.by_id(id);
        assert_eq!(
            (res.status, res.code.as_str()),
            (Status::DiskExceeded, "disk_limit"),
            "{id}: {} {}",
            res.message,
            r.stderr
        );
    }
    assert!(r.by_id("fill").message.contains("4194304 bytes"));
    assert!(r.by_id("many").message.contains("500 files"));
    assert_eq!(r.by_id("fits").status, Status::Succeeded);
    let after = r.by_id("after");
    assert_eq!(after.status, Status::Succeeded, "{}", after.stderr);
    assert_eq!(after.stdout, "list /work ok\n", "an empty /work");
}
