//! Process signals: waiting for Ctrl-C or SIGTERM, and asking a child process to stop.

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sends SIGTERM to `pid` (a graceful stop: the instance deregisters and drains).
pub fn terminate(pid: u32) {
    #[cfg(unix)]
    {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
    }
}

/// The environment variable `flotilla up` sets in its children: the supervisor's pid.
pub const PARENT_PID: &str = "FLOTILLA_PARENT_PID";

/// Resolves when the supervising `flotilla up` is gone (its children are re-parented), so that
/// a supervisor killed with SIGKILL leaves no orphaned instances behind. Never resolves for a
/// process that was not started by `flotilla up`.
pub async fn parent_gone() {
    #[cfg(unix)]
    if let Some(parent) = std::env::var(PARENT_PID)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    {
        loop {
            if nix::unistd::getppid().as_raw() != parent {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    std::future::pending::<()>().await;
}
