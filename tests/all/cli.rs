//! The command line: inputs, exit statuses, errors a person can act on.

use serde_json::json;
use wasmq_spec::Status;

use crate::support::{Dir, fixture, guest, job};

#[test]
fn a_malformed_line_is_rejected_by_file_and_line_and_the_rest_run() {
    let d = Dir::new();
    let good = job("good", &guest("hello"));
    let path = d.path().join("mixed.jsonl");
    std::fs::write(
        &path,
        format!("{good}\n{{\"id\": \"x\", \"module\": 42}}\nnot json at all\n"),
    )
    .unwrap();
    let r = d.run(&[path.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert_eq!(r.results.len(), 3);
    assert_eq!(r.by_id("good").status, Status::Succeeded);
    let x = r.by_id("x");
    assert_eq!(x.status, Status::Rejected);
    assert!(
        x.message
            .starts_with(&format!("{}:2: invalid job", path.display())),
        "{}",
        x.message
    );
    let anon = r
        .results
        .iter()
        .find(|r| r.id.is_empty())
        .expect("the unparseable line has a result");
    assert!(anon.message.contains(":3: invalid job"), "{}", anon.message);
    assert!(
        r.stderr.contains("3 jobs in"),
        "summary on stderr: {}",
        r.stderr
    );
}

#[test]
fn exit_status_zero_only_when_all_succeed() {
    let d = Dir::new();
    assert_eq!(d.run_jobs(&[job("a", &fixture("hello.wat"))], &[]).code, 0);
    assert_eq!(
        d.run_jobs(
            &[
                job("a", &fixture("hello.wat")),
                job("b", &fixture("exit7.wat"))
            ],
            &[]
        )
        .code,
        1
    );
}

#[test]
fn stdin_and_json_arrays_and_directories_are_inputs() {
    let d = Dir::new();
    let dir = d.path().join("batch");
    std::fs::create_dir(&dir).unwrap();
    let hello = fixture("hello.wat");
    std::fs::write(
        dir.join("a.json"),
        json!([job("a1", &hello), job("a2", &hello)]).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("b.jsonl"), format!("{}\n", job("b1", &hello))).unwrap();
    std::fs::write(dir.join("ignored.txt"), "not a job").unwrap();
    let r = d.run(&[dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut ids: Vec<&str> = r.results.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a1", "a2", "b1"]);

    use std::io::Write;
    let mut child = d
        .wasmq()
        .args(["run", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pretty = serde_json::to_string_pretty(&job("s", &hello)).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pretty.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"id\":\"s\""));
}

#[test]
fn path_modules_are_relative_to_the_job_file() {
    let d = Dir::new();
    std::fs::create_dir(d.path().join("mods")).unwrap();
    std::fs::copy(fixture("hello.wat"), d.path().join("mods/h.wat")).unwrap();
    std::fs::create_dir(d.path().join("jobs")).unwrap();
    let f = d.path().join("jobs/j.json");
    std::fs::write(
        &f,
        json!({"id": "rel", "module": {"path": "../mods/h.wat"}}).to_string(),
    )
    .unwrap();
    let missing = d.path().join("jobs/m.json");
    std::fs::write(
        &missing,
        json!({"id": "gone", "module": {"path": "nope.wasm"}}).to_string(),
    )
    .unwrap();
    let r = d.run(&[f.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(r.by_id("rel").status, Status::Succeeded);
    let gone = r.by_id("gone");
    assert_eq!(gone.status, Status::Rejected);
    assert!(gone.message.contains("nope.wasm"), "{}", gone.message);
}

#[test]
fn usage_and_config_errors_exit_2_with_a_reason() {
    let d = Dir::new();
    let out = d
        .wasmq()
        .args(["run", "no-such-file.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-file.jsonl"));

    let cfg = d.path().join("bad.toml");
    std::fs::write(&cfg, "concurency = 2\n").unwrap();
    let out = d
        .wasmq()
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("x.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("concurency"),
        "{err}"
    );

    let out = d
        .wasmq()
        .args(["run", "--volume", "v=/no/such/dir", "x.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
}

#[test]
fn config_file_limits_apply_and_the_maximum_rejects() {
    let d = Dir::new();
    let cfg = d.path().join("wasmq.toml");
    std::fs::write(
        &cfg,
        "[limits.default]\ntimeout_ms = 200\n[limits.maximum]\ntimeout_ms = 500\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_owned();
    let looping = job("loop", &fixture("loop.wat"));
    let mut over = job("over", &fixture("hello.wat"));
    over["limits"] = json!({"timeout_ms": 501});
    let r = d.run_jobs(&[looping, over], &["--config", &cfg]);
    let l = r.by_id("loop");
    assert_eq!(l.status, Status::TimedOut);
    assert!(l.message.contains("200 ms"), "{}", l.message);
    let o = r.by_id("over");
    assert_eq!(
        (o.status, o.code.as_str()),
        (Status::Rejected, "limit_above_maximum")
    );
    assert!(o.message.contains("500"), "{}", o.message);
}
