//! Criterion's figures, read back from what it wrote under `target/criterion`, for the
//! ratio tables the benches print after their own output.

use std::path::{Path, PathBuf};

/// The median of benchmark `id` (`group/name`) in nanoseconds, once criterion measured it.
pub fn median_ns(id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let text =
        std::fs::read_to_string(target.join("criterion").join(id).join("new/estimates.json"))
            .ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// `ns` in the unit that suits it.
#[allow(dead_code)]
pub fn fmt_time(ns: f64) -> String {
    match ns {
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}
