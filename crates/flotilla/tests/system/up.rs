//! `flotilla up` when instances cannot start: it reports each one as it exits, does not wait
//! for them to become ready, and fails once none is left.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

#[test]
fn instances_that_die_at_start_up_are_reported_at_once_and_up_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens there: every instance fails to connect to NATS and exits.
    let nats = format!("nats://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["up", "--port", "0", "--nats-url", &nats, "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flotilla up");
    // Well under the 60 s `up` waits for instances that are alive but not ready.
    let deadline = started + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("flotilla up still waiting after 30 s for instances that had exited");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut out)
        .expect("read stdout");
    assert!(
        !status.success(),
        "up succeeds with no instance left: {out}"
    );
    for service in ["identity", "catalog", "cart", "orders", "payments"] {
        assert!(
            out.contains(&format!("{service}#1 exited during start-up")),
            "{service} not reported: {out}"
        );
    }
    assert!(!out.contains("Fleet ready"), "{out}");
}
