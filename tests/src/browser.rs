//! Browser scenarios (`tests/browser/*.mjs`), run by Node in Debian's
//! Chromium (headless, through playwright-core).

use std::path::PathBuf;
use std::process::Command;

use crate::worker::root;

/// Where a deployment's screenshots go (`target/ui-screenshots/{deployment}`).
pub fn shots(deployment: &str) -> PathBuf {
    root().join("target/ui-screenshots").join(deployment)
}

/// Runs `tests/browser/{script}` with `options` (JSON, its one argument);
/// panics with its output, naming `what`, when a step fails.
pub fn run(script: &str, options: &serde_json::Value, what: &str) {
    let root = root();
    let out = Command::new(root.join("node_modules/.bin/node"))
        .arg(root.join("tests/browser").join(script))
        .arg(options.to_string())
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!("run node tests/browser/{script} (./scripts/test.sh installs node_modules and chromium): {e}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what}:\n{text}");
}
