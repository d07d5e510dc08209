//! The dashboard's HTML, written with maud (every value it inserts is escaped), and its
//! script and style, served by the binary itself: no build step, no CDN.

use maud::{DOCTYPE, Markup, html};
use wasmq_spec::control::{Heartbeat, WorkerState};

use wasmq_spec::{JobResult, Status};

use super::Snapshot;
use super::batches::{BatchDetail, BatchSummary};

/// Fetches the state fragment every 2 s and puts it in place: the server renders it (and
/// escapes it), so the script inserts no value of its own.
pub const SCRIPT: &str = r#"// wasmq dashboard: the state is rendered by the server; this only fetches it again.
"use strict";
const REFRESH_MS = 2000;
async function refresh() {
  const status = document.getElementById("live");
  try {
    const response = await fetch("/state", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    document.getElementById("state").innerHTML = await response.text();
    status.textContent = "live";
    status.className = "live";
  } catch (e) {
    status.textContent = `not updating: ${e.message}`;
    status.className = "stale";
  }
}
setInterval(refresh, REFRESH_MS);
"#;

/// The page's style.
pub const STYLE: &str = r#"body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #f7f8fa; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
h1 { font-size: 1.3rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
.muted { color: #687082; }
.live { color: #1a7f37; } .stale { color: #b42318; }
table { border-collapse: collapse; background: #fff; min-width: 40rem; box-shadow: 0 1px 2px #0001; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #e4e7ec; text-align: left; }
th { background: #eef1f5; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; }
.state-running { color: #1a7f37; } .state-draining { color: #b54708; }
.state-stopped { color: #687082; } .state-gone { color: #b42318; }
.problems { color: #b42318; }
a { color: #1849a9; }
.bar { display: inline-flex; width: 12rem; height: .8rem; background: #e4e7ec; border-radius: 3px; overflow: hidden; vertical-align: middle; }
.seg { display: block; height: 100%; }
.seg-succeeded { background: #2e9e4f; } .seg-failed, .seg-trapped { background: #d92d20; }
.seg-timed_out, .seg-fuel_exhausted, .seg-memory_exceeded, .seg-disk_exceeded { background: #f79009; }
.seg-rejected, .seg-internal_error { background: #7a2e0e; }
.seg-cancelled, .seg-expired { background: #98a2b3; }
.seg-dead { background: #101828; } .stuck { color: #b42318; }
.status-succeeded { color: #1a7f37; } .status-failed, .status-trapped, .status-internal_error { color: #b42318; }
pre { background: #fff; border: 1px solid #e4e7ec; padding: .6rem; overflow: auto; max-height: 30rem; }
"#;

/// The whole page: the header, then the state (fetched again by the script).
pub fn whole(s: &Snapshot, now_ms: u64) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "wasmq: " (s.prefix) }
                link rel="stylesheet" href="/dashboard.css";
                script src="/dashboard.js" defer {}
            }
            body {
                header {
                    h1 { "wasmq" }
                    span.muted { "prefix " code { (s.prefix) } " on " code { (s.broker) } }
                    span #live .live { "live" }
                }
                main #state { (state(s, now_ms)) }
            }
        }
    }
}

/// The part of the page that changes: queues, workers, dead letters.
pub fn state(s: &Snapshot, now_ms: u64) -> Markup {
    let count = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    html! {
        p.muted { "as of " (ago(now_ms, s.at_ms)) }
        @if !s.problems.is_empty() {
            ul.problems { @for p in &s.problems { li { (p) } } }
        }
        section #queues {
            h2 { "Queues" }
            table {
                thead { tr {
                    th { "queue" } th { "ready" } th { "unacked" } th { "consumers" }
                    th title="published to the queue, per second, over the last 10 s" { "in/s" }
                    th title="acked by its consumers, per second, over the last 10 s" { "acked/s" }
                } }
                tbody {
                    @for q in &s.queues {
                        tr data-queue=(q.name) {
                            td { code { (q.name) } }
                            td.n { (count(q.ready.map(u64::from))) }
                            td.n { (count(q.unacked)) }
                            td.n { (count(q.consumers.map(u64::from))) }
                            td.n.rate-in { (rate(q.rates.map(|r| r.0))) }
                            td.n.rate-acked { (rate(q.rates.map(|r| r.1))) }
                        }
                    }
                }
            }
        }
        section #workers {
            h2 { "Workers" }
            @if s.workers.is_empty() {
                p.muted { "no worker heard from in the last hour" }
            } @else {
                table {
                    thead { tr {
                        th { "worker" } th { "state" } th { "version" } th { "concurrency" }
                        th { "in flight" } th { "done" } th { "failed" } th { "last seen" }
                    } }
                    tbody {
                        @for w in &s.workers {
                            @let state = worker_state(w, now_ms);
                            tr data-worker=(w.worker) {
                                td { code { (w.worker) } }
                                td { span class={ "state state-" (state) } { (state) } }
                                td { (w.version) }
                                td.n { (w.concurrency) }
                                td.n { (w.in_flight) }
                                td.n { (w.done) }
                                td.n { (w.failed) }
                                td { (ago(now_ms, w.at_ms)) }
                            }
                        }
                    }
                }
            }
        }
        (batches_section(&s.batches, now_ms))
        section #dead {
            h2 { "Dead-letter queue" }
            @if s.dead.is_empty() {
                p.muted { "empty" }
            } @else {
                table {
                    thead { tr {
                        th { "job" } th { "batch" } th { "tenant" } th { "attempts" } th { "why" }
                    } }
                    tbody {
                        @for d in &s.dead {
                            tr {
                                td { code { (d.id) } }
                                td { (d.batch) }
                                td { (d.tenant) }
                                td.n { (count(d.attempts)) }
                                td { (d.reason) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `running`, `draining`, `stopped`, or `gone` for a worker silent too long.
fn worker_state(w: &Heartbeat, now_ms: u64) -> &'static str {
    if w.gone_at(now_ms) {
        return "gone";
    }
    match w.state {
        WorkerState::Running => "running",
        WorkerState::Draining => "draining",
        WorkerState::Stopped => "stopped",
    }
}

/// A status, coloured by its class.
fn status_badge(status: Status) -> Markup {
    html! { span class={ "status status-" (status.as_str()) } { (status.as_str()) } }
}

/// An exit status, or `-` when the guest did not exit.
fn exit_code(code: Option<i32>) -> String {
    code.map_or("-".to_owned(), |c| c.to_string())
}

/// Microseconds as `12.3 ms`.
fn millis(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// `3 s ago`.
fn ago(now_ms: u64, at_ms: u64) -> String {
    format!("{} s ago", now_ms.saturating_sub(at_ms) / 1000)
}

/// The batches' table: one row each, newest first, with a bar of its results by status.
pub fn batches_section(batches: &[BatchSummary], now_ms: u64) -> Markup {
    html! {
        section #batches {
            h2 { "Batches" }
            @if batches.is_empty() {
                p.muted { "no batch in the batches index" }
            } @else {
                table {
                    thead { tr {
                        th { "batch" } th { "tenant" } th { "submitted" } th { "progress" }
                        th { "done" } th { "failed" } th { "dead-lettered" } th { "finished" }
                        th { "jobs/s" }
                    } }
                    tbody {
                        @for b in batches {
                            tr data-batch=(b.name) {
                                td { a href={ "/batch/" (b.n) } { code { (b.name) } } }
                                td { (b.owner.as_deref().unwrap_or("-")) }
                                td { (ago(now_ms, b.submitted_s * 1000)) }
                                td { (progress(b)) }
                                td.n { (b.done) "/" (b.jobs) }
                                td.n { (b.failed) }
                                td.n.dead { (b.dead) }
                                td {
                                    @match b.finished_s {
                                        Some(s) => (ago(now_ms, s * 1000)),
                                        None if b.dead > 0 && b.done + b.dead >= b.jobs => {
                                            span.stuck title="wasmq dead requeue --batch BATCH, once their cause is fixed" {
                                                "waiting on " (b.dead) " dead-lettered"
                                            }
                                        }
                                        None => span.muted { "running" },
                                    }
                                }
                                td.n {
                                    @match b.rate() {
                                        Some(r) => (format!("{r:.1}")),
                                        None => "-",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A bar of a batch's results by status and of its dead-lettered jobs, as a share of its
/// jobs, and the percentage of its jobs with a result.
fn progress(b: &BatchSummary) -> Markup {
    let total = b.jobs.max(b.done).max(1) as f64;
    let pct = (b.done as f64 / total * 100.0).round() as u64;
    html! {
        span.bar title={ (pct) "%" } {
            @for (status, n) in &b.by_status {
                span class={ "seg seg-" (status.as_str()) }
                    style={ "width:" (format!("{:.2}", *n as f64 / total * 100.0)) "%" } {}
            }
            @if b.dead > 0 {
                span.seg.seg-dead
                    style={ "width:" (format!("{:.2}", b.dead as f64 / total * 100.0)) "%" } {}
            }
        }
        " " span.pct { (pct) "%" }
    }
}

/// One batch's page: its counts by status and by code, its failures grouped by code with
/// an example message, and its jobs, each linked to its whole result.
pub fn batch_page(b: &BatchDetail, now_ms: u64) -> Markup {
    page(
        &format!("batch {}", b.summary.name),
        html! {
            p { a href="/" { "← all" } }
            h1 { "Batch " code { (b.summary.name) } }
            p.muted {
                "submitted " (ago(now_ms, b.summary.submitted_s * 1000))
                @if let Some(owner) = &b.summary.owner { " by " code { (owner) } }
                ", stream " code { (b.summary.stream) }
            }
            p { (progress(&b.summary)) " " (b.summary.done) " of " (b.summary.jobs) " jobs have a result" }
            section #by-status {
                h2 { "By status" }
                table {
                    thead { tr { th { "status" } th { "jobs" } } }
                    tbody { @for (s, n) in &b.summary.by_status {
                        tr { td { (status_badge(*s)) } td.n { (n) } }
                    } }
                }
            }
            section #by-code {
                h2 { "By code" }
                table {
                    thead { tr { th { "code" } th { "jobs" } } }
                    tbody { @for (c, n, _) in &b.by_code {
                        tr { td { code { (c) } } td.n { (n) } }
                    } }
                }
            }
            section #failures {
                h2 { "Failures, by code" }
                @if b.failures.is_empty() {
                    p.muted { "none" }
                } @else {
                    table {
                        thead { tr { th { "code" } th { "jobs" } th { "for example" } } }
                        tbody { @for (c, n, example) in &b.failures {
                            tr data-code=(c) { td { code { (c) } } td.n { (n) } td { (example) } }
                        } }
                    }
                }
            }
            section #jobs {
                h2 { "Jobs" }
                table {
                    thead { tr {
                        th { "job" } th { "status" } th { "exit code" } th { "time" } th { "worker" }
                    } }
                    tbody { @for r in &b.jobs {
                        tr data-job=(r.id) {
                            td { a href={ "/batch/" (b.summary.n) "/job/" (encode(&r.id)) } { code { (r.id) } } }
                            td { (status_badge(r.status)) }
                            td.n { (exit_code(r.exit_code)) }
                            td.n { (millis(r.total_us)) }
                            td { (r.worker) }
                        }
                    } }
                }
                @if b.more > 0 { p.muted { "and " (b.more) " more" } }
            }
        },
    )
}

/// One job's whole result.
pub fn job_page(batch_n: u64, batch: &str, r: &JobResult) -> Markup {
    page(
        &format!("job {}", r.id),
        html! {
            p { a href={ "/batch/" (batch_n) } { "← batch " (batch) } }
            h1 { "Job " code { (r.id) } }
            table {
                tbody {
                    tr { th { "status" } td { (status_badge(r.status)) } }
                    tr { th { "code" } td { code { (r.code) } } }
                    tr { th { "message" } td { (r.message) } }
                    tr { th { "exit code" } td { (exit_code(r.exit_code)) } }
                    tr { th { "attempt" } td { (r.attempt) } }
                    tr { th { "worker" } td { (r.worker.as_deref().unwrap_or("-")) } }
                    tr { th { "time" } td { (millis(r.timings.total_us)) } }
                }
            }
            h2 { "stdout" @if r.stdout_truncated { " (truncated)" } }
            pre #stdout { (r.stdout) }
            h2 { "stderr" @if r.stderr_truncated { " (truncated)" } }
            pre #stderr { (r.stderr) }
        },
    )
}

/// A page of its own (a batch's, a job's): no refresh.
fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "wasmq: " (title) }
                link rel="stylesheet" href="/dashboard.css";
            }
            body { (body) }
        }
    }
}

/// Messages per second, to one decimal; `-` when unknown.
fn rate(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.1}"),
        _ => "-".to_owned(),
    }
}

/// A path segment: every byte but `A-Z a-z 0-9 - _` written `%XX`.
fn encode(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::dashboard::QueueRow;

    #[test]
    fn values_are_escaped_and_a_silent_worker_is_gone() {
        let beat = |worker: &str, at_ms: u64| Heartbeat {
            worker: worker.into(),
            version: "0.1.0".into(),
            wasmtime: "48.0.8".into(),
            concurrency: 2,
            in_flight: 0,
            done: 3,
            failed: 1,
            started_at_ms: 0,
            at_ms,
            interval_ms: 1000,
            state: WorkerState::Running,
        };
        let s = Snapshot {
            at_ms: 10_000,
            prefix: "p".into(),
            broker: "amqp://u@h".into(),
            queues: vec![QueueRow {
                name: "p.jobs".into(),
                ready: Some(4),
                unacked: None,
                consumers: Some(1),
                rates: Some((12.34, 0.0)),
            }],
            workers: vec![beat("<script>alert(1)</script>", 9_500), beat("w1", 1_000)],
            dead: Vec::new(),
            batches: Vec::new(),
            problems: Vec::new(),
        };
        let text = whole(&s, 10_000).into_string();
        assert!(!text.contains("<script>alert(1)"), "{text}");
        assert!(
            text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{text}"
        );
        assert!(text.contains(r#"<span class="state state-running">running</span>"#));
        assert!(text.contains(r#"<span class="state state-gone">gone</span>"#));
        assert!(text.contains(r#"<td class="n">4</td>"#), "{text}");
        assert!(
            text.contains(r#"<td class="n rate-in">12.3</td><td class="n rate-acked">0.0</td>"#),
            "{text}"
        );
    }
}
