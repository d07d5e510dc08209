//! Existing WASI programs unmodified: the job's directory at any guest path (`work_dir`),
//! relative paths inside it whatever that path is, kinds read from the module, and a
//! component's own exit status.

use serde_json::json;
use wasmq_spec::{JobKind, Status};

use crate::support::{Dir, fixture, guest, job, with};

#[test]
fn relative_paths_resolve_in_the_job_directory_whatever_work_dir_is() {
    let d = Dir::new();
    let probe = |id: &str, work_dir: Option<&str>, args: &[&str]| {
        let mut j = with(
            job(id, &guest("fsprobe")),
            json!({"args": args, "files": {"input.txt": "from files\n", "data/x.txt": "x\n"}}),
        );
        if let Some(w) = work_dir {
            j["work_dir"] = json!(w);
        }
        j
    };
    let rel = [
        "read:input.txt",
        "read:data/x.txt",
        "write:out.txt",
        "list:.",
    ];
    let r = d.run_jobs(
        &[
            probe("default", None, &rel),
            probe("root", Some("/"), &rel),
            probe("home", Some("/home/user"), &rel),
            probe(
                "abs-default",
                None,
                &["read:/work/input.txt", "read:/input.txt"],
            ),
            probe(
                "abs-root",
                Some("/"),
                &[
                    "read:/input.txt",
                    "read:/data/x.txt",
                    "read:/work/input.txt",
                ],
            ),
            probe(
                "abs-home",
                Some("/home/user"),
                &["read:/home/user/input.txt", "read:/work/input.txt"],
            ),
        ],
        &[],
    );
    for id in ["default", "root", "home"] {
        let res = r.by_id(id);
        assert_eq!(res.status, Status::Succeeded, "{id}: {}", res.message);
        assert_eq!(
            res.stdout,
            "read input.txt ok 11 bytes: from files\n\
             read data/x.txt ok 2 bytes: x\n\
             write out.txt ok\n\
             list . ok data,input.txt,out.txt\n",
            "{id}"
        );
    }
    assert_eq!(
        r.by_id("abs-default").stdout,
        "read /work/input.txt ok 11 bytes: from files\n\
         read /input.txt ok 11 bytes: from files\n",
        "with the job directory also preopened as `.`, wasi-libc resolves `/x` in it too"
    );
    assert_eq!(
        r.by_id("abs-root").stdout,
        "read /input.txt ok 11 bytes: from files\n\
         read /data/x.txt ok 2 bytes: x\n\
         read /work/input.txt error: No such file or directory (os error 44)\n"
    );
    assert_eq!(
        r.by_id("abs-home").stdout,
        "read /home/user/input.txt ok 11 bytes: from files\n\
         read /work/input.txt error: No such file or directory (os error 44)\n"
    );
}

#[test]
fn files_collect_quota_and_isolation_hold_at_the_root() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[
            with(
                job("writer", &guest("fsprobe")),
                json!({
                    "work_dir": "/",
                    "args": ["write:/made.txt", "mkdir:/out/deep", "write:out/deep/y.txt", "list:/"],
                    "files": {"in.txt": "in\n"},
                    "collect": ["made.txt", "out/**"],
                }),
            ),
            with(
                job("filler", &fixture("diskfill.wat")),
                json!({"work_dir": "/", "limits": {"disk_bytes": 1_048_576}}),
            ),
        ],
        &["-j", "1"],
    );
    let w = r.by_id("writer");
    assert_eq!(w.status, Status::Succeeded, "{}", w.message);
    assert_eq!(
        w.stdout.lines().last(),
        Some("list / ok in.txt,made.txt,out")
    );
    assert_eq!(
        w.files.keys().collect::<Vec<_>>(),
        ["made.txt", "out/deep/y.txt"]
    );
    let f = r.by_id("filler");
    assert_eq!(
        (f.status, f.code.as_str()),
        (Status::DiskExceeded, "disk_limit"),
        "{}",
        f.message
    );
    // The next job on the same slot finds only its own input at `/`.
    let next = d.run_jobs(
        &[with(
            job("next", &guest("fsprobe")),
            json!({"work_dir": "/", "args": ["list:/"], "files": {"mine.txt": "m"}}),
        )],
        &["-j", "1"],
    );
    assert_eq!(next.by_id("next").stdout, "list / ok mine.txt\n");
}

#[test]
fn volumes_mount_beside_a_root_work_dir_and_the_longest_prefix_wins() {
    let d = Dir::new();
    let vol = d.path().join("ref");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("r.txt"), "reference\n").unwrap();
    let flag = format!("reference={}", vol.display());
    let r = d.run_jobs(
        &[
            with(
                job("vol", &guest("fsprobe")),
                json!({
                    "work_dir": "/",
                    "volumes": {"/data": "reference"},
                    "files": {"data/shadowed.txt": "s", "top.txt": "t"},
                    "args": ["read:/data/r.txt", "read:data/r.txt", "list:/data", "list:/", "write:/data/no"],
                }),
            ),
            with(
                job("inside", &guest("fsprobe")),
                json!({"work_dir": "/home/u", "volumes": {"/home/u/data": "reference"}}),
            ),
        ],
        &["--volume", &flag],
    );
    let v = r.by_id("vol");
    assert_eq!(v.status, Status::Succeeded, "{}", v.message);
    let lines: Vec<&str> = v.stdout.lines().collect();
    assert_eq!(lines[0], "read /data/r.txt ok 10 bytes: reference");
    assert_eq!(lines[1], "read data/r.txt ok 10 bytes: reference");
    assert_eq!(lines[2], "list /data ok r.txt");
    assert_eq!(lines[3], "list / ok data,top.txt");
    assert!(
        lines[4].starts_with("write /data/no error:"),
        "{}",
        lines[4]
    );
    let i = r.by_id("inside");
    assert_eq!(
        (i.status, i.code.as_str()),
        (Status::Rejected, "invalid_field")
    );
    assert!(i.message.contains("work_dir"), "{}", i.message);
}

#[test]
fn the_operator_sets_the_default_work_dir() {
    let d = Dir::new();
    let jobs = [
        with(
            job("plain", &guest("fsprobe")),
            json!({"args": ["read:/input.txt", "read:/work/input.txt"], "files": {"input.txt": "i"}}),
        ),
        with(
            job("own", &guest("fsprobe")),
            json!({"work_dir": "/work", "args": ["read:/work/input.txt"], "files": {"input.txt": "i"}}),
        ),
    ];
    let r = d.run_jobs(&jobs, &["--default-work-dir", "/"]);
    assert_eq!(
        r.by_id("plain").stdout,
        "read /input.txt ok 1 bytes: i\nread /work/input.txt error: No such file or directory (os error 44)\n"
    );
    assert_eq!(
        r.by_id("own").stdout,
        "read /work/input.txt ok 1 bytes: i\n"
    );
    let bad = d
        .wasmq()
        .args(["run", "--default-work-dir", "work"])
        .arg(d.jobs_file("j.jsonl", &jobs[..1]))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("default_work_dir \"work\""), "{stderr}");
}

#[test]
fn without_a_kind_the_module_decides_and_the_result_says_which_ran() {
    let d = Dir::new();
    let r = d.run_jobs(
        &[
            with(job("cmd", &guest("hello")), json!({"stdin": "in\n"})),
            with(job("comp", &guest("hello-p2")), json!({"args": ["p2"]})),
            with(job("fn", &guest("upper")), json!({"input": "abc"})),
            with(job("fn-noinput", &guest("upper")), json!({})),
            with(job("h", &guest("handler")), json!({"input": "abc"})),
            with(job("cmd-input", &guest("hello")), json!({"input": "abc"})),
            with(
                job("comp-export", &guest("hello-p2")),
                json!({"export": "f"}),
            ),
            job("nothing", &fixture("no-start.wat")),
            with(
                job("explicit", &guest("hello-p2")),
                json!({"kind": "command"}),
            ),
        ],
        &[],
    );
    let ran = |id: &str| {
        let res = r.by_id(id);
        (res.status, res.kind)
    };
    assert_eq!(ran("cmd"), (Status::Succeeded, Some(JobKind::Command)));
    assert!(r.by_id("cmd").stdout.contains("in\n"));
    assert_eq!(ran("comp"), (Status::Succeeded, Some(JobKind::Component)));
    assert_eq!(ran("fn"), (Status::Succeeded, Some(JobKind::Function)));
    assert_eq!(r.by_id("fn").output.as_deref(), Some("ABC"));
    assert_eq!(
        ran("fn-noinput"),
        (Status::Succeeded, Some(JobKind::Function)),
        "a plugin with no `_start` is a function even without input"
    );
    assert_eq!(ran("h"), (Status::Succeeded, Some(JobKind::Handler)));
    // Input says function: the command's missing plugin ABI is the reason, with the hint.
    let ci = r.by_id("cmd-input");
    assert_eq!(
        (ci.status, ci.code.as_str()),
        (Status::Rejected, "abi_mismatch")
    );
    assert!(
        ci.message.contains("run it as kind `command`"),
        "{}",
        ci.message
    );
    let ce = r.by_id("comp-export");
    assert_eq!(
        (ce.status, ce.code.as_str()),
        (Status::Rejected, "invalid_field"),
        "{}",
        ce.message
    );
    let n = r.by_id("nothing");
    assert_eq!(
        (n.status, n.code.as_str()),
        (Status::Rejected, "no_entry_point")
    );
    assert!(n.message.contains("nothing to run"), "{}", n.message);
    let e = r.by_id("explicit");
    assert_eq!(
        (e.status, e.code.as_str(), e.kind),
        (Status::Rejected, "wrong_kind", Some(JobKind::Command)),
        "an explicit kind is still checked"
    );
    assert!(e.message.contains("kind `component`"), "{}", e.message);
}

#[test]
fn a_components_exit_status_is_the_one_it_passed() {
    let d = Dir::new();
    let code = |id: &str, n: &str| with(job(id, &guest("exitcode-p2")), json!({"args": [n]}));
    let r = d.run_jobs(
        &[
            code("e7", "7"),
            code("e0", "0"),
            code("e255", "255"),
            job("core7", &fixture("exit7.wat")),
            // Rust's std exits through `wasi:cli/exit#exit`, which says only ok or err.
            with(
                job("std3", &guest("misbehave-p2")),
                json!({"args": ["exit", "3"]}),
            ),
        ],
        &[],
    );
    for (id, code) in [
        ("e7", 7),
        ("e0", 0),
        ("e255", 255),
        ("core7", 7),
        ("std3", 1),
    ] {
        let res = r.by_id(id);
        assert_eq!(res.exit_code, Some(code), "{id}: {}", res.message);
        let want = if code == 0 {
            Status::Succeeded
        } else {
            Status::Failed
        };
        assert_eq!(res.status, want, "{id}");
    }
}

#[test]
fn a_real_interpreter_runs_a_tenants_script_under_the_same_limits() {
    let js = guest("jsrun");
    let script = |id: &str, source: &str, extra: serde_json::Value| {
        let j = with(
            job(id, &js),
            json!({"work_dir": "/", "args": ["script.js"], "files": {"script.js": source}}),
        );
        with(j, extra)
    };
    let d = Dir::new();
    let r = d.run_jobs(
        &[
            script(
                "words",
                "const w = {}; for (const x of 'b a b c b a'.split(' ')) w[x] = (w[x] || 0) + 1;\n\
                 console.log(JSON.stringify(w));",
                json!({}),
            ),
            with(
                job("stdin", &js),
                json!({"stdin": "console.log([1, 2, 3].map(x => x * x).join(','));"}),
            ),
            script("throws", "throw new Error('no such thing');", json!({})),
            script(
                "loops",
                "while (true) {}",
                json!({"limits": {"timeout_ms": 300}}),
            ),
            script(
                "hoards",
                "const a = []; while (true) a.push(new Array(1e6).fill(1));",
                json!({"limits": {"memory_bytes": 16 << 20, "timeout_ms": 20_000}}),
            ),
        ],
        &[],
    );
    let words = r.by_id("words");
    assert_eq!(
        words.status,
        Status::Succeeded,
        "{} {}",
        words.message,
        words.stderr
    );
    assert_eq!(words.kind, Some(JobKind::Command));
    assert_eq!(words.stdout, "{\"b\":3,\"a\":2,\"c\":1}\n");
    let stdin = r.by_id("stdin");
    assert_eq!(
        stdin.status,
        Status::Succeeded,
        "{} {}",
        stdin.message,
        stdin.stderr
    );
    assert_eq!(stdin.stdout, "1,4,9\n");
    let throws = r.by_id("throws");
    assert_eq!((throws.status, throws.exit_code), (Status::Failed, Some(1)));
    assert!(throws.stderr.contains("no such thing"), "{}", throws.stderr);
    let loops = r.by_id("loops");
    assert_eq!(
        (loops.status, loops.code.as_str()),
        (Status::TimedOut, "timeout"),
        "{}",
        loops.message
    );
    let hoards = r.by_id("hoards");
    assert_eq!(
        (hoards.status, hoards.code.as_str()),
        (Status::MemoryExceeded, "memory_limit"),
        "{} {}",
        hoards.message,
        hoards.stderr
    );
    assert!(hoards.memory_peak_bytes <= 16 << 20);
}
