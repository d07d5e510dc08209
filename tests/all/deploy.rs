//! The deploy files (Dockerfile, compose, Kubernetes manifests, dashboard) pass their
//! offline check against this build of `wasmq`: `deploy/check.sh`, which needs python3 and,
//! the first time, PyPI (it keeps its packages in `target/deploy-venv`).

use std::path::Path;
use std::process::Command;

#[test]
fn deploy_files_check_offline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("deploy/check.sh"))
        .arg(env!("CARGO_BIN_EXE_wasmq"))
        .current_dir(root)
        .output()
        .expect("running deploy/check.sh");
    assert!(
        out.status.success(),
        "deploy/check.sh failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
