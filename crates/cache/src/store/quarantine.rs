//! Setting aside files that failed their check: `quarantine/<stamp>-<name>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Cache;

impl Cache {
    /// Where a file named `name` is set aside, under a name no other quarantined file has.
    pub(super) fn quarantine_path(&self, name: &str) -> PathBuf {
        self.root
            .join("quarantine")
            .join(format!("{}-{name}", unique_stamp()))
    }

    /// Moves a file that failed its check out of the way (deleting it if that fails).
    pub(super) fn quarantine(&self, path: &Path) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if fs::rename(path, self.quarantine_path(&name)).is_err() {
            let _ = fs::remove_file(path);
        }
        self.counters.quarantined.fetch_add(1, Ordering::Relaxed);
    }
}

/// Nanoseconds since the epoch: a prefix that keeps quarantined names apart.
fn unique_stamp() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
