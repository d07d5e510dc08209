//! A registry process for tests and benchmarks: the CNCF distribution registry (Debian's
//! `docker-registry`), on a free port of 127.0.0.1, with storage of its own. Included by
//! `tests/all` and `benches/load.rs` with `#[path]`; each uses a part of it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A registry process of this test's own.
pub struct TestRegistry {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub root: tempfile::TempDir,
    config: PathBuf,
}

impl TestRegistry {
    /// Starts a registry without auth.
    pub fn start() -> TestRegistry {
        TestRegistry::start_with(None)
    }

    /// Starts a registry that takes HTTP basic auth from `user` with `password`.
    pub fn start_with(auth: Option<(&str, &str)>) -> TestRegistry {
        assert!(
            Path::new(REGISTRY).is_file(),
            "these tests need the CNCF distribution registry at {REGISTRY}: run deploy/local-registry.sh (the README's test command does), or apt-get install docker-registry"
        );
        let root = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let auth_yaml = match auth {
            None => String::new(),
            Some((user, password)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect(
                        "htpasswd (Debian's apache2-utils; deploy/local-registry.sh installs it)",
                    );
                assert!(out.status.success());
                let file = root.path().join("htpasswd");
                std::fs::write(&file, out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: wasmq-test\n    path: {}\n",
                    file.display()
                )
            }
        };
        let config = root.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth_yaml}",
                root.path().join("data").display()
            ),
        )
        .unwrap();
        let mut r = TestRegistry {
            child: None,
            addr,
            root,
            config,
        };
        r.resume();
        r
    }

    /// Starts the registry process again (same address, same storage).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the registry is running");
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(&self.addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the registry did not answer on {} within 20 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the registry process (its storage stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `oci://ADDR/REPO`.
    pub fn url(&self, repo: &str) -> String {
        format!("oci://{}/{repo}", self.addr)
    }

    /// Where the registry keeps the bytes of blob `hex`.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.root
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
