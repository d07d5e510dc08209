//! One module per subcommand.

pub mod cache;
pub mod cancel;
pub mod config;
pub mod dashboard;
pub mod dead;
pub mod prewarm;
pub mod results;
pub mod run;
pub mod snapshot;
pub mod status;
pub mod submit;
pub mod worker;

/// Milliseconds since the Unix epoch: the clock of heartbeats.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
