//! An instance's presence in discovery, from `register` until `deregister`.
//!
//! Whatever keeps the presence alive (an etcd lease keep-alive, an entry in an in-memory list)
//! runs in one background task per registration, owned by its [`Registration`]. The owner ends
//! it in one of two ways: [`Registration::deregister`] (a clean exit: the instance is removed at
//! once) or [`Registration::abandon`] / drop (what a crash looks like: the keep-alive stops and
//! the instance vanishes when its TTL runs out). Keeping both paths explicit lets tests and
//! fault drills simulate a dead process without killing one.

use std::future::Future;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How a registration ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Remove the instance now.
    Deregister,
    /// Stop keeping it alive and let it expire, as a dead process would.
    Abandon,
}

/// Tells a registration's background task how it ends.
pub(super) struct EndSignal(oneshot::Receiver<Ending>);

impl EndSignal {
    /// Waits for the owner's decision; a dropped [`Registration`] counts as abandoned.
    pub(super) async fn ended(self) -> Ending {
        self.0.await.unwrap_or(Ending::Abandon)
    }
}

/// One announced instance of a service; keeps itself alive in a background task until it is
/// deregistered. Dropping it without deregistering stops the keep-alive: the instance then
/// vanishes within the backend's TTL, exactly as if the process had died.
#[must_use = "dropping a Registration stops its keep-alive: the instance expires"]
pub struct Registration {
    service: String,
    url: String,
    end: Option<oneshot::Sender<Ending>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("service", &self.service)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// A registration kept by `keeper`, which runs until its [`EndSignal`] fires and then
    /// removes the instance (on [`Ending::Deregister`]) or just stops (on [`Ending::Abandon`]).
    pub(super) fn spawn<F>(service: &str, url: &str, keeper: impl FnOnce(EndSignal) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (end, signal) = oneshot::channel();
        Self {
            service: service.to_owned(),
            url: url.to_owned(),
            end: Some(end),
            task: Some(tokio::spawn(keeper(EndSignal(signal)))),
        }
    }

    /// A registration with nothing to keep alive: the platform registers instances itself
    /// (DNS in Kubernetes).
    pub(super) fn passive(service: &str, url: &str) -> Self {
        Self {
            service: service.to_owned(),
            url: url.to_owned(),
            end: None,
            task: None,
        }
    }

    /// The service this instance belongs to.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The base URL it was announced at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Removes the instance from discovery and stops the keep-alive. Returns when the backend
    /// has confirmed the removal or given up trying (then the TTL removes it anyway).
    pub async fn deregister(mut self) {
        if let Some(end) = self.end.take() {
            // The task may have ended already (the runtime is shutting down): nothing to stop.
            let _ = end.send(Ending::Deregister);
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(service = %self.service, error = %e, "deregistration task failed");
        }
    }

    /// Stops the keep-alive without removing the instance, as a process that dies would: the
    /// instance vanishes when its TTL runs out. (Same as dropping; named for tests and drills.)
    pub fn abandon(mut self) {
        self.end.take();
    }
}
