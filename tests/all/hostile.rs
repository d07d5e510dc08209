//! Hostile guests: each one attacks a limit or the sandbox's walls and must end in the
//! status and code that docs/job-format.md documents, within its limit, leaving nothing
//! behind for the next job. The guests are small WAT modules in `tests/fixtures/hostile`
//! (each commented); compile bombs and big-frame modules are generated here.
//!
//! Every `wasmq run` here goes through [`run_within`], which kills the process and fails
//! the test when it has not finished by a deadline: a hang is a failure, never a stuck
//! suite. Tests that may leave a job directory behind (a killed or crashed run) point
//! `work_root` into their own temporary directory.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_spec::{JobResult, Status};

use crate::fleet::Fleet;
use crate::support::{Dir, Run, fixture, guest, job, parse, with};

/// A fixture from `tests/fixtures/hostile`.
fn hostile(name: &str) -> PathBuf {
    fixture(&format!("hostile/{name}.wat"))
}

/// `wasmq run FLAGS JOBS` with extra environment variables. Kills `wasmq` and fails the
/// test when it has not finished within `deadline`; returns the results and the wall
/// time of the whole run.
fn run_within(
    d: &Dir,
    name: &str,
    jobs: &[Value],
    flags: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> (Run, Duration) {
    let file = d.jobs_file(&format!("{name}.jsonl"), jobs);
    let mut cmd = d.wasmq();
    cmd.arg("run")
        .args(flags)
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn wasmq");
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for wasmq") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (out.join().unwrap(), err.join().unwrap());
            panic!(
                "{name}: `wasmq run` had not finished after {deadline:?}, so it was killed.\nresults so far:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (parse(output), elapsed)
}

/// Writes a config file for `d` (its job directories under `d/work`, plus `extra` TOML)
/// and returns the `--config` flag value.
fn config(d: &Dir, extra: &str) -> String {
    let root = d.path().join("work");
    std::fs::create_dir_all(&root).unwrap();
    let path = d.path().join("wasmq.toml");
    std::fs::write(
        &path,
        format!("work_root = {:?}\n{extra}", root.display().to_string()),
    )
    .unwrap();
    path.display().to_string()
}

/// Time the guest had: instantiate + run, in milliseconds.
fn guest_ms(r: &JobResult) -> u64 {
    (r.timings.instantiate_us + r.timings.run_us) / 1000
}

fn assert_outcome(r: &JobResult, status: Status, code: &str) {
    assert_eq!(
        (r.status, r.code.as_str()),
        (status, code),
        "{}: {}\nstdout: {}\nstderr: {}",
        r.id,
        r.message,
        r.stdout,
        r.stderr
    );
}

/// A job running `fsops.wat` with these operations (see the fixture for the notation).
fn fsops(id: &str, ops: &[[&str; 3]], extra: Value) -> Value {
    let args: Vec<&str> = ops.iter().flatten().copied().collect();
    with(
        with(job(id, &hostile("fsops")), json!({ "args": args })),
        extra,
    )
}

/// Lines of output, for comparing with what each operation must have returned.
fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

// WASI preview 1 errno values the fsops guest prints.
const EBADF: &str = "8";
const ELOOP: &str = "32";
const ENOENT: &str = "44";
const EPERM: &str = "63";

// 1. Time limits when the guest lives in host calls.

#[test]
fn hostile_loops_of_host_calls_still_time_out() {
    let d = Dir::new();
    let mut jobs: Vec<Value> = ["clock", "write", "random", "poll", "yield"]
        .iter()
        .map(|call| {
            with(
                job(call, &hostile("hostcall-loop")),
                json!({"args": [call], "limits": {"timeout_ms": 300}}),
            )
        })
        .collect();
    // Host calls cost almost no fuel: a budget that would last for hours of host calls
    // must not stop the time limit from working.
    jobs.push(with(
        job("write-fuel", &hostile("hostcall-loop")),
        json!({"args": ["write"], "limits": {"timeout_ms": 300, "fuel": 1_000_000_000_000u64}}),
    ));
    let (r, _) = run_within(&d, "hostcalls", &jobs, &[], &[], Duration::from_secs(60));
    assert_eq!(r.results.len(), jobs.len(), "{}", r.stderr);
    for x in &r.results {
        assert_outcome(x, Status::TimedOut, "timeout");
        assert!(
            guest_ms(x) <= 900,
            "{}: a 300 ms limit must stop a guest looping in host calls within 3x: {:?}",
            x.id,
            x.timings
        );
    }
}

// 2. Memory growth exactly at the limit; huge bulk memory operations.

#[test]
fn hostile_memory_grows_to_exactly_its_limit_and_not_a_page_more() {
    let d = Dir::new();
    let jobs = [
        // grow to 64 MiB, refused beyond, then fill and copy the whole 64 MiB
        with(
            job("edge", &hostile("grow-limit")),
            json!({"limits": {"memory_bytes": 64 << 20, "timeout_ms": 5000}}),
        ),
        // an initial memory (32 MiB) above the job's limit (1 MiB)
        with(
            job("initial", &fixture("bigmem.wat")),
            json!({"limits": {"memory_bytes": 1 << 20}}),
        ),
    ];
    let (r, _) = run_within(&d, "grow", &jobs, &[], &[], Duration::from_secs(60));
    let e = r.by_id("edge");
    // Refused growths that the guest handled: it exits 0 and that is success.
    assert_outcome(e, Status::Succeeded, "ok");
    assert_eq!(
        e.exit_code,
        Some(0),
        "exit status N = step N of grow-limit.wat broke"
    );
    assert_eq!(
        e.memory_peak_bytes,
        64 << 20,
        "the guest reached the limit exactly"
    );
    assert!(
        guest_ms(e) < 5000,
        "a fill and a copy of 64 MiB fit well within 5 s: {:?}",
        e.timings
    );
    let i = r.by_id("initial");
    assert_outcome(i, Status::MemoryExceeded, "memory_limit");
    assert!(i.memory_peak_bytes <= 1 << 20, "{}", i.memory_peak_bytes);
}

#[test]
fn hostile_initial_memory_above_the_workers_maximum_is_memory_exceeded() {
    // docs/job-format.md: `memory_exceeded` when "its initial memory is above the limit".
    // Here the limit is the worker's maximum (16 MiB) and the module asks for 32 MiB.
    let d = Dir::new();
    let cfg = config(
        &d,
        "[limits.default]\nmemory_bytes = 8388608\n[limits.maximum]\nmemory_bytes = 16777216\n",
    );
    let (r, _) = run_within(
        &d,
        "initial-max",
        &[job("initial", &fixture("bigmem.wat"))],
        &["--config", &cfg],
        &[],
        Duration::from_secs(60),
    );
    assert_outcome(r.by_id("initial"), Status::MemoryExceeded, "memory_limit");
}

// 3. Deep recursion with large frames.

/// A module whose `$f` keeps `n` distinct 8-byte loads live across a call to itself
/// (so each frame holds about 8n bytes of spills) and recurses `depth` times.
fn big_frames(n: usize, depth: u32) -> String {
    let loads: String = (0..n)
        .map(|i| format!("(i64.load offset={} (i32.const 0)) ", i * 8))
        .collect();
    let adds = " i64.add".repeat(n);
    format!(
        ";; {n} live i64 values across each recursive call, {depth} calls deep
(module
  (memory 1)
  (func $f (param $n i32) (result i64)
    (if (i32.eqz (local.get $n)) (then (return (i64.const 0))))
    {loads}
    (call $f (i32.sub (local.get $n) (i32.const 1)))
    {adds})
  (func (export \"_start\") (drop (call $f (i32.const {depth})))))
"
    )
}

#[test]
fn hostile_deep_recursion_with_large_frames_overflows_the_stack_cleanly() {
    let d = Dir::new();
    // ~16 KiB frames: 8 of them fit in the 512 KiB wasm stack, 10,000 do not (10,000
    // small frames would).
    let shallow = d.path().join("frames-shallow.wat");
    let deep = d.path().join("frames-deep.wat");
    std::fs::write(&shallow, big_frames(2000, 8)).unwrap();
    std::fs::write(&deep, big_frames(2000, 10_000)).unwrap();
    let (r, _) = run_within(
        &d,
        "frames",
        &[job("shallow", &shallow), job("deep", &deep)],
        &[],
        &[],
        Duration::from_secs(60),
    );
    assert_outcome(r.by_id("shallow"), Status::Succeeded, "ok");
    assert_outcome(r.by_id("deep"), Status::Trapped, "trap_stack_overflow");
}

// 4. Tables.

#[test]
fn hostile_table_growth_past_the_limit_is_refused() {
    let d = Dir::new();
    let jobs = [
        job("grow", &hostile("table-grow")),
        with(
            job("grow-trap", &hostile("table-grow")),
            json!({"args": ["trap"]}),
        ),
    ];
    let (r, _) = run_within(&d, "tables", &jobs, &[], &[], Duration::from_secs(60));
    // table.grow to exactly 100,000 works, beyond returns -1; a guest that copes succeeds
    let g = r.by_id("grow");
    assert_outcome(g, Status::Succeeded, "ok");
    assert_eq!(g.exit_code, Some(0), "exit status N = step N broke");
    // ... and one that then traps is `memory_exceeded` ("the memory (or table) limit")
    let t = r.by_id("grow-trap");
    assert_outcome(t, Status::MemoryExceeded, "memory_limit");
    assert!(t.message.contains("table growth"), "{}", t.message);
}

#[test]
fn hostile_initial_table_above_the_limit_is_memory_exceeded() {
    // A valid module whose table (200,000 elements) is above the sandbox's table limit
    // (100,000). docs/job-format.md gives the table limit the code `memory_limit`; the
    // module is valid WebAssembly, so `invalid_module` ("not valid WebAssembly") is wrong.
    let d = Dir::new();
    let (r, _) = run_within(
        &d,
        "table-initial",
        &[job("initial", &hostile("table-initial"))],
        &[],
        &[],
        Duration::from_secs(60),
    );
    let t = r.by_id("initial");
    assert!(
        !t.message.contains("not valid WebAssembly"),
        "a valid module is called invalid: {}",
        t.message
    );
    assert_outcome(t, Status::MemoryExceeded, "memory_limit");
}

// 5. Compile-time bombs and module size.

#[test]
fn hostile_twenty_thousand_functions_compile_in_bounded_time() {
    let d = Dir::new();
    let mut text = String::from(";; 20,000 functions\n(module\n");
    for i in 0..20_000 {
        text.push_str(&format!(
            "  (func $f{i} (param i32) (result i32) (i32.add (local.get 0) (i32.const {i})))\n"
        ));
    }
    text.push_str("  (func (export \"_start\") (drop (call $f19999 (i32.const 1)))))\n");
    let path = d.path().join("functions.wat");
    std::fs::write(&path, text).unwrap();
    let (r, _) = run_within(
        &d,
        "functions",
        &[with(
            job("many", &path),
            json!({"limits": {"timeout_ms": 1000}}),
        )],
        &[],
        &[],
        Duration::from_secs(60),
    );
    let m = r.by_id("many");
    assert_outcome(m, Status::Succeeded, "ok");
    // Measured: 2.7 s on an idle 2-core machine (debug test build; Cranelift at
    // opt-level 2). 20 s leaves room for a loaded machine.
    assert!(
        m.timings.compile_us < 20_000_000,
        "compiling 20,000 small functions took {} ms",
        m.timings.compile_us / 1000
    );
}

#[test]
fn hostile_compile_time_of_a_small_module_is_bounded() {
    // 100,000 nested empty blocks: 300 KB, 0.5% of the default max_module_bytes (64 MiB).
    // Compiling it is quadratic in the nesting (measured here: 10k blocks 0.35 s, 25k
    // 1.5 s, 50k 7.3 s, 100k 27 s, then the job ran and succeeded), and a module at the
    // size limit would take days, none of it under any job limit (timeout_ms covers
    // instantiate + run only). Expected: rejected at once, within 5 s in all.
    let d = Dir::new();
    let depth = 100_000;
    let text = format!(
        ";; {depth} nested blocks\n(module (func (export \"_start\") {}{}))\n",
        "block ".repeat(depth),
        "end ".repeat(depth)
    );
    let path = d.path().join("nested.wat");
    std::fs::write(&path, text).unwrap();
    let cfg = config(&d, "");
    let (r, wall) = run_within(
        &d,
        "nested",
        &[with(
            job("nested", &path),
            json!({"limits": {"timeout_ms": 1000}}),
        )],
        &["--config", &cfg],
        &[],
        Duration::from_secs(5),
    );
    // Refused before the compiler sees it.
    let n = r.by_id("nested");
    assert_outcome(n, Status::Rejected, "module_too_complex");
    assert!(
        n.message.contains("nests blocks more than"),
        "{}",
        n.message
    );
    assert!(wall < Duration::from_secs(5), "{wall:?}");
}

/// A valid module of about 150 KB (a 150,000-byte data segment).
fn module_of_150kb() -> Vec<u8> {
    let text = format!(
        "(module (memory (export \"memory\") 3) (data (i32.const 0) \"{}\") (func (export \"_start\")))",
        "x".repeat(150_000)
    );
    wat::parse_str(text).unwrap()
}

#[test]
fn hostile_an_inline_module_above_max_module_bytes_is_rejected() {
    use base64::Engine as _;
    let d = Dir::new();
    let cfg = config(&d, "max_module_bytes = 100000\n");
    let inline = base64::engine::general_purpose::STANDARD.encode(module_of_150kb());
    let (r, _) = run_within(
        &d,
        "too-large-inline",
        &[json!({"id": "inline", "module": {"base64": inline}})],
        &["--config", &cfg],
        &[],
        Duration::from_secs(60),
    );
    let i = r.by_id("inline");
    assert_outcome(i, Status::Rejected, "module_too_large");
    assert!(i.message.contains("100000"), "{}", i.message);
}

#[test]
fn hostile_a_stored_module_above_max_module_bytes_is_rejected() {
    // `max_module_bytes` is "Largest module accepted, in bytes (inline or from the store)"
    // (SandboxConfig). A module given by path (uploaded to the store, run by sha256 as a
    // worker would) must be held to it as well; the inline rejection even advises
    // uploading the module and referring to it by sha256.
    let d = Dir::new();
    let cfg = config(&d, "max_module_bytes = 100000\n");
    let path = d.path().join("big.wasm");
    std::fs::write(&path, module_of_150kb()).unwrap();
    let (r, _) = run_within(
        &d,
        "too-large-stored",
        &[job("stored", &path)],
        &["--config", &cfg],
        &[],
        Duration::from_secs(60),
    );
    assert_outcome(r.by_id("stored"), Status::Rejected, "module_too_large");
}

// 6. Output floods made of tiny writes.

#[test]
fn hostile_millions_of_one_byte_writes_keep_the_cap_and_the_time_limit() {
    let d = Dir::new();
    let (r, _) = run_within(
        &d,
        "tiny-writes",
        &[with(
            job("tiny", &hostile("flood-tiny")),
            json!({"limits": {"stdout_bytes": 1000, "stderr_bytes": 10, "timeout_ms": 1000}}),
        )],
        &[],
        &[],
        Duration::from_secs(60),
    );
    let t = r.by_id("tiny");
    // 2,000,000 host calls: the guest finishes or its time runs out; both are fine.
    assert!(
        matches!(
            (t.status, t.exit_code),
            (Status::Succeeded, Some(0)) | (Status::TimedOut, None)
        ),
        "{}: {}",
        t.status,
        t.message
    );
    assert!(guest_ms(t) <= 3000, "{:?}", t.timings);
    assert_eq!(t.stdout, "o".repeat(1000));
    assert_eq!(t.stderr, "e".repeat(10));
    assert!(t.stdout_truncated && t.stderr_truncated);
}

// 7. Escapes the guest builds itself: symlinks, hard links, renames, `..`, absolute paths.

#[test]
fn hostile_links_the_guest_makes_do_not_lead_out_of_work() {
    let d = Dir::new();
    let cfg = config(&d, "");
    // Job directories are d/work/wasmq-work-*/N, so from /work "../../.." is d itself.
    std::fs::write(d.path().join("secret.txt"), "host secret").unwrap();
    let vol = d.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("data.txt"), "shared data").unwrap();
    let spec = format!("ro={}", vol.display());
    let ops = [
        ["w3", "x", "hello"],
        ["s3", "/etc", "abs"],    // an absolute target is refused at creation
        ["s3", "../../..", "up"], // a relative one pointing out is created ...
        ["s3", ".", "self"],      // (as is one pointing inside)
        ["r3", "self/self/x", "-"],
        ["r3", "up/secret.txt", "-"], // ... but never followed out
        ["n3", "up", "-"],
        ["r3", "/etc/passwd", "-"],
        ["r3", "../secret.txt", "-"],
        ["r3", "self/../../secret.txt", "-"],
        ["w3", "up/secret.txt", "pwned"],
        ["l33", "up/secret.txt", "hard"], // hard links of files outside /work
        ["l33", "../secret.txt", "hard2"],
        ["l43", "data.txt", "stolen"], // from the read-only volume into /work
        ["r3", "stolen", "-"],
        ["m43", "data.txt", "moved"], // renaming out of the read-only volume
    ];
    let probe = fsops(
        "links",
        &ops,
        json!({"volumes": {"/data": "ro"}, "collect": ["up/*", "up/secret.txt", "self/x"]}),
    );
    let (r, _) = run_within(
        &d,
        "links",
        &[probe],
        &["--config", &cfg, "--volume", &spec],
        &[],
        Duration::from_secs(60),
    );
    let p = r.by_id("links");
    assert_outcome(p, Status::Succeeded, "ok");
    let want: Vec<String> = [
        "w3 0 0".to_owned(),
        format!("s3 {EPERM}"),
        "s3 0".to_owned(),
        "s3 0".to_owned(),
        "r3 0 0 hello".to_owned(),
        format!("r3 {EPERM}"),
        format!("n3 {ELOOP}"),
        format!("r3 {EPERM}"),
        format!("r3 {EPERM}"),
        format!("r3 {EPERM}"),
        format!("w3 {EPERM}"),
        format!("l33 {EPERM}"),
        format!("l33 {EPERM}"),
        format!("l43 {EPERM}"),
        format!("r3 {ENOENT}"),
        format!("m43 {EPERM}"),
    ]
    .into();
    assert_eq!(lines(&p.stdout), want);
    // collect never follows the guest's symlinks, not even the one that stays inside
    // /work: the patterns name paths through links, so nothing is returned
    assert!(p.files.is_empty(), "{:?}", p.files.keys());
    assert!(p.files_omitted.is_empty(), "{:?}", p.files_omitted);
    assert_eq!(
        std::fs::read_to_string(d.path().join("secret.txt")).unwrap(),
        "host secret"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("data.txt")).unwrap(),
        "shared data"
    );
    let names: Vec<_> = std::fs::read_dir(&vol)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["data.txt"]);
}

#[test]
fn hostile_read_only_volume_refuses_every_kind_of_write() {
    let d = Dir::new();
    let vol = d.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    let data = vol.join("data.txt");
    std::fs::write(&data, "shared data").unwrap();
    let before = std::fs::metadata(&data).unwrap().modified().unwrap();
    let spec = format!("ro={}", vol.display());
    let ops = [
        ["r4", "data.txt", "-"],
        ["t4", "data.txt", "-"],        // O_TRUNC
        ["W4", "data.txt", "XXXX"],     // write rights, no O_TRUNC/O_CREAT
        ["w4", "data.txt", "x"],        // O_CREAT|O_TRUNC over it
        ["x4", "data.txt", "-"],        // opened read-only, then fd_write
        ["z4", "data.txt", "-"],        // opened read-only, then fd_filestat_set_size(0)
        ["i4", "data.txt", "-"],        // path_filestat_set_times
        ["k4", "newdir", "-"],          // path_create_directory
        ["s4", "data.txt", "alias"],    // path_symlink
        ["m44", "data.txt", "renamed"], // rename inside the volume
        ["m43", "data.txt", "moved"],   // rename into /work
        ["l43", "data.txt", "linked"],  // hard link into /work
        ["r4", "../vol/data.txt", "-"], // out of the volume and back
        ["r4", "/data/data.txt", "-"],  // absolute
    ];
    let probe = fsops("ro", &ops, json!({"volumes": {"/data": "ro"}}));
    let (r, _) = run_within(
        &d,
        "ro",
        &[probe],
        &["--volume", &spec],
        &[],
        Duration::from_secs(60),
    );
    let p = r.by_id("ro");
    assert_outcome(p, Status::Succeeded, "ok");
    let want: Vec<String> = [
        "r4 0 0 shared data".to_owned(),
        format!("t4 {EPERM}"),
        format!("W4 {EPERM}"),
        format!("w4 {EPERM}"),
        format!("x4 0 {EBADF}"),
        format!("z4 0 {EPERM}"),
        format!("i4 {EPERM}"),
        format!("k4 {EPERM}"),
        format!("s4 {EPERM}"),
        format!("m44 {EPERM}"),
        format!("m43 {EPERM}"),
        format!("l43 {EPERM}"),
        format!("r4 {EPERM}"),
        format!("r4 {EPERM}"),
    ]
    .into();
    assert_eq!(lines(&p.stdout), want);
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "shared data");
    assert_eq!(
        std::fs::metadata(&data).unwrap().modified().unwrap(),
        before
    );
    let names: Vec<_> = std::fs::read_dir(&vol)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["data.txt"]);
}

#[test]
fn hostile_collect_does_not_walk_symlink_loops_the_guest_left() {
    // The guest leaves /work/a -> . and /work/b -> . and asks to collect `**/*.out`. The
    // glob follows both links at every level (2^40 paths before ELOOP stops a path): the
    // host must not spend more than the job's limits on that, outside the guest's time.
    let d = Dir::new();
    let cfg = config(&d, "");
    let probe = fsops(
        "loops",
        &[["s3", ".", "a"], ["s3", ".", "b"]],
        json!({"collect": ["**/*.out"], "limits": {"timeout_ms": 500}}),
    );
    let (r, _) = run_within(
        &d,
        "loops",
        &[probe],
        &["--config", &cfg],
        &[],
        Duration::from_secs(10),
    );
    let p = r.by_id("loops");
    assert_outcome(p, Status::Succeeded, "ok");
    assert_eq!(lines(&p.stdout), ["s3 0", "s3 0"]);
    assert!(p.files.is_empty(), "{:?}", p.files.keys());
}

// 8. Very many files, very deep trees: the next job still gets an empty /work.

#[test]
fn hostile_a_hundred_thousand_files_are_gone_for_the_next_job() {
    let d = Dir::new();
    let cfg = config(&d, "");
    let jobs = [
        // The job asks for room for its files (`files`, `disk_bytes`: the /work quota,
        // which is not what this test is about).
        with(
            job("many", &hostile("manyfiles")),
            json!({"limits": {"timeout_ms": 2000, "files": 200_000, "disk_bytes": 1u64 << 30}}),
        ),
        with(
            job("next", &guest("fsprobe")),
            json!({"args": ["list:/work"]}),
        ),
    ];
    // One at a time: the next job takes the directory the first one filled.
    let (r, wall) = run_within(
        &d,
        "many",
        &jobs,
        &["--config", &cfg, "-j", "1"],
        &[],
        Duration::from_secs(60),
    );
    let m = r.by_id("many");
    let thousands = m.stdout.matches('.').count();
    match m.status {
        Status::Succeeded => assert_eq!(thousands, 100, "all 100,000 files"),
        Status::TimedOut => assert!(thousands < 100, "{thousands}"),
        other => panic!("many: {other} ({}): {}", m.code, m.message),
    }
    assert!(guest_ms(m) <= 6000, "{:?}", m.timings);
    assert!(thousands > 0, "the guest created at least 1,000 files");
    let next = r.by_id("next");
    assert_outcome(next, Status::Succeeded, "ok");
    assert_eq!(
        next.stdout, "list /work ok\n",
        "the next job's /work is empty"
    );
    eprintln!(
        "many files: {thousands}k files created, whole run {wall:?} (removing them: {} ms)",
        (m.timings.total_us - m.timings.resolve_us - m.timings.instantiate_us - m.timings.run_us)
            / 1000
    );
}

#[test]
fn hostile_a_deep_directory_tree_does_not_crash_the_runner() {
    // 18,000 nested directories with 200-byte names (made in about 5 s here; the guest
    // holds one fd at a time; the job asks the /work quota for room for them). Emptying
    // /work after the job must cope with any depth: a recursive removal on a 2 MiB
    // runtime thread overflows its stack (measured: fine at 12,000 levels, abort at
    // 16,000) and takes the whole process down, with every job in it.
    let d = Dir::new();
    let cfg = config(&d, "");
    let jobs = [
        with(
            job("deep", &hostile("deepdirs")),
            json!({"args": ["18000"], "limits": {"timeout_ms": 60_000, "files": 100_000, "disk_bytes": 1u64 << 30}}),
        ),
        with(
            job("next", &guest("fsprobe")),
            json!({"args": ["list:/work"]}),
        ),
    ];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_within(
            &d,
            "deep",
            &jobs,
            &["--config", &cfg, "-j", "1"],
            &[],
            Duration::from_secs(120),
        )
    }));
    // Whatever happened, remove what a crashed run left: `rm -rf` copes with any depth,
    // while the TempDir's own removal (recursive) would overflow this thread's stack.
    let _ = std::process::Command::new("rm")
        .arg("-rf")
        .arg(d.path().join("work"))
        .status();
    let (r, _) = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(
        r.results.len() == 2,
        "wasmq exited with {} after {} result(s); stderr:\n{}",
        r.code,
        r.results.len(),
        r.stderr
    );
    // A tree nested past what the host can measure (its paths are longer than PATH_MAX)
    // is over the disk limit: it must not pass for a small one.
    let deep = r.by_id("deep");
    assert_outcome(deep, Status::DiskExceeded, "disk_limit");
    assert!(
        deep.message.contains("cannot be measured"),
        "{}",
        deep.message
    );
    let next = r.by_id("next");
    assert_eq!(
        next.stdout, "list /work ok\n",
        "the next job's /work is empty"
    );
}

// 9. Environment, clocks and randomness.

#[test]
fn hostile_the_guest_sees_only_its_own_env_and_real_clocks_and_randomness() {
    let d = Dir::new();
    let jobs = [
        with(
            job("with-env", &hostile("envclock")),
            json!({"env": {"A": "1", "B": "two"}}),
        ),
        job("no-env", &hostile("envclock")),
    ];
    let canary = "WASMQ_SECRET_CANARY";
    let (r, _) = run_within(
        &d,
        "env",
        &jobs,
        &[],
        &[(canary, "canary-4f1d2e"), ("WASMQ_TEST_OTHER", "other-77")],
        Duration::from_secs(60),
    );
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut randoms = BTreeSet::new();
    for (id, env) in [
        ("with-env", vec!["env A=1", "env B=two"]),
        ("no-env", vec![]),
    ] {
        let x = r.by_id(id);
        assert_outcome(x, Status::Succeeded, "ok");
        assert!(
            !x.stdout.contains("CANARY")
                && !x.stdout.contains("canary")
                && !x.stdout.contains("other-77"),
            "{id}: a host variable reached the guest: {}",
            x.stdout
        );
        let out = lines(&x.stdout);
        assert_eq!(out.len(), env.len() + 4, "{}", x.stdout);
        assert_eq!(
            &out[..env.len()],
            env.as_slice(),
            "{id}: only the job's env"
        );
        let realtime: u128 = out[env.len()]
            .strip_prefix("realtime ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{id}: {}", out[env.len()]));
        assert!(
            realtime.abs_diff(now_ns) < 300 * 1_000_000_000,
            "{id}: the guest's realtime clock is the host's: {realtime} vs {now_ns}"
        );
        assert_eq!(out[env.len() + 1], "monotonic ok");
        for line in &out[env.len() + 2..] {
            let hex = line.strip_prefix("random ").unwrap();
            assert_eq!(hex.len(), 32, "{line}");
            assert_ne!(hex, "0".repeat(32));
            randoms.insert(hex.to_owned());
        }
    }
    assert_eq!(randoms.len(), 4, "random bytes never repeat: {randoms:?}");
}

// 10. proc_exit with odd codes.

fn exit_jobs(codes: &[&str]) -> Vec<Value> {
    codes
        .iter()
        .map(|c| with(job(c, &hostile("exit-code")), json!({"args": [c]})))
        .collect()
}

#[test]
fn hostile_proc_exit_codes_up_to_255_are_exit_statuses() {
    let d = Dir::new();
    let codes = ["0", "1", "125", "126", "255"];
    let (r, _) = run_within(
        &d,
        "exits",
        &exit_jobs(&codes),
        &[],
        &[],
        Duration::from_secs(60),
    );
    let z = r.by_id("0");
    assert_outcome(z, Status::Succeeded, "ok");
    assert_eq!(z.exit_code, Some(0));
    for c in &codes[1..] {
        let x = r.by_id(c);
        // a non-zero exit status: `failed`, `exit_nonzero`, the status in `exit_code`
        assert_eq!(
            (x.status, x.code.as_str(), x.exit_code),
            (Status::Failed, "exit_nonzero", Some(c.parse().unwrap())),
            "proc_exit({c}): {}",
            x.message
        );
    }
}

#[test]
fn hostile_proc_exit_codes_above_255_are_never_success() {
    // WASI's exit status is a u32; wasmq reports it as given (as an i32, so 0xffffffff is
    // -1), never reduced to 8 bits: 256 must above all not read as 0 (256 & 0xff).
    let d = Dir::new();
    let codes = ["256", "4294967295"];
    let (r, _) = run_within(
        &d,
        "exits-wide",
        &exit_jobs(&codes),
        &[],
        &[],
        Duration::from_secs(60),
    );
    for c in codes {
        let x = r.by_id(c);
        assert_ne!(x.status, Status::Succeeded, "proc_exit({c})");
        assert_ne!(x.exit_code, Some(0), "proc_exit({c})");
        assert_eq!(
            (x.status, x.code.as_str(), x.exit_code),
            (
                Status::Failed,
                "exit_nonzero",
                Some(c.parse::<u32>().unwrap() as i32)
            ),
            "proc_exit({c}): {}",
            x.message
        );
    }
}

// 11. Partial output on both streams, however the guest ends.

#[test]
fn hostile_partial_stdout_and_stderr_are_kept_when_the_guest_dies() {
    let d = Dir::new();
    let jobs = [
        with(job("div", &hostile("partial")), json!({"args": ["div"]})),
        with(
            job("timeout", &hostile("partial")),
            json!({"args": ["loop"], "limits": {"timeout_ms": 300}}),
        ),
        with(
            job("fuel", &hostile("partial")),
            json!({"args": ["loop"], "limits": {"fuel": 1_000_000}}),
        ),
    ];
    let (r, _) = run_within(&d, "partial", &jobs, &[], &[], Duration::from_secs(60));
    for (id, status, code) in [
        ("div", Status::Trapped, "trap_integer_division_by_zero"),
        ("timeout", Status::TimedOut, "timeout"),
        ("fuel", Status::FuelExhausted, "out_of_fuel"),
    ] {
        let x = r.by_id(id);
        assert_outcome(x, status, code);
        assert_eq!(x.stdout, "partial stdout\n", "{id}");
        assert_eq!(x.stderr, "partial stderr\n", "{id}");
        assert!(!x.stdout_truncated && !x.stderr_truncated);
    }
    assert!(guest_ms(r.by_id("timeout")) <= 900);
}

// 12. Imports the sandbox does not have.

#[test]
fn hostile_imports_the_sandbox_does_not_provide_are_rejected() {
    let d = Dir::new();
    let cases = [
        ("import-other-module", "wasi_unstable::fd_write"),
        ("import-wrong-signature", "wasi_snapshot_preview1::fd_write"),
        ("import-unknown-wasi", "wasi_snapshot_preview1::sock_open"),
        ("import-host-memory", "env::memory"),
    ];
    let jobs: Vec<Value> = cases.iter().map(|(f, _)| job(f, &hostile(f))).collect();
    let (r, _) = run_within(&d, "imports", &jobs, &[], &[], Duration::from_secs(60));
    for (id, import) in cases {
        let x = r.by_id(id);
        assert_outcome(x, Status::Rejected, "unknown_import");
        assert!(x.message.contains(import), "{id}: {}", x.message);
    }
}

// 13. Isolation between jobs that reuse pooled slots and /work directories.

/// `tests/fixtures/hostile/NAME.wat` made into a distinct module (`variant` = `n`).
fn variant(d: &Dir, name: &str, n: u32) -> PathBuf {
    let text = std::fs::read_to_string(hostile(name)).unwrap();
    let marker = "(i32.const 0)) ;; variant";
    assert!(text.contains(marker));
    let path = d.path().join(format!("{name}-{n}.wat"));
    std::fs::write(
        &path,
        text.replace(marker, &format!("(i32.const {n})) ;; variant")),
    )
    .unwrap();
    path
}

#[test]
fn hostile_jobs_on_reused_slots_see_nothing_of_earlier_jobs() {
    // One job at a time (-j 1): 8 pooled slots, one /work directory reused. The scanners
    // after A1 are 8 distinct modules: the first 7 take the unused slots, the 8th must
    // reuse one (wasmtime evicts the least recently used: A1's). B, A2's own module,
    // gets A2's slot by module affinity, after A2 trapped.
    let d = Dir::new();
    let probe = hostile("isolation");
    let secret_env = json!({"SECRET_ENV": "hunter2"});
    let mut jobs = vec![
        with(job("plant", &probe), json!({"args": ["plant"]})),
        with(
            job("A1", &probe),
            json!({"args": ["w"], "env": secret_env.clone()}),
        ),
    ];
    for n in 1..=8 {
        jobs.push(with(
            job(&format!("C{n}"), &variant(&d, "isolation", n)),
            json!({"args": ["scan"], "env": {"C": n.to_string()}}),
        ));
    }
    jobs.push(with(
        job("A2", &probe),
        json!({"args": ["wt"], "env": secret_env.clone()}),
    ));
    jobs.push(with(
        job("B", &probe),
        json!({"args": ["scan"], "env": {"B": "1"}, "files": {"input.txt": "in"}}),
    ));
    let (r, _) = run_within(
        &d,
        "isolation",
        &jobs,
        &["-j", "1"],
        &[],
        Duration::from_secs(60),
    );
    // The scanner can see a pattern when there is one.
    let p = r.by_id("plant");
    assert_outcome(p, Status::Succeeded, "ok");
    assert!(
        p.stdout.contains("nonzero 1 first 5242880\n"),
        "{}",
        p.stdout
    );
    let a1 = r.by_id("A1");
    assert_outcome(a1, Status::Succeeded, "ok");
    assert_eq!(a1.stdout, "env SECRET_ENV=hunter2\n");
    assert_outcome(
        r.by_id("A2"),
        Status::Trapped,
        "trap_unreachable_code_reached",
    );
    let mut scanners: Vec<(String, Vec<String>)> = (1..=8)
        .map(|n| {
            (
                format!("C{n}"),
                vec!["file .".into(), "file ..".into(), format!("env C={n}")],
            )
        })
        .collect();
    scanners.push((
        "B".into(),
        vec![
            "file .".into(),
            "file ..".into(),
            "file input.txt".into(),
            "env B=1".into(),
        ],
    ));
    for (id, rest) in scanners {
        let s = r.by_id(&id);
        assert_outcome(s, Status::Succeeded, "ok");
        let mut want = vec!["pages 1".to_owned(), "nonzero 0 first -".to_owned()];
        want.extend(rest);
        let mut got: Vec<String> = lines(&s.stdout).into_iter().map(String::from).collect();
        // /work's entries come in directory order
        if got.len() > 3 {
            let end = got.len() - 1;
            got[2..end].sort();
        }
        assert_eq!(got, want, "{id} saw something of an earlier job");
        assert!(!s.stdout.contains("hunter2") && !s.stdout.contains("secret"));
    }
}

#[test]
fn hostile_function_jobs_on_reused_slots_see_nothing_of_earlier_jobs() {
    let d = Dir::new();
    let probe = hostile("isolation-fn");
    let f = |id: &str, path: &Path, input: &str| {
        with(job(id, path), json!({"kind": "function", "input": input}))
    };
    let mut jobs = vec![
        f("plant", &probe, "p"),
        f("W1", &probe, "w"),
        f("S1", &probe, "s"),
    ];
    for n in 1..=8 {
        jobs.push(f(&format!("V{n}"), &variant(&d, "isolation-fn", n), "s"));
    }
    jobs.push(f("W2", &probe, "w"));
    jobs.push(f("S2", &probe, "s"));
    let (r, _) = run_within(
        &d,
        "isolation-fn",
        &jobs,
        &["-j", "1"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(r.by_id("plant").output.as_deref(), Some("dirty"));
    for id in ["W1", "W2"] {
        assert_eq!(r.by_id(id).output.as_deref(), Some("written"), "{id}");
    }
    let mut ids: Vec<String> = (1..=8).map(|n| format!("V{n}")).collect();
    ids.extend(["S1".into(), "S2".into()]);
    for id in ids {
        let s = r.by_id(&id);
        assert_outcome(s, Status::Succeeded, "ok");
        assert_eq!(s.output.as_deref(), Some("clean"), "{id}");
    }
}

// 14. The worker's memory comes back after a batch of hostile jobs.

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn hostile_worker_memory_returns_to_baseline_after_a_hostile_batch() {
    let mut f = Fleet::new("hostile-rss");
    f.start_worker(2, &[]);
    let pid = f.workers[0].child.id();
    let big = json!({"limits": {"memory_bytes": 256 << 20, "timeout_ms": 5000}});
    let batch = |tag: &str, n: usize| -> Vec<Value> {
        let mut jobs = Vec::new();
        for i in 0..n {
            jobs.push(with(
                job(&format!("{tag}-fill{i}"), &hostile("fill")),
                big.clone(),
            ));
            jobs.push(with(
                job(&format!("{tag}-grow{i}"), &hostile("grow-limit")),
                json!({"limits": {"memory_bytes": 64 << 20}}),
            ));
            jobs.push(job(&format!("{tag}-flood{i}"), &fixture("flood.wat")));
            jobs.push(with(
                job(&format!("{tag}-tiny{i}"), &hostile("flood-tiny")),
                json!({"limits": {"timeout_ms": 300}}),
            ));
            jobs.push(with(
                job(&format!("{tag}-files{i}"), &hostile("manyfiles")),
                json!({"limits": {"timeout_ms": 300}}),
            ));
        }
        jobs
    };
    // Warm-up: every module compiled and loaded, every kind of job run once.
    let warm = batch("warm", 1);
    let r = f.results(&f.submit(&warm), 120);
    assert_eq!(r.results.len(), warm.len(), "{}", r.stderr);
    std::thread::sleep(Duration::from_millis(500));
    let baseline = vm_rss_kib(pid);

    let jobs = batch("hot", 6);
    let r = f.results(&f.submit(&jobs), 180);
    assert_eq!(r.results.len(), jobs.len(), "{}", r.stderr);
    for x in r.results.iter().filter(|x| x.id.contains("-fill")) {
        assert_outcome(x, Status::Succeeded, "ok");
        assert_eq!(x.memory_peak_bytes, 256 << 20, "{} filled 256 MiB", x.id);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = vm_rss_kib(pid);
    // Six jobs each made 256 MiB resident. What may stay: the pool's kept-resident bytes
    // (4 MiB per memory and per table, for the slots used) and allocator slack.
    let bound = baseline + 64 * 1024;
    assert!(
        after <= bound,
        "worker RSS {after} KiB after the batch, baseline {baseline} KiB (bound +64 MiB)"
    );
    eprintln!("worker RSS: baseline {baseline} KiB, after the hostile batch {after} KiB");
}
