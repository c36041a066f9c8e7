//! The real Worker (edge/build), run in workerd through Miniflare by
//! `edge/test/worker.mjs`, on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::gateway::{ADMIN_KEY, CLAIM_SECRET};

/// A running Worker; stopped when dropped.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its base URL (`http://127.0.0.1:port`).
    pub url: String,
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Worker {
    /// Starts the built Worker with the harness's admin key and claim secret.
    pub fn start() -> Self {
        Self::start_with(CLAIM_SECRET)
    }

    /// Starts the built Worker with this claim secret ("": none configured).
    pub fn start_with(claim_secret: &str) -> Self {
        Self::start_with_args(&["--claim-secret", claim_secret])
    }

    /// Starts the built Worker with the harness's admin key and claim
    /// secret, and these arguments of `edge/test/worker.mjs` after them.
    pub fn start_with_args(args: &[&str]) -> Self {
        let root = root();
        let node = root.join("node_modules/.bin/node");
        assert!(
            root.join("edge/build/index.js").exists() && node.exists(),
            "the Worker is not built: run ./scripts/edge-setup.sh && ./edge/build.sh (./scripts/test.sh does both)"
        );
        let mut child = Command::new(node)
            .arg(root.join("edge/test/worker.mjs"))
            .args(["--admin-key", ADMIN_KEY, "--claim-secret", CLAIM_SECRET])
            .args(args)
            .current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("DO_NOT_TRACK", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node edge/test/worker.mjs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(url) = v["url"].as_str() {
                        let _ = tx.send(url.to_owned());
                    }
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the Worker did not start in Miniflare");
            }
        };
        Self { child, stdin, url }
    }

    /// A URL on the Worker.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The admin base URL (what `--admin` takes).
    pub fn admin_base(&self) -> String {
        format!("{}/_komainu", self.url)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin lets the launcher dispose of workerd cleanly.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
