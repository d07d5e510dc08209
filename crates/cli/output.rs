//! Printing results (JSONL on stdout) and the summary (stderr).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use wasmq_spec::{JobResult, Status};

/// Prints results as they arrive and counts them by status.
#[derive(Default)]
pub struct Printer {
    counts: BTreeMap<Status, u64>,
}

impl Printer {
    /// Writes one result as one JSON line.
    pub fn print(&mut self, result: &JobResult) -> std::io::Result<()> {
        *self.counts.entry(result.status).or_default() += 1;
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, result)?;
        out.write_all(b"\n")
    }

    /// Results printed so far.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// True when every result so far succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.counts.keys().all(|s| *s == Status::Succeeded)
    }

    /// `12 jobs in 0.41 s (29 jobs/s): 10 succeeded, 1 failed, 1 timed_out`
    pub fn summary(&self, elapsed: Duration) -> String {
        let total = self.total();
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        format!(
            "{total} job{} in {secs:.2} s ({rate:.0} jobs/s): {}",
            if total == 1 { "" } else { "s" },
            if parts.is_empty() {
                "nothing to do".to_owned()
            } else {
                parts.join(", ")
            }
        )
    }
}
