//! `wasmq dashboard` on a real RabbitMQ, looked at through HTTP and in a real browser
//! (Debian's headless Chromium, installed by `deploy/local-browser.sh`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::fleet::{Fleet, http_get, wait_until};
use crate::support::{fixture, job};

/// A running `wasmq dashboard`, killed when dropped.
struct Dashboard {
    child: Child,
    addr: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dashboard {
    /// Starts it on a free port of 127.0.0.1 for `f`'s prefix; waits for its address.
    fn start(f: &Fleet) -> Dashboard {
        Dashboard::start_with(f, &[])
    }

    /// As [`Dashboard::start`], with more flags (another broker user's URL, say).
    fn start_with(f: &Fleet, extra: &[&str]) -> Dashboard {
        let mut child = f
            .wasmq()
            .args(["dashboard", "--addr", "127.0.0.1:0"])
            .args(&f.broker_flags)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the dashboard exited before saying its address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("dashboard on http://") {
                break rest.trim_end_matches('/').to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Dashboard { child, addr }
    }

    fn get(&self, path: &str) -> String {
        let (code, body) = http_get(&self.addr, path);
        assert_eq!(code, 200, "{path}: {body}");
        body
    }
}

/// Debian's Chromium, or a loud failure saying how to get it.
fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "/usr/bin/chromium is missing: run deploy/local-browser.sh (the README's test command does)"
    );
    path
}

/// Loads `url` in headless Chromium for `budget_ms` of virtual time (the page's timers
/// run), saves a screenshot to `shot`, and returns the DOM as it then was and the
/// browser's console lines.
fn browse(url: &str, shot: &Path, budget_ms: u64) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,900",
            &format!("--virtual-time-budget={budget_ms}"),
            &format!("--user-data-dir={}", profile.path().display()),
        ]);
    };
    let mut dump = Command::new(chromium());
    common(&mut dump);
    let out = dump.arg("--dump-dom").arg(url).output().unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_owned)
        .collect();
    let mut shoot = Command::new(chromium());
    common(&mut shoot);
    let shot_out = shoot
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot_out.stderr)
    );
    (String::from_utf8(out.stdout).unwrap(), console)
}

#[test]
fn the_dashboard_shows_queues_workers_and_dead_letters_live_in_a_browser() {
    let mut f = Fleet::new("dashboard");
    f.broker_flags = vec!["--delivery-limit".into(), "2".into()];
    // The module store entry of fib.wat is unreadable: every attempt is a host fault, and
    // the job ends in the dead-letter queue.
    let (module, _, _) = f.poison("fib.wat");
    let beat = ["--heartbeat-interval-secs", "1"];
    f.start_worker(2, &beat);
    f.start_worker(1, &beat);
    let (w0, w1) = (f.workers[0].id.clone(), f.workers[1].id.clone());
    let poisoned = f.submit(&[json!({"id": "poison", "module": module})]);
    let batch = f.submit(&[
        job("fine", &fixture("noop.wat")),
        job("x1", &fixture("exit7.wat")),
        job("x2", &fixture("exit7.wat")),
        job("hi", &fixture("hello.wat")),
    ]);
    wait_until(
        "the poison job in the dead-letter queue",
        Duration::from_secs(60),
        || f.ready("jobs.dead") == 1,
    );

    let d = Dashboard::start(&f);
    let row_state = |html: &str, worker: &str| -> Option<String> {
        let at = html.find(&format!("data-worker=\"{worker}\""))?;
        let rest = &html[at..];
        let s = rest.find("state state-")? + "state state-".len();
        Some(rest[s..].split('"').next()?.to_owned())
    };
    let mut state = String::new();
    wait_until(
        "both workers running and the dead letter on the page",
        Duration::from_secs(30),
        || {
            state = d.get("/state");
            row_state(&state, &w0).as_deref() == Some("running")
                && row_state(&state, &w1).as_deref() == Some("running")
                && state.contains("poison")
        },
    );
    assert!(state.contains("delivery_limit"), "{state}");
    // Three attempts (the delivery limit is 2), however often the page has read the
    // dead-letter queue since.
    assert!(
        state.contains("<td class=\"n\">3</td><td>delivery_limit"),
        "{state}"
    );
    // The batch reaches 100%, with its failures.
    let row_of = |html: &str, batch: &str| -> Option<String> {
        let at = html.find(&format!("data-batch=\"{batch}\""))?;
        let end = html[at..].find("</tr>")? + at;
        Some(html[at..end].to_owned())
    };
    let batch_row = |html: &str| row_of(html, &batch);
    // The poisoned batch's one job is dead-lettered: the batch says what it waits on.
    wait_until(
        "the poisoned batch waiting on its dead letter",
        Duration::from_secs(30),
        || {
            state = d.get("/state");
            row_of(&state, &poisoned).is_some_and(|row| {
                row.contains("<td class=\"n dead\">1</td>")
                    && row.contains("waiting on 1 dead-lettered")
            })
        },
    );
    wait_until("the batch at 100%", Duration::from_secs(30), || {
        state = d.get("/state");
        batch_row(&state).is_some_and(|r| r.contains("4/4") && r.contains("100%"))
    });
    let row = batch_row(&state).unwrap();
    let link = row
        .split("href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a link to the batch's page")
        .to_owned();
    let page = d.get(&link);
    let failures = page
        .split("data-code=\"exit_nonzero\"")
        .nth(1)
        .expect("the failures grouped by code");
    assert!(
        failures.contains("<td class=\"n\">2</td>")
            && failures.contains("the guest exited with status 7"),
        "{page}"
    );
    let job_link = format!("{link}/job/hi");
    assert!(page.contains(&format!("href=\"{job_link}\"")), "{page}");
    let job = d.get(&job_link);
    assert!(job.contains("hello from wasm"), "{job}");
    assert!(state.contains(&format!("{}.jobs", f.prefix)), "{state}");
    let page = d.get("/");
    assert!(page.contains("<script src=\"/dashboard.js\""), "{page}");
    assert!(!page.contains("guest:guest"), "the password is never shown");
    assert!(d.get("/dashboard.js").contains("fetch(\"/state\""));

    // Rates: another batch goes through the jobs queue, and its row shows messages in
    // and acked per second (the broker's averages over its statistics interval).
    let jobs_q = format!("{}.jobs", f.prefix);
    let rate = |html: &str, class: &str| -> Option<f64> {
        let at = html.find(&format!("data-queue=\"{jobs_q}\""))?;
        let rest = &html[at..];
        let cell = format!("class=\"n {class}\">");
        let s = rest.find(&cell)? + cell.len();
        rest[s..].split('<').next()?.parse().ok()
    };
    let more: Vec<_> = (0..40)
        .map(|i| crate::support::job(&format!("more{i}"), &fixture("noop.wat")))
        .collect();
    let second = f.submit(&more);
    let (mut went_in, mut acked) = (false, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(went_in && acked) {
        let state = d.get("/state");
        went_in |= rate(&state, "rate-in").is_some_and(|r| r > 0.0);
        acked |= rate(&state, "rate-acked").is_some_and(|r| r > 0.0);
        assert!(
            std::time::Instant::now() < deadline,
            "the jobs queue's rates never went above zero (in: {went_in}, acked: {acked}): {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(f.results(&second, 60).results.len(), more.len());

    // A worker killed goes quiet, and the page, already open, shows it gone.
    f.workers[1].kill_with("KILL");
    wait_until("w1 gone on the page", Duration::from_secs(30), || {
        row_state(&d.get("/state"), &w1).as_deref() == Some("gone")
    });
    assert!(
        d.get("/state")
            .contains("<td class=\"n\">3</td><td>delivery_limit"),
        "the attempts of a dead letter do not grow as the page reads it"
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let (dom, console) = browse(&format!("http://{}/", d.addr), &shot, 5000);
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert_eq!(row_state(&dom, &w1).as_deref(), Some("gone"), "{dom}");
    assert_eq!(row_state(&dom, &w0).as_deref(), Some("running"), "{dom}");
    assert!(
        dom.contains("poison") && dom.contains("delivery_limit"),
        "{dom}"
    );
    // The script ran and found the server: the page says it is live.
    assert!(
        dom.contains(">live</span>") && !dom.contains("not updating"),
        "{dom}"
    );
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    // The batch's page and a job's page, in the browser too.
    let (dom, console) = browse(
        &format!("http://{}{link}", d.addr),
        &shots.join("batch.png"),
        2000,
    );
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(dom.contains("data-code=\"exit_nonzero\""), "{dom}");
    let (dom, console) = browse(
        &format!("http://{}{job_link}", d.addr),
        &shots.join("job.png"),
        2000,
    );
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(dom.contains("hello from wasm"), "{dom}");
}

#[test]
fn a_tenants_dashboard_shows_its_own_batches_and_an_operators_shows_all() {
    use crate::isolation::Tenant;
    use crate::tenants::write_config;
    let mut f = Fleet::new("dashtenants");
    let (a, b) = (Tenant::create(&f, "da"), Tenant::create(&f, "db"));
    let cfg = write_config(
        &f,
        "",
        &format!("[tenants.\"{}\"]\n\n[tenants.\"{}\"]\n", a.name, b.name),
    );
    f.start_worker(2, &["--config", &cfg]);
    for (t, batch) in [(&a, "batch-a"), (&b, "batch-b")] {
        crate::fairshare::submit_as(&f, t, batch, &[job("hi", &fixture("hello.wat"))]);
    }
    let done = |html: &str, batch: &str| {
        html.split(&format!("data-batch=\"{batch}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .is_some_and(|row| row.contains("1/1"))
    };
    // A's dashboard: A's batch, finished, and no trace of B's.
    let mine = Dashboard::start_with(&f, &["--amqp-url", &a.url()]);
    let mut state = String::new();
    wait_until(
        "A's batch on A's dashboard",
        Duration::from_secs(30),
        || {
            state = mine.get("/state");
            done(&state, "batch-a")
        },
    );
    assert!(!state.contains("batch-b"), "{state}");
    assert!(!state.contains(&b.name), "{state}");
    // Its job's page, read through A's own route.
    let link = state
        .split("data-batch=\"batch-a\"")
        .nth(1)
        .and_then(|r| r.split("href=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        mine.get(&format!("{link}/job/hi"))
            .contains("hello from wasm")
    );
    // The operator's: both.
    let all = Dashboard::start(&f);
    wait_until(
        "both batches on the operator's dashboard",
        Duration::from_secs(30),
        || {
            state = all.get("/state");
            done(&state, "batch-a") && done(&state, "batch-b")
        },
    );
}
