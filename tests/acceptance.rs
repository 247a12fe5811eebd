//! Acceptance tests: the real binary against a real OAuth provider (oidc-provider, node) in real
//! headless Chromium. The scenarios live in `tests/e2e/*.test.mjs`; this test only checks the
//! prerequisites, installs the node dependencies from the lockfile when needed and runs
//! `node --test --test-concurrency=1` on them with `CONNECT_APPLIANCE_BIN` pointing at the binary
//! cargo just built. It never skips: a missing `node` or `/usr/bin/chromium` is a failure.
//!
//! Everything runs on 127.0.0.1. Screenshots and failure logs go to `target/e2e/`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Whole-suite watchdog; the suite normally takes well under a minute.
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

fn require_tool(cmd: &str, arg: &str, hint: &str) -> String {
    let out = Command::new(cmd)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("acceptance tests need `{cmd}` but it could not be run ({e}). {hint}")
        });
    assert!(
        out.status.success(),
        "acceptance tests need `{cmd}`, but `{cmd} {arg}` failed ({}): {}. {hint}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_with_timeout(child: &mut std::process::Child, what: &str, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("waiting for child process") {
            Some(status) => return status,
            None if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {timeout:?}; killed it");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn npm_ci_if_needed(dir: &Path) {
    // npm writes node_modules/.package-lock.json after a successful install.
    if dir
        .join("node_modules")
        .join(".package-lock.json")
        .is_file()
    {
        return;
    }
    require_tool("npm", "--version", "Install Node.js 20+ with npm.");
    eprintln!(
        "acceptance: node_modules missing, running `npm ci` in {}",
        dir.display()
    );
    let mut child = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning npm ci");
    let status = wait_with_timeout(&mut child, "npm ci", Duration::from_secs(300));
    assert!(
        status.success(),
        "`npm ci` in {} failed: {status}",
        dir.display()
    );
}

#[test]
fn e2e_real_provider_in_headless_chromium() {
    let node_version = require_tool("node", "--version", "Install Node.js 20 or newer.");
    let major: u32 = node_version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "acceptance tests need Node.js >= 20, found {node_version}"
    );
    assert!(
        Path::new(CHROMIUM).is_file(),
        "acceptance tests need {CHROMIUM}: apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"
    );

    let dir = e2e_dir();
    npm_ci_if_needed(&dir);

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("reading tests/e2e")
        .map(|entry| entry.expect("reading tests/e2e entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.mjs"))
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.test.mjs files in {}",
        dir.display()
    );

    let bin = env!("CARGO_BIN_EXE_connect-appliance");
    eprintln!(
        "acceptance: node {node_version}, {} test files, CONNECT_APPLIANCE_BIN={bin}",
        files.len()
    );
    let started = Instant::now();
    // Files are listed explicitly (instead of passing the directory) so that node 20 and node 22+
    // (where positional arguments are globs) behave the same. stdout/stderr are inherited: the
    // node runner's output streams live.
    let mut child = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .args(&files)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CONNECT_APPLIANCE_BIN", bin)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning node --test");
    let status = wait_with_timeout(&mut child, "node --test", SUITE_TIMEOUT);
    eprintln!(
        "acceptance: node --test finished in {:.1?}: {status}",
        started.elapsed()
    );
    assert!(
        status.success(),
        "acceptance tests failed ({status}); see the output above and target/e2e/ for screenshots and FAIL-*.log"
    );
}
